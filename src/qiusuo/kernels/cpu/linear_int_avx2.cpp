// Group-wise integer weights (I8 / I4), AVX2 (and AVX-512 CPUs without VNNI): the arithmetic of
// linear_int_scalar.cpp, bit for bit.
//
// As linear_int_avx512.cpp with 8 rows per ymm (a 16-row weight tile is two ymm) and no VNNI:
// the products of 4-bit unsigned weights with int8 x come from vpmaddubsw (pairs of products,
// at most 2 * 15 * 127 in magnitude: exact in int16) then vpmaddwd with ones (int32). I8 weights
// are split into nibbles, u = 16 * hi + lo, and summed as two 4-bit products. Runs under
// FTZ/DAZ (mxcsr.h).
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <limits>

#include "qiusuo/kernels/cpu/cpu_kernels.h"
#include "qiusuo/kernels/cpu/transpose_avx2.h"
#include "qiusuo/kernels/cpu/mxcsr.h"

namespace qs::cpu {
namespace {

constexpr int64_t kTile = WeightMatrix::kIntTile;
constexpr int kMaxMR = 2;
constexpr int R = 2;  // weight tiles per register tile
// Decode prefetch, in column words of a tile (64 bytes each), T0: each tile stream prefetches its
// line 32 words (2 KB) ahead. The tiles' 4 KB pages end a hardware prefetcher's stream, and this
// kernel's arithmetic (no VNNI) leaves little time to wait: on Zen 5 with QIUSUO_ISA=avx2 (8 of
// 64 1408x2048 g64 experts per step, alternated in one process with the prefetch off) INT4 0.45
// of the read probe against 0.34 without, I8 0.57 against 0.46; 64 words did alike, 16 less
// well, NTA alike.
constexpr int64_t kPrefetchWords = 32;

struct IntTile {
  const int8_t* xq[kMaxMR];
  const float* xs[kMaxMR];
  const int32_t* xz[kMaxMR];
  const uint32_t* w[R];
  const uint16_t* s[R];
  float* y[R];
  int nrows[R];
  int64_t ldy, ngroups, wpg, prefetch;  // prefetch: uint32 words ahead (0: none)
  int mvalid;
};

inline __m256i bcast(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

// Sum over each dword's 4 byte products u (0..15) * x (int8), as int32.
inline __m256i dot4(__m256i u, __m256i x) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, x), _mm256_set1_epi16(1));
}

template <bool kI4, int MR>
void micro(const IntTile& t) {
  constexpr int per = kI4 ? 8 : 4;
  const __m256i nib = _mm256_set1_epi8(0x0F);
  __m256 acc[MR][R][2];
  for (int m = 0; m < MR; ++m)
    for (int i = 0; i < R; ++i) acc[m][i][0] = acc[m][i][1] = _mm256_setzero_ps();
  for (int64_t g = 0; g < t.ngroups; ++g) {
    __m256i isum[MR][R][2];
    for (int m = 0; m < MR; ++m)
      for (int i = 0; i < R; ++i) isum[m][i][0] = isum[m][i][1] = _mm256_setzero_si256();
    for (int64_t r = g * t.wpg; r < (g + 1) * t.wpg; ++r) {
      if (t.prefetch) {
#pragma GCC unroll 2
        for (int i = 0; i < R; ++i) _mm_prefetch(reinterpret_cast<const char*>(t.w[i] + r * kTile + t.prefetch), _MM_HINT_T0);
      }
#pragma GCC unroll 2
      for (int i = 0; i < R; ++i)
#pragma GCC unroll 2
        for (int h = 0; h < 2; ++h) {
          const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(t.w[i] + r * kTile + 8 * h));
          const __m256i lo = _mm256_and_si256(v, nib), hi = _mm256_and_si256(_mm256_srli_epi32(v, 4), nib);
#pragma GCC unroll 2
          for (int m = 0; m < MR; ++m) {
            __m256i& a = isum[m][i][h];
            if constexpr (kI4) {
              a = _mm256_add_epi32(a, dot4(lo, bcast(t.xq[m] + r * per)));
              a = _mm256_add_epi32(a, dot4(hi, bcast(t.xq[m] + r * per + 4)));
            } else {
              const __m256i xv = bcast(t.xq[m] + r * per);
              a = _mm256_add_epi32(a, dot4(lo, xv));
              a = _mm256_add_epi32(a, _mm256_slli_epi32(dot4(hi, xv), 4));
            }
          }
        }
    }
    for (int i = 0; i < R; ++i)
      for (int h = 0; h < 2; ++h) {
        const __m256 sw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(t.s[i] + g * kTile + 8 * h)));
        for (int m = 0; m < MR; ++m) {
          const __m256 c = _mm256_mul_ps(_mm256_set1_ps(t.xs[m][g]), sw);
          const __m256 f = _mm256_cvtepi32_ps(_mm256_sub_epi32(isum[m][i][h], _mm256_set1_epi32(t.xz[m][g])));
          acc[m][i][h] = _mm256_fmadd_ps(f, c, acc[m][i][h]);
        }
      }
  }
  for (int m = 0; m < t.mvalid; ++m)
    for (int i = 0; i < R; ++i) {
      alignas(32) float out[16];
      _mm256_store_ps(out, acc[m][i][0]);
      _mm256_store_ps(out + 8, acc[m][i][1]);
      std::copy_n(out, t.nrows[i], t.y[i] + m * t.ldy);
    }
}

