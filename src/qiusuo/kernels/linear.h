// Linear layers over stored weights: y[M, rows] = x[M, cols] · Wᵀ.
//
// Batch-invariant: output row m is a bitwise function of x row m and W alone — the same for any
// M, any place of the row in the batch, any strides and any thread count (on one machine and ISA
// choice). The generation engine relies on it: a greedy request gives the same tokens alone,
// among other requests, after a preemption by recompute or with a warm prefix cache. Every
// output element is therefore computed by one kernel with one fixed order of operations,
// whatever the batch size; tiles, panels and threads only decide where and when.
#pragma once
#include <cstdint>
#include <span>

#include "qiusuo/core/dtype.h"

namespace qs {

// A weight matrix as the kernels read it: W[rows = out_features, cols = in_features].
//  F32, BF16, F16, F8_E4M3: as stored in the checkpoint, row-major. For F8_E4M3,
//    scale_inv[ceil(rows/128)][ceil(cols/128)] (F32, row-major) multiplies every element of its
//    128x128 block: W[r][c] = fp8(data[r*cols + c]) * scale_inv[r/128][c/128] (edge blocks may be
//    partial).
//  I8, I4: symmetric group-wise integers (GPTQ with sym = true and desc_act = false, repacked on
//    load by int_weights_from_gptq, kernels/int_weights.h): W[r][c] = (u - z) * s[r][c / group]
//    with u the stored unsigned value (8 or 4 bits), z = 128 (I8) or 8 (I4) and s an F16 scale.
//    Layout (the VNNI kernels' order): tiles of 16 rows; in tile t, for each 32-bit word w (4
//    columns for I8, 8 for I4) the 16 rows' words, data[(t * words + w) * 16 + i] = row 16t + i,
//    columns [w * per, (w + 1) * per): byte j (I8) or bits 4j..4j+3 (I4) = column w * per + j, as
//    GPTQ packs them. group_scales[(t * (cols / group) + g) * 16 + i] = s[16t + i][g]. Rows past
//    `rows` in the last tile hold u = z and s = 0.
// `data` may point into an mmapped file: kernels never write it.
struct WeightMatrix {
  DType dtype = DType::F32;  // F32, BF16, F16, F8_E4M3, I8 or I4
  int64_t rows = 0, cols = 0;
  const void* data = nullptr;
  const float* scale_inv = nullptr;         // F8_E4M3 only
  const uint16_t* group_scales = nullptr;   // I8 / I4 only (F16)
  int64_t group = 0;                        // I8 / I4: columns per scale (32, 64 or 128)
  static constexpr int64_t kBlock = 128;
  static constexpr int64_t kIntTile = 16;   // I8 / I4: rows per tile

  int64_t scale_cols() const { return (cols + kBlock - 1) / kBlock; }
  bool is_int() const { return dtype == DType::I8 || dtype == DType::I4; }
  int64_t int_tiles() const { return (rows + kIntTile - 1) / kIntTile; }
  int64_t int_words() const { return cols / (dtype == DType::I8 ? 4 : 8); }  // words per row
  size_t bytes() const;  // bytes of `data` (+ scales) a full pass reads
  // Row r (0 <= r < rows), dequantized to F32 exactly (out[cols]).
  void dequant_row(int64_t r, float* out) const;
  // Rows [r0, r1) likewise, into out[(r - r0) * cols + c].
  void dequant_rows(int64_t r0, int64_t r1, float* out) const;
};

// The arithmetic of linear() (both modes are batch-invariant, for every weight dtype):
//  F32  exact: F32 products of x with the exactly dequantized weights (FP8: fp8 * scale_inv,
//       rounded once; I8/I4: (u - z) * s, exact), F32 accumulation in a fixed per-output order
//       (the streaming gemv kernels, run over blocks of 64 rows of x). The verification path:
//       `qiusuo logits`, --precision f32.
//  BF16 each row of x rounded to BF16 once (nearest even); weights as BF16 (BF16 as stored, F32
//       and F16 rounded to nearest even, FP8 E4M3 widened exactly with its 128x128 block scale
//       applied to each block's partial sums); exact products accumulated in F32 in a fixed
//       order: vdpbf16ps on AVX512_BF16, the same bits from FMAs on AVX2 and in the scalar
//       reference (cpu/linear_bf16_scalar.cpp states the order). The default generation path,
//       prefill and decode. Its cost in accuracy, measured with `qiusuo logits --mode decode`
//       on every model fixture against F32: see docs/benchmarks.md ("BF16 compute").
//       I8/I4 weights: x is quantized instead, per row and weight group, to int8 (symmetric,
//       scale max|x| / 127, nearest even), the group's products summed exactly in integers
//       (VNNI), then y += float(sum) * (scale_x * scale_w) once per group, in group order
//       (cpu/linear_int_scalar.cpp). As llama.cpp's Q8 activations; cost in docs/quantization.md.
enum class Compute { F32, BF16 };

// y[M, W.rows] = x[M, W.cols] · Wᵀ. x and y are row-major with the given row strides
// (ldx >= W.cols, ldy >= W.rows). Threads: uses the OpenMP pool (qs::num_threads()); runs on
// the calling thread alone inside a parallel region.
void linear(const float* x, int64_t ldx, int64_t M, const WeightMatrix& W, float* y, int64_t ldy,
            Compute compute = Compute::F32);
inline void linear(const float* x, int64_t M, const WeightMatrix& W, float* y,
                   Compute compute = Compute::F32) {
  linear(x, W.cols, M, W, y, W.rows, compute);
}

// Several independent products y_i = x_i · W_iᵀ. With BF16 compute and decode-sized calls
// (M <= 4 rows each) the weight chunks of all of them are handed out to the threads as one
// list, so the threads stream from one matrix into the next without a join between calls (a
// MoE layer's experts at batch 1: 2 parallel regions instead of 3 per expert); otherwise one
// linear() after another. Either way every output is bitwise what linear() gives.
struct LinearCall {
  const float* x;
  int64_t ldx, M;
  const WeightMatrix* W;
  float* y;
  int64_t ldy;
};
void linear_batch(std::span<const LinearCall> calls, Compute compute);

// Absorbed attention's products with rows of a stored weight matrix (any dtype), one query row:
//   weighted_rows_of: dst[c] += Σ_{i<n} p[i] · W[r0 + i][c] for c < W.cols, the rows in order;
//   dot_rows_of:      out[i] = x · W[r0 + i] for i < n.
// Bit for bit what vec_ops' weighted_rows / dot_rows give with the rows dequantized exactly
// (dequant_rows), which is how they run where no kernel reads the dtype as stored (FP8 on
// AVX512_VBMI does, widening each weight in registers, and I8 / I4 on AVX-512, gathering each
// row's columns from its tile in registers). Runs on the calling thread.
void weighted_rows_of(const WeightMatrix& W, int64_t r0, int64_t n, const float* p, float* dst);
void dot_rows_of(const WeightMatrix& W, int64_t r0, int64_t n, const float* x, float* out);

// The streaming F32 kernels alone (any M; linear() with Compute::F32 runs them over blocks of
// rows of x): exact F32 accumulation, weights read once per call.
void gemv(const float* x, int64_t ldx, int64_t M, const WeightMatrix& W, float* y, int64_t ldy);

}  // namespace qs
