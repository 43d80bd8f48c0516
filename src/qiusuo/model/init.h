// Random-weight checkpoints in exactly the Hugging Face layout of the real models: the same
// tensor names, dtypes (F32 / BF16, or FP8 E4M3 projections with F32 weight_scale_inv per
// 128x128 block and BF16 embeddings, norms, router, head as the official FP8 release),
// shards + index when large, and config.json with the real keys.
//
// Scales keep activations O(1) through any depth: projections ~ U(±√3/√fan_in) (unit
// variance outputs for unit inputs), output projections (o_proj, down_proj) further divided by
// √(2·layers) so the residual stream grows slowly; norms 1; embeddings unit variance.
// Deterministic: every tensor draws from its own stream seeded by (seed, tensor name).
#pragma once
#include <string>

#include "qiusuo/core/dtype.h"
#include "qiusuo/model/config.h"

namespace qs {

enum class InitDType { F32, BF16, FP8 };

struct InitOptions {
  InitDType dtype = InitDType::BF16;
  uint64_t seed = 0;
  size_t shard_bytes = size_t(4) << 30;
  bool verbose = false;
};

// Writes config.json and the safetensors files into `dir`. Returns bytes written.
size_t write_random_checkpoint(const ModelConfig& cfg, const std::string& dir, const InitOptions& opt);

// The standard deviation the initializer uses for a tensor (exposed for training init).
double init_std(const ModelConfig& cfg, const std::string& name, int64_t fan_in);

// FP8 block quantization of a row-major [rows, cols] F32 matrix: codes[rows*cols] and
// scale_inv[ceil(rows/128), ceil(cols/128)] with amax/448 per block (so w ≈ fp8 · scale_inv).
void quantize_fp8_blocks(const float* w, int64_t rows, int64_t cols, uint8_t* codes, float* scale_inv);

}  // namespace qs
