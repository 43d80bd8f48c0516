// Decode attention over BF16 rows (kernels/attention.h: attn_scores_bf16, attn_values_bf16):
//  - every ISA's value kernel gives the scalar reference's bits (random probabilities and rows,
//    values near the F32 denormal range where vdpbf16ps flushes, odd key counts, column counts
//    not a multiple of 16 or 32, padded strides, accumulate on and off), so on a CPU with
//    AVX512_BF16 this also checks the reference's model of vdpbf16ps;
//  - an output row is a function of its own P row and V alone (one row at a time = all rows);
//  - accuracy against a double-precision sum of the same BF16 products;
//  - the scores are linear()'s BF16 dot products (the scalar reference's bits).
#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/kernel_test_util.h"
#include "qiusuo/core/dtype.h"
#include "qiusuo/kernels/attention.h"

namespace qs {
namespace {

constexpr float kSentinel = -12345.0f;

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

// BF16 values with random signs and exponents in [lo, hi] (probabilities: positive, in (0, 1]).
std::vector<uint16_t> bf16_values(size_t n, uint32_t seed, int lo, int hi, bool positive) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(1.0f, 2.0f);
  std::vector<uint16_t> v(n);
  for (auto& b : v) {
    float f = std::ldexp(u(rng), lo + int(rng() % uint32_t(hi - lo + 1)));
    if (!positive && (rng() & 1)) f = -f;
    if (rng() % 16 == 0) f = 0.0f;
    b = f32_to_bf16(f);
  }
  return v;
}

struct Case {
  int64_t nq, nk, n, ldp, ldv, ldo;
  std::vector<uint16_t> P, V;
  std::vector<float> O0;  // the accumulate = true starting values (sentinels past n)
};

Case make_case(int64_t nq, int64_t nk, int64_t n, uint32_t seed, int vlo = -6, int vhi = 6) {
  Case c{nq, nk, n, nk + 3, n + 5, n + 2, {}, {}, {}};
  c.P = bf16_values(size_t(nq * c.ldp), seed, -20, 0, true);
  c.V = bf16_values(size_t(std::max<int64_t>(nk, 1) * c.ldv), seed + 1, vlo, vhi, false);
  const auto o = bf16_values(size_t(nq * c.ldo), seed + 2, -4, 4, false);
  c.O0.resize(o.size());
  for (size_t i = 0; i < o.size(); ++i) c.O0[i] = int64_t(i) % c.ldo < n ? bf16_to_f32(o[i]) : kSentinel;
  return c;
}

std::vector<float> run(const cpu::Kernels& k, const Case& c, bool accumulate, int64_t row0 = 0, int64_t rows = -1) {
  if (rows < 0) rows = c.nq;
  std::vector<float> O = c.O0;
  k.attn_values_bf16(c.P.data() + row0 * c.ldp, rows, c.ldp, c.V.data(), c.nk, c.ldv, c.n, O.data() + row0 * c.ldo,
                     c.ldo, accumulate);
  return O;
}

void expect_same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  ASSERT_EQ(a.size(), b.size());
  int bad = 0;
  for (size_t i = 0; i < a.size() && bad < 5; ++i)
    if (bits(a[i]) != bits(b[i])) {
      ADD_FAILURE() << "element " << i << ": " << a[i] << " (0x" << std::hex << bits(a[i]) << ") vs " << b[i]
                    << " (0x" << bits(b[i]) << std::dec << ")";
      ++bad;
    }
}

TEST(AttnValuesBf16, EveryIsaMatchesScalarBitwise) {
  const cpu::Kernels* scalar = cpu::kernels_for(Isa::Scalar);
  int compared = 0;
  for (int64_t nq : {1, 2, 3, 5, 8, 9, 16, 17})
    for (int64_t nk : {0, 1, 2, 3, 7, 64, 65})
      for (int64_t n : {1, 15, 16, 31, 33, 64, 100}) {
        const Case c = make_case(nq, nk, n, uint32_t(nq * 1000 + nk * 10 + n));
        for (bool acc : {false, true}) {
          SCOPED_TRACE(testing::Message() << "nq=" << nq << " nk=" << nk << " n=" << n << " accumulate=" << acc);
          const auto ref = run(*scalar, c, acc);
          for (int64_t i = 0; i < c.nq * c.ldo; ++i) {
            if (i % c.ldo >= n) {
              ASSERT_EQ(ref[size_t(i)], kSentinel) << "wrote past n at " << i;
            }
          }
          for (const cpu::Kernels* k : test::runnable_kernels()) {
            if (k == scalar) continue;
            SCOPED_TRACE(isa_name(k->isa));
            expect_same_bits(run(*k, c, acc), ref);
            ++compared;
          }
        }
      }
  if (test::runnable_kernels().size() > 1) {
    EXPECT_GT(compared, 0);
  }
}

