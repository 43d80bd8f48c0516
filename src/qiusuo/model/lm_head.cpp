#include "qiusuo/model/lm_head.h"

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

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

template <typename T>
HeadLoss head_loss(const T* h, int64_t N, int64_t d, const T* norm_w, T eps, const T* head, int64_t V,
                   const int32_t* targets, T grad_scale, T* dh, T* dnorm, T* dhead, const MatmulPolicy& pol) {
  QS_PROFILE("head_loss");
  constexpr int64_t kChunk = 512;
  HeadLoss out;
  // Scratch kept between calls (the logits chunk alone is kChunk x vocab).
  // (Named references: the worker threads of parallel_for must see the caller's buffers, not
  // their own thread_local instances.)
  thread_local std::vector<T> tl_hn, tl_rstd, tl_logits, tl_dhn;
  thread_local std::vector<double> tl_row_loss;
  auto& hn = tl_hn;
  auto& rstd = tl_rstd;
  auto& logits = tl_logits;
  auto& dhn = tl_dhn;
  auto& row_loss = tl_row_loss;
  hn.resize(size_t(std::min(N, kChunk) * d));
  rstd.resize(size_t(std::min(N, kChunk)));
  logits.resize(size_t(std::min(N, kChunk) * V));
  if (dh) dhn.resize(hn.size());
  row_loss.resize(size_t(std::min(N, kChunk)));
  for (int64_t c0 = 0; c0 < N; c0 += kChunk) {
    const int64_t n = std::min(kChunk, N - c0);
    rmsnorm_fwd<T>(h + c0 * d, norm_w, eps, n, d, hn.data(), rstd.data());
    linear_fwd<T>(pol, hn.data(), n, d, head, V, logits.data(), false, Prec::High);
    // softmax + loss; logits become dlogits = grad_scale·(p − onehot) for counted rows, 0 otherwise
    parallel_for(n, 8, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        T* l = logits.data() + i * V;
        const int32_t tgt = targets[c0 + i];
        if (tgt < 0) {
          row_loss[i] = -1;
          std::fill(l, l + V, T(0));
          continue;
        }
        const T lt = l[tgt];
        if constexpr (std::is_same_v<T, float>) {
          const float m = max_value(l, V);
          const float z = exp_shift_sum(l, V, m);  // l = e^(l - m)
          row_loss[i] = double(m) + std::log(double(z)) - double(lt);
          if (dh) {
            qs::scale(l, grad_scale / z, V);
            l[tgt] -= grad_scale;
          }
        } else {
          const T m = *std::max_element(l, l + V);
          double z = 0;
          for (int64_t v = 0; v < V; ++v) z += std::exp(double(l[v] - m));
          const double lse = double(m) + std::log(z);
          row_loss[i] = lse - double(lt);
          if (dh) {
            for (int64_t v = 0; v < V; ++v) l[v] = T(std::exp(double(l[v]) - lse)) * grad_scale;
            l[tgt] -= grad_scale;
          }
        }
      }
    });
    for (int64_t i = 0; i < n; ++i)
      if (row_loss[i] >= 0) { out.loss_sum += row_loss[i]; out.count++; }
    if (!dh) continue;
    linear_bwd<T>(pol, logits.data(), n, V, head, hn.data(), d, dhn.data(), false, dhead, Prec::High);
    rmsnorm_bwd<T>(h + c0 * d, norm_w, rstd.data(), dhn.data(), n, d, dh + c0 * d, dnorm, true);
  }
  return out;
}

#define QS_HEAD_INST(T)                                                                                      \
  template void embed_forward<T>(const T*, int64_t, const int32_t*, int64_t, T*);                            \
  template void embed_backward<T>(const int32_t*, int64_t, int64_t, const T*, T*);                           \
  template HeadLoss head_loss<T>(const T*, int64_t, int64_t, const T*, T, const T*, int64_t, const int32_t*, T, \
                                 T*, T*, T*, const MatmulPolicy&);
QS_HEAD_INST(float)
QS_HEAD_INST(double)

}  // namespace qs
