// The training vector kernels (kernels/train_vec.h): every SIMD build the CPU can run against
// the scalar reference, on lengths that exercise the vector body and the scalar tail.
#include "qiusuo/kernels/train_vec.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "qiusuo/core/cpu.h"
#include "qiusuo/core/rng.h"

namespace qs {
#ifdef QIUSUO_SIMD
#define QS_DECLARE_TRAIN_VEC(ns)                                                                                 \
  namespace ns {                                                                                                 \
  float rmsnorm_row(const float*, const float*, float, int64_t, float*);                                         \
  void rmsnorm_row_backward(const float*, const float*, float, const float*, int64_t, float*, float*, bool);      \
  void add(const float*, const float*, float*, int64_t);                                                         \
  void scale_copy(float, const float*, float*, int64_t);                                                         \
  void adamw_update(float*, const float*, float*, float*, int64_t, float, float, float, float, float, float);    \
  double sum_squares(const float*, int64_t);                                                                     \
  }
QS_DECLARE_TRAIN_VEC(train_avx512)
QS_DECLARE_TRAIN_VEC(train_avx2)
#endif
namespace {

std::vector<float> rnd(size_t n, uint64_t seed, double s = 1.0, double offset = 0.0) {
  Rng r(seed);
  std::vector<float> v(n);
  for (auto& x : v) x = float(offset + r.normal() * s);
  return v;
}

struct Impl {
  const char* name;
  float (*rmsnorm_row)(const float*, const float*, float, int64_t, float*);
  void (*rmsnorm_row_backward)(const float*, const float*, float, const float*, int64_t, float*, float*, bool);
  void (*add)(const float*, const float*, float*, int64_t);
  void (*scale_copy)(float, const float*, float*, int64_t);
  void (*adamw_update)(float*, const float*, float*, float*, int64_t, float, float, float, float, float, float);
  double (*sum_squares)(const float*, int64_t);
};

std::vector<Impl> simd_impls() {
  std::vector<Impl> v;
#ifdef QIUSUO_SIMD
  const auto& f = cpu_features();
  if (f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq)
    v.push_back({"avx512", train_avx512::rmsnorm_row, train_avx512::rmsnorm_row_backward, train_avx512::add,
                 train_avx512::scale_copy, train_avx512::adamw_update, train_avx512::sum_squares});
  if (f.avx2 && f.fma)
    v.push_back({"avx2", train_avx2::rmsnorm_row, train_avx2::rmsnorm_row_backward, train_avx2::add,
                 train_avx2::scale_copy, train_avx2::adamw_update, train_avx2::sum_squares});
#endif
  return v;
}

// |a − b| <= rel · scale, scale = max |b| (or the given magnitude of the terms that cancel in b).
void expect_close(const std::vector<float>& a, const std::vector<float>& b, double rel, const std::string& what,
                  double scale = 0) {
  ASSERT_EQ(a.size(), b.size());
  for (float x : b) scale = std::max(scale, double(std::fabs(x)));
  for (size_t i = 0; i < a.size(); ++i)
    ASSERT_LE(std::fabs(double(a[i]) - b[i]), rel * scale + 1e-30) << what << " [" << i << "]";
}

TEST(TrainVec, SimdMatchesTheReference) {
  const auto impls = simd_impls();
  if (impls.empty()) GTEST_SKIP() << "no SIMD build for this CPU";
  for (const Impl& k : impls) {
    for (int64_t n : {1, 15, 16, 37, 384, 1000}) {
      const std::string tag = std::string(k.name) + " n=" + std::to_string(n);
      const auto x = rnd(size_t(n), 1, 2.0), w = rnd(size_t(n), 2, 0.2, 1.0), dy = rnd(size_t(n), 3);
      std::vector<float> y(static_cast<size_t>(n)), yr(static_cast<size_t>(n));
      const float r = k.rmsnorm_row(x.data(), w.data(), 1e-6f, n, y.data());
      const float rr = ref::rmsnorm_row(x.data(), w.data(), 1e-6f, n, yr.data());
      EXPECT_NEAR(r, rr, 1e-6 * rr) << tag;
      expect_close(y, yr, 1e-6, "rmsnorm_row " + tag);
      double terms = 0;  // dx = r·w·dy − x·k: the two terms may cancel (n = 1: exactly)
      for (int64_t i = 0; i < n; ++i) terms = std::max(terms, 2.0 * std::fabs(double(rr) * w[i] * dy[i]));
      for (bool acc : {false, true}) {
        std::vector<float> dx = rnd(size_t(n), 4), dxr = dx, dw = rnd(size_t(n), 5), dwr = dw;
        k.rmsnorm_row_backward(x.data(), w.data(), rr, dy.data(), n, dx.data(), dw.data(), acc);
        ref::rmsnorm_row_backward(x.data(), w.data(), rr, dy.data(), n, dxr.data(), dwr.data(), acc);
        expect_close(dx, dxr, 2e-6, "rmsnorm_row_backward dx " + tag, terms);
        expect_close(dw, dwr, 1e-6, "rmsnorm_row_backward dw " + tag);
      }
      std::vector<float> o(static_cast<size_t>(n)), orr(static_cast<size_t>(n));
      k.add(x.data(), dy.data(), o.data(), n);
      ref::add(x.data(), dy.data(), orr.data(), n);
      EXPECT_EQ(o, orr) << tag;
      k.scale_copy(0.37f, x.data(), o.data(), n);
      ref::scale_copy(0.37f, x.data(), orr.data(), n);
      EXPECT_EQ(o, orr) << tag;
      std::vector<float> p = rnd(size_t(n), 6), m = rnd(size_t(n), 7, 0.1), v = rnd(size_t(n), 8, 0.01);
      for (auto& e : v) e = std::fabs(e);
      std::vector<float> pr = p, mr = m, vr = v;
      k.adamw_update(p.data(), dy.data(), m.data(), v.data(), n, 0.9f, 0.95f, 1e-3f, 1.5f, 1e-8f, 0.999f);
      ref::adamw_update(pr.data(), dy.data(), mr.data(), vr.data(), n, 0.9f, 0.95f, 1e-3f, 1.5f, 1e-8f, 0.999f);
      expect_close(m, mr, 1e-6, "adamw m " + tag);  // FMA contraction in the SIMD builds: an ulp or so
      expect_close(v, vr, 1e-6, "adamw v " + tag);
      expect_close(p, pr, 1e-6, "adamw w " + tag);
      EXPECT_NEAR(k.sum_squares(x.data(), n), ref::sum_squares(x.data(), n), 1e-12 * ref::sum_squares(x.data(), n))
          << tag;
    }
  }
}

// The AVX2 and AVX-512 builds compute every lane by the same operations (simd16.inc): the same bits
// from either, so a training run does not depend on which of them the CPU picks.
TEST(TrainVec, SimdBuildsAgreeBitForBit) {
  const auto impls = simd_impls();
  if (impls.size() < 2) GTEST_SKIP() << "needs two SIMD builds the CPU runs";
  const Impl &a = impls[0], &b = impls[1];
  auto same = [](const std::vector<float>& x, const std::vector<float>& y) {
    return std::memcmp(x.data(), y.data(), x.size() * sizeof(float)) == 0;
  };
  for (int64_t n : {1, 15, 16, 17, 31, 48, 384, 1000, 2051}) {
    const std::string tag = " n=" + std::to_string(n);
    const auto x = rnd(size_t(n), 21, 2.0), w = rnd(size_t(n), 22, 0.2, 1.0), dy = rnd(size_t(n), 23);
    std::vector<float> ya(static_cast<size_t>(n)), yb(static_cast<size_t>(n));
    const float ra = a.rmsnorm_row(x.data(), w.data(), 1e-6f, n, ya.data());
    const float rb = b.rmsnorm_row(x.data(), w.data(), 1e-6f, n, yb.data());
    EXPECT_TRUE(ra == rb && same(ya, yb)) << "rmsnorm_row" << tag;
    for (bool acc : {false, true}) {
      std::vector<float> dxa = rnd(size_t(n), 24), dxb = dxa, dwa = rnd(size_t(n), 25), dwb = dwa;
      a.rmsnorm_row_backward(x.data(), w.data(), ra, dy.data(), n, dxa.data(), dwa.data(), acc);
      b.rmsnorm_row_backward(x.data(), w.data(), ra, dy.data(), n, dxb.data(), dwb.data(), acc);
      EXPECT_TRUE(same(dxa, dxb) && same(dwa, dwb)) << "rmsnorm_row_backward" << tag;
    }
    a.add(x.data(), dy.data(), ya.data(), n);
    b.add(x.data(), dy.data(), yb.data(), n);
    EXPECT_TRUE(same(ya, yb)) << "add" << tag;
    a.scale_copy(0.37f, x.data(), ya.data(), n);
    b.scale_copy(0.37f, x.data(), yb.data(), n);
    EXPECT_TRUE(same(ya, yb)) << "scale_copy" << tag;
    std::vector<float> pa = rnd(size_t(n), 26), ma = rnd(size_t(n), 27, 0.1), va = rnd(size_t(n), 28, 0.01);
    for (auto& e : va) e = std::fabs(e);
    std::vector<float> pb = pa, mb = ma, vb = va;
    for (int step = 0; step < 3; ++step) {
      a.adamw_update(pa.data(), dy.data(), ma.data(), va.data(), n, 0.9f, 0.95f, 1e-3f, 1.5f, 1e-8f, 0.999f);
      b.adamw_update(pb.data(), dy.data(), mb.data(), vb.data(), n, 0.9f, 0.95f, 1e-3f, 1.5f, 1e-8f, 0.999f);
    }
    EXPECT_TRUE(same(pa, pb) && same(ma, mb) && same(va, vb)) << "adamw_update" << tag;
    const double sa = a.sum_squares(x.data(), n), sb = b.sum_squares(x.data(), n);
    EXPECT_EQ(std::memcmp(&sa, &sb, sizeof sa), 0) << "sum_squares" << tag;
  }
}

// The reference itself against the formulas in double.
TEST(TrainVec, ReferenceIsTheFormula) {
  const int64_t n = 10;
  const auto x = rnd(size_t(n), 11), w = rnd(size_t(n), 12, 0.1, 1.0), dy = rnd(size_t(n), 13);
  std::vector<float> y(static_cast<size_t>(n)), dx(static_cast<size_t>(n)), dw(static_cast<size_t>(n), 0.f);
  const float r = ref::rmsnorm_row(x.data(), w.data(), 1e-5f, n, y.data());
  double ss = 0, dot = 0;
  for (int64_t i = 0; i < n; ++i) ss += double(x[i]) * x[i];
  const double rd = 1.0 / std::sqrt(ss / n + 1e-5);
  EXPECT_NEAR(r, rd, 1e-6 * rd);
  for (int64_t i = 0; i < n; ++i) EXPECT_NEAR(y[i], x[i] * rd * w[i], 1e-6);
  ref::rmsnorm_row_backward(x.data(), w.data(), float(rd), dy.data(), n, dx.data(), dw.data(), false);
  for (int64_t i = 0; i < n; ++i) dot += double(x[i]) * w[i] * dy[i];
  for (int64_t i = 0; i < n; ++i) {
    EXPECT_NEAR(dx[i], rd * w[i] * dy[i] - x[i] * rd * rd * rd * dot / n, 1e-5);
    EXPECT_NEAR(dw[i], x[i] * rd * dy[i], 1e-6);
  }
}

}  // namespace
}  // namespace qs
