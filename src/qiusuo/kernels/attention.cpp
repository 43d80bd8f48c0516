// Causal attention over the GEMM kernels in 128-row blocks (blocks above the diagonal are
// skipped: 10 of 16 block products at S = 512), and its double-precision reference.
#include "qiusuo/kernels/attention.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include <cstring>

#include "qiusuo/kernels/gemm.h"
#include "qiusuo/kernels/vec_ops.h"

namespace qs {

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
      if (i + 1 < S) std::memset(row + i + 1, 0, size_t(S - i - 1) * 4);
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
      if (i + 1 < S) std::memset(r + i + 1, 0, size_t(S - i - 1) * 4);
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

}  // namespace qs
