// General matrix products on plain row-major arrays (attention, training).
//   C[M, N] = alpha · op(A)[M, K] · op(B)[K, N] + beta · C
// op(A) = A (A is [M, K], row stride lda) or Aᵀ (A is [K, M]); likewise B ([K, N] or [N, K]).
// Backed by oneDNN when built with it (AMX for BF16 inputs where the CPU has it), otherwise by
// a blocked AVX-512/AVX2/scalar kernel. Deterministic: the same inputs give bit-identical
// outputs run to run (fixed blocking and reduction order for a given shape and thread count).
#pragma once
#include <cstdint>

namespace qs {

void gemm_f32(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
              const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
              int64_t ldc);

// A and B hold BF16 bit patterns; C is F32.
void gemm_bf16(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
               const uint16_t* A, int64_t lda, const uint16_t* B, int64_t ldb, float beta,
               float* C, int64_t ldc);

// Scalar reference (tests): same contract, double accumulation.
void gemm_ref(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
              const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
              int64_t ldc);

}  // namespace qs
