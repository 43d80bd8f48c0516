#include "qiusuo/model/mlp.h"

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "qiusuo/core/parallel.h"
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
  return 3 * k + 3 * k + 64;  // g, u, h + dh, dg, du (fused: [g | u] + h, dh + [dg | du])
}

namespace {
// h[r] = silu(g[r])·u[r] over N rows of I (g, u rows ld apart).
template <typename T>
void swiglu_rows(const T* g, const T* u, int64_t ld, int64_t N, int64_t I, T* h) {
  if (ld == I) return swiglu_fwd<T>(g, u, N * I, h);
  parallel_for(N, std::max<int64_t>(1, 4096 / std::max<int64_t>(I, 1)), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      if constexpr (std::is_same_v<T, float>) {
        silu_mul(g + r * ld, u + r * ld, h + r * I, I);
      } else {
        for (int64_t i = 0; i < I; ++i) h[r * I + i] = g[r * ld + i] / (T(1) + std::exp(-g[r * ld + i])) * u[r * ld + i];
      }
    }
  });
}
template <typename T>
void swiglu_rows_backward(const T* g, const T* u, int64_t ld, const T* dh, int64_t N, int64_t I, T* dg, T* du) {
  if (ld == I) return swiglu_bwd<T>(g, u, dh, N * I, dg, du);
  parallel_for(N, std::max<int64_t>(1, 4096 / std::max<int64_t>(I, 1)), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      if constexpr (std::is_same_v<T, float>) {
        silu_mul_backward(g + r * ld, u + r * ld, dh + r * I, dg + r * ld, du + r * ld, I);
      } else {
        for (int64_t i = 0; i < I; ++i) {
          const T gv = g[r * ld + i], s = T(1) / (T(1) + std::exp(-gv)), d = dh[r * I + i];
          du[r * ld + i] = d * gv * s;
          dg[r * ld + i] = d * u[r * ld + i] * s * (T(1) + gv * (T(1) - s));
        }
      }
    }
  });
}
}  // namespace

template <typename T>
void mlp_train_forward(const MlpParamsT<T>& p, int64_t N, int64_t d, int64_t I, const T* x, T* out, MlpActs<T>& a,
                       TrainArena<T>& arena, const MatmulPolicy& pol) {
  QS_PROFILE("mlp.train_fwd");
  a.x = x;
  a.fused = p.up == p.gate + I * d;
  if (a.fused) {
    a.ld = 2 * I;
    a.g = arena.alloc(size_t(N * 2 * I), false);  // [N, gate | up]
    a.u = a.g + I;
    linear_fwd<T>(pol, x, N, d, p.gate, 2 * I, a.g);
  } else {
    a.ld = I;
    a.g = arena.alloc(size_t(N * I), false);
    a.u = arena.alloc(size_t(N * I), false);
    linear_fwd<T>(pol, x, N, d, p.gate, I, a.g);
    linear_fwd<T>(pol, x, N, d, p.up, I, a.u);
  }
  a.h = arena.alloc(size_t(N * I), false);
  swiglu_rows<T>(a.g, a.u, a.ld, N, I, a.h);
  linear_fwd<T>(pol, a.h, N, I, p.down, d, out);
}

template <typename T>
void mlp_train_backward(const MlpParamsT<T>& p, const MlpParamsT<T>& g, int64_t N, int64_t d, int64_t I,
                        const MlpActs<T>& a, const T* dout, T* dx, TrainArena<T>& arena, const MatmulPolicy& pol) {
  QS_PROFILE("mlp.train_bwd");
  T* dh = arena.alloc(size_t(N * I), false);
  linear_bwd<T>(pol, dout, N, d, p.down, a.h, I, dh, false, g.down);
  if (a.fused) {
    T* dgu = arena.alloc(size_t(N * 2 * I), false);  // [N, dgate | dup]
    swiglu_rows_backward<T>(a.g, a.u, a.ld, dh, N, I, dgu, dgu + I);
    linear_bwd<T>(pol, dgu, N, 2 * I, p.gate, a.x, d, dx, true, g.gate);  // gate and up gradients, adjacent
  } else {
    T* dg = arena.alloc(size_t(N * I), false);
    T* du = arena.alloc(size_t(N * I), false);
    swiglu_rows_backward<T>(a.g, a.u, a.ld, dh, N, I, dg, du);
    linear_bwd_input<T>(pol, dg, N, I, p.gate, d, dx, true);
    linear_bwd_input<T>(pol, du, N, I, p.up, d, dx, true);
    linear_bwd_weight<T>(pol, dg, N, I, a.x, d, g.gate);
    linear_bwd_weight<T>(pol, du, N, I, a.x, d, g.up);
  }
}

#define QS_MLP_INST(T)                                                                                         \
  template void mlp_train_forward<T>(const MlpParamsT<T>&, int64_t, int64_t, int64_t, const T*, T*, MlpActs<T>&, \
                                     TrainArena<T>&, const MatmulPolicy&);                                     \
  template void mlp_train_backward<T>(const MlpParamsT<T>&, const MlpParamsT<T>&, int64_t, int64_t, int64_t,     \
                                      const MlpActs<T>&, const T*, T*, TrainArena<T>&, const MatmulPolicy&);
QS_MLP_INST(float)
QS_MLP_INST(double)

}  // namespace qs
