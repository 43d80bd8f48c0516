#include "qiusuo/model/mla.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "qiusuo/core/error.h"
#include "qiusuo/core/parallel.h"
#include "qiusuo/core/profile.h"
#include "qiusuo/kernels/attention.h"
#include "qiusuo/kernels/convert.h"
#include "qiusuo/kernels/gemm.h"
#include "qiusuo/kernels/train_vec.h"
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

// A chunk's view of the paged latents: position p lives in row p % B of block table[p / B].
struct LatentRows {
  const KVPool& pool;
  const int32_t* table;
  int64_t layer;
  // Rows from `pos` on that are contiguous in memory (the rest of its block), at most `limit`.
  int64_t run(int64_t pos, int64_t limit) const {
    const int64_t B = pool.block_size();
    return std::min(B - pos % B, limit - pos);
  }
  // The stored F32 rows from `pos` on (contiguous for run(pos, ...) rows); null unless the pool
  // stores F32.
  const float* stored(int64_t pos) const {
    const int64_t B = pool.block_size();
    return pool.f32_rows(layer, table[pos / B], pos % B);
  }
  // The stored BF16 rows from `pos` on (BF16 pools only).
  const uint16_t* stored_bf16(int64_t pos) const {
    const int64_t B = pool.block_size();
    return pool.bf16_rows(layer, table[pos / B], pos % B);
  }
  // Rows [p0, p1) as F32 into dst [p1 - p0, W] (a copy, converted from the pool's type).
  void load(int64_t p0, int64_t p1, float* dst) const { copy(p0, p1, dst); }
  // The same as BF16 (KVPool::load_bf16: FP8 latents dequantized).
  void load_bf16(int64_t p0, int64_t p1, uint16_t* dst) const { copy(p0, p1, dst); }

 private:
  template <typename T>
  void copy(int64_t p0, int64_t p1, T* dst) const {
    const int64_t B = pool.block_size();
    for (int64_t p = p0; p < p1;) {
      const int64_t r = run(p, p1);
      T* d = dst + (p - p0) * pool.row_width();
      if constexpr (std::is_same_v<T, float>) pool.load(layer, table[p / B], p % B, r, d);
      else pool.load_bf16(layer, table[p / B], p % B, r, d);
      p += r;
    }
  }
};

// Absorbed attention over the keys in segments of kSeg positions (aligned at position 0): a
// segment's contribution to one head is computed on its own — m = its largest scaled score,
// l = Σ e^(s − m), a = Σ e^(s − m)·c_kv — and the segments of a query merge in position order
// (flash-decoding). Keys are read once per segment for all heads, one pass, whatever the
// storage type; a long context splits into segments that threads share even for one query.
constexpr int64_t kSeg = 256;

struct SegScratch {
  float* keys;    // [kSeg, W] converted rows (F32, or BF16 in the first half: see attend_absorb)
  float* scores;  // [H, kSeg]
  uint16_t* p16;  // [H, kSeg] probabilities rounded to BF16 (bf16 attention)
};

// The partial state of segment [p0, p1) for the H heads of one query: m [H], l [H], a [H, R].
// The keys are the pool's own rows when it stores F32, else `converted` [p1 - p0, W] (the
// segment's rows from p0 on as LatentRows::load gives them).
void segment_partial(const Dims& D, const LatentRows& kv, int64_t p0, int64_t p1, const float* qa, float scale,
                     const float* converted, float* scores, float* m, float* l, float* acc) {
  const int64_t n = p1 - p0;
  auto keys_at = [&](int64_t p) {
    const float* k = kv.stored(p);
    return k ? k : converted + (p - p0) * D.W;
  };
  // Scores for every head, run by run (a run is the rest of one block).
  for (int64_t p = p0; p < p1;) {
    const int64_t r = kv.run(p, p1);
    dot_rows(qa, D.H, D.W, keys_at(p), r, D.W, D.W, scores + (p - p0), kSeg);
    p += r;
  }
  for (int64_t h = 0; h < D.H; ++h) {
    float* s = scores + h * kSeg;
    qs::scale(s, scale, n);
    m[h] = max_value(s, n);
    l[h] = exp_shift_sum(s, n, m[h]);
  }
  for (int64_t p = p0; p < p1;) {
    const int64_t r = kv.run(p, p1);
    weighted_rows(scores + (p - p0), D.H, kSeg, keys_at(p), r, D.W, D.R, acc, D.R, p > p0);
    p += r;
  }
}

