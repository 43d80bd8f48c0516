// qiusuo bench
#include <cstdio>
#include <memory>

#include "commands.h"
#include "dist_cli.h"
#include "qiusuo/core/error.h"
#include "qiusuo/infer/bench.h"

namespace qs::cli {

void register_bench_command(CLI::App& app) {
  struct Opts {
    std::string model, precision = "bf16", kv_cache = "auto";
    bool json = false, expert_parallel = false, mmap = false;
    int threads = 0;
    BenchOptions b;
  };
  auto o = std::make_shared<Opts>();
  auto* c = app.add_subcommand(
      "bench",
      "Measure prefill and decode throughput (batch 1, 8 and 32) against the machine's read\n"
      "bandwidth and GEMM peak, both measured in the same run, and the prefix cache's effect on the\n"
      "time to first token");
  c->add_option("--model,-m", o->model, "Checkpoint directory")->required();
  c->add_flag("--json", o->json, "Print one JSON object");
  c->add_option("--threads", o->threads, "Threads (0 = all cores)");
  c->add_option("--prefill-tokens", o->b.prefill_tokens, "Prompt length for the prefill figure")->capture_default_str();
  c->add_option("--context", o->b.decode_context, "Context length before timed decode steps")->capture_default_str();
  c->add_option("--steps", o->b.decode_steps, "Timed decode steps")->capture_default_str();
  c->add_option("--long-context", o->b.long_context,
                "Also time batch-1 decode at this context (e.g. 32768), its latent cache rows filled with\n"
                "random values instead of prefilled (attention reads as many rows; 0 = skip)")
      ->capture_default_str();
  c->add_option("--batch", o->b.batch, "Sequences in the batched decode figure")->capture_default_str();
  c->add_option("--precision", o->precision, "Prefill GEMM precision: bf16 or f32")->capture_default_str();
  add_kv_cache_option(c, o->kv_cache);
  add_mmap_flag(c, o->mmap);
  c->add_flag("--expert-parallel", o->expert_parallel,
              "Under mpirun: the routed experts divided among the ranks, rank 0 measures (docs/dist.md)");
  c->callback([o] {
    apply_threads(o->threads);
    if (o->precision == "bf16") o->b.compute = Compute::BF16;
    else if (o->precision == "f32") o->b.compute = Compute::F32;
    else fail("--precision must be bf16 or f32");
    o->b.kv_dtype = kv_cache_of(o->kv_cache);
    QS_CHECK(o->b.decode_steps >= 4, "--steps must be at least 4");
    QS_CHECK(o->b.batch >= 1 && o->b.prefill_tokens >= 1 && o->b.decode_context >= 1 && o->b.long_context >= 0,
             "bench sizes must be positive");
    o->b.verbose = !o->json;
    InferenceModel model("bench", o->model, /*with_mtp=*/false, o->expert_parallel, o->mmap);
    if (model.serving_done()) return;  // a rank that served its experts to rank 0
    auto j = run_benchmark(*model, o->b);
    j.update(model.fields());
    if (o->json) {
      std::printf("%s\n", j.dump().c_str());
      return;
    }
    std::printf("model            %s\n", o->model.c_str());
    std::printf("cpu              %s, %d threads%s\n", j["cpu"].get<std::string>().c_str(), j["threads"].get<int>(),
                model.expert_parallel()
                    ? (", " + std::to_string(j["world_size"].get<int>()) + " ranks, expert parallel").c_str()
                    : "");
    std::printf("prefill          %.1f tokens/s (%lld tokens, %s GEMMs): %.1f GFLOP/s = %.1f%% of the %s GEMM peak %.0f GFLOP/s (%.1f%% of F32 peak %.0f)\n",
                j["prefill_tokens_per_s"].get<double>(), (long long)j["prefill_tokens"].get<int64_t>(),
                o->precision.c_str(), j["prefill_gflops"].get<double>(), 100 * j["prefill_peak_fraction"].get<double>(),
                o->precision.c_str(), j["gemm_peak_gflops"].get<double>(), 100 * j["prefill_f32_peak_fraction"].get<double>(),
                j["gemm_peak_f32_gflops"].get<double>());
    std::string probes;
    for (const auto& p : j["decode_probe_gb_s"]) probes += (probes.empty() ? "" : " ") + std::to_string(int(p.get<double>() + 0.5));
    std::printf("decode batch 1   %.2f tokens/s, %.1f MB read per token: %.1f GB/s = %.1f%% of the read bandwidth probed "
                "around it (median of 4 rounds; probes %s GB/s)\n",
                j["decode_tokens_per_s"].get<double>(), j["decode_bytes_per_token"].get<double>() / 1e6,
                j["decode_bandwidth_gb_s"].get<double>(), 100 * j["decode_bandwidth_fraction"].get<double>(),
                probes.c_str());
    std::printf("decode batch %-3lld %.2f tokens/s, %.1f MB read per step (the experts its tokens touch): %.1f%% of measured bandwidth\n",
                (long long)j["decode_batch"].get<int64_t>(), j["decode_batch8_tokens_per_s"].get<double>(),
                j["decode_batch8_bytes_per_step"].get<double>() / 1e6,
                100 * j["decode_batch8_bandwidth_fraction"].get<double>());
    std::printf("decode batch 32  %.2f tokens/s\n", j["decode_batch32_tokens_per_s"].get<double>());
    if (j.contains("long_context"))
      std::printf("decode at %-6lld %.2f tokens/s (batch 1, cache rows filled), %.1f MB read per token: %.1f%% of measured bandwidth\n",
                  (long long)j["long_context"].get<int64_t>(), j["long_context_decode_tokens_per_s"].get<double>(),
                  j["long_context_bytes_per_token"].get<double>() / 1e6,
                  100 * j["long_context_bandwidth_fraction"].get<double>());
    std::printf("prefix cache     time to first token of a 1024-token prompt: %.3f s cold, %.3f s cached (%.1fx)\n",
                j["prefix_cold_ttft_s"].get<double>(), j["prefix_hit_ttft_s"].get<double>(),
                j["prefix_hit_ttft_speedup"].get<double>());
    std::printf("memory           peak RSS %.0f MB (checkpoint %.0f MB, of it %.0f MB copied into memory at load, the rest read where it is mapped; %.0f MB of F32 norms, router and absorbed kv_b and repacked integer tiles; KV cache %.0f MB in %s, %.0f bytes per token)\n",
                j["peak_rss_mb"].get<double>(), j["weights_mb"].get<double>(), j["weights_copied_mb"].get<double>(),
                j["weight_f32_copies_mb"].get<double>(),
                j["kv_cache_mb"].get<double>(), j["kv_cache_dtype"].get<std::string>().c_str(),
                j["kv_bytes_per_token"].get<double>());
  });
}

}  // namespace qs::cli
