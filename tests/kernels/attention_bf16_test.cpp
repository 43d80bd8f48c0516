// The causal attention kernels with BF16 products (kernels/attention.h) against the double-
// precision reference: the error is that of rounding each product's inputs to BF16 (8 bits of
// mantissa, relative 2^-9 per input), so the bound is a small multiple of 2^-8 of the outputs'
// scale — far below what a wrong mask, block or transpose gives (errors of the outputs' size).
// P and the scratch start as NaN, so that reading what the kernels leave unwritten shows.
#include "qiusuo/kernels/attention.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <tuple>
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

// max |a − b| over max |b|.
double rel_error(const std::vector<float>& a, const std::vector<float>& b) {
  double worst = 0, scale = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    worst = std::max(worst, std::fabs(double(a[i]) - b[i]));
    scale = std::max(scale, std::fabs(double(b[i])));
  }
  return scale > 0 ? worst / scale : worst;  // (S = 1: dQ, dK are exactly 0)
}

// max |a − b| over max |b| within the causal part (j <= i) of [S, S] matrices.
double rel_error_causal(const std::vector<float>& a, const std::vector<float>& b, int64_t S) {
  std::vector<float> x, y;
  for (int64_t i = 0; i < S; ++i)
    for (int64_t j = 0; j <= i; ++j) {
      x.push_back(a[size_t(i * S + j)]);
      y.push_back(b[size_t(i * S + j)]);
    }
  return rel_error(x, y);
}

TEST(AttentionBf16, CausalForwardAndBackwardMatchReferenceToBf16Precision) {
  const double bound = 8.0 / 256;  // 8 · 2^-8
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (auto [S, dk, dv] : {std::tuple{1, 3, 2}, std::tuple{17, 48, 32}, std::tuple{130, 80, 72}, std::tuple{300, 48, 32}}) {
    const int64_t ldq = dk + 3, ldk = dk + 5, ldv = dv + 1;
    auto Q = rnd(size_t(S * ldq), 1), K = rnd(size_t(S * ldk), 2), V = rnd(size_t(S * ldv), 3), dO = rnd(size_t(S * dv), 4);
    const float scale = 1.0f / std::sqrt(float(dk));
    // P and the scratch start as NaN: what the kernels leave unwritten (right of a row's
    // 128-block) must never be read.
    std::vector<float> P(S * S, nan), O(S * dv), Pr(S * S), Or(S * dv);
    std::vector<float> scratch(size_t(attention_bf16_scratch_floats(S, dk, dv)), nan);
    causal_attention_forward_bf16(Q.data(), ldq, K.data(), ldk, V.data(), ldv, S, dk, dv, scale, P.data(), O.data(),
                                  dv, scratch.data());
    ref::causal_attention_forward(Q.data(), ldq, K.data(), ldk, V.data(), ldv, S, dk, dv, scale, Pr.data(), Or.data(), dv);
    const std::string tag = "S=" + std::to_string(S);
    EXPECT_LT(rel_error_causal(P, Pr, S), bound) << tag;
    EXPECT_LT(rel_error(O, Or), bound) << tag;
    for (int64_t i = 0; i < S; ++i)
      for (int64_t j = i + 1; j < std::min<int64_t>(S, (i / 128 + 1) * 128); ++j)
        ASSERT_EQ(P[i * S + j], 0.0f) << "above the diagonal in the row's block, " << tag;
    // The backward from the kernel's own P (NaN right of each row's block).
    std::vector<float> dQ(S * dk), dK(S * dk), dV(S * dv), dQr(S * dk), dKr(S * dk), dVr(S * dv);
    std::fill(scratch.begin(), scratch.end(), nan);
    causal_attention_backward_bf16(Q.data(), ldq, K.data(), ldk, V.data(), ldv, P.data(), dO.data(), dv, S, dk, dv,
                                   scale, dQ.data(), dk, dK.data(), dk, dV.data(), dv, scratch.data());
    ref::causal_attention_backward(Q.data(), ldq, K.data(), ldk, V.data(), ldv, Pr.data(), dO.data(), dv, S, dk, dv,
                                   scale, dQr.data(), dk, dKr.data(), dk, dVr.data(), dv);
    EXPECT_LT(rel_error(dV, dVr), bound) << tag;
    EXPECT_LT(rel_error(dQ, dQr), bound) << tag;
    EXPECT_LT(rel_error(dK, dKr), bound) << tag;
    if (S > 1) {
      EXPECT_GT(rel_error(O, Or), 1e-5) << "the products should really be BF16";
    }
  }
}

// The F32 kernels under the same contract: NaN in the unwritten part of P and in the scratch
// changes nothing (they agree with the reference to F32 rounding).
TEST(AttentionF32, UnwrittenPartOfPIsNeverRead) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const int64_t S = 300, dk = 48, dv = 32;
  auto Q = rnd(size_t(S * dk), 5), K = rnd(size_t(S * dk), 6), V = rnd(size_t(S * dv), 7), dO = rnd(size_t(S * dv), 8);
  const float scale = 1.0f / std::sqrt(float(dk));
  std::vector<float> P(S * S, nan), O(S * dv), Pr(S * S), Or(S * dv);
  std::vector<float> scratch(size_t(attention_scratch_floats(S, dk, dv)), nan);
  causal_attention_forward(Q.data(), dk, K.data(), dk, V.data(), dv, S, dk, dv, scale, P.data(), O.data(), dv,
                           scratch.data());
  ref::causal_attention_forward(Q.data(), dk, K.data(), dk, V.data(), dv, S, dk, dv, scale, Pr.data(), Or.data(), dv);
  EXPECT_LT(rel_error_causal(P, Pr, S), 1e-5);
  EXPECT_LT(rel_error(O, Or), 1e-5);
  std::vector<float> dQ(S * dk), dK(S * dk), dV(S * dv), dQr(S * dk), dKr(S * dk), dVr(S * dv);
  std::fill(scratch.begin(), scratch.end(), nan);
  causal_attention_backward(Q.data(), dk, K.data(), dk, V.data(), dv, P.data(), dO.data(), dv, S, dk, dv, scale,
                            dQ.data(), dk, dK.data(), dk, dV.data(), dv, scratch.data());
  ref::causal_attention_backward(Q.data(), dk, K.data(), dk, V.data(), dv, Pr.data(), dO.data(), dv, S, dk, dv, scale,
                                 dQr.data(), dk, dKr.data(), dk, dVr.data(), dv);
  EXPECT_LT(rel_error(dV, dVr), 1e-5);
  EXPECT_LT(rel_error(dQ, dQr), 1e-5);
  EXPECT_LT(rel_error(dK, dKr), 1e-5);
}

}  // namespace
}  // namespace qs
