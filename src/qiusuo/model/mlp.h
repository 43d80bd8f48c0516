// SwiGLU feed-forward: out = down_proj(silu(gate_proj(x)) * up_proj(x)). Used by the dense
// layers, by every routed expert and by the shared experts.
#pragma once
#include "qiusuo/core/arena.h"
#include "qiusuo/model/weights.h"

namespace qs {

// x [T, d] → out [T, d] (overwritten).
void mlp_forward(const MlpWeights& w, const float* x, int64_t T, float* out, Compute compute, Arena& arena);

}  // namespace qs
