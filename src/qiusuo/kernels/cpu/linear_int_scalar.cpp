// Group-wise integer weights (I8 / I4, linear.h), scalar reference: the arithmetic every ISA
// reproduces bit for bit (linear_int_avx512.cpp with vpdpbusd, linear_int_avx2.cpp with
// vpmaddubsw), for any M, row split or tile.
//
// x, per row and per weight group g of G columns (quantize_x):
//   amax = max |x_c|; if amax = 0: scale = 0, q = 0; if some x_c is not finite: scale = NaN, q = 0;
//   else inv = F(127 / amax), q_c = nearest-even(x_c * inv) clamped to [-127, 127], scale =
//   F(amax / 127) (F: F32 rounding); zsum = z * sum_c q_c (z = 128 for I8, 8 for I4).
// Output (m, n), with u the weights' stored unsigned values and s their F16 scales:
//   for each group g in order: isum = sum_c u_c * q_c - zsum (exact in int32: |isum| < 2^22),
//   c = F(scale_g * s[n][g]), acc = F(acc + float(isum) * c) with one rounding (FMA);
//   y = acc (acc starts at 0). F also flushes results below 2^-126 to zero and reads such
//   inputs as zero (FTZ/DAZ), as the SIMD kernels run under those MXCSR modes.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <limits>

#include "qiusuo/kernels/cpu/cpu_kernels.h"

namespace qs::cpu {
namespace {
inline float flush(float v) { return std::fabs(v) < FLT_MIN ? std::copysign(0.0f, v) : v; }

// Stored unsigned value of W[n][c] (u), from the tiled layout.
inline int32_t weight_u(const WeightMatrix& W, int64_t n, int64_t c) {
  const bool i8 = W.dtype == DType::I8;
  const int64_t per = i8 ? 4 : 8, words = W.int_words();
  const int64_t t = n / WeightMatrix::kIntTile, i = n % WeightMatrix::kIntTile;
  const uint32_t w = static_cast<const uint32_t*>(W.data)[(t * words + c / per) * WeightMatrix::kIntTile + i];
  const int j = int(c % per);
  return i8 ? int32_t((w >> (8 * j)) & 0xFF) : int32_t((w >> (4 * j)) & 0xF);
}

// Position of column c (within its row) in the quantized x layout.
inline int64_t x_pos(DType wdtype, int64_t c) {
  if (wdtype == DType::I8) return c;
  const int64_t j = c % 8;
  return c - j + (j % 2) * 4 + j / 2;  // c0 c2 c4 c6 | c1 c3 c5 c7
}
}  // namespace

void quantize_x_scalar(const float* x, int64_t K, int64_t group, DType wdtype, int8_t* q, float* scale,
                       int32_t* zsum) {
  const int32_t z = wdtype == DType::I8 ? 128 : 8;
  for (int64_t g = 0; g * group < K; ++g) {
    const float* xg = x + g * group;
    float amax = 0.0f;
    bool finite = true;
    for (int64_t c = 0; c < group; ++c) {
      const float a = std::fabs(xg[c]);
      finite = finite && a <= std::numeric_limits<float>::max();
      amax = std::max(amax, a);
    }
    if (!finite) {
      for (int64_t c = 0; c < group; ++c) q[x_pos(wdtype, g * group + c)] = 0;
      scale[g] = std::numeric_limits<float>::quiet_NaN();
      zsum[g] = 0;
      continue;
    }
    int32_t sum = 0;
    const float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
    for (int64_t c = 0; c < group; ++c) {
      const float r = std::nearbyint(xg[c] * inv);
      const int32_t v = int32_t(std::clamp(r, -127.0f, 127.0f));
      q[x_pos(wdtype, g * group + c)] = int8_t(v);
      sum += v;
    }
    scale[g] = amax / 127.0f;
    zsum[g] = z * sum;
  }
}

void dequant_int_tile_scalar(const WeightMatrix& W, int64_t t, float* out, int64_t ld) {
  constexpr int64_t kTile = WeightMatrix::kIntTile;
  const bool i8 = W.dtype == DType::I8;
  const int64_t per = i8 ? 4 : 8, words = W.int_words(), ngroups = W.cols / W.group;
  const int shift = i8 ? 8 : 4;
  const uint32_t mask = i8 ? 0xFFu : 0xFu;
  const int32_t z = i8 ? 128 : 8;
  const int64_t n = std::min(kTile, W.rows - t * kTile);
  const auto* data = static_cast<const uint32_t*>(W.data) + t * words * kTile;
  const uint16_t* sc = W.group_scales + t * ngroups * kTile;
  for (int64_t w = 0; w < words; ++w)
    for (int64_t i = 0; i < n; ++i) {
      const uint32_t v = data[w * kTile + i];
      const float s = f16_to_f32(sc[(w * per / W.group) * kTile + i]);
      for (int64_t j = 0; j < per; ++j)
        out[i * ld + w * per + j] = float(int32_t((v >> (shift * j)) & mask) - z) * s;
    }
}

void linear_int_scalar(const QuantizedX& x, int64_t M, const WeightMatrix& W, int64_t n0, int64_t n1,
                       float* y, int64_t ldy) {
  const int64_t K = W.cols, G = W.group, ngroups = K / G;
  for (int64_t n = n0; n < n1; ++n) {
    const int64_t t = n / WeightMatrix::kIntTile, i = n % WeightMatrix::kIntTile;
    for (int64_t m = 0; m < M; ++m) {
      const int8_t* q = x.q + m * x.ldq;
      float acc = 0.0f;
      for (int64_t g = 0; g < ngroups; ++g) {
        int32_t isum = 0;
        for (int64_t c = g * G; c < (g + 1) * G; ++c) isum += weight_u(W, n, c) * int32_t(q[x_pos(W.dtype, c)]);
        isum -= x.zsum[m * x.ldg + g];
        const float sw = f16_to_f32(W.group_scales[(t * ngroups + g) * WeightMatrix::kIntTile + i]);
        const float c = flush(flush(x.scale[m * x.ldg + g]) * flush(sw));
        acc = flush(std::fma(float(isum), c, acc));
      }
      y[m * ldy + n] = acc;
    }
  }
}

}  // namespace qs::cpu
