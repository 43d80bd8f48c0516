// GRPO mathematics on hand-computable cases and against finite differences of the loss.
#include "qiusuo/rl/grpo.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "qiusuo/core/error.h"
#include "qiusuo/core/rng.h"

namespace qs::rl {
namespace {

TEST(Grpo, GroupAdvantagesByHand) {
  const std::vector<double> r = {1, 0, 0.5, 0.5, 0.1, 0.1, 1.1, 0.1};
  const int64_t G = 2;
  // Group 0: mean 0.5, unbiased std sqrt((0.25 + 0.25) / 1) = 0.70710678.
  const double s0 = std::sqrt(0.5);
  auto a = group_advantages(r, G, ScaleRewards::Group);
  EXPECT_DOUBLE_EQ(a[0], 0.5 / (s0 + 1e-4));
  EXPECT_DOUBLE_EQ(a[1], -0.5 / (s0 + 1e-4));
  EXPECT_EQ(a[2], 0.0);  // uniform groups: exactly 0
  EXPECT_EQ(a[3], 0.0);
  EXPECT_EQ(a[4], 0.0);
  EXPECT_EQ(a[5], 0.0);
  EXPECT_DOUBLE_EQ(a[6], 0.5 / (s0 + 1e-4));
  a = group_advantages(r, G, ScaleRewards::None);  // Dr. GRPO
  EXPECT_DOUBLE_EQ(a[0], 0.5);
  EXPECT_DOUBLE_EQ(a[1], -0.5);
  EXPECT_DOUBLE_EQ(a[7], -0.5);
  a = group_advantages(r, G, ScaleRewards::Batch);
  double mean = 0, ss = 0;
  for (double x : r) mean += x / 8;
  for (double x : r) ss += (x - mean) * (x - mean);
  const double sb = std::sqrt(ss / 7);
  EXPECT_DOUBLE_EQ(a[0], 0.5 / (sb + 1e-4));
  EXPECT_DOUBLE_EQ(a[7], -0.5 / (sb + 1e-4));
  // G = 1: no group to compare with.
  EXPECT_EQ(group_advantages(std::vector<double>{3.0}, 1)[0], 0.0);
  // Group of 4 with rewards 1,0,0,0: mean 0.25, std sqrt((0.5625 + 3 * 0.0625) / 3) = 0.5.
  a = group_advantages(std::vector<double>{1, 0, 0, 0}, 4, ScaleRewards::Group, 0.0);
  EXPECT_DOUBLE_EQ(a[0], 1.5);
  EXPECT_DOUBLE_EQ(a[1], -0.5);
  EXPECT_THROW(group_advantages(std::vector<double>{1, 2, 3}, 2), Error);
  EXPECT_THROW(group_advantages(std::vector<double>{1, NAN}, 2), Error);
}

TEST(Grpo, UniformGroupsAndPassAtK) {
  const std::vector<double> r = {1, 1, 1, 0, 1, 1, 0, 0, 0};
  EXPECT_EQ(uniform_groups(r, 3), (std::vector<uint8_t>{1, 0, 1}));
  EXPECT_EQ(uniform_groups(std::vector<double>{1.0, 1.0 + 1e-12}, 2), (std::vector<uint8_t>{0}));
  EXPECT_EQ(uniform_groups(std::vector<double>{1.0, 1.0 + 1e-12}, 2, 1e-9), (std::vector<uint8_t>{1}));
  EXPECT_DOUBLE_EQ(pass_at_k(5, 2, 1), 0.4);
  EXPECT_DOUBLE_EQ(pass_at_k(5, 0, 3), 0.0);
  EXPECT_DOUBLE_EQ(pass_at_k(5, 3, 3), 1.0);  // n - c = 2 < k
  // Against the binomial definition 1 - C(n-c, k) / C(n, k).
  const auto binom = [](int n, int k) {
    double b = 1;
    for (int i = 1; i <= k; ++i) b = b * (n - k + i) / i;
    return b;
  };
  for (int n = 1; n <= 12; ++n)
    for (int c = 0; c <= n; ++c)
      for (int k = 1; k <= n; ++k)
        EXPECT_NEAR(pass_at_k(n, c, k), 1.0 - (n - c >= k ? binom(n - c, k) / binom(n, k) : 0.0), 1e-12);
  EXPECT_THROW(pass_at_k(3, 4, 1), Error);
  EXPECT_THROW(pass_at_k(3, 1, 4), Error);
}

// Two samples (one group): sequence 0 has 2 tokens, sequence 1 has 3.
struct TwoSamples {
  std::vector<int64_t> offsets = {0, 2, 5};
  std::vector<double> new_lp = {-1.0, -2.0, -0.5, -3.0, -1.0};
  std::vector<double> old_lp = {-1.1, -1.8, -0.9, -3.0, -0.7};
  std::vector<double> ref_lp = {-1.2, -2.0, -0.6, -2.5, -1.0};
  std::vector<double> adv;
  GrpoBatch<double> batch() const {
    GrpoBatch<double> b;
    b.offsets = offsets;
    b.new_logp = new_lp;
    b.old_logp = old_lp;
    b.ref_logp = ref_lp;
    b.advantages = adv;
    return b;
  }
};

TEST(Grpo, LossByHandForEachAggregationAndScaling) {
  // Rewards [1, 0]: mean 0.5; unbiased std sqrt(0.5); batch std = group std (one group).
  const double group_a = 0.5 / (std::sqrt(0.5) + 1e-4);
  for (const auto& [scale, a] : {std::pair{ScaleRewards::Group, group_a}, std::pair{ScaleRewards::Batch, group_a},
                                 std::pair{ScaleRewards::None, 0.5}}) {
    SCOPED_TRACE(scale_rewards_name(scale));
    TwoSamples s;
    s.adv = group_advantages(std::vector<double>{1.0, 0.0}, 2, scale);  // [+a, -a]
    ASSERT_DOUBLE_EQ(s.adv[0], a);
    ASSERT_DOUBLE_EQ(s.adv[1], -a);
    // Ratios: seq 0: e^0.1 = 1.105 and e^-0.2 = 0.819 (inside [0.8, 1.2]: unclipped, A > 0);
    // seq 1 (A < 0): e^0.4 = 1.492 (above 1.2, but A < 0: min picks rho A, unclipped),
    // 1 (inside), e^-0.3 = 0.741 (below 0.8 with A < 0: clipped to 0.8, no gradient).
    const double r00 = std::exp(0.1), r01 = std::exp(-0.2), r10 = std::exp(0.4), r11 = 1.0, r12 = std::exp(-0.3);
    const double l00 = -r00 * a, l01 = -r01 * a, l10 = r10 * a, l11 = r11 * a, l12 = 0.8 * a;
    const double k3[5] = {std::exp(-0.2) + 0.2 - 1, 0.0, std::exp(-0.1) + 0.1 - 1, std::exp(0.5) - 0.5 - 1, 0.0};
    const double beta = 0.04;
    GrpoLossConfig c;
    c.beta = beta;
    c.max_completion_length = 4;
    std::vector<double> coef(5);
    const double sum1 = l10 + l11 + l12 + beta * (k3[2] + k3[3] + k3[4]);
    const double sum0 = l00 + l01 + beta * (k3[0] + k3[1]);

    c.loss = LossAggregation::Grpo;  // (1/2) (sum0 / 2 + sum1 / 3)
    GrpoStats st = grpo_loss(s.batch(), c, std::span<double>(coef));
    EXPECT_NEAR(st.loss, 0.5 * (sum0 / 2 + sum1 / 3), 1e-12);
    EXPECT_NEAR(coef[0], (1.0 / 4) * (-a * r00 + beta * (1 - std::exp(-0.2))), 1e-12);
    EXPECT_NEAR(coef[1], (1.0 / 4) * (-a * r01 + beta * (1 - std::exp(0.0))), 1e-12);
    EXPECT_NEAR(coef[2], (1.0 / 6) * (a * r10 + beta * (1 - std::exp(-0.1))), 1e-12);
    EXPECT_NEAR(coef[3], (1.0 / 6) * (a * r11 + beta * (1 - std::exp(0.5))), 1e-12);
    EXPECT_NEAR(coef[4], (1.0 / 6) * (0.0 + beta * (1 - 1)), 1e-12);  // clipped: only the KL part

    c.loss = LossAggregation::Dapo;  // (sum0 + sum1) / 5
    st = grpo_loss(s.batch(), c, std::span<double>(coef));
    EXPECT_NEAR(st.loss, (sum0 + sum1) / 5, 1e-12);
    EXPECT_NEAR(coef[1], (1.0 / 5) * (-a * r01 + beta * (1 - std::exp(0.0))), 1e-12);
    EXPECT_NEAR(coef[2], (1.0 / 5) * (a * r10 + beta * (1 - std::exp(-0.1))), 1e-12);

    c.loss = LossAggregation::DrGrpo;  // (sum0 + sum1) / (B * L_max) = / (2 * 4)
    st = grpo_loss(s.batch(), c, std::span<double>(coef));
    EXPECT_NEAR(st.loss, (sum0 + sum1) / (2 * 4), 1e-12);
    EXPECT_NEAR(coef[0], (1.0 / 8) * (-a * r00 + beta * (1 - std::exp(-0.2))), 1e-12);
    EXPECT_NEAR(coef[3], (1.0 / 8) * (a * r11 + beta * (1 - std::exp(0.5))), 1e-12);
    EXPECT_NEAR(st.policy_loss, (l00 + l01 + l10 + l11 + l12) / 8, 1e-12);
    EXPECT_NEAR(st.kl_loss, (k3[0] + k3[1] + k3[2] + k3[3] + k3[4]) / 8, 1e-12);

    // Statistics: one clipped-low token of five, none clipped-high (A < 0 at rho 1.49 is not clipped).
    EXPECT_DOUBLE_EQ(st.clip_low_fraction, 0.2);
    EXPECT_DOUBLE_EQ(st.clip_high_fraction, 0.0);
    EXPECT_NEAR(st.ratio_mean, (r00 + r01 + r10 + r11 + r12) / 5, 1e-12);
    EXPECT_NEAR(st.kl_mean, (k3[0] + k3[1] + k3[2] + k3[3] + k3[4]) / 5, 1e-12);
    EXPECT_EQ(st.tokens, 5);
  }
}

// Central differences of L with respect to each new log-prob, for every aggregation, reward
// scaling and beta; two groups of two so that batch scaling differs from group scaling.
TEST(Grpo, CoefficientsMatchFiniteDifferences) {
  const std::vector<int64_t> offsets = {0, 3, 4, 9, 11};
  Rng rng(7);
  std::vector<double> new_lp(11), old_lp(11), ref_lp(11), mask(11, 1.0);
  for (int t = 0; t < 11; ++t) {
    new_lp[size_t(t)] = -0.2 - 2.0 * rng.uniform();
    // Ratios spread over [0.6, 1.5] but at least 0.01 away from the clip boundaries 0.8 and 1.28.
    double d;
    do d = std::log(0.6 + 0.9 * rng.uniform());
    while (std::fabs(std::exp(d) - 0.8) < 0.01 || std::fabs(std::exp(d) - 1.28) < 0.01);
    old_lp[size_t(t)] = new_lp[size_t(t)] - d;
    ref_lp[size_t(t)] = new_lp[size_t(t)] + 0.5 * (rng.uniform() - 0.5);
  }
  mask[5] = 0;  // a masked token inside sequence 2
  const std::vector<double> rewards = {1.0, 0.1, 0.0, 1.1};
  for (ScaleRewards scale : {ScaleRewards::Group, ScaleRewards::Batch, ScaleRewards::None}) {
    const std::vector<double> adv = group_advantages(rewards, 2, scale);
    for (LossAggregation loss : {LossAggregation::Grpo, LossAggregation::Dapo, LossAggregation::DrGrpo}) {
      for (double beta : {0.0, 0.1}) {
        GrpoLossConfig c;
        c.clip_low = 0.2;
        c.clip_high = 0.28;
        c.beta = beta;
        c.loss = loss;
        c.max_completion_length = 6;
        GrpoBatch<double> b;
        b.offsets = offsets;
        b.old_logp = old_lp;
        b.ref_logp = ref_lp;
        b.mask = mask;
        b.advantages = adv;
        std::vector<double> x = new_lp, coef(11);
        b.new_logp = x;
        const GrpoStats st = grpo_loss(b, c, std::span<double>(coef));
        EXPECT_GT(st.clip_fraction, 0.0);  // the case exercises clipping
        const double h = 1e-6;
        for (size_t t = 0; t < 11; ++t) {
          const double x0 = x[t];
          x[t] = x0 + h;
          const double lp = grpo_loss(b, c).loss;
          x[t] = x0 - h;
          const double lm = grpo_loss(b, c).loss;
          x[t] = x0;
          EXPECT_NEAR(coef[t], (lp - lm) / (2 * h), 1e-8)
              << "token " << t << " loss " << loss_aggregation_name(loss) << " scale " << scale_rewards_name(scale)
              << " beta " << beta;
        }
        EXPECT_EQ(coef[5], 0.0);
      }
    }
  }
}

TEST(Grpo, KlIsNonNegativeAndZeroAtTheReference) {
  Rng rng(1);
  std::vector<double> lp(200), ref(200);
  for (size_t i = 0; i < lp.size(); ++i) {
    lp[i] = -5 * rng.uniform();
    ref[i] = -5 * rng.uniform();
  }
  const std::vector<int64_t> offsets = {0, 100, 200};
  const std::vector<double> adv = {0.0, 0.0};
  GrpoBatch<double> b;
  b.offsets = offsets;
  b.new_logp = lp;
  b.ref_logp = ref;
  b.advantages = adv;
  GrpoLossConfig c;
  c.beta = 1.0;
  std::vector<double> coef(200);
  GrpoStats st = grpo_loss(b, c, std::span<double>(coef));
  EXPECT_GT(st.kl_mean, 0.0);
  EXPECT_GE(st.kl_loss, 0.0);
  for (size_t i = 0; i < lp.size(); ++i) {
    const double d = ref[i] - lp[i];
    EXPECT_GE(std::exp(d) - d - 1, 0.0);
  }
  b.ref_logp = lp;  // policy == reference
  st = grpo_loss(b, c, std::span<double>(coef));
  EXPECT_EQ(st.kl_mean, 0.0);
  EXPECT_EQ(st.kl_loss, 0.0);
  EXPECT_EQ(st.loss, 0.0);
  for (double x : coef) EXPECT_EQ(x, 0.0);
}

TEST(Grpo, ClippingExactlyWhereTheFormulaSays) {
  const double eps_low = 0.2, eps_high = 0.28, d = 1e-6;
  struct Case {
    double ratio, adv;
    bool clipped, low, high;
  };
  const Case cases[] = {
      {1 + eps_high + d, +1, true, false, true},   // above the ceiling, A > 0: clipped
      {1 + eps_high - d, +1, false, false, false}, // just inside
      {1 - eps_low - d, +1, false, false, false},  // below the floor, A > 0: min keeps rho A
      {1 - eps_low - d, -1, true, true, false},    // below the floor, A < 0: clipped
      {1 - eps_low + d, -1, false, false, false},  // just inside
      {1 + eps_high + d, -1, false, false, false}, // above the ceiling, A < 0: unclipped
      {1.0, +1, false, false, false},
  };
  for (const Case& k : cases) {
    const std::vector<int64_t> offsets = {0, 1};
    const std::vector<double> newl = {std::log(k.ratio)}, oldl = {0.0}, adv = {k.adv};
    GrpoBatch<double> b;
    b.offsets = offsets;
    b.new_logp = newl;
    b.old_logp = oldl;
    b.advantages = adv;
    GrpoLossConfig c;
    c.clip_low = eps_low;
    c.clip_high = eps_high;
    std::vector<double> coef(1);
    const GrpoStats st = grpo_loss(b, c, std::span<double>(coef));
    if (k.clipped) {
      EXPECT_EQ(coef[0], 0.0) << k.ratio << " " << k.adv;
      const double clipped_ratio = k.adv > 0 ? 1 + eps_high : 1 - eps_low;
      EXPECT_NEAR(st.loss, -clipped_ratio * k.adv, 1e-12);
    } else {
      EXPECT_NEAR(coef[0], -k.adv * k.ratio, 1e-12) << k.ratio << " " << k.adv;
      EXPECT_NEAR(st.loss, -k.ratio * k.adv, 1e-12);
    }
    EXPECT_EQ(st.clip_low_fraction, k.low ? 1.0 : 0.0);
    EXPECT_EQ(st.clip_high_fraction, k.high ? 1.0 : 0.0);
  }
}

TEST(Grpo, OnPolicyLossIsZeroButGradientIsNot) {
  // mu = 1: old empty (= new), beta = 0, equal lengths, group-normalized advantages sum to 0.
  const std::vector<int64_t> offsets = {0, 3, 6};
  const std::vector<double> lp = {-1, -2, -3, -0.5, -0.1, -4};
  const std::vector<double> adv = group_advantages(std::vector<double>{1.0, 0.0}, 2);
  GrpoBatch<double> b;
  b.offsets = offsets;
  b.new_logp = lp;
  b.advantages = adv;
  std::vector<double> coef(6);
  const GrpoStats st = grpo_loss(b, GrpoLossConfig{}, std::span<double>(coef));
  EXPECT_NEAR(st.loss, 0.0, 1e-15);
  EXPECT_EQ(st.ratio_mean, 1.0);
  EXPECT_NEAR(coef[0], -adv[0] / 6, 1e-15);
  EXPECT_NEAR(coef[5], -adv[1] / 6, 1e-15);
  EXPECT_NE(coef[0], 0.0);
}

TEST(Grpo, MasksTruncationAndMicroBatches) {
  const std::vector<int64_t> offsets = {0, 2, 5, 6};
  const std::vector<double> lp = {-1, -2, -0.5, -1.5, -0.7, -0.3}, old = {-1.1, -2, -0.4, -1.5, -0.9, -0.3};
  const std::vector<double> adv = {0.7, -0.4, 1.2};
  const std::vector<uint8_t> trunc = {0, 1, 0};
  for (LossAggregation loss : {LossAggregation::Grpo, LossAggregation::Dapo, LossAggregation::DrGrpo}) {
    GrpoLossConfig c;
    c.loss = loss;
    c.max_completion_length = 3;
    GrpoBatch<double> b;
    b.offsets = offsets;
    b.new_logp = lp;
    b.old_logp = old;
    b.advantages = adv;
    b.truncated = trunc;
    std::vector<double> all(6);
    const GrpoStats plain = grpo_loss(b, c, std::span<double>(all));
    EXPECT_EQ(plain.tokens, 6);
    c.mask_truncated = true;
    const GrpoStats masked = grpo_loss(b, c, std::span<double>(all));
    EXPECT_EQ(masked.tokens, 3);
    EXPECT_EQ(all[2], 0.0);
    EXPECT_EQ(all[3], 0.0);
    EXPECT_EQ(all[4], 0.0);
    // The same with an explicit 0 mask on sequence 1.
    const std::vector<double> m = {1, 1, 0, 0, 0, 1};
    GrpoBatch<double> bm = b;
    bm.mask = m;
    bm.truncated = {};
    std::vector<double> viamask(6);
    EXPECT_DOUBLE_EQ(grpo_loss(bm, c, std::span<double>(viamask)).loss, masked.loss);
    for (int t = 0; t < 6; ++t) EXPECT_DOUBLE_EQ(viamask[size_t(t)], all[size_t(t)]);
    // Micro-batches: sequences {0} and {1, 2} with the whole batch's B and token count.
    c.mask_truncated = false;
    const GrpoStats whole = grpo_loss(b, c, std::span<double>(all));
    c.num_sequences = 3;
    c.total_tokens = 6;
    const std::vector<int64_t> o1 = {0, 2}, o2 = {0, 3, 4};
    GrpoBatch<double> m1, m2;
    m1.offsets = o1;
    m1.new_logp = std::span<const double>(lp).subspan(0, 2);
    m1.old_logp = std::span<const double>(old).subspan(0, 2);
    m1.advantages = std::span<const double>(adv).subspan(0, 1);
    m2.offsets = o2;
    m2.new_logp = std::span<const double>(lp).subspan(2);
    m2.old_logp = std::span<const double>(old).subspan(2);
    m2.advantages = std::span<const double>(adv).subspan(1);
    std::vector<double> c1(2), c2(4);
    const double l1 = grpo_loss(m1, c, std::span<double>(c1)).loss, l2 = grpo_loss(m2, c, std::span<double>(c2)).loss;
    EXPECT_NEAR(l1 + l2, whole.loss, 1e-14);
    for (int t = 0; t < 6; ++t) EXPECT_NEAR(t < 2 ? c1[size_t(t)] : c2[size_t(t - 2)], all[size_t(t)], 1e-15);
  }
}

TEST(Grpo, FloatMatchesDoubleAndBadInputIsAnError) {
  const std::vector<int64_t> offsets = {0, 2, 3};
  const std::vector<double> lpd = {-1, -2, -0.5}, oldd = {-1.05, -1.9, -0.6}, refd = {-1, -2.1, -0.4};
  const std::vector<float> lpf(lpd.begin(), lpd.end()), oldf(oldd.begin(), oldd.end()), reff(refd.begin(), refd.end());
  const std::vector<double> adv = {0.9, -0.9};
  GrpoLossConfig c;
  c.beta = 0.05;
  GrpoBatch<double> bd;
  bd.offsets = offsets;
  bd.new_logp = lpd;
  bd.old_logp = oldd;
  bd.ref_logp = refd;
  bd.advantages = adv;
  GrpoBatch<float> bf;
  bf.offsets = offsets;
  bf.new_logp = lpf;
  bf.old_logp = oldf;
  bf.ref_logp = reff;
  bf.advantages = adv;
  std::vector<double> cd(3);
  std::vector<float> cf(3);
  EXPECT_NEAR(grpo_loss(bd, c, std::span<double>(cd)).loss, grpo_loss(bf, c, std::span<float>(cf)).loss, 1e-6);
  for (int t = 0; t < 3; ++t) EXPECT_NEAR(cd[size_t(t)], cf[size_t(t)], 1e-6);

  GrpoBatch<double> bad = bd;
  const std::vector<double> short_adv = {1.0};
  bad.advantages = short_adv;
  EXPECT_THROW(grpo_loss(bad, c), Error);
  bad = bd;
  const std::vector<double> nan_lp = {-1, NAN, -0.5};
  bad.new_logp = nan_lp;
  EXPECT_THROW(grpo_loss(bad, c), Error);
  bad = bd;
  bad.ref_logp = {};
  EXPECT_THROW(grpo_loss(bad, c), Error);  // beta > 0 needs the reference
  c.beta = 0;
  EXPECT_NO_THROW(grpo_loss(bad, c));
  c.loss = LossAggregation::DrGrpo;
  EXPECT_THROW(grpo_loss(bd, c), Error);  // no max_completion_length
  c.loss = LossAggregation::Grpo;
  c.clip_low = 1.0;
  EXPECT_THROW(grpo_loss(bd, c), Error);
  c.clip_low = 0.2;
  const std::vector<double> half_mask = {1, 0.5, 1};
  bad = bd;
  bad.mask = half_mask;
  EXPECT_THROW(grpo_loss(bad, c), Error);
  const std::vector<int64_t> backwards = {0, 3, 2};
  bad = bd;
  bad.offsets = backwards;
  EXPECT_THROW(grpo_loss(bad, c), Error);
  std::vector<double> small(2);
  EXPECT_THROW(grpo_loss(bd, c, std::span<double>(small)), Error);
  EXPECT_THROW(parse_loss_aggregation("ppo"), Error);
  EXPECT_THROW(parse_scale_rewards("token"), Error);
}

}  // namespace
}  // namespace qs::rl
