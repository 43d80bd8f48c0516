// qiusuo task-gen | evaluate | sample: verifiable RL tasks (arithmetic, countdown) as task JSONL or
// SFT examples; a model's accuracy on them; rejection sampling into an SFT dataset. The training
// commands (sft, grpo, distill, r1) are in cmd_rl_train.cpp.
#include <algorithm>
#include <cstdio>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <tuple>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "qiusuo/core/error.h"
#include "qiusuo/core/timer.h"
#include "qiusuo/io/file.h"
#include "qiusuo/rl/evaluate.h"
#include "qiusuo/rl/policy.h"
#include "qiusuo/rl/sample.h"
#include "qiusuo/rl/tasks.h"
#include "qiusuo/train/progress.h"

namespace qs::cli {
namespace {

// "7", "2-4", "2..4", "-5..10" -> [lo, hi].
std::pair<int64_t, int64_t> parse_range(const std::string& flag, const std::string& s) {
  const auto num = [&](const std::string& t) -> int64_t {
    size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(t, &used);
    } catch (...) {
      used = 0;
    }
    if (used == 0 || used != t.size()) fail(flag, ": '", s, "' is not a number or range (e.g. 3, 2-4, -5..10)");
    return v;
  };
  size_t sep = s.find("..");
  size_t len = 2;
  if (sep == std::string::npos) {
    sep = s.find('-', 1);
    len = 1;
  }
  const auto r = sep == std::string::npos ? std::pair{num(s), num(s)}
                                          : std::pair{num(s.substr(0, sep)), num(s.substr(sep + len))};
  if (r.first > r.second) fail(flag, ": '", s, "' is an empty range");
  return r;
}

// A progress callback for `what` that redraws at most 5 times a second (and prints 10 milestones
// when stderr is not a terminal).
std::function<void(int64_t, int64_t)> progress_callback(ProgressLine& line, const std::string& what) {
  auto last = std::make_shared<double>(-1);
  auto sw = std::make_shared<Stopwatch>();
  return [&line, what, last, sw](int64_t done, int64_t total) {
    const double t = sw->elapsed();
    const bool milestone = done == total || (total >= 10 && done % (total / 10) == 0);
    if (!milestone && t - *last < 0.2) return;
    *last = t;
    const double eta = done > 0 ? t * double(total - done) / double(done) : 0;
    char buf[256];
    std::snprintf(buf, sizeof buf, "%s: %lld/%lld completions | %s elapsed | ETA %s", what.c_str(), (long long)done,
                  (long long)total, format_duration(t).c_str(), format_duration(eta).c_str());
    line.update(buf, milestone);
  };
}

struct GenerateFlags {
  std::string model, tasks, precision = "f32";
  int64_t max_tokens = 512, max_seqs = 64;
  double temperature = 1.0, top_p = 1.0;
  uint64_t seed = 0;
  int threads = 0;
  bool json = false, quiet = false, resume = false;
};

void add_generate_flags(CLI::App* c, GenerateFlags& o) {
  c->add_option("--model,-m", o.model, "Model directory (Hugging Face layout with tokenizer.json and a chat template)")
      ->required();
  c->add_option("--tasks", o.tasks, "Task JSONL: {\"prompt\",\"answer\",\"match\"} per line (`qiusuo task-gen`, docs/rl.md)")
      ->required();
  c->add_option("--max-tokens", o.max_tokens, "Tokens per completion at most (capped by the model's context)")
      ->capture_default_str();
  c->add_option("--top-p", o.top_p, "Nucleus sampling mass when sampling (1 = off)")->capture_default_str();
  c->add_option("--seed", o.seed, "Seed: problem i's sample j is drawn with a seed derived from (seed, i) plus j")
      ->capture_default_str();
  c->add_option("--precision", o.precision,
                "Matrix products: f32 (exact; the numbers GRPO's importance ratio uses) or bf16")
      ->capture_default_str();
  c->add_option("--max-seqs", o.max_seqs, "Sequences generated together at most")->capture_default_str();
  c->add_option("--threads", o.threads, "Threads (0 = all cores)");
  c->add_flag("--quiet,-q", o.quiet, "No progress line");
}

void register_evaluate_and_sample(CLI::App& app) {
  {
    struct Opts : GenerateFlags {
      int64_t samples = 0;
      std::string out;
    };
    auto o = std::make_shared<Opts>();
    auto* c = app.add_subcommand(
        "evaluate",
        "Accuracy of a model on task problems. Each problem's prompt goes through the model's chat template;\n"
        "all completions are generated in one batch and judged by the verifier (docs/rl.md).\n"
        "  accuracy: greedy pass@1 (one completion per problem at temperature 0), or with --samples K the\n"
        "            mean per-sample accuracy of K samples per problem at --temperature\n"
        "  pass_at_k: mean unbiased pass@K over the problems (= accuracy when greedy)\n"
        "  format_rate: share of completions in the <think>...</think><answer>...</answer> layout\n"
        "  mean_response_tokens: generated tokens per completion\n"
        "--json prints {\"n\",\"accuracy\",\"pass_at_k\",\"format_rate\",\"mean_response_tokens\", ...}.");
    add_generate_flags(c, *o);
    c->add_option("--samples", o->samples, "Sample K completions per problem instead of one greedy completion")
        ->capture_default_str();
    c->add_option("--temperature", o->temperature, "Sampling temperature with --samples")->capture_default_str();
    c->add_option("--out,-o", o->out,
                  "Also write per-problem results (prompt, answer, completions, correct) as JSONL, atomically");
    c->add_flag("--resume", o->resume,
                "Continue an interrupted evaluation from OUT.partial (needs --out): finished problems are kept");
    c->add_flag("--json", o->json, "Print one JSON summary object on stdout");
    c->callback([o] {
      apply_threads(o->threads);
      if (o->resume && o->out.empty()) fail("--resume needs --out (the journal of finished problems is OUT.partial)");
      const std::vector<rl::Problem> problems = rl::load_task_jsonl(o->tasks);
      if (problems.empty()) fail(o->tasks, " holds no problems");
      rl::EvalOptions eo;
      eo.samples = o->samples;
      eo.temperature = o->temperature;
      eo.top_p = o->top_p;
      eo.max_tokens = o->max_tokens;
      eo.seed = o->seed;
      eo.keep_completions = !o->out.empty();
      if (!o->out.empty()) {
        eo.journal = o->out + ".partial";
        eo.resume = o->resume;
      }
      ProgressLine line(!o->quiet);
      eo.on_progress = progress_callback(line, "evaluate");
      const rl::EvalResult r = rl::evaluate_model(o->model, problems, eo, rl::parse_compute(o->precision), o->max_seqs);
      line.finish();
      if (!o->out.empty()) {
        std::vector<nlohmann::ordered_json> lines;
        for (size_t i = 0; i < problems.size(); ++i) {
          const rl::ProblemResult& pr = r.problems[i];
          lines.push_back({{"prompt", problems[i].prompt}, {"answer", problems[i].answer},
                           {"correct", pr.correct}, {"samples", pr.samples}, {"completions", pr.completions},
                           {"correct_flags", pr.correct_flags}});
        }
        rl::write_jsonl(o->out, lines);
        std::remove((o->out + ".partial").c_str());
      }
      nlohmann::ordered_json j = r.to_json();
      j["temperature"] = o->samples > 0 ? o->temperature : 0.0;
      j["model"] = o->model;
      j["tasks"] = o->tasks;
      if (o->json) {
        std::printf("%s\n", j.dump().c_str());
      } else {
        std::printf("%lld problems, %lld completion%s each: accuracy %.4f, pass@%lld %.4f, format %.4f, %.1f tokens "
                    "per response (%.1f s)\n",
                    (long long)r.n, (long long)r.k, r.k == 1 ? "" : "s", r.accuracy, (long long)r.k, r.pass_at_k,
                    r.format_rate, r.mean_response_tokens, r.seconds);
      }
    });
  }
  {
    struct Opts : GenerateFlags {
      int64_t n = 4, max_per_problem = 0;
      std::string out;
      bool keep_correct = false, any_format = false, keep_duplicates = false;
    };
    auto o = std::make_shared<Opts>();
    auto* c = app.add_subcommand(
        "sample",
        "Rejection sampling: N completions per problem, judged by the verifier; with --keep-correct only\n"
        "the correct, well-formed ones are kept (DeepSeek-R1's way from an RL model to an SFT dataset).\n"
        "Writes one chat line per kept completion:\n"
        "  {\"messages\":[{\"role\":\"user\",\"content\":PROMPT},{\"role\":\"assistant\",\"content\":RESPONSE}],\n"
        "   \"correct\":true,\"reward\":R}\n"
        "the input of `qiusuo sft` and `qiusuo distill --mode sequence`.");
    add_generate_flags(c, *o);
    c->add_option("--n", o->n, "Completions per problem")->capture_default_str();
    c->add_option("--temperature", o->temperature, "Sampling temperature")->capture_default_str();
    c->add_flag("--keep-correct", o->keep_correct, "Keep only completions the verifier accepts (and well-formed)");
    c->add_flag("--any-format", o->any_format, "With --keep-correct: also keep correct answers outside the R1 layout");
    c->add_option("--max-per-problem", o->max_per_problem, "Keep at most this many completions per problem (0 = all)")
        ->capture_default_str();
    c->add_flag("--keep-duplicates", o->keep_duplicates, "Keep identical completions of a problem more than once");
    c->add_option("--out,-o", o->out, "Output JSONL (written atomically)")->required();
    c->add_flag("--resume", o->resume, "Continue an interrupted run from OUT.partial: finished problems are kept");
    c->add_flag("--json", o->json, "Print one JSON summary object on stdout");
    c->callback([o] {
      apply_threads(o->threads);
      const std::vector<rl::Problem> problems = rl::load_task_jsonl(o->tasks);
      if (problems.empty()) fail(o->tasks, " holds no problems");
      rl::SampleOptions so;
      so.n = o->n;
      so.temperature = o->temperature;
      so.top_p = o->top_p;
      so.max_tokens = o->max_tokens;
      so.seed = o->seed;
      so.keep_correct = o->keep_correct;
      so.require_format = !o->any_format;
      so.max_per_problem = o->max_per_problem;
      so.dedupe = !o->keep_duplicates;
      so.journal = o->out + ".partial";
      so.resume = o->resume;
      ProgressLine line(!o->quiet);
      so.on_progress = progress_callback(line, "sample");
      const std::unique_ptr<Tokenizer> tok = rl::load_chat_tokenizer(o->model);
      const std::unique_ptr<Model> model = Model::load(o->model, false);
      const ChatFormatter chat(*tok);
      Engine engine(*model, tok.get(),
                    rl::batch_engine_options(o->max_seqs, rl::model_context(*model), rl::parse_compute(o->precision)));
      const rl::SampleResult r = rl::rejection_sample(engine, chat, problems, so);
      line.finish();
      rl::write_jsonl(o->out, r.lines);
      std::remove(so.journal.c_str());
      nlohmann::ordered_json j = r.to_json();
      j["out"] = o->out;
      j["model"] = o->model;
      if (o->json) {
        std::printf("%s\n", j.dump().c_str());
      } else {
        std::printf("%lld problems x %lld samples: accuracy %.4f, format %.4f; kept %lld lines from %lld problems -> %s "
                    "(%.1f s)\n",
                    (long long)r.problems, (long long)o->n, j["accuracy"].get<double>(),
                    j["format_rate"].get<double>(), (long long)r.kept, (long long)r.problems_with_kept,
                    o->out.c_str(), r.seconds);
      }
    });
  }
}

}  // namespace

