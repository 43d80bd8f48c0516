// Group-wise integer weights (I8 / I4), AVX2 (and AVX-512 CPUs without VNNI): the arithmetic of
// linear_int_scalar.cpp, bit for bit.
//
// As linear_int_avx512.cpp with 8 rows per ymm (a 16-row weight tile is two ymm) and no VNNI
// (linear_int_avx2.inc): the products of 4-bit unsigned weights with int8 x come from vpmaddubsw
// (pairs of products, at most 2 * 15 * 127 in magnitude: exact in int16) then vpmaddwd with ones
// (int32). I8 weights are split into nibbles, u = 16 * hi + lo, and summed as two 4-bit products.
// CPUs with AVX-VNNI take linear_int_avxvnni.cpp (vpdpbusd) instead. Runs under FTZ/DAZ
// (mxcsr.h).
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <limits>

#include "qiusuo/kernels/cpu/cpu_kernels.h"
#include "qiusuo/kernels/cpu/transpose_avx2.h"
#include "qiusuo/kernels/cpu/mxcsr.h"

namespace qs::cpu {
namespace {

#define QS_INT_AVX_VNNI 0
#include "qiusuo/kernels/cpu/linear_int_avx2.inc"
#undef QS_INT_AVX_VNNI

}  // namespace

// As quantize_x_scalar, 8 columns per step.
void quantize_x_avx2(const float* x, int64_t K, int64_t group, DType wdtype, int8_t* q, float* scale,
                     int32_t* zsum) {
  const int32_t z = wdtype == DType::I8 ? 128 : 8;
  const __m256 sign = _mm256_set1_ps(-0.0f), fmax = _mm256_set1_ps(std::numeric_limits<float>::max());
  const __m256 lim = _mm256_set1_ps(127.0f), nlim = _mm256_set1_ps(-127.0f);
  for (int64_t g = 0; g * group < K; ++g) {
    const float* xg = x + g * group;
    __m256 vmax = _mm256_setzero_ps();
    int finite = 0xFF;
    for (int64_t c = 0; c < group; c += 8) {
      const __m256 a = _mm256_andnot_ps(sign, _mm256_loadu_ps(xg + c));
      finite &= _mm256_movemask_ps(_mm256_cmp_ps(a, fmax, _CMP_LE_OQ));
      vmax = _mm256_max_ps(vmax, a);
    }
    int8_t* qg = q + g * group;
    if (finite != 0xFF) {
      std::memset(qg, 0, size_t(group));
      scale[g] = std::numeric_limits<float>::quiet_NaN();
      zsum[g] = 0;
      continue;
    }
    alignas(32) float m8[8];
    _mm256_store_ps(m8, vmax);
    float amax = 0.0f;
    for (float v : m8) amax = std::max(amax, v);
    const __m256 inv = _mm256_set1_ps(amax > 0.0f ? 127.0f / amax : 0.0f);
    int32_t sum = 0;
    for (int64_t c = 0; c < group; c += 8) {
      __m256 r = _mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(xg + c), inv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      r = _mm256_min_ps(_mm256_max_ps(r, nlim), lim);
      alignas(32) int32_t v[8];
      _mm256_store_si256(reinterpret_cast<__m256i*>(v), _mm256_cvtps_epi32(r));
      for (int j = 0; j < 8; ++j) {
        const int pos = wdtype == DType::I4 ? (j % 2) * 4 + j / 2 : j;
        qg[c + pos] = int8_t(v[j]);
        sum += v[j];
      }
    }
    scale[g] = amax / 127.0f;
    zsum[g] = z * sum;
  }
}

void linear_int_avx2(const QuantizedX& x, int64_t M, const WeightMatrix& W, int64_t n0, int64_t n1,
                     float* y, int64_t ldy) {
  linear_int_entry(x, M, W, n0, n1, y, ldy);
}

namespace {
// Each half tile (8 rows), 8 columns at a time: the 8 / per words holding them give one vector
// per column ((u - z) * s in each row's lane, as the scalar reference computes it), transposed.
template <bool kI4>
void dequant_tile(const WeightMatrix& W, int64_t t, float* out, int64_t ld) {
  constexpr int per = kI4 ? 8 : 4, bits = kI4 ? 4 : 8;
  const int64_t words = W.int_words(), ngroups = W.cols / W.group;
  const int64_t n = std::min(kTile, W.rows - t * kTile);
  const auto* data = static_cast<const uint32_t*>(W.data) + t * words * kTile;
  const uint16_t* sc = W.group_scales + t * ngroups * kTile;
  const __m256i mask = _mm256_set1_epi32(kI4 ? 0xF : 0xFF), z = _mm256_set1_epi32(kI4 ? 8 : 128);
  for (int64_t h = 0; h * 8 < n; ++h) {
    const int64_t nh = std::min<int64_t>(8, n - 8 * h);  // rows of this half
    __m256 s = _mm256_setzero_ps();
    for (int64_t c0 = 0; c0 < W.cols; c0 += 8) {
      if (c0 % W.group == 0)
        s = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(sc + (c0 / W.group) * kTile + 8 * h)));
      __m256 a[8];
#pragma GCC unroll 2
      for (int k = 0; k < 8 / per; ++k) {
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(data + (c0 / per + k) * kTile + 8 * h));
#pragma GCC unroll 8
        for (int j = 0; j < per; ++j) {
          const __m256i u = _mm256_and_si256(_mm256_srli_epi32(v, bits * j), mask);
          a[k * per + j] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(u, z)), s);
        }
      }
      transpose8(a);
      for (int64_t i = 0; i < nh; ++i) _mm256_storeu_ps(out + (8 * h + i) * ld + c0, a[i]);
    }
  }
}
}  // namespace

void dequant_int_tile_avx2(const WeightMatrix& W, int64_t t, float* out, int64_t ld) {
  if (W.dtype == DType::I8) dequant_tile<false>(W, t, out, ld);
  else dequant_tile<true>(W, t, out, ld);
}

}  // namespace qs::cpu
