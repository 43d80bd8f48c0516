// Machine peaks (see probe.h), measured with the same thread pool and kernels as the figures
// compared with them.
//
// Read bandwidth: a `bytes` array (first touched by the threads that read it) is cut into one
// contiguous share per thread; each thread reads its share as 4 sequential streams in lockstep
// (cpu/probe_<isa>.cpp). A pass is timed from the start to the end of the parallel region; the
// best pass within `seconds` (at least 3 passes) is reported.
// GEMM peak: gemm_f32 or gemm_bf16 (the linear/training entry points) on M = N = K = 2048,
// best of repeated calls within `seconds`; the first call (primitive creation) is not timed.
#include "qiusuo/kernels/probe.h"

#include <omp.h>

#include <algorithm>
#include <cstring>

#include "qiusuo/core/buffer.h"
#include "qiusuo/core/parallel.h"
#include "qiusuo/core/timer.h"
#include "qiusuo/kernels/cpu/cpu_kernels.h"
#include "qiusuo/kernels/gemm.h"

namespace qs {
namespace {
constexpr int kStreams = 4;
volatile float g_sink;

// Runs fn with qs::num_threads() temporarily set to `threads` (0: unchanged).
template <typename Fn>
auto with_threads(int threads, Fn&& fn) {
  const int saved = num_threads();
  if (threads > 0) set_num_threads(threads);
  struct Restore {
    int n;
    ~Restore() { set_num_threads(n); }
  } restore{saved};
  return fn();
}
}  // namespace

double measure_read_bandwidth_gbs(size_t bytes, int threads, double seconds) {
  return with_threads(threads, [&] {
    const int nt = num_threads();
    const int64_t per_stream = int64_t(bytes / sizeof(float)) / (nt * kStreams) / 64 * 64;
    const int64_t per_thread = per_stream * kStreams;
    if (per_stream <= 0) return 0.0;
    Buffer<float> buf(size_t(per_thread * nt), false);
    float* base = buf.data();
#pragma omp parallel num_threads(nt)
    {
      float* p = base + omp_get_thread_num() * per_thread;
      for (int64_t i = 0; i < per_thread; ++i) p[i] = float(i & 7) * 0.125f;
    }
    const cpu::Kernels& k = cpu::kernels();
    double best = 0;
    Stopwatch total;
    for (int pass = 0; pass < 3 || total.elapsed() < seconds; ++pass) {
      float sum = 0;
      Stopwatch sw;
#pragma omp parallel num_threads(nt) reduction(+ : sum)
      {
        const float* p = base + omp_get_thread_num() * per_thread;
        const float* streams[kStreams];
        for (int s = 0; s < kStreams; ++s) streams[s] = p + s * per_stream;
        sum += k.read_streams(streams, kStreams, per_stream);
      }
      const double t = sw.elapsed();
      g_sink = sum;
      best = std::max(best, double(per_thread * nt) * sizeof(float) / t / 1e9);
      if (pass > 100) break;
    }
    return best;
  });
}

double measure_gemm_peak_gflops(Compute compute, int threads, double seconds) {
  return with_threads(threads, [&] {
    constexpr int64_t n = 2048;
    Buffer<float> C(size_t(n * n));
    Buffer<float> Af, Bf;
    Buffer<uint16_t> Ab, Bb;
    if (compute == Compute::F32) {
      Af.resize(size_t(n * n), false);
      Bf.resize(size_t(n * n), false);
      for (int64_t i = 0; i < n * n; ++i) Af[size_t(i)] = Bf[size_t(i)] = float(i % 13) * 0.0625f;
    } else {
      Ab.resize(size_t(n * n), false);
      Bb.resize(size_t(n * n), false);
      for (int64_t i = 0; i < n * n; ++i) Ab[size_t(i)] = Bb[size_t(i)] = f32_to_bf16(float(i % 13) * 0.0625f);
    }
    auto run = [&] {
      if (compute == Compute::F32) gemm_f32(false, false, n, n, n, 1.0f, Af.data(), n, Bf.data(), n, 0.0f, C.data(), n);
      else gemm_bf16(false, false, n, n, n, 1.0f, Ab.data(), n, Bb.data(), n, 0.0f, C.data(), n);
    };
    run();  // warm-up: primitive creation, page faults
    double best = 0;
    Stopwatch total;
    for (int it = 0; it < 2 || total.elapsed() < seconds; ++it) {
      Stopwatch sw;
      run();
      best = std::max(best, 2.0 * double(n) * n * n / sw.elapsed() / 1e9);
      if (it > 1000) break;
    }
    return best;
  });
}

}  // namespace qs
