// Dispatch of the vector kernels and their scalar references.
#include "qiusuo/kernels/vec_ops.h"

#include <cmath>
#include <cstring>

#include "qiusuo/core/cpu.h"
#include "qiusuo/core/dtype.h"

namespace qs {

namespace ref {
float dot(const float* a, const float* b, int64_t n) {
  float s = 0;
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}
void axpy(float alpha, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}
void rmsnorm(const float* x, const float* w, float eps, int64_t n, float* out) {
  double ss = 0;
  for (int64_t i = 0; i < n; ++i) ss += double(x[i]) * x[i];
  const float r = float(1.0 / std::sqrt(ss / double(n) + eps));
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] * r * (w ? w[i] : 1.0f);
}
void silu_mul(const float* g, const float* u, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
}
void silu_mul_backward(const float* g, const float* u, const float* dout, float* dg, float* du, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float sg = 1.0f / (1.0f + std::exp(-g[i]));
    du[i] = dout[i] * g[i] * sg;
    dg[i] = dout[i] * u[i] * sg * (1.0f + g[i] * (1.0f - sg));
  }
}
void softmax(float* x, int64_t n) {
  float m = -INFINITY;
  for (int64_t i = 0; i < n; ++i) m = std::fmax(m, x[i]);
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += (x[i] = std::exp(x[i] - m));
  for (int64_t i = 0; i < n; ++i) x[i] = float(x[i] / s);
}
void scale(float* x, float alpha, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] *= alpha;
}
float exp_shift_sum(float* x, int64_t n, float shift) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += (x[i] = std::exp(x[i] - shift));
  return float(s);
}
float exp_shift_bf16(const float* x, int64_t n, float shift, uint16_t* out) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) {
    out[i] = f32_to_bf16(std::exp(x[i] - shift));
    s += bf16_to_f32(out[i]);
  }
  return float(s);
}
float max_value(const float* x, int64_t n) {
  float m = -INFINITY;
  for (int64_t i = 0; i < n; ++i) m = std::fmax(m, x[i]);
  return m;
}
void dot_rows(const float* Q, int64_t nq, int64_t ldq, const float* K, int64_t nk, int64_t ldk, int64_t n,
              float* S, int64_t lds) {
  for (int64_t i = 0; i < nq; ++i)
    for (int64_t j = 0; j < nk; ++j) S[i * lds + j] = dot(Q + i * ldq, K + j * ldk, n);
}
void weighted_rows(const float* P, int64_t nq, int64_t ldp, const float* V, int64_t nk, int64_t ldv, int64_t n,
                   float* O, int64_t ldo, bool accumulate) {
  for (int64_t i = 0; i < nq; ++i) {
    if (!accumulate) std::memset(O + i * ldo, 0, size_t(n) * sizeof(float));
    for (int64_t j = 0; j < nk; ++j) axpy(P[i * ldp + j], V + j * ldv, O + i * ldo, n);
  }
}
}  // namespace ref

#ifdef QIUSUO_SIMD
#define QS_DECLARE_VEC(ns)                                                                                  \
  namespace ns {                                                                                            \
  float dot(const float*, const float*, int64_t);                                                           \
  void axpy(float, const float*, float*, int64_t);                                                          \
  void scale(float*, float, int64_t);                                                                       \
  void dot_rows(const float*, int64_t, int64_t, const float*, int64_t, int64_t, int64_t, float*, int64_t);  \
  void weighted_rows(const float*, int64_t, int64_t, const float*, int64_t, int64_t, int64_t, float*,       \
                     int64_t, bool);                                                                        \
  void rmsnorm(const float*, const float*, float, int64_t, float*);                                         \
  void silu_mul(const float*, const float*, float*, int64_t);                                               \
  void silu_mul_backward(const float*, const float*, const float*, float*, float*, int64_t);                \
  void softmax(float*, int64_t);                                                                            \
  float exp_shift_sum(float*, int64_t, float);                                                              \
  float exp_shift_bf16(const float*, int64_t, float, uint16_t*);                                            \
  float max_value(const float*, int64_t);                                                                   \
  }
QS_DECLARE_VEC(avx512)
QS_DECLARE_VEC(avx2)
#define QS_DISPATCH_TO(isa, fn, ...)                           \
  switch (isa) {                                               \
    case Isa::Avx512: return avx512::fn(__VA_ARGS__);          \
    case Isa::Avx2: return avx2::fn(__VA_ARGS__);              \
    default: return ref::fn(__VA_ARGS__);                      \
  }
#else
#define QS_DISPATCH_TO(isa, fn, ...) \
  (void)(isa);                       \
  return ref::fn(__VA_ARGS__);
#endif
#define QS_DISPATCH(fn, ...) QS_DISPATCH_TO(best_isa(), fn, __VA_ARGS__)

float dot(const float* a, const float* b, int64_t n) { QS_DISPATCH(dot, a, b, n) }
void axpy(float alpha, const float* x, float* y, int64_t n) { QS_DISPATCH(axpy, alpha, x, y, n) }
void scale(float* x, float alpha, int64_t n) { QS_DISPATCH(scale, x, alpha, n) }
void dot_rows(const float* Q, int64_t nq, int64_t ldq, const float* K, int64_t nk, int64_t ldk, int64_t n,
              float* S, int64_t lds) {
  dot_rows(best_isa(), Q, nq, ldq, K, nk, ldk, n, S, lds);
}
void weighted_rows(const float* P, int64_t nq, int64_t ldp, const float* V, int64_t nk, int64_t ldv, int64_t n,
                   float* O, int64_t ldo, bool accumulate) {
  weighted_rows(best_isa(), P, nq, ldp, V, nk, ldv, n, O, ldo, accumulate);
}
void dot_rows(Isa isa, const float* Q, int64_t nq, int64_t ldq, const float* K, int64_t nk, int64_t ldk, int64_t n,
              float* S, int64_t lds) {
  QS_DISPATCH_TO(isa, dot_rows, Q, nq, ldq, K, nk, ldk, n, S, lds)
}
void weighted_rows(Isa isa, const float* P, int64_t nq, int64_t ldp, const float* V, int64_t nk, int64_t ldv,
                   int64_t n, float* O, int64_t ldo, bool accumulate) {
  QS_DISPATCH_TO(isa, weighted_rows, P, nq, ldp, V, nk, ldv, n, O, ldo, accumulate)
}
void rmsnorm(const float* x, const float* w, float eps, int64_t n, float* out) {
  QS_DISPATCH(rmsnorm, x, w, eps, n, out)
}
void silu_mul(const float* g, const float* u, float* out, int64_t n) { QS_DISPATCH(silu_mul, g, u, out, n) }
void silu_mul_backward(const float* g, const float* u, const float* dout, float* dg, float* du, int64_t n) {
  QS_DISPATCH(silu_mul_backward, g, u, dout, dg, du, n)
}
void softmax(float* x, int64_t n) { QS_DISPATCH(softmax, x, n) }
float exp_shift_sum(float* x, int64_t n, float shift) { QS_DISPATCH(exp_shift_sum, x, n, shift) }
float max_value(const float* x, int64_t n) { QS_DISPATCH(max_value, x, n) }
float exp_shift_bf16(const float* x, int64_t n, float shift, uint16_t* out) {
  QS_DISPATCH(exp_shift_bf16, x, n, shift, out)
}

}  // namespace qs
