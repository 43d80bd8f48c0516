// One sequence the engine generates (or scores): its tokens, where its latents are (block
// table), how far they are computed, its sampling state and what it has produced.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "qiusuo/core/timer.h"
#include "qiusuo/infer/detokenizer.h"
#include "qiusuo/infer/sampler.h"

namespace qs {

enum class FinishReason { None, Stop, Length, Cancelled, Error };
const char* finish_reason_name(FinishReason r);  // "stop", "length", "cancelled", "error"

enum class SeqStatus { Waiting, Running, Finished };

// Called before sampling with the tokens generated so far; may set logits to -inf (JSON mode,
// grammars). Runs on the engine's thread.
using LogitsProcessor = std::function<void(std::span<const int32_t> generated, float* logits, int64_t vocab)>;

struct Sequence {
  int64_t id = 0;
  bool score = false;                // teacher forcing: log-probs of tokens[n_prompt, end), no sampling
  std::vector<int32_t> tokens;       // prompt, then generated (or scored) tokens
  int64_t n_prompt = 0;
  int64_t n_computed = 0;            // leading tokens whose latents are in the cache
  std::vector<int32_t> blocks;       // block table
  std::vector<uint64_t> hashes;      // chain hashes of the published full blocks (block_manager.h)
  SeqStatus status = SeqStatus::Waiting;

  SamplingParams params;
  int top_logprobs = 0;
  LogitsProcessor processor;
  std::optional<Sampler> sampler;
  int64_t forks = 0;                 // siblings to fork from this one when its prompt is done

  // Speculative decoding (MTP): the MTP module's latents are computed for positions
  // [0, mtp_computed); `draft` is its guess of the token after the next one (-1: none).
  int64_t mtp_computed = 0;
  int32_t draft = -1;
  int64_t drafts = 0, accepted = 0;  // drafts verified / accepted

  // Produced.
  std::vector<float> logprobs;                   // one per generated / scored token
  std::vector<std::vector<TopLogprob>> top;      // top_logprobs alternatives per token
  std::optional<Detokenizer> detok;
  std::string text;
  FinishReason reason = FinishReason::None;
  std::string error;
  int64_t cached_tokens = -1;        // prompt tokens taken from the prefix cache (set at first admission)
  int64_t preemptions = 0;
  bool cancelled = false;
  Stopwatch clock;                   // since submission
  double ttft_s = 0;

  int64_t n_tokens() const { return int64_t(tokens.size()); }
  int64_t n_generated() const { return n_tokens() - n_prompt; }
  // Tokens still to compute before the next sample (or, scoring, until the end).
  int64_t todo() const { return n_tokens() - n_computed; }
  std::span<const int32_t> generated() const { return {tokens.data() + n_prompt, size_t(n_generated())}; }
};

}  // namespace qs
