// Multi-head Latent Attention (DeepSeek-V2 §2.1, V3 §2.1): queries from an optional low-rank
// compression (q_a_proj → RMSNorm → q_b_proj, or q_proj directly); keys and values from a
// compressed latent c_kv = RMSNorm(kv_a_proj(x)[:kv_lora]) shared by all heads, plus one
// decoupled RoPE key k_pe = RoPE(kv_a_proj(x)[kv_lora:]) shared by all heads.
//   head h:  k_h = [W_UK_h c_kv ; k_pe],  v_h = W_UV_h c_kv,  q_h = [q_nope_h ; RoPE(q_pe_h)]
//   o = o_proj(concat_h softmax(q_h·k_h · scale) v_h)
// Only c_kv and k_pe are cached. Two equivalent ways to attend:
//   naive   decompress K_nope, V for every cached token (cheap per query: long prefills)
//   absorb  fold W_UK into the query (q_nope_h W_UK_h, kv_lora wide) and W_UV after the
//           weighted sum, attending directly over the latents (decode: no decompression).
#pragma once
#include "qiusuo/model/config.h"
#include "qiusuo/model/forward.h"
#include "qiusuo/model/kv_cache.h"
#include "qiusuo/model/rope.h"
#include "qiusuo/model/weights.h"

namespace qs {

// x [T, d] (already normalized) → out [T, d]. Writes the step's latents into `cache` at
// `layer` (the cache sequences must already be extended to hold them).
void mla_forward(const ModelConfig& c, const MlaWeights& w, const Rope& rope, int64_t layer, KVCache& cache,
                 const float* x, float* out, StepContext& ctx);

}  // namespace qs
