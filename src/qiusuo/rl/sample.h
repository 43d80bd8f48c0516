// Rejection sampling (`qiusuo sample`): N completions per problem through the engine, judged by
// the verifier; with keep_correct only the correct ones (in the R1-Zero format unless
// require_format is off) are kept — DeepSeek-R1's recipe for turning an RL model's verified
// reasoning into an SFT dataset. Each kept completion becomes one chat line
//   {"messages":[{"role":"user","content":PROMPT},{"role":"assistant","content":RESPONSE}],
//    "correct":true|false,"reward":R}
// where RESPONSE is the assistant message as the chat template expects it (the <think> that the
// generation prompt opened put back, ChatFormatter::assistant_message): the input of `qiusuo sft`
// and of sequence-level `qiusuo distill`. Problem i's sample j is drawn with seed
// derive_seed(seed, 1, i) + j, so the output depends only on the seed and the problems.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "qiusuo/infer/chat.h"
#include "qiusuo/infer/engine.h"
#include "qiusuo/rl/reward.h"
#include "qiusuo/rl/tasks.h"

namespace qs::rl {

struct SampleOptions {
  int64_t n = 4;                // completions per problem
  double temperature = 1.0;
  double top_p = 1.0;
  int64_t max_tokens = 512;     // per completion (capped by the model's context)
  uint64_t seed = 0;
  bool keep_correct = false;    // keep only verified-correct completions
  bool require_format = true;   // with keep_correct: and only well-formed ones (format_ok)
  int64_t max_per_problem = 0;  // keep at most this many per problem (0 = no limit)
  bool dedupe = true;           // identical responses to one problem are kept once
  RewardConfig reward;
  std::string journal;          // per-problem journal for --resume ("" = none), see rl/journal.h
  bool resume = false;
  std::function<void(int64_t done, int64_t total)> on_progress;
};

struct SampleResult {
  int64_t problems = 0, samples = 0, correct = 0, format_ok = 0, kept = 0;
  int64_t problems_with_kept = 0;  // problems that gave at least one kept line
  int64_t generated_tokens = 0;
  double seconds = 0;
  std::vector<nlohmann::ordered_json> lines;  // the dataset, in problem order
  nlohmann::ordered_json to_json() const;     // the counts and rates (not the lines)
};

SampleResult rejection_sample(Engine& engine, const ChatFormatter& chat, const std::vector<Problem>& problems,
                              const SampleOptions& options);

// Writes the lines as JSONL, atomically.
void write_jsonl(const std::string& path, const std::vector<nlohmann::ordered_json>& lines);

}  // namespace qs::rl
