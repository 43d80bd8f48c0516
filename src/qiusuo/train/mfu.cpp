#include "qiusuo/train/mfu.h"

#include "qiusuo/core/parallel.h"
#include "qiusuo/kernels/probe.h"

namespace qs {

MfuMeter::MfuMeter(double flops, double probe_seconds)
    : flops_per_token(flops),
      peak_bf16_gflops(measure_gemm_peak_gflops(Compute::BF16, num_threads(), probe_seconds)),
      peak_f32_gflops(measure_gemm_peak_gflops(Compute::F32, num_threads(), probe_seconds)) {}

}  // namespace qs
