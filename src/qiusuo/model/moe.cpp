#include "qiusuo/model/moe.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <type_traits>

#include "qiusuo/core/error.h"
#include "qiusuo/core/parallel.h"
#include "qiusuo/core/profile.h"
#include "qiusuo/kernels/train_vec.h"
#include "qiusuo/kernels/vec_ops.h"
#include "qiusuo/model/mlp.h"

namespace qs {

template <typename T>
void moe_select(const ModelConfig& c, const T* s, const T* bias, int32_t* idx) {
  const int64_t E = c.n_routed_experts, K = c.num_experts_per_tok;
  const bool grouped = c.topk_method != TopkMethod::Greedy && c.n_group > 1;
  const int64_t G = grouped ? c.n_group : 1, per = E / G;
  T sel[1024];
  T gscore[1024];
  char keep[1024];
  int32_t order[1024], gorder[1024];
  QS_CHECK(E <= 1024, "at most 1024 routed experts are supported, config has ", E);
  for (int64_t e = 0; e < E; ++e) sel[e] = s[e] + (bias ? bias[e] : T(0));
  std::fill(keep, keep + G, 1);
  if (grouped) {
    for (int64_t g = 0; g < G; ++g) {
      const T* v = sel + g * per;
      if (c.topk_method == TopkMethod::NoauxTc) {
        T a = -std::numeric_limits<T>::infinity(), b = a;  // top two
        for (int64_t i = 0; i < per; ++i) {
          if (v[i] > a) { b = a; a = v[i]; }
          else if (v[i] > b) b = v[i];
        }
        gscore[g] = a + b;
      } else {
        gscore[g] = *std::max_element(v, v + per);
      }
    }
    std::iota(gorder, gorder + G, 0);
    std::stable_sort(gorder, gorder + G, [&](int32_t x, int32_t y) { return gscore[x] > gscore[y]; });
    std::fill(keep, keep + G, 0);
    for (int64_t g = 0; g < c.topk_group; ++g) keep[gorder[g]] = 1;
  }
  std::iota(order, order + E, 0);
  auto key = [&](int32_t e) { return keep[e / per] ? sel[e] : -std::numeric_limits<T>::infinity(); };
  std::partial_sort(order, order + K, order + E, [&](int32_t x, int32_t y) {
    const T kx = key(x), ky = key(y);
    return kx > ky || (kx == ky && x < y);
  });
  std::copy_n(order, K, idx);
}

template <typename T>
void moe_scores(const ModelConfig& c, const T* logits, int64_t E, T* s) {
  if (c.scoring_func == ScoringFunc::Softmax) {
    T m = *std::max_element(logits, logits + E), z = 0;
    for (int64_t e = 0; e < E; ++e) z += (s[e] = std::exp(logits[e] - m));
    for (int64_t e = 0; e < E; ++e) s[e] /= z;
  } else {
    for (int64_t e = 0; e < E; ++e) s[e] = T(1) / (T(1) + std::exp(-logits[e]));
  }
}

// Routing weights of the selected experts: s at idx, renormalised when norm_topk_prob, scaled.
template <typename T>
void moe_weights(const ModelConfig& c, const T* s, const int32_t* idx, T* w) {
  const int64_t K = c.num_experts_per_tok;
  T sum = 0;
  for (int64_t k = 0; k < K; ++k) sum += (w[k] = s[idx[k]]);
  for (int64_t k = 0; k < K; ++k) w[k] = (c.norm_topk_prob ? w[k] / sum : w[k]) * T(c.routed_scaling_factor);
}

void moe_route(const ModelConfig& c, const float* logits, const float* bias, int64_t T, int32_t* indices,
               float* weights) {
  const int64_t E = c.n_routed_experts, K = c.num_experts_per_tok;
  std::vector<float> s(E);
  for (int64_t t = 0; t < T; ++t) {
    moe_scores<float>(c, logits + t * E, E, s.data());
    moe_select<float>(c, s.data(), bias, indices + t * K);
    moe_weights<float>(c, s.data(), indices + t * K, weights + t * K);
  }
}

namespace {

// Shared experts: out[t] += shared(x[t]).
void add_shared_experts(const MoeWeights& w, const float* x, int64_t T, int64_t d, float* out, Compute cmp,
                        Arena& a) {
  if (!w.has_shared) return;
  float* ys = a.alloc(size_t(T * d));
  mlp_forward(w.shared, x, T, ys, cmp, a);
  for (int64_t t = 0; t < T; ++t) axpy(1.0f, ys + t * d, out + t * d, d);
}

// This rank's experts over the rows an exchange delivered: rows [R, d] → ys [R, d].
void run_local_experts(const MoeWeights& w, const ExpertExchange& ex, const float* rows, int64_t d, float* ys,
                       Compute cmp, Arena& a) {
  const int64_t first = w.ep->placement.local_begin();
  for (int64_t j = 0; j < ex.local_experts(); ++j) {
    const int64_t o = ex.offset(j), n = ex.real_rows(j);
    Arena::Scope expert_scratch(a);
    if (n > 0) mlp_forward(w.experts[size_t(first + j)], rows + o * d, n, ys + o * d, cmp, a);
  }
}

// Expert-parallel inference, the leader's side (model/moe.h): routed experts by exchange, then
// out[t] = Σ over t's experts in ascending id (the order one process adds them) + shared.
void moe_forward_ep(const ModelConfig& c, const MoeWeights& w, int64_t layer, const float* x,
                    const std::vector<int32_t>& idx, const std::vector<float>& gw, float* out, StepContext& ctx) {
  QS_PROFILE("moe.ep");
  const int64_t T = ctx.batch.size(), d = c.hidden_size, K = c.num_experts_per_tok;
  const ExpertParallel& ep = *w.ep;
  Arena& a = ctx.arena;
  announce_expert_call(ep, {1, int32_t(ctx.opt.compute), layer});
  std::vector<int32_t> tok(size_t(T * K));
  for (int64_t p = 0; p < T * K; ++p) tok[size_t(p)] = int32_t(p / K);
  ExpertExchange ex;
  ex.plan(ep, idx);
  const int64_t R = ex.recv_rows();
  float* rows = a.alloc(size_t(R * d));
  float* ys = a.alloc(size_t(R * d));
  ex.dispatch(x, tok, d, rows);
  run_local_experts(w, ex, rows, d, ys, ctx.opt.compute, a);
  float* yp = a.alloc(size_t(T * K * d));  // [T, K, d] each pair's expert output
  ex.combine(ys, d, yp);
  std::memset(out, 0, size_t(T * d) * sizeof(float));
  for (int64_t t = 0; t < T; ++t) {
    int32_t order[1024];
    for (int64_t k = 0; k < K; ++k) order[k] = int32_t(k);
    std::sort(order, order + K, [&](int32_t i, int32_t j) { return idx[size_t(t * K + i)] < idx[size_t(t * K + j)]; });
    for (int64_t i = 0; i < K; ++i) {
      const int64_t p = t * K + order[i];
      axpy(gw[size_t(p)], yp + p * d, out + t * d, d);
    }
  }
  add_shared_experts(w, x, T, d, out, ctx.opt.compute, a);
}

}  // namespace

void moe_serve_call(const MoeWeights& w, int64_t moe_intermediate_size, const ExpertCall& call, Arena& a) {
  QS_PROFILE("moe.ep_serve");
  QS_CHECK(w.ep, "expert-parallel serving needs the MoE weights of an expert-parallel model");
  const ExpertParallel& ep = *w.ep;
  const int64_t first = ep.placement.local_begin();
  QS_ASSERT(ep.placement.local_count() > 0 && w.experts[size_t(first)].gate.rows == moe_intermediate_size);
  const int64_t d = w.experts[size_t(first)].gate.cols;
  ExpertExchange ex;
  ex.plan(ep, {});
  const int64_t R = ex.recv_rows();
  float* rows = a.alloc(size_t(R * d));
  float* ys = a.alloc(size_t(R * d));
  ex.dispatch<float>(nullptr, {}, d, rows);
  run_local_experts(w, ex, rows, d, ys, Compute(call.compute), a);
  ex.combine<float>(ys, d, nullptr);
}

void serve_experts(const ModelConfig& c, const ModelWeights& w, const ExpertParallel& ep) {
  QS_CHECK(ep.comm->rank() != 0, "rank 0 leads expert-parallel inference; it does not serve");
  const int64_t L = c.num_hidden_layers;
  Arena arena;
  for (;;) {
    const ExpertCall call = next_expert_call(ep);
    if (call.op == 0) return;
    const int64_t l = call.layer;
    const bool in_range = l >= 0 && (l < L || l - L < int64_t(w.mtp.size()));
    const LayerWeights* lw = !in_range ? nullptr : l < L ? &w.layers[size_t(l)] : &w.mtp[size_t(l - L)].block;
    QS_CHECK(lw && lw->moe && call.op == 1, "expert-parallel serving: the leader called layer ", l,
             ", which is not an MoE layer of this model (op ", call.op, ")");
    arena.reset();
    moe_serve_call(lw->ffn, c.moe_intermediate_size, call, arena);
  }
}

// Up to this many tokens a step's experts run as one mlp_forward_batch (decode-sized products).
constexpr int64_t kBatchedExpertsMaxT = 4;

void moe_forward(const ModelConfig& c, const MoeWeights& w, int64_t layer, const float* x, float* out,
                 StepContext& ctx) {
  const int64_t T = ctx.batch.size(), d = c.hidden_size, E = c.n_routed_experts, K = c.num_experts_per_tok;
  Arena& a = ctx.arena;
  const Compute cmp = ctx.opt.compute;
  // Router in F32 (kept in higher precision, as DeepSeek-V3 trains it).
  float* logits = a.alloc(size_t(T * E));
  const WeightMatrix router{DType::F32, E, d, w.router, nullptr};
  {
    QS_PROFILE("moe.router");
    linear(x, T, router, logits, Compute::F32);
  }
  std::vector<int32_t> idx(T * K);
  std::vector<float> gw(T * K);
  moe_route(c, logits, w.score_bias, T, idx.data(), gw.data());
  if (ctx.opt.router) ctx.opt.router->push_back({layer, idx, gw});
  if (w.ep && w.ep->comm->size() > 1) {
    moe_forward_ep(c, w, layer, x, idx, gw, out, ctx);
    return;
  }

  // Dispatch: tokens of each expert, in token order.
  std::vector<std::vector<int32_t>> tok(E);
  std::vector<std::vector<float>> wt(E);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t k = 0; k < K; ++k) {
      tok[idx[size_t(t * K + k)]].push_back(int32_t(t));
      wt[idx[size_t(t * K + k)]].push_back(gw[t * K + k]);
    }
  std::memset(out, 0, size_t(T * d) * sizeof(float));
  if (T <= kBatchedExpertsMaxT) {
    // Decode: all active experts (and the shared experts) as one mlp_forward_batch, so the
    // threads stream from one expert's weights into the next without a join per matrix; then
    // the combination in the order of the loop below: bitwise the same output.
    std::vector<MlpCall> calls;
    std::vector<int64_t> expert;  // of each call; -1: the shared experts, over all T rows
    for (int64_t e = 0; e < E; ++e) {
      const int64_t n = int64_t(tok[e].size());
      if (n == 0) continue;
      // An expert that every token chose (always, at batch 1) reads x itself, so the batch's
      // products of that x share one conversion of it (linear_batch); others read a gathered copy.
      bool every = n == T;
      for (int64_t i = 0; every && i < n; ++i) every = tok[e][size_t(i)] == i;
      const float* xg = x;
      if (!every) {
        float* g = a.alloc(size_t(n * d));
        for (int64_t i = 0; i < n; ++i) std::memcpy(g + i * d, x + tok[e][size_t(i)] * d, size_t(d) * sizeof(float));
        xg = g;
      }
      calls.push_back({&w.experts[e], xg, n, a.alloc(size_t(n * d))});
      expert.push_back(e);
    }
    if (w.has_shared) {
      calls.push_back({&w.shared, x, T, a.alloc(size_t(T * d))});
      expert.push_back(-1);
    }
    mlp_forward_batch(calls, cmp, a);
    for (size_t i = 0; i < calls.size(); ++i) {
      const int64_t e = expert[i];
      for (int64_t r = 0; r < calls[i].T; ++r)
        axpy(e >= 0 ? wt[e][r] : 1.0f, calls[i].out + r * d, out + (e >= 0 ? tok[e][r] : r) * d, d);
    }
    return;
  }
  float* xe = a.alloc(size_t(T * d));
  float* ye = a.alloc(size_t(T * d));
  for (int64_t e = 0; e < E; ++e) {
    const auto& te = tok[e];
    const int64_t n = int64_t(te.size());
    if (n == 0) continue;
    for (int64_t i = 0; i < n; ++i) std::memcpy(xe + i * d, x + te[i] * d, size_t(d) * sizeof(float));
    Arena::Scope expert_scratch(a);
    mlp_forward(w.experts[e], xe, n, ye, cmp, a);
    // Combine: out[t] += g · expert(x[t])
    for (int64_t i = 0; i < n; ++i) axpy(wt[e][i], ye + i * d, out + te[i] * d, d);
  }
  if (w.has_shared) {
    mlp_forward(w.shared, x, T, ye, cmp, a);
    for (int64_t t = 0; t < T; ++t) axpy(1.0f, ye + t * d, out + t * d, d);
  }
}

}  // namespace qs

