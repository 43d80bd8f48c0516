#include "qiusuo/model/mlp.h"

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "qiusuo/core/parallel.h"
#include "qiusuo/core/profile.h"
#include "qiusuo/kernels/vec_ops.h"

namespace qs {

void mlp_forward(const MlpWeights& w, const float* x, int64_t T, float* out, Compute compute, Arena& arena) {
  const MlpCall call{&w, x, T, out};
  mlp_forward_batch({&call, 1}, compute, arena);
}

void mlp_forward_batch(std::span<const MlpCall> calls, Compute compute, Arena& arena) {
  std::vector<LinearCall> lin;
  std::vector<float*> g(calls.size()), u(calls.size());  // [T, I] each
  for (size_t i = 0; i < calls.size(); ++i) {
    const MlpCall& c = calls[i];
    const int64_t I = c.w->gate.rows, d = c.w->gate.cols;
    g[i] = arena.alloc(size_t(c.T * I));
    u[i] = arena.alloc(size_t(c.T * I));
    lin.push_back({c.x, d, c.T, &c.w->gate, g[i], I});
    lin.push_back({c.x, d, c.T, &c.w->up, u[i], I});
  }
  {
    QS_PROFILE("mlp.gate_up");
    linear_batch(lin, compute);
  }
  lin.clear();
  for (size_t i = 0; i < calls.size(); ++i) {
    const MlpCall& c = calls[i];
    const int64_t I = c.w->gate.rows;
    silu_mul(g[i], u[i], g[i], c.T * I);
    lin.push_back({g[i], I, c.T, &c.w->down, c.out, c.w->down.rows});
  }
  QS_PROFILE("mlp.down");
  linear_batch(lin, compute);
}

}  // namespace qs

namespace qs {

void mlp_train_plan(int64_t N, int64_t I, ArenaPlan& plan) {
  plan.add(size_t(N * 2 * I));  // gu
  plan.add(size_t(N * I));      // h
  plan.add(size_t(N * I));      // dh
  plan.add(size_t(N * 2 * I));  // dgu
}

template <typename T>
MlpActs<T> mlp_alloc_acts(TrainArena<T>& arena, int64_t N, int64_t I) {
  MlpActs<T> a;
  a.gu = arena.alloc(size_t(N * 2 * I), false);
  a.h = arena.alloc(size_t(N * I), false);
  return a;
}

template <typename T>
MlpScratch<T> mlp_alloc_scratch(TrainArena<T>& arena, int64_t N, int64_t I) {
  MlpScratch<T> s;
  s.dh = arena.alloc(size_t(N * I), false);
  s.dgu = arena.alloc(size_t(N * 2 * I), false);
  return s;
}

namespace {
// h[r] = silu(g[r])·u[r] over N rows; g = gu[r, :I], u = gu[r, I:].
template <typename T>
void swiglu_rows(const T* gu, int64_t N, int64_t I, T* h) {
  parallel_for(N, std::max<int64_t>(1, 4096 / std::max<int64_t>(I, 1)), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const T* g = gu + r * 2 * I;
      if constexpr (std::is_same_v<T, float>) {
        silu_mul(g, g + I, h + r * I, I);
      } else {
        for (int64_t i = 0; i < I; ++i) h[r * I + i] = g[i] / (T(1) + std::exp(-g[i])) * g[I + i];
      }
    }
  });
}
// dgu[r] = [dgate | dup] from dh[r].
template <typename T>
void swiglu_rows_backward(const T* gu, const T* dh, int64_t N, int64_t I, T* dgu) {
  parallel_for(N, std::max<int64_t>(1, 4096 / std::max<int64_t>(I, 1)), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const T* g = gu + r * 2 * I;
      T* dg = dgu + r * 2 * I;
      if constexpr (std::is_same_v<T, float>) {
        silu_mul_backward(g, g + I, dh + r * I, dg, dg + I, I);
      } else {
        for (int64_t i = 0; i < I; ++i) {
          const T gv = g[i], s = T(1) / (T(1) + std::exp(-gv)), d = dh[r * I + i];
          dg[I + i] = d * gv * s;
          dg[i] = d * g[I + i] * s * (T(1) + gv * (T(1) - s));
        }
      }
    }
  });
}
template <typename T>
bool fused(const MlpParamsT<T>& p, int64_t I, int64_t d) {
  return p.up == p.gate + I * d;
}
}  // namespace

