// Own blocked GEMM (used when built without oneDNN; tests run it everywhere):
//   C[M, N] = alpha · op(A)[M, K] · op(B)[K, N] + beta · C
//
// BLIS-style loops: for each slab of kNc columns and each block of kKc of K, op(B) is packed
// once (in parallel) into NR-wide panels shared by all threads; then the (M block x 256-column
// sub-slab) tasks run in parallel, each packing its op(A) block (transposes and BF16 widening
// happen while packing) into MR-wide panels and running the ISA microkernel, which adds its
// tile to C (the first K block applies beta). Every element's reduction order depends only on
// the shape, never on the thread count: results are bit-identical run to run and across
// thread counts.
#include <algorithm>
#include <cstring>

#include "qiusuo/core/buffer.h"
#include "qiusuo/core/dtype.h"
#include "qiusuo/core/parallel.h"
#include "qiusuo/kernels/cpu/cpu_kernels.h"

namespace qs::cpu {
namespace {
constexpr int64_t kKc = 256;     // K block: a B panel (kKc x NR) stays in L1, an A block in L2
constexpr int64_t kNc = 2048;    // columns of B packed at once (multiple of every NR)
constexpr int64_t kNsub = 256;   // columns per task
constexpr int64_t kMcRows = 144; // rows per task (rounded down to a multiple of MR)

inline float widen(float v) { return v; }
inline float widen(uint16_t v) { return bf16_to_f32(v); }

// Ap[panel p][k][i] = op(A)(i0 + p*MR + i, k0 + k), zero past mc.
template <typename T>
void pack_a(const T* A, int64_t lda, bool trans, int64_t i0, int64_t mc, int64_t k0, int64_t kc,
            int MR, float* Ap) {
  for (int64_t p = 0; p * MR < mc; ++p) {
    float* dst = Ap + p * MR * kc;
    const int64_t rows = std::min<int64_t>(MR, mc - p * MR);
    if (!trans) {
      for (int64_t i = 0; i < rows; ++i) {
        const T* src = A + (i0 + p * MR + i) * lda + k0;
        for (int64_t k = 0; k < kc; ++k) dst[k * MR + i] = widen(src[k]);
      }
      for (int64_t i = rows; i < MR; ++i)
        for (int64_t k = 0; k < kc; ++k) dst[k * MR + i] = 0.0f;
    } else {
      for (int64_t k = 0; k < kc; ++k) {
        const T* src = A + (k0 + k) * lda + i0 + p * MR;
        float* d = dst + k * MR;
        for (int64_t i = 0; i < rows; ++i) d[i] = widen(src[i]);
        for (int64_t i = rows; i < MR; ++i) d[i] = 0.0f;
      }
    }
  }
}

// Bp[panel p][k][j] = op(B)(k0 + k, j0 + p*NR + j), zero past nc; panels [p0, p1).
template <typename T>
void pack_b(const T* B, int64_t ldb, bool trans, int64_t j0, int64_t nc, int64_t k0, int64_t kc,
            int NR, int64_t p0, int64_t p1, float* Bp) {
  for (int64_t p = p0; p < p1; ++p) {
    float* dst = Bp + p * NR * kc;
    const int64_t cols = std::min<int64_t>(NR, nc - p * NR);
    const int64_t jb = j0 + p * NR;
    if (!trans) {
      for (int64_t k = 0; k < kc; ++k) {
        const T* src = B + (k0 + k) * ldb + jb;
        float* d = dst + k * NR;
        if constexpr (std::is_same_v<T, float>) std::memcpy(d, src, size_t(cols) * sizeof(float));
        else for (int64_t j = 0; j < cols; ++j) d[j] = widen(src[j]);
        for (int64_t j = cols; j < NR; ++j) d[j] = 0.0f;
      }
    } else {
      for (int64_t j = 0; j < cols; ++j) {
        const T* src = B + (jb + j) * ldb + k0;
        for (int64_t k = 0; k < kc; ++k) dst[k * NR + j] = widen(src[k]);
      }
      for (int64_t j = cols; j < NR; ++j)
        for (int64_t k = 0; k < kc; ++k) dst[k * NR + j] = 0.0f;
    }
  }
}

template <typename T>
void gemm_blocked(const Kernels& kern, bool ta, bool tb, int64_t M, int64_t N, int64_t K,
                  float alpha, const T* A, int64_t lda, const T* B, int64_t ldb, float beta,
                  float* C, int64_t ldc) {
  const int MR = kern.gemm_mr, NR = kern.gemm_nr;
  const int64_t mcb = kMcRows / MR * MR;
  const int64_t mt = (M + mcb - 1) / mcb;
  thread_local Buffer<float> bpack;  // the calling thread's: shared by the workers below
  bpack.reserve(size_t(kKc * kNc));
  float* bp = bpack.data();
  for (int64_t j0 = 0; j0 < N; j0 += kNc) {
    const int64_t nc = std::min(kNc, N - j0);
    const int64_t npanels = (nc + NR - 1) / NR, nsub = (nc + kNsub - 1) / kNsub;
    for (int64_t k0 = 0; k0 < K; k0 += kKc) {
      const int64_t kc = std::min(kKc, K - k0);
      const float b_eff = k0 == 0 ? beta : 1.0f;
      parallel_for(npanels, 4, [&](int64_t p0, int64_t p1) { pack_b(B, ldb, tb, j0, nc, k0, kc, NR, p0, p1, bp); });
      parallel_for(mt * nsub, 1, [&](int64_t t0, int64_t t1) {
        thread_local Buffer<float> apack;
        apack.reserve(size_t(mcb * kKc));
        int64_t packed = -1;  // M block whose A is in apack
        for (int64_t t = t0; t < t1; ++t) {
          const int64_t im = t / nsub, js = t % nsub;
          const int64_t i0 = im * mcb, mc = std::min(mcb, M - i0);
          if (packed != im) {
            pack_a(A, lda, ta, i0, mc, k0, kc, MR, apack.data());
            packed = im;
          }
          const int64_t jend = std::min(nc, (js + 1) * kNsub);
          for (int64_t jr = js * kNsub; jr < jend; jr += NR) {
            const int nr = int(std::min<int64_t>(NR, nc - jr));
            for (int64_t ir = 0; ir < mc; ir += MR)
              kern.gemm_micro(kc, apack.data() + ir * kc, bp + jr * kc, alpha, b_eff,
                              C + (i0 + ir) * ldc + j0 + jr, ldc, int(std::min<int64_t>(MR, mc - ir)), nr);
          }
        }
      });
    }
  }
}
}  // namespace

void gemm_own(const Kernels& k, bool bf16, bool trans_a, bool trans_b, int64_t M, int64_t N,
              int64_t K, float alpha, const void* A, int64_t lda, const void* B, int64_t ldb,
              float beta, float* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {  // C = beta * C (beta == 0: C may hold garbage, even NaN)
    for (int64_t i = 0; i < M; ++i) {
      float* c = C + i * ldc;
      if (beta == 0.0f) std::fill_n(c, N, 0.0f);
      else for (int64_t j = 0; j < N; ++j) c[j] *= beta;
    }
    return;
  }
  if (bf16)
    gemm_blocked(k, trans_a, trans_b, M, N, K, alpha, static_cast<const uint16_t*>(A), lda,
                 static_cast<const uint16_t*>(B), ldb, beta, C, ldc);
  else
    gemm_blocked(k, trans_a, trans_b, M, N, K, alpha, static_cast<const float*>(A), lda,
                 static_cast<const float*>(B), ldb, beta, C, ldc);
}

}  // namespace qs::cpu