namespace qs {

namespace {
// BF16 dispatch padding: multiples of 32 rows below 512 rows, of 64 from there on.
constexpr int64_t kPadSmall = 32, kPadLarge = 64, kPadLargeFrom = 512;
}  // namespace

int64_t moe_padded_rows(int64_t n, TrainPrecision p) {
  if (p != TrainPrecision::BF16) return n;
  const int64_t q = n >= kPadLargeFrom ? kPadLarge : kPadSmall;
  return (n + q - 1) / q * q;
}

int64_t moe_dispatch_capacity(const ModelConfig& c, int64_t N, TrainPrecision p) {
  const int64_t pairs = N * c.num_experts_per_tok;
  return p == TrainPrecision::BF16 ? pairs + c.n_routed_experts * (kPadLarge - 1) : pairs;
}

void moe_train_plan(const ModelConfig& c, const TrainShape& sh, TrainPrecision p, ArenaPlan& plan) {
  const int64_t N = sh.N(), E = c.n_routed_experts, K = c.num_experts_per_tok, d = c.hidden_size;
  const int64_t rows = moe_dispatch_capacity(c, N, p);
  // forward
  plan.add(size_t(N * E), 2);      // logits, scores
  plan.add(size_t(N * K));         // w
  plan.add(size_t(rows * d), 2);   // xe, ye
  mlp_train_plan(rows, c.moe_intermediate_size, plan);  // routed experts (acts + scratch)
  if (c.n_shared_experts > 0) mlp_train_plan(N, c.n_shared_experts * c.moe_intermediate_size, plan);
  // backward
  plan.add(size_t(rows * d), 2);   // dye, dxe
  plan.add(size_t(N * K));         // dw
  plan.add(size_t(N * E));         // dlogits
}

namespace {

// Expert parallelism, training (model/moe.h): the routed part of the forward by exchange. The
// pair buffers take the place of the dispatch rows: row_of[t·K+k] = t·K+k, so the combine and
// the backward's weighting read them like one process's rows; a.offset is all zero (no local
// dispatch rows: the backward's own expert loop has nothing to do) and the experts' rows and
// activations live in a.ep_fwd.
template <typename T>
void moe_routed_forward_ep(const ModelConfig& c, const MoeParamsT<T>& p, const TrainShape& sh, const T* x,
                           MoeActs<T>& a, const MatmulPolicy& pol) {
  QS_PROFILE("moe.ep_fwd");
  const int64_t N = sh.N(), E = c.n_routed_experts, K = c.num_experts_per_tok;
  const int64_t d = c.hidden_size, I = c.moe_intermediate_size;
  a.load.assign(size_t(E), 0);  // real tokens only
  for (int64_t t = 0; t < N; ++t)
    if (sh.real(t))
      for (int64_t k = 0; k < K; ++k) a.load[size_t(a.idx[size_t(t * K + k)])]++;
  a.offset.assign(size_t(E + 1), 0);
  a.token_of.clear();
  a.row_of.resize(size_t(N * K));
  a.pair_token.resize(size_t(N * K));
  for (int64_t q = 0; q < N * K; ++q) {
    a.row_of[size_t(q)] = int32_t(q);
    a.pair_token[size_t(q)] = int32_t(q / K);
  }
  a.ex.plan(*p.ep, a.idx, [&](int64_t n) { return moe_padded_rows(n, pol.precision); });
  const int64_t R = a.ex.recv_rows();
  a.ep_fwd.resize(size_t(R * (2 * d + 3 * I) + N * K * d));
  T* xe = a.ep_fwd.data();
  T* ye = xe + R * d;
  T* gu = ye + R * d;
  T* h = gu + R * 2 * I;
  T* yp = h + R * I;
  a.ex.dispatch(x, a.pair_token, d, xe);
  const int64_t first = p.ep->placement.local_begin();
  for (int64_t j = 0; j < a.ex.local_experts(); ++j) {
    const int64_t o = a.ex.offset(j), n = a.ex.offset(j + 1) - o;
    if (n == 0) continue;
    MlpActs<T> ea{nullptr, gu + o * 2 * I, h + o * I};
    mlp_train_forward<T>(p.experts[size_t(first + j)], n, d, I, xe + o * d, ye + o * d, ea, pol);
  }
  a.ex.combine(ye, d, yp);
  a.xe = xe;
  a.ye = yp;
  a.routed = MlpActs<T>{xe, gu, h};
}

// The backward's routed part by exchange: dye [N·K, d] (pair order) to the owners, the experts'
// backward there (their gradients accumulate on the owner only), dxe [N·K, d] back.
template <typename T>
void moe_routed_backward_ep(const ModelConfig& c, const MoeParamsT<T>& p, const MoeParamsT<T>& g, const MoeActs<T>& a,
                            const T* dye_pairs, T* dxe_pairs, const MatmulPolicy& pol) {
  QS_PROFILE("moe.ep_bwd");
  const int64_t d = c.hidden_size, I = c.moe_intermediate_size, R = a.ex.recv_rows();
  a.ep_bwd.resize(size_t(R * (2 * d + 3 * I)));
  T* dye = a.ep_bwd.data();
  T* dxe = dye + R * d;
  T* dh = dxe + R * d;
  T* dgu = dh + R * I;
  a.ex.dispatch(dye_pairs, a.row_of, d, dye);
  const T* xe = a.ep_fwd.data();
  const T* gu = xe + 2 * R * d;
  const T* h = gu + R * 2 * I;
  const int64_t first = p.ep->placement.local_begin();
  for (int64_t j = 0; j < a.ex.local_experts(); ++j) {
    const int64_t o = a.ex.offset(j), n = a.ex.offset(j + 1) - o;
    if (n == 0) continue;
    std::fill(dxe + o * d, dxe + (o + n) * d, T(0));
    MlpActs<T> ea{xe + o * d, const_cast<T*>(gu + o * 2 * I), const_cast<T*>(h + o * I)};
    MlpScratch<T> es{dh + o * I, dgu + o * 2 * I};
    const size_t e = size_t(first + j);
    mlp_train_backward<T>(p.experts[e], g.experts[e], n, d, I, ea, dye + o * d, dxe + o * d, es, pol);
  }
  a.ex.combine(dxe, d, dxe_pairs);
}

}  // namespace

template <typename T>
void moe_train_forward(const ModelConfig& c, const MoeParamsT<T>& p, const TrainShape& sh, const T* x, T* out,
                       MoeActs<T>& a, double aux_alpha, TrainArena<T>& arena, const MatmulPolicy& pol) {
  QS_PROFILE("moe.train_fwd");
  const int64_t N = sh.N(), B = sh.B, S = sh.S, E = c.n_routed_experts, K = c.num_experts_per_tok;
  const int64_t d = c.hidden_size, I = c.moe_intermediate_size;
  a.x = x;
  a.logits = arena.alloc(size_t(N * E), false);
  a.scores = arena.alloc(size_t(N * E), false);
  a.w = arena.alloc(size_t(N * K), false);
  a.idx.assign(size_t(N * K), 0);
  linear_fwd<T>(pol, x, N, d, p.router, E, a.logits, false, Prec::Full);
  parallel_for(N, 64, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      moe_scores<T>(c, a.logits + t * E, E, a.scores + t * E);
      moe_select<T>(c, a.scores + t * E, p.bias, a.idx.data() + t * K);
      moe_weights<T>(c, a.scores + t * E, a.idx.data() + t * K, a.w + t * K);
    }
  });
  if (p.ep && p.ep->comm->size() > 1) {
    moe_routed_forward_ep<T>(c, p, sh, x, a, pol);
  } else {
    // Dispatch: rows sorted by expert, tokens in order within an expert.
    std::vector<int64_t>& count = a.load;  // all routed rows first, real tokens only below
    count.assign(size_t(E), 0);
    for (int32_t e : a.idx) count[e]++;
    a.offset.assign(size_t(E + 1), 0);
    for (int64_t e = 0; e < E; ++e) a.offset[e + 1] = a.offset[e] + moe_padded_rows(count[e], pol.precision);
    const int64_t rows = a.offset[E];
    QS_ASSERT(rows <= moe_dispatch_capacity(c, N, pol.precision));
    a.row_of.assign(size_t(N * K), 0);
    a.token_of.assign(size_t(rows), -1);  // -1: padding row
    std::vector<int64_t> fill(a.offset.begin(), a.offset.end() - 1);
    for (int64_t t = 0; t < N; ++t)
      for (int64_t k = 0; k < K; ++k) {
        const int64_t row = fill[a.idx[t * K + k]]++;
        a.row_of[t * K + k] = int32_t(row);
        a.token_of[row] = int32_t(t);
      }
    if (sh.len) {  // the load counts real tokens only
      count.assign(size_t(E), 0);
      for (int64_t t = 0; t < N; ++t)
        if (sh.real(t))
          for (int64_t k = 0; k < K; ++k) count[a.idx[t * K + k]]++;
    }
    const int64_t cap = moe_dispatch_capacity(c, N, pol.precision);
    a.xe = arena.alloc(size_t(cap * d), false);
    a.ye = arena.alloc(size_t(cap * d), false);
    parallel_for(rows, 64, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        if (a.token_of[r] >= 0) std::copy_n(x + int64_t(a.token_of[r]) * d, d, a.xe + r * d);
        else std::fill(a.xe + r * d, a.xe + (r + 1) * d, T(0));
      }
    });
    a.routed = mlp_alloc_acts<T>(arena, cap, I);
    for (int64_t e = 0; e < E; ++e) {
      const int64_t o = a.offset[e], n = a.offset[e + 1] - o;
      MlpActs<T> ea{nullptr, a.routed.gu + o * 2 * I, a.routed.h + o * I};
      mlp_train_forward<T>(p.experts[e], n, d, I, a.xe + o * d, a.ye + o * d, ea, pol);
    }
    a.routed.x = a.xe;
  }
  // Combine (+ shared experts).
  if (p.has_shared) {
    a.shared = mlp_alloc_acts<T>(arena, N, c.n_shared_experts * I);
    mlp_train_forward<T>(p.shared, N, d, c.n_shared_experts * I, x, out, a.shared, pol);
  } else {
    std::fill(out, out + N * d, T(0));
  }
  parallel_for(N, 16, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t)
      for (int64_t k = 0; k < K; ++k) {
        const T wk = a.w[t * K + k];
        const T* y = a.ye + int64_t(a.row_of[t * K + k]) * d;
        T* o = out + t * d;
        if constexpr (std::is_same_v<T, float>) {
          axpy(wk, y, o, d);
        } else {
          for (int64_t j = 0; j < d; ++j) o[j] += wk * y[j];
        }
      }
  });
  // Sequence-wise balance loss over the real tokens of each sequence.
  a.aux_loss = 0;
  a.f.assign(size_t(B * E), T(0));
  if (aux_alpha > 0) {
    int64_t seqs = 0;
    for (int64_t b = 0; b < B; ++b) seqs += sh.length(b) > 0;
    std::vector<T> P(static_cast<size_t>(E));
    for (int64_t b = 0; b < B; ++b) {
      const int64_t len = sh.length(b);
      if (len == 0) continue;
      T* f = a.f.data() + b * E;
      std::fill(P.begin(), P.end(), T(0));
      for (int64_t t = b * S; t < b * S + len; ++t) {
        for (int64_t k = 0; k < K; ++k) f[a.idx[t * K + k]] += T(1);
        const T* s = a.scores + t * E;
        T z = 0;
        for (int64_t e = 0; e < E; ++e) z += s[e];
        for (int64_t e = 0; e < E; ++e) P[e] += s[e] / z / T(len);
      }
      T l = 0;
      for (int64_t e = 0; e < E; ++e) {
        f[e] *= T(E) / T(K * len);
        l += f[e] * P[e];
      }
      a.aux_loss += T(aux_alpha) * l / T(seqs);
    }
  }
}

