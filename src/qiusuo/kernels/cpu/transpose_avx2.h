// 8 x 8 F32 transpose in registers, for kernels compiled with AVX2 (<name>_avx2.cpp).
#pragma once
#include <immintrin.h>

namespace qs::cpu {

// a[j] = column j of 8 rows (lane i = row i) -> a[i] = row i of 8 columns.
__attribute__((always_inline)) inline void transpose8(__m256 a[8]) {
  __m256 t[8], u[8];
#pragma GCC unroll 4
  for (int k = 0; k < 8; k += 2) {
    t[k] = _mm256_unpacklo_ps(a[k], a[k + 1]);      // per 128-bit lane L: a_k[4L], a_k1[4L], a_k[4L+1], a_k1[4L+1]
    t[k + 1] = _mm256_unpackhi_ps(a[k], a[k + 1]);  // ... [4L+2], [4L+3]
  }
#pragma GCC unroll 2
  for (int k = 0; k < 8; k += 4) {  // u[k + r], lane L: columns k..k+3 of row r + 4L
    u[k] = _mm256_shuffle_ps(t[k], t[k + 2], 0x44);
    u[k + 1] = _mm256_shuffle_ps(t[k], t[k + 2], 0xEE);
    u[k + 2] = _mm256_shuffle_ps(t[k + 1], t[k + 3], 0x44);
    u[k + 3] = _mm256_shuffle_ps(t[k + 1], t[k + 3], 0xEE);
  }
#pragma GCC unroll 4
  for (int r = 0; r < 4; ++r) {
    a[r] = _mm256_permute2f128_ps(u[r], u[4 + r], 0x20);
    a[r + 4] = _mm256_permute2f128_ps(u[r], u[4 + r], 0x31);
  }
}

}  // namespace qs::cpu
