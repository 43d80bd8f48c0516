// GRPO mathematics as pure functions: group advantages, the clipped objective with the k3 KL
// penalty, its gradient with respect to the per-token log-probabilities, the three loss
// aggregations, dynamic-sampling and pass@k helpers. The GRPO loop (rollouts through the engine,
// the training step) calls these; nothing here touches a model.
//
// ---- advantages (group_advantages) ------------------------------------------------------------------
// Rewards come in groups of G consecutive completions of one prompt. For completion i of group g:
//   mean_g = (1/G) sum_j r_j
//   std_g  = sqrt( sum_j (r_j - mean_g)^2 / (G - 1) )      unbiased (Bessel), as torch.std and TRL;
//                                                            0 when G == 1
//   A_i = (r_i - mean_g) / (std_g + eps)     scale_rewards = group  (GRPO, DeepSeekMath; eps = 1e-4
//                                                                     as TRL)
//   A_i = (r_i - mean_g) / (std_B + eps)     scale_rewards = batch  (std_B: unbiased std of all the
//                                                                     rewards passed in)
//   A_i =  r_i - mean_g                      scale_rewards = none   (Dr. GRPO: no difficulty bias)
// A group whose rewards are all equal gets A = 0 in every mode: it carries no signal
// (uniform_groups finds them for --drop-uniform-groups, DAPO's dynamic sampling).
//
// ---- per-token loss --------------------------------------------------------------------------------------
// Sequence i has completion tokens t = 1..T_i with log-probabilities
//   new_t = log pi_theta(o_t | ...)      the policy being trained (the variable)
//   old_t = log pi_old(o_t | ...)        the policy that sampled the rollout (from the sampler; with
//                                        mu = 1 update per rollout batch old == new numerically, pass
//                                        old empty to use exactly new: the ratio is 1)
//   ref_t = log pi_ref(o_t | ...)        the frozen reference (needed only when beta > 0)
// and mask m_t in {0, 1} (1 = a completion token that counts; a truncated sequence is all 0 when
// mask_truncated is set and truncated[i] is 1). With
//   rho_t = exp(new_t - old_t)                               importance ratio
//   clip(rho) = min(max(rho, 1 - clip_low), 1 + clip_high)   (DAPO's clip-higher: clip_high > clip_low)
//   k3_t  = exp(ref_t - new_t) - (ref_t - new_t) - 1 >= 0    (Schulman's k3 estimator of KL(pi_theta || pi_ref);
//                                                             exactly 0 where new == ref)
//   l_t   = -min(rho_t A_i, clip(rho_t) A_i) + beta k3_t
// ---- aggregation (loss) ----------------------------------------------------------------------------------
//   grpo   : L = (1/B) sum_i [ (1/max(1, sum_t m_t)) sum_t m_t l_t ]   per-sequence token mean, then
//            mean over the B sequences (GRPO paper; TRL loss_type="grpo")
//   dapo   : L = (1/max(1, sum_i sum_t m_t)) sum_i sum_t m_t l_t        token mean over every token of
//            the batch (DAPO's token-level loss; TRL "dapo"/"bnpo")
//   dr_grpo: L = (1/(B * max_completion_length)) sum_i sum_t m_t l_t   a constant normaliser (Dr. GRPO;
//            TRL "dr_grpo"); max_completion_length must be given
// B counts every sequence passed, masked ones included (as TRL). For gradient accumulation over
// micro-batches, num_sequences and total_tokens override B and the dapo token count with the
// whole batch's values, so the micro-batch losses (and coefficients) add up to the batch's.
//
// ---- gradient (per-token coefficients) ----------------------------------------------------------------
// coef_t = dL/dnew_t = w_t * dl_t/dnew_t with w_t the aggregation weight of token t above
// (grpo: m_t / (B max(1, sum m)), dapo: m_t / max(1, total tokens), dr_grpo: m_t / (B L_max)) and
//   dl_t/dnew_t = -A_i rho_t [not clipped_t] + beta (1 - exp(ref_t - new_t))
//   clipped_t   = (A_i > 0 and rho_t > 1 + clip_high) or (A_i < 0 and rho_t < 1 - clip_low)
// i.e. exactly torch's autograd of the TRL expression (min and clamp pass the gradient at ties and
// at the clip boundaries). old_t and ref_t are constants. The training step backpropagates
// sum_t coef_t * dnew_t/dtheta. With mu = 1 (old = new) the loss value sits near 0 when
// beta = 0, since rho = 1 and the advantages of a group sum to 0, yet coef_t = -w_t A_i is not 0:
// the loss value is not the learning signal.
//
// Statistics (over tokens with m_t = 1): mean ratio, mean k3, and the clip fractions: low =
// share of tokens with A < 0 and rho < 1 - clip_low, high = share with A > 0 and rho > 1 + clip_high.
#pragma once
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace qs::rl {

enum class ScaleRewards { Group, Batch, None };
ScaleRewards parse_scale_rewards(std::string_view s);  // "group" | "batch" | "none"
const char* scale_rewards_name(ScaleRewards s);

enum class LossAggregation { Grpo, Dapo, DrGrpo };
LossAggregation parse_loss_aggregation(std::string_view s);  // "grpo" | "dapo" | "dr_grpo"
const char* loss_aggregation_name(LossAggregation a);

// rewards: [num_groups * group_size], groups consecutive. Returns A, same layout.
std::vector<double> group_advantages(std::span<const double> rewards, int64_t group_size,
                                     ScaleRewards scale = ScaleRewards::Group, double eps = 1e-4);

// 1 for each group whose values all lie within tol of its first value (exactly equal with tol 0).
std::vector<uint8_t> uniform_groups(std::span<const double> values, int64_t group_size, double tol = 0.0);

// Unbiased pass@k (Chen et al. 2021) from n samples of which c are correct:
// 1 - C(n - c, k) / C(n, k), computed as 1 - prod_{i = n-c+1..n} (1 - k / i); 1 when n - c < k.
double pass_at_k(int64_t n, int64_t c, int64_t k);

struct GrpoLossConfig {
  double clip_low = 0.2;    // epsilon_low: ratio floor 1 - clip_low (for A < 0)
  double clip_high = 0.2;   // epsilon_high: ratio ceiling 1 + clip_high (for A > 0); DAPO uses 0.28
  double beta = 0.0;        // KL weight; 0 = no reference needed
  LossAggregation loss = LossAggregation::Grpo;
  int64_t max_completion_length = 0;  // dr_grpo's constant (tokens); required for dr_grpo
  bool mask_truncated = false;        // zero the mask of sequences flagged truncated
  int64_t num_sequences = 0;          // > 0: B of the whole batch (micro-batching); 0 = this call's B
  int64_t total_tokens = 0;           // > 0: dapo's token count of the whole batch; 0 = this call's
};

// Ragged batch of B sequences: sequence i owns tokens [offsets[i], offsets[i+1]) of the flat arrays.
template <typename T>
struct GrpoBatch {
  std::span<const int64_t> offsets;   // [B + 1], offsets[0] == 0, non-decreasing
  std::span<const T> new_logp;        // [N], N = offsets[B]
  std::span<const T> old_logp;        // [N], or empty: old = new (mu = 1, ratio exactly 1)
  std::span<const T> ref_logp;        // [N]; required when beta > 0, ignored otherwise
  std::span<const T> mask;            // [N] of 0/1, or empty: all 1
  std::span<const double> advantages; // [B]
  std::span<const uint8_t> truncated; // [B] or empty; used with mask_truncated
};

struct GrpoStats {
  double loss = 0;             // L (aggregated, including beta * k3)
  double policy_loss = 0;      // L with beta = 0 (the clipped surrogate part)
  double kl_loss = 0;          // L of the k3 part alone (before beta)
  double kl_mean = 0;          // token mean of k3 (0 when beta == 0 and no reference)
  double ratio_mean = 0;       // token mean of rho
  double ratio_min = 0, ratio_max = 0;
  double clip_low_fraction = 0;   // tokens with A < 0 and rho < 1 - clip_low
  double clip_high_fraction = 0;  // tokens with A > 0 and rho > 1 + clip_high
  double clip_fraction = 0;       // their sum
  int64_t tokens = 0;             // tokens with mask 1
  int64_t sequences = 0;          // B of this call
};

// Computes L, its statistics and (when coef is not empty, size N) coef_t = dL/dnew_t; masked
// tokens get coef 0. Accumulates in double. qs::Error for inconsistent sizes, non-finite inputs,
// clip values outside [0, 1) / [0, inf), beta < 0, a mask value other than 0/1, or dr_grpo without
// max_completion_length.
template <typename T>
GrpoStats grpo_loss(const GrpoBatch<T>& batch, const GrpoLossConfig& config, std::span<T> coef = {});

extern template GrpoStats grpo_loss<float>(const GrpoBatch<float>&, const GrpoLossConfig&, std::span<float>);
extern template GrpoStats grpo_loss<double>(const GrpoBatch<double>&, const GrpoLossConfig&, std::span<double>);

}  // namespace qs::rl
