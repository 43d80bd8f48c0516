// Internal: oneDNN behind gemm_f32 / gemm_bf16 (only with QIUSUO_ONEDNN).
//   C[M, N] = alpha · op(A)[M, K] · op(B)[K, N] + beta · C,  A/B F32 or BF16, C F32.
// matmul: transposes are strides in the memory descriptors. Primitives are created once per
// (types, transposes, M, N, K, lda, ldb, ldc, alpha, beta, threads) and kept in a bounded,
// thread-safe LRU cache (oneDNN primitive creation costs 0.1-1 ms); each calling thread has
// its own stream and scratchpad. sgemm: dnnl_sgemm (row-major BLAS semantics), no creation.
#pragma once
#include <cstddef>
#include <cstdint>

namespace qs::onednn {

// False when oneDNN has no (non-reference) implementation for this problem: the caller falls
// back to its own kernel.
bool matmul(bool bf16, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
            const void* A, int64_t lda, const void* B, int64_t ldb, float beta, float* C,
            int64_t ldc);

// F32 through dnnl_sgemm; false if oneDNN reports an error.
bool sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
           int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

struct CacheStats {
  size_t entries, hits, misses;
};
CacheStats cache_stats();
constexpr size_t kCacheCapacity = 1024;

}  // namespace qs::onednn
