#include "qiusuo/infer/bench.h"

#include <sys/resource.h>

#include <algorithm>
#include <cstdio>

#include "qiusuo/core/cpu.h"
#include "qiusuo/core/parallel.h"
#include "qiusuo/core/rng.h"
#include "qiusuo/core/timer.h"
#include "qiusuo/infer/engine.h"
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

// Weight bytes one decode step of `step_tokens` tokens reads when they were routed as `router`
// says: every block as model/transformer.h's block_weight_bytes counts it, every routed expert
// at least one token touched, the head. (The embedding rows are negligible.)
double step_weight_bytes(const Model& model, const std::vector<RouterRecord>& router, int64_t step_tokens) {
  const ModelConfig& c = model.config();
  const ModelWeights& w = model.weights();
  double n = double(w.lm_head.bytes());
  for (size_t l = 0; l < w.layers.size(); ++l) {
    const auto& lw = w.layers[l];
    n += double(block_weight_bytes(c, lw, step_tokens));
    if (!lw.moe) continue;
    std::vector<char> touched(size_t(c.n_routed_experts), 0);
    for (const auto& r : router)
      if (r.layer == int64_t(l))
        for (int32_t e : r.indices) touched[size_t(e)] = 1;
    for (size_t e = 0; e < touched.size(); ++e)
      if (touched[e]) {
        const auto& x = lw.ffn.experts[e];
        n += double(x.gate.bytes() + x.up.bytes() + x.down.bytes());
      }
  }
  return n;
}

