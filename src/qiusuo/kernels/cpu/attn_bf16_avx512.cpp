// attn_values_bf16 (attn_bf16_scalar.cpp states the arithmetic) with AVX512_BF16's vdpbf16ps.
//
// vdpbf16ps pairs adjacent BF16 values of one register, while here a pair is one column of two
// key rows: rows j and j + 1 (32 columns each) are interleaved by 16-bit unpacks, so lane
// 4k + e of the low unpack holds column 8k + e and of the high one column 8k + 4 + e (k < 4,
// e < 4); the probabilities (P[j], P[j+1]) are one 32-bit broadcast. Each accumulator lane is
// one output column for all keys; the lanes are put back in column order at the end (and taken
// apart at the start when accumulating). A tile is up to 8 query rows x 32 columns (16 zmm
// accumulators) over all nk keys, the key rows read from L1/L2 (the caller's score pass has
// just read them).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>

#include "qiusuo/kernels/cpu/cpu_kernels.h"

namespace qs::cpu {
namespace {
constexpr int kMq = 8;

inline __mmask32 mask32(int64_t n) { return n >= 32 ? ~__mmask32(0) : n <= 0 ? __mmask32(0) : (__mmask32(1) << n) - 1; }

inline __m512 dp(__m512 acc, __m512i a, __m512i b) {
  return _mm512_dpbf16_ps(acc, reinterpret_cast<__m512bh>(a), reinterpret_cast<__m512bh>(b));
}

// Column order <-> unpack order (see above), for 32 columns in two vectors.
inline void to_columns(__m512 lo, __m512 hi, __m512* c0, __m512* c1) {
  const __m512i i0 = _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23);
  const __m512i i1 = _mm512_setr_epi32(8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31);
  *c0 = _mm512_permutex2var_ps(lo, i0, hi);
  *c1 = _mm512_permutex2var_ps(lo, i1, hi);
}
inline void from_columns(__m512 c0, __m512 c1, __m512* lo, __m512* hi) {
  const __m512i il = _mm512_setr_epi32(0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27);
  const __m512i ih = _mm512_setr_epi32(4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31);
  *lo = _mm512_permutex2var_ps(c0, il, c1);
  *hi = _mm512_permutex2var_ps(c0, ih, c1);
}

template <int MQ>
void tile(const uint16_t* P, int64_t ldp, const uint16_t* V, int64_t nk, int64_t ldv, int64_t c, int64_t w,
          float* O, int64_t ldo, bool accumulate) {
  const __mmask32 km = mask32(w);
  const __mmask16 k0 = __mmask16(km), k1 = __mmask16(km >> 16);
  __m512 acc[MQ][2];
#pragma GCC unroll 8
  for (int r = 0; r < MQ; ++r) {
    if (accumulate) {
      const __m512 c0 = _mm512_maskz_loadu_ps(k0, O + r * ldo + c);
      const __m512 c1 = _mm512_maskz_loadu_ps(k1, O + r * ldo + c + 16);
      from_columns(c0, c1, &acc[r][0], &acc[r][1]);
    } else {
      acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    }
  }
  const int64_t pairs = nk / 2;
  const uint16_t* v = V + c;
  for (int64_t q = 0; q < pairs; ++q, v += 2 * ldv) {
    const __m512i a = _mm512_maskz_loadu_epi16(km, v), b = _mm512_maskz_loadu_epi16(km, v + ldv);
    const __m512i lo = _mm512_unpacklo_epi16(a, b), hi = _mm512_unpackhi_epi16(a, b);
#pragma GCC unroll 8
    for (int r = 0; r < MQ; ++r) {
      int32_t pp;
      __builtin_memcpy(&pp, P + r * ldp + 2 * q, 4);
      const __m512i pv = _mm512_set1_epi32(pp);
      acc[r][0] = dp(acc[r][0], lo, pv);
      acc[r][1] = dp(acc[r][1], hi, pv);
    }
  }
  if (nk % 2) {  // the last key alone: its partner counts as P = V = 0
    const __m512i a = _mm512_maskz_loadu_epi16(km, v), z = _mm512_setzero_si512();
    const __m512i lo = _mm512_unpacklo_epi16(a, z), hi = _mm512_unpackhi_epi16(a, z);
#pragma GCC unroll 8
    for (int r = 0; r < MQ; ++r) {
      const __m512i pv = _mm512_set1_epi32(int32_t(P[r * ldp + nk - 1]));
      acc[r][0] = dp(acc[r][0], lo, pv);
      acc[r][1] = dp(acc[r][1], hi, pv);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < MQ; ++r) {
    __m512 c0, c1;
    to_columns(acc[r][0], acc[r][1], &c0, &c1);
    _mm512_mask_storeu_ps(O + r * ldo + c, k0, c0);
    _mm512_mask_storeu_ps(O + r * ldo + c + 16, k1, c1);
  }
}
}  // namespace

void attn_values_bf16_avx512(const uint16_t* P, int64_t nq, int64_t ldp, const uint16_t* V, int64_t nk,
                             int64_t ldv, int64_t n, float* O, int64_t ldo, bool accumulate) {
  for (int64_t i0 = 0; i0 < nq; i0 += kMq) {
    const int64_t m = std::min<int64_t>(kMq, nq - i0);
    const uint16_t* Pi = P + i0 * ldp;
    float* Oi = O + i0 * ldo;
    for (int64_t c = 0; c < n; c += 32) {
      const int64_t w = std::min<int64_t>(32, n - c);
      switch (m) {
        case 8: tile<8>(Pi, ldp, V, nk, ldv, c, w, Oi, ldo, accumulate); break;
        case 7: tile<7>(Pi, ldp, V, nk, ldv, c, w, Oi, ldo, accumulate); break;
        case 6: tile<6>(Pi, ldp, V, nk, ldv, c, w, Oi, ldo, accumulate); break;
        case 5: tile<5>(Pi, ldp, V, nk, ldv, c, w, Oi, ldo, accumulate); break;
        case 4: tile<4>(Pi, ldp, V, nk, ldv, c, w, Oi, ldo, accumulate); break;
        case 3: tile<3>(Pi, ldp, V, nk, ldv, c, w, Oi, ldo, accumulate); break;
        case 2: tile<2>(Pi, ldp, V, nk, ldv, c, w, Oi, ldo, accumulate); break;
        default: tile<1>(Pi, ldp, V, nk, ldv, c, w, Oi, ldo, accumulate); break;
      }
    }
  }
}

}  // namespace qs::cpu
