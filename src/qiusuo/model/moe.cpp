#include "qiusuo/model/moe.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "qiusuo/core/parallel.h"
#include "qiusuo/kernels/vec_ops.h"
#include "qiusuo/model/mlp.h"

namespace qs {

void moe_route(const ModelConfig& c, const float* logits, const float* bias, int64_t T, int32_t* indices,
               float* weights) {
  const int64_t E = c.n_routed_experts, K = c.num_experts_per_tok;
  const bool grouped = c.topk_method != TopkMethod::Greedy && c.n_group > 1;
  const int64_t G = grouped ? c.n_group : 1, per = E / G;
  std::vector<float> s(E), sel(E), gscore(G);
  std::vector<int32_t> order(E), gorder(G);
  std::vector<char> keep(G);
  for (int64_t t = 0; t < T; ++t) {
    const float* l = logits + t * E;
    if (c.scoring_func == ScoringFunc::Softmax) {
      std::copy_n(l, E, s.data());
      softmax(s.data(), E);
    } else {
      for (int64_t e = 0; e < E; ++e) s[e] = 1.0f / (1.0f + std::exp(-l[e]));
    }
    for (int64_t e = 0; e < E; ++e) sel[e] = s[e] + (bias ? bias[e] : 0.0f);
    std::fill(keep.begin(), keep.end(), 1);
    if (grouped) {
      for (int64_t g = 0; g < G; ++g) {
        const float* v = sel.data() + g * per;
        if (c.topk_method == TopkMethod::NoauxTc) {
          float a = -INFINITY, b = -INFINITY;  // top two
          for (int64_t i = 0; i < per; ++i) {
            if (v[i] > a) { b = a; a = v[i]; }
            else if (v[i] > b) b = v[i];
          }
          gscore[g] = a + b;
        } else {
          gscore[g] = *std::max_element(v, v + per);
        }
      }
      std::iota(gorder.begin(), gorder.end(), 0);
      std::stable_sort(gorder.begin(), gorder.end(),
                       [&](int32_t x, int32_t y) { return gscore[x] > gscore[y]; });
      std::fill(keep.begin(), keep.end(), 0);
      for (int64_t g = 0; g < c.topk_group; ++g) keep[gorder[size_t(g)]] = 1;
    }
    std::iota(order.begin(), order.end(), 0);
    auto key = [&](int32_t e) { return keep[e / per] ? sel[e] : -INFINITY; };
    std::partial_sort(order.begin(), order.begin() + K, order.end(), [&](int32_t x, int32_t y) {
      const float kx = key(x), ky = key(y);
      return kx > ky || (kx == ky && x < y);
    });
    float sum = 0;
    for (int64_t k = 0; k < K; ++k) {
      indices[t * K + k] = order[k];
      weights[t * K + k] = s[order[size_t(k)]];
      sum += weights[t * K + k];
    }
    for (int64_t k = 0; k < K; ++k) {
      float wk = weights[t * K + k];
      if (c.norm_topk_prob) wk /= sum;
      weights[t * K + k] = wk * float(c.routed_scaling_factor);
    }
  }
}

void moe_forward(const ModelConfig& c, const MoeWeights& w, int64_t layer, const float* x, float* out,
                 StepContext& ctx) {
  const int64_t T = ctx.batch.size(), d = c.hidden_size, E = c.n_routed_experts, K = c.num_experts_per_tok;
  Arena& a = ctx.arena;
  const Compute cmp = ctx.opt.compute;
  // Router in F32 (kept in higher precision, as DeepSeek-V3 trains it).
  float* logits = a.alloc(size_t(T * E));
  const WeightMatrix router{DType::F32, E, d, w.router, nullptr};
  linear(x, T, router, logits, Compute::F32);
  std::vector<int32_t> idx(T * K);
  std::vector<float> gw(T * K);
  moe_route(c, logits, w.score_bias, T, idx.data(), gw.data());
  if (ctx.opt.router) ctx.opt.router->push_back({layer, idx, gw});

  // Dispatch: tokens of each expert, in token order.
  std::vector<std::vector<int32_t>> tok(E);
  std::vector<std::vector<float>> wt(E);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t k = 0; k < K; ++k) {
      tok[idx[size_t(t * K + k)]].push_back(int32_t(t));
      wt[idx[size_t(t * K + k)]].push_back(gw[t * K + k]);
    }
  std::memset(out, 0, size_t(T * d) * sizeof(float));
  float* xe = a.alloc(size_t(T * d));
  float* ye = a.alloc(size_t(T * d));
  for (int64_t e = 0; e < E; ++e) {
    const auto& te = tok[e];
    const int64_t n = int64_t(te.size());
    if (n == 0) continue;
    for (int64_t i = 0; i < n; ++i) std::memcpy(xe + i * d, x + te[i] * d, size_t(d) * sizeof(float));
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