// The same with --precision bf16 (`bf16 attention`, mla_forward): the scores and the value
// sums are the BF16 products of kernels/attention.h over BF16 rows — the absorbed query qb
// (rounded to BF16, row stride ldqb) against each key, then the probabilities e^(s − m) rounded
// to BF16 (l sums the rounded values) against each latent row. The rows are the pool's own where
// it stores them unpadded in BF16, else `converted` [p1 - p0, W] (LatentRows::load_bf16: FP8
// latents dequantized to BF16). The value product pairs keys (p0 + 2i, p0 + 2i + 1) whatever the
// block boundaries, so the result does not depend on the pool's block size: in place, a pair
// split between two blocks (odd block sizes only) goes through a two-row copy.
void segment_partial_bf16(const Dims& D, const LatentRows& kv, int64_t p0, int64_t p1, const uint16_t* qb,
                          int64_t ldqb, float scale, const uint16_t* converted, const SegScratch& sc, float* m,
                          float* l, float* acc) {
  const int64_t n = p1 - p0;
  if (converted) {
    attn_scores_bf16(qb, D.H, ldqb, converted, n, D.W, sc.scores, kSeg);
  } else {
    for (int64_t p = p0; p < p1;) {
      const int64_t r = kv.run(p, p1);
      attn_scores_bf16(qb, D.H, ldqb, kv.stored_bf16(p), r, D.W, sc.scores + (p - p0), kSeg);
      p += r;
    }
  }
  for (int64_t h = 0; h < D.H; ++h) {
    float* s = sc.scores + h * kSeg;
    uint16_t* pb = sc.p16 + h * kSeg;
    qs::scale(s, scale, n);
    m[h] = max_value(s, n);
    l[h] = exp_shift_bf16(s, n, m[h], pb);
  }
  if (converted) {
    attn_values_bf16(sc.p16, D.H, kSeg, converted, n, D.W, D.R, acc, D.R, false);
    return;
  }
  bool first = true;
  for (int64_t p = p0; p < p1;) {
    const int64_t r = kv.run(p, p1);
    const int64_t whole = r % 2 && p + r < p1 ? r - 1 : r;  // an odd run's last row pairs with the next run's first
    attn_values_bf16(sc.p16 + (p - p0), D.H, kSeg, kv.stored_bf16(p), whole, D.W, D.R, acc, D.R, !first);
    first = false;
    p += whole;
    if (whole < r) {
      std::vector<uint16_t> pair(size_t(2 * D.W));
      std::copy_n(kv.stored_bf16(p), D.W, pair.data());
      std::copy_n(kv.stored_bf16(p + 1), D.W, pair.data() + D.W);
      attn_values_bf16(sc.p16 + (p - p0), D.H, kSeg, pair.data(), 2, D.W, D.R, acc, D.R, true);
      p += 2;
    }
  }
}

// (M, L, A) ⊕= (m, l, a) for H heads, in that order: the running state of a query.
void merge_partial(const Dims& D, float* M, float* L, float* A, const float* m, const float* l, const float* a,
                   bool first) {
  for (int64_t h = 0; h < D.H; ++h) {
    if (first) {
      M[h] = m[h];
      L[h] = l[h];
      std::memcpy(A + h * D.R, a + h * D.R, size_t(D.R) * sizeof(float));
      continue;
    }
    const float mx = std::max(M[h], m[h]);
    const float fo = std::exp(M[h] - mx), fn = std::exp(m[h] - mx);
    M[h] = mx;
    L[h] = L[h] * fo + l[h] * fn;
    qs::scale(A + h * D.R, fo, D.R);
    axpy(fn, a + h * D.R, A + h * D.R, D.R);
  }
}

