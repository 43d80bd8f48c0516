// gemm_f32 / gemm_bf16 (oneDNN when built with it) and the own blocked kernel of every ISA
// against gemm_ref: all four transpose combinations, padded leading dimensions, alpha/beta,
// odd shapes (partial micro-tiles and K blocks), determinism.
#include "qiusuo/kernels/gemm.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "kernels/kernel_test_util.h"
#include "qiusuo/core/error.h"
#include "qiusuo/core/parallel.h"

namespace qs {
namespace {

struct Case {
  int64_t M, N, K;
};
// Partial 12x32 / 6x16 / 4x8 tiles, several 256-wide K blocks, tile counts > thread count.
constexpr Case kCases[] = {{1, 1, 1}, {5, 7, 3}, {33, 65, 17}, {130, 97, 300}, {13, 300, 257}, {200, 290, 520}};

struct Problem {
  bool ta, tb;
  int64_t M, N, K, lda, ldb, ldc;
  float alpha, beta;
  std::vector<float> A, B, C0;
  std::vector<uint16_t> Ab, Bb;
  std::vector<double> mag;  // Σ_k |alpha a b| + |beta c| per element

  Problem(bool ta_, bool tb_, const Case& c, float alpha_, float beta_, bool bf16)
      : ta(ta_), tb(tb_), M(c.M), N(c.N), K(c.K), alpha(alpha_), beta(beta_) {
    lda = (ta ? M : K) + 3;
    ldb = (tb ? K : N) + 5;
    ldc = N + 2;
    A = test::random_floats(size_t((ta ? K : M) * lda), uint32_t(M * 31 + K));
    B = test::random_floats(size_t((tb ? N : K) * ldb), uint32_t(N * 17 + K));
    C0 = test::random_floats(size_t(M * ldc), 5);
    if (bf16) {  // the F32 inputs hold the BF16 values exactly
      Ab.resize(A.size());
      Bb.resize(B.size());
      for (size_t i = 0; i < A.size(); ++i) A[i] = bf16_to_f32(Ab[i] = f32_to_bf16(A[i]));
      for (size_t i = 0; i < B.size(); ++i) B[i] = bf16_to_f32(Bb[i] = f32_to_bf16(B[i]));
    }
    mag.assign(size_t(M * N), 0.0);
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) {
        double s = 0;
        for (int64_t k = 0; k < K; ++k)
          s += std::fabs(double(a(i, k)) * b(k, j));
        mag[size_t(i * N + j)] = std::fabs(alpha) * s + (beta == 0 ? 0.0 : std::fabs(beta * C0[size_t(i * ldc + j)]));
      }
  }
  float a(int64_t i, int64_t k) const { return ta ? A[size_t(k * lda + i)] : A[size_t(i * lda + k)]; }
  float b(int64_t k, int64_t j) const { return tb ? B[size_t(j * ldb + k)] : B[size_t(k * ldb + j)]; }

  // C as passed in: beta == 0 gets NaN garbage (it must not be read).
  std::vector<float> c_in() const {
    std::vector<float> c = C0;
    if (beta == 0.0f)
      for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < N; ++j) c[size_t(i * ldc + j)] = std::numeric_limits<float>::quiet_NaN();
    return c;
  }
  std::vector<float> reference() const {
    std::vector<float> c = c_in();
    gemm_ref(ta, tb, M, N, K, alpha, A.data(), lda, B.data(), ldb, beta, c.data(), ldc);
    return c;
  }
  void expect_close(const std::vector<float>& got, const std::vector<float>& want, double tol) const {
    int bad = 0;
    for (int64_t i = 0; i < M; ++i) {
      for (int64_t j = 0; j < ldc; ++j) {
        const size_t p = size_t(i * ldc + j);
        if (j >= N) {  // padding untouched
          if (!(got[p] == C0[p] || (std::isnan(got[p]) && std::isnan(C0[p]))) && bad++ < 5)
            ADD_FAILURE() << "padding C[" << i << "][" << j << "] written";
          continue;
        }
        const double err = std::fabs(double(got[p]) - want[p]);
        if (!(err <= tol * mag[size_t(i * N + j)] + 1e-6) && bad++ < 5)
          ADD_FAILURE() << "C[" << i << "][" << j << "] = " << got[p] << ", want " << want[p];
      }
    }
    EXPECT_EQ(bad, 0);
  }
};

// gemm_ref itself against a direct formula on one small case with transposes and beta.
TEST(Gemm, ReferenceIsCorrect) {
  const float A[6] = {1, 2, 3, 4, 5, 6};    // Aᵀ stored: A is [K=2, M=3], lda 3
  const float B[4] = {1, 0, 2, 1};          // B is [K=2, N=2]
  float C[6] = {1, 1, 1, 1, 1, 1};
  gemm_ref(true, false, 3, 2, 2, 2.0f, A, 3, B, 2, 0.5f, C, 2);
  // op(A)[i][k] = A[k*3 + i]; C = 2 op(A) B + 0.5
  const float want[6] = {2 * (1 + 4 * 2) + 0.5f, 2 * 4 + 0.5f, 2 * (2 + 5 * 2) + 0.5f,
                         2 * 5 + 0.5f,           2 * (3 + 6 * 2) + 0.5f, 2 * 6 + 0.5f};
  for (int i = 0; i < 6; ++i) EXPECT_FLOAT_EQ(C[i], want[i]) << i;
}

