// Kernel micro-benchmarks: decode at memory bandwidth, prefill GEMM throughput.
//
//   kernels_bench --benchmark_filter=Gemv        exact-F32 streaming GEMV (Compute::F32), bytes/s
//                                                and fraction of the read bandwidth probed right
//                                                before and after the benchmark's timed loop
//   kernels_bench --benchmark_filter=Stream      linear() in Compute::BF16 at decode sizes
//                                                (M = 1, 8, 32), same counters
//   kernels_bench --benchmark_filter=MoeDecode   a MoE layer's experts at batch 1 (linear_batch over
//                                                matrices beyond the last-level cache)
//   kernels_bench --benchmark_filter=Linear|Gemm prefill: linear() (batch-invariant kernels) vs
//                                                the former oneDNN path (cpu::linear_gemm), GFLOP/s
//                                                and fraction of the measured BF16 GEMM peak
//
// Weight shapes [rows = out, cols = in] (DeepSeek-V2-Lite): expert 1408 x 2048 (gate/up),
// head 102400 x 2048; "big" = ~420 MB (BF16 102400 x 2048, FP8 204800 x 2048) to exceed the
// last-level cache. Threads: qs::num_threads() (OMP_NUM_THREADS).
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "qiusuo/core/buffer.h"
#include "qiusuo/core/cpu.h"
#include "qiusuo/core/dtype.h"
#include "qiusuo/core/parallel.h"
#include "qiusuo/kernels/cpu/cpu_kernels.h"
#include "qiusuo/kernels/gemm.h"
#include "qiusuo/kernels/int_weights.h"
#include "qiusuo/kernels/linear.h"
#include "qiusuo/kernels/probe.h"

