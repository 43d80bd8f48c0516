// The formulas implemented here are written out in grpo.h.
#include "qiusuo/rl/grpo.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "qiusuo/core/error.h"

namespace qs::rl {

ScaleRewards parse_scale_rewards(std::string_view s) {
  if (s == "group") return ScaleRewards::Group;
  if (s == "batch") return ScaleRewards::Batch;
  if (s == "none") return ScaleRewards::None;
  fail("unknown --scale-rewards '", s, "' (expected group, batch or none)");
}
const char* scale_rewards_name(ScaleRewards s) {
  return s == ScaleRewards::Group ? "group" : s == ScaleRewards::Batch ? "batch" : "none";
}

LossAggregation parse_loss_aggregation(std::string_view s) {
  if (s == "grpo") return LossAggregation::Grpo;
  if (s == "dapo") return LossAggregation::Dapo;
  if (s == "dr_grpo") return LossAggregation::DrGrpo;
  fail("unknown --loss '", s, "' (expected grpo, dapo or dr_grpo)");
}
const char* loss_aggregation_name(LossAggregation a) {
  return a == LossAggregation::Grpo ? "grpo" : a == LossAggregation::Dapo ? "dapo" : "dr_grpo";
}

namespace {
double unbiased_std(std::span<const double> v) {
  if (v.size() < 2) return 0.0;
  double mean = 0;
  for (double x : v) mean += x;
  mean /= double(v.size());
  double ss = 0;
  for (double x : v) ss += (x - mean) * (x - mean);
  return std::sqrt(ss / double(v.size() - 1));
}

void check_groups(std::span<const double> values, int64_t group_size, const char* what) {
  QS_CHECK(group_size >= 1, what, ": group size must be >= 1, not ", group_size);
  QS_CHECK(values.size() % size_t(group_size) == 0, what, ": ", values.size(), " values do not split into groups of ",
           group_size);
  for (size_t i = 0; i < values.size(); ++i) QS_CHECK(std::isfinite(values[i]), what, ": value ", i, " is not finite");
}
}  // namespace

std::vector<double> group_advantages(std::span<const double> rewards, int64_t group_size, ScaleRewards scale,
                                     double eps) {
  check_groups(rewards, group_size, "group_advantages");
  QS_CHECK(eps >= 0 && std::isfinite(eps), "group_advantages: eps must be >= 0");
  const size_t G = size_t(group_size);
  const double batch_std = scale == ScaleRewards::Batch ? unbiased_std(rewards) : 0.0;
  std::vector<double> a(rewards.size());
  for (size_t g = 0; g < rewards.size(); g += G) {
    const std::span<const double> grp = rewards.subspan(g, G);
    double mean = 0;
    for (double r : grp) mean += r;
    mean /= double(G);
    const bool uniform = std::all_of(grp.begin(), grp.end(), [&](double r) { return r == grp[0]; });
    const double denom = scale == ScaleRewards::Group ? unbiased_std(grp) + eps
                         : scale == ScaleRewards::Batch ? batch_std + eps
                                                        : 1.0;
    for (size_t i = 0; i < G; ++i) {
      // A uniform group is exactly 0 (its mean can differ from its members in the last bit).
      const double num = uniform ? 0.0 : grp[i] - mean;
      a[g + i] = denom > 0 ? num / denom : 0.0;
    }
  }
  return a;
}

std::vector<uint8_t> uniform_groups(std::span<const double> values, int64_t group_size, double tol) {
  check_groups(values, group_size, "uniform_groups");
  QS_CHECK(tol >= 0, "uniform_groups: tolerance must be >= 0");
  const size_t G = size_t(group_size);
  std::vector<uint8_t> out;
  for (size_t g = 0; g < values.size(); g += G) {
    bool u = true;
    for (size_t i = 1; i < G && u; ++i) u = std::fabs(values[g + i] - values[g]) <= tol;
    out.push_back(u ? 1 : 0);
  }
  return out;
}

double pass_at_k(int64_t n, int64_t c, int64_t k) {
  QS_CHECK(n >= 1 && c >= 0 && c <= n && k >= 1 && k <= n,
           "pass@k needs 1 <= k <= n and 0 <= c <= n (n = ", n, ", c = ", c, ", k = ", k, ")");
  if (n - c < k) return 1.0;
  double prod = 1.0;
  for (int64_t i = n - c + 1; i <= n; ++i) prod *= 1.0 - double(k) / double(i);
  return 1.0 - prod;
}

template <typename T>
GrpoStats grpo_loss(const GrpoBatch<T>& b, const GrpoLossConfig& c, std::span<T> coef) {
  QS_CHECK(!b.offsets.empty(), "grpo_loss: offsets must hold B + 1 entries");
  const size_t B = b.offsets.size() - 1;
  QS_CHECK(b.offsets[0] == 0, "grpo_loss: offsets[0] must be 0");
  for (size_t i = 0; i < B; ++i)
    QS_CHECK(b.offsets[i + 1] >= b.offsets[i], "grpo_loss: offsets must not decrease (at sequence ", i, ")");
  const size_t N = size_t(b.offsets[B]);
  QS_CHECK(b.new_logp.size() == N, "grpo_loss: ", b.new_logp.size(), " new log-probs for ", N, " tokens");
  QS_CHECK(b.old_logp.empty() || b.old_logp.size() == N, "grpo_loss: ", b.old_logp.size(), " old log-probs for ", N,
           " tokens");
  QS_CHECK(b.mask.empty() || b.mask.size() == N, "grpo_loss: ", b.mask.size(), " mask values for ", N, " tokens");
  QS_CHECK(b.advantages.size() == B, "grpo_loss: ", b.advantages.size(), " advantages for ", B, " sequences");
  QS_CHECK(b.truncated.empty() || b.truncated.size() == B, "grpo_loss: ", b.truncated.size(), " truncated flags for ",
           B, " sequences");
  QS_CHECK(coef.empty() || coef.size() == N, "grpo_loss: coefficient buffer of ", coef.size(), " for ", N, " tokens");
  QS_CHECK(c.clip_low >= 0 && c.clip_low < 1, "grpo_loss: clip_low must be in [0, 1), not ", c.clip_low);
  QS_CHECK(c.clip_high >= 0 && std::isfinite(c.clip_high), "grpo_loss: clip_high must be >= 0, not ", c.clip_high);
  QS_CHECK(c.beta >= 0 && std::isfinite(c.beta), "grpo_loss: beta must be >= 0, not ", c.beta);
  const bool use_ref = c.beta > 0;
  QS_CHECK(!use_ref || b.ref_logp.size() == N, "grpo_loss: beta > 0 needs ", N, " reference log-probs, got ",
           b.ref_logp.size());
  QS_CHECK(c.loss != LossAggregation::DrGrpo || c.max_completion_length > 0,
           "grpo_loss: dr_grpo needs max_completion_length > 0");
  QS_CHECK(c.num_sequences >= 0 && c.total_tokens >= 0, "grpo_loss: num_sequences and total_tokens must be >= 0");

  const auto token_on = [&](size_t i, size_t t) -> bool {
    if (c.mask_truncated && !b.truncated.empty() && b.truncated[i]) return false;
    return b.mask.empty() || b.mask[t] != T(0);
  };
  int64_t tokens = 0;
  for (size_t i = 0; i < B; ++i) {
    QS_CHECK(std::isfinite(b.advantages[i]), "grpo_loss: advantage of sequence ", i, " is not finite");
    for (size_t t = size_t(b.offsets[i]); t < size_t(b.offsets[i + 1]); ++t) {
      QS_CHECK(b.mask.empty() || b.mask[t] == T(0) || b.mask[t] == T(1), "grpo_loss: mask value at token ", t,
               " is not 0 or 1");
      QS_CHECK(std::isfinite(double(b.new_logp[t])), "grpo_loss: new log-prob at token ", t, " is not finite");
      QS_CHECK(b.old_logp.empty() || std::isfinite(double(b.old_logp[t])), "grpo_loss: old log-prob at token ", t,
               " is not finite");
      QS_CHECK(!use_ref || std::isfinite(double(b.ref_logp[t])), "grpo_loss: reference log-prob at token ", t,
               " is not finite");
      tokens += token_on(i, t);
    }
  }
  const double nseq = double(c.num_sequences > 0 ? c.num_sequences : int64_t(B));
  const double ntok = double(c.total_tokens > 0 ? c.total_tokens : tokens);

  GrpoStats st;
  st.tokens = tokens;
  st.sequences = int64_t(B);
  st.ratio_min = std::numeric_limits<double>::infinity();
  st.ratio_max = -std::numeric_limits<double>::infinity();
  double ratio_sum = 0, k3_sum = 0;
  int64_t n_low = 0, n_high = 0;
  for (size_t i = 0; i < B; ++i) {
    const size_t t0 = size_t(b.offsets[i]), t1 = size_t(b.offsets[i + 1]);
    const double A = b.advantages[i];
    int64_t seq_tokens = 0;
    for (size_t t = t0; t < t1; ++t) seq_tokens += token_on(i, t);
    double w = 0;  // aggregation weight of each counted token of this sequence
    switch (c.loss) {
      case LossAggregation::Grpo: w = nseq > 0 ? 1.0 / (nseq * double(std::max<int64_t>(1, seq_tokens))) : 0.0; break;
      case LossAggregation::Dapo: w = 1.0 / std::max(1.0, ntok); break;
      case LossAggregation::DrGrpo: w = nseq > 0 ? 1.0 / (nseq * double(c.max_completion_length)) : 0.0; break;
    }
    for (size_t t = t0; t < t1; ++t) {
      if (!token_on(i, t)) {
        if (!coef.empty()) coef[t] = T(0);
        continue;
      }
      const double lp = double(b.new_logp[t]);
      const double rho = b.old_logp.empty() ? 1.0 : std::exp(lp - double(b.old_logp[t]));
      const double rho_c = std::min(std::max(rho, 1.0 - c.clip_low), 1.0 + c.clip_high);
      const double surrogate = -std::min(rho * A, rho_c * A);
      const bool low = A < 0 && rho < 1.0 - c.clip_low;
      const bool high = A > 0 && rho > 1.0 + c.clip_high;
      double k3 = 0, dk3 = 0;
      if (use_ref) {
        const double d = double(b.ref_logp[t]) - lp;  // ref - new
        const double e = std::exp(d);
        k3 = e - d - 1.0;
        dk3 = 1.0 - e;  // d k3 / d new
      }
      st.policy_loss += w * surrogate;
      st.kl_loss += w * k3;
      if (!coef.empty()) coef[t] = T(w * ((low || high ? 0.0 : -A * rho) + c.beta * dk3));
      ratio_sum += rho;
      k3_sum += k3;
      st.ratio_min = std::min(st.ratio_min, rho);
      st.ratio_max = std::max(st.ratio_max, rho);
      n_low += low;
      n_high += high;
    }
  }
  st.loss = st.policy_loss + c.beta * st.kl_loss;
  if (tokens > 0) {
    st.ratio_mean = ratio_sum / double(tokens);
    st.kl_mean = k3_sum / double(tokens);
    st.clip_low_fraction = double(n_low) / double(tokens);
    st.clip_high_fraction = double(n_high) / double(tokens);
    st.clip_fraction = st.clip_low_fraction + st.clip_high_fraction;
  } else {
    st.ratio_min = st.ratio_max = 0;
  }
  return st;
}

template GrpoStats grpo_loss<float>(const GrpoBatch<float>&, const GrpoLossConfig&, std::span<float>);
template GrpoStats grpo_loss<double>(const GrpoBatch<double>&, const GrpoLossConfig&, std::span<double>);

}  // namespace qs::rl
