// gemm_f32 / gemm_bf16 / gemm_ref (see gemm.h): argument checks, then, when built with
// QIUSUO_ONEDNN, oneDNN (F32: its BLAS-style sgemm, which needs no per-shape primitive, so
// shapes that change every call such as attention over a growing context cost nothing extra;
// BF16: cached matmul primitives, AMX where present), falling back to the own blocked kernel
// (cpu/gemm_own.cpp) for the best ISA if oneDNN declines the problem or is not built in.
#include "qiusuo/kernels/gemm.h"

#include <algorithm>
#include <vector>

#include "qiusuo/core/error.h"
#include "qiusuo/kernels/cpu/cpu_kernels.h"
#include "qiusuo/kernels/onednn.h"

namespace qs {
namespace {
void check_args(const char* fn, bool ta, bool tb, int64_t M, int64_t N, int64_t K, int64_t lda,
                int64_t ldb, int64_t ldc) {
  QS_CHECK(M >= 0 && N >= 0 && K >= 0, fn, ": negative size M=", M, " N=", N, " K=", K);
  QS_CHECK(lda >= std::max<int64_t>(1, ta ? M : K), fn, ": lda=", lda, " too small");
  QS_CHECK(ldb >= std::max<int64_t>(1, tb ? K : N), fn, ": ldb=", ldb, " too small");
  QS_CHECK(ldc >= std::max<int64_t>(1, N), fn, ": ldc=", ldc, " too small");
}

void gemm_any(bool bf16, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha,
              const void* A, int64_t lda, const void* B, int64_t ldb, float beta, float* C,
              int64_t ldc) {
  if (M == 0 || N == 0) return;
#ifdef QIUSUO_ONEDNN
  if (K > 0) {
    if (!bf16 && onednn::sgemm(ta, tb, M, N, K, alpha, static_cast<const float*>(A), lda,
                               static_cast<const float*>(B), ldb, beta, C, ldc))
      return;
    if (bf16 && onednn::matmul(true, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc)) return;
  }
#endif
  cpu::gemm_own(cpu::kernels(), bf16, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
}  // namespace

void gemm_f32(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
              const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
              int64_t ldc) {
  check_args("gemm_f32", trans_a, trans_b, M, N, K, lda, ldb, ldc);
  gemm_any(false, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void gemm_bf16(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
               const uint16_t* A, int64_t lda, const uint16_t* B, int64_t ldb, float beta,
               float* C, int64_t ldc) {
  check_args("gemm_bf16", trans_a, trans_b, M, N, K, lda, ldb, ldc);
  gemm_any(true, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void gemm_ref(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
              const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
              int64_t ldc) {
  check_args("gemm_ref", trans_a, trans_b, M, N, K, lda, ldb, ldc);
  std::vector<double> acc(static_cast<size_t>(N));
  for (int64_t i = 0; i < M; ++i) {
    std::fill(acc.begin(), acc.end(), 0.0);
    for (int64_t k = 0; k < K; ++k) {
      const double a = trans_a ? A[k * lda + i] : A[i * lda + k];
      if (trans_b) {
        for (int64_t j = 0; j < N; ++j) acc[size_t(j)] += a * double(B[j * ldb + k]);
      } else {
        const float* b = B + k * ldb;
        for (int64_t j = 0; j < N; ++j) acc[size_t(j)] += a * double(b[j]);
      }
    }
    float* c = C + i * ldc;
    for (int64_t j = 0; j < N; ++j)
      c[j] = float(double(alpha) * acc[size_t(j)] + (beta == 0.0f ? 0.0 : double(beta) * c[j]));
  }
}

}  // namespace qs
