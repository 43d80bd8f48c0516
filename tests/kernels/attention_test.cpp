// The causal attention kernels (training form) against the double-precision reference, for the
// SIMD builds the CPU runs and odd sizes (S not a multiple of 16, head dims over 64).
#include "qiusuo/kernels/attention.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "qiusuo/core/rng.h"

namespace qs {
namespace {

std::vector<float> rnd(size_t n, uint64_t seed) {
  Rng r(seed);
  std::vector<float> v(n);
  for (auto& x : v) x = float(r.normal());
  return v;
}

void expect_close(const std::vector<float>& a, const std::vector<float>& b, double tol, const char* what) {
  ASSERT_EQ(a.size(), b.size());
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::fabs(double(a[i]) - b[i]));
  EXPECT_LT(worst, tol) << what;
}

TEST(Attention, CausalForwardAndBackwardMatchReference) {
  for (auto [S, dk, dv] : {std::tuple{1, 3, 2}, std::tuple{17, 48, 32}, std::tuple{64, 24, 16}, std::tuple{130, 80, 72}}) {
    const int64_t ldq = dk + 3, ldk = dk + 5, ldv = dv + 1;
    auto Q = rnd(size_t(S * ldq), 1), K = rnd(size_t(S * ldk), 2), V = rnd(size_t(S * ldv), 3), dO = rnd(size_t(S * dv), 4);
    const float scale = 1.0f / std::sqrt(float(dk));
    std::vector<float> P(S * S), O(S * dv), Pr(S * S), Or(S * dv), scratch(attention_scratch_floats(S, dk, dv));
    causal_attention_forward(Q.data(), ldq, K.data(), ldk, V.data(), ldv, S, dk, dv, scale, P.data(), O.data(), dv,
                             scratch.data());
    ref::causal_attention_forward(Q.data(), ldq, K.data(), ldk, V.data(), ldv, S, dk, dv, scale, Pr.data(), Or.data(), dv);
    expect_close(P, Pr, 2e-6, "P");
    expect_close(O, Or, 2e-5, "O");
    std::vector<float> dQ(S * dk), dK(S * dk), dV(S * dv), dQr(S * dk), dKr(S * dk), dVr(S * dv);
    causal_attention_backward(Q.data(), ldq, K.data(), ldk, V.data(), ldv, Pr.data(), dO.data(), dv, S, dk, dv, scale,
                              dQ.data(), dk, dK.data(), dk, dV.data(), dv, scratch.data());
    ref::causal_attention_backward(Q.data(), ldq, K.data(), ldk, V.data(), ldv, Pr.data(), dO.data(), dv, S, dk, dv,
                                   scale, dQr.data(), dk, dKr.data(), dk, dVr.data(), dv);
    expect_close(dV, dVr, 3e-5, "dV");
    expect_close(dQ, dQr, 3e-5, "dQ");
    expect_close(dK, dKr, 3e-5, "dK");
  }
}

}  // namespace
}  // namespace qs
