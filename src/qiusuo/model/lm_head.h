// The ends of the model for training: token embedding (forward = row gather, backward = row
// scatter-add) and final RMSNorm + LM head + cross-entropy, fused so that the [N, vocab]
// logits are never held for more than a chunk of rows.
#pragma once
#include <cstdint>

#include "qiusuo/model/train_ops.h"

namespace qs {

// h[t] = E[tokens[t]]  (E [V, d])
template <typename T>
void embed_forward(const T* E, int64_t d, const int32_t* tokens, int64_t N, T* h);
// dE[tokens[t]] += dh[t]  (serial in token order: deterministic)
template <typename T>
void embed_backward(const int32_t* tokens, int64_t N, int64_t d, const T* dh, T* dE);

struct HeadLoss {
  double loss_sum = 0;  // Σ over counted positions of −log p(target)
  int64_t count = 0;    // positions with a target (targets < 0 are ignored)
};

// logits = RMSNorm(h)·headᵀ, loss = Σ CE(logits, target). With dh != nullptr also the backward
// of grad_scale·loss: dh += ∂/∂h, dnorm += ∂/∂norm_w, dhead += ∂/∂head.
template <typename T>
HeadLoss head_loss(const T* h, int64_t N, int64_t d, const T* norm_w, T eps, const T* head, int64_t V,
                   const int32_t* targets, T grad_scale, T* dh, T* dnorm, T* dhead, const MatmulPolicy& pol);

}  // namespace qs
