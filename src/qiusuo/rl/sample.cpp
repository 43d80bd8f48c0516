#include "qiusuo/rl/sample.h"

#include <memory>
#include <set>

#include "qiusuo/core/error.h"
#include "qiusuo/core/timer.h"
#include "qiusuo/io/file.h"
#include "qiusuo/rl/journal.h"
#include "qiusuo/rl/policy.h"

namespace qs::rl {

nlohmann::ordered_json SampleResult::to_json() const {
  const double s = double(std::max<int64_t>(1, samples));
  return {{"problems", problems},
          {"samples", samples},
          {"kept", kept},
          {"problems_with_kept", problems_with_kept},
          {"accuracy", double(correct) / s},
          {"format_rate", double(format_ok) / s},
          {"mean_response_tokens", double(generated_tokens) / s},
          {"seconds", seconds}};
}

void write_jsonl(const std::string& path, const std::vector<nlohmann::ordered_json>& lines) {
  std::string text;
  for (const auto& l : lines) text += l.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
  write_text_file_atomic(path, text);
}

SampleResult rejection_sample(Engine& engine, const ChatFormatter& chat, const std::vector<Problem>& problems,
                              const SampleOptions& o) {
  QS_CHECK(!problems.empty(), "sample: no problems");
  QS_CHECK(o.n >= 1, "--n must be at least 1, not ", o.n);
  QS_CHECK(o.temperature >= 0 && o.temperature <= 100, "--temperature must be in [0, 100], not ", o.temperature);
  QS_CHECK(o.top_p > 0 && o.top_p <= 1, "--top-p must be in (0, 1], not ", o.top_p);
  QS_CHECK(o.max_per_problem >= 0, "--max-per-problem must be >= 0");
  validate(o.reward);
  Stopwatch sw;
  const int64_t n = int64_t(problems.size());
  std::unique_ptr<Journal> journal;
  if (!o.journal.empty()) journal = std::make_unique<Journal>(o.journal, o.resume);

  // Per problem: its kept lines and counts (a journal item).
  std::vector<nlohmann::json> items(static_cast<size_t>(n));
  std::vector<GenerationRequest> reqs;
  std::vector<int64_t> index;
  std::vector<ChatPrompt> prompts(static_cast<size_t>(n));
  const int64_t ctx = engine.max_model_len();
  for (int64_t i = 0; i < n; ++i) {
    if (journal && journal->has(i)) {
      items[size_t(i)] = journal->done().at(i);
      continue;
    }
    const Problem& p = problems[size_t(i)];
    prompts[size_t(i)] = chat.render(nlohmann::json::array({{{"role", "user"}, {"content", p.prompt}}}));
    GenerationRequest r;
    r.params.max_tokens =
        completion_budget(int64_t(prompts[size_t(i)].ids.size()), o.max_tokens, ctx, str("problem ", i + 1));
    r.prompt = prompts[size_t(i)].ids;
    r.n = o.n;
    r.params.temperature = float(o.temperature);
    r.params.top_p = float(o.top_p);
    r.params.seed = derive_seed(o.seed, 1, uint64_t(i));
    reqs.push_back(std::move(r));
    index.push_back(i);
  }
  std::vector<std::vector<GenerationResult>> outs(reqs.size());
  std::vector<int64_t> pending(reqs.size(), o.n);
  int64_t done = 0;
  const int64_t total = int64_t(reqs.size()) * o.n;
  run_requests(engine, std::move(reqs), [&](size_t q, int64_t k, GenerationResult&& g) {
    if (outs[q].empty()) outs[q].resize(size_t(o.n));
    outs[q][size_t(k)] = std::move(g);
    if (--pending[q] == 0) {
      const int64_t i = index[q];
      const Problem& p = problems[size_t(i)];
      RewardConfig rc = o.reward;
      rc.verify.starts_in_think = prompts[size_t(i)].opens_reasoning;
      nlohmann::json item = {{"samples", o.n}, {"correct", 0}, {"format_ok", 0}, {"tokens", 0},
                             {"lines", nlohmann::json::array()}};
      std::set<std::string> seen;
      int64_t kept = 0;
      for (const GenerationResult& r : outs[q]) {
        const Reward rw = compute_reward(p, r.text, int64_t(r.tokens.size()), rc);
        item["correct"] = item["correct"].get<int64_t>() + (rw.accuracy > 0);
        item["format_ok"] = item["format_ok"].get<int64_t>() + rw.format_ok;
        item["tokens"] = item["tokens"].get<int64_t>() + int64_t(r.tokens.size());
        if (o.keep_correct && (rw.accuracy <= 0 || (o.require_format && !rw.format_ok))) continue;
        if (o.max_per_problem > 0 && kept >= o.max_per_problem) continue;
        if (o.dedupe && !seen.insert(r.text).second) continue;
        const nlohmann::json assistant = ChatFormatter::assistant_message(r.text, prompts[size_t(i)]);
        nlohmann::ordered_json line;
        line["messages"] = nlohmann::ordered_json::array(
            {nlohmann::ordered_json{{"role", "user"}, {"content", p.prompt}},
             nlohmann::ordered_json{{"role", "assistant"}, {"content", assistant["content"]}}});
        line["correct"] = rw.accuracy > 0;
        line["reward"] = rw.total;
        item["lines"].push_back(nlohmann::json::parse(line.dump()));
        ++kept;
      }
      if (journal) journal->append(i, item);
      items[size_t(i)] = std::move(item);
      outs[q] = {};
    }
    ++done;
    if (o.on_progress) o.on_progress(done, total);
  });
  if (journal) journal->sync();

  SampleResult res;
  res.problems = n;
  for (const nlohmann::json& it : items) {
    res.samples += it.at("samples").get<int64_t>();
    res.correct += it.at("correct").get<int64_t>();
    res.format_ok += it.at("format_ok").get<int64_t>();
    res.generated_tokens += it.at("tokens").get<int64_t>();
    const auto& lines = it.at("lines");
    res.problems_with_kept += !lines.empty();
    for (const auto& l : lines) {
      // Rebuilt in the documented key order (the journal's objects sort their keys).
      nlohmann::ordered_json line;
      line["messages"] = nlohmann::ordered_json::array();
      for (const auto& m : l.at("messages"))
        line["messages"].push_back({{"role", m.at("role")}, {"content", m.at("content")}});
      line["correct"] = l.at("correct");
      line["reward"] = l.at("reward");
      res.lines.push_back(std::move(line));
      ++res.kept;
    }
  }
  res.seconds = sw.elapsed();
  return res;
}

}  // namespace qs::rl
