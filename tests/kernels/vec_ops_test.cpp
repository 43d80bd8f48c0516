// The vector kernels: every SIMD build the CPU can run against the scalar reference.
#include "qiusuo/kernels/vec_ops.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "qiusuo/core/cpu.h"
#include "qiusuo/core/dtype.h"
#include "qiusuo/core/rng.h"

namespace qs {
#ifdef QIUSUO_SIMD
#define QS_DECLARE_VEC(ns)                                                                                  \
  namespace ns {                                                                                            \
  float dot(const float*, const float*, int64_t);                                                           \
  void axpy(float, const float*, float*, int64_t);                                                          \
  void dot_rows(const float*, int64_t, int64_t, const float*, int64_t, int64_t, int64_t, float*, int64_t);  \
  void weighted_rows(const float*, int64_t, int64_t, const float*, int64_t, int64_t, int64_t, float*,       \
                     int64_t, bool);                                                                        \
  void rmsnorm(const float*, const float*, float, int64_t, float*);                                         \
  void softmax(float*, int64_t);                                                                            \
  void silu_mul(const float*, const float*, float*, int64_t);                                               \
  void silu_mul_backward(const float*, const float*, const float*, float*, float*, int64_t);                \
  float exp_shift_sum(float*, int64_t, float);                                                              \
  float exp_shift_bf16(const float*, int64_t, float, uint16_t*);                                            \
  float max_value(const float*, int64_t);                                                                   \
  }
QS_DECLARE_VEC(avx512)
QS_DECLARE_VEC(avx2)
#endif
namespace {

std::vector<float> rnd(size_t n, uint64_t seed, double s = 1.0) {
  Rng r(seed);
  std::vector<float> v(n);
  for (auto& x : v) x = float(r.normal() * s);
  return v;
}

struct Impl {
  const char* name;
  float (*dot)(const float*, const float*, int64_t);
  void (*rmsnorm)(const float*, const float*, float, int64_t, float*);
  void (*softmax)(float*, int64_t);
  float (*exp_shift_sum)(float*, int64_t, float);
  void (*dot_rows)(const float*, int64_t, int64_t, const float*, int64_t, int64_t, int64_t, float*, int64_t);
  void (*weighted_rows)(const float*, int64_t, int64_t, const float*, int64_t, int64_t, int64_t, float*, int64_t, bool);
  void (*silu_mul)(const float*, const float*, float*, int64_t);
  void (*silu_mul_backward)(const float*, const float*, const float*, float*, float*, int64_t);
};

std::vector<Impl> impls() {
  std::vector<Impl> v;
#ifdef QIUSUO_SIMD
  const auto& f = cpu_features();
  if (f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq)
    v.push_back({"avx512", avx512::dot, avx512::rmsnorm, avx512::softmax, avx512::exp_shift_sum, avx512::dot_rows,
                 avx512::weighted_rows, avx512::silu_mul, avx512::silu_mul_backward});
  if (f.avx2 && f.fma)
    v.push_back({"avx2", avx2::dot, avx2::rmsnorm, avx2::softmax, avx2::exp_shift_sum, avx2::dot_rows, avx2::weighted_rows,
                 avx2::silu_mul, avx2::silu_mul_backward});
#endif
  v.push_back({"dispatch", dot, rmsnorm, softmax, exp_shift_sum, dot_rows, weighted_rows, silu_mul, silu_mul_backward});
  return v;
}

TEST(VecOps, MatchScalarReference) {
  for (const Impl& k : impls()) {
    for (int64_t n : {1, 15, 16, 17, 33, 100, 576}) {
      auto a = rnd(size_t(n), 1), b = rnd(size_t(n), 2), w = rnd(size_t(n), 3);
      double sa = 0;
      for (int64_t i = 0; i < n; ++i) sa += std::fabs(double(a[i]) * b[i]);
      EXPECT_NEAR(k.dot(a.data(), b.data(), n), ref::dot(a.data(), b.data(), n), 1e-6 * sa + 1e-7) << k.name;
      std::vector<float> y(n), yr(n);
      k.rmsnorm(a.data(), w.data(), 1e-6f, n, y.data());
      ref::rmsnorm(a.data(), w.data(), 1e-6f, n, yr.data());
      for (int64_t i = 0; i < n; ++i) EXPECT_NEAR(y[i], yr[i], 1e-5 * std::fabs(yr[i]) + 1e-6) << k.name;
      {
        auto g = rnd(size_t(n), 7, 4.0), u = rnd(size_t(n), 8), dd = rnd(size_t(n), 9);
        std::vector<float> h(n), hr(n), dg(n), du(n), dgr(n), dur(n);
        k.silu_mul(g.data(), u.data(), h.data(), n);
        ref::silu_mul(g.data(), u.data(), hr.data(), n);
        k.silu_mul_backward(g.data(), u.data(), dd.data(), dg.data(), du.data(), n);
        ref::silu_mul_backward(g.data(), u.data(), dd.data(), dgr.data(), dur.data(), n);
        for (int64_t i = 0; i < n; ++i) {
          EXPECT_NEAR(h[i], hr[i], 1e-6 * std::fabs(hr[i]) + 1e-7) << k.name;
          EXPECT_NEAR(dg[i], dgr[i], 1e-6 * std::fabs(dgr[i]) + 1e-7) << k.name;
          EXPECT_NEAR(du[i], dur[i], 1e-6 * std::fabs(dur[i]) + 1e-7) << k.name;
        }
      }
      auto s = rnd(size_t(n), 4, 5.0), sr = s;
      k.softmax(s.data(), n);
      ref::softmax(sr.data(), n);
      for (int64_t i = 0; i < n; ++i) EXPECT_NEAR(s[i], sr[i], 1e-6 * sr[i] + 1e-9) << k.name << " n=" << n;
    }
    // dot_rows / weighted_rows with strides, against plain loops.
    const int64_t nq = 5, nk = 7, n = 37, ldq = 40, ldk = 41, lds = 9;
    auto Q = rnd(size_t(nq * ldq), 5), K = rnd(size_t(nk * ldk), 6);
    std::vector<float> S(size_t(nq * lds), 0.0f);
    k.dot_rows(Q.data(), nq, ldq, K.data(), nk, ldk, n, S.data(), lds);
    for (int64_t i = 0; i < nq; ++i)
      for (int64_t j = 0; j < nk; ++j)
        EXPECT_NEAR(S[i * lds + j], ref::dot(Q.data() + i * ldq, K.data() + j * ldk, n), 1e-4) << k.name;
    std::vector<float> O(size_t(nq * 40), 1.0f);
    k.weighted_rows(S.data(), nq, lds, K.data(), nk, ldk, n, O.data(), 40, true);
    for (int64_t i = 0; i < nq; ++i)
      for (int64_t c = 0; c < n; ++c) {
        double want = 1.0;
        for (int64_t j = 0; j < nk; ++j) want += double(S[i * lds + j]) * K[j * ldk + c];
        EXPECT_NEAR(O[i * 40 + c], want, 1e-4) << k.name;
      }
  }
}

// dot_rows and weighted_rows compute each value the same way whichever register tile it falls
// in: every row count gives, bit for bit, what one row (one query, one key) at a time gives —
// the batch invariance of attention rests on it (model/mla.h).
TEST(VecOps, AttentionRowsDoNotDependOnTheRowCounts) {
  for (const Impl& k : impls())
    for (int64_t n : {5, 16, 37, 64, 80, 576}) {
      const int64_t nq = 7, nk = 11, ld = n + 3;
      auto Q = rnd(size_t(nq * ld), 11), K = rnd(size_t(nk * ld), 12);
      std::vector<float> S(size_t(nq * nk)), one(1);
      k.dot_rows(Q.data(), nq, ld, K.data(), nk, ld, n, S.data(), nk);
      for (int64_t i = 0; i < nq; ++i)
        for (int64_t j = 0; j < nk; ++j) {
          k.dot_rows(Q.data() + i * ld, 1, ld, K.data() + j * ld, 1, ld, n, one.data(), 1);
          ASSERT_EQ(S[size_t(i * nk + j)], one[0]) << k.name << " n=" << n << " (" << i << ", " << j << ")";
        }
      for (bool acc : {false, true}) {
        std::vector<float> O(size_t(nq * ld), 0.5f), O1(size_t(ld), 0.5f);
        k.weighted_rows(S.data(), nq, nk, K.data(), nk, ld, n, O.data(), ld, acc);
        for (int64_t i = 0; i < nq; ++i) {
          std::fill(O1.begin(), O1.end(), 0.5f);
          k.weighted_rows(S.data() + i * nk, 1, nk, K.data(), nk, ld, n, O1.data(), ld, acc);
          for (int64_t c = 0; c < n; ++c)
            ASSERT_EQ(O[size_t(i * ld + c)], O1[size_t(c)]) << k.name << " n=" << n << " row " << i << " col " << c;
          for (int64_t c = n; c < ld; ++c) ASSERT_EQ(O[size_t(i * ld + c)], 0.5f) << "past n: untouched";
        }
      }
    }
}

// The AVX2 and AVX-512 builds compute every lane by the same operations (simd16.inc) and sum
// lanes in the same order: the same bits from either, so logits do not depend on which of them
// the CPU picks.
TEST(VecOps, SimdBuildsAgreeBitForBit) {
  const auto all = impls();
  if (all.size() < 3) GTEST_SKIP() << "needs two SIMD builds the CPU runs";
  const Impl &a = all[0], &b = all[1];
  auto same = [](const std::vector<float>& x, const std::vector<float>& y) {
    return std::memcmp(x.data(), y.data(), x.size() * sizeof(float)) == 0;
  };
  for (int64_t n : {1, 15, 16, 17, 33, 100, 576, 2051}) {
    const std::string tag = " n=" + std::to_string(n);
    auto x = rnd(size_t(n), 31), y = rnd(size_t(n), 32), w = rnd(size_t(n), 33);
    const float da = a.dot(x.data(), y.data(), n), db = b.dot(x.data(), y.data(), n);
    EXPECT_EQ(std::memcmp(&da, &db, sizeof da), 0) << "dot" << tag;
    std::vector<float> oa(static_cast<size_t>(n)), ob(static_cast<size_t>(n)), ga(oa), gb(ob);
    a.rmsnorm(x.data(), w.data(), 1e-6f, n, oa.data());
    b.rmsnorm(x.data(), w.data(), 1e-6f, n, ob.data());
    EXPECT_TRUE(same(oa, ob)) << "rmsnorm" << tag;
    const auto g = rnd(size_t(n), 34, 6.0);
    a.silu_mul(g.data(), y.data(), oa.data(), n);
    b.silu_mul(g.data(), y.data(), ob.data(), n);
    EXPECT_TRUE(same(oa, ob)) << "silu_mul" << tag;
    a.silu_mul_backward(g.data(), y.data(), w.data(), oa.data(), ga.data(), n);
    b.silu_mul_backward(g.data(), y.data(), w.data(), ob.data(), gb.data(), n);
    EXPECT_TRUE(same(oa, ob) && same(ga, gb)) << "silu_mul_backward" << tag;
    auto sa = rnd(size_t(n), 35, 20.0), sb = sa;
    a.softmax(sa.data(), n);
    b.softmax(sb.data(), n);
    EXPECT_TRUE(same(sa, sb)) << "softmax" << tag;
    const int64_t nq = 6, nk = 1 + n % 13;
    const auto Q = rnd(size_t(nq * n), 36), K = rnd(size_t(nk * n), 37);
    std::vector<float> Sa(size_t(nq * nk)), Sb(Sa.size());
    a.dot_rows(Q.data(), nq, n, K.data(), nk, n, n, Sa.data(), nk);
    b.dot_rows(Q.data(), nq, n, K.data(), nk, n, n, Sb.data(), nk);
    EXPECT_TRUE(same(Sa, Sb)) << "dot_rows" << tag;
    for (bool acc : {false, true}) {
      auto Oa = rnd(size_t(nq * n), 38), Ob = Oa;
      a.weighted_rows(Sa.data(), nq, nk, K.data(), nk, n, n, Oa.data(), n, acc);
      b.weighted_rows(Sa.data(), nq, nk, K.data(), nk, n, n, Ob.data(), n, acc);
      EXPECT_TRUE(same(Oa, Ob)) << "weighted_rows" << tag;
    }
  }
}

// exp_shift_bf16 (BF16 attention's probabilities): each output is the BF16 rounding (nearest
// even) of what exp_shift_sum computes for that element, the sum is that of the rounded values,
// NaN stays NaN; the AVX2 and AVX-512 builds give the same bits.
TEST(VecOps, ExpShiftBf16RoundsExpShiftSum) {
  struct Fns {
    const char* name;
    float (*sum)(float*, int64_t, float);
    float (*bf16)(const float*, int64_t, float, uint16_t*);
  };
  std::vector<Fns> fns = {{"scalar", ref::exp_shift_sum, ref::exp_shift_bf16},
                          {"dispatch", exp_shift_sum, exp_shift_bf16}};
#ifdef QIUSUO_SIMD
  const auto& f = cpu_features();
  if (f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq)
    fns.push_back({"avx512", avx512::exp_shift_sum, avx512::exp_shift_bf16});
  if (f.avx2 && f.fma) fns.push_back({"avx2", avx2::exp_shift_sum, avx2::exp_shift_bf16});
#endif
  std::vector<std::vector<uint16_t>> simd_bits;
  std::vector<float> simd_sums;
  for (const Fns& k : fns)
    for (int64_t n : {1, 15, 16, 17, 100, 256}) {
      auto x = rnd(size_t(n), 41, 6.0);
      x[0] = 3.0f;  // the shift: the largest value
      const std::vector<float> x0 = x;
      std::vector<uint16_t> out(size_t(n) + 1, 0xABCD);
      const float s = k.bf16(x.data(), n, 3.0f, out.data());
      EXPECT_EQ(0, std::memcmp(x.data(), x0.data(), x.size() * sizeof(float))) << k.name << ": x written";
      EXPECT_EQ(out[size_t(n)], 0xABCD) << k.name << ": wrote past n";
      auto e = x;
      k.sum(e.data(), n, 3.0f);
      double want = 0;
      for (int64_t i = 0; i < n; ++i) {
        ASSERT_EQ(out[size_t(i)], f32_to_bf16(e[size_t(i)])) << k.name << " n=" << n << " i=" << i;
        want += bf16_to_f32(out[size_t(i)]);
      }
      EXPECT_NEAR(s, want, 1e-6 * want) << k.name << " n=" << n;
      if (std::string(k.name) == "avx512" || std::string(k.name) == "avx2") {
        simd_bits.push_back(out);
        simd_sums.push_back(s);
      }
    }
  if (simd_bits.size() == 12)
    for (size_t i = 0; i < 6; ++i) {
      EXPECT_EQ(simd_bits[i], simd_bits[i + 6]) << "case " << i;
      EXPECT_EQ(std::memcmp(&simd_sums[i], &simd_sums[i + 6], sizeof(float)), 0) << "case " << i;
    }
  for (const Fns& k : fns) {
    const float x[3] = {0.0f, std::nanf(""), -1.0f};
    uint16_t out[3];
    k.bf16(x, 3, 0.0f, out);
    EXPECT_EQ(out[0], 0x3F80) << k.name;
    EXPECT_TRUE(std::isnan(bf16_to_f32(out[1]))) << k.name;
  }
}

// The polynomial exp of softmax: relative error < 2e-7 over the range it is used on.
TEST(VecOps, ExpAccuracy) {
  for (const Impl& k : impls()) {
    std::vector<float> x;
    for (float v = -87.0f; v <= 0.0f; v += 0.0137f) x.push_back(v);
    for (float v : {0.0f, -1e-8f, -0.5f, -0.6931472f, -20.0f}) x.push_back(v);
    auto y = x;
    const float s = k.exp_shift_sum(y.data(), int64_t(y.size()), 0.0f);
    double ref_sum = 0, worst = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      const double e = std::exp(double(x[i]));
      ref_sum += e;
      worst = std::max(worst, std::fabs(y[i] - e) / e);
    }
    EXPECT_LT(worst, 2e-7) << k.name;
    EXPECT_NEAR(s, ref_sum, 1e-5 * ref_sum) << k.name;
    float big[3] = {-200.0f, 1.0f, 10.0f};
    k.exp_shift_sum(big, 3, 10.0f);
    EXPECT_EQ(big[0], 0.0f);
    EXPECT_NEAR(big[2], 1.0f, 1e-7);
  }
}

}  // namespace
}  // namespace qs
