// BF16-compute linear, scalar reference: the arithmetic every ISA reproduces bit for bit
// (linear_bf16_avx512.cpp with vdpbf16ps, linear_bf16_avx2.cpp with FMAs), so that an output
// element never depends on M, on the row's place in the batch, on tiles or on threads.
//
// For output (m, n): a = row m of x rounded to BF16 (nearest even; done by the caller, xb), w =
// row n of W as BF16 values:
//   BF16 weights as stored; F32 weights rounded to BF16 (nearest even, NaN stays NaN); F16
//   weights widened to F32 and rounded likewise; FP8 E4M3 weights widened exactly, as 2^-8 times
//   their value: the F16 whose bits are ((b << 8) >>arith 1) & 0xBFFF (E4M3's sign, exponent and
//   mantissa fields; the NaN codes 0x7F/0xFF are not special-cased and read as ±480), with the
//   128x128 block scale times 2^8 applied to the partial sums of each block (below).
// Columns are walked in steps of 32 (zeros past cols). In step j, lane l (0..15) holds columns
// c = 32j + 2l and c + 1, and does what one lane of vdpbf16ps does:
//   acc_l = F(F(acc_l + a[c+1] * w[c+1]) + a[c] * w[c])
// Products are exact (8-bit by 8-bit significands); F rounds to F32 (nearest even) and flushes
// a result below 2^-126 in magnitude to a zero of its sign (FTZ); inputs below 2^-126 count as
// zero (DAZ). (Measured on an AMD Zen 5 against vdpbf16ps: the odd product is added first, each
// addition rounded, as Intel's pseudo-code states; tests/kernels check it on every run.)
// FP8: the steps of each 128-column block (4, or fewer in a last partial block) accumulate
// into part_l from zero; at the block's end acc_l = F(acc_l + part_l * s), one rounding (FMA),
// s = F(scale_inv[n/128][block] * 256).
// Finally y = a fixed tree over the lanes, each addition F(...):
//   s8[l] = acc[l] + acc[l+8], s4[l] = s8[l] + s8[l+4], s2[l] = s4[l] + s4[l+2], y = s2[0] + s2[1].
//
// The scalar code below computes each lane step in double (a float plus an exact product of
// at most 16 significant bits, rounded to double and then to float, is correctly rounded:
// double rounding is innocuous at 53 >= 2*24 + 2 bits) and flushes explicitly, so it needs no
// FMA and no MXCSR state.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <vector>

#include "qiusuo/core/dtype.h"
#include "qiusuo/kernels/cpu/cpu_kernels.h"

namespace qs::cpu {
namespace {
constexpr int kLanes = 16;
constexpr int64_t kStep = 2 * kLanes;  // columns per step

inline float flush(float v) { return std::fabs(v) < FLT_MIN ? std::copysign(0.0f, v) : v; }
inline float dot_step(float acc, float a, float w) { return flush(float(double(acc) + double(a) * double(w))); }

// E4M3 code -> 2^-8 * its value (exact), through the F16 of its fields.
inline float fp8_scaled_value(uint8_t b) {
  const uint16_t h = uint16_t(uint16_t(int16_t(int16_t(uint16_t(b) << 8) >> 1)) & 0xBFFF);
  return f16_to_f32(h);
}

// Row n of W as BF16 values (DAZ applied), zero-padded to `padded` columns.
void weight_row(const WeightMatrix& W, int64_t n, float* out, int64_t padded) {
  const int64_t K = W.cols;
  const size_t off = size_t(n * K);
  for (int64_t c = 0; c < K; ++c) {
    float v = 0;
    switch (W.dtype) {
      case DType::BF16: v = bf16_to_f32(static_cast<const uint16_t*>(W.data)[off + size_t(c)]); break;
      case DType::F32: v = bf16_to_f32(f32_to_bf16(static_cast<const float*>(W.data)[off + size_t(c)])); break;
      case DType::F16: v = bf16_to_f32(f32_to_bf16(f16_to_f32(static_cast<const uint16_t*>(W.data)[off + size_t(c)]))); break;
      case DType::F8_E4M3: v = fp8_scaled_value(static_cast<const uint8_t*>(W.data)[off + size_t(c)]); break;
      default: break;  // rejected by the caller
    }
    out[c] = flush(v);
  }
  std::fill(out + K, out + padded, 0.0f);
}

float reduce_lanes(const float* acc) {
  float s8[8], s4[4], s2[2];
  for (int l = 0; l < 8; ++l) s8[l] = flush(acc[l] + acc[l + 8]);
  for (int l = 0; l < 4; ++l) s4[l] = flush(s8[l] + s8[l + 4]);
  for (int l = 0; l < 2; ++l) s2[l] = flush(s4[l] + s4[l + 2]);
  return flush(s2[0] + s2[1]);
}
}  // namespace

void linear_bf16_scalar(const uint16_t* xb, int64_t ldxb, int64_t M, const WeightMatrix& W,
                        int64_t n0, int64_t n1, float* y, int64_t ldy) {
  const int64_t K = W.cols;
  const int64_t steps = (K + kStep - 1) / kStep, padded = steps * kStep;
  const bool fp8 = W.dtype == DType::F8_E4M3;
  std::vector<float> w(static_cast<size_t>(padded));
  // x rows as floats (DAZ applied), converted once: [M][padded].
  std::vector<float> xs(static_cast<size_t>(M * padded));
  for (int64_t m = 0; m < M; ++m)
    for (int64_t c = 0; c < padded; ++c)
      xs[size_t(m * padded + c)] = c < K ? flush(bf16_to_f32(xb[m * ldxb + c])) : 0.0f;
  for (int64_t n = n0; n < n1; ++n) {
    weight_row(W, n, w.data(), padded);
    const float* srow = fp8 ? W.scale_inv + (n / WeightMatrix::kBlock) * W.scale_cols() : nullptr;
    for (int64_t m = 0; m < M; ++m) {
      const float* x = xs.data() + m * padded;
      float acc[kLanes] = {}, part[kLanes] = {};
      float* target = fp8 ? part : acc;
      for (int64_t j = 0; j < steps; ++j) {
        for (int l = 0; l < kLanes; ++l) {
          const int64_t c = j * kStep + 2 * l;
          target[l] = dot_step(dot_step(target[l], x[c + 1], w[size_t(c + 1)]), x[c], w[size_t(c)]);
        }
        if (fp8 && ((j + 1) % 4 == 0 || j + 1 == steps)) {
          const float s = flush(flush(srow[j / 4]) * 256.0f);
          for (int l = 0; l < kLanes; ++l) {
            acc[l] = flush(std::fma(part[l], s, acc[l]));
            part[l] = 0.0f;
          }
        }
      }
      y[m * ldy + n] = reduce_lanes(acc);
    }
  }
}

}  // namespace qs::cpu
