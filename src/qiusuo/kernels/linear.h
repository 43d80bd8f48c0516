// Linear layers over stored weights: y[M, rows] = x[M, cols] · Wᵀ.
//
// Dispatch on batch size (see DESIGN.md): few rows (decode) stream the weights once at memory
// bandwidth, widening BF16/F16/FP8 to F32 in registers (exact F32 math); many rows (prefill,
// training) tile into a GEMM (oneDNN: AMX for BF16 where present, AVX-512 F32 otherwise).
#pragma once
#include <cstdint>

#include "qiusuo/core/dtype.h"

namespace qs {

// A weight matrix exactly as stored in the checkpoint: W[rows = out_features, cols = in_features]
// row-major. For F8_E4M3, scale_inv[ceil(rows/128)][ceil(cols/128)] (F32, row-major) multiplies
// every element of its 128x128 block: W[r][c] = fp8(data[r*cols + c]) * scale_inv[r/128][c/128]
// (edge blocks may be partial). `data` may point into an mmapped file: kernels never write it.
struct WeightMatrix {
  DType dtype = DType::F32;  // F32, BF16, F16 or F8_E4M3
  int64_t rows = 0, cols = 0;
  const void* data = nullptr;
  const float* scale_inv = nullptr;  // F8_E4M3 only
  static constexpr int64_t kBlock = 128;

  int64_t scale_cols() const { return (cols + kBlock - 1) / kBlock; }
  size_t bytes() const;  // bytes of `data` (+ scales) a full pass reads
  // Row r (0 <= r < rows), dequantized to F32 exactly (out[cols]).
  void dequant_row(int64_t r, float* out) const;
};

// How GEMM-sized products are computed. F32 is exact F32 arithmetic on the stored weights (the
// reference; `qiusuo logits`). BF16 rounds activations to BF16 (and FP8 weights dequantized to
// BF16) and accumulates in F32: AMX or AVX-512-BF16 speed, ~3 significant digits per product.
enum class Compute { F32, BF16 };

// Rows at or below this use the streaming GEMV path, which is exact F32 whatever `Compute` says.
// linear() keeps using it for a few more rows (up to 16 or 64, cpu::linear_gemv_max_rows) when
// the GEMM would first have to dequantize the weights, where the streaming path is faster.
constexpr int64_t kGemvMaxRows = 8;

// y[M, W.rows] = x[M, W.cols] · Wᵀ. x and y are row-major with the given row strides
// (ldx >= W.cols, ldy >= W.rows). Threads: uses the OpenMP pool (qs::num_threads()).
void linear(const float* x, int64_t ldx, int64_t M, const WeightMatrix& W, float* y, int64_t ldy,
            Compute compute = Compute::F32);
inline void linear(const float* x, int64_t M, const WeightMatrix& W, float* y,
                   Compute compute = Compute::F32) {
  linear(x, W.cols, M, W, y, W.rows, compute);
}

// The streaming path alone (any M; used directly by tests/benchmarks): exact F32 accumulation.
void gemv(const float* x, int64_t ldx, int64_t M, const WeightMatrix& W, float* y, int64_t ldy);

}  // namespace qs
