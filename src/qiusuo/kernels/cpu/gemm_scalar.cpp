// Own GEMM microkernel, scalar: C[4 x 8 tile] = alpha · Ap-panel · Bp-panel + beta · C
// (see GemmMicroFn in cpu_kernels.h).
#include "qiusuo/kernels/cpu/cpu_kernels.h"

namespace qs::cpu {

void gemm_micro_scalar(int64_t kc, const float* Ap, const float* Bp, float alpha, float beta,
                       float* C, int64_t ldc, int mr, int nr) {
  constexpr int MR = kGemmMrScalar, NR = kGemmNrScalar;
  float acc[MR][NR] = {};
  for (int64_t k = 0; k < kc; ++k) {
    const float* a = Ap + k * MR;
    const float* b = Bp + k * NR;
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NR; ++j) acc[i][j] += a[i] * b[j];
  }
  for (int i = 0; i < mr; ++i) {
    float* c = C + i * ldc;
    if (beta == 0.0f) {
      for (int j = 0; j < nr; ++j) c[j] = alpha * acc[i][j];
    } else {
      for (int j = 0; j < nr; ++j) c[j] = alpha * acc[i][j] + beta * c[j];
    }
  }
}

}  // namespace qs::cpu
