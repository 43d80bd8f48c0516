#include "qiusuo/model/mlp.h"

#include "qiusuo/core/profile.h"
#include "qiusuo/kernels/vec_ops.h"

namespace qs {

void mlp_forward(const MlpWeights& w, const float* x, int64_t T, float* out, Compute compute, Arena& arena) {
  const int64_t I = w.gate.rows;
  float* g = arena.alloc(size_t(T * I));  // [T, I]
  float* u = arena.alloc(size_t(T * I));
  linear(x, T, w.gate, g, compute);
  linear(x, T, w.up, u, compute);
  silu_mul(g, u, g, T * I);
  linear(g, T, w.down, out, compute);
}

}  // namespace qs

namespace qs {

size_t mlp_train_arena_elems(int64_t N, int64_t I) {
  const size_t k = (size_t(N * I) + 15) / 16 * 16;
  return 3 * k + 3 * k;  // g, u, h + dh, dg, du
}

template <typename T>
void mlp_train_forward(const MlpParamsT<T>& p, int64_t N, int64_t d, int64_t I, const T* x, T* out, MlpActs<T>& a,
                       TrainArena<T>& arena, const MatmulPolicy& pol) {
  QS_PROFILE("mlp.train_fwd");
  a.x = x;
  a.g = arena.alloc(size_t(N * I), false);
  a.u = arena.alloc(size_t(N * I), false);
  a.h = arena.alloc(size_t(N * I), false);
  linear_fwd<T>(pol, x, N, d, p.gate, I, a.g);
  linear_fwd<T>(pol, x, N, d, p.up, I, a.u);
  swiglu_fwd<T>(a.g, a.u, N * I, a.h);
  linear_fwd<T>(pol, a.h, N, I, p.down, d, out);
}

template <typename T>
void mlp_train_backward(const MlpParamsT<T>& p, const MlpParamsT<T>& g, int64_t N, int64_t d, int64_t I,
                        const MlpActs<T>& a, const T* dout, T* dx, TrainArena<T>& arena, const MatmulPolicy& pol) {
  QS_PROFILE("mlp.train_bwd");
  T* dh = arena.alloc(size_t(N * I), false);
  T* dg = arena.alloc(size_t(N * I), false);
  T* du = arena.alloc(size_t(N * I), false);
  linear_bwd_input<T>(pol, dout, N, d, p.down, I, dh, false);
  linear_bwd_weight<T>(pol, dout, N, d, a.h, I, g.down);
  swiglu_bwd<T>(a.g, a.u, dh, N * I, dg, du);
  linear_bwd_input<T>(pol, dg, N, I, p.gate, d, dx, true);
  linear_bwd_input<T>(pol, du, N, I, p.up, d, dx, true);
  linear_bwd_weight<T>(pol, dg, N, I, a.x, d, g.gate);
  linear_bwd_weight<T>(pol, du, N, I, a.x, d, g.up);
}

#define QS_MLP_INST(T)                                                                                         \
  template void mlp_train_forward<T>(const MlpParamsT<T>&, int64_t, int64_t, int64_t, const T*, T*, MlpActs<T>&, \
                                     TrainArena<T>&, const MatmulPolicy&);                                     \
  template void mlp_train_backward<T>(const MlpParamsT<T>&, const MlpParamsT<T>&, int64_t, int64_t, int64_t,     \
                                      const MlpActs<T>&, const T*, T*, TrainArena<T>&, const MatmulPolicy&);
QS_MLP_INST(float)
QS_MLP_INST(double)

}  // namespace qs
