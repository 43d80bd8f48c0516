// attn_values_bf16 (attn_bf16_scalar.cpp states the arithmetic) on AVX2 + FMA, and on AVX-512
// CPUs without AVX512_BF16: a vdpbf16ps lane step is two FMAs (the BF16 products are exact in
// F32, so each FMA rounds once where vdpbf16ps rounds) under FTZ/DAZ (mxcsr.h).
// Tiles of 4 query rows x 16 columns (8 ymm accumulators) walk all keys two at a time. A BF16
// row becomes F32 by a 16-bit unpack with zeros (one operation per 8 values), which leaves the
// columns in the order of the unpacks — lanes of the low one hold columns 0-3 and 8-11, of the
// high one 4-7 and 12-15 — put back at the store (and taken apart at the load when
// accumulating). The tile's probabilities are widened to F32 once per call and broadcast from
// memory. (Widening each value by a shift and broadcasting from BF16 ran at half the F32
// weighted_rows' rate; this at about its rate, and without its F32 copy of the rows.)
#include <immintrin.h>

#include <algorithm>

#include "qiusuo/kernels/cpu/cpu_kernels.h"
#include "qiusuo/kernels/cpu/isa_scratch.h"
#include "qiusuo/kernels/cpu/mxcsr.h"

namespace qs::cpu {
namespace {
constexpr int kMq = 4;

// Unpack order <-> column order of 16 columns.
inline void from_columns(__m256 c0, __m256 c1, __m256* lo, __m256* hi) {
  *lo = _mm256_permute2f128_ps(c0, c1, 0x20);  // columns 0-3 | 8-11
  *hi = _mm256_permute2f128_ps(c0, c1, 0x31);  // columns 4-7 | 12-15
}
inline void to_columns(__m256 lo, __m256 hi, __m256* c0, __m256* c1) {
  *c0 = _mm256_permute2f128_ps(lo, hi, 0x20);  // columns 0-7
  *c1 = _mm256_permute2f128_ps(lo, hi, 0x31);  // columns 8-15
}

// Rows of 16 BF16 columns at v (row j) and v + ldv (row j + 1, if `pair`), in unpack order.
struct Pair {
  __m256 alo, ahi, blo, bhi;
};
inline Pair load_pair(const uint16_t* v, int64_t ldv, bool pair) {
  const __m256i z = _mm256_setzero_si256();
  const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(v));
  const __m256i b = pair ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(v + ldv)) : z;
  return {_mm256_castsi256_ps(_mm256_unpacklo_epi16(z, a)), _mm256_castsi256_ps(_mm256_unpackhi_epi16(z, a)),
          _mm256_castsi256_ps(_mm256_unpacklo_epi16(z, b)), _mm256_castsi256_ps(_mm256_unpackhi_epi16(z, b))};
}

// p: the tile's probabilities as F32, row r at p + r * ldp32, zero at index nk when nk is odd.
template <int MQ>
void tile(const float* p, int64_t ldp32, const uint16_t* V, int64_t nk, int64_t ldv, float* O, int64_t ldo,
          bool accumulate) {
  __m256 acc[MQ][2];
#pragma GCC unroll 4
  for (int r = 0; r < MQ; ++r) {
    if (accumulate) from_columns(_mm256_loadu_ps(O + r * ldo), _mm256_loadu_ps(O + r * ldo + 8), &acc[r][0], &acc[r][1]);
    else acc[r][0] = acc[r][1] = _mm256_setzero_ps();
  }
  for (int64_t j = 0; j < nk; j += 2) {
    const Pair v = load_pair(V + j * ldv, ldv, j + 1 < nk);
#pragma GCC unroll 4
    for (int r = 0; r < MQ; ++r) {
      const __m256 pe = _mm256_broadcast_ss(p + r * ldp32 + j), po = _mm256_broadcast_ss(p + r * ldp32 + j + 1);
      acc[r][0] = _mm256_fmadd_ps(pe, v.alo, _mm256_fmadd_ps(po, v.blo, acc[r][0]));
      acc[r][1] = _mm256_fmadd_ps(pe, v.ahi, _mm256_fmadd_ps(po, v.bhi, acc[r][1]));
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < MQ; ++r) {
    __m256 c0, c1;
    to_columns(acc[r][0], acc[r][1], &c0, &c1);
    _mm256_storeu_ps(O + r * ldo, c0);
    _mm256_storeu_ps(O + r * ldo + 8, c1);
  }
}

template <int MQ>
void columns(const float* p, int64_t ldp32, const uint16_t* V, int64_t nk, int64_t ldv, int64_t n, float* O,
             int64_t ldo, bool accumulate) {
  const int64_t full = n / 16 * 16;
  for (int64_t c = 0; c < full; c += 16) tile<MQ>(p, ldp32, V + c, nk, ldv, O + c, ldo, accumulate);
  if (full == n) return;
  // The last n - full columns through zero-padded copies of their rows and outputs.
  const int64_t w = n - full;
  thread_local IsaScratch<uint16_t> vbuf;
  uint16_t* v = vbuf.get(size_t(std::max<int64_t>(nk, 1) * 16));
  for (int64_t j = 0; j < nk; ++j) {
    std::fill(v + j * 16, v + j * 16 + 16, uint16_t(0));
    std::copy_n(V + j * ldv + full, w, v + j * 16);
  }
  alignas(32) float o[MQ * 16] = {};
  for (int r = 0; r < MQ; ++r)
    for (int64_t cc = 0; cc < w; ++cc) o[r * 16 + cc] = accumulate ? O[r * ldo + full + cc] : 0.0f;
  tile<MQ>(p, ldp32, v, nk, 16, o, 16, accumulate);
  for (int r = 0; r < MQ; ++r) std::copy_n(o + r * 16, w, O + r * ldo + full);
}
}  // namespace

void attn_values_bf16_avx2(const uint16_t* P, int64_t nq, int64_t ldp, const uint16_t* V, int64_t nk, int64_t ldv,
                           int64_t n, float* O, int64_t ldo, bool accumulate) {
  FlushDenormals ftz;
  const int64_t ldp32 = nk + 1 + (nk + 1) % 2;  // room for the zero partner of an odd last key
  thread_local IsaScratch<float> pbuf;
  float* p = pbuf.get(size_t(kMq * ldp32));
  for (int64_t i0 = 0; i0 < nq; i0 += kMq) {
    const int m = int(std::min<int64_t>(kMq, nq - i0));
    for (int r = 0; r < m; ++r) {
      bf16_to_f32_avx2(P + (i0 + r) * ldp, p + r * ldp32, nk);
      p[r * ldp32 + nk] = 0.0f;
    }
    float* Oi = O + i0 * ldo;
    switch (m) {
      case 4: columns<4>(p, ldp32, V, nk, ldv, n, Oi, ldo, accumulate); break;
      case 3: columns<3>(p, ldp32, V, nk, ldv, n, Oi, ldo, accumulate); break;
      case 2: columns<2>(p, ldp32, V, nk, ldv, n, Oi, ldo, accumulate); break;
      default: columns<1>(p, ldp32, V, nk, ldv, n, Oi, ldo, accumulate); break;
    }
  }
}

}  // namespace qs::cpu
