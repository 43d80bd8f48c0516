// Own GEMM microkernel, AVX2 + FMA: C[6 x 16 tile] = alpha · Ap-panel · Bp-panel + beta · C
// (see GemmMicroFn in cpu_kernels.h). 12 ymm accumulators, 2 B vectors and one broadcast A
// value live per k step; partial tiles are updated from a spilled copy of the accumulators.
#include <immintrin.h>

#include <cmath>

#include "qiusuo/kernels/cpu/cpu_kernels.h"

namespace qs::cpu {

void gemm_micro_avx2(int64_t kc, const float* Ap, const float* Bp, float alpha, float beta,
                     float* C, int64_t ldc, int mr, int nr) {
  constexpr int MR = kGemmMrAvx2, NR = kGemmNrAvx2;
  static_assert(NR == 16);
  __m256 acc[MR][2];
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
  for (int64_t k = 0; k < kc; ++k) {
    const __m256 b0 = _mm256_load_ps(Bp + k * NR), b1 = _mm256_load_ps(Bp + k * NR + 8);
    const float* a = Ap + k * MR;
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      const __m256 ai = _mm256_broadcast_ss(a + i);
      acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
    }
  }
  const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
  if (mr == MR && nr == NR) {
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      float* c = C + i * ldc;
      __m256 r0 = _mm256_mul_ps(va, acc[i][0]), r1 = _mm256_mul_ps(va, acc[i][1]);
      if (beta != 0.0f) {
        r0 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(c), r0);
        r1 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(c + 8), r1);
      }
      _mm256_storeu_ps(c, r0);
      _mm256_storeu_ps(c + 8, r1);
    }
    return;
  }
  alignas(32) float t[MR][NR];
  for (int i = 0; i < MR; ++i) {
    _mm256_store_ps(t[i], _mm256_mul_ps(va, acc[i][0]));
    _mm256_store_ps(t[i] + 8, _mm256_mul_ps(va, acc[i][1]));
  }
  for (int i = 0; i < mr; ++i) {
    float* c = C + i * ldc;
    for (int j = 0; j < nr; ++j) c[j] = beta == 0.0f ? t[i][j] : std::fma(beta, c[j], t[i][j]);
  }
}

}  // namespace qs::cpu
