#include "qiusuo/model/block.h"

#include <algorithm>

#include "qiusuo/core/profile.h"

namespace qs {

void block_train_plan(const ModelConfig& c, int64_t layer, const TrainShape& sh, TrainPrecision p, ArenaPlan& plan) {
  const size_t N = size_t(sh.N()), d = size_t(c.hidden_size);
  plan.add(N * d, 5);  // forward: xn1, attention out, x_mid, xn2, ffn out
  plan.add(N, 2);      // rstd1, rstd2
  plan.add(N * d, 3);  // backward: dxn2, dmid, dxn1
  mla_train_plan(c, sh.B, sh.S, plan);
  if (c.is_moe_layer(layer)) moe_train_plan(c, sh, p, plan);
  else mlp_train_plan(sh.N(), c.intermediate_size, plan);
}

template <typename T>
void block_train_forward(const ModelConfig& c, const BlockParamsT<T>& p, const Rope& rope, const TrainShape& sh,
                         const T* x_in, T* x_out, BlockActs<T>& a, double aux_alpha, TrainArena<T>& arena,
                         const MatmulPolicy& pol) {
  QS_PROFILE("block.train_fwd");
  const int64_t N = sh.N(), d = c.hidden_size;
  const T eps = T(c.rms_norm_eps);
  a.x_in = x_in;
  a.xn1 = arena.alloc(size_t(N * d), false);
  a.rstd1 = arena.alloc(size_t(N), false);
  rmsnorm_fwd<T>(x_in, p.input_norm, eps, N, d, a.xn1, a.rstd1);
  T* y = arena.alloc(size_t(N * d), false);
  mla_train_forward<T>(c, p.attn, rope, sh.B, sh.S, a.xn1, y, a.attn, arena, pol);
  a.x_mid = arena.alloc(size_t(N * d), false);
  residual_add<T>(x_in, y, a.x_mid, N * d);
  a.xn2 = arena.alloc(size_t(N * d), false);
  a.rstd2 = arena.alloc(size_t(N), false);
  rmsnorm_fwd<T>(a.x_mid, p.post_norm, eps, N, d, a.xn2, a.rstd2);
  T* f = arena.alloc(size_t(N * d), false);
  a.moe = p.moe;
  if (p.moe) {
    moe_train_forward<T>(c, p.ffn, sh, a.xn2, f, a.ffn, aux_alpha, arena, pol);
  } else {
    a.mlp = mlp_alloc_acts<T>(arena, N, c.intermediate_size);
    mlp_train_forward<T>(p.mlp, N, d, c.intermediate_size, a.xn2, f, a.mlp, pol);
  }
  residual_add<T>(a.x_mid, f, x_out, N * d);
}

template <typename T>
void block_train_backward(const ModelConfig& c, const BlockParamsT<T>& p, const BlockParamsT<T>& g, const Rope& rope,
                          const TrainShape& sh, const BlockActs<T>& a, const T* dx_out, T* dx_in, double aux_alpha,
                          TrainArena<T>& arena, const MatmulPolicy& pol) {
  QS_PROFILE("block.train_bwd");
  const int64_t N = sh.N(), d = c.hidden_size;
  // FFN branch: d(xn2) from the FFN, then through the norm into d(x_mid) = dx_out + ...
  T* dxn2 = arena.alloc(size_t(N * d));
  if (a.moe) {
    moe_train_backward<T>(c, p.ffn, g.ffn, sh, a.ffn, dx_out, dxn2, aux_alpha, arena, pol);
  } else {
    mlp_train_backward<T>(p.mlp, g.mlp, N, d, c.intermediate_size, a.mlp, dx_out, dxn2,
                          mlp_alloc_scratch<T>(arena, N, c.intermediate_size), pol);
  }
  T* dmid = arena.alloc(size_t(N * d), false);
  std::copy_n(dx_out, N * d, dmid);
  rmsnorm_bwd<T>(a.x_mid, p.post_norm, a.rstd2, dxn2, N, d, dmid, g.post_norm, true);
  // Attention branch.
  T* dxn1 = arena.alloc(size_t(N * d));
  mla_train_backward<T>(c, p.attn, g.attn, rope, sh.B, sh.S, a.attn, dmid, dxn1, arena, pol);
  std::copy_n(dmid, N * d, dx_in);
  rmsnorm_bwd<T>(a.x_in, p.input_norm, a.rstd1, dxn1, N, d, dx_in, g.input_norm, true);
}

#define QS_BLOCK_INST(T)                                                                                         \
  template void block_train_forward<T>(const ModelConfig&, const BlockParamsT<T>&, const Rope&, const TrainShape&, \
                                       const T*, T*, BlockActs<T>&, double, TrainArena<T>&, const MatmulPolicy&); \
  template void block_train_backward<T>(const ModelConfig&, const BlockParamsT<T>&, const BlockParamsT<T>&,       \
                                        const Rope&, const TrainShape&, const BlockActs<T>&, const T*, T*, double, \
                                        TrainArena<T>&, const MatmulPolicy&);
QS_BLOCK_INST(float)
QS_BLOCK_INST(double)

}  // namespace qs