// Absorbed attention for one chunk: queries q [n, H, dq] at positions start..start+n-1 over
// the cached latents (positions 0..start+n-1) → o [n, H*dv]. Query token t sees the keys of
// positions [0, start + t]; its result depends only on its own query and those keys, never on
// the chunking, the batch or the thread count (batch invariance, see mla.h).
void attend_absorb(const Dims& D, const MlaWeights& w, const LatentRows& kv, int64_t start, int64_t n,
                   const float* q, float scale, float* o, Arena& arena, bool kv_b_as_stored, bool bf16) {
  const int64_t rows = n * D.H;
  float* qa = arena.alloc(size_t(rows * D.W));  // [n*H, R + dr]: q_nope·W_UK | q_pe
  // The same rounded to BF16 (bf16 attention's scores), rows ldqb apart.
  const int64_t ldqb = bf16 ? attn_bf16_query_stride(D.W) : 0;
  uint16_t* qb = bf16 ? reinterpret_cast<uint16_t*>(arena.alloc(size_t(rows * ldqb / 2))) : nullptr;
  const int64_t nt = num_threads();
  const size_t part = size_t(D.H * (2 + D.R));  // one segment's partial state: m, l, a
  const size_t scratch = size_t(kSeg * D.W + D.H * kSeg + D.H * kSeg / 2);  // keys, scores, p16
  const size_t per_thread = scratch + part;
  float* thread_scratch = arena.alloc(size_t(nt) * per_thread);
  float* state = arena.alloc(size_t(n) * part);  // running (M, L, A) per query
  // Thread tid's scratch: a segment's keys and scores, and one partial state (or R floats).
  struct ThreadScratch {
    SegScratch seg;
    float* part;
  };
  auto scratch_of = [&](int tid) {
    float* base = thread_scratch + size_t(tid) * per_thread;
    return ThreadScratch{
        SegScratch{base, base + kSeg * D.W, reinterpret_cast<uint16_t*>(base + kSeg * D.W + D.H * kSeg)},
        base + scratch};
  };
  // Products with rows of kv_b [H * (dn+dv), R]. With `kv_b_as_stored` (a step of few tokens,
  // mla_forward) a kv_b stored in BF16, F16, FP8, INT8 or INT4 (as the checkpoint has it) is read
  // as stored (weighted_rows_of / dot_rows_of, linear.h: FP8 widened in registers on
  // AVX512_VBMI, INT8/INT4 rows gathered from their tiles in registers on AVX-512, else
  // dequantized 16 rows at a time): the values of the F32 copy (made by the
  // same exact dequantization), so the same results bit for bit, from a half to an eighth of the
  // bytes (absorbed decode reads all of kv_b every step: 8.4 MB per layer in F32 at V2-Lite
  // widths, 1.1 MB in INT4 g64). Every query dequantizes it anew, so with many tokens in the step
  // (prefill, batched decode) the F32 copy, read from cache after the first, is cheaper.
  // kv_b_read_as_stored (mla.h) is never true for an F32 kv_b.
  WeightMatrix kvb = w.kv_b_proj;  // kv_b's rows as this step reads them
  if (!kv_b_as_stored) {
    kvb = WeightMatrix{};
    kvb.rows = w.kv_b_proj.rows;
    kvb.cols = w.kv_b_proj.cols;
    kvb.data = w.kv_b_f32;
  }
  {
    QS_PROFILE("mla.absorb_q");
    parallel_for(rows, 1, [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        const int64_t t = r / D.H, h = r % D.H;
        const float* qh = q + (t * D.H + h) * D.dq;
        float* dst = qa + r * D.W;
        std::memset(dst, 0, size_t(D.R) * sizeof(float));
        // dst += Σ_i q[i] · W_UK_h[i], row by row (as axpy would), dst held in registers.
        const int64_t uk = h * (D.dn + D.dv);  // W_UK_h: kv_b rows [uk, uk + dn)
        weighted_rows_of(kvb, uk, D.dn, qh, dst);
        std::memcpy(dst + D.R, qh + D.dn, size_t(D.dr) * sizeof(float));
        if (bf16) {  // the row rounded for the bf16 attention's scores, zero-padded to ldqb
          f32_to_bf16(dst, qb + r * ldqb, D.W);
          std::fill(qb + r * ldqb + D.W, qb + (r + 1) * ldqb, uint16_t(0));
        }
      }
    });
  }
  // The keys are read where the pool holds them (F32 rows for F32 attention, unpadded BF16 rows
  // for bf16 attention), else from a copy converted per segment: F32 rows (KVPool::load), or
  // BF16 rows (KVPool::load_bf16) in the first half of the same scratch.
  const KvDtype kd = kv.pool.dtype();
  const bool in_place = bf16 ? kd == KvDtype::BF16 && kv.pool.row_bytes() == size_t(D.W) * sizeof(uint16_t)
                             : kd == KvDtype::F32;
  // Rows [p0 + b, p0 + e) of a segment from p0 into rows [b, e) of its copy `seg`.
  auto convert = [&](int64_t p0, int64_t b, int64_t e, float* seg) {
    if (bf16) kv.load_bf16(p0 + b, p0 + e, reinterpret_cast<uint16_t*>(seg) + b * D.W);
    else kv.load(p0 + b, p0 + e, seg + b * D.W);
  };
  // Segment [p0, p1)'s partial state for query t into (m, l, a); `converted`: the segment's rows
  // from p0 on as `convert` gives them (unless in place).
  auto partial = [&](int64_t t, int64_t p0, int64_t p1, const float* converted, const SegScratch& sc, float* pm) {
    if (bf16)
      segment_partial_bf16(D, kv, p0, p1, qb + t * D.H * ldqb, ldqb, scale,
                           in_place ? nullptr : reinterpret_cast<const uint16_t*>(converted), sc, pm, pm + D.H,
                           pm + 2 * D.H);
    else
      segment_partial(D, kv, p0, p1, qa + t * D.H * D.W, scale, converted, sc.scores, pm, pm + D.H, pm + 2 * D.H);
  };
  // o_h = (A_h / L_h) · W_UV_hᵀ of query t, head h, with thread scratch `ts`.
  auto finish_head = [&](int64_t t, int64_t h, const ThreadScratch& ts) {
    float* ol = ts.part;  // R floats
    const float* st = state + size_t(t) * part;
    const float* L = st + D.H;
    const float* A = st + 2 * D.H;
    for (int64_t j = 0; j < D.R; ++j) ol[j] = A[h * D.R + j] / L[h];
    float* out = o + t * D.H * D.dv + h * D.dv;
    const int64_t uv = h * (D.dn + D.dv) + D.dn;  // W_UV_h: kv_b rows [uv, uv + dv)
    dot_rows_of(kvb, uv, D.dv, ol, out);
  };
  // Every (query, head) pair is an item: at decode (one query) the heads' W_UV products (a
  // quarter of the F32 kv_b per layer) were one thread's work while the others waited.
  auto finish = [&] {
    QS_PROFILE("mla.absorb_out");
    parallel_for_dynamic(n * D.H, [&](int64_t i) { finish_head(i / D.H, i % D.H, scratch_of(omp_get_thread_num())); });
  };
  auto segments = [&](int64_t t) { return (start + t + 1 + kSeg - 1) / kSeg; };
  if (n >= nt) {
    // Enough queries for every thread: segment by segment (its rows converted once for all the
    // queries that see it, unless read in place), each query's partial merged into its state in
    // segment order, as the decode path below merges them.
    float* seg = in_place ? nullptr : arena.alloc(size_t(kSeg * D.W));
    const int64_t last = start + n;  // rows the last query sees
    for (int64_t k = 0; k * kSeg < last; ++k) {
      const int64_t p0 = k * kSeg, p1 = std::min(last, p0 + kSeg);
      if (!in_place)
        parallel_for(p1 - p0, 16, [&](int64_t b, int64_t e) { convert(p0, b, e, seg); });
      const int64_t t0 = std::max<int64_t>(0, p0 - start);  // first query that sees row p0
      parallel_for_dynamic(n - t0, [&](int64_t i) {
        const int64_t t = t0 + i, vis = start + t + 1;
        const ThreadScratch ts = scratch_of(omp_get_thread_num());
        float* pb = ts.part;
        float* st = state + size_t(t) * part;
        partial(t, p0, std::min(vis, p1), seg, ts.seg, pb);
        merge_partial(D, st, st + D.H, st + 2 * D.H, pb, pb + D.H, pb + 2 * D.H, k == 0);
      });
    }
    finish();
    return;
  }
  // Few queries (decode): their segments are the work items; partials merge afterwards.
  std::vector<int64_t> first(size_t(n) + 1, 0);
  for (int64_t t = 0; t < n; ++t) first[size_t(t) + 1] = first[size_t(t)] + segments(t);
  const int64_t items = first[size_t(n)];
  float* partials = arena.alloc(size_t(items) * part);
  {
    QS_PROFILE("mla.decode_segments");
    parallel_for_dynamic(items, [&](int64_t i) {
      const int64_t t = int64_t(std::upper_bound(first.begin(), first.end(), i) - first.begin()) - 1;
      const int64_t k = i - first[size_t(t)], p0 = k * kSeg, p1 = std::min(start + t + 1, p0 + kSeg);
      const SegScratch sc = scratch_of(omp_get_thread_num()).seg;
      if (!in_place) convert(p0, 0, p1 - p0, sc.keys);
      partial(t, p0, p1, sc.keys, sc, partials + size_t(i) * part);
    });
  }
  for (int64_t t = 0; t < n; ++t) {
    float* st = state + size_t(t) * part;
    for (int64_t k = 0; k < segments(t); ++k) {
      const float* pb = partials + size_t(first[size_t(t)] + k) * part;
      merge_partial(D, st, st + D.H, st + 2 * D.H, pb, pb + D.H, pb + 2 * D.H, k == 0);
    }
  }
  finish();
}

