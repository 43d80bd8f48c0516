// SwiGLU feed-forward: out = down_proj(silu(gate_proj(x)) * up_proj(x)). Used by the dense
// layers, by every routed expert and by the shared experts.
#pragma once
#include <span>

#include "qiusuo/core/arena.h"
#include "qiusuo/model/train_ops.h"
#include "qiusuo/model/train_params.h"
#include "qiusuo/model/weights.h"

namespace qs {

// x [T, d] → out [T, d] (overwritten).
void mlp_forward(const MlpWeights& w, const float* x, int64_t T, float* out, Compute compute, Arena& arena);

// Several MLPs at once (a MoE layer's active experts): every gate and up product as one
// linear_batch, then every down product as another, so decode-sized ones share parallel regions.
// Each output is bitwise what mlp_forward gives alone.
struct MlpCall {
  const MlpWeights* w;
  const float* x;  // [T, d]
  int64_t T;
  float* out;      // [T, d]
};
void mlp_forward_batch(std::span<const MlpCall> calls, Compute compute, Arena& arena);

// ---- Training ----
// Gate and up outputs share one [N, 2I] buffer (gate | up per row). When gate_proj and up_proj
// are adjacent in the parameter buffer (the training layout puts them so) they act as one
// [2I, d] matrix: one product for both, each input converted once.
template <typename T>
struct MlpActs {
  const T* x = nullptr;  // [N, d] input, owned by the caller
  T* gu = nullptr;       // [N, 2I] gate_proj(x) | up_proj(x)
  T* h = nullptr;        // [N, I] silu(gate)·up
};

// Backward scratch of N rows.
template <typename T>
struct MlpScratch {
  T* dh = nullptr;   // [N, I]
  T* dgu = nullptr;  // [N, 2I]
};

// The arena buffers of one MLP of N rows: MlpActs (forward) and MlpScratch (backward).
void mlp_train_plan(int64_t N, int64_t I, ArenaPlan& plan);
template <typename T>
MlpActs<T> mlp_alloc_acts(TrainArena<T>& arena, int64_t N, int64_t I);
template <typename T>
MlpScratch<T> mlp_alloc_scratch(TrainArena<T>& arena, int64_t N, int64_t I);

// out [N, d] = down(silu(gate(x))·up(x)), overwritten (or added to when accumulate), into the
// buffers of `a` (a.gu, a.h set by the caller; a.x is set here).
template <typename T>
void mlp_train_forward(const MlpParamsT<T>& p, int64_t N, int64_t d, int64_t I, const T* x, T* out, MlpActs<T>& a,
                       const MatmulPolicy& pol, bool accumulate = false);
// dx += ∂L/∂x (dx = ∂L/∂x when !accumulate); gradients accumulate into g; s is scratch.
template <typename T>
void mlp_train_backward(const MlpParamsT<T>& p, const MlpParamsT<T>& g, int64_t N, int64_t d, int64_t I,
                        const MlpActs<T>& a, const T* dout, T* dx, const MlpScratch<T>& s, const MatmulPolicy& pol,
                        bool accumulate = true);

}  // namespace qs
