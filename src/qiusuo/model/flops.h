// FLOPs per token of a DeepSeek model: the one count `bench` (inference MFU) and `train`
// (training MFU) use.
//
// Convention (PaLM, Chowdhery et al. 2022, App. B): a matrix product of a token with a [m, n]
// weight is 2·m·n FLOPs; training (forward + backward) is 3 × forward — 6·N per token plus the
// attention term — and a forward alone is 2·N plus its attention term. N counts every weight a
// token is multiplied by, the LM head included (the embedding lookup, norms and biases are not
// products); for MoE layers the router, the shared experts and the top-k routed experts. The
// attention term is the score and weighted-value products, 2·H·(qk_head_dim + v_head_dim) FLOPs
// per key per layer (PaLM's 12·L·H·Q·T for training), over the keys a query actually sees: the
// caller passes the mean context. (PaLM counts the full T keys even under a causal mask; qiusuo
// counts (T+1)/2 for a causal sequence of T tokens, what its kernels compute.)
#pragma once
#include <cstdint>

#include "qiusuo/model/config.h"

namespace qs {

// N: matmul weights one token is multiplied by in the decoder layers and the LM head; with
// mtp = true also in each MTP module (eh_proj, its block and the shared head again).
double matmul_params_per_token(const ModelConfig& c, bool mtp);

// Forward FLOPs of one token attending over `mean_context` keys in every layer:
//   2·N + 2·layers·H·(qk_head_dim + v_head_dim)·mean_context
double forward_flops_per_token(const ModelConfig& c, double mean_context, bool mtp = false);

// Training FLOPs (forward + backward) of one token of causal sequences of seq_len tokens, MTP
// modules included when mtp: 3 × forward_flops_per_token(c, (seq_len + 1) / 2, mtp).
double train_flops_per_token(const ModelConfig& c, int64_t seq_len, bool mtp);

}  // namespace qs
