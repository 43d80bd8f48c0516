// Vector kernels of the training step's elementwise work (F32): RMSNorm rows forward and
// backward, residual adds, scaled copies, the AdamW update and sums of squares. Each has a
// scalar reference (namespace qs::ref); the AVX2 / AVX-512 versions are compiled from one
// source (train_vec_impl.inc) and picked at run time, like vec_ops.h.
#pragma once
#include <cstdint>

namespace qs {

// y[i] = x[i]·r·w[i], r = (Σ x²/n + eps)^-½; returns r.
float rmsnorm_row(const float* x, const float* w, float eps, int64_t n, float* y);
// Backward of one RMSNorm row with its r, given dy:
//   dx (= or +=) r·w⊙dy − x·r³·⟨x⊙w, dy⟩/n        dw += x·r⊙dy
void rmsnorm_row_backward(const float* x, const float* w, float r, const float* dy, int64_t n, float* dx, float* dw,
                          bool accumulate);
// out = a + b
void add(const float* a, const float* b, float* out, int64_t n);
// y = alpha·x
void scale_copy(float alpha, const float* x, float* y, int64_t n);
// AdamW over n parameters (bias corrections folded into step and inv_c2 by the caller):
//   m = b1·m + (1−b1)·g ; v = b2·v + (1−b2)·g² ; w = w·decay − step·m / (√(v·inv_c2) + eps)
void adamw_update(float* w, const float* g, float* m, float* v, int64_t n, float b1, float b2, float step,
                  float inv_c2, float eps, float decay);
// Σ x², accumulated in double.
double sum_squares(const float* x, int64_t n);

namespace ref {
float rmsnorm_row(const float* x, const float* w, float eps, int64_t n, float* y);
void rmsnorm_row_backward(const float* x, const float* w, float r, const float* dy, int64_t n, float* dx, float* dw,
                          bool accumulate);
void add(const float* a, const float* b, float* out, int64_t n);
void scale_copy(float alpha, const float* x, float* y, int64_t n);
void adamw_update(float* w, const float* g, float* m, float* v, int64_t n, float b1, float b2, float step,
                  float inv_c2, float eps, float decay);
double sum_squares(const float* x, int64_t n);
}  // namespace ref

}  // namespace qs
