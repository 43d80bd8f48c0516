#include "qiusuo/model/lm_head.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <type_traits>
#include <vector>

#include "qiusuo/core/error.h"
#include "qiusuo/core/parallel.h"
#include "qiusuo/core/profile.h"
#include "qiusuo/kernels/vec_ops.h"

namespace qs {

template <typename T>
void embed_forward(const T* E, int64_t d, const int32_t* tokens, int64_t N, T* h) {
  parallel_for(N, 64, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) std::copy_n(E + int64_t(tokens[t]) * d, d, h + t * d);
  });
}

template <typename T>
void embed_backward(const int32_t* tokens, int64_t N, int64_t d, const T* dh, T* dE) {
  for (int64_t t = 0; t < N; ++t) {
    T* row = dE + int64_t(tokens[t]) * d;
    const T* g = dh + t * d;
    for (int64_t j = 0; j < d; ++j) row[j] += g[j];
  }
}

namespace {

constexpr int64_t kChunk = 512;  // rows of logits held at once

// log Σ_i exp(x_i), max-shifted; −inf when every x_i is −inf.
double log_sum_exp(const double* x, int64_t n) {
  double m = -std::numeric_limits<double>::infinity();
  for (int64_t i = 0; i < n; ++i) m = std::max(m, x[i]);
  if (m == -std::numeric_limits<double>::infinity()) return m;
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += std::exp(x[i] - m);
  return m + std::log(s);
}

// Per-thread scratch of the row computation (grown once, then reused).
template <typename T>
struct RowScratch {
  std::vector<T> orig;        // [V] the logits before they are overwritten
  std::vector<int32_t> order; // [V] top-K selection
  std::vector<double> a, b;   // [k or V] teacher / student log-probabilities over the set
  static RowScratch& get() {
    thread_local RowScratch s;
    return s;
  }
};

struct RowResult {
  double objective = 0, ce = 0;
};

// One counted row: logits l [V] (in place: becomes ∂(scale·objective)/∂l when backward).
template <typename T>
RowResult head_row(T* l, int64_t V, int64_t row, const HeadRequest& r, bool backward) {
  RowScratch<T>& sc = RowScratch<T>::get();
  const int32_t y = r.targets[row];
  const double w = r.weights ? r.weights[row] : 1.0;
  const bool distill = r.objective == HeadObjective::Distill;
  const int64_t tk = r.teacher.k;
  const bool full_set = distill && tk == 0;
  const bool need_orig = r.entropy || r.top_k > 0 || full_set;
  if (need_orig) sc.orig.assign(l, l + V);
  const int64_t set_n = distill ? (full_set ? V : tk) : 0;
  if (distill) {
    sc.b.resize(size_t(set_n));
    sc.a.resize(size_t(set_n));
    const int32_t* ids = full_set ? nullptr : r.teacher.ids + row * tk;
    for (int64_t i = 0; i < set_n; ++i) sc.b[i] = double(l[full_set ? i : ids[i]]);
  }
  const T ly = l[y];
  // Log-sum-exp of the row; l becomes e_v = exp(l_v − m), Σ e_v = zs.
  double lse;
  T zs;
  if constexpr (std::is_same_v<T, float>) {
    const float m = max_value(l, V);
    zs = exp_shift_sum(l, V, m);
    lse = double(m) + std::log(double(zs));
  } else {
    const T m = *std::max_element(l, l + V);
    zs = 0;
    for (int64_t v = 0; v < V; ++v) zs += (l[v] = std::exp(l[v] - m));
    lse = m + std::log(zs);
  }
  const double lp = double(ly) - lse;
  RowResult out;
  out.ce = -w * lp;
  if (r.logprobs) r.logprobs[row] = lp;
  if (r.entropy) {
    double s;
    if constexpr (std::is_same_v<T, float>) {
      s = double(dot(l, sc.orig.data(), V));
    } else {
      s = 0;
      for (int64_t v = 0; v < V; ++v) s += l[v] * sc.orig[v];
    }
    r.entropy[row] = lse - s / double(zs);
  }
  if (r.top_k > 0) {
    sc.order.resize(size_t(V));
    std::iota(sc.order.begin(), sc.order.end(), 0);
    const T* o = sc.orig.data();
    std::partial_sort(sc.order.begin(), sc.order.begin() + r.top_k, sc.order.end(),
                      [&](int32_t x, int32_t z) { return o[x] > o[z] || (o[x] == o[z] && x < z); });
    for (int64_t i = 0; i < r.top_k; ++i) {
      r.top_ids[row * r.top_k + i] = sc.order[i];
      r.top_logprobs[row * r.top_k + i] = double(o[sc.order[i]]) - lse;
    }
  }
  if (!distill) {
    // ∂objective/∂log p(y) = g; ∂/∂l_v = g·(δ_vy − p_v).
    const double g = r.objective == HeadObjective::CrossEntropy ? -w : r.coef[row];
    out.objective = g * lp;
    if (backward) {
      const T mult = T(-r.scale * g / double(zs));
      if constexpr (std::is_same_v<T, float>) {
        qs::scale(l, mult, V);
      } else {
        for (int64_t v = 0; v < V; ++v) l[v] *= mult;
      }
      l[y] += T(r.scale * g);
    }
    return out;
  }
  // Distillation over the set: student b_i = log p_i, teacher a_i, both renormalised over it.
  const double* ta = r.teacher.logprobs + row * (full_set ? V : tk);
  for (int64_t i = 0; i < set_n; ++i) {
    sc.b[i] -= lse;
    sc.a[i] = ta[i];
  }
  const double lb = log_sum_exp(sc.b.data(), set_n), la = log_sum_exp(sc.a.data(), set_n);
  double kl = 0;
  if (backward) std::fill(l, l + V, T(0));
  const int32_t* ids = full_set ? nullptr : r.teacher.ids + row * tk;
  for (int64_t i = 0; i < set_n; ++i) {
    const double lq = sc.a[i] - la, lpt = sc.b[i] - lb;
    const double q = std::exp(lq), pt = std::exp(lpt);
    if (q > 0) kl += q * (lq - lpt);
    if (backward) l[full_set ? i : ids[i]] = T(r.scale * w * (pt - q));
  }
  out.objective = w * kl;
  return out;
}

}  // namespace

