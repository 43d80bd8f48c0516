// The generation engine: continuous batching of requests over one Model and one paged latent
// KV cache. Each step() runs one forward pass over a ragged batch — a decode token for every
// running sequence plus prompt chunks of newly admitted ones (chunked prefill) — then samples,
// detokenizes incrementally, applies stop conditions and streams events. The CLI, the server
// and RL rollouts all generate through this class.
#pragma once
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "qiusuo/core/timer.h"
#include "qiusuo/infer/sampler.h"
#include "qiusuo/model/transformer.h"
#include "qiusuo/tokenizer/tokenizer.h"

namespace qs {

enum class FinishReason { None, Stop, Length, Cancelled, Error };
const char* finish_reason_name(FinishReason r);  // "stop", "length", "cancelled", "error"

struct TokenEvent {
  int64_t request = 0;
  int32_t token = -1;   // -1 for a final event without a new token
  std::string text;     // newly completed text (UTF-8 safe, stop strings held back)
  bool finished = false;
  FinishReason reason = FinishReason::None;
};

struct GenerationRequest {
  std::vector<int32_t> prompt;
  SamplingParams params;
  // Called from step() for every new token and once when finished; return false to cancel.
  std::function<bool(const TokenEvent&)> on_event;
};

struct GenerationResult {
  int64_t request = 0;
  std::vector<int32_t> tokens;  // generated ids (stop token / stop string tokens included)
  std::string text;             // generated text, up to (not including) a stop string
  FinishReason reason = FinishReason::None;
  std::string error;
  int64_t prompt_tokens = 0;
  double ttft_s = 0;   // submit → first token
  double total_s = 0;  // submit → finished
};

struct EngineOptions {
  int64_t max_batch = 16;       // sequences decoding together
  int64_t cache_tokens = 16384; // KV cache capacity (all sequences)
  int64_t prefill_chunk = 512;  // prompt tokens per step (chunked prefill)
  Compute compute = Compute::BF16;  // GEMM precision for prefill (decode GEMVs are exact F32)
  int64_t block_size = 64;
};

class Engine {
 public:
  Engine(Model& model, const Tokenizer* tokenizer, EngineOptions opt = {});
  ~Engine();

  // Queues a request; returns its id. Throws qs::Error for invalid input (ids out of the
  // vocabulary, empty prompt, bad sampling parameters, prompt longer than the cache).
  int64_t submit(GenerationRequest req);
  void cancel(int64_t request);
  // One scheduling iteration (one forward pass). Returns false when there was nothing to do.
  bool step();
  bool idle() const;
  // Runs every request to completion and returns their results in submission order.
  std::vector<GenerationResult> generate(std::vector<GenerationRequest> reqs);
  // Result of a finished request (removed from the engine by this call).
  std::optional<GenerationResult> take_result(int64_t request);

  const Model& model() const { return model_; }
  KVCache& cache() { return *cache_; }
  int64_t steps() const { return steps_; }

 private:
  struct Seq;
  void admit();
  void finish(Seq& s, FinishReason r, const std::string& error = {});
  void emit_token(Seq& s, int32_t tok);

  Model& model_;
  const Tokenizer* tok_;
  EngineOptions opt_;
  std::unique_ptr<KVCache> cache_;
  int64_t next_id_ = 0, steps_ = 0;
  std::deque<std::unique_ptr<Seq>> waiting_;
  std::vector<std::unique_ptr<Seq>> running_;
  std::vector<GenerationResult> done_;
  std::vector<float> logits_;
};

}  // namespace qs
