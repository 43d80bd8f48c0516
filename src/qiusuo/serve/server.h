// `qiusuo serve`: an OpenAI/DeepSeek-compatible HTTP server over one Engine (infer/engine.h).
//
//   HTTP threads (cpp-httplib)           engine thread                 disk writer thread
//   parse + validate (protocol.h)
//   render chat / encode prompt
//   admission (bounded queue -> 429)
//   disk cache prefetch ---------------> post(): insert blocks
//   Engine::submit --------------------> step(): prefill + decode of
//                                         every running sequence
//   Job: items <------------------------ on_event / on_finish
//   ChoiceOutput (choice.h) -> JSON or SSE chunks
//   client gone -> Engine::cancel ----->  frees the blocks at once
//                                        post(): persist prefixes ----> atomic entry files
//
// Routes: POST /v1/chat/completions, /v1/completions (also fill-in-the-middle with `suffix`),
// GET /v1/models, /health, /metrics, POST /tokenize, /detokenize, /apply-template, and the web
// chat page at / (served from the binary). The same routes answer without the /v1 prefix and
// under /beta (DeepSeek's base URL for prefix completion and FIM). docs/serve.md has the details.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "qiusuo/infer/engine.h"
#include "qiusuo/kernels/linear.h"
#include "qiusuo/model/kv_cache.h"
#include "qiusuo/model/weights.h"

namespace qs::serve {

struct ServerOptions {
  std::string model_dir;
  std::string host = "127.0.0.1";
  int port = 8080;                  // 0: any free port (see bound_port())
  std::string api_key;              // "": no authentication
  std::string served_model_name;    // "": the model directory's name
  int64_t max_batch = 64;           // sequences decoding together
  int64_t ctx = 4096;               // prompt + max_tokens per request
  int64_t queue = 256;              // sequences waiting beyond the batch; more get 429
  int64_t kv_cache_mb = 1024;       // KV pool (at least ctx tokens)
  int64_t max_step_tokens = 512;    // tokens per engine step (chunked prefill)
  std::string cache_dir;            // "": no disk context cache
  int64_t cache_size_mb = 4096;     // disk cache limit
  int threads = 0;                  // compute threads (0: all cores)
  int http_threads = 0;             // 0: queue limit + 32
  Compute compute = Compute::BF16;
  std::optional<KvDtype> kv_dtype;  // KV cache storage (unset: the engine's default for compute)
  // MTP speculative decoding; Auto: where it is expected to pay (infer/engine.h: choose_speculation).
  SpeculativeMode speculative = SpeculativeMode::Auto;
  bool log_requests = true;
  WeightPlacement placement;        // expert parallelism: rank 0's share of the experts (docs/dist.md)
};

class Server {
 public:
  explicit Server(ServerOptions opt);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds the port (qs::Error when it cannot), answers /health with 503 while the model loads,
  // then serves until stop(); returns when in-flight requests have finished. Throws qs::Error
  // when the model cannot be loaded.
  void run();
  // Stops accepting connections and lets run() drain and return. Thread-safe; call it from a
  // signal-waiting thread, not a signal handler.
  void stop();
  // The port once bound (0 before).
  int bound_port() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace qs::serve
