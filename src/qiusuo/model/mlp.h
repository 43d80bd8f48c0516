// SwiGLU feed-forward: out = down_proj(silu(gate_proj(x)) * up_proj(x)). Used by the dense
// layers, by every routed expert and by the shared experts.
#pragma once
#include "qiusuo/core/arena.h"
#include "qiusuo/model/train_ops.h"
#include "qiusuo/model/train_params.h"
#include "qiusuo/model/weights.h"

namespace qs {

// x [T, d] → out [T, d] (overwritten).
void mlp_forward(const MlpWeights& w, const float* x, int64_t T, float* out, Compute compute, Arena& arena);

// ---- Training ----
// When gate_proj and up_proj are adjacent in the parameter buffer (the training layout puts
// them so), they act as one [2I, d] matrix: one product for both, each input converted once.
template <typename T>
struct MlpActs {
  const T* x = nullptr;  // [N, d] input, owned by the caller
  T *g = nullptr, *u = nullptr;  // [N, I] gate and up outputs, row stride ld (2I when fused)
  int64_t ld = 0;
  bool fused = false;
  T* h = nullptr;  // [N, I] silu(gate)·up
};

size_t mlp_train_arena_elems(int64_t N, int64_t I);  // forward activations + backward scratch

// out [N, d] = down(silu(gate(x))·up(x)) (overwritten).
template <typename T>
void mlp_train_forward(const MlpParamsT<T>& p, int64_t N, int64_t d, int64_t I, const T* x, T* out, MlpActs<T>& a,
                       TrainArena<T>& arena, const MatmulPolicy& pol);
// dx += ∂L/∂x; gradients accumulate into g.
template <typename T>
void mlp_train_backward(const MlpParamsT<T>& p, const MlpParamsT<T>& g, int64_t N, int64_t d, int64_t I,
                        const MlpActs<T>& a, const T* dout, T* dx, TrainArena<T>& arena, const MatmulPolicy& pol);

}  // namespace qs
