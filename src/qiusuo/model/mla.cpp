#include "qiusuo/model/mla.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "qiusuo/core/error.h"
#include "qiusuo/core/parallel.h"
#include "qiusuo/kernels/gemm.h"
#include "qiusuo/kernels/vec_ops.h"

namespace qs {
namespace {

struct Dims {
  int64_t H, dn, dr, dv, dq, R, W, d;
  explicit Dims(const ModelConfig& c)
      : H(c.num_attention_heads), dn(c.qk_nope_head_dim), dr(c.qk_rope_head_dim), dv(c.v_head_dim),
        dq(c.qk_nope_head_dim + c.qk_rope_head_dim), R(c.kv_lora_rank), W(c.kv_lora_rank + c.qk_rope_head_dim),
        d(c.hidden_size) {}
};

// Multiply-adds of each way to attend n queries over L keys.
bool prefer_absorb(const Dims& D, int64_t n, int64_t L) {
  const double naive = double(L) * D.R * D.H * (D.dn + D.dv) + double(n) * L * D.H * (D.dq + D.dv);
  const double absorb = double(n) * D.H * D.R * (D.dn + D.dv) + double(n) * L * D.H * (2 * D.R + D.dr);
  return absorb < naive;
}

// softmax over the first `valid` entries of row s[0..L), zeros after (causal mask).
void masked_softmax(float* s, int64_t valid, int64_t L, float scale) {
  for (int64_t j = 0; j < valid; ++j) s[j] *= scale;
  softmax(s, valid);
  if (L > valid) std::memset(s + valid, 0, size_t(L - valid) * sizeof(float));
}

// Absorbed attention for one chunk: queries q [n, H, dq] at positions start..start+n-1 over
// the cached latents of `seq` (positions 0..start+n-1) → o [n, H*dv].
void attend_absorb(const Dims& D, const MlaWeights& w, const KVCache& cache, int64_t layer, int64_t seq,
                   int64_t start, int64_t n, const float* q, float scale, float* o, Arena& arena) {
  const int64_t L = start + n, rows = n * D.H;
  float* qa = arena.alloc(size_t(rows * D.W));  // [n*H, R + dr]: q_nope·W_UK | q_pe
  float* S = arena.alloc(size_t(rows * L));     // [n*H, L]
  float* ol = arena.alloc(size_t(rows * D.R));  // [n*H, R]
  const float* kvb = w.kv_b_f32;                // [H, dn+dv, R]
  parallel_for(rows, 1, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const int64_t t = r / D.H, h = r % D.H;
      const float* qh = q + (t * D.H + h) * D.dq;
      float* dst = qa + r * D.W;
      std::memset(dst, 0, size_t(D.R) * sizeof(float));
      const float* uk = kvb + h * (D.dn + D.dv) * D.R;
      for (int64_t i = 0; i < D.dn; ++i) axpy(qh[i], uk + i * D.R, dst, D.R);
      std::memcpy(dst + D.R, qh + D.dn, size_t(D.dr) * sizeof(float));
    }
  });
  // Scores and weighted sums block by block over the paged cache; threads split the query rows.
  parallel_for(rows, D.H > 1 ? D.H / 2 : 1, [&](int64_t b, int64_t e) {
    for (int64_t p = 0; p < L;) {
      const int64_t m = cache.contiguous_rows(seq, p);
      dot_rows(qa + b * D.W, e - b, D.W, cache.row(layer, seq, p), m, D.W, D.W, S + b * L + p, L);
      p += m;
    }
    for (int64_t r = b; r < e; ++r) masked_softmax(S + r * L, start + r / D.H + 1, L, scale);
    for (int64_t p = 0; p < L;) {
      const int64_t m = cache.contiguous_rows(seq, p);
      weighted_rows(S + b * L + p, e - b, L, cache.row(layer, seq, p), m, D.W, D.R, ol + b * D.R, D.R, p > 0);
      p += m;
    }
    for (int64_t r = b; r < e; ++r) {
      const int64_t t = r / D.H, h = r % D.H;
      const float* uv = kvb + (h * (D.dn + D.dv) + D.dn) * D.R;  // [dv, R]
      dot_rows(ol + r * D.R, 1, D.R, uv, D.dv, D.R, D.R, o + t * D.H * D.dv + h * D.dv, D.dv);
    }
  });
}

