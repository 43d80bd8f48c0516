// Model FLOPs utilization of a training loop: tokens/s × training FLOPs per token
// (model/flops.h) over the BF16 (AMX where present) and F32 GEMM peaks measured on this machine
// when the meter is made.
#pragma once

#include "qiusuo/model/train_ops.h"

namespace qs {

struct MfuMeter {
  double flops_per_token = 0;
  double peak_bf16_gflops = 0, peak_f32_gflops = 0;

  // Measures both peaks for probe_seconds each with the current thread count.
  MfuMeter(double flops_per_token, double probe_seconds = 0.5);
  double bf16(double tokens_per_s) const { return tokens_per_s * flops_per_token / (peak_bf16_gflops * 1e9); }
  double f32(double tokens_per_s) const { return tokens_per_s * flops_per_token / (peak_f32_gflops * 1e9); }
  // Against the peak of the run's precision: F32 for fp32, BF16 otherwise.
  double of(TrainPrecision p, double tokens_per_s) const {
    return p == TrainPrecision::F32 ? f32(tokens_per_s) : bf16(tokens_per_s);
  }
};

}  // namespace qs