// Every case in all four transpose combinations, for each (alpha, beta): the public entry point
// (gemm_f32, or gemm_bf16 on the BF16 operands) twice (deterministic) and every runnable own
// kernel, against the reference.
void check_all_transposes(bool bf16, std::initializer_list<std::pair<float, float>> alpha_beta) {
  for (const Case& c : kCases)
    for (int t = 0; t < 4; ++t)
      for (auto [alpha, beta] : alpha_beta) {
        const Problem p(t & 1, t & 2, c, alpha, beta, bf16);
        SCOPED_TRACE(testing::Message() << "M=" << c.M << " N=" << c.N << " K=" << c.K << " ta=" << p.ta
                                        << " tb=" << p.tb << " alpha=" << alpha << " beta=" << beta);
        const void* A = bf16 ? static_cast<const void*>(p.Ab.data()) : p.A.data();
        const void* B = bf16 ? static_cast<const void*>(p.Bb.data()) : p.B.data();
        auto run = [&](std::vector<float>& out) {
          if (bf16)
            gemm_bf16(p.ta, p.tb, p.M, p.N, p.K, alpha, p.Ab.data(), p.lda, p.Bb.data(), p.ldb, beta, out.data(), p.ldc);
          else
            gemm_f32(p.ta, p.tb, p.M, p.N, p.K, alpha, p.A.data(), p.lda, p.B.data(), p.ldb, beta, out.data(), p.ldc);
        };
        const auto want = p.reference();
        auto got = p.c_in();
        run(got);
        p.expect_close(got, want, 1e-5);
        auto again = p.c_in();
        run(again);
        EXPECT_EQ(0, std::memcmp(got.data(), again.data(), got.size() * 4)) << "not deterministic";
        for (const cpu::Kernels* k : test::runnable_kernels()) {
          SCOPED_TRACE(isa_name(k->isa));
          auto own = p.c_in();
          cpu::gemm_own(*k, bf16, p.ta, p.tb, p.M, p.N, p.K, alpha, A, p.lda, B, p.ldb, beta, own.data(), p.ldc);
          p.expect_close(own, want, 1e-5);
        }
      }
}

TEST(Gemm, F32AllTransposesMatchReference) {
  check_all_transposes(false, {{1.0f, 0.0f}, {0.5f, 1.0f}, {-1.25f, -0.75f}});
}

TEST(Gemm, Bf16AllTransposesMatchReference) {
  // BF16 x BF16 products are exact in F32: only the F32 accumulation order differs.
  check_all_transposes(true, {{1.0f, 0.0f}, {0.5f, 1.0f}});
}

TEST(Gemm, OwnKernelIsBitIdenticalAcrossThreadCounts) {
  const Problem p(false, true, Case{300, 530, 700}, 1.0f, 0.0f, false);
  const int saved = num_threads();
  std::vector<std::vector<float>> outs;
  for (int nt : {1, 2, 3}) {
    set_num_threads(nt);
    auto c = p.c_in();
    cpu::gemm_own(cpu::kernels(), false, p.ta, p.tb, p.M, p.N, p.K, 1.0f, p.A.data(), p.lda, p.B.data(), p.ldb,
                  0.0f, c.data(), p.ldc);
    outs.push_back(std::move(c));
  }
  set_num_threads(saved);
  EXPECT_EQ(0, std::memcmp(outs[0].data(), outs[1].data(), outs[0].size() * 4));
  EXPECT_EQ(0, std::memcmp(outs[0].data(), outs[2].data(), outs[0].size() * 4));
}

TEST(Gemm, EmptyAndZeroK) {
  std::vector<float> C = {1, 2, 3, 4};
  gemm_f32(false, false, 0, 2, 3, 1.0f, nullptr, 3, nullptr, 2, 0.0f, C.data(), 2);  // M = 0: no-op
  EXPECT_EQ(C[0], 1.0f);
  gemm_f32(false, false, 2, 2, 0, 1.0f, nullptr, 1, nullptr, 2, 0.5f, C.data(), 2);  // K = 0: C *= beta
  EXPECT_EQ(C[3], 2.0f);
  C[0] = std::numeric_limits<float>::quiet_NaN();
  gemm_bf16(false, false, 2, 2, 0, 1.0f, nullptr, 1, nullptr, 2, 0.0f, C.data(), 2);  // beta 0: zeros
  EXPECT_EQ(C[0], 0.0f);
}

TEST(Gemm, RejectsBadLeadingDimensions) {
  std::vector<float> A(64), B(64), C(64);
  EXPECT_THROW(gemm_f32(false, false, 4, 4, 4, 1.0f, A.data(), 3, B.data(), 4, 0.0f, C.data(), 4), Error);
  EXPECT_THROW(gemm_f32(true, false, 4, 4, 5, 1.0f, A.data(), 3, B.data(), 4, 0.0f, C.data(), 4), Error);
  EXPECT_THROW(gemm_f32(false, true, 4, 4, 4, 1.0f, A.data(), 4, B.data(), 3, 0.0f, C.data(), 4), Error);
  EXPECT_THROW(gemm_f32(false, false, 4, 4, 4, 1.0f, A.data(), 4, B.data(), 4, 0.0f, C.data(), 3), Error);
}

}  // namespace
}  // namespace qs