// Naive attention for one chunk: decompress K_nope and V of all L cached tokens.
void attend_naive(const Dims& D, const MlaWeights& w, const KVCache& cache, int64_t layer, int64_t seq,
                  int64_t start, int64_t n, const float* q, float scale, float* o, Arena& arena) {
  const int64_t L = start + n, U = D.H * (D.dn + D.dv);
  float* kc = arena.alloc(size_t(L * D.W));  // gathered latents [L, R + dr]
  for (int64_t p = 0; p < L;) {
    const int64_t m = cache.contiguous_rows(seq, p);
    std::memcpy(kc + p * D.W, cache.row(layer, seq, p), size_t(m * D.W) * sizeof(float));
    p += m;
  }
  float* up = arena.alloc(size_t(L * U));  // [L, H, dn+dv]
  gemm_f32(false, true, L, U, D.R, 1.0f, kc, D.W, w.kv_b_f32, D.R, 0.0f, up, U);
  float* S = arena.alloc(size_t(D.H * n * L));  // [H, n, L]
  for (int64_t h = 0; h < D.H; ++h) {
    float* Sh = S + h * n * L;
    gemm_f32(false, true, n, L, D.dn, 1.0f, q + h * D.dq, D.H * D.dq, up + h * (D.dn + D.dv), U, 0.0f, Sh, L);
    gemm_f32(false, true, n, L, D.dr, 1.0f, q + h * D.dq + D.dn, D.H * D.dq, kc + D.R, D.W, 1.0f, Sh, L);
  }
  parallel_for(D.H * n, 8, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) masked_softmax(S + r * L, start + r % n + 1, L, scale);
  });
  for (int64_t h = 0; h < D.H; ++h)
    gemm_f32(false, false, n, D.dv, L, 1.0f, S + h * n * L, L, up + h * (D.dn + D.dv) + D.dn, U, 0.0f,
             o + h * D.dv, D.H * D.dv);
}

}  // namespace

void mla_forward(const ModelConfig& c, const MlaWeights& w, const Rope& rope, int64_t layer, KVCache& cache,
                 const float* x, float* out, StepContext& ctx) {
  const Dims D(c);
  const StepBatch& b = ctx.batch;
  const int64_t T = b.size();
  const Compute cmp = ctx.opt.compute;
  const float eps = float(c.rms_norm_eps);
  Arena& a = ctx.arena;

  float* q = a.alloc(size_t(T * D.H * D.dq));  // [T, H, dn + dr]
  if (c.q_lora_rank > 0) {
    const int64_t ql = c.q_lora_rank;
    float* qa = a.alloc(size_t(T * ql));
    linear(x, T, w.q_a_proj, qa, cmp);
    for (int64_t t = 0; t < T; ++t) rmsnorm(qa + t * ql, w.q_a_norm, eps, ql, qa + t * ql);
    linear(qa, T, w.q_b_proj, q, cmp);
  } else {
    linear(x, T, w.q_proj, q, cmp);
  }
  float* kv = a.alloc(size_t(T * D.W));  // [T, R + dr]
  linear(x, T, w.kv_a_proj, kv, cmp);
  for (int64_t t = 0; t < T; ++t) {
    const int64_t pos = b.positions[size_t(t)];
    rmsnorm(kv + t * D.W, w.kv_a_norm, eps, D.R, kv + t * D.W);
    rope.apply(kv + t * D.W + D.R, pos);
    rope.apply_n(q + t * D.H * D.dq + D.dn, D.H, D.dq, pos);
  }
  // Cache the new latents.
  for (size_t ci = 0; ci < b.chunks.size(); ++ci) {
    const SeqChunk& ch = b.chunks[ci];
    for (int64_t i = 0; i < ch.n_tokens; ++i)
      std::memcpy(cache.row(layer, ch.seq, ch.start_pos + i), kv + (b.offsets[ci] + i) * D.W,
                  size_t(D.W) * sizeof(float));
  }
  float* o = a.alloc(size_t(T * D.H * D.dv));  // [T, H*dv]
  const float scale = float(c.softmax_scale());
  for (size_t ci = 0; ci < b.chunks.size(); ++ci) {
    const SeqChunk& ch = b.chunks[ci];
    const int64_t off = b.offsets[ci];
    bool absorb = prefer_absorb(D, ch.n_tokens, ch.start_pos + ch.n_tokens);
    if (ctx.opt.attn == AttnImpl::Absorb) absorb = true;
    if (ctx.opt.attn == AttnImpl::Naive) absorb = false;
    const float* qc = q + off * D.H * D.dq;
    float* oc = o + off * D.H * D.dv;
    if (absorb) attend_absorb(D, w, cache, layer, ch.seq, ch.start_pos, ch.n_tokens, qc, scale, oc, a);
    else attend_naive(D, w, cache, layer, ch.seq, ch.start_pos, ch.n_tokens, qc, scale, oc, a);
  }
  linear(o, T, w.o_proj, out, cmp);
}

}  // namespace qs
