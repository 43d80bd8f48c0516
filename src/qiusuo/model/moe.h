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
#include "qiusuo/model/mlp.h"
#include "qiusuo/model/forward.h"
#include "qiusuo/model/train_ops.h"
#include "qiusuo/model/train_params.h"
#include "qiusuo/model/weights.h"

namespace qs {

// Routing of T tokens from router logits [T, n_routed] → indices [T, k] (descending selection
// score) and weights [T, k]. `bias` may be null.
void moe_route(const ModelConfig& c, const float* logits, const float* bias, int64_t T, int32_t* indices,
               float* weights);

// x [T, d] (normalized) → out [T, d]. Records the routing in ctx.opt.router when set.
void moe_forward(const ModelConfig& c, const MoeWeights& w, int64_t layer, const float* x, float* out,
                 StepContext& ctx);

// ---- Training ----
// Routing is the same function as inference (selection by s + bias, weights from s). Gradients
// flow to the router through the weights of the selected experts only; the bias gets none (it
// is moved by the auxiliary-loss-free rule after each step, see train/balance).
// Sequence-wise balance loss (DeepSeek-V3 eq. 17–20), per sequence of S tokens:
//   f_i = E/(K·S) · #{t : i ∈ TopK(t)},  P_i = 1/S · Σ_t s_{i,t}/Σ_j s_{j,t},  L = α Σ_i f_i P_i
// averaged over the B sequences.
template <typename T>
struct MoeActs {
  const T* x = nullptr;          // [N, d]
  T* logits = nullptr;           // [N, E]
  T* scores = nullptr;           // [N, E]
  std::vector<int32_t> idx;      // [N, K] selected experts
  T* w = nullptr;                // [N, K] routing weights
  std::vector<int32_t> row_of;   // [N, K] row of (t, k) in the expert-sorted dispatch buffers
  std::vector<int32_t> token_of; // [N·K] token of each dispatch row
  std::vector<int64_t> offset;   // [E + 1] first dispatch row of each expert
  T* xe = nullptr;               // [N·K, d] gathered inputs
  T* ye = nullptr;               // [N·K, d] expert outputs (unweighted)
  std::vector<MlpActs<T>> expert;
  MlpActs<T> shared;
  std::vector<T> f;              // [B, E] balance-loss load fractions
  T aux_loss = 0;                // α·Σ f·P averaged over sequences (0 when α = 0)
  std::vector<int64_t> load;     // [E] tokens routed to each expert in this call
};

size_t moe_train_arena_elems(const ModelConfig& c, int64_t N);

template <typename T>
void moe_train_forward(const ModelConfig& c, const MoeParamsT<T>& p, int64_t B, int64_t S, const T* x, T* out,
                       MoeActs<T>& a, double aux_alpha, TrainArena<T>& arena, const MatmulPolicy& pol);
template <typename T>
void moe_train_backward(const ModelConfig& c, const MoeParamsT<T>& p, const MoeParamsT<T>& g, int64_t B, int64_t S,
                        const MoeActs<T>& a, const T* dout, T* dx, double aux_alpha, TrainArena<T>& arena,
                        const MatmulPolicy& pol);

template <typename T>
void moe_select(const ModelConfig& c, const T* s, const T* bias, int32_t* idx);
template <typename T>
void moe_scores(const ModelConfig& c, const T* logits, int64_t E, T* s);
template <typename T>
void moe_weights(const ModelConfig& c, const T* s, const int32_t* idx, T* w);

}  // namespace qs
