// Turning logits into the next token. Order: penalties → temperature → top-k → top-p → min-p
// → draw. Temperature 0 (or top_k 1) is greedy. The same seed gives the same tokens.
//
// Log-probabilities: the chosen token's log-probability (and the top-K alternatives on
// request) are taken from log-softmax of the logits after the penalties and the temperature —
// the distribution the token was drawn from before top-k / top-p / min-p truncation (as
// vLLM's "processed" logprobs); greedy decoding reports log-softmax of the (penalized) raw
// logits. GRPO's importance ratio and distillation use exactly these numbers.
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

struct TopLogprob {
  int32_t id = 0;
  float logprob = 0;
};

struct SampleInfo {
  float logprob = 0;             // of the chosen token
  std::vector<TopLogprob> top;   // the `top_logprobs` most likely tokens, most likely first
};

class Sampler {
 public:
  Sampler(const SamplingParams& p, int64_t vocab);
  // Records prompt tokens (for the repetition penalty).
  void observe_prompt(const std::vector<int32_t>& prompt);
  // Picks a token from logits[vocab] (modified in place) and records it as output. With
  // `info`, also its log-probability and the `top_logprobs` most likely alternatives.
  int32_t sample(float* logits, SampleInfo* info = nullptr, int top_logprobs = 0);
  // Speculative decoding: verifies a drafted token against these logits (modified in place).
  // Greedy: the draft is accepted iff it is the argmax (which is returned either way).
  // Sampling: accepted with probability p(draft) under the distribution sample() draws from,
  // otherwise a token is drawn from that distribution without the draft — so the returned
  // token is distributed exactly as sample()'s. *accepted tells which happened.
  int32_t verify_draft(float* logits, int32_t draft, bool* accepted, SampleInfo* info = nullptr,
                       int top_logprobs = 0);
  bool greedy() const { return p_.temperature == 0.0f || p_.top_k == 1; }
  const SamplingParams& params() const { return p_; }
  // Greedy argmax (lowest id on ties).
  static int32_t argmax(const float* logits, int64_t n);

  Rng::State rng_state() const { return rng_.state(); }
  // log-softmax of logits[n] at `id`, and the k largest as (id, logprob), most likely first
  // (ties: lower id first).
  static float log_softmax_at(const float* logits, int64_t n, int32_t id);
  static std::vector<TopLogprob> top_log_softmax(const float* logits, int64_t n, int k);

 private:
  void penalize(float* logits) const;
  void candidates(const float* logits);  // cand_: the truncated distribution, most likely first
  int32_t draw();                        // one token from cand_
  void record(const float* logits, int32_t tok, SampleInfo* info, int top_logprobs);

  SamplingParams p_;
  int64_t vocab_;
  Rng rng_;
  std::unordered_map<int32_t, int32_t> seen_prompt_, out_counts_;
  std::vector<float> scaled_;
  std::vector<std::pair<float, int32_t>> cand_;
};

}  // namespace qs
