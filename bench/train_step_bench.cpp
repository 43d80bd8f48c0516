// The training step on the train-small benchmark model (../shared/bench/train-small.json,
// batch 16 x 512): one TrainStep::run (forward + backward) and one full optimizer step (+ clip,
// AdamW, bias update), against the GEMM peak measured in the same process.
//
// Two efficiency figures per run, both model FLOPs (model/flops.h) over the BF16 (or F32) GEMM
// peak: `mfu` by wall time (what a user sees on an idle machine), and `mfu_cpu` by process CPU
// time against the peak GEMM's own CPU time — the same ratio, but insensitive to other
// processes taking the cores away (time off the CPU counts for neither), so it can be measured
// on a shared machine. Run with --benchmark_repetitions for ranges; threads from OMP_NUM_THREADS.
#include <benchmark/benchmark.h>

#include <ctime>

#include "qiusuo/core/parallel.h"
#include "qiusuo/core/rng.h"
#include "qiusuo/core/timer.h"
#include "qiusuo/kernels/gemm.h"
#include "qiusuo/kernels/convert.h"
#include "qiusuo/model/flops.h"
#include "qiusuo/train/balance.h"
#include "qiusuo/train/optimizer.h"
#include "qiusuo/train/train_step.h"

namespace qs {
namespace {

double cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

struct Peak {
  double wall_gflops = 0, cpu_gflops = 0;  // best over the repetitions
};

// The best 2048³ GEMM of a few, by wall time and by process CPU time.
Peak gemm_peak(bool bf16) {
  constexpr int64_t n = 2048;
  std::vector<float> C(size_t(n * n)), A(size_t(n * n)), B(size_t(n * n));
  std::vector<uint16_t> Ah(size_t(n * n)), Bh(size_t(n * n));
  for (int64_t i = 0; i < n * n; ++i) A[size_t(i)] = B[size_t(i)] = float(i % 13) * 0.0625f;
  f32_to_bf16(A.data(), Ah.data(), n * n);
  f32_to_bf16(B.data(), Bh.data(), n * n);
  Peak p;
  const double flops = 2.0 * double(n) * n * n;
  for (int it = 0; it < 12; ++it) {
    const double c0 = cpu_seconds();
    Stopwatch sw;
    if (bf16) gemm_bf16(false, false, n, n, n, 1.0f, Ah.data(), n, Bh.data(), n, 0.0f, C.data(), n);
    else gemm_f32(false, false, n, n, n, 1.0f, A.data(), n, B.data(), n, 0.0f, C.data(), n);
    const double w = sw.elapsed(), c = cpu_seconds() - c0;
    if (it == 0) continue;  // primitive creation, page faults
    p.wall_gflops = std::max(p.wall_gflops, flops / w / 1e9);
    p.cpu_gflops = std::max(p.cpu_gflops, flops / (c / double(num_threads())) / 1e9);
  }
  return p;
}

struct Setup {
  ModelConfig cfg = load_model_config(std::string(QS_FIXTURES) + "/../bench/train-small.json");
  int64_t B = 16, S = 512;
  TrainModel<float> model{cfg};
  std::vector<int32_t> windows;
  Setup() {
    model.init_random(1);
    Rng r(2);
    windows.resize(size_t(B * (S + 1)));
    for (auto& t : windows) t = int32_t(r.below(uint64_t(cfg.vocab_size)));
  }
};

void BM_TrainStep(benchmark::State& state) {
  const TrainPrecision prec = state.range(0) ? TrainPrecision::BF16 : TrainPrecision::F32;
  const bool full = state.range(1) != 0;  // + clip, AdamW, bias update
  static Setup* s = new Setup;             // shared by the cases: built once
  TrainStep<float> step(s->model, {s->B, s->S}, {prec, 0.3, 1e-4});
  AdamW opt(s->model.layout(), s->model.params().size(), {});
  const Peak peak = gemm_peak(prec != TrainPrecision::F32);
  const double flops = train_flops_per_token(s->cfg, s->S, true) * double(s->B * s->S);
  auto one = [&] {
    s->model.zero_grad();
    const StepResult r = step.run_windows(s->windows.data(), s->B, s->S, true);
    if (full) {
      clip_grad_norm(s->model.layout(), s->model.grads().data(), 1.0);
      opt.step(s->model.params().data(), s->model.grads().data(), 1e-5);
      update_correction_bias(s->model, r.expert_load, 1e-3);
    }
    benchmark::DoNotOptimize(r.objective);
  };
  one();  // warm-up: page faults, oneDNN primitives
  double wall = 0, cpu = 0;
  int64_t n = 0;
  for (auto _ : state) {
    const double c0 = cpu_seconds();
    Stopwatch sw;
    one();
    const double w = sw.elapsed();
    state.SetIterationTime(w);
    wall += w;
    cpu += cpu_seconds() - c0;
    ++n;
  }
  const double tokens = double(s->B * s->S);
  state.counters["tok_per_s"] = tokens * double(n) / wall;
  state.counters["peak_gflops"] = peak.wall_gflops;
  state.counters["mfu"] = flops * double(n) / wall / (peak.wall_gflops * 1e9);
  state.counters["mfu_cpu"] = flops * double(n) / (cpu / double(num_threads())) / (peak.cpu_gflops * 1e9);
  state.counters["threads"] = num_threads();
}
BENCHMARK(BM_TrainStep)
    ->ArgsProduct({{1, 0}, {0, 1}})
    ->ArgNames({"bf16", "optimizer"})
    ->Iterations(3)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace qs
