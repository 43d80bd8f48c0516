// The generation engine: continuous batching of requests over one Model. The CLI, the server
// and RL rollouts all generate (and score) through it. It composes
//   BlockManager  paged latent-KV blocks, reference counts, prefix cache   (block_manager.h)
//   Scheduler     token budget per step, chunked prefill mixed with decode, preemption
//   ModelRunner   one ragged forward pass per step over the block tables    (model_runner.h)
//   Sampler       penalties, temperature, top-k/p, min-p, log-probabilities (sampler.h)
//   Detokenizer   incremental UTF-8 text and stop strings                  (detokenizer.h)
//
// Batching never changes results: every token is computed the same way whatever else shares
// its step, however its prompt was chunked, whether its prefix came from the cache, and after
// a preemption (the model's kernels are batch-invariant, see mla.h and kernels/linear.h), and
// each request samples from its own seeded RNG. A greedy request gives the same tokens alone
// or among many others.
//
// Threads: submit(), cancel(), stats() and post() may be called from any thread. step(),
// generate(), score() and run() drive the engine and must be called from one thread at a time
// (not concurrently with each other); callbacks (on_event, on_finish, LogitsProcessor, posted
// tasks) run on that thread. A finished request's result is handed to its on_finish callback
// (or returned by generate()) once, and the engine keeps nothing of it.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "qiusuo/infer/block_manager.h"
#include "qiusuo/infer/model_runner.h"
#include "qiusuo/infer/scheduler.h"
#include "qiusuo/infer/sequence.h"
#include "qiusuo/model/transformer.h"
#include "qiusuo/tokenizer/tokenizer.h"

