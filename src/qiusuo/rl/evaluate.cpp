#include "qiusuo/rl/evaluate.h"

#include <algorithm>
#include <memory>

#include "qiusuo/core/error.h"
#include "qiusuo/core/timer.h"
#include "qiusuo/rl/grpo.h"
#include "qiusuo/rl/journal.h"
#include "qiusuo/rl/policy.h"
#include "qiusuo/rl/verifier.h"

namespace qs::rl {

nlohmann::ordered_json EvalResult::to_json() const {
  return {{"n", n},
          {"accuracy", accuracy},
          {"pass_at_k", pass_at_k},
          {"format_rate", format_rate},
          {"mean_response_tokens", mean_response_tokens},
          {"k", k},
          {"greedy", greedy},
          {"completions", completions},
          {"truncated_rate", truncated_rate},
          {"generated_tokens", generated_tokens},
          {"seconds", seconds}};
}

namespace {

nlohmann::json problem_json(const ProblemResult& r, bool completions) {
  nlohmann::json j = {{"samples", r.samples}, {"correct", r.correct}, {"format_ok", r.format_ok},
                      {"truncated", r.truncated}, {"tokens", r.tokens}};
  if (completions) {
    j["completions"] = r.completions;
    j["correct_flags"] = r.correct_flags;
  }
  return j;
}

ProblemResult problem_from_journal(const nlohmann::json& j, bool completions) {
  ProblemResult r;
  r.samples = j.at("samples").get<int64_t>();
  r.correct = j.at("correct").get<int64_t>();
  r.format_ok = j.at("format_ok").get<int64_t>();
  r.truncated = j.at("truncated").get<int64_t>();
  r.tokens = j.at("tokens").get<int64_t>();
  if (completions) {
    r.completions = j.at("completions").get<std::vector<std::string>>();
    r.correct_flags = j.at("correct_flags").get<std::vector<uint8_t>>();
  }
  return r;
}

}  // namespace

EvalResult evaluate(Engine& engine, const ChatFormatter& chat, const std::vector<Problem>& problems,
                    const EvalOptions& o) {
  QS_CHECK(!problems.empty(), "evaluate: no problems");
  QS_CHECK(o.samples >= 0, "--samples must be >= 0, not ", o.samples);
  QS_CHECK(o.samples == 0 || (o.temperature > 0 && o.temperature <= 100),
           "--temperature must be in (0, 100] when sampling, not ", o.temperature);
  QS_CHECK(o.top_p > 0 && o.top_p <= 1, "--top-p must be in (0, 1], not ", o.top_p);
  validate(o.reward);
  const int64_t K = o.samples > 0 ? o.samples : 1;
  const int64_t n = int64_t(problems.size());
  Stopwatch sw;
  std::unique_ptr<Journal> journal;
  if (!o.journal.empty()) journal = std::make_unique<Journal>(o.journal, o.resume);

  EvalResult res;
  res.n = n;
  res.k = K;
  res.greedy = o.samples == 0;
  res.problems.resize(size_t(n));
  std::vector<GenerationRequest> reqs;
  std::vector<int64_t> index;  // problem of each request
  std::vector<uint8_t> in_think(size_t(n), 0);
  const int64_t ctx = engine.max_model_len();
  for (int64_t i = 0; i < n; ++i) {
    if (journal && journal->has(i)) {
      res.problems[size_t(i)] = problem_from_journal(journal->done().at(i), o.keep_completions);
      QS_CHECK(res.problems[size_t(i)].samples == K, o.journal, ": problem ", i, " was evaluated with ",
               res.problems[size_t(i)].samples, " samples, this run asks for ", K, " (delete the journal)");
      continue;
    }
    TaskPrompt tp = task_prompt(chat, problems[size_t(i)]);
    in_think[size_t(i)] = tp.opens_reasoning;
    GenerationRequest r;
    r.params.max_tokens = completion_budget(int64_t(tp.ids.size()), o.max_tokens, ctx, str("problem ", i + 1));
    r.prompt = std::move(tp.ids);
    r.n = K;
    if (o.samples > 0) {
      r.params.temperature = float(o.temperature);
      r.params.top_p = float(o.top_p);
      r.params.seed = derive_seed(o.seed, 0, uint64_t(i));
    } else {
      r.params.temperature = 0;
    }
    reqs.push_back(std::move(r));
    index.push_back(i);
  }
  // Judge each problem as soon as its K completions are in (journal), then summarise.
  std::vector<int64_t> pending(reqs.size(), K);
  std::vector<std::vector<GenerationResult>> outs(reqs.size());
  int64_t done = 0;
  const int64_t total = int64_t(reqs.size()) * K;
  run_requests(engine, std::move(reqs), [&](size_t q, int64_t k, GenerationResult&& g) {
    if (outs[q].empty()) outs[q].resize(size_t(K));
    outs[q][size_t(k)] = std::move(g);
    if (--pending[q] == 0) {
      const int64_t i = index[q];
      RewardConfig rc = o.reward;
      rc.verify.starts_in_think = in_think[size_t(i)];
      ProblemResult pr;
      pr.samples = K;
      for (const GenerationResult& r : outs[q]) {
        const Reward rw = compute_reward(problems[size_t(i)], r.text, int64_t(r.tokens.size()), rc);
        pr.correct += rw.accuracy > 0;
        pr.format_ok += rw.format_ok;
        pr.truncated += r.reason == FinishReason::Length;
        pr.tokens += int64_t(r.tokens.size());
        if (o.keep_completions) {
          pr.completions.push_back(r.text);
          pr.correct_flags.push_back(rw.accuracy > 0);
        }
      }
      if (journal) journal->append(i, problem_json(pr, o.keep_completions));
      res.problems[size_t(i)] = std::move(pr);
      outs[q] = {};
    }
    ++done;
    if (o.on_progress) o.on_progress(done, total);
  });
  if (journal) journal->sync();
  res.seconds = sw.elapsed();

  double acc = 0, pak = 0, fmt = 0, tokens = 0, trunc = 0;
  for (const ProblemResult& pr : res.problems) {
    acc += double(pr.correct);
    fmt += double(pr.format_ok);
    tokens += double(pr.tokens);
    trunc += double(pr.truncated);
    pak += pass_at_k(pr.samples, pr.correct, K);
  }
  res.completions = n * K;
  res.generated_tokens = int64_t(tokens);
  res.accuracy = acc / double(res.completions);
  res.format_rate = fmt / double(res.completions);
  res.mean_response_tokens = tokens / double(res.completions);
  res.truncated_rate = trunc / double(res.completions);
  res.pass_at_k = pak / double(n);
  return res;
}

EvalResult evaluate_model(const std::string& model_dir, const std::vector<Problem>& problems,
                          const EvalOptions& options, Compute compute, int64_t max_seqs) {
  const std::unique_ptr<Tokenizer> tok = load_chat_tokenizer(model_dir);
  const std::unique_ptr<Model> model = Model::load(model_dir, /*with_mtp=*/false);
  const ChatFormatter chat(*tok);
  Engine engine(*model, tok.get(), batch_engine_options(max_seqs, model_context(*model), compute));
  return evaluate(engine, chat, problems, options);
}

}  // namespace qs::rl
