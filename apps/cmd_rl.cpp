// qiusuo task-gen: verifiable RL tasks (arithmetic, countdown) as task JSONL or SFT examples.
#include <algorithm>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <tuple>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "qiusuo/core/error.h"
#include "qiusuo/io/file.h"
#include "qiusuo/rl/tasks.h"

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

}  // namespace

void register_rl_commands(CLI::App& app) {
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