void register_rl_training_commands(CLI::App& app);  // cmd_rl_train.cpp

void register_rl_commands(CLI::App& app) {
  register_evaluate_and_sample(app);
  register_rl_training_commands(app);
  struct Opts {
    std::string task, split, difficulty = "3", out, format = "tasks", trace_style;
    int64_t n = 0;
    uint64_t seed = 0;
    std::string digits, ops, count, numbers, target;
    int operands = 0;
    bool allow_negative = false, json = false;
  };
  auto o = std::make_shared<Opts>();
  auto* c = app.add_subcommand(
      "task-gen",
      "Generate verifiable problems for reinforcement learning (docs/rl.md).\n"
      "Output (task JSONL, one problem per line):\n"
      "  {\"prompt\":\"...\",\"answer\":\"...\",\"match\":\"numeric|countdown\", ...}\n"
      "  countdown lines also carry \"numbers\":[...] and \"target\":N; every line carries \"task\", and\n"
      "  arithmetic lines \"expression\". The prompt asks for reasoning in <think> </think> and the\n"
      "  answer in <answer> </answer>. --format sft writes {\"messages\":[user, assistant]} lines\n"
      "  instead, the assistant message a worked solution.\n"
      "Splits: a problem is a test problem iff a hash of its canonical form (countdown: sorted numbers\n"
      "  and target; arithmetic: the expression) is 0 mod 5, independent of the seed, so train and test\n"
      "  files never share a problem, whatever their seeds. Problems within a file are distinct.\n"
      "Difficulty levels (knob flags override single knobs):\n"
      "  arithmetic 1: 1-2 digits, +          countdown 1: 3 numbers in 1..10, target 1..20\n"
      "             2: 2 digits, + -                   2: 3 numbers in 1..20, target 1..50\n"
      "             3: 2-3 digits, + - *               3: 3-4 numbers in 1..50, target 1..100\n"
      "             4: 3-4 digits, + - *               4: 4 numbers in 1..100, target 1..100\n"
      "             5: 3-5 digits, + - *, 3 operands   5: 4 numbers in 1..100, target 100..999\n"
      "  Arithmetic results are never negative unless --allow-negative; countdown problems are always\n"
      "  solvable (one reference solution is kept as \"answer\"; any correct expression counts).");
  c->add_option("--task", o->task, "arithmetic or countdown")->required()->check(CLI::IsMember({"arithmetic", "countdown"}));
  c->add_option("--split", o->split, "train or test")->required()->check(CLI::IsMember({"train", "test"}));
  c->add_option("--n", o->n, "Number of problems")->required();
  c->add_option("--seed", o->seed, "Seed (the same seed and options give the same file)")->capture_default_str();
  c->add_option("--difficulty", o->difficulty, "Level 1..5, or easy (1), medium (3), hard (5)")->capture_default_str();
  c->add_option("--digits", o->digits, "arithmetic: digits per operand, N or MIN-MAX (1..30)");
  c->add_option("--ops", o->ops, "arithmetic: operators to draw from, a subset of \"+-*\"");
  c->add_option("--operands", o->operands, "arithmetic: operands per expression (2..6)");
  c->add_flag("--allow-negative", o->allow_negative, "arithmetic: allow negative results");
  c->add_option("--count", o->count, "countdown: how many numbers are given, N or MIN-MAX (2..5)");
  c->add_option("--numbers", o->numbers, "countdown: range of the given numbers, MIN-MAX (>= 1)");
  c->add_option("--target", o->target, "countdown: range of the target, MIN-MAX or MIN..MAX");
  c->add_option("--format", o->format, "tasks (task JSONL) or sft (chat messages with worked solutions)")
      ->capture_default_str()
      ->check(CLI::IsMember({"tasks", "sft"}));
  c->add_option("--trace-style", o->trace_style,
                "sft: worked-solution style (arithmetic: columns, decompose, brief; countdown: search, steps, "
                "brief); default: a seeded mix");
  c->add_option("--out,-o", o->out, "Output file (written atomically)")->required();
  c->add_flag("--json", o->json, "Print one JSON summary object");
  c->callback([o] {
    rl::GenerateOptions g;
    g.task = rl::parse_task_kind(o->task);
    g.split = rl::parse_split(o->split);
    g.n = o->n;
    g.seed = o->seed;
    const int level = rl::parse_difficulty(o->difficulty);
    g.arithmetic = rl::arithmetic_difficulty(level);
    g.countdown = rl::countdown_difficulty(level);
    const bool arith = g.task == rl::TaskKind::Arithmetic;
    const auto only = [&](bool ok, const char* flag) {
      if (!ok) fail(flag, " applies to --task ", arith ? "countdown" : "arithmetic", " only");
    };
    if (!o->digits.empty()) {
      only(arith, "--digits");
      const auto [lo, hi] = parse_range("--digits", o->digits);
      g.arithmetic.min_digits = int(std::clamp<int64_t>(lo, -1, 1000));
      g.arithmetic.max_digits = int(std::clamp<int64_t>(hi, -1, 1000));
    }
    if (!o->ops.empty()) only(arith, "--ops"), g.arithmetic.ops = o->ops;
    if (o->operands) only(arith, "--operands"), g.arithmetic.operands = o->operands;
    if (o->allow_negative) only(arith, "--allow-negative"), g.arithmetic.allow_negative = true;
    if (!o->count.empty()) {
      only(!arith, "--count");
      const auto [lo, hi] = parse_range("--count", o->count);
      g.countdown.min_count = int(std::clamp<int64_t>(lo, -1, 1000));
      g.countdown.max_count = int(std::clamp<int64_t>(hi, -1, 1000));
    }
    if (!o->numbers.empty()) {
      only(!arith, "--numbers");
      std::tie(g.countdown.min_number, g.countdown.max_number) = parse_range("--numbers", o->numbers);
    }
    if (!o->target.empty()) {
      only(!arith, "--target");
      std::tie(g.countdown.min_target, g.countdown.max_target) = parse_range("--target", o->target);
    }
    if (!o->trace_style.empty() && o->format != "sft") fail("--trace-style applies to --format sft only");
    QS_CHECK(o->n >= 1, "--n must be at least 1, not ", o->n);

    const std::vector<rl::Problem> problems = rl::generate_problems(g);
    if (o->format == "tasks") {
      rl::write_task_jsonl(o->out, problems);
    } else {
      Rng rng(o->seed ^ 0x5F7ull);
      std::string text;
      for (const rl::Problem& p : problems)
        text += rl::sft_example(p, rl::worked_solution(p, o->trace_style, rng))
                    .dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
      write_text_file_atomic(o->out, text);
    }
    nlohmann::ordered_json knobs;
    if (arith) {
      knobs = {{"min_digits", g.arithmetic.min_digits}, {"max_digits", g.arithmetic.max_digits},
               {"ops", g.arithmetic.ops}, {"operands", g.arithmetic.operands},
               {"allow_negative", g.arithmetic.allow_negative}};
    } else {
      knobs = {{"min_count", g.countdown.min_count},   {"max_count", g.countdown.max_count},
               {"min_number", g.countdown.min_number}, {"max_number", g.countdown.max_number},
               {"min_target", g.countdown.min_target}, {"max_target", g.countdown.max_target}};
    }
    if (o->json) {
      nlohmann::ordered_json j = {{"out", o->out},   {"n", problems.size()}, {"task", o->task},
                                  {"split", o->split}, {"seed", o->seed},      {"difficulty", level},
                                  {"format", o->format}, {"knobs", knobs}};
      std::printf("%s\n", j.dump().c_str());
    } else {
      std::printf("wrote %zu %s %s problems (difficulty %d, seed %llu, %s) to %s\n", problems.size(), o->split.c_str(),
                  o->task.c_str(), level, (unsigned long long)o->seed, knobs.dump().c_str(), o->out.c_str());
    }
  });
}

}  // namespace qs::cli
