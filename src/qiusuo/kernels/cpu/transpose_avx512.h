// 16 x 16 F32 transpose in registers, for kernels compiled with AVX-512 (<name>_avx512.cpp).
#pragma once
#include <immintrin.h>

namespace qs::cpu {

// a[j] = column j of 16 rows (lane i = row i) -> a[i] = row i of 16 columns (lane j = column j).
// Three rounds of in-lane unpacks and 128-bit lane shuffles, 64 shuffles per 16 x 16 block.
__attribute__((always_inline)) inline void transpose16(__m512 a[16]) {
  __m512 t[16], u[16];
#pragma GCC unroll 4
  for (int k = 0; k < 16; k += 4) {
    t[k] = _mm512_unpacklo_ps(a[k], a[k + 1]);      // per 128-bit lane L: a_k[4L], a_k1[4L], a_k[4L+1], a_k1[4L+1]
    t[k + 1] = _mm512_unpackhi_ps(a[k], a[k + 1]);  // ... [4L+2], [4L+3]
    t[k + 2] = _mm512_unpacklo_ps(a[k + 2], a[k + 3]);
    t[k + 3] = _mm512_unpackhi_ps(a[k + 2], a[k + 3]);
  }
#pragma GCC unroll 4
  for (int k = 0; k < 16; k += 4) {  // u[k + r], lane L: columns k..k+3 of row r + 4L
    auto pd = [](__m512 v) { return _mm512_castps_pd(v); };
    u[k] = _mm512_castpd_ps(_mm512_unpacklo_pd(pd(t[k]), pd(t[k + 2])));
    u[k + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(pd(t[k]), pd(t[k + 2])));
    u[k + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(pd(t[k + 1]), pd(t[k + 3])));
    u[k + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(pd(t[k + 1]), pd(t[k + 3])));
  }
#pragma GCC unroll 4
  for (int r = 0; r < 4; ++r) {  // row r + 4L = lane L of u[r], u[4 + r], u[8 + r], u[12 + r]
    const __m512 v0 = _mm512_shuffle_f32x4(u[r], u[4 + r], 0x44), v1 = _mm512_shuffle_f32x4(u[r], u[4 + r], 0xEE);
    const __m512 v2 = _mm512_shuffle_f32x4(u[8 + r], u[12 + r], 0x44), v3 = _mm512_shuffle_f32x4(u[8 + r], u[12 + r], 0xEE);
    a[r] = _mm512_shuffle_f32x4(v0, v2, 0x88);
    a[r + 4] = _mm512_shuffle_f32x4(v0, v2, 0xDD);
    a[r + 8] = _mm512_shuffle_f32x4(v1, v3, 0x88);
    a[r + 12] = _mm512_shuffle_f32x4(v1, v3, 0xDD);
  }
}

}  // namespace qs::cpu
