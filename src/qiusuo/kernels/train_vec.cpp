// Dispatch of the training vector kernels and their scalar references.
#include "qiusuo/kernels/train_vec.h"

#include <cmath>

#include "qiusuo/core/cpu.h"

namespace qs {

namespace ref {
float rmsnorm_row(const float* x, const float* w, float eps, int64_t n, float* y) {
  double ss = 0;
  for (int64_t i = 0; i < n; ++i) ss += double(x[i]) * x[i];
  const float r = float(1.0 / std::sqrt(ss / double(n) + double(eps)));
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * r * w[i];
  return r;
}
void rmsnorm_row_backward(const float* x, const float* w, float r, const float* dy, int64_t n, float* dx, float* dw,
                          bool accumulate) {
  double dot = 0;
  for (int64_t i = 0; i < n; ++i) dot += double(x[i]) * w[i] * dy[i];
  const float k = float(double(r) * r * r * dot / double(n));
  for (int64_t i = 0; i < n; ++i) {
    const float v = r * w[i] * dy[i] - x[i] * k;
    dx[i] = accumulate ? dx[i] + v : v;
    dw[i] += x[i] * r * dy[i];
  }
}
void add(const float* a, const float* b, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}
void scale_copy(float alpha, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = alpha * x[i];
}
void adamw_update(float* w, const float* g, float* m, float* v, int64_t n, float b1, float b2, float step,
                  float inv_c2, float eps, float decay) {
  for (int64_t i = 0; i < n; ++i) {
    m[i] = b1 * m[i] + (1.0f - b1) * g[i];
    v[i] = b2 * v[i] + (1.0f - b2) * g[i] * g[i];
    w[i] = w[i] * decay - step * m[i] / (std::sqrt(v[i] * inv_c2) + eps);
  }
}
double sum_squares(const float* x, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += double(x[i]) * x[i];
  return s;
}
}  // namespace ref

#ifdef QIUSUO_SIMD
#define QS_DECLARE_TRAIN_VEC(ns)                                                                                 \
  namespace ns {                                                                                                 \
  float rmsnorm_row(const float*, const float*, float, int64_t, float*);                                         \
  void rmsnorm_row_backward(const float*, const float*, float, const float*, int64_t, float*, float*, bool);      \
  void add(const float*, const float*, float*, int64_t);                                                         \
  void scale_copy(float, const float*, float*, int64_t);                                                         \
  void adamw_update(float*, const float*, float*, float*, int64_t, float, float, float, float, float, float);    \
  double sum_squares(const float*, int64_t);                                                                     \
  }
QS_DECLARE_TRAIN_VEC(train_avx512)
QS_DECLARE_TRAIN_VEC(train_avx2)
#define QS_TRAIN_DISPATCH(fn, ...)                              \
  switch (best_isa()) {                                         \
    case Isa::Avx512: return train_avx512::fn(__VA_ARGS__);     \
    case Isa::Avx2: return train_avx2::fn(__VA_ARGS__);         \
    default: return ref::fn(__VA_ARGS__);                       \
  }
#else
#define QS_TRAIN_DISPATCH(fn, ...) return ref::fn(__VA_ARGS__);
#endif

float rmsnorm_row(const float* x, const float* w, float eps, int64_t n, float* y) {
  QS_TRAIN_DISPATCH(rmsnorm_row, x, w, eps, n, y)
}
void rmsnorm_row_backward(const float* x, const float* w, float r, const float* dy, int64_t n, float* dx, float* dw,
                          bool accumulate) {
  QS_TRAIN_DISPATCH(rmsnorm_row_backward, x, w, r, dy, n, dx, dw, accumulate)
}
void add(const float* a, const float* b, float* out, int64_t n) { QS_TRAIN_DISPATCH(add, a, b, out, n) }
void scale_copy(float alpha, const float* x, float* y, int64_t n) { QS_TRAIN_DISPATCH(scale_copy, alpha, x, y, n) }
void adamw_update(float* w, const float* g, float* m, float* v, int64_t n, float b1, float b2, float step,
                  float inv_c2, float eps, float decay) {
  QS_TRAIN_DISPATCH(adamw_update, w, g, m, v, n, b1, b2, step, inv_c2, eps, decay)
}
double sum_squares(const float* x, int64_t n) { QS_TRAIN_DISPATCH(sum_squares, x, n) }

}  // namespace qs