template <bool kI4>
void run(const QuantizedX& x, int64_t M, const WeightMatrix& W, int64_t n0, int64_t n1, float* y, int64_t ldy) {
  const int64_t t0 = n0 / kTile, t1 = (n1 + kTile - 1) / kTile;
  const int64_t words = W.int_words();
  IntTile t;
  t.ldy = ldy;
  t.ngroups = W.cols / W.group;
  t.wpg = W.group / (kI4 ? 8 : 4);
  t.prefetch = M <= kMaxMR ? kPrefetchWords * kTile : 0;  // decode: the weights stream from memory
  const auto* data = static_cast<const uint32_t*>(W.data);
  for (int64_t m0 = 0; m0 < M; m0 += kMaxMR) {
    const int mr = int(std::min<int64_t>(kMaxMR, M - m0));
    t.mvalid = mr;
    for (int m = 0; m < kMaxMR; ++m) {
      const int64_t row = m0 + std::min(m, mr - 1);
      t.xq[m] = x.q + row * x.ldq;
      t.xs[m] = x.scale + row * x.ldg;
      t.xz[m] = x.zsum + row * x.ldg;
    }
    for (int64_t tt = t0; tt < t1; tt += R) {
      for (int i = 0; i < R; ++i) {
        const int64_t ti = std::min(tt + i, t1 - 1);
        t.w[i] = data + ti * words * kTile;
        t.s[i] = W.group_scales + ti * t.ngroups * kTile;
        t.y[i] = y + m0 * ldy + ti * kTile;
        t.nrows[i] = tt + i < t1 ? int(std::min<int64_t>(kTile, n1 - ti * kTile)) : 0;
      }
      if (mr == 1) micro<kI4, 1>(t);
      else micro<kI4, 2>(t);
    }
  }
}

}  // namespace

