// One decoder block for training: x → x + MLA(RMSNorm(x)) → h + FFN(RMSNorm(h)), FFN = dense
// SwiGLU or DeepSeekMoE by layer. Inference runs the same math inside Model::forward
// (transformer.cpp) with the KV cache; this is the form with saved activations and backward.
#pragma once
#include "qiusuo/model/mla.h"
#include "qiusuo/model/mlp.h"
#include "qiusuo/model/moe.h"

namespace qs {

template <typename T>
struct BlockActs {
  const T* x_in = nullptr;  // [N, d]
  T* xn1 = nullptr;         // [N, d] RMSNorm(x_in)
  T* rstd1 = nullptr;       // [N]
  MlaActs<T> attn;
  T* x_mid = nullptr;       // [N, d] x_in + attention
  T* xn2 = nullptr;         // [N, d] RMSNorm(x_mid)
  T* rstd2 = nullptr;       // [N]
  bool moe = false;
  MlpActs<T> mlp;
  MoeActs<T> ffn;
};

// The arena buffers of one block (layer `layer` decides dense or MoE) over `sh`.
void block_train_plan(const ModelConfig& c, int64_t layer, const TrainShape& sh, TrainPrecision p, ArenaPlan& plan);

// x_out [N, d] (caller-owned) = block(x_in).
template <typename T>
void block_train_forward(const ModelConfig& c, const BlockParamsT<T>& p, const Rope& rope, const TrainShape& sh,
                         const T* x_in, T* x_out, BlockActs<T>& a, double aux_alpha, TrainArena<T>& arena,
                         const MatmulPolicy& pol);
// dx_in [N, d] (overwritten) from dx_out; gradients accumulate into g.
template <typename T>
void block_train_backward(const ModelConfig& c, const BlockParamsT<T>& p, const BlockParamsT<T>& g, const Rope& rope,
                          const TrainShape& sh, const BlockActs<T>& a, const T* dx_out, T* dx_in, double aux_alpha,
                          TrainArena<T>& arena, const MatmulPolicy& pol);

}  // namespace qs
