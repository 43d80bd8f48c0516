// Small vector kernels over F32 spans (attention inner loops, norms, activations).
// Each has a scalar reference (namespace qs::ref) and SIMD versions compiled per ISA from one
// source (vec_ops_impl.inc with GCC vector extensions), picked at run time.
#pragma once
#include <cstdint>

#include "qiusuo/core/cpu.h"

namespace qs {

float dot(const float* a, const float* b, int64_t n);
void axpy(float alpha, const float* x, float* y, int64_t n);  // y += alpha·x
void scale(float* x, float alpha, int64_t n);                // x *= alpha
// S[i*lds + j] = dot(Q + i*ldq, K + j*ldk, n) for i < nq, j < nk (K streamed once).
void dot_rows(const float* Q, int64_t nq, int64_t ldq, const float* K, int64_t nk, int64_t ldk, int64_t n,
              float* S, int64_t lds);
// O[i] (+)= Σ_j P[i*ldp + j] · V[j*ldv : n] for i < nq (V streamed once); accumulate=false zeroes O.
void weighted_rows(const float* P, int64_t nq, int64_t ldp, const float* V, int64_t nk, int64_t ldv, int64_t n,
                   float* O, int64_t ldo, bool accumulate);
// The same two as one ISA's version computes them, whatever best_isa() picks (Isa::Scalar: the
// reference loops; the ISA must be one the CPU runs). The versions sum in different orders, and a
// kernel reading stored weights (linear.h's dot_rows_of / weighted_rows_of) matches its own
// ISA's version bit for bit: its tests compare the two under any QIUSUO_ISA.
void dot_rows(Isa isa, const float* Q, int64_t nq, int64_t ldq, const float* K, int64_t nk, int64_t ldk, int64_t n,
              float* S, int64_t lds);
void weighted_rows(Isa isa, const float* P, int64_t nq, int64_t ldp, const float* V, int64_t nk, int64_t ldv,
                   int64_t n, float* O, int64_t ldo, bool accumulate);
// out = x / sqrt(mean(x²) + eps) · w   (w may be null: no gain)
void rmsnorm(const float* x, const float* w, float eps, int64_t n, float* out);
// out = silu(g) · u, silu(g) = g / (1 + e^-g)
void silu_mul(const float* g, const float* u, float* out, int64_t n);
// Backward of out = silu(g)·u: dg = dout·u·σ(g)(1 + g(1 − σ(g))), du = dout·silu(g).
void silu_mul_backward(const float* g, const float* u, const float* dout, float* dg, float* du, int64_t n);
// In-place softmax over n values; returns nothing, max-subtracted, F32 exp.
void softmax(float* x, int64_t n);
// x[i] = exp(x[i] − shift) in place; returns Σ x[i]. Polynomial exp, |relative error| < 2e-7
// over the range softmax needs (inputs <= 0 after the shift; results below 1e-38 flush to 0).
float exp_shift_sum(float* x, int64_t n, float shift);
float max_value(const float* x, int64_t n);
// The probabilities of BF16 attention (model/mla.cpp): out[i] = exp(x[i] − shift) (exp_shift_sum's
// polynomial) rounded to BF16 (nearest even, NaN stays NaN); returns the sum of the rounded
// values. x is not written.
float exp_shift_bf16(const float* x, int64_t n, float shift, uint16_t* out);

namespace ref {
float dot(const float* a, const float* b, int64_t n);
void axpy(float alpha, const float* x, float* y, int64_t n);
void rmsnorm(const float* x, const float* w, float eps, int64_t n, float* out);
void silu_mul(const float* g, const float* u, float* out, int64_t n);
void silu_mul_backward(const float* g, const float* u, const float* dout, float* dg, float* du, int64_t n);
void softmax(float* x, int64_t n);
float exp_shift_sum(float* x, int64_t n, float shift);
float exp_shift_bf16(const float* x, int64_t n, float shift, uint16_t* out);
}  // namespace ref

}  // namespace qs