// As quantize_x_scalar, 8 columns per step.
void quantize_x_avx2(const float* x, int64_t K, int64_t group, DType wdtype, int8_t* q, float* scale,
                     int32_t* zsum) {
  const int32_t z = wdtype == DType::I8 ? 128 : 8;
  const __m256 sign = _mm256_set1_ps(-0.0f), fmax = _mm256_set1_ps(std::numeric_limits<float>::max());
  const __m256 lim = _mm256_set1_ps(127.0f), nlim = _mm256_set1_ps(-127.0f);
  for (int64_t g = 0; g * group < K; ++g) {
    const float* xg = x + g * group;
    __m256 vmax = _mm256_setzero_ps();
    int finite = 0xFF;
    for (int64_t c = 0; c < group; c += 8) {
      const __m256 a = _mm256_andnot_ps(sign, _mm256_loadu_ps(xg + c));
      finite &= _mm256_movemask_ps(_mm256_cmp_ps(a, fmax, _CMP_LE_OQ));
      vmax = _mm256_max_ps(vmax, a);
    }
    int8_t* qg = q + g * group;
    if (finite != 0xFF) {
      std::memset(qg, 0, size_t(group));
      scale[g] = std::numeric_limits<float>::quiet_NaN();
      zsum[g] = 0;
      continue;
    }
    alignas(32) float m8[8];
    _mm256_store_ps(m8, vmax);
    float amax = 0.0f;
    for (float v : m8) amax = std::max(amax, v);
    const __m256 inv = _mm256_set1_ps(amax > 0.0f ? 127.0f / amax : 0.0f);
    int32_t sum = 0;
    for (int64_t c = 0; c < group; c += 8) {
      __m256 r = _mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(xg + c), inv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      r = _mm256_min_ps(_mm256_max_ps(r, nlim), lim);
      alignas(32) int32_t v[8];
      _mm256_store_si256(reinterpret_cast<__m256i*>(v), _mm256_cvtps_epi32(r));
      for (int j = 0; j < 8; ++j) {
        const int pos = wdtype == DType::I4 ? (j % 2) * 4 + j / 2 : j;
        qg[c + pos] = int8_t(v[j]);
        sum += v[j];
      }
    }
    scale[g] = amax / 127.0f;
    zsum[g] = z * sum;
  }
}

void linear_int_avx2(const QuantizedX& x, int64_t M, const WeightMatrix& W, int64_t n0, int64_t n1,
                     float* y, int64_t ldy) {
  if (M <= 0 || n1 <= n0) return;
  const FlushDenormals ftz_daz;
  if (W.dtype == DType::I4) run<true>(x, M, W, n0, n1, y, ldy);
  else run<false>(x, M, W, n0, n1, y, ldy);
}

namespace {
// Each half tile (8 rows), 8 columns at a time: the 8 / per words holding them give one vector
// per column ((u - z) * s in each row's lane, as the scalar reference computes it), transposed.
template <bool kI4>
void dequant_tile(const WeightMatrix& W, int64_t t, float* out, int64_t ld) {
  constexpr int per = kI4 ? 8 : 4, bits = kI4 ? 4 : 8;
  const int64_t words = W.int_words(), ngroups = W.cols / W.group;
  const int64_t n = std::min(kTile, W.rows - t * kTile);
  const auto* data = static_cast<const uint32_t*>(W.data) + t * words * kTile;
  const uint16_t* sc = W.group_scales + t * ngroups * kTile;
  const __m256i mask = _mm256_set1_epi32(kI4 ? 0xF : 0xFF), z = _mm256_set1_epi32(kI4 ? 8 : 128);
  for (int64_t h = 0; h * 8 < n; ++h) {
    const int64_t nh = std::min<int64_t>(8, n - 8 * h);  // rows of this half
    __m256 s = _mm256_setzero_ps();
    for (int64_t c0 = 0; c0 < W.cols; c0 += 8) {
      if (c0 % W.group == 0)
        s = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(sc + (c0 / W.group) * kTile + 8 * h)));
      __m256 a[8];
#pragma GCC unroll 2
      for (int k = 0; k < 8 / per; ++k) {
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(data + (c0 / per + k) * kTile + 8 * h));
#pragma GCC unroll 8
        for (int j = 0; j < per; ++j) {
          const __m256i u = _mm256_and_si256(_mm256_srli_epi32(v, bits * j), mask);
          a[k * per + j] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(u, z)), s);
        }
      }
      transpose8(a);
      for (int64_t i = 0; i < nh; ++i) _mm256_storeu_ps(out + (8 * h + i) * ld + c0, a[i]);
    }
  }
}
}  // namespace

void dequant_int_tile_avx2(const WeightMatrix& W, int64_t t, float* out, int64_t ld) {
  if (W.dtype == DType::I8) dequant_tile<false>(W, t, out, ld);
  else dequant_tile<true>(W, t, out, ld);
}

}  // namespace qs::cpu
