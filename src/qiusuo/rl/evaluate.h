// Evaluating a model on task problems (`qiusuo evaluate`): every problem's prompt through the
// model's chat template, completions generated in one batch through the engine, judged by the
// verifier (rl/verifier.h), summarised as
//   accuracy              share of correct completions: greedy pass@1 (one completion per
//                         problem at temperature 0) by default; with samples = K, the mean
//                         per-sample accuracy of K samples per problem at the given temperature
//   pass_at_k             mean over problems of the unbiased pass@K (Chen et al. 2021) from the K
//                         samples; equals accuracy for greedy decoding (K = 1)
//   format_rate           share of completions in the R1-Zero layout (rl/verifier.h format_ok)
//   mean_response_tokens  mean generated tokens per completion (EOS included)
// Greedy results do not depend on the batch (the engine is batch-invariant); sampled ones depend
// only on the seed: problem i's sample j is drawn with seed derive_seed(seed, 0, i) + j.
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

struct EvalOptions {
  int64_t samples = 0;        // 0: greedy, one completion per problem; K >= 1: K samples per problem
  double temperature = 1.0;   // with samples
  double top_p = 1.0;         // with samples
  int64_t max_tokens = 512;   // per completion (capped by the model's context)
  uint64_t seed = 0;
  RewardConfig reward;        // verification options (starts_in_think is set from the template)
  bool keep_completions = false;  // fill ProblemResult::completions
  std::string journal;        // per-problem journal for --resume ("" = none), see rl/journal.h
  bool resume = false;
  std::function<void(int64_t done, int64_t total)> on_progress;  // completions finished / total
};

struct ProblemResult {
  int64_t samples = 0, correct = 0, format_ok = 0, truncated = 0;
  int64_t tokens = 0;                    // generated tokens of all its samples
  std::vector<std::string> completions;  // when keep_completions
  std::vector<uint8_t> correct_flags;    // when keep_completions
};

struct EvalResult {
  int64_t n = 0;                  // problems
  int64_t k = 1;                  // completions per problem
  double accuracy = 0, pass_at_k = 0, format_rate = 0, mean_response_tokens = 0;
  double truncated_rate = 0;      // completions cut by max_tokens
  int64_t completions = 0, generated_tokens = 0;
  double seconds = 0;             // generation time of this session
  bool greedy = true;
  std::vector<ProblemResult> problems;
  // {"n","accuracy","pass_at_k","format_rate","mean_response_tokens", then k, temperature, ...}
  nlohmann::ordered_json to_json() const;
};

// Evaluates with `engine` (its model is the one judged). qs::Error for an empty problem list or a
// prompt that leaves no room in the context.
EvalResult evaluate(Engine& engine, const ChatFormatter& chat, const std::vector<Problem>& problems,
                    const EvalOptions& options);

// The same for a model directory (weights, tokenizer and chat template), with an engine computing
// in `compute` sized for `max_seqs` sequences at once.
EvalResult evaluate_model(const std::string& model_dir, const std::vector<Problem>& problems,
                          const EvalOptions& options, Compute compute = Compute::F32, int64_t max_seqs = 64);

}  // namespace qs::rl