nlohmann::json run_benchmark(const Model& model, const BenchOptions& o) {
  const ModelConfig& c = model.config();
  const int64_t V = c.vocab_size;
  Rng rng(o.seed);
  auto log = [&](const char* msg) { if (o.verbose) std::fprintf(stderr, "bench: %s\n", msg); };
  nlohmann::json j;
  j["threads"] = num_threads();
  j["cpu"] = cpu_summary();

  // Decode: prefill a context per sequence, then time steps of one token per sequence, with the
  // absorbed attention the engine uses. The first pass also pages in weights read in the mapping.
  constexpr int64_t kBig = 32;
  const int64_t maxb = std::max<int64_t>(o.batch, kBig);
  EngineOptions defaults;
  defaults.compute = o.compute;
  defaults.kv_dtype = o.kv_dtype;
  const KvDtype kv_dtype = kv_dtype_of(defaults);
  // Capacity in whole blocks per sequence (a sequence holds ceil(length / block) blocks).
  constexpr int64_t kBlockTokens = 64;
  auto blocks_of = [&](int64_t tokens) { return (tokens + kBlockTokens - 1) / kBlockTokens * kBlockTokens; };
  KVCache cache(c, blocks_of(o.decode_context + o.decode_steps + 8) * maxb + blocks_of(o.prefill_tokens) + 256,
                maxb + 1, kBlockTokens, -1, kv_dtype);
  const double kv_token_bytes = double(cache.bytes_per_token());  // all layers
  ForwardOptions fo;
  fo.compute = o.compute;
  fo.attn = AttnImpl::Absorb;
  Arena arena;
  std::vector<float> logits(size_t(maxb * V));
  struct Run { double mean_s, best_s, bytes_per_step; };
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
    double best = 1e30, total = 0, bytes = 0;
    std::vector<RouterRecord> router;
    ForwardOptions fr = fo;
    fr.router = &router;
    for (int64_t step = 0; step < steps; ++step) {
      StepBatch db;
      std::vector<int32_t> toks(B);
      for (int64_t b = 0; b < B; ++b) {
        toks[b] = int32_t(rng.below(uint64_t(V)));
        cache.append(db, seqs[b], &toks[b], 1);
      }
      router.clear();
      Stopwatch sw;
      model.forward(db, cache.pool(), rows, logits.data(), fr, arena);
      const double t = sw.elapsed();
      if (step >= 2) {  // the first steps warm caches
        total += t;
        best = std::min(best, t);
        double kv = 0;
        for (int64_t s : seqs) kv += double(cache.length(s)) * kv_token_bytes;
        bytes += step_weight_bytes(model, router, B) + kv;
      }
    }
    for (int64_t s : seqs) cache.remove_sequence(s);
    return Run{total / double(steps - 2), best, bytes / double(steps - 2)};
  };
  // The read bandwidth a decode figure is divided by is probed right before and right after
  // it (a shared host's bandwidth moves by tens of percent within minutes): batch 1 runs in
  // rounds, probe / steps / probe / steps / ... / probe, each round's fraction taken against
  // the mean of its two neighbouring probes; the median round is reported.
  const double round_probe_s = std::min(o.probe_seconds, 0.3);
  auto probe = [&] { return measure_read_bandwidth_gbs(size_t(1) << 30, num_threads(), round_probe_s); };
  std::vector<double> probes;
  // A run's read rate over the mean of the last two probes (the ones on either side of it).
  auto fraction = [&](const Run& r) {
    return r.bytes_per_step / r.mean_s / 1e9 / (0.5 * (probes[probes.size() - 2] + probes.back()));
  };
  log("decode batch 1");
  decode_run(1, 3);  // page the weights in
  constexpr int kRounds = 4;
  const int64_t round_steps = std::max<int64_t>(6, o.decode_steps / kRounds + 2);
  std::vector<double> fractions;
  Run d1{0, 1e30, 0};
  probes.push_back(probe());
  for (int r = 0; r < kRounds; ++r) {
    const Run x = decode_run(1, round_steps);
    probes.push_back(probe());
    fractions.push_back(fraction(x));
    d1.mean_s += x.mean_s / kRounds;
    d1.bytes_per_step += x.bytes_per_step / kRounds;
    d1.best_s = std::min(d1.best_s, x.best_s);
  }
  std::vector<double> sorted = fractions;
  std::sort(sorted.begin(), sorted.end());
  j["decode_bandwidth_fraction"] = 0.5 * (sorted[kRounds / 2 - 1] + sorted[kRounds / 2]);
  j["decode_bandwidth_fractions"] = fractions;
  j["decode_tokens_per_s"] = 1.0 / d1.mean_s;
  j["decode_best_tokens_per_s"] = 1.0 / d1.best_s;
  j["decode_bytes_per_token"] = d1.bytes_per_step;
  j["decode_weight_bytes_per_token"] = double(model.decode_weight_bytes_per_token());

  log("decode batch 8");
  const Run d8 = decode_run(o.batch, o.decode_steps);
  probes.push_back(probe());
  j["decode_batch8_bandwidth_fraction"] = fraction(d8);
  j["decode_probe_gb_s"] = probes;
  j["decode_batch8_tokens_per_s"] = double(o.batch) / d8.mean_s;
  j["decode_batch"] = o.batch;
  j["decode_batch8_bytes_per_step"] = d8.bytes_per_step;
  log("decode batch 32");
  const Run d32 = decode_run(kBig, std::max<int64_t>(6, o.decode_steps / 2));
  j["decode_batch32_tokens_per_s"] = double(kBig) / d32.mean_s;
  j["decode_batch32_bytes_per_step"] = d32.bytes_per_step;

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
  j["kv_cache_dtype"] = kv_dtype_name(kv_dtype);
  j["kv_bytes_per_token"] = kv_token_bytes;

  log("prefix cache: time to first token of a 1024-token prompt, cold and fully cached");
  {
    EngineOptions eo = defaults;
    eo.cache_tokens = 2048;
    eo.max_step_tokens = 512;
    Engine engine(model, nullptr, eo);
    GenerationRequest r;
    r.prompt = random_ids(1024, V, rng);
    r.params.max_tokens = 1;
    r.params.temperature = 0;
    double cold = 1e30, warm = 1e30;
    for (int rep = 0; rep < 2; ++rep) {
      engine.clear_prefix_cache();
      cold = std::min(cold, engine.generate({r})[0].ttft_s);
      warm = std::min(warm, engine.generate({r})[0].ttft_s);
    }
    j["prefix_cold_ttft_s"] = cold;
    j["prefix_hit_ttft_s"] = warm;
    j["prefix_hit_ttft_speedup"] = cold / warm;
  }

  // The engine's own peak, before the probes add their 1 GiB read buffer and GEMM operands.
  const double rss_engine = peak_rss_mb();
  log("bandwidth and GEMM peak probes");
  const double bw = measure_read_bandwidth_gbs(size_t(1) << 30, num_threads(), o.probe_seconds);
  const double peak = measure_gemm_peak_gflops(o.compute, num_threads(), o.probe_seconds);
  const double peak_f32 = o.compute == Compute::F32 ? peak : measure_gemm_peak_gflops(Compute::F32, num_threads(), o.probe_seconds);
  j["measured_bandwidth_gb_s"] = bw;
  j["decode_bandwidth_gb_s"] = d1.bytes_per_step / d1.mean_s / 1e9;
  j["gemm_peak_gflops"] = peak;
  j["gemm_peak_f32_gflops"] = peak_f32;
  j["prefill_peak_fraction"] = j["prefill_gflops"].get<double>() / peak;
  j["prefill_f32_peak_fraction"] = j["prefill_gflops"].get<double>() / peak_f32;
  j["peak_rss_mb"] = rss_engine;
  j["peak_rss_with_probes_mb"] = peak_rss_mb();
  j["weights_mb"] = model.store() ? double(model.store()->total_bytes()) / 1e6 : 0.0;
  double owned = 0;
  for (const auto& b : model.weights().owned) owned += double(b.size()) * 4.0;
  owned += double(model.weights().copies.bytes());
  const double copied = double(model.weights().copied_bytes);
  j["weights_copied_mb"] = copied / 1e6;  // the checkpoint's tensors held in memory (0 with --mmap)
  j["weight_f32_copies_mb"] = (owned - copied) / 1e6;
  j["kv_cache_mb"] = double(cache.capacity_tokens()) * double(cache.bytes_per_token()) / 1e6;
  if (o.long_context > 0) {
    // Batch 1 at a long context: the latent rows of long_context positions are filled with
    // N(0, 1) values instead of computed by a prefill (minutes at 32k on a laptop); attention
    // reads and multiplies as many rows whatever their values, so the step costs the same. Run
    // last: its cache is not part of the engine's peak RSS above.
    log("decode batch 1 at the long context");
    const int64_t steps = std::max<int64_t>(8, o.decode_steps / 2);
    KVCache lc(c, blocks_of(o.long_context + steps + 8), 1, kBlockTokens, -1, kv_dtype);
    const int64_t s = lc.add_sequence();
    std::vector<int32_t> ctx_ids(size_t(o.long_context), 0);
    StepBatch fill;
    lc.append(fill, s, ctx_ids.data(), o.long_context);
    std::vector<float> row(size_t(lc.pool().row_width()));
    const auto& table = lc.blocks(s);
    for (int64_t l = 0; l < lc.pool().num_layers(); ++l)
      for (int64_t p = 0; p < o.long_context; ++p) {
        for (float& x : row) x = float(rng.normal());
        lc.pool().store(l, table[size_t(p / kBlockTokens)], p % kBlockTokens, row.data());
      }
    const int64_t row0 = 0;
    double total = 0;
    const double p0 = probe();
    for (int64_t step = 0; step < steps + 2; ++step) {
      StepBatch db;
      const int32_t t = int32_t(rng.below(uint64_t(V)));
      lc.append(db, s, &t, 1);
      Stopwatch sw;
      model.forward(db, lc.pool(), {&row0, 1}, logits.data(), fo, arena);
      if (step >= 2) total += sw.elapsed();  // the first steps warm caches
    }
    const double p1 = probe();
    const double bytes = double(model.decode_weight_bytes_per_token()) + double(o.long_context) * kv_token_bytes;
    j["long_context"] = o.long_context;
    j["long_context_decode_tokens_per_s"] = double(steps) / total;
    j["long_context_bytes_per_token"] = bytes;  // weights (k of E experts) + the cache rows read
    j["long_context_bandwidth_fraction"] = bytes * double(steps) / total / 1e9 / (0.5 * (p0 + p1));
  }
  return j;
}

}  // namespace qs