// Naive attention for one chunk: decompress K_nope and V of all L cached tokens.
void attend_naive(const Dims& D, const MlaWeights& w, const LatentRows& kv, int64_t start, int64_t n,
                  const float* q, float scale, float* o, Arena& arena) {
  const int64_t L = start + n, U = D.H * (D.dn + D.dv);
  float* kc = arena.alloc(size_t(L * D.W));  // gathered latents [L, R + dr]
  kv.load(0, L, kc);
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

void mla_forward(const ModelConfig& c, const MlaWeights& w, const Rope& rope, int64_t layer, KVPool& pool,
                 const float* x, float* out, StepContext& ctx) {
  const Dims D(c);
  const StepBatch& b = ctx.batch;
  const int64_t T = b.size();
  const Compute cmp = ctx.opt.compute;
  const float eps = float(c.rms_norm_eps);
  Arena& a = ctx.arena;

  // The two products of x (q_a or q, and kv_a) as one batch: at decode, one parallel region.
  float* q = a.alloc(size_t(T * D.H * D.dq));  // [T, H, dn + dr]
  float* kv = a.alloc(size_t(T * D.W));         // [T, R + dr]
  const int64_t ql = c.q_lora_rank;
  float* qa = ql > 0 ? a.alloc(size_t(T * ql)) : nullptr;
  const WeightMatrix& wq = ql > 0 ? w.q_a_proj : w.q_proj;
  const LinearCall first[2] = {{x, wq.cols, T, &wq, ql > 0 ? qa : q, wq.rows},
                               {x, w.kv_a_proj.cols, T, &w.kv_a_proj, kv, w.kv_a_proj.rows}};
  {
    QS_PROFILE("mla.q_kv_a_proj");
    linear_batch(first, cmp);
  }
  if (ql > 0) {
    for (int64_t t = 0; t < T; ++t) rmsnorm(qa + t * ql, w.q_a_norm, eps, ql, qa + t * ql);
    linear(qa, T, w.q_b_proj, q, cmp);
  }
  for (int64_t t = 0; t < T; ++t) {
    const int64_t pos = b.positions[size_t(t)];
    rmsnorm(kv + t * D.W, w.kv_a_norm, eps, D.R, kv + t * D.W);
    rope.apply(kv + t * D.W + D.R, pos);
    rope.apply_n(q + t * D.H * D.dq + D.dn, D.H, D.dq, pos);
  }
  // Cache the new latents.
  const int64_t BS = pool.block_size();
  for (size_t ci = 0; ci < b.chunks.size(); ++ci) {
    const SeqChunk& ch = b.chunks[ci];
    const int32_t* table = b.blocks(ci);
    for (int64_t i = 0; i < ch.n_tokens; ++i) {
      const int64_t pos = ch.start_pos + i;
      pool.store(layer, table[pos / BS], pos % BS, kv + (b.offsets[ci] + i) * D.W);
    }
  }
  float* o = a.alloc(size_t(T * D.H * D.dv));  // [T, H*dv]
  const float scale = float(c.softmax_scale());
  // Absorbed attention in BF16 products over BF16 rows (segment_partial_bf16) with --precision
  // bf16 over a BF16 or FP8 cache: a BF16 cache's rows read in place (unpadded: W a multiple of
  // 8, as at every DeepSeek width), an FP8 cache's dequantized to BF16 per segment. Otherwise
  // (F32 compute, or an F32 cache) F32 products over F32 rows.
  const bool bf16_attention = cmp == Compute::BF16 && pool.dtype() != KvDtype::F32;
  for (size_t ci = 0; ci < b.chunks.size(); ++ci) {
    const SeqChunk& ch = b.chunks[ci];
    const int64_t off = b.offsets[ci];
    bool absorb = prefer_absorb(D, ch.n_tokens, ch.start_pos + ch.n_tokens);
    if (ctx.opt.attn == AttnImpl::Absorb) absorb = true;
    if (ctx.opt.attn == AttnImpl::Naive) absorb = false;
    const float* qc = q + off * D.H * D.dq;
    float* oc = o + off * D.H * D.dv;
    const LatentRows rows{pool, b.blocks(ci), layer};
    QS_PROFILE("mla.attention");
    if (absorb)
      attend_absorb(D, w, rows, ch.start_pos, ch.n_tokens, qc, scale, oc, a, kv_b_read_as_stored(w.kv_b_proj.dtype, T),
                    bf16_attention);
    else attend_naive(D, w, rows, ch.start_pos, ch.n_tokens, qc, scale, oc, a);
  }
  QS_PROFILE("mla.o_proj");
  linear(o, T, w.o_proj, out, cmp);
}

}  // namespace qs

