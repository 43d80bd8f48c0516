// End-to-end inference benchmark: prefill and decode throughput of a model, each figure set
// against a peak measured in the same run (read bandwidth probe, GEMM peak probe).
#pragma once
#include <cstdint>
#include <optional>

#include <nlohmann/json.hpp>

#include "qiusuo/kernels/linear.h"
#include "qiusuo/model/flops.h"  // forward_flops_per_token
#include "qiusuo/model/transformer.h"

namespace qs {

struct BenchOptions {
  int64_t prefill_tokens = 512;
  int64_t decode_context = 128;  // prompt length before timing decode
  int64_t decode_steps = 32;
  int64_t batch = 8;             // second decode figure
  int64_t long_context = 0;      // > 0: batch-1 decode also at this context (rows filled, not prefilled)
  Compute compute = Compute::BF16;  // prefill GEMM precision
  std::optional<KvDtype> kv_dtype;  // unset: the engine's default for `compute` (kv_dtype_of)
  double probe_seconds = 1.0;
  uint64_t seed = 0;
  bool verbose = false;
};

// Returns the JSON object `qiusuo bench --json` prints (fields documented in docs/cli.md).
nlohmann::json run_benchmark(const Model& model, const BenchOptions& opt);

// Peak resident set size of this process in MB.
double peak_rss_mb();

}  // namespace qs