namespace {
using qs::DType;

// Read bandwidth of this machine with the benchmark's thread count, probed right before a
// benchmark's timed loop and again right after it: a host's level moved between 35 and 80 GB/s
// within minutes, so one probe per run gave fractions above 1 later in the run. The counters
// state the mean of the two (read_bw_GBps, the base of frac_of_bw) and how far they were apart
// (read_bw_drift: |after - before| / mean; a figure with a large drift is not worth comparing).
struct BandwidthAround {
  double before = probe();
  static double probe() { return qs::measure_read_bandwidth_gbs(size_t(1) << 30, 0, 0.25); }
  // Sets read_bw_GBps, read_bw_drift and frac_of_bw (bytes read over the timed loop).
  void report(benchmark::State& state, double bytes) const {
    const double after = probe(), bw = 0.5 * (before + after);
    state.counters["read_bw_GBps"] = bw;
    state.counters["read_bw_drift"] = std::fabs(after - before) / bw;
    state.counters["frac_of_bw"] = benchmark::Counter(bytes / 1e9 / bw, benchmark::Counter::kIsRate);
  }
};
// BF16 GEMM peak (oneDNN on 2048^3, best of 1 s; measured once per run).
double bf16_peak_gflops() {
  static const double g = qs::measure_gemm_peak_gflops(qs::Compute::BF16, 0, 1.0);
  return g;
}

// Weights with normal values only (no NaN / subnormal codes), filled fast.
struct BenchWeights {
  qs::WeightMatrix W;
  qs::Buffer<uint8_t> data;
  qs::Buffer<float> scales;
  BenchWeights(DType dt, int64_t rows, int64_t cols) {
    if (dt == DType::I8 || dt == DType::I4) {  // random GPTQ words, group 128, repacked
      const int bits = dt == DType::I8 ? 8 : 4;
      const int64_t per = 32 / bits, group = 128;
      qs::Buffer<uint32_t> qw(size_t(cols / per * rows), false), qz(size_t(cols / group * (rows / per)), false);
      qs::Buffer<uint16_t> sc(size_t(cols / group * rows), false);
      uint64_t s = 0x9E3779B97F4A7C15ull;
      for (size_t i = 0; i < qw.size(); ++i) { s ^= s << 13; s ^= s >> 7; s ^= s << 17; qw[i] = uint32_t(s); }
      for (size_t i = 0; i < sc.size(); ++i) sc[i] = qs::f32_to_f16(1e-3f * float(1 + i % 7));
      for (size_t i = 0; i < qz.size(); ++i) qz[i] = bits == 4 ? 0x77777777u : 0x7F7F7F7Fu;
      const qs::TensorView vq{DType::I32, {cols / per, rows}, qw.data(), qw.size() * 4};
      const qs::TensorView vs{DType::F16, {cols / group, rows}, sc.data(), sc.size() * 2};
      const qs::TensorView vz{DType::I32, {cols / group, rows / per}, qz.data(), qz.size() * 4};
      W = qs::int_weights_from_gptq("bench", {&vq, &vs, &vz, nullptr}, rows, cols, scales);
      return;
    }
    W.dtype = dt;
    W.rows = rows;
    W.cols = cols;
    const size_t n = size_t(rows * cols);
    data.resize(n * qs::dtype_size(dt) + 64, false);
    uint64_t s = 0x9E3779B97F4A7C15ull;
    auto next = [&] { s ^= s << 13; s ^= s >> 7; s ^= s << 17; return s; };
    switch (dt) {
      case DType::F32:
        for (size_t i = 0; i < n; ++i) reinterpret_cast<float*>(data.data())[i] = float(next() % 1000) * 1e-3f - 0.5f;
        break;
      case DType::BF16:
      case DType::F16: {
        const uint64_t keep = dt == DType::BF16 ? 0x807F807F807F807Full : 0x83FF83FF83FF83FFull;
        const uint64_t one = dt == DType::BF16 ? 0x3F003F003F003F00ull : 0x3800380038003800ull;
        for (size_t i = 0; i < n / 4; ++i) {
          const uint64_t v = (next() & keep) | one;
          std::memcpy(data.data() + 8 * i, &v, 8);
        }
        break;
      }
      case DType::F8_E4M3:
        for (size_t i = 0; i < n / 8; ++i) {
          const uint64_t v = (next() & 0x8787878787878787ull) | 0x3838383838383838ull;
          std::memcpy(data.data() + 8 * i, &v, 8);
        }
        break;
      default: break;
    }
    if (dt == DType::F8_E4M3) {
      scales.resize(size_t((rows + 127) / 128 * W.scale_cols()), false);
      for (size_t i = 0; i < scales.size(); ++i) scales[i] = 1e-3f * float(1 + i % 7);
      W.scale_inv = scales.data();
    }
    W.data = data.data();
  }
};

// args: dtype, rows, cols, M
void BM_Gemv(benchmark::State& state) {
  const auto dt = DType(state.range(0));
  const int64_t rows = state.range(1), cols = state.range(2), M = state.range(3);
  BenchWeights w(dt, rows, cols);
  std::vector<float> x(size_t(M * cols), 0.01f), y(size_t(M * rows));
  qs::gemv(x.data(), cols, M, w.W, y.data(), rows);  // warm-up (page faults)
  const BandwidthAround bw;
  for (auto _ : state) {
    qs::gemv(x.data(), cols, M, w.W, y.data(), rows);
    benchmark::DoNotOptimize(y.data());
  }
  const double bytes = double(w.W.bytes()) * double(state.iterations());
  state.SetBytesProcessed(int64_t(bytes));
  state.counters["weight_MB"] = double(w.W.bytes()) / 1e6;
  bw.report(state, bytes);
  state.SetLabel(std::string(qs::dtype_name(dt)) + " " + qs::isa_name(qs::best_isa()) + " threads=" +
                 std::to_string(qs::num_threads()));
}

void gemv_args(benchmark::internal::Benchmark* b) {
  for (DType dt : {DType::BF16, DType::F8_E4M3}) {
    for (int64_t M : {1, 8}) {
      b->Args({int64_t(dt), 1408, 2048, M});    // expert gate/up
      b->Args({int64_t(dt), 2048, 1408, M});    // expert down
      b->Args({int64_t(dt), 102400, 2048, M});  // head
    }
    b->Args({int64_t(dt), dt == DType::BF16 ? 102400 : 204800, 2048, 1});  // ~420 MB
  }
  b->Args({int64_t(DType::F32), 16384, 2048, 1});
  b->Args({int64_t(DType::F16), 16384, 2048, 1});
}
BENCHMARK(BM_Gemv)->Apply(gemv_args)->ArgNames({"dtype", "rows", "cols", "M"})->UseRealTime()->Unit(benchmark::kMicrosecond);

// linear() in BF16 compute at decode sizes. args: dtype, rows, cols, M
void BM_Stream(benchmark::State& state) {
  const auto dt = DType(state.range(0));
  const int64_t rows = state.range(1), cols = state.range(2), M = state.range(3);
  BenchWeights w(dt, rows, cols);
  std::vector<float> x(size_t(M * cols), 0.01f), y(size_t(M * rows));
  qs::linear(x.data(), M, w.W, y.data(), qs::Compute::BF16);  // warm-up (page faults)
  const BandwidthAround bw;
  for (auto _ : state) {
    qs::linear(x.data(), M, w.W, y.data(), qs::Compute::BF16);
    benchmark::DoNotOptimize(y.data());
  }
  const double bytes = double(w.W.bytes()) * double(state.iterations());
  state.SetBytesProcessed(int64_t(bytes));
  bw.report(state, bytes);
  state.counters["GFLOPps"] = benchmark::Counter(2.0 * double(M) * rows * cols * 1e-9 * double(state.iterations()),
                                                 benchmark::Counter::kIsRate);
  state.SetLabel(std::string(qs::dtype_name(dt)) + " " + qs::isa_name(qs::best_isa()) + " threads=" +
                 std::to_string(qs::num_threads()));
}

void stream_args(benchmark::internal::Benchmark* b) {
  for (DType dt : {DType::BF16, DType::F8_E4M3, DType::I8, DType::I4}) {
    for (int64_t M : {1, 8, 32}) {
      b->Args({int64_t(dt), 1408, 2048, M});    // expert gate/up
      b->Args({int64_t(dt), 2048, 1408, M});    // expert down
      b->Args({int64_t(dt), 102400, 2048, M});  // head
    }
    b->Args({int64_t(dt), dt == DType::BF16 ? 102400 : dt == DType::I4 ? 409600 : 204800, 2048, 1});  // ~420 MB
  }
}
BENCHMARK(BM_Stream)->Apply(stream_args)->ArgNames({"dtype", "rows", "cols", "M"})->UseRealTime()->Unit(benchmark::kMicrosecond);

// A MoE layer's decode at batch 1, the regime of a full-depth model: 8 of 64 experts' gate and
// up (1408 x 2048) through one linear_batch, then their down (2048 x 1408), each step picking
// other experts, so ~300-430 MB of weights in 192 separate buffers stream from memory in chunks
// of 1-1.5 MB (a whole matrix is what one step reads of it). args: dtype
void BM_MoeDecode(benchmark::State& state) {
  const auto dt = DType(state.range(0));
  constexpr int kExperts = 64, kActive = 8;
  std::vector<std::unique_ptr<BenchWeights>> gate, up, down;
  for (int e = 0; e < kExperts; ++e) {
    gate.push_back(std::make_unique<BenchWeights>(dt, 1408, 2048));
    up.push_back(std::make_unique<BenchWeights>(dt, 1408, 2048));
    down.push_back(std::make_unique<BenchWeights>(dt, 2048, 1408));
  }
  std::vector<float> x(2048, 0.01f), h(size_t(2 * kActive * 1408)), y(size_t(kActive * 2048));
  uint64_t s = 7;
  double bytes = 0;
  auto step = [&] {
    std::vector<qs::LinearCall> gu, dn;
    for (int i = 0; i < kActive; ++i) {
      s = s * 6364136223846793005ull + 1442695040888963407ull;
      const int e = int((s >> 33) % kExperts);  // repeats allowed: routing may repeat across steps
      gu.push_back({x.data(), 2048, 1, &gate[size_t(e)]->W, h.data() + 2 * i * 1408, 1408});
      gu.push_back({x.data(), 2048, 1, &up[size_t(e)]->W, h.data() + (2 * i + 1) * 1408, 1408});
      dn.push_back({h.data() + 2 * i * 1408, 1408, 1, &down[size_t(e)]->W, y.data() + i * 2048, 2048});
      bytes += double(gate[size_t(e)]->W.bytes() + up[size_t(e)]->W.bytes() + down[size_t(e)]->W.bytes());
    }
    qs::linear_batch(gu, qs::Compute::BF16);
    qs::linear_batch(dn, qs::Compute::BF16);
  };
  for (int i = 0; i < 16; ++i) step();  // warm-up: page faults
  bytes = 0;
  const BandwidthAround bw;
  for (auto _ : state) {
    step();
    benchmark::DoNotOptimize(y.data());
  }
  state.SetBytesProcessed(int64_t(bytes));
  bw.report(state, bytes);
  state.SetLabel(std::string(qs::dtype_name(dt)) + " " + qs::isa_name(qs::best_isa()) + " threads=" +
                 std::to_string(qs::num_threads()));
}
BENCHMARK(BM_MoeDecode)->ArgName("dtype")->Arg(int64_t(DType::BF16))->Arg(int64_t(DType::F8_E4M3))
    ->Arg(int64_t(DType::I8))->Arg(int64_t(DType::I4))->UseRealTime()->Unit(benchmark::kMicrosecond);

// args: dtype, rows, cols, M, compute (0 = F32, 1 = BF16), path (0 = linear(), 1 = the former
// oneDNN path cpu::linear_gemm)
void BM_Linear(benchmark::State& state) {
  const auto dt = DType(state.range(0));
  const int64_t rows = state.range(1), cols = state.range(2), M = state.range(3);
  const auto compute = state.range(4) ? qs::Compute::BF16 : qs::Compute::F32;
  const bool onednn = state.range(5) != 0;
  const double peak = bf16_peak_gflops();
  BenchWeights w(dt, rows, cols);
  std::vector<float> x(size_t(M * cols), 0.01f), y(size_t(M * rows));
  auto run = [&] {
    if (onednn) qs::cpu::linear_gemm(x.data(), cols, M, w.W, y.data(), rows, compute);
    else qs::linear(x.data(), M, w.W, y.data(), compute);
  };
  run();  // warm-up: oneDNN primitive creation, page faults
  for (auto _ : state) {
    run();
    benchmark::DoNotOptimize(y.data());
  }
  const double flops = 2.0 * double(M) * rows * cols * double(state.iterations());
  state.counters["GFLOPps"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsRate);
  state.counters["bf16_peak_GFLOPps"] = peak;
  state.counters["frac_of_peak"] = benchmark::Counter(flops * 1e-9 / peak, benchmark::Counter::kIsRate);
  state.SetLabel(std::string(qs::dtype_name(dt)) + (state.range(4) ? " compute=BF16" : " compute=F32") +
                 (onednn ? " oneDNN (former path)" : " linear()"));
}

void linear_args(benchmark::internal::Benchmark* b) {
  for (int64_t compute : {1, 0}) {
    for (DType dt : {DType::BF16, DType::F8_E4M3, DType::I8, DType::I4}) {
      for (int64_t path : {0, 1}) {
        b->Args({int64_t(dt), 2048, 2048, 512, compute, path});  // prefill, 512 tokens
        b->Args({int64_t(dt), 1408, 2048, 128, compute, path});  // MoE expert, many tokens
        b->Args({int64_t(dt), 1408, 2048, 16, compute, path});   // MoE expert, few tokens
      }
    }
  }
}
BENCHMARK(BM_Linear)->Apply(linear_args)->ArgNames({"dtype", "rows", "cols", "M", "bf16", "onednn"})->UseRealTime()->Unit(benchmark::kMicrosecond);

// MoE experts: a different M (9..256 tokens) every call, as routing gives. linear() has no
// per-shape state; the former oneDNN path padded M to buckets and cached one primitive per
// bucket. args: dtype, compute (0 F32, 1 BF16), path (0 linear(), 1 oneDNN)
void BM_LinearMoE(benchmark::State& state) {
  const auto dt = DType(state.range(0));
  const auto compute = state.range(1) ? qs::Compute::BF16 : qs::Compute::F32;
  const bool onednn = state.range(2) != 0;
  const int64_t rows = 1408, cols = 2048;
  BenchWeights w(dt, rows, cols);
  std::vector<int64_t> Ms(64);
  uint64_t s = 12345;
  for (auto& m : Ms) { s = s * 6364136223846793005ull + 1442695040888963407ull; m = 9 + int64_t((s >> 33) % 248); }
  std::vector<float> x(size_t(256 * cols), 0.01f), y(size_t(256 * rows));
  double flops = 0;
  for (int64_t M : Ms) flops += 2.0 * double(M) * rows * cols;
  auto run = [&](int64_t M) {
    if (onednn) qs::cpu::linear_gemm(x.data(), cols, M, w.W, y.data(), rows, compute);
    else qs::linear(x.data(), M, w.W, y.data(), compute);
  };
  for (int64_t M : Ms) run(M);  // warm-up: primitives
  for (auto _ : state)
    for (int64_t M : Ms) {
      run(M);
      benchmark::DoNotOptimize(y.data());
    }
  state.counters["GFLOPps"] = benchmark::Counter(flops * 1e-9 * double(state.iterations()), benchmark::Counter::kIsRate);
  state.SetLabel(std::string(qs::dtype_name(dt)) + (state.range(1) ? " compute=BF16" : " compute=F32") +
                 (onednn ? " oneDNN (former path)" : " linear()") + ", 64 calls, M in [9, 256]");
}
BENCHMARK(BM_LinearMoE)
    ->Args({int64_t(DType::BF16), 1, 0})->Args({int64_t(DType::BF16), 1, 1})
    ->Args({int64_t(DType::F8_E4M3), 1, 0})->Args({int64_t(DType::F8_E4M3), 1, 1})
    ->Args({int64_t(DType::BF16), 0, 0})
    ->ArgNames({"dtype", "bf16", "onednn"})->UseRealTime()->Unit(benchmark::kMillisecond);

// args: M, N, K, trans_a, trans_b, bf16
void BM_Gemm(benchmark::State& state) {
  const int64_t M = state.range(0), N = state.range(1), K = state.range(2);
  const bool ta = state.range(3), tb = state.range(4), bf16 = state.range(5);
  std::vector<float> A(size_t(M * K), 0.5f), B(size_t(K * N), 0.25f), C(size_t(M * N));
  std::vector<uint16_t> Ab(A.size(), qs::f32_to_bf16(0.5f)), Bb(B.size(), qs::f32_to_bf16(0.25f));
  const int64_t lda = ta ? M : K, ldb = tb ? K : N;
  auto run = [&] {
    if (bf16) qs::gemm_bf16(ta, tb, M, N, K, 1.0f, Ab.data(), lda, Bb.data(), ldb, 0.0f, C.data(), N);
    else qs::gemm_f32(ta, tb, M, N, K, 1.0f, A.data(), lda, B.data(), ldb, 0.0f, C.data(), N);
  };
  run();
  for (auto _ : state) {
    run();
    benchmark::DoNotOptimize(C.data());
  }
  state.counters["GFLOPps"] = benchmark::Counter(2.0 * double(M) * N * K * 1e-9 * double(state.iterations()),
                                                 benchmark::Counter::kIsRate);
}
void gemm_args(benchmark::internal::Benchmark* b) {
  for (int64_t bf16 : {0, 1})
    for (int64_t ta : {0, 1})
      for (int64_t tb : {0, 1}) b->Args({1024, 2048, 2048, ta, tb, bf16});
  b->Args({2048, 2048, 2048, 0, 0, 1});
}
BENCHMARK(BM_Gemm)->Apply(gemm_args)->ArgNames({"M", "N", "K", "ta", "tb", "bf16"})->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_ReadBandwidth(benchmark::State& state) {
  double gbs = 0;
  for (auto _ : state) gbs = qs::measure_read_bandwidth_gbs(size_t(1) << 30, 0, 1.0);
  state.counters["GBps"] = gbs;
}
BENCHMARK(BM_ReadBandwidth)->Iterations(1)->Unit(benchmark::kMillisecond);

void BM_GemmPeak(benchmark::State& state) {
  double g = 0;
  for (auto _ : state) g = qs::measure_gemm_peak_gflops(state.range(0) ? qs::Compute::BF16 : qs::Compute::F32, 0, 1.0);
  state.counters["GFLOPps"] = g;
}
BENCHMARK(BM_GemmPeak)->Arg(0)->Arg(1)->ArgName("bf16")->Iterations(1)->Unit(benchmark::kMillisecond);

}  // namespace