// ============================================================================================
// Training paths
// ============================================================================================
namespace qs {

namespace {

// The per-(sequence, head) products of the attention core in the reference form: full
// products through mm() (exact double arithmetic in the gradient checks). Float training uses
// the causal F32 kernels of kernels/attention.h instead.
template <typename T>
struct HeadMats {
  struct Mat {
    const T* p = nullptr;
    int64_t ld = 0, rows = 0, cols = 0;
  };
  Mat m[4];

  void set(int i, const T* p, int64_t rows, int64_t cols, int64_t ld) { m[i] = {p, ld, rows, cols}; }
  // C = op(m[a])·op(m[b]) + beta·C
  void gemm(bool ta, bool tb, int a, int b, T beta, T* C, int64_t ldc) {
    const Mat& A = m[a];
    const Mat& Bm = m[b];
    const int64_t M = ta ? A.cols : A.rows, K = ta ? A.rows : A.cols, N = tb ? Bm.rows : Bm.cols;
    mm<T>(MatmulPolicy{}, ta, tb, M, N, K, T(1), A.p, A.ld, Operand::Act, Bm.p, Bm.ld, Operand::Act, beta, C, ldc);
  }
};

// Thread-local scratch of the attention core (reused across calls, grown as needed).
template <typename T>
struct HeadScratch {
  HeadMats<T> mats;
  std::vector<T> k, dk, dp;  // K_h [S, dn+dr], dK_h [S, dn+dr], dP [S, S]
  std::vector<float> scratch;  // attention kernel scratch
  static HeadScratch& get() {
    thread_local HeadScratch s;
    return s;
  }
};

// K_h = [k_nope_h | k_pe] as one [S, dn+dr] matrix, so scores are one product.
template <typename T>
void gather_head_keys(const Dims& D, const T* up, int64_t U, const T* kpe, int64_t S, T* k) {
  for (int64_t t = 0; t < S; ++t) {
    std::copy_n(up + t * U, D.dn, k + t * D.dq);
    std::copy_n(kpe + t * D.dr, D.dr, k + t * D.dq + D.dn);
  }
}

}  // namespace

void mla_train_plan(const ModelConfig& c, int64_t B, int64_t S, ArenaPlan& plan) {
  const Dims D(c);
  const size_t N = size_t(B * S);
  // forward
  if (c.q_lora_rank > 0) {
    plan.add(N * c.q_lora_rank, 2);                                    // qa, qan
    plan.add(N);                                                       // qa_rstd
  }
  plan.add(N * D.H * D.dq);                                            // q
  plan.add(N * D.W);                                                   // kv
  plan.add(N);                                                         // kv_rstd
  plan.add(N * D.R);                                                   // c
  plan.add(N * D.dr);                                                  // kpe
  plan.add(N * D.H * (D.dn + D.dv));                                   // up
  plan.add(size_t(B * D.H) * size_t(S * S));                           // P
  plan.add(N * D.H * D.dv);                                            // o
  // backward
  plan.add(N * D.H * D.dv);                                            // dO
  plan.add(N * D.H * (D.dn + D.dv));                                   // dup
  plan.add(N * D.H * D.dq);                                            // dq
  plan.add(size_t(B * D.H * S * D.dr));                                // dkpe_part
  plan.add(N * D.W);                                                   // dkv
  plan.add(N * D.R);                                                   // dc
  if (c.q_lora_rank > 0) plan.add(N * c.q_lora_rank, 2);               // dqan, dqa
}

template <typename T>
void mla_train_forward(const ModelConfig& c, const MlaParamsT<T>& p, const Rope& rope, int64_t B, int64_t S,
                       const T* x, T* out, MlaActs<T>& a, TrainArena<T>& arena, const MatmulPolicy& pol) {
  QS_PROFILE("mla.train_fwd");
  const Dims D(c);
  const int64_t N = B * S, d = D.d;
  const T eps = T(c.rms_norm_eps);
  a.x = x;
  a.q = arena.alloc(size_t(N * D.H * D.dq), false);
  if (c.q_lora_rank > 0) {
    const int64_t ql = c.q_lora_rank;
    a.qa = arena.alloc(size_t(N * ql), false);
    a.qa_rstd = arena.alloc(size_t(N), false);
    a.qan = arena.alloc(size_t(N * ql), false);
    linear_fwd<T>(pol, x, N, d, p.q_a, ql, a.qa, false, Prec::Run, Operand::Saved);
    rmsnorm_fwd<T>(a.qa, p.q_a_norm, eps, N, ql, a.qan, a.qa_rstd);
    linear_fwd<T>(pol, a.qan, N, ql, p.q_b, D.H * D.dq, a.q, false, Prec::Run, Operand::Saved);
  } else {
    linear_fwd<T>(pol, x, N, d, p.q_proj, D.H * D.dq, a.q, false, Prec::Run, Operand::Saved);
  }
  a.kv = arena.alloc(size_t(N * D.W), false);
  a.kv_rstd = arena.alloc(size_t(N), false);
  a.c = arena.alloc(size_t(N * D.R), false);
  a.kpe = arena.alloc(size_t(N * D.dr), false);
  linear_fwd<T>(pol, x, N, d, p.kv_a, D.W, a.kv, false, Prec::Run, Operand::Saved);
  // latent norm over the first R columns of each row (row stride W)
  parallel_for(N, 16, [&](int64_t b0, int64_t b1) {
    for (int64_t t = b0; t < b1; ++t) {
      const T* kv = a.kv + t * D.W;
      if constexpr (std::is_same_v<T, float>) {
        a.kv_rstd[t] = rmsnorm_row(kv, p.kv_a_norm, eps, D.R, a.c + t * D.R);
      } else {
        T ss = 0;
        for (int64_t j = 0; j < D.R; ++j) ss += kv[j] * kv[j];
        const T r = T(1) / std::sqrt(ss / T(D.R) + eps);
        a.kv_rstd[t] = r;
        for (int64_t j = 0; j < D.R; ++j) a.c[t * D.R + j] = kv[j] * r * p.kv_a_norm[j];
      }
      std::copy_n(kv + D.R, D.dr, a.kpe + t * D.dr);
      const int64_t pos = t % S;
      rope.rotate(a.kpe + t * D.dr, 1, D.dr, pos, false);
      rope.rotate(a.q + t * D.H * D.dq + D.dn, D.H, D.dq, pos, false);
    }
  });
  const int64_t U = D.H * (D.dn + D.dv);
  a.up = arena.alloc(size_t(N * U), false);
  linear_fwd<T>(pol, a.c, N, D.R, p.kv_b, U, a.up, false, Prec::Run, Operand::Saved);
  a.P = arena.alloc(size_t(B * D.H * S * S), false);
  a.o = arena.alloc(size_t(N * D.H * D.dv), false);
  const T scale = T(c.softmax_scale());
  const bool bf16_core = product_precision(pol, Prec::High) != TrainPrecision::F32;
  QS_PROFILE("mla.train_fwd.core");
#pragma omp parallel for schedule(dynamic) if (num_threads() > 1)
  for (int64_t bh = 0; bh < B * D.H; ++bh) {
    const int64_t b = bh / D.H, h = bh % D.H;
    T* P = a.P + bh * S * S;
    const T* up = a.up + b * S * U + h * (D.dn + D.dv);
    HeadScratch<T>& hs = HeadScratch<T>::get();
    auto& m = hs.mats;
    hs.k.resize(size_t(S * D.dq));
    gather_head_keys(D, up, U, a.kpe + b * S * D.dr, S, hs.k.data());
    enum { Q, K, V, PM };
    const T* qh = a.q + b * S * D.H * D.dq + h * D.dq;
    T* oh = a.o + b * S * D.H * D.dv + h * D.dv;
    if constexpr (std::is_same_v<T, float>) {
      // Causal half only, in the "higher precision" tier: F32 products in an F32 run, BF16 otherwise.
      if (bf16_core) {
        hs.scratch.resize(size_t(attention_bf16_scratch_floats(S, D.dq, D.dv)));
        causal_attention_forward_bf16(qh, D.H * D.dq, hs.k.data(), D.dq, up + D.dn, U, S, D.dq, D.dv, scale, P, oh,
                                      D.H * D.dv, hs.scratch.data());
      } else {
        hs.scratch.resize(size_t(attention_scratch_floats(S, D.dq, D.dv)));
        causal_attention_forward(qh, D.H * D.dq, hs.k.data(), D.dq, up + D.dn, U, S, D.dq, D.dv, scale, P, oh,
                                 D.H * D.dv, hs.scratch.data());
      }
      continue;
    }
    m.set(Q, qh, S, D.dq, D.H * D.dq);
    m.set(K, hs.k.data(), S, D.dq, D.dq);
    m.gemm(false, true, Q, K, T(0), P, S);  // scores = [q_nope | q_pe]·[k_nope | k_pe]ᵀ  [S, S]
    for (int64_t i = 0; i < S; ++i) {
      T* row = P + i * S;
      T mx = -std::numeric_limits<T>::infinity();
      for (int64_t j = 0; j <= i; ++j) mx = std::max(mx, row[j] * scale);
      T z = 0;
      for (int64_t j = 0; j <= i; ++j) z += (row[j] = std::exp(row[j] * scale - mx));
      for (int64_t j = 0; j <= i; ++j) row[j] /= z;
      std::fill(row + i + 1, row + S, T(0));
    }
    m.set(V, up + D.dn, S, D.dv, U);
    m.set(PM, P, S, S, S);
    m.gemm(false, false, PM, V, T(0), oh, D.H * D.dv);  // o_h = P·V_h
  }
  linear_fwd<T>(pol, a.o, N, D.H * D.dv, p.o, d, out, false, Prec::Run, Operand::Saved);
}

template <typename T>
void mla_train_backward(const ModelConfig& c, const MlaParamsT<T>& p, const MlaParamsT<T>& g, const Rope& rope,
                        int64_t B, int64_t S, const MlaActs<T>& a, const T* dout, T* dx, TrainArena<T>& arena,
                        const MatmulPolicy& pol) {
  QS_PROFILE("mla.train_bwd");
  const Dims D(c);
  const int64_t N = B * S, d = D.d, U = D.H * (D.dn + D.dv), HV = D.H * D.dv, HQ = D.H * D.dq;
  // o_proj
  T* dO = arena.alloc(size_t(N * HV), false);
  linear_bwd<T>(pol, dout, N, d, p.o, a.o, HV, dO, false, g.o, Prec::Run, Operand::Saved);
  // attention core (F32 / exact), one (sequence, head) pair at a time
  T* dup = arena.alloc(size_t(N * U), false);
  T* dq = arena.alloc(size_t(N * HQ), false);
  T* dkpe_part = arena.alloc(size_t(B * D.H * S * D.dr), false);  // per head, summed below in order
  const T scale = T(c.softmax_scale());
  const bool bf16_core = product_precision(pol, Prec::High) != TrainPrecision::F32;
  {
  QS_PROFILE("mla.train_bwd.core");
#pragma omp parallel for schedule(dynamic) if (num_threads() > 1)
  for (int64_t bh = 0; bh < B * D.H; ++bh) {
    const int64_t b = bh / D.H, h = bh % D.H;
    const T* P = a.P + bh * S * S;
    const T* up = a.up + b * S * U + h * (D.dn + D.dv);
    T* duph = dup + b * S * U + h * (D.dn + D.dv);
    HeadScratch<T>& hs = HeadScratch<T>::get();
    auto& m = hs.mats;
    enum { DO, PM, V, X };
    if constexpr (std::is_same_v<T, float>) {
      hs.k.resize(size_t(S * D.dq));
      gather_head_keys(D, up, U, a.kpe + b * S * D.dr, S, hs.k.data());
      hs.dk.resize(size_t(S * D.dq));
      auto* backward = bf16_core ? causal_attention_backward_bf16 : causal_attention_backward;
      hs.scratch.resize(size_t(bf16_core ? attention_bf16_scratch_floats(S, D.dq, D.dv)
                                         : attention_scratch_floats(S, D.dq, D.dv)));
      backward(a.q + b * S * HQ + h * D.dq, HQ, hs.k.data(), D.dq, up + D.dn, U, P, dO + b * S * HV + h * D.dv, HV, S,
               D.dq, D.dv, scale, dq + b * S * HQ + h * D.dq, HQ, hs.dk.data(), D.dq, duph + D.dn, U,
               hs.scratch.data());
      for (int64_t t = 0; t < S; ++t) {
        std::copy_n(hs.dk.data() + t * D.dq, D.dn, duph + t * U);
        std::copy_n(hs.dk.data() + t * D.dq + D.dn, D.dr, dkpe_part + (bh * S + t) * D.dr);
      }
      continue;
    }
    m.set(DO, dO + b * S * HV + h * D.dv, S, D.dv, HV);    m.set(PM, P, S, S, S);
    m.set(V, up + D.dn, S, D.dv, U);
    m.gemm(true, false, PM, DO, T(0), duph + D.dn, U);  // dV = Pᵀ·dO
    hs.dp.resize(size_t(S * S));
    T* dP = hs.dp.data();
    m.gemm(false, true, DO, V, T(0), dP, S);  // dP = dO·Vᵀ
    // dS = P ⊙ (dP − rowsum(dP ⊙ P)), times the softmax scale
    for (int64_t i = 0; i < S; ++i) {
      T* r = dP + i * S;
      const T* pr = P + i * S;
      T dot = 0;
      for (int64_t j = 0; j <= i; ++j) dot += r[j] * pr[j];
      for (int64_t j = 0; j <= i; ++j) r[j] = pr[j] * (r[j] - dot) * scale;
      std::fill(r + i + 1, r + S, T(0));
    }
    hs.k.resize(size_t(S * D.dq));
    gather_head_keys(D, up, U, a.kpe + b * S * D.dr, S, hs.k.data());
    // [dq_nope | dq_pe] = dS·K_h ; [dk_nope | dk_pe(h)] = dSᵀ·Q_h
    m.set(PM, dP, S, S, S);
    m.set(V, hs.k.data(), S, D.dq, D.dq);
    m.set(X, a.q + b * S * HQ + h * D.dq, S, D.dq, HQ);
    m.gemm(false, false, PM, V, T(0), dq + b * S * HQ + h * D.dq, HQ);
    hs.dk.resize(size_t(S * D.dq));
    m.gemm(true, false, PM, X, T(0), hs.dk.data(), D.dq);
    for (int64_t t = 0; t < S; ++t) {
      std::copy_n(hs.dk.data() + t * D.dq, D.dn, duph + t * U);
      std::copy_n(hs.dk.data() + t * D.dq + D.dn, D.dr, dkpe_part + (bh * S + t) * D.dr);
    }
  }
  }
  // kv_b_proj: dc = dup·kv_b ; d kv_b += dupᵀ·c
  T* dkv = arena.alloc(size_t(N * D.W));  // [N, R + dr]: d(latent pre-norm) | d(k_pe pre-rope)
  T* dc = arena.alloc(size_t(N * D.R), false);
  linear_bwd<T>(pol, dup, N, U, p.kv_b, a.c, D.R, dc, false, g.kv_b, Prec::Run, Operand::Saved);
  // k_pe: sum over heads, inverse rope; latent: RMSNorm backward (within rows of stride W)
  const T eps = T(c.rms_norm_eps);
  (void)eps;
  std::vector<T> dnorm_part(size_t(num_threads()) * size_t(D.R), T(0));
  parallel_for(N, 16, [&](int64_t t0, int64_t t1) {
    T* dw = dnorm_part.data() + size_t(omp_get_thread_num()) * size_t(D.R);
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t b = t / S, s = t % S;
      T* dk = dkv + t * D.W + D.R;
      for (int64_t h = 0; h < D.H; ++h) {
        const T* src = dkpe_part + ((b * D.H + h) * S + s) * D.dr;
        for (int64_t j = 0; j < D.dr; ++j) dk[j] += src[j];
      }
      rope.rotate(dk, 1, D.dr, s, true);
      const T* kv = a.kv + t * D.W;
      const T* gc = dc + t * D.R;
      const T r = a.kv_rstd[t];
      if constexpr (std::is_same_v<T, float>) {
        rmsnorm_row_backward(kv, p.kv_a_norm, r, gc, D.R, dkv + t * D.W, dw, false);
        continue;
      }
      T dot = 0;
      for (int64_t j = 0; j < D.R; ++j) dot += kv[j] * p.kv_a_norm[j] * gc[j];
      const T k = r * r * r * dot / T(D.R);
      for (int64_t j = 0; j < D.R; ++j) {
        dkv[t * D.W + j] = r * p.kv_a_norm[j] * gc[j] - kv[j] * k;
        dw[j] += kv[j] * r * gc[j];
      }
    }
  });
  for (size_t t = 0; t < dnorm_part.size() / size_t(D.R); ++t)
    for (int64_t j = 0; j < D.R; ++j) g.kv_a_norm[j] += dnorm_part[t * size_t(D.R) + size_t(j)];
  // kv_a_proj
  linear_bwd<T>(pol, dkv, N, D.W, p.kv_a, a.x, d, dx, true, g.kv_a, Prec::Run, Operand::Saved);
  // queries: inverse rope on the pe parts, then the projection(s)
  parallel_for(N, 16, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) rope.rotate(dq + t * HQ + D.dn, D.H, D.dq, t % S, true);
  });
  if (c.q_lora_rank > 0) {
    const int64_t ql = c.q_lora_rank;
    T* dqan = arena.alloc(size_t(N * ql), false);
    T* dqa = arena.alloc(size_t(N * ql), false);
    linear_bwd<T>(pol, dq, N, HQ, p.q_b, a.qan, ql, dqan, false, g.q_b, Prec::Run, Operand::Saved);
    rmsnorm_bwd<T>(a.qa, p.q_a_norm, a.qa_rstd, dqan, N, ql, dqa, g.q_a_norm, false);
    linear_bwd<T>(pol, dqa, N, ql, p.q_a, a.x, d, dx, true, g.q_a, Prec::Run, Operand::Saved);
  } else {
    linear_bwd<T>(pol, dq, N, HQ, p.q_proj, a.x, d, dx, true, g.q_proj, Prec::Run, Operand::Saved);
  }
}

template void mla_train_forward<float>(const ModelConfig&, const MlaParamsT<float>&, const Rope&, int64_t, int64_t,
                                       const float*, float*, MlaActs<float>&, TrainArena<float>&, const MatmulPolicy&);
template void mla_train_forward<double>(const ModelConfig&, const MlaParamsT<double>&, const Rope&, int64_t, int64_t,
                                        const double*, double*, MlaActs<double>&, TrainArena<double>&,
                                        const MatmulPolicy&);
template void mla_train_backward<float>(const ModelConfig&, const MlaParamsT<float>&, const MlaParamsT<float>&,
                                        const Rope&, int64_t, int64_t, const MlaActs<float>&, const float*, float*,
                                        TrainArena<float>&, const MatmulPolicy&);
template void mla_train_backward<double>(const ModelConfig&, const MlaParamsT<double>&, const MlaParamsT<double>&,
                                         const Rope&, int64_t, int64_t, const MlaActs<double>&, const double*, double*,
                                         TrainArena<double>&, const MatmulPolicy&);

}  // namespace qs