// Sums that pass through the F32 denormal range: vdpbf16ps flushes them (FTZ) and ignores
// denormal inputs (DAZ); the FMA version and the reference must do the same.
TEST(AttnValuesBf16, FlushesAsVdpbf16psAcrossIsas) {
  const cpu::Kernels* scalar = cpu::kernels_for(Isa::Scalar);
  int flushed = 0;
  for (int64_t nk : {2, 5, 40}) {
    Case c = make_case(4, nk, 48, uint32_t(nk), -130, -100);  // rows around 2^-126
    for (auto& p : c.P) p = f32_to_bf16(std::ldexp(bf16_to_f32(p), -4));
    for (int64_t i = 0; i < 4 * c.ldo; ++i)
      if (i % c.ldo < c.n)
        c.O0[size_t(i)] = i % 3 ? std::ldexp(1.0f, -120) * float(i % 7) * (i % 2 ? -1.0f : 1.0f) : 0.0f;
    SCOPED_TRACE(testing::Message() << "nk=" << nk);
    const auto ref = run(*scalar, c, true);
    for (float v : ref) flushed += v == 0.0f;
    for (const cpu::Kernels* k : test::runnable_kernels()) {
      if (k == scalar) continue;
      SCOPED_TRACE(isa_name(k->isa));
      expect_same_bits(run(*k, c, true), ref);
    }
  }
  EXPECT_GT(flushed, 0) << "the data should reach the flush range";
}

// A row's result does not depend on the rows computed with it (tiles of 8 / 4 query rows).
TEST(AttnValuesBf16, RowsAreIndependentOfTheirTile) {
  const Case c = make_case(19, 33, 70, 7);
  for (const cpu::Kernels* k : test::runnable_kernels()) {
    SCOPED_TRACE(isa_name(k->isa));
    const auto all = run(*k, c, false);
    for (int64_t i = 0; i < c.nq; ++i) {
      const auto one = run(*k, c, false, i, 1);
      for (int64_t col = 0; col < c.n; ++col)
        ASSERT_EQ(bits(one[size_t(i * c.ldo + col)]), bits(all[size_t(i * c.ldo + col)])) << i << "," << col;
    }
  }
}

// The sums of exact products, each pair's two additions rounded: |O - exact| <= nk · 2^-24 ·
// Σ|p v| (plus |O0| for accumulate), far below BF16's own 2^-9 rounding of the inputs.
TEST(AttnValuesBf16, WithinRoundingOfExactSum) {
  const Case c = make_case(6, 200, 96, 11);
  const auto O = run(cpu::kernels(), c, true);
  for (int64_t i = 0; i < c.nq; ++i)
    for (int64_t col = 0; col < c.n; ++col) {
      double exact = c.O0[size_t(i * c.ldo + col)], mag = std::fabs(exact);
      for (int64_t j = 0; j < c.nk; ++j) {
        const double t = double(bf16_to_f32(c.P[size_t(i * c.ldp + j)])) * bf16_to_f32(c.V[size_t(j * c.ldv + col)]);
        exact += t;
        mag += std::fabs(t);
      }
      EXPECT_LE(std::fabs(O[size_t(i * c.ldo + col)] - exact), double(c.nk + 1) * std::ldexp(1.0, -24) * mag)
          << i << "," << col;
    }
}

// Scores: linear()'s BF16 dot products of the query rows with the key rows — the scalar
// linear_bf16's bits under any QIUSUO_ISA (query counts around linear_bf16's tiles, widths not a
// multiple of 32, sums near the denormal range) — and the query stride's padding.
TEST(AttnScoresBf16, GiveLinearBf16Bits) {
  EXPECT_EQ(attn_bf16_query_stride(1), cpu::kBf16Pad);
  EXPECT_EQ(attn_bf16_query_stride(576), 576);
  EXPECT_EQ(attn_bf16_query_stride(577), 640);
  const cpu::Kernels* scalar = cpu::kernels_for(Isa::Scalar);
  for (int64_t W : {24, 80, 576})
    for (int64_t nq : {1, 3, 4, 5, 9, 13, 16, 17, 33})
      for (int lo : {-3, -66}) {
        const int64_t nk = 37, ldq = attn_bf16_query_stride(W), lds = nk + 4;
        auto Q = bf16_values(size_t(nq * ldq), uint32_t(W + nq), lo, lo + 6, false);
        for (int64_t i = 0; i < nq; ++i) std::fill(Q.begin() + i * ldq + W, Q.begin() + (i + 1) * ldq, uint16_t(0));
        const auto K = bf16_values(size_t(nk * W), uint32_t(W + 1), lo, lo + 6, false);
        WeightMatrix Wm;
        Wm.dtype = DType::BF16;
        Wm.rows = nk;
        Wm.cols = W;
        Wm.data = K.data();
        std::vector<float> R(size_t(nq * lds), kSentinel);
        scalar->linear_bf16(Q.data(), ldq, nq, Wm, 0, nk, R.data(), lds);
        SCOPED_TRACE(testing::Message() << "W=" << W << " nq=" << nq << " exponents from " << lo);
        std::vector<float> S(size_t(nq * lds), kSentinel);
        attn_scores_bf16(Q.data(), nq, ldq, K.data(), nk, W, S.data(), lds);
        expect_same_bits(S, R);
        if (lo != -3) continue;
        double worst = 0;
        for (int64_t i = 0; i < nq; ++i)
          for (int64_t j = 0; j < nk; ++j) {
            double exact = 0, mag = 0;
            for (int64_t c = 0; c < W; ++c) {
              const double t = double(bf16_to_f32(Q[size_t(i * ldq + c)])) * bf16_to_f32(K[size_t(j * W + c)]);
              exact += t;
              mag += std::fabs(t);
            }
            worst = std::max(worst, std::fabs(S[size_t(i * lds + j)] - exact) / mag);
          }
        EXPECT_LT(worst, 1e-5);
      }
}

}  // namespace
}  // namespace qs
