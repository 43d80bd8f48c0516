// Streaming GEMV, scalar reference: y[M, r0:r1] = x[M, cols] · W[r0:r1, cols]ᵀ.
//
// Each weight row is dequantized exactly to F32 in chunks of kChunk columns (FP8: times its
// 128x128 block scale, rounded once, as WeightMatrix::dequant_row) and dotted with all M rows
// of x while the chunk sits in L1, so the weights are read once for any M. F32 accumulation in
// 8 interleaved partial sums per (row, m) (summed pairwise at the end).
#include <algorithm>

#include "qiusuo/kernels/cpu/cpu_kernels.h"

namespace qs::cpu {
namespace {
constexpr int64_t kChunk = WeightMatrix::kBlock;  // one FP8 scale block per chunk
constexpr int kLanes = 8;
constexpr int64_t kMaxM = 8;  // x rows per pass over a weight row (more: further passes, L1 hits)

// W[r][c0 : c0+n] -> out[n] (exact F32).
void dequant_chunk(const WeightMatrix& W, int64_t r, int64_t c0, int64_t n, float* out) {
  const int64_t off = r * W.cols + c0;
  switch (W.dtype) {
    case DType::F32: std::copy_n(static_cast<const float*>(W.data) + off, n, out); break;
    case DType::BF16: bf16_to_f32_scalar(static_cast<const uint16_t*>(W.data) + off, out, n); break;
    case DType::F16: f16_to_f32_scalar(static_cast<const uint16_t*>(W.data) + off, out, n); break;
    case DType::F8_E4M3: {
      const float s = W.scale_inv[(r / WeightMatrix::kBlock) * W.scale_cols() + c0 / WeightMatrix::kBlock];
      fp8_to_f32_scalar(static_cast<const uint8_t*>(W.data) + off, out, n, s);
      break;
    }
    default: break;  // rejected by the caller
  }
}
}  // namespace

// The scalar path reads x in place: "packing" is a contiguous copy ([M][cols]).
size_t gemv_xpack_floats_scalar(int64_t M, const WeightMatrix& W) { return size_t(M * W.cols); }

void gemv_pack_x_scalar(const float* x, int64_t ldx, int64_t M, const WeightMatrix& W, float* xp) {
  for (int64_t m = 0; m < M; ++m) std::copy_n(x + m * ldx, W.cols, xp + m * W.cols);
}

void gemv_rows_packed_scalar(const float* xp, int64_t M, const WeightMatrix& W, int64_t r0,
                             int64_t r1, float* y, int64_t ldy) {
  gemv_rows_scalar(xp, W.cols, M, W, r0, r1, y, ldy);
}

void gemv_rows_scalar(const float* x, int64_t ldx, int64_t M, const WeightMatrix& W, int64_t r0,
                      int64_t r1, float* y, int64_t ldy) {
  const int64_t cols = W.cols;
  float w[kChunk];
  for (int64_t r = r0; r < r1; ++r) {
    for (int64_t m0 = 0; m0 < M; m0 += kMaxM) {
      const int64_t mc = std::min(kMaxM, M - m0);
      float acc[kMaxM][kLanes] = {};
      for (int64_t c0 = 0; c0 < cols; c0 += kChunk) {
        const int64_t n = std::min(kChunk, cols - c0);
        dequant_chunk(W, r, c0, n, w);
        for (int64_t m = 0; m < mc; ++m) {
          const float* xr = x + (m0 + m) * ldx + c0;
          float* a = acc[m];
          int64_t c = 0;
          for (; c + kLanes <= n; c += kLanes)
            for (int l = 0; l < kLanes; ++l) a[l] += w[c + l] * xr[c + l];
          for (int l = 0; c < n; ++c, ++l) a[l] += w[c] * xr[c];
        }
      }
      for (int64_t m = 0; m < mc; ++m) {
        const float* a = acc[m];
        y[(m0 + m) * ldy + r] = ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]));
      }
    }
  }
}

}  // namespace qs::cpu
