#include "qiusuo/model/mtp.h"

#include <algorithm>

#include "qiusuo/model/lm_head.h"

namespace qs {

size_t mtp_train_arena_elems(const ModelConfig& c, int64_t depth, int64_t B, int64_t S) {
  const int64_t N = B * S, d = c.hidden_size;
  auto r = [](size_t n) { return (n + 15) / 16 * 16; };
  size_t n = 3 * r(size_t(N * d)) + 2 * r(size_t(N)) + r(size_t(N * 2 * d));  // e, m0, out, rstd×2, cat
  n += 2 * r(size_t(N * d)) + r(size_t(N * 2 * d));                            // backward: dm0, den/dhn, dcat
  n += block_train_arena_elems(c, c.num_hidden_layers + depth, B, S);
  return n;
}

template <typename T>
void mtp_train_forward(const ModelConfig& c, const MtpParamsT<T>& p, const T* embed, const Rope& rope, int64_t depth,
                       int64_t B, int64_t S, const T* h_prev, const int32_t* next, MtpActs<T>& a, double aux_alpha,
                       TrainArena<T>& arena, const MatmulPolicy& pol) {
  const int64_t N = B * S, d = c.hidden_size;
  const T eps = T(c.rms_norm_eps);
  a.next.assign(next, next + N);
  a.h_prev = h_prev;
  a.e = arena.alloc(size_t(N * d), false);
  a.e_rstd = arena.alloc(size_t(N), false);
  a.h_rstd = arena.alloc(size_t(N), false);
  a.cat = arena.alloc(size_t(N * 2 * d), false);
  embed_forward<T>(embed, d, next, N, a.e);
  std::vector<T> tmp(size_t(N * d));
  rmsnorm_fwd<T>(a.e, p.enorm, eps, N, d, tmp.data(), a.e_rstd);
  for (int64_t t = 0; t < N; ++t) std::copy_n(tmp.data() + t * d, d, a.cat + t * 2 * d);
  rmsnorm_fwd<T>(h_prev, p.hnorm, eps, N, d, tmp.data(), a.h_rstd);
  for (int64_t t = 0; t < N; ++t) std::copy_n(tmp.data() + t * d, d, a.cat + t * 2 * d + d);
  a.m0 = arena.alloc(size_t(N * d), false);
  linear_fwd<T>(pol, a.cat, N, 2 * d, p.eh_proj, d, a.m0);
  a.out = arena.alloc(size_t(N * d), false);
  (void)depth;
  block_train_forward<T>(c, p.block, rope, B, S, a.m0, a.out, a.block, aux_alpha, arena, pol);
}

template <typename T>
void mtp_train_backward(const ModelConfig& c, const MtpParamsT<T>& p, const MtpParamsT<T>& g, const T* embed,
                        T* dembed, const Rope& rope, int64_t depth, int64_t B, int64_t S, const MtpActs<T>& a,
                        const T* dout, T* dh_prev, double aux_alpha, TrainArena<T>& arena, const MatmulPolicy& pol) {
  const int64_t N = B * S, d = c.hidden_size;
  (void)embed;
  (void)depth;
  T* dm0 = arena.alloc(size_t(N * d), false);
  block_train_backward<T>(c, p.block, g.block, rope, B, S, a.block, dout, dm0, aux_alpha, arena, pol);
  T* dcat = arena.alloc(size_t(N * 2 * d), false);
  linear_bwd<T>(pol, dm0, N, d, p.eh_proj, a.cat, 2 * d, dcat, false, g.eh_proj);
  // Split and go back through the two norms.
  T* dpart = arena.alloc(size_t(N * d), false);
  std::vector<T> de(size_t(N * d));
  for (int64_t t = 0; t < N; ++t) std::copy_n(dcat + t * 2 * d, d, dpart + t * d);
  rmsnorm_bwd<T>(a.e, p.enorm, a.e_rstd, dpart, N, d, de.data(), g.enorm, false);
  embed_backward<T>(a.next.data(), N, d, de.data(), dembed);
  for (int64_t t = 0; t < N; ++t) std::copy_n(dcat + t * 2 * d + d, d, dpart + t * d);
  rmsnorm_bwd<T>(a.h_prev, p.hnorm, a.h_rstd, dpart, N, d, dh_prev, g.hnorm, true);
}

#define QS_MTP_INST(T)                                                                                              \
  template void mtp_train_forward<T>(const ModelConfig&, const MtpParamsT<T>&, const T*, const Rope&, int64_t,       \
                                     int64_t, int64_t, const T*, const int32_t*, MtpActs<T>&, double, TrainArena<T>&, \
                                     const MatmulPolicy&);                                                          \
  template void mtp_train_backward<T>(const ModelConfig&, const MtpParamsT<T>&, const MtpParamsT<T>&, const T*, T*,  \
                                      const Rope&, int64_t, int64_t, int64_t, const MtpActs<T>&, const T*, T*, double, \
                                      TrainArena<T>&, const MatmulPolicy&);
QS_MTP_INST(float)
QS_MTP_INST(double)

}  // namespace qs
