// Machine peaks measured in the same run as the figures compared with them.
#pragma once
#include <cstddef>

#include "qiusuo/kernels/linear.h"

namespace qs {

// Sustained read bandwidth in GB/s (1e9 bytes/s) with `threads` threads, each reading several
// independent streams of a `bytes`-sized array (>= 1 GiB so that caches do not count).
double measure_read_bandwidth_gbs(size_t bytes = size_t(1) << 30, int threads = 0,
                                  double seconds = 1.0);

// GEMM peak in GFLOP/s for the given compute precision (large square-ish products through the
// same gemm_f32 / gemm_bf16 entry points that prefill and training use).
double measure_gemm_peak_gflops(Compute compute, int threads = 0, double seconds = 1.0);

}  // namespace qs