template <typename T>
void mlp_train_forward(const MlpParamsT<T>& p, int64_t N, int64_t d, int64_t I, const T* x, T* out, MlpActs<T>& a,
                       const MatmulPolicy& pol, bool accumulate) {
  QS_PROFILE("mlp.train_fwd");
  a.x = x;
  if (N == 0) return;
  if (fused(p, I, d)) {
    linear_fwd<T>(pol, x, N, d, p.gate, 2 * I, a.gu, false, Prec::Run, Operand::Saved);
  } else {
    mm<T>(pol, false, true, N, I, d, T(1), x, d, Operand::Saved, p.gate, d, Operand::Weight, T(0), a.gu, 2 * I);
    mm<T>(pol, false, true, N, I, d, T(1), x, d, Operand::Saved, p.up, d, Operand::Weight, T(0), a.gu + I, 2 * I);
  }
  swiglu_rows<T>(a.gu, N, I, a.h);
  linear_fwd<T>(pol, a.h, N, I, p.down, d, out, accumulate, Prec::Run, Operand::Saved);
}

template <typename T>
void mlp_train_backward(const MlpParamsT<T>& p, const MlpParamsT<T>& g, int64_t N, int64_t d, int64_t I,
                        const MlpActs<T>& a, const T* dout, T* dx, const MlpScratch<T>& s, const MatmulPolicy& pol,
                        bool accumulate) {
  QS_PROFILE("mlp.train_bwd");
  if (N == 0) return;
  linear_bwd<T>(pol, dout, N, d, p.down, a.h, I, s.dh, false, g.down, Prec::Run, Operand::Saved);
  swiglu_rows_backward<T>(a.gu, s.dh, N, I, s.dgu);
  if (fused(p, I, d)) {
    linear_bwd<T>(pol, s.dgu, N, 2 * I, p.gate, a.x, d, dx, accumulate, g.gate, Prec::Run,
                  Operand::Saved);  // gate and up gradients, adjacent
  } else {
    for (int part = 0; part < 2; ++part) {
      const T* W = part == 0 ? p.gate : p.up;
      T* dW = part == 0 ? g.gate : g.up;
      mm<T>(pol, false, false, N, d, I, T(1), s.dgu + part * I, 2 * I, Operand::Act, W, d, Operand::Weight,
            part == 0 && !accumulate ? T(0) : T(1), dx, d);
      mm<T>(pol, true, false, I, d, N, T(1), s.dgu + part * I, 2 * I, Operand::Act, a.x, d, Operand::Saved, T(1), dW, d);
    }
  }
}

#define QS_MLP_INST(T)                                                                                          \
  template MlpActs<T> mlp_alloc_acts<T>(TrainArena<T>&, int64_t, int64_t);                                      \
  template MlpScratch<T> mlp_alloc_scratch<T>(TrainArena<T>&, int64_t, int64_t);                                \
  template void mlp_train_forward<T>(const MlpParamsT<T>&, int64_t, int64_t, int64_t, const T*, T*, MlpActs<T>&, \
                                     const MatmulPolicy&, bool);                                                \
  template void mlp_train_backward<T>(const MlpParamsT<T>&, const MlpParamsT<T>&, int64_t, int64_t, int64_t,     \
                                      const MlpActs<T>&, const T*, T*, const MlpScratch<T>&, const MatmulPolicy&,  \
                                      bool);
QS_MLP_INST(float)
QS_MLP_INST(double)

}  // namespace qs
