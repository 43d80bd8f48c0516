// Causal attention over the GEMM kernels in 128-row blocks (blocks above the diagonal are
// skipped: 10 of 16 block products at S = 512), and its double-precision reference. Only the
// visible blocks of P and dS are written (the diagonal block's upper part as zeros); the
// entries right of a row's block are never read.
#include "qiusuo/kernels/attention.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include <cstring>

#include "qiusuo/kernels/convert.h"
#include "qiusuo/kernels/cpu/cpu_kernels.h"
#include "qiusuo/kernels/gemm.h"
#include "qiusuo/kernels/vec_ops.h"

namespace qs {

int64_t attn_bf16_query_stride(int64_t n) {
  return std::max<int64_t>(1, (n + cpu::kBf16Pad - 1) / cpu::kBf16Pad) * cpu::kBf16Pad;
}

void attn_scores_bf16(const uint16_t* Qb, int64_t nq, int64_t ldq, const uint16_t* K, int64_t nk, int64_t n,
                      float* S, int64_t lds) {
  if (nq <= 0 || nk <= 0) return;
  WeightMatrix W;
  W.dtype = DType::BF16;
  W.rows = nk;
  W.cols = n;
  W.data = K;
  cpu::kernels().linear_bf16(Qb, ldq, nq, W, 0, nk, S, lds);
}

void attn_values_bf16(const uint16_t* P, int64_t nq, int64_t ldp, const uint16_t* V, int64_t nk, int64_t ldv,
                      int64_t n, float* O, int64_t ldo, bool accumulate) {
  if (nq <= 0 || n <= 0) return;
  cpu::kernels().attn_values_bf16(P, nq, ldp, V, nk, ldv, n, O, ldo, accumulate);
}

int64_t attention_scratch_floats(int64_t S, int64_t dk, int64_t dv) {
  (void)dk;
  (void)dv;
  return S * S;
}

namespace ref {
void causal_attention_forward(const float* Q, int64_t ldq, const float* K, int64_t ldk, const float* V, int64_t ldv,
                              int64_t S, int64_t dk, int64_t dv, float scale, float* P, float* O, int64_t ldo) {
  for (int64_t i = 0; i < S; ++i) {
    double m = -INFINITY;
    std::vector<double> s(i + 1);
    for (int64_t j = 0; j <= i; ++j) {
      double acc = 0;
      for (int64_t k = 0; k < dk; ++k) acc += double(Q[i * ldq + k]) * K[j * ldk + k];
      s[j] = acc * scale;
      m = std::max(m, s[j]);
    }
    double z = 0;
    for (int64_t j = 0; j <= i; ++j) z += (s[j] = std::exp(s[j] - m));
    for (int64_t j = 0; j < S; ++j) P[i * S + j] = j <= i ? float(s[j] / z) : 0.0f;
    for (int64_t c = 0; c < dv; ++c) {
      double acc = 0;
      for (int64_t j = 0; j <= i; ++j) acc += double(P[i * S + j]) * V[j * ldv + c];
      O[i * ldo + c] = float(acc);
    }
  }
}

void causal_attention_backward(const float* Q, int64_t ldq, const float* K, int64_t ldk, const float* V, int64_t ldv,
                               const float* P, const float* dO, int64_t lddo, int64_t S, int64_t dk, int64_t dv,
                               float scale, float* dQ, int64_t lddq, float* dK, int64_t lddk, float* dV, int64_t lddv) {
  std::vector<double> dS(size_t(S * S), 0.0);
  for (int64_t i = 0; i < S; ++i) {
    double dot = 0;
    std::vector<double> dp(i + 1);
    for (int64_t j = 0; j <= i; ++j) {
      double acc = 0;
      for (int64_t c = 0; c < dv; ++c) acc += double(dO[i * lddo + c]) * V[j * ldv + c];
      dp[j] = acc;
      dot += acc * P[i * S + j];
    }
    for (int64_t j = 0; j <= i; ++j) dS[i * S + j] = P[i * S + j] * (dp[j] - dot) * scale;
  }
  for (int64_t j = 0; j < S; ++j) {
    for (int64_t c = 0; c < dv; ++c) {
      double acc = 0;
      for (int64_t i = j; i < S; ++i) acc += double(P[i * S + j]) * dO[i * lddo + c];
      dV[j * lddv + c] = float(acc);
    }
    for (int64_t c = 0; c < dk; ++c) {
      double acc = 0;
      for (int64_t i = j; i < S; ++i) acc += dS[i * S + j] * Q[i * ldq + c];
      dK[j * lddk + c] = float(acc);
    }
  }
  for (int64_t i = 0; i < S; ++i)
    for (int64_t c = 0; c < dk; ++c) {
      double acc = 0;
      for (int64_t j = 0; j <= i; ++j) acc += dS[i * S + j] * K[j * ldk + c];
      dQ[i * lddq + c] = float(acc);
    }
}
}  // namespace ref

namespace {
constexpr int64_t kBlock = 128;  // causal blocking: products skip blocks above the diagonal
}

void causal_attention_forward(const float* Q, int64_t ldq, const float* K, int64_t ldk, const float* V, int64_t ldv,
                              int64_t S, int64_t dk, int64_t dv, float scale, float* P, float* O, int64_t ldo,
                              float* scratch) {
  (void)scratch;
  for (int64_t q0 = 0; q0 < S; q0 += kBlock) {
    const int64_t m = std::min(kBlock, S - q0), n = q0 + m;  // keys [0, n) are visible to this block
    gemm_f32(false, true, m, n, dk, 1.0f, Q + q0 * ldq, ldq, K, ldk, 0.0f, P + q0 * S, S);
    for (int64_t i = q0; i < q0 + m; ++i) {
      float* row = P + i * S;
      qs::scale(row, scale, i + 1);
      const float z = exp_shift_sum(row, i + 1, max_value(row, i + 1));
      qs::scale(row, 1.0f / z, i + 1);
      if (i + 1 < n) std::memset(row + i + 1, 0, size_t(n - i - 1) * 4);  // the diagonal block's upper part
    }
    gemm_f32(false, false, m, dv, n, 1.0f, P + q0 * S, S, V, ldv, 0.0f, O + q0 * ldo, ldo);
  }
}

void causal_attention_backward(const float* Q, int64_t ldq, const float* K, int64_t ldk, const float* V, int64_t ldv,
                               const float* P, const float* dO, int64_t lddo, int64_t S, int64_t dk, int64_t dv,
                               float scale, float* dQ, int64_t lddq, float* dK, int64_t lddk, float* dV, int64_t lddv,
                               float* scratch) {
  float* dS = scratch;  // [S, S]
  for (int64_t q0 = 0; q0 < S; q0 += kBlock) {
    const int64_t m = std::min(kBlock, S - q0), n = q0 + m;
    // dP = dO Vᵀ on the visible keys, then dS = P ⊙ (dP − rowsum(dP ⊙ P)) · scale
    gemm_f32(false, true, m, n, dv, 1.0f, dO + q0 * lddo, lddo, V, ldv, 0.0f, dS + q0 * S, S);
    for (int64_t i = q0; i < q0 + m; ++i) {
      float* r = dS + i * S;
      const float* pr = P + i * S;
      const float dot = qs::dot(r, pr, i + 1);
      for (int64_t j = 0; j <= i; ++j) r[j] = pr[j] * (r[j] - dot) * scale;
      if (i + 1 < n) std::memset(r + i + 1, 0, size_t(n - i - 1) * 4);
    }
    gemm_f32(false, false, m, dk, n, 1.0f, dS + q0 * S, S, K, ldk, 0.0f, dQ + q0 * lddq, lddq);  // dQ = dS K
  }
  for (int64_t k0 = 0; k0 < S; k0 += kBlock) {
    const int64_t m = std::min(kBlock, S - k0), rows = S - k0;  // queries [k0, S) see these keys
    // dV = Pᵀ dO ; dK = dSᵀ Q, restricted to the queries at or below the key block
    gemm_f32(true, false, m, dv, rows, 1.0f, P + k0 * S + k0, S, dO + k0 * lddo, lddo, 0.0f, dV + k0 * lddv, lddv);
    gemm_f32(true, false, m, dk, rows, 1.0f, dS + k0 * S + k0, S, Q + k0 * ldq, ldq, 0.0f, dK + k0 * lddk, lddk);
  }
}

// ---- BF16 products ------------------------------------------------------------------------------

namespace {
// rows x cols of X (row stride ld) as BF16 into out (row stride ldo).
void round_rows(const float* X, int64_t ld, int64_t rows, int64_t cols, uint16_t* out, int64_t ldo) {
  for (int64_t r = 0; r < rows; ++r) f32_to_bf16(X + r * ld, out + r * ldo, cols);
}
}  // namespace

int64_t attention_bf16_scratch_floats(int64_t S, int64_t dk, int64_t dv) {
  // dS (F32) + P and dS (BF16) + Q, K, V, dO (BF16); BF16 counted in half floats.
  return S * S + S * S + (S * dk + 1) / 2 * 2 + (S * dv + 1) / 2 * 2 + 8;
}

void causal_attention_forward_bf16(const float* Q, int64_t ldq, const float* K, int64_t ldk, const float* V,
                                   int64_t ldv, int64_t S, int64_t dk, int64_t dv, float scale, float* P, float* O,
                                   int64_t ldo, float* scratch) {
  uint16_t* Qb = reinterpret_cast<uint16_t*>(scratch);  // [S, dk]
  uint16_t* Kb = Qb + S * dk;                           // [S, dk]
  uint16_t* Vb = Kb + S * dk;                           // [S, dv]
  uint16_t* Pb = Vb + S * dv;                           // [kBlock, S]
  round_rows(Q, ldq, S, dk, Qb, dk);
  round_rows(K, ldk, S, dk, Kb, dk);
  round_rows(V, ldv, S, dv, Vb, dv);
  for (int64_t q0 = 0; q0 < S; q0 += kBlock) {
    const int64_t m = std::min(kBlock, S - q0), n = q0 + m;
    gemm_bf16(false, true, m, n, dk, 1.0f, Qb + q0 * dk, dk, Kb, dk, 0.0f, P + q0 * S, S);
    for (int64_t i = q0; i < q0 + m; ++i) {
      float* row = P + i * S;
      qs::scale(row, scale, i + 1);
      const float z = exp_shift_sum(row, i + 1, max_value(row, i + 1));
      qs::scale(row, 1.0f / z, i + 1);
      if (i + 1 < n) std::memset(row + i + 1, 0, size_t(n - i - 1) * 4);
    }
    round_rows(P + q0 * S, S, m, n, Pb, n);
    gemm_bf16(false, false, m, dv, n, 1.0f, Pb, n, Vb, dv, 0.0f, O + q0 * ldo, ldo);
  }
}

void causal_attention_backward_bf16(const float* Q, int64_t ldq, const float* K, int64_t ldk, const float* V,
                                    int64_t ldv, const float* P, const float* dO, int64_t lddo, int64_t S, int64_t dk,
                                    int64_t dv, float scale, float* dQ, int64_t lddq, float* dK, int64_t lddk,
                                    float* dV, int64_t lddv, float* scratch) {
  float* dS = scratch;                                         // [S, S] F32
  uint16_t* Pb = reinterpret_cast<uint16_t*>(scratch + S * S); // [S, S]
  uint16_t* dSb = Pb + S * S;                                  // [S, S]
  uint16_t* Qb = dSb + S * S;                                  // [S, dk]
  uint16_t* Kb = Qb + S * dk;                                  // [S, dk]
  uint16_t* Vb = Kb + S * dk;                                  // [S, dv]
  uint16_t* dOb = Vb + S * dv;                                 // [S, dv]
  round_rows(Q, ldq, S, dk, Qb, dk);
  round_rows(K, ldk, S, dk, Kb, dk);
  round_rows(V, ldv, S, dv, Vb, dv);
  round_rows(dO, lddo, S, dv, dOb, dv);
  for (int64_t q0 = 0; q0 < S; q0 += kBlock) {
    const int64_t m = std::min(kBlock, S - q0), n = q0 + m;
    gemm_bf16(false, true, m, n, dv, 1.0f, dOb + q0 * dv, dv, Vb, dv, 0.0f, dS + q0 * S, S);
    for (int64_t i = q0; i < q0 + m; ++i) {
      float* r = dS + i * S;
      const float* pr = P + i * S;
      const float dot = qs::dot(r, pr, i + 1);
      for (int64_t j = 0; j <= i; ++j) r[j] = pr[j] * (r[j] - dot) * scale;
      if (i + 1 < n) std::memset(r + i + 1, 0, size_t(n - i - 1) * 4);
    }
    round_rows(dS + q0 * S, S, m, n, dSb + q0 * S, S);  // the visible blocks only: the products
    round_rows(P + q0 * S, S, m, n, Pb + q0 * S, S);    // below read nothing right of them
    gemm_bf16(false, false, m, dk, n, 1.0f, dSb + q0 * S, S, Kb, dk, 0.0f, dQ + q0 * lddq, lddq);
  }
  for (int64_t k0 = 0; k0 < S; k0 += kBlock) {
    const int64_t m = std::min(kBlock, S - k0), rows = S - k0;
    gemm_bf16(true, false, m, dv, rows, 1.0f, Pb + k0 * S + k0, S, dOb + k0 * dv, dv, 0.0f, dV + k0 * lddv, lddv);
    gemm_bf16(true, false, m, dk, rows, 1.0f, dSb + k0 * S + k0, S, Qb + k0 * dk, dk, 0.0f, dK + k0 * lddk, lddk);
  }
}

}  // namespace qs