void head_train_plan(int64_t N, int64_t d, int64_t V, ArenaPlan& plan) {
  const size_t C = size_t(std::min(N, kChunk));
  plan.add(C * size_t(d), 4);  // hx, hn, dhn, dhx
  plan.add(C);                 // rstd
  plan.add(C * size_t(V));     // logits
}

template <typename T>
HeadScratch<T> head_alloc_scratch(TrainArena<T>& arena, int64_t N, int64_t d, int64_t V) {
  HeadScratch<T> s;
  s.rows = std::min(N, kChunk);
  const size_t C = size_t(s.rows);
  s.hx = arena.alloc(C * size_t(d), false);  // gathered hidden rows
  s.hn = arena.alloc(C * size_t(d), false);  // RMSNorm(hx)
  s.dhn = arena.alloc(C * size_t(d), false);
  s.dhx = arena.alloc(C * size_t(d), false);
  s.rstd = arena.alloc(C, false);
  s.logits = arena.alloc(C * size_t(V), false);
  return s;
}

template <typename T>
HeadLoss head_forward_backward(const T* h, int64_t N, int64_t d, const T* norm_w, T eps, const T* head, int64_t V,
                               const HeadRequest& req, T* dh, T* dnorm, T* dhead, const HeadScratch<T>& scratch,
                               const MatmulPolicy& pol) {
  QS_PROFILE("head");
  HeadLoss out;
  // The counted rows, in order.
  thread_local std::vector<int64_t> tl_rows;
  thread_local std::vector<RowResult> tl_res;
  std::vector<int64_t>& rows = tl_rows;
  std::vector<RowResult>& res = tl_res;
  rows.clear();
  for (int64_t t = 0; t < N; ++t)
    if (req.targets[t] >= 0) rows.push_back(t);
  const int64_t n_rows = int64_t(rows.size());
  if (n_rows == 0) return out;
  const bool backward = dh != nullptr;
  const int64_t C = scratch.rows;
  QS_CHECK(C >= std::min(N, kChunk), "head scratch of ", C, " rows is too small for ", N);
  T *hx = scratch.hx, *hn = scratch.hn, *dhn = scratch.dhn, *dhx = scratch.dhx, *rstd = scratch.rstd;
  T* logits = scratch.logits;
  res.resize(size_t(C));
  for (int64_t c0 = 0; c0 < n_rows; c0 += C) {
    const int64_t n = std::min(C, n_rows - c0);
    for (int64_t i = 0; i < n; ++i) std::copy_n(h + rows[c0 + i] * d, d, hx + i * d);
    rmsnorm_fwd<T>(hx, norm_w, eps, n, d, hn, rstd);
    linear_fwd<T>(pol, hn, n, d, head, V, logits, false, Prec::High);
    parallel_for(n, 8, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) res[i] = head_row<T>(logits + i * V, V, rows[c0 + i], req, backward);
    });
    for (int64_t i = 0; i < n; ++i) {
      const int64_t t = rows[c0 + i];
      out.objective += res[i].objective;
      out.ce += res[i].ce;
      out.weight_sum += req.weights ? req.weights[t] : 1.0;
    }
    if (!backward) continue;
    linear_bwd<T>(pol, logits, n, V, head, hn, d, dhn, false, dhead, Prec::High);
    rmsnorm_bwd<T>(hx, norm_w, rstd, dhn, n, d, dhx, dnorm, false);
    for (int64_t i = 0; i < n; ++i) {
      T* dst = dh + rows[c0 + i] * d;
      const T* src = dhx + i * d;
      for (int64_t j = 0; j < d; ++j) dst[j] += src[j];
    }
  }
  out.count = n_rows;
  return out;
}

#define QS_HEAD_INST(T)                                                                                         \
  template void embed_forward<T>(const T*, int64_t, const int32_t*, int64_t, T*);                               \
  template void embed_backward<T>(const int32_t*, int64_t, int64_t, const T*, T*);                              \
  template HeadScratch<T> head_alloc_scratch<T>(TrainArena<T>&, int64_t, int64_t, int64_t);                    \
  template HeadLoss head_forward_backward<T>(const T*, int64_t, int64_t, const T*, T, const T*, int64_t,        \
                                             const HeadRequest&, T*, T*, T*, const HeadScratch<T>&,             \
                                             const MatmulPolicy&);
QS_HEAD_INST(float)
QS_HEAD_INST(double)

}  // namespace qs
