#include "qiusuo/infer/bench.h"

#include <sys/resource.h>

#include <algorithm>
#include <cstdio>

#include "qiusuo/core/cpu.h"
#include "qiusuo/core/parallel.h"
#include "qiusuo/core/rng.h"
#include "qiusuo/core/timer.h"
#include "qiusuo/kernels/probe.h"

namespace qs {

double peak_rss_mb() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return double(ru.ru_maxrss) / 1024.0;
}

namespace {

std::vector<int32_t> random_ids(int64_t n, int64_t vocab, Rng& rng) {
  std::vector<int32_t> v(n);
  for (auto& x : v) x = int32_t(rng.below(uint64_t(vocab)));
  return v;
}

}  // namespace

nlohmann::json run_benchmark(const Model& model, const BenchOptions& o) {
  const ModelConfig& c = model.config();
  const int64_t V = c.vocab_size;
  Rng rng(o.seed);
  auto log = [&](const char* msg) { if (o.verbose) std::fprintf(stderr, "bench: %s\n", msg); };
  nlohmann::json j;
  j["threads"] = num_threads();
  j["cpu"] = cpu_summary();

  // Decode batch 1: prefill a context, then time single-token steps. The first pass also
  // pages the mmapped weights in.
  log("decode batch 1");
  KVCache cache(c, (o.decode_context + o.decode_steps + 8) * std::max<int64_t>(o.batch, 1) + o.prefill_tokens + 256,
                std::max<int64_t>(o.batch, 1) + 1);
  ForwardOptions fo;
  fo.compute = o.compute;
  Arena arena;
  std::vector<float> logits(size_t(std::max<int64_t>(o.batch, 1) * V));
  auto decode_run = [&](int64_t B, int64_t steps) {
    std::vector<int64_t> seqs;
    for (int64_t b = 0; b < B; ++b) {
      const int64_t s = cache.add_sequence();
      seqs.push_back(s);
      auto ids = random_ids(o.decode_context, V, rng);
      StepBatch pb;
      cache.append(pb, s, ids.data(), int64_t(ids.size()));
      const int64_t last = pb.size() - 1;
      model.forward(pb, cache.pool(), {&last, 1}, logits.data(), fo, arena);
    }
    std::vector<int64_t> rows(B);
    for (int64_t b = 0; b < B; ++b) rows[b] = b;
    double best = 1e30, total = 0;
    for (int64_t step = 0; step < steps; ++step) {
      StepBatch db;
      std::vector<int32_t> toks(B);
      for (int64_t b = 0; b < B; ++b) {
        toks[b] = int32_t(rng.below(uint64_t(V)));
        cache.append(db, seqs[b], &toks[b], 1);
      }
      Stopwatch sw;
      model.forward(db, cache.pool(), rows, logits.data(), fo, arena);
      const double t = sw.elapsed();
      if (step >= 2) { total += t; best = std::min(best, t); }  // first steps warm caches
    }
    for (int64_t s : seqs) cache.remove_sequence(s);
    return std::pair<double, double>{total / double(steps - 2), best};
  };
  decode_run(1, 3);  // page the weights in
  const auto [d1_mean, d1_best] = decode_run(1, o.decode_steps);
  const double kv_bytes = double(c.num_hidden_layers) * double(o.decode_context + o.decode_steps / 2) *
                          double(c.kv_lora_rank + c.qk_rope_head_dim) * 4.0;
  const double bytes_per_token = double(model.decode_weight_bytes_per_token()) + kv_bytes;
  j["decode_tokens_per_s"] = 1.0 / d1_mean;
  j["decode_best_tokens_per_s"] = 1.0 / d1_best;
  j["decode_bytes_per_token"] = bytes_per_token;
  j["decode_weight_bytes_per_token"] = double(model.decode_weight_bytes_per_token());

  log("decode batch 8");
  const auto [d8_mean, d8_best] = decode_run(o.batch, o.decode_steps);
  j["decode_batch8_tokens_per_s"] = double(o.batch) / d8_mean;
  j["decode_batch"] = o.batch;

  log("prefill");
  {
    auto ids = random_ids(o.prefill_tokens, V, rng);
    double best = 1e30;
    for (int rep = 0; rep < 3; ++rep) {
      const int64_t s = cache.add_sequence();
      StepBatch pb;
      cache.append(pb, s, ids.data(), int64_t(ids.size()));
      const int64_t last = pb.size() - 1;
      Stopwatch sw;
      model.forward(pb, cache.pool(), {&last, 1}, logits.data(), fo, arena);
      best = std::min(best, sw.elapsed());
      cache.remove_sequence(s);
    }
    const double flops = forward_flops_per_token(c, double(o.prefill_tokens + 1) / 2.0) * double(o.prefill_tokens);
    j["prefill_tokens"] = o.prefill_tokens;
    j["prefill_tokens_per_s"] = double(o.prefill_tokens) / best;
    j["prefill_gflops"] = flops / best / 1e9;
  }
  j["precision"] = o.compute == Compute::BF16 ? "bf16" : "f32";

  // The engine's own peak, before the probes add their 1 GiB read buffer and GEMM operands.
  const double rss_engine = peak_rss_mb();
  log("bandwidth and GEMM peak probes");
  const double bw = measure_read_bandwidth_gbs(size_t(1) << 30, num_threads(), o.probe_seconds);
  const double peak = measure_gemm_peak_gflops(o.compute, num_threads(), o.probe_seconds);
  const double peak_f32 = o.compute == Compute::F32 ? peak : measure_gemm_peak_gflops(Compute::F32, num_threads(), o.probe_seconds);
  j["measured_bandwidth_gb_s"] = bw;
  j["decode_bandwidth_gb_s"] = bytes_per_token / d1_mean / 1e9;
  j["decode_bandwidth_fraction"] = bytes_per_token / d1_mean / 1e9 / bw;
  j["gemm_peak_gflops"] = peak;
  j["gemm_peak_f32_gflops"] = peak_f32;
  j["prefill_peak_fraction"] = j["prefill_gflops"].get<double>() / peak;
  j["prefill_f32_peak_fraction"] = j["prefill_gflops"].get<double>() / peak_f32;
  j["peak_rss_mb"] = rss_engine;
  j["peak_rss_with_probes_mb"] = peak_rss_mb();
  j["weights_mb"] = model.store() ? double(model.store()->total_bytes()) / 1e6 : 0.0;
  double owned = 0;
  for (const auto& b : model.weights().owned) owned += double(b.size()) * 4.0;
  j["weight_f32_copies_mb"] = owned / 1e6;
  j["kv_cache_mb"] = double(cache.capacity_tokens()) * double(cache.bytes_per_token()) / 1e6;
  return j;
}

}  // namespace qs
