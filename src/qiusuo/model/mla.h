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
#include "qiusuo/model/train_ops.h"
#include "qiusuo/model/train_params.h"
#include "qiusuo/model/weights.h"

namespace qs {

// Steps of at most this many tokens read kv_b as stored when it is BF16, F16, FP8, INT8 or INT4
// (absorbed attention dequantizes 16 rows at a time into L1, the values of the F32 copy bit for
// bit); larger steps and F32 kv_b read its F32 copy, which stays in cache across the step's
// queries while each query would dequantize anew. Full-depth V2-Lite INT4 on Zen 5 (2 threads),
// stored against the F32 copy in alternation: batch 1 +1 to +7%, batch 2 +4%, batch 4 even.
inline constexpr int64_t kKvbStoredMaxTokens = 4;
inline bool kv_b_read_as_stored(DType kv_b, int64_t step_tokens) {
  return step_tokens <= kKvbStoredMaxTokens && kv_b != DType::F32;
}

// x [T, d] (already normalized) → out [T, d]. Writes the step's latents into `pool` at `layer`
// through the chunks' block tables, then attends over positions [0, own position] of each
// chunk's sequence.
//
// Batch invariance: with AttnImpl::Absorb every query row is computed from its own position's
// keys in a fixed order (scores key by key, softmax over exactly the visible keys, weighted sum
// in key order), so a token's output does not depend on which other tokens share the step or
// how its sequence was chunked — the engine relies on this (infer/engine.h). Its products are
// F32 over F32 rows (Compute::F32: an F32 pool's, or BF16/FP8 rows converted; Compute::BF16 over
// an F32 pool), or — Compute::BF16 over a BF16 or FP8 pool, the default generation path — the
// BF16 products of kernels/attention.h over BF16 rows: a BF16 pool's in place, an FP8 pool's
// dequantized to BF16 (KVPool::load_bf16) a segment at a time (the absorbed query and the
// probabilities rounded to BF16; error against the official logits in
// tests/model/fixtures_test.cpp and docs/benchmarks.md). AttnImpl::Auto
// picks naive or absorbed attention per chunk by cost, which is faster for long prefills but
// makes the result depend on the chunking.
void mla_forward(const ModelConfig& c, const MlaWeights& w, const Rope& rope, int64_t layer, KVPool& pool,
                 const float* x, float* out, StepContext& ctx);

// ---- Training: B sequences of S tokens (N = B·S rows, position = index in the sequence),
// naive attention, every activation the backward pass needs kept in `a`. ----

template <typename T>
struct MlaActs {
  const T* x = nullptr;  // [N, d] input (normalized), owned by the caller
  T* qa = nullptr;       // [N, q_lora] q_a_proj(x)            (q_lora_rank > 0)
  T* qa_rstd = nullptr;  // [N]
  T* qan = nullptr;      // [N, q_lora] RMSNorm(qa)
  T* q = nullptr;        // [N, H, dn+dr] queries, RoPE applied to the dr part
  T* kv = nullptr;       // [N, R+dr] kv_a_proj_with_mqa(x)
  T* kv_rstd = nullptr;  // [N]
  T* c = nullptr;        // [N, R] RMSNorm(kv[:, :R]): the latent
  T* kpe = nullptr;      // [N, dr] RoPE(kv[:, R:]): the shared rope key
  T* up = nullptr;       // [N, H, dn+dv] kv_b_proj(c): per-head K_nope | V
  T* P = nullptr;        // [B, H, S, S] attention probabilities (causal)
  T* o = nullptr;        // [N, H*dv] attention output before o_proj
};

// The arena buffers of one layer's forward (kept) and backward (scratch).
void mla_train_plan(const ModelConfig& c, int64_t B, int64_t S, ArenaPlan& plan);

template <typename T>
void mla_train_forward(const ModelConfig& c, const MlaParamsT<T>& p, const Rope& rope, int64_t B, int64_t S,
                       const T* x, T* out, MlaActs<T>& a, TrainArena<T>& arena, const MatmulPolicy& pol);

// dx += ∂L/∂x; gradients accumulate into g (same layout as p).
template <typename T>
void mla_train_backward(const ModelConfig& c, const MlaParamsT<T>& p, const MlaParamsT<T>& g, const Rope& rope,
                        int64_t B, int64_t S, const MlaActs<T>& a, const T* dout, T* dx, TrainArena<T>& arena,
                        const MatmulPolicy& pol);

}  // namespace qs
