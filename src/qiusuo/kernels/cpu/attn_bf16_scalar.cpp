// Absorbed decode attention's value product over BF16 rows (cpu_kernels.h, attn_values_bf16),
// scalar reference: the arithmetic every ISA reproduces bit for bit (attn_bf16_avx512.cpp with
// vdpbf16ps, attn_bf16_avx2.cpp with FMAs under FTZ/DAZ).
//
// For output (i, c), keys in pairs (j, j + 1), j = 0, 2, 4, ... < nk, as one lane of vdpbf16ps
// does it with the pair (P[i][j], P[i][j+1]) and (V[j][c], V[j+1][c]):
//   acc = F(F(acc + P[i][j+1] * V[j+1][c]) + P[i][j] * V[j][c])
// acc starts at O[i][c] (accumulate) or 0; a missing key j + 1 (nk odd) counts as P = V = 0
// (neither is read). The products of two BF16 values are exact; F rounds to F32 (nearest even)
// and flushes results below 2^-126 to zero (FTZ); BF16 inputs below 2^-126 count as zero (DAZ)
// — linear_bf16's lane step (linear_bf16_scalar.cpp), here along the keys instead of along a
// row. Computed in double and flushed explicitly, as that file does (no FMA, no MXCSR state).
#include <cfloat>
#include <cmath>

#include "qiusuo/core/dtype.h"
#include "qiusuo/kernels/cpu/cpu_kernels.h"

namespace qs::cpu {
namespace {
inline float flush(float v) { return std::fabs(v) < FLT_MIN ? std::copysign(0.0f, v) : v; }
inline float value(uint16_t b) { return flush(bf16_to_f32(b)); }
inline float step(float acc, float p, float v) { return flush(float(double(acc) + double(p) * double(v))); }
}  // namespace

void attn_values_bf16_scalar(const uint16_t* P, int64_t nq, int64_t ldp, const uint16_t* V, int64_t nk,
                             int64_t ldv, int64_t n, float* O, int64_t ldo, bool accumulate) {
  for (int64_t i = 0; i < nq; ++i)
    for (int64_t c = 0; c < n; ++c) {
      float acc = accumulate ? O[i * ldo + c] : 0.0f;
      for (int64_t j = 0; j < nk; j += 2) {
        const bool pair = j + 1 < nk;
        const float p1 = pair ? value(P[i * ldp + j + 1]) : 0.0f, v1 = pair ? value(V[(j + 1) * ldv + c]) : 0.0f;
        acc = step(step(acc, p1, v1), value(P[i * ldp + j]), value(V[j * ldv + c]));
      }
      O[i * ldo + c] = acc;
    }
}

}  // namespace qs::cpu