namespace qs {

// One new token (or the final event) of a request.
struct TokenEvent {
  int64_t request = 0;
  int32_t token = -1;            // -1: final event without a new token
  float logprob = 0;             // of `token` (sampler.h: after penalties and temperature)
  std::vector<TopLogprob> top;   // the request's top_logprobs alternatives
  std::string text;              // newly decided text (UTF-8 safe, stop strings held back)
  bool finished = false;
  FinishReason reason = FinishReason::None;
};

struct GenerationResult {
  int64_t request = 0;
  std::vector<int32_t> tokens;   // generated ids (a stop token / the tokens of a stop string included)
  std::string text;              // generated text, up to (not including) a stop string
  std::vector<float> logprobs;   // one per generated token
  std::vector<std::vector<TopLogprob>> top_logprobs;  // per token, when top_logprobs > 0
  FinishReason reason = FinishReason::None;
  std::string error;
  int64_t prompt_tokens = 0;
  int64_t cached_tokens = 0;     // prompt tokens whose latents came from the prefix cache (full blocks)
  int64_t preemptions = 0;
  int64_t draft_tokens = 0, accepted_draft_tokens = 0;  // speculative decoding: drafts verified / accepted
  double ttft_s = 0;             // submit → first token
  double total_s = 0;            // submit → finished
};

struct GenerationRequest {
  std::vector<int32_t> prompt;
  SamplingParams params;
  // Samples of this prompt: n > 1 computes the prompt once and forks n sequences that share
  // its blocks; they get consecutive request ids from submit()'s return value, and sample
  // i uses seed params.seed + i.
  int64_t n = 1;
  int top_logprobs = 0;          // alternatives per token (the chosen token's log-prob is always kept)
  LogitsProcessor processor;     // optional constraint (JSON mode, grammars)
  std::function<bool(const TokenEvent&)> on_event;    // every token and the final event; false cancels
  std::function<void(GenerationResult&&)> on_finish;  // exactly once per sample
};

// Teacher forcing: the log-probabilities of `completion` after `prompt` (log-softmax of the
// raw logits), batched with everything else through the same steps and prefix cache.
struct ScoreRequest {
  std::vector<int32_t> prompt;
  std::vector<int32_t> completion;
  int top_logprobs = 0;
};
struct ScoreResult {
  std::vector<float> logprobs;                        // one per completion token
  std::vector<std::vector<TopLogprob>> top_logprobs;  // when top_logprobs > 0
  int64_t cached_tokens = 0;
};

struct EngineOptions {
  int64_t max_seqs = 64;          // sequences running at once
  int64_t cache_tokens = 32768;   // KV pool capacity in tokens (all sequences and cached prefixes)
  int64_t block_size = 64;        // tokens per block (also the prefix cache's unit)
  int64_t max_step_tokens = 512;  // tokens computed per step (decode tokens + prefill chunks)
  int64_t max_model_len = 0;      // prompt + max_tokens limit (0: the pool capacity, capped by the model's positions)
  bool prefix_caching = true;
  Compute compute = Compute::BF16;  // matrix products: bf16 (activations rounded to BF16) or f32 (exact)
  // How the latent KV cache stores its rows (model/kv_cache.h); unset: BF16 with BF16 products
  // (as llama.cpp's F16 and vLLM's BF16 caches), F32 with F32 products (exact).
  std::optional<KvDtype> kv_dtype;
  // MTP speculative decoding: the model's MTP module drafts the token after next; the main
  // model verifies [next, draft] in one step. Greedy output is exactly the non-speculative
  // output; sampled tokens have exactly the same distribution (speculative sampling).
  bool speculative = false;
};

// `--speculative none|mtp|auto` of the CLI and the server.
enum class SpeculativeMode { None, Mtp, Auto };
SpeculativeMode speculative_mode_of(const std::string& name);  // qs::Error for another name

// Whether MTP speculative decoding is expected to speed up batch-1 decode of the checkpoint in
// `model_dir` (its config.json and tensor headers; no weight is loaded). Batch-1 decode is
// bound by the bytes of weights a step reads (model/weights.h: checkpoint_decode_bytes): a
// plain step reads B1 (main model, one token) for one token; a speculative step verifies two
// tokens, which read the dense parts once but route to up to twice the experts
// (B2 = B1 + routed x (1 - k/E) for two tokens picking k of E experts each), and runs the MTP
// module (Bmtp), for 1 + a tokens at acceptance a. The expected speed-up
//   s = (1 + a) B1 / (B2 + Bmtp),   a = kExpectedAcceptance
// must reach kMinSpeedup (the margin covers per-step costs beyond reading weights). Measured:
// a 6-layer V2-Lite shape with one MTP module (s = 1.0) ran speculative steps 1.7-2.0x as long
// as plain ones, where the byte count gives 1.8x (docs/benchmarks.md).
struct SpeculationChoice {
  bool on = false;
  double speedup = 0;  // s; 0 without an MTP module
  std::string why;     // one line for logs
};
inline constexpr double kExpectedAcceptance = 0.8;  // 81.7% on the qiusuo r1 model; DeepSeek-V3: 85-90%
inline constexpr double kMinSpeedup = 1.1;
SpeculationChoice choose_speculation(const std::string& model_dir);
// None: off; Mtp: on (the engine checks the model has MTP weights); Auto: choose_speculation.
SpeculationChoice resolve_speculation(SpeculativeMode mode, const std::string& model_dir);

// Layers of an engine's KV pool: the model's, and with speculative decoding one more for the MTP
// module's latents.
inline int64_t kv_pool_layers(const ModelConfig& c, const EngineOptions& o) {
  return c.num_hidden_layers + (o.speculative ? 1 : 0);
}

// The cache type an engine with these options uses (kv_dtype, or the default for compute).
inline KvDtype kv_dtype_of(const EngineOptions& o) {
  return o.kv_dtype ? *o.kv_dtype : (o.compute == Compute::F32 ? KvDtype::F32 : KvDtype::BF16);
}

struct EngineStats {
  int64_t waiting = 0, running = 0;
  int64_t blocks_total = 0, blocks_used = 0, blocks_cached = 0, blocks_free = 0, block_size = 0;
  // Since start.
  int64_t steps = 0, requests = 0, finished = 0, preemptions = 0;
  int64_t prompt_tokens = 0, cached_tokens = 0, generated_tokens = 0, step_tokens = 0;
  int64_t draft_tokens = 0, accepted_draft_tokens = 0;
};

class Engine {
 public:
  // `model` and `tokenizer` (may be null: no text) must outlive the engine. The model's
  // weights may change between steps (RL): call clear_prefix_cache() then.
  Engine(const Model& model, const Tokenizer* tokenizer, EngineOptions opt = {});
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Validates and queues a request (qs::Error for an empty prompt, ids outside the vocabulary,
  // bad sampling parameters, prompt + max_tokens beyond max_model_len). Returns its id (the
  // first of n). Thread-safe.
  int64_t submit(GenerationRequest req);
  int64_t submit_score(ScoreRequest req, std::function<void(ScoreResult&&)> on_done);
  // Cancels a request (finish reason "cancelled"); no effect on an unknown or finished one.
  void cancel(int64_t request);
  // Runs `task` on the engine thread before the next step (e.g. prefix cache persistence).
  void post(std::function<void()> task);
  EngineStats stats() const;

  // One scheduling iteration: admits, computes one ragged step, samples, emits. Returns false
  // when there was nothing to do.
  bool step();
  bool idle() const;
  // Steps until `stop` is set, sleeping while idle (a server's engine thread). notify() wakes it.
  void run(const std::atomic<bool>& stop);
  void notify();

  // Convenience: submits, runs to completion on this thread, returns results in request order
  // (n results for a request with n samples).
  std::vector<GenerationResult> generate(std::vector<GenerationRequest> reqs);
  std::vector<ScoreResult> score(std::vector<ScoreRequest> reqs);

  // Forgets cached prefixes (after the weights changed). Engine thread only.
  void clear_prefix_cache();

  const Model& model() const { return model_; }
  const Tokenizer* tokenizer() const { return tok_; }
  const EngineOptions& options() const { return opt_; }
  int64_t max_model_len() const { return max_len_; }
  // Engine thread only (persistence of the prefix cache, tests).
  BlockManager& blocks() { return *bm_; }
  KVPool& pool() { return *pool_; }

 private:
  struct Pending;
  void drain_inbox();
  void finish(Sequence& s, FinishReason r, const std::string& error = {});
  void sample(Sequence& s, const float* logits);
  void emit(Sequence& s, int32_t tok, const SampleInfo& info);
  void fork(Sequence& parent);
  void score_rows(Sequence& s, int64_t first_pos, int64_t n, const float* logits);
  void count_finished(int64_t prompt_tokens, int64_t cached_tokens);
  bool can_draft(const Sequence& s) const;
  void mtp_pass(const Schedule& sch, const std::vector<int64_t>& start, const std::vector<int64_t>& flat);

  const Model& model_;
  const Tokenizer* tok_;
  EngineOptions opt_;
  int64_t max_len_ = 0;
  std::unique_ptr<KVPool> pool_;
  std::unique_ptr<BlockManager> bm_;
  std::unique_ptr<Scheduler> sched_;
  std::unique_ptr<ModelRunner> runner_;
  std::vector<int32_t> eos_;

  // Live sequences by id, and the callbacks of their requests.
  struct Callbacks {
    std::function<bool(const TokenEvent&)> on_event;
    std::function<void(GenerationResult&&)> on_finish;
    std::function<void(ScoreResult&&)> on_score;
  };
  std::unordered_map<int64_t, std::unique_ptr<Sequence>> seqs_;
  std::unordered_map<int64_t, Callbacks> callbacks_;

  // Cross-thread inbox.
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<Pending>> inbox_;
  std::vector<int64_t> cancels_;
  std::vector<std::function<void()>> tasks_;
  std::atomic<int64_t> next_id_{0};
  EngineStats stats_;  // guarded by mu_
  std::vector<float> row_;  // one logits row (sampling modifies it)
};

}  // namespace qs
