#include "qiusuo/model/mtp.h"

#include <algorithm>

#include "qiusuo/core/profile.h"
#include "qiusuo/model/lm_head.h"

namespace qs {

void mtp_train_plan(const ModelConfig& c, int64_t depth, const TrainShape& sh, TrainPrecision p, ArenaPlan& plan) {
  const size_t N = size_t(sh.N()), d = size_t(c.hidden_size);
  plan.add(N * d);      // e
  plan.add(N, 2);       // e_rstd, h_rstd
  plan.add(N * 2 * d);  // cat
  plan.add(N * d, 2);   // m0, out
  plan.add(N * d);      // backward: dm0
  plan.add(N * 2 * d);  // dcat
  plan.add(N * d);      // de
  block_train_plan(c, c.num_hidden_layers + depth, sh, p, plan);
}

template <typename T>
void mtp_train_forward(const ModelConfig& c, const MtpParamsT<T>& p, const T* embed, const Rope& rope, int64_t depth,
                       const TrainShape& sh, const T* h_prev, const int32_t* next, MtpActs<T>& a, double aux_alpha,
                       TrainArena<T>& arena, const MatmulPolicy& pol) {
  QS_PROFILE("mtp.train_fwd");
  const int64_t N = sh.N(), d = c.hidden_size;
  const T eps = T(c.rms_norm_eps);
  a.next.assign(next, next + N);
  a.h_prev = h_prev;
  a.e = arena.alloc(size_t(N * d), false);
  a.e_rstd = arena.alloc(size_t(N), false);
  a.h_rstd = arena.alloc(size_t(N), false);
  a.cat = arena.alloc(size_t(N * 2 * d), false);
  embed_forward<T>(embed, d, next, N, a.e);
  rmsnorm_fwd<T>(a.e, p.enorm, eps, N, d, a.cat, a.e_rstd, d, 2 * d);
  rmsnorm_fwd<T>(h_prev, p.hnorm, eps, N, d, a.cat + d, a.h_rstd, d, 2 * d);
  a.m0 = arena.alloc(size_t(N * d), false);
  linear_fwd<T>(pol, a.cat, N, 2 * d, p.eh_proj, d, a.m0, false, Prec::Run, Operand::Saved);
  a.out = arena.alloc(size_t(N * d), false);
  (void)depth;
  block_train_forward<T>(c, p.block, rope, sh, a.m0, a.out, a.block, aux_alpha, arena, pol);
}

template <typename T>
void mtp_train_backward(const ModelConfig& c, const MtpParamsT<T>& p, const MtpParamsT<T>& g, T* dembed,
                        const Rope& rope, int64_t depth, const TrainShape& sh, const MtpActs<T>& a, const T* dout,
                        T* dh_prev, double aux_alpha, TrainArena<T>& arena, const MatmulPolicy& pol) {
  QS_PROFILE("mtp.train_bwd");
  const int64_t N = sh.N(), d = c.hidden_size;
  (void)depth;
  T* dm0 = arena.alloc(size_t(N * d), false);
  block_train_backward<T>(c, p.block, g.block, rope, sh, a.block, dout, dm0, aux_alpha, arena, pol);
  T* dcat = arena.alloc(size_t(N * 2 * d), false);
  linear_bwd<T>(pol, dm0, N, d, p.eh_proj, a.cat, 2 * d, dcat, false, g.eh_proj, Prec::Run, Operand::Saved);
  // Back through the two norms, each from its half of dcat.
  T* de = arena.alloc(size_t(N * d), false);
  rmsnorm_bwd<T>(a.e, p.enorm, a.e_rstd, dcat, N, d, de, g.enorm, false, d, 2 * d, d);
  embed_backward<T>(a.next.data(), N, d, de, dembed);
  rmsnorm_bwd<T>(a.h_prev, p.hnorm, a.h_rstd, dcat + d, N, d, dh_prev, g.hnorm, true, d, 2 * d, d);
}

#define QS_MTP_INST(T)                                                                                              \
  template void mtp_train_forward<T>(const ModelConfig&, const MtpParamsT<T>&, const T*, const Rope&, int64_t,       \
                                     const TrainShape&, const T*, const int32_t*, MtpActs<T>&, double,              \
                                     TrainArena<T>&, const MatmulPolicy&);                                          \
  template void mtp_train_backward<T>(const ModelConfig&, const MtpParamsT<T>&, const MtpParamsT<T>&, T*,            \
                                      const Rope&, int64_t, const TrainShape&, const MtpActs<T>&, const T*, T*,      \
                                      double, TrainArena<T>&, const MatmulPolicy&);
QS_MTP_INST(float)
QS_MTP_INST(double)

}  // namespace qs
