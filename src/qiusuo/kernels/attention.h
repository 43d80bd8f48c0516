// Causal self-attention of one head over S positions, the training form (F32): the forward
// keeps the probabilities P for the backward pass. Only the causal half is computed (j <= i).
//
//   forward   P = softmax_rows(scale · Q Kᵀ, causal)   P[S, S], entries j > i are 0 within
//             the row's 128-block (right of it P is not written, and the backward reads nothing)
//             O = P V                                    O[S, dv]
//   backward  dV = Pᵀ dO ;  dP = dO Vᵀ ;  dS = P ⊙ (dP − rowsum(dP ⊙ P)) · scale
//             dQ = dS K ;  dK = dSᵀ Q
//
// Q, K are [S, dk], V, dO are [S, dv], each with its own row stride. `scratch` holds at least
// attention_scratch_floats(S, dk, dv) floats. The products run on gemm_f32 in 128-row blocks
// that skip the blocks above the diagonal; reference in namespace qs::ref.
#pragma once
#include <cstdint>

namespace qs {

int64_t attention_scratch_floats(int64_t S, int64_t dk, int64_t dv);

void causal_attention_forward(const float* Q, int64_t ldq, const float* K, int64_t ldk, const float* V, int64_t ldv,
                              int64_t S, int64_t dk, int64_t dv, float scale, float* P, float* O, int64_t ldo,
                              float* scratch);

// dQ, dK, dV are overwritten.
void causal_attention_backward(const float* Q, int64_t ldq, const float* K, int64_t ldk, const float* V, int64_t ldv,
                               const float* P, const float* dO, int64_t lddo, int64_t S, int64_t dk, int64_t dv,
                               float scale, float* dQ, int64_t lddq, float* dK, int64_t lddk, float* dV, int64_t lddv,
                               float* scratch);

// The same with the four products on BF16 inputs (F32 accumulation, gemm_bf16; AMX where
// present): Q, K, V, dO, P and dS are rounded to BF16 as they enter a product; the softmax, its
// backward, P and the outputs stay F32. The attention core of a BF16 training run, as
// DeepSeek-V3 keeps attention in BF16 ("higher precision") when the linear layers run in FP8.
// `scratch` holds at least attention_bf16_scratch_floats(S, dk, dv) floats.
int64_t attention_bf16_scratch_floats(int64_t S, int64_t dk, int64_t dv);
void causal_attention_forward_bf16(const float* Q, int64_t ldq, const float* K, int64_t ldk, const float* V,
                                   int64_t ldv, int64_t S, int64_t dk, int64_t dv, float scale, float* P, float* O,
                                   int64_t ldo, float* scratch);
void causal_attention_backward_bf16(const float* Q, int64_t ldq, const float* K, int64_t ldk, const float* V,
                                    int64_t ldv, const float* P, const float* dO, int64_t lddo, int64_t S, int64_t dk,
                                    int64_t dv, float scale, float* dQ, int64_t lddq, float* dK, int64_t lddk,
                                    float* dV, int64_t lddv, float* scratch);

// ---- Decode attention over BF16 rows ----------------------------------------------------------
// The two products of absorbed MLA attention (model/mla.cpp) with --precision bf16 over a BF16
// latent cache, reading the cached rows where they are (no F32 copy):
//
//   attn_scores_bf16   S[i*lds + j] = dot_bf16(Qb row i, K row j), i < nq, j < nk: linear()'s
//                      BF16 arithmetic (linear.h, Compute::BF16; vdpbf16ps on AVX512_BF16, the
//                      same bits from FMAs elsewhere) with the queries as x and the keys as W.
//                      Qb: the queries rounded to BF16, row stride ldq = attn_bf16_query_stride(n)
//                      (zeros from n on); K: nk rows of n BF16 values, contiguous.
//   attn_values_bf16   O[i*ldo + c] (+)= Σ_j P[i*ldp + j] · V[j*ldv + c], i < nq, c < n, j < nk,
//                      P the probabilities rounded to BF16: the keys in pairs (j, j + 1), each
//                      pair added as one lane of vdpbf16ps adds it, in key order
//                      (cpu/attn_bf16_scalar.cpp states it); accumulate = false starts from 0.
//
// Both give the same bits on every ISA, for any nq and tile: a result depends on its own query
// row and the keys alone (the batch invariance model/mla.h states).
int64_t attn_bf16_query_stride(int64_t n);
void attn_scores_bf16(const uint16_t* Qb, int64_t nq, int64_t ldq, const uint16_t* K, int64_t nk, int64_t n,
                      float* S, int64_t lds);
void attn_values_bf16(const uint16_t* P, int64_t nq, int64_t ldp, const uint16_t* V, int64_t nk, int64_t ldv,
                      int64_t n, float* O, int64_t ldo, bool accumulate);

namespace ref {
void causal_attention_forward(const float* Q, int64_t ldq, const float* K, int64_t ldk, const float* V, int64_t ldv,
                              int64_t S, int64_t dk, int64_t dv, float scale, float* P, float* O, int64_t ldo);
void causal_attention_backward(const float* Q, int64_t ldq, const float* K, int64_t ldk, const float* V, int64_t ldv,
                               const float* P, const float* dO, int64_t lddo, int64_t S, int64_t dk, int64_t dv,
                               float scale, float* dQ, int64_t lddq, float* dK, int64_t lddk, float* dV, int64_t lddv);
}  // namespace ref

}  // namespace qs
