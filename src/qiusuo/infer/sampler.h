// Turning logits into the next token. Order: penalties → temperature → top-k → top-p → min-p
// → draw. Temperature 0 (or top_k 1) is greedy. The same seed gives the same tokens.
//   repetition_penalty  (HF/CTRL) logits of tokens seen in prompt or output: /p if > 0, ·p if < 0
//   presence_penalty    (OpenAI) minus p for every token already in the output
//   frequency_penalty   (OpenAI) minus p · count in the output
#pragma once
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "qiusuo/core/rng.h"

namespace qs {

struct SamplingParams {
  float temperature = 1.0f;
  int top_k = 0;           // 0: off
  float top_p = 1.0f;      // 1: off
  float min_p = 0.0f;      // 0: off; keeps tokens with p >= min_p · p_max
  float repetition_penalty = 1.0f;
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  int64_t max_tokens = 256;
  std::vector<std::string> stop;        // stop strings (not included in the output)
  std::vector<int32_t> stop_token_ids;  // besides the model's EOS
  bool ignore_eos = false;
  uint64_t seed = 0;

  void validate() const;  // qs::Error naming the bad field
};

class Sampler {
 public:
  Sampler(const SamplingParams& p, int64_t vocab);
  // Records prompt tokens (for the repetition penalty).
  void observe_prompt(const std::vector<int32_t>& prompt);
  // Picks a token from logits[vocab] (modified in place) and records it as output.
  int32_t sample(float* logits);
  // Greedy argmax (lowest id on ties).
  static int32_t argmax(const float* logits, int64_t n);

  Rng::State rng_state() const { return rng_.state(); }

 private:
  SamplingParams p_;
  int64_t vocab_;
  Rng rng_;
  std::unordered_map<int32_t, int32_t> seen_prompt_, out_counts_;
  std::vector<std::pair<float, int32_t>> cand_;
};

}  // namespace qs
