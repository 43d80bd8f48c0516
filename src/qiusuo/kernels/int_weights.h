// Group-wise integer weights in the GPTQ layout, as AutoGPTQ / transformers / vLLM write and read
// them with quantization_config {"quant_method": "gptq", "bits": 4 or 8, "group_size": G,
// "sym": true, "desc_act": false, "checkpoint_format": "gptq"}. For a linear layer `<name>`
// with out_features N and in_features K (per = 32 / bits values per 32-bit word):
//   <name>.qweight  I32 [K / per, N]   word (w, n) holds columns w*per .. w*per+per-1 of output n,
//                                      value j at bits j*bits: u = q + z, unsigned
//   <name>.scales   F16 [K / G, N]     the scale s of (group, output)
//   <name>.qzeros   I32 [K / G, N / per]  the zero point z packed the same way along N; stored as
//                                      z - 1 (format "gptq": 7 for 4 bits, 127 for 8) or as z
//                                      ("gptq_v2": 8, 128). Symmetric only: every zero is z.
//   <name>.g_idx    I32 [K]            optional; must be c / G for column c (no act-order)
// so W[n][c] = (u - z) * s[c / G][n]. int_weights_from_gptq validates these tensors (shapes,
// dtypes, symmetric zeros, no act-order: each a clear error naming the tensor) and repacks them
// into the kernels' tiled layout (WeightMatrix I8 / I4, linear.h).
#pragma once
#include <cstdint>
#include <string>

#include "qiusuo/core/buffer.h"
#include "qiusuo/core/tensor.h"
#include "qiusuo/kernels/linear.h"

namespace qs {

struct GptqTensors {
  const TensorView* qweight = nullptr;
  const TensorView* scales = nullptr;
  const TensorView* qzeros = nullptr;
  const TensorView* g_idx = nullptr;  // optional
};

// The matrix these tensors describe — dtype I8 / I4, rows, cols, group; no data — from their
// headers alone (dtypes and shapes checked, no value read): an expert another rank holds.
WeightMatrix gptq_layout(const std::string& name, const GptqTensors& t, int64_t rows, int64_t cols);
// The same after reading and checking the small tensors' values as well (symmetric zeros, no
// act-order): everything a repack checks, without the repack (`qiusuo info`).
WeightMatrix gptq_described(const std::string& name, const GptqTensors& t, int64_t rows, int64_t cols);

// W for a layer of `rows` outputs and `cols` inputs; bits and group size are read from the
// shapes. `storage` receives the repacked words and scales (one aligned allocation, kept alive
// as long as the returned matrix): a buffer of its own, or a piece of a model's arena (a
// loaded model's thousands of experts in huge pages); `name` is used in error messages.
WeightMatrix int_weights_from_gptq(const std::string& name, const GptqTensors& t, int64_t rows, int64_t cols,
                                   Buffer<float>& storage);
WeightMatrix int_weights_from_gptq(const std::string& name, const GptqTensors& t, int64_t rows, int64_t cols,
                                   HugePageArena& storage);

}  // namespace qs
