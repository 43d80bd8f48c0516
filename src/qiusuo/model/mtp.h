// Multi-token prediction (DeepSeek-V3 §2.2): module k predicts the token k+1 positions ahead
// from the previous depth's hidden state and the embedding of the next token:
//   h'_t = eh_proj([RMSNorm_e(Emb(t_{i+k})) ; RMSNorm_h(h^{k-1}_i)])   (embedding first, as
//          vLLM/SGLang load the released weights)
//   h^k  = Block_k(h')
//   logits = head(RMSNorm_shared_head(h^k))   — embedding and head shared with the main model
// h^0 is the main model's last hidden state before its final norm. Training adds λ·CE of every
// depth to the loss (weights: train/train_step.h). Inference runs module 1 to draft the token
// after next for speculative decoding (Model::forward_mtp, infer/engine.h: --speculative mtp).
#pragma once
#include "qiusuo/model/block.h"

namespace qs {

template <typename T>
struct MtpActs {
  std::vector<int32_t> next;  // [N] token whose embedding enters
  T* e = nullptr;       // [N, d] Emb(next)
  T* e_rstd = nullptr;  // [N]
  T* h_rstd = nullptr;  // [N]
  T* cat = nullptr;     // [N, 2d] [enorm(e) | hnorm(h_prev)]
  T* m0 = nullptr;      // [N, d] eh_proj(cat)
  BlockActs<T> block;
  T* out = nullptr;     // [N, d] block output h^k
  const T* h_prev = nullptr;
};

// The arena buffers of MTP module `depth` over `sh` (forward and backward, its block included).
void mtp_train_plan(const ModelConfig& c, int64_t depth, const TrainShape& sh, TrainPrecision p, ArenaPlan& plan);

// h_prev [N, d]; next [N] ids (any valid id where no target exists: those rows are ignored by
// the loss but still computed). Output a.out.
template <typename T>
void mtp_train_forward(const ModelConfig& c, const MtpParamsT<T>& p, const T* embed, const Rope& rope, int64_t depth,
                       const TrainShape& sh, const T* h_prev, const int32_t* next, MtpActs<T>& a, double aux_alpha,
                       TrainArena<T>& arena, const MatmulPolicy& pol);
// From d(out): dh_prev += ∂/∂h_prev, dembed += ∂/∂Emb rows; module gradients into g.
template <typename T>
void mtp_train_backward(const ModelConfig& c, const MtpParamsT<T>& p, const MtpParamsT<T>& g, T* dembed,
                        const Rope& rope, int64_t depth, const TrainShape& sh, const MtpActs<T>& a, const T* dout,
                        T* dh_prev, double aux_alpha, TrainArena<T>& arena, const MatmulPolicy& pol);

}  // namespace qs
