// DeepSeekMoE (DeepSeek-V2 §2.2, V3 §2.1.2): shared experts every token passes through, plus
// top-k of n_routed fine-grained routed experts chosen by a router.
//   scores s = softmax(x Wᵣᵀ) or sigmoid(x Wᵣᵀ)                       (scoring_func)
//   selection scores s' = s + e_score_correction_bias (noaux_tc; selection only)
//   group-limited routing: experts form n_group groups; a group's score is its max s'
//     (group_limited_greedy) or the sum of its top-2 s' (noaux_tc); only the best topk_group
//     groups compete; `greedy` ignores groups
//   top-k experts by s'; weights g = s at those experts, renormalised to sum 1 when
//     norm_topk_prob, times routed_scaling_factor
//   out = Σ_k g_k · Expert_k(x) + SharedExperts(x)
#pragma once
#include "qiusuo/model/config.h"
#include "qiusuo/model/forward.h"
#include "qiusuo/model/weights.h"

namespace qs {

// Routing of T tokens from router logits [T, n_routed] → indices [T, k] (descending selection
// score) and weights [T, k]. `bias` may be null.
void moe_route(const ModelConfig& c, const float* logits, const float* bias, int64_t T, int32_t* indices,
               float* weights);

// x [T, d] (normalized) → out [T, d]. Records the routing in ctx.opt.router when set.
void moe_forward(const ModelConfig& c, const MoeWeights& w, int64_t layer, const float* x, float* out,
                 StepContext& ctx);

}  // namespace qs
