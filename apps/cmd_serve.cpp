// qiusuo serve: the OpenAI/DeepSeek-compatible HTTP server (src/qiusuo/serve/server.h).
#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <thread>

#include "commands.h"
#include "qiusuo/core/error.h"
#include "qiusuo/dist/comm.h"
#include "qiusuo/dist/expert_parallel.h"
#include "qiusuo/model/moe.h"
#include "qiusuo/model/transformer.h"
#include "qiusuo/serve/server.h"

namespace qs::cli {
namespace {

struct ServeOpts {
  serve::ServerOptions s;
  std::string precision = "bf16", kv_dtype = "auto", speculative = "auto";
  bool quiet = false, expert_parallel = false, mmap = false;
};

void run_serve(ServeOpts o) {
  if (o.precision == "bf16") o.s.compute = Compute::BF16;
  else if (o.precision == "f32") o.s.compute = Compute::F32;
  else fail("--precision must be bf16 or f32, got '", o.precision, "'");
  o.s.kv_dtype = kv_cache_of(o.kv_dtype);
  o.s.speculative = speculative_mode_of(o.speculative);
  o.s.log_requests = !o.quiet;
  o.s.placement.mmap = o.mmap;
  apply_threads(o.s.threads);
  // Expert parallelism under mpirun: rank 0 serves HTTP and runs the engine; the other ranks map
  // only their experts and serve rank 0's MoE layer calls until it stops.
  Comm& w = world();
  std::unique_ptr<ExpertParallel> ep;
  if (w.size() > 1) {
    QS_CHECK(o.expert_parallel, "qiusuo serve was started by mpirun as ", w.size(),
             " ranks: it runs distributed only with --expert-parallel; or run it without mpirun");
    const ModelConfig cfg = load_model_config(o.s.model_dir);
    QS_CHECK(cfg.n_routed_experts >= w.size(), "--expert-parallel over ", w.size(), " ranks: the model has ",
             cfg.n_routed_experts, " routed experts per MoE layer");
    ep = std::make_unique<ExpertParallel>(w, cfg.n_routed_experts, /*leader_follower=*/true);
    if (w.rank() != 0) {
      // The MTP module's experts too when rank 0 decodes speculatively (the same choice there).
      const bool mtp = resolve_speculation(o.s.speculative, o.s.model_dir).on;
      auto m = Model::load(o.s.model_dir, mtp, {ep.get(), /*experts_only=*/true, o.mmap});
      serve_experts(m->config(), m->weights(), *ep);
      return;
    }
    o.s.placement = {ep.get(), false, o.mmap};
    std::fprintf(stderr, "qiusuo serve: expert parallel over %d ranks (%s)\n", w.size(), world_description().c_str());
  }
  // SIGTERM / SIGINT: stop accepting, let in-flight requests finish, exit 0. A second signal
  // exits at once. The signals are taken by a thread of their own (sigwait), so every other
  // thread blocks them; SIGPIPE (a client that went away) is ignored.
  signal(SIGPIPE, SIG_IGN);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  serve::Server server(o.s);
  std::thread([&server, set] {
    int sig = 0;
    sigwait(&set, &sig);
    std::fprintf(stderr, "qiusuo serve: %s: finishing in-flight requests (again to quit at once)\n",
                 sig == SIGTERM ? "SIGTERM" : "SIGINT");
    server.stop();
    sigwait(&set, &sig);
    std::_Exit(130);
  }).detach();
  server.run();
  if (ep) announce_expert_call(*ep, {0, 0, 0});  // the serving ranks may go
}

}  // namespace

void register_serve_command(CLI::App& app) {
  auto o = std::make_shared<ServeOpts>();
  auto* c = app.add_subcommand(
      "serve",
      "OpenAI/DeepSeek-compatible HTTP server: /v1/chat/completions (streaming, reasoning_content, tool calls,\n"
      "JSON mode, chat prefix completion), /v1/completions (and fill in the middle), /v1/models, /health,\n"
      "/metrics, /tokenize, /detokenize, /apply-template, and a web chat page at /. Requests are batched\n"
      "continuously; repeated prompt prefixes come from the prefix cache (and from --cache-dir across restarts).\n"
      "SIGTERM stops accepting, finishes the requests in flight and exits 0. See docs/serve.md.");
  c->add_option("--model,-m", o->s.model_dir, "Checkpoint directory (config.json, *.safetensors, tokenizer.json)")
      ->required();
  c->add_option("--host", o->s.host, "Address to listen on (127.0.0.1: this machine only; 0.0.0.0: all)")
      ->capture_default_str();
  c->add_option("--port", o->s.port, "Port (0: any free port, printed on start)")->capture_default_str();
  c->add_option("--api-key", o->s.api_key,
                "Require \"Authorization: Bearer KEY\" on every route but /health (browsers: any user, KEY as password)");
  c->add_option("--served-model-name", o->s.served_model_name,
                "Model name clients must send as \"model\" (default: the model directory's name)");
  c->add_option("--max-batch", o->s.max_batch, "Sequences decoding together at most")->capture_default_str();
  c->add_option("--ctx", o->s.ctx, "Context per request in tokens (prompt + max_tokens); longer requests get 400")
      ->capture_default_str();
  c->add_option("--queue", o->s.queue,
                "Sequences that may wait beyond the batch; more are refused with 429 and Retry-After")
      ->capture_default_str();
  c->add_option("--kv-cache", o->s.kv_cache_mb, "KV cache pool in MiB (running sequences and cached prefixes; at least --ctx tokens)")
      ->capture_default_str();
  c->add_option("--cache-dir", o->s.cache_dir,
                "Keep prompt prefixes on disk here: they survive restarts (context caching)");
  c->add_option("--cache-size", o->s.cache_size_mb, "Disk cache limit in MiB (least recently used entries go first)")
      ->capture_default_str();
  c->add_option("--max-step-tokens", o->s.max_step_tokens, "Tokens per engine step (decode tokens + prefill chunks)")
      ->capture_default_str();
  c->add_option("--precision", o->precision, "Matrix products: bf16 or f32 (see qiusuo generate --help)")
      ->capture_default_str();
  add_kv_cache_option(c, o->kv_dtype);
  add_speculative_option(c, o->speculative);
  c->add_option("--threads", o->s.threads, "Compute threads (0 = all cores)");
  c->add_option("--http-threads", o->s.http_threads, "HTTP connection threads (0 = batch + queue + 32)");
  c->add_flag("--quiet", o->quiet, "Do not log every request");
  add_mmap_flag(c, o->mmap);
  c->add_flag("--expert-parallel", o->expert_parallel,
              "Under mpirun: rank 0 serves HTTP and runs the engine, every rank maps only its share of the\n"
              "routed experts and computes them for rank 0's batches (all-to-all; docs/dist.md)");
  c->callback([o] { run_serve(*o); });
}

}  // namespace qs::cli
