// attn_values_bf16 (attn_bf16_scalar.cpp states the arithmetic) on AVX2 + FMA, and on AVX-512
// CPUs without AVX512_BF16: a vdpbf16ps lane step is two FMAs (the BF16 products are exact in
// F32, so each FMA rounds once where vdpbf16ps rounds) under FTZ/DAZ (mxcsr.h).
// Tiles of 4 query rows x 16 columns (8 ymm accumulators) walk all keys; BF16 rows widen by a
// shift, the two probabilities of a pair are broadcast as F32.
#include <immintrin.h>

#include <algorithm>

#include "qiusuo/kernels/cpu/cpu_kernels.h"
#include "qiusuo/kernels/cpu/mxcsr.h"

namespace qs::cpu {
namespace {
constexpr int kMq = 4;

inline __m256 widen8(const uint16_t* p) {  // 8 BF16 -> 8 F32 (exact)
  return _mm256_castsi256_ps(
      _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))), 16));
}
inline __m256 splat_bf16(uint16_t b) { return _mm256_castsi256_ps(_mm256_set1_epi32(int(uint32_t(b) << 16))); }

template <int MQ>
void tile(const uint16_t* P, int64_t ldp, const uint16_t* V, int64_t nk, int64_t ldv, int64_t c, float* O,
          int64_t ldo, bool accumulate) {
  __m256 acc[MQ][2];
  for (int r = 0; r < MQ; ++r)
    for (int h = 0; h < 2; ++h)
      acc[r][h] = accumulate ? _mm256_loadu_ps(O + r * ldo + c + 8 * h) : _mm256_setzero_ps();
  for (int64_t j = 0; j < nk; j += 2) {
    const uint16_t* v0 = V + j * ldv + c;
    const __m256 a0 = widen8(v0), a1 = widen8(v0 + 8);
    __m256 b0 = _mm256_setzero_ps(), b1 = _mm256_setzero_ps();
    if (j + 1 < nk) {
      b0 = widen8(v0 + ldv);
      b1 = widen8(v0 + ldv + 8);
    }
    for (int r = 0; r < MQ; ++r) {
      const __m256 pe = splat_bf16(P[r * ldp + j]), po = splat_bf16(j + 1 < nk ? P[r * ldp + j + 1] : uint16_t(0));
      acc[r][0] = _mm256_fmadd_ps(pe, a0, _mm256_fmadd_ps(po, b0, acc[r][0]));
      acc[r][1] = _mm256_fmadd_ps(pe, a1, _mm256_fmadd_ps(po, b1, acc[r][1]));
    }
  }
  for (int r = 0; r < MQ; ++r)
    for (int h = 0; h < 2; ++h) _mm256_storeu_ps(O + r * ldo + c + 8 * h, acc[r][h]);
}
}  // namespace

void attn_values_bf16_avx2(const uint16_t* P, int64_t nq, int64_t ldp, const uint16_t* V, int64_t nk, int64_t ldv,
                           int64_t n, float* O, int64_t ldo, bool accumulate) {
  FlushDenormals ftz;
  const int64_t full = n / 16 * 16;
  for (int64_t i0 = 0; i0 < nq; i0 += kMq) {
    const int64_t m = std::min<int64_t>(kMq, nq - i0);
    const uint16_t* Pi = P + i0 * ldp;
    float* Oi = O + i0 * ldo;
    for (int64_t c = 0; c < full; c += 16) {
      switch (m) {
        case 4: tile<4>(Pi, ldp, V, nk, ldv, c, Oi, ldo, accumulate); break;
        case 3: tile<3>(Pi, ldp, V, nk, ldv, c, Oi, ldo, accumulate); break;
        case 2: tile<2>(Pi, ldp, V, nk, ldv, c, Oi, ldo, accumulate); break;
        default: tile<1>(Pi, ldp, V, nk, ldv, c, Oi, ldo, accumulate); break;
      }
    }
    if (full < n) {  // the last columns through a zero-padded copy of their rows
      const int64_t w = n - full;
      alignas(32) float o[kMq * 16] = {};
      alignas(32) uint16_t v[2 * 16] = {};
      for (int64_t r = 0; r < m; ++r)
        for (int64_t cc = 0; cc < w; ++cc) o[r * 16 + cc] = accumulate ? Oi[r * ldo + full + cc] : 0.0f;
      __m256 acc[kMq][2];
      for (int r = 0; r < kMq; ++r)
        for (int h = 0; h < 2; ++h) acc[r][h] = _mm256_load_ps(o + r * 16 + 8 * h);
      for (int64_t j = 0; j < nk; j += 2) {
        std::fill(v, v + 32, uint16_t(0));
        std::copy_n(V + j * ldv + full, w, v);
        if (j + 1 < nk) std::copy_n(V + (j + 1) * ldv + full, w, v + 16);
        const __m256 a0 = widen8(v), a1 = widen8(v + 8), b0 = widen8(v + 16), b1 = widen8(v + 24);
        for (int64_t r = 0; r < m; ++r) {
          const __m256 pe = splat_bf16(Pi[r * ldp + j]);
          const __m256 po = splat_bf16(j + 1 < nk ? Pi[r * ldp + j + 1] : uint16_t(0));
          acc[r][0] = _mm256_fmadd_ps(pe, a0, _mm256_fmadd_ps(po, b0, acc[r][0]));
          acc[r][1] = _mm256_fmadd_ps(pe, a1, _mm256_fmadd_ps(po, b1, acc[r][1]));
        }
      }
      for (int r = 0; r < kMq; ++r)
        for (int h = 0; h < 2; ++h) _mm256_store_ps(o + r * 16 + 8 * h, acc[r][h]);
      for (int64_t r = 0; r < m; ++r) std::copy_n(o + r * 16, w, Oi + r * ldo + full);
    }
  }
}

}  // namespace qs::cpu