template <typename T>
void moe_train_backward(const ModelConfig& c, const MoeParamsT<T>& p, const MoeParamsT<T>& g, const TrainShape& sh,
                        const MoeActs<T>& a, const T* dout, T* dx, double aux_alpha, TrainArena<T>& arena,
                        const MatmulPolicy& pol) {
  QS_PROFILE("moe.train_bwd");
  const int64_t N = sh.N(), B = sh.B, S = sh.S, E = c.n_routed_experts, K = c.num_experts_per_tok;
  const int64_t d = c.hidden_size, I = c.moe_intermediate_size;
  const int64_t rows = a.offset[E], cap = moe_dispatch_capacity(c, N, pol.precision);
  // Weighted combine: dye = w·dout, dw = dout·ye.
  T* dye = arena.alloc(size_t(cap * d), false);
  parallel_for(rows, 64, [&](int64_t r0, int64_t r1) {  // padding rows carry no gradient
    for (int64_t r = r0; r < r1; ++r)
      if (a.token_of[r] < 0) std::fill(dye + r * d, dye + (r + 1) * d, T(0));
  });
  T* dw = arena.alloc(size_t(N * K), false);
  parallel_for(N, 16, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t)
      for (int64_t k = 0; k < K; ++k) {
        const int64_t row = a.row_of[t * K + k];
        const T* y = a.ye + row * d;
        const T* go = dout + t * d;
        T* dy = dye + row * d;
        if constexpr (std::is_same_v<T, float>) {
          scale_copy(a.w[t * K + k], go, dy, d);
          dw[t * K + k] = dot(go, y, d);
          continue;
        }
        T s = 0;
        for (int64_t j = 0; j < d; ++j) {
          dy[j] = a.w[t * K + k] * go[j];
          s += go[j] * y[j];
        }
        dw[t * K + k] = s;
      }
  });
  T* dxe = arena.alloc(size_t(cap * d), false);
  const MlpScratch<T> rs = mlp_alloc_scratch<T>(arena, cap, I);
  for (int64_t e = 0; e < E; ++e) {
    const int64_t o = a.offset[e], n = a.offset[e + 1] - o;
    if (n == 0) continue;
    MlpActs<T> ea{a.xe + o * d, a.routed.gu + o * 2 * I, a.routed.h + o * I};
    MlpScratch<T> es{rs.dh + o * I, rs.dgu + o * 2 * I};
    mlp_train_backward<T>(p.experts[e], g.experts[e], n, d, I, ea, dye + o * d, dxe + o * d, es, pol, false);
  }
  if (p.ep && p.ep->comm->size() > 1) moe_routed_backward_ep<T>(c, p, g, a, dye, dxe, pol);
  parallel_for(N, 16, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t)
      for (int64_t k = 0; k < K; ++k) {
        const T* src = dxe + int64_t(a.row_of[t * K + k]) * d;
        if constexpr (std::is_same_v<T, float>) {
          axpy(1.0f, src, dx + t * d, d);
        } else {
          for (int64_t j = 0; j < d; ++j) dx[t * d + j] += src[j];
        }
      }
  });
  if (p.has_shared) {
    const int64_t Is = c.n_shared_experts * I;
    mlp_train_backward<T>(p.shared, g.shared, N, d, Is, a.shared, dout, dx, mlp_alloc_scratch<T>(arena, N, Is), pol);
  }
  // Router: through the selected weights (and the balance loss) to the scores, then the logits.
  T* dlogits = arena.alloc(size_t(N * E), false);
  const T rsf = T(c.routed_scaling_factor);
  int64_t seqs = 0;
  for (int64_t b = 0; b < B; ++b) seqs += sh.length(b) > 0;
  parallel_for(N, 16, [&](int64_t t0, int64_t t1) {
    T ds[1024];  // E <= 1024 (moe_select checks)
    for (int64_t t = t0; t < t1; ++t) {
      const T* s = a.scores + t * E;
      const int32_t* idx = a.idx.data() + t * K;
      std::fill(ds, ds + E, T(0));
      if (c.norm_topk_prob) {
        // w_k = rsf · s_k / Σ_sel s  →  ∂/∂s_m = rsf/Σ (dw_m − Σ_k dw_k s_k/Σ)
        T sum = 0, dot = 0;
        for (int64_t k = 0; k < K; ++k) sum += s[idx[k]];
        for (int64_t k = 0; k < K; ++k) dot += dw[t * K + k] * s[idx[k]] / sum;
        for (int64_t k = 0; k < K; ++k) ds[idx[k]] += rsf / sum * (dw[t * K + k] - dot);
      } else {
        for (int64_t k = 0; k < K; ++k) ds[idx[k]] += rsf * dw[t * K + k];
      }
      if (aux_alpha > 0 && sh.real(t)) {
        // L = α/seqs Σ_i f_i · (1/len) Σ_t s_i/Σ_j s_j
        const T* f = a.f.data() + (t / S) * E;
        T z = 0, fs = 0;
        for (int64_t e = 0; e < E; ++e) z += s[e];
        for (int64_t e = 0; e < E; ++e) fs += f[e] * s[e];
        const T k = T(aux_alpha) / T(seqs * sh.length(t / S));
        for (int64_t e = 0; e < E; ++e) ds[e] += k * (f[e] / z - fs / (z * z));
      }
      T* dl = dlogits + t * E;
      if (c.scoring_func == ScoringFunc::Sigmoid) {
        for (int64_t e = 0; e < E; ++e) dl[e] = ds[e] * s[e] * (T(1) - s[e]);
      } else {
        T dot = 0;
        for (int64_t e = 0; e < E; ++e) dot += ds[e] * s[e];
        for (int64_t e = 0; e < E; ++e) dl[e] = s[e] * (ds[e] - dot);
      }
    }
  });
  linear_bwd<T>(pol, dlogits, N, E, p.router, a.x, d, dx, true, g.router, Prec::Full);
}

#define QS_MOE_INST(T)                                                                                            \
  template void moe_select<T>(const ModelConfig&, const T*, const T*, int32_t*);                                  \
  template void moe_scores<T>(const ModelConfig&, const T*, int64_t, T*);                                         \
  template void moe_weights<T>(const ModelConfig&, const T*, const int32_t*, T*);                                 \
  template void moe_train_forward<T>(const ModelConfig&, const MoeParamsT<T>&, const TrainShape&, const T*, T*,   \
                                     MoeActs<T>&, double, TrainArena<T>&, const MatmulPolicy&);                   \
  template void moe_train_backward<T>(const ModelConfig&, const MoeParamsT<T>&, const MoeParamsT<T>&,             \
                                      const TrainShape&, const MoeActs<T>&, const T*, T*, double, TrainArena<T>&, \
                                      const MatmulPolicy&);
QS_MOE_INST(float)
QS_MOE_INST(double)

}  // namespace qs
