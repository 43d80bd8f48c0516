// Group-wise integer weight quantizer: one matrix W[rows][cols] (F32 rows) into the GPTQ tensors
// the loader and the ecosystem read (kernels/int_weights.h; symmetric, no act-order, round to
// nearest): per output n and group g of G columns, s = F16(max|w| / qmax) (qmax 7 for 4 bits,
// 127 for 8), q = clamp(nearest-even(w / s), -qmax, qmax) (0 where s is 0), u = q + z (z 8 or
// 128) packed along the columns into qweight [cols / per, rows]; scales F16 [cols / G, rows];
// qzeros [cols / G, rows / per] = z - 1 packed (checkpoint_format "gptq"); g_idx [cols] = c / G.
// So |w - (u - z) * s| <= s / 2 per element (tests/quant). The FP8 block quantizer is
// quantize_fp8_blocks in model/init.h (`qiusuo init --dtype fp8` uses it too).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace qs {

struct GptqOutput {
  std::vector<uint32_t> qweight;  // [cols / per, rows]
  std::vector<uint16_t> scales;   // [cols / group, rows] F16
  std::vector<uint32_t> qzeros;   // [cols / group, rows / per]
  std::vector<int32_t> g_idx;     // [cols]
};
// Checks (clear qs::Error naming `name`): bits 4 or 8, group a multiple of 32 dividing cols,
// rows a multiple of 32 / bits.
void check_gptq_shape(const std::string& name, int64_t rows, int64_t cols, int bits, int64_t group);
// Sizes `out` for the layer: qweight and scales zeroed, qzeros and g_idx filled.
void init_gptq_output(int64_t rows, int64_t cols, int bits, int64_t group, GptqOutput* out);
// Rows [r0, r1) of the layer (F32, ld = cols) into `out` (initialized): only those rows' words
// and scales are written, so disjoint row ranges may run in parallel.
void quantize_gptq_rows(const float* w, int64_t r0, int64_t r1, int64_t rows, int64_t cols, int bits,
                        int64_t group, GptqOutput* out);

}  // namespace qs
