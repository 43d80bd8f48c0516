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
//
// Expert parallelism (dist/expert_parallel.h): when the weights carry an ExpertParallel with
// several ranks (MoeWeights::ep, MoeParamsT::ep), this rank holds only its block of routed
// experts; the (token, expert) pairs of every call go to the experts' owners and the results
// come back by all-to-all, for the training forward, its backward and inference alike. Each
// expert computes the same rows in the same order as on one process and every token sums its
// experts in the same order, so results match one process (inference bitwise).
#pragma once
#include "qiusuo/dist/expert_parallel.h"
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
// With expert parallelism in leader/follower mode this is rank 0's side of the layer call.
void moe_forward(const ModelConfig& c, const MoeWeights& w, int64_t layer, const float* x, float* out,
                 StepContext& ctx);

// A follower rank of expert-parallel inference: computes its experts of layer `layer` (the
// weights of that layer, w.ep set) for the rows the leader's call sends, in the leader's
// precision. Called once per ExpertCall the leader announces (serve_experts() loops over them).
void moe_serve_call(const MoeWeights& w, int64_t moe_intermediate_size, const ExpertCall& call, Arena& arena);
// A follower rank's whole part in expert-parallel inference: serves the leader's MoE layer calls
// (decoder layers, then the MTP blocks) until it announces the end.
void serve_experts(const ModelConfig& c, const ModelWeights& w, const ExpertParallel& ep);

// ---- Training ----
// Routing is the same function as inference (selection by s + bias, weights from s). Gradients
// flow to the router through the weights of the selected experts only; the bias gets none (it
// is moved by the auxiliary-loss-free rule after each optimizer step, train/balance.h).
// Sequence-wise balance loss (DeepSeek-V3 eq. 17–20), per sequence b of len_b real tokens:
//   f_i = E/(K·len_b) · #{t : i ∈ TopK(t)},  P_i = 1/len_b · Σ_t s_{i,t}/Σ_j s_{j,t},
//   L = α · mean over the sequences with len_b > 0 of Σ_i f_i P_i
// Padding positions (TrainShape) are routed and computed like the others but are not counted
// in f, P or the expert load.
//
// Dispatch: the N·K (token, expert) pairs sorted by expert, tokens in order within an expert,
// in one buffer of moe_dispatch_capacity() rows; expert e works on rows [offset[e], offset[e+1]).
template <typename T>
struct MoeActs {
  const T* x = nullptr;          // [N, d]
  T* logits = nullptr;           // [N, E]
  T* scores = nullptr;           // [N, E]
  std::vector<int32_t> idx;      // [N, K] selected experts
  T* w = nullptr;                // [N, K] routing weights
  std::vector<int32_t> row_of;   // [N, K] row of (t, k) in the dispatch buffers
  std::vector<int32_t> token_of; // [rows] token of each dispatch row (-1: padding row)
  std::vector<int64_t> offset;   // [E + 1] first dispatch row of each expert
  T* xe = nullptr;               // [rows, d] gathered inputs
  T* ye = nullptr;               // [rows, d] expert outputs (unweighted)
  MlpActs<T> routed;             // [rows] activations of all routed experts, by dispatch row
  MlpActs<T> shared;             // [N] shared experts
  std::vector<T> f;              // [B, E] balance-loss load fractions
  T aux_loss = 0;                // balance loss (0 when α = 0)
  std::vector<int64_t> load;     // [E] real tokens routed to each expert in this call
  // Expert parallelism: the call's exchange; xe, the routed activations and the experts'
  // outputs are this rank's experts' rows from every rank (expert-major, ex's offsets), kept in
  // ep_fwd; ye then points at the outputs back in pair order [N·K, d] (row_of[t·K+k] = t·K+k).
  mutable ExpertExchange ex;
  std::vector<T> ep_fwd;
  mutable std::vector<T> ep_bwd;     // backward scratch
  std::vector<int32_t> pair_token;   // [N·K] token of each pair
};

// Dispatch rows an expert with n tokens gets: n, rounded up in a BF16 run so that the expert
// GEMMs see few distinct shapes (oneDNN plans are per shape); and the most all experts of
// N tokens can take together.
int64_t moe_padded_rows(int64_t n, TrainPrecision p);
int64_t moe_dispatch_capacity(const ModelConfig& c, int64_t N, TrainPrecision p);

// The arena buffers of one MoE layer over `sh` (forward and backward).
void moe_train_plan(const ModelConfig& c, const TrainShape& sh, TrainPrecision p, ArenaPlan& plan);

template <typename T>
void moe_train_forward(const ModelConfig& c, const MoeParamsT<T>& p, const TrainShape& sh, const T* x, T* out,
                       MoeActs<T>& a, double aux_alpha, TrainArena<T>& arena, const MatmulPolicy& pol);
// dx += ∂L/∂x (L = Σ dout·out + aux_alpha-scaled balance loss); gradients accumulate into g.
template <typename T>
void moe_train_backward(const ModelConfig& c, const MoeParamsT<T>& p, const MoeParamsT<T>& g, const TrainShape& sh,
                        const MoeActs<T>& a, const T* dout, T* dx, double aux_alpha, TrainArena<T>& arena,
                        const MatmulPolicy& pol);

template <typename T>
void moe_select(const ModelConfig& c, const T* s, const T* bias, int32_t* idx);
template <typename T>
void moe_scores(const ModelConfig& c, const T* logits, int64_t E, T* s);
template <typename T>
void moe_weights(const ModelConfig& c, const T* s, const int32_t* idx, T* w);

}  // namespace qs
