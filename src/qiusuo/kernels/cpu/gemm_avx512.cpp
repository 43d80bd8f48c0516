// Own GEMM microkernel, AVX-512: C[12 x 32 tile] = alpha · Ap-panel · Bp-panel + beta · C
// (see GemmMicroFn in cpu_kernels.h). 24 zmm accumulators, 2 B vectors and one broadcast A
// value live per k step; partial tiles use masked C loads/stores.
//
// GCC 12 warns about the deliberately undefined vectors inside its own AVX-512 intrinsics
// (_mm512_undefined_*, GCC PR105593); the warnings point into immintrin.h, not at this code.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include "qiusuo/kernels/cpu/cpu_kernels.h"

namespace qs::cpu {

void gemm_micro_avx512(int64_t kc, const float* Ap, const float* Bp, float alpha, float beta,
                       float* C, int64_t ldc, int mr, int nr) {
  constexpr int MR = kGemmMrAvx512, NR = kGemmNrAvx512;
  static_assert(NR == 32);
  __m512 acc[MR][2];
#pragma GCC unroll 12
  for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
  for (int64_t k = 0; k < kc; ++k) {
    const __m512 b0 = _mm512_load_ps(Bp + k * NR), b1 = _mm512_load_ps(Bp + k * NR + 16);
    const float* a = Ap + k * MR;
#pragma GCC unroll 12
    for (int i = 0; i < MR; ++i) {
      const __m512 ai = _mm512_set1_ps(a[i]);
      acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
    }
  }
  const __mmask16 k0 = nr >= 16 ? __mmask16(0xffff) : __mmask16((1u << nr) - 1);
  const __mmask16 k1 = nr >= 32 ? __mmask16(0xffff) : nr <= 16 ? __mmask16(0) : __mmask16((1u << (nr - 16)) - 1);
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
#pragma GCC unroll 12
  for (int i = 0; i < MR; ++i) {
    if (i >= mr) break;
    float* c = C + i * ldc;
    __m512 r0 = _mm512_mul_ps(va, acc[i][0]), r1 = _mm512_mul_ps(va, acc[i][1]);
    if (beta != 0.0f) {
      r0 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(k0, c), r0);
      r1 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(k1, c + 16), r1);
    }
    _mm512_mask_storeu_ps(c, k0, r0);
    _mm512_mask_storeu_ps(c + 16, k1, r1);
  }
}

}  // namespace qs::cpu
