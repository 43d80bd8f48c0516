// Group-wise integer weights (I8 / I4), AVX-512 + VNNI: the arithmetic of linear_int_scalar.cpp,
// bit for bit (integer sums are exact, the per-group float steps are the same operations).
//
// Outer-product formulation over the weights' tiles of 16 rows (linear.h): one zmm holds 16
// rows' 32-bit words of one column word, so a register tile is MR rows of x times R weight
// tiles, one int32 accumulator per (x row, tile) for the current group and one F32 accumulator
// each. Per column word: the tile's 64 bytes are loaded once (I4: split into even and odd
// nibbles, (v & 0x0F0F0F0F) and (v >> 4) & 0x0F0F0F0F, the unsigned operand of vpdpbusd), and
// x's matching 4 int8 (broadcast) are the signed operand. At a group's end: isum - zsum to F32,
// times scale_x * scale_w (F16 scales widened), one FMA into the F32 accumulator.
// Decode (M <= 4): one x tile; the tiles' words stream from memory once, each tile's stream
// prefetched kPrefetchWords ahead (near a tile's end, into the caller's next pass). Larger M: x
// tiles of 4 rows sweep the caller's chunk of tiles (held in L2).
// Runs under FTZ/DAZ (mxcsr.h), as the reference's F() states.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC target("avx512vnni")
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <limits>

#include "qiusuo/kernels/cpu/cpu_kernels.h"
#include "qiusuo/kernels/cpu/mxcsr.h"
#include "qiusuo/kernels/cpu/transpose_avx512.h"

namespace qs::cpu {
namespace {

constexpr int64_t kTile = WeightMatrix::kIntTile;
constexpr int kMaxMR = 4;
// Decode prefetch, in column words of a tile (64 bytes each): every one of the R tile streams
// prefetches its own line 12 words (768 bytes) ahead, non-temporal. Measured on Zen 5 (2 threads,
// 8 of 64 1408x2048 g64 experts per step through linear_batch, the two settings alternated in
// one process, ABBA): INT4 0.72 of the read probe against 0.65 for a T0 prefetch 32 words ahead
// (the earlier choice), I8 0.76 against 0.75; full-depth V2-Lite INT4 decode +0.5% (the model's
// step is more than its experts). 8-12 words ahead did alike, T0 or NTA. (Aimed at the next R
// tiles instead, 23-27 GB/s against 38-43: a chunk's last pass prefetched past it, and every line
// of the next chunk was a demand miss.)
//
// Near the end of a pass (its last kPrefetchWords words) each stream prefetches the first words of
// its tile in the caller's next pass instead of the lines past its own end (the next tile of the
// same pass, already streaming): the next pass then starts on lines in flight, not 8 streams of
// demand misses. Full-depth V2-Lite INT4 batch-1 decode 27.22 against 26.35 tokens/s, ahead in
// 12 of 12 rounds alternated in one process (Zen 5, 2 threads; 24.69 / 25.54 in another 12 of
// 12); the first pass of an item prefetched the same way up front as well: no further gain.
constexpr int64_t kPrefetchWords = 12;

// Weight tiles per register tile for MR rows of x (2 accumulators per pair + temporaries).
constexpr int r_for(int mr) { return mr == 1 ? 8 : mr == 2 ? 4 : 2; }

struct IntTile {
  const int8_t* xq[kMaxMR];
  const float* xs[kMaxMR];
  const int32_t* xz[kMaxMR];
  const uint32_t* w[8];   // tile starts (words * 16 uint32 each)
  const uint32_t* next[8];  // the tiles of the caller's next pass (null: this is its last)
  const uint16_t* s[8];   // tile scale starts (ngroups * 16 F16)
  float* y[8];            // output column of each tile's row 0 (y + m * ldy + row)
  int nrows[8];           // valid rows of each tile
  int64_t ldy, words, ngroups, wpg, prefetch;
  int mvalid;
};

inline __m512i bcast(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

template <bool kI4, int MR>
void micro(const IntTile& t) {
  constexpr int R = r_for(MR);
  constexpr int per = kI4 ? 8 : 4;  // columns per word
  const uint32_t* w[R];
  const int8_t* xq[MR];
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i) w[i] = t.w[i];
#pragma GCC unroll 4
  for (int m = 0; m < MR; ++m) xq[m] = t.xq[m];
  const int64_t pf = t.prefetch;
  const __m512i nib = _mm512_set1_epi8(0x0F);
  __m512 acc[MR][R];
#pragma GCC unroll 4
  for (int m = 0; m < MR; ++m)
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) acc[m][i] = _mm512_setzero_ps();
  for (int64_t g = 0; g < t.ngroups; ++g) {
    __m512i isum[MR][R];
#pragma GCC unroll 4
    for (int m = 0; m < MR; ++m)
#pragma GCC unroll 8
      for (int i = 0; i < R; ++i) isum[m][i] = _mm512_setzero_si512();
    for (int64_t r = g * t.wpg; r < (g + 1) * t.wpg; ++r) {
      if (pf) {
        if (r + kPrefetchWords < t.words || !t.next[0]) {
#pragma GCC unroll 8
          for (int i = 0; i < R; ++i) _mm_prefetch(reinterpret_cast<const char*>(w[i] + r * kTile + pf), _MM_HINT_NTA);
        } else {
          const int64_t ahead = (r + kPrefetchWords - t.words) * kTile;
#pragma GCC unroll 8
          for (int i = 0; i < R; ++i) _mm_prefetch(reinterpret_cast<const char*>(t.next[i] + ahead), _MM_HINT_NTA);
        }
      }
#pragma GCC unroll 8
      for (int i = 0; i < R; ++i) {
        const __m512i v = _mm512_loadu_si512(w[i] + r * kTile);
        if constexpr (kI4) {
          const __m512i lo = _mm512_and_si512(v, nib), hi = _mm512_and_si512(_mm512_srli_epi32(v, 4), nib);
#pragma GCC unroll 4
          for (int m = 0; m < MR; ++m) {
            isum[m][i] = _mm512_dpbusd_epi32(isum[m][i], lo, bcast(xq[m] + r * per));
            isum[m][i] = _mm512_dpbusd_epi32(isum[m][i], hi, bcast(xq[m] + r * per + 4));
          }
        } else {
#pragma GCC unroll 4
          for (int m = 0; m < MR; ++m) isum[m][i] = _mm512_dpbusd_epi32(isum[m][i], v, bcast(xq[m] + r * per));
        }
      }
    }
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) {
      const __m512 sw = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(t.s[i] + g * kTile)));
#pragma GCC unroll 4
      for (int m = 0; m < MR; ++m) {
        const __m512 c = _mm512_mul_ps(_mm512_set1_ps(t.xs[m][g]), sw);
        const __m512 f = _mm512_cvtepi32_ps(_mm512_sub_epi32(isum[m][i], _mm512_set1_epi32(t.xz[m][g])));
        acc[m][i] = _mm512_fmadd_ps(f, c, acc[m][i]);
      }
    }
  }
#pragma GCC unroll 4
  for (int m = 0; m < MR; ++m) {
    if (m >= t.mvalid) break;
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i)
      _mm512_mask_storeu_ps(t.y[i] + m * t.ldy, __mmask16((1u << t.nrows[i]) - 1), acc[m][i]);
  }
}

// Weight tiles [t0, t1) (rows [n0, n1)) for all M rows of x.
template <bool kI4>
void run(const QuantizedX& x, int64_t M, const WeightMatrix& W, int64_t n0, int64_t n1, float* y, int64_t ldy) {
  const int64_t t0 = n0 / kTile, t1 = (n1 + kTile - 1) / kTile;
  IntTile t;
  t.ldy = ldy;
  t.words = W.int_words();
  t.ngroups = W.cols / W.group;
  t.wpg = W.group / (kI4 ? 8 : 4);
  const auto* data = static_cast<const uint32_t*>(W.data);
  for (int64_t m0 = 0; m0 < M; m0 += kMaxMR) {
    const int mr = int(std::min<int64_t>(kMaxMR, M - m0));
    t.mvalid = mr;
    auto sweep = [&](auto mr_const) {
      constexpr int MR = decltype(mr_const)::value;
      constexpr int R = r_for(MR);
      for (int m = 0; m < MR; ++m) {
        const int64_t row = m0 + std::min(m, mr - 1);
        t.xq[m] = x.q + row * x.ldq;
        t.xs[m] = x.scale + row * x.ldg;
        t.xz[m] = x.zsum + row * x.ldg;
      }
      t.prefetch = M <= kMaxMR ? kPrefetchWords * kTile : 0;  // streaming: each tile's own stream, ahead
      for (int64_t tt = t0; tt < t1; tt += R) {
        for (int i = 0; i < R; ++i) {
          const int64_t ti = std::min(tt + i, t1 - 1);
          t.w[i] = data + ti * t.words * kTile;
          t.s[i] = W.group_scales + ti * t.ngroups * kTile;
          t.y[i] = y + m0 * ldy + ti * kTile;
          t.nrows[i] = tt + i < t1 ? int(std::min<int64_t>(kTile, n1 - ti * kTile)) : 0;
          t.next[i] = tt + R < t1 ? data + std::min(tt + R + i, t1 - 1) * t.words * kTile : nullptr;
        }
        micro<kI4, MR>(t);
      }
    };
    switch (mr) {
      case 1: sweep(std::integral_constant<int, 1>{}); break;
      case 2: sweep(std::integral_constant<int, 2>{}); break;
      case 3: sweep(std::integral_constant<int, 3>{}); break;
      default: sweep(std::integral_constant<int, 4>{}); break;
    }
  }
}

}  // namespace

// As quantize_x_scalar, 16 columns per step (groups are multiples of 32).
void quantize_x_avx512(const float* x, int64_t K, int64_t group, DType wdtype, int8_t* q, float* scale,
                       int32_t* zsum) {
  const int32_t z = wdtype == DType::I8 ? 128 : 8;
  const __m512 fmax = _mm512_set1_ps(std::numeric_limits<float>::max());
  const __m128i order = _mm_setr_epi8(0, 2, 4, 6, 1, 3, 5, 7, 8, 10, 12, 14, 9, 11, 13, 15);
  for (int64_t g = 0; g * group < K; ++g) {
    const float* xg = x + g * group;
    __m512 vmax = _mm512_setzero_ps();
    __mmask16 finite = 0xFFFF;
    for (int64_t c = 0; c < group; c += 16) {
      const __m512 a = _mm512_abs_ps(_mm512_loadu_ps(xg + c));
      finite &= _mm512_cmp_ps_mask(a, fmax, _CMP_LE_OQ);
      vmax = _mm512_max_ps(vmax, a);
    }
    int8_t* qg = q + g * group;
    if (finite != 0xFFFF) {
      std::memset(qg, 0, size_t(group));
      scale[g] = std::numeric_limits<float>::quiet_NaN();
      zsum[g] = 0;
      continue;
    }
    const float amax = _mm512_reduce_max_ps(vmax);
    const __m512 inv = _mm512_set1_ps(amax > 0.0f ? 127.0f / amax : 0.0f);
    const __m512 lim = _mm512_set1_ps(127.0f);
    __m512i sum = _mm512_setzero_si512();
    for (int64_t c = 0; c < group; c += 16) {
      __m512 r = _mm512_roundscale_ps(_mm512_mul_ps(_mm512_loadu_ps(xg + c), inv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      r = _mm512_min_ps(_mm512_max_ps(r, _mm512_sub_ps(_mm512_setzero_ps(), lim)), lim);
      const __m512i v = _mm512_cvtps_epi32(r);
      sum = _mm512_add_epi32(sum, v);
      __m128i b = _mm512_cvtsepi32_epi8(v);
      if (wdtype == DType::I4) b = _mm_shuffle_epi8(b, order);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(qg + c), b);
    }
    scale[g] = amax / 127.0f;
    zsum[g] = z * _mm512_reduce_add_epi32(sum);
  }
}

void linear_int_avx512(const QuantizedX& x, int64_t M, const WeightMatrix& W, int64_t n0, int64_t n1,
                       float* y, int64_t ldy) {
  if (M <= 0 || n1 <= n0) return;
  const FlushDenormals ftz_daz;
  if (W.dtype == DType::I4) run<true>(x, M, W, n0, n1, y, ldy);
  else run<false>(x, M, W, n0, n1, y, ldy);
}

// Tile dequantization (absorbed decode reads an integer kv_b this way, 16 rows at a time).
namespace {
// 16 columns at a time: the 16 / per words holding them give one vector per column (its value
// (u - z) * s in each row's lane, as the scalar reference computes it), transposed into rows.
template <bool kI4>
void dequant_tile(const WeightMatrix& W, int64_t t, float* out, int64_t ld) {
  constexpr int per = kI4 ? 8 : 4, bits = kI4 ? 4 : 8;
  const int64_t words = W.int_words(), ngroups = W.cols / W.group;
  const int64_t n = std::min(kTile, W.rows - t * kTile);
  const auto* data = static_cast<const uint32_t*>(W.data) + t * words * kTile;
  const uint16_t* sc = W.group_scales + t * ngroups * kTile;
  const __m512i mask = _mm512_set1_epi32(kI4 ? 0xF : 0xFF), z = _mm512_set1_epi32(kI4 ? 8 : 128);
  __m512 s = _mm512_setzero_ps();
  for (int64_t c0 = 0; c0 < W.cols; c0 += 16) {  // groups are multiples of 32 columns
    if (c0 % W.group == 0)
      s = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(sc + (c0 / W.group) * kTile)));
    __m512 a[16];
#pragma GCC unroll 4
    for (int k = 0; k < 16 / per; ++k) {
      const __m512i v = _mm512_loadu_si512(data + (c0 / per + k) * kTile);
#pragma GCC unroll 8
      for (int j = 0; j < per; ++j) {
        const __m512i u = _mm512_and_si512(_mm512_srli_epi32(v, unsigned(bits * j)), mask);
        a[k * per + j] = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(u, z)), s);
      }
    }
    transpose16(a);
    for (int64_t i = 0; i < n; ++i) _mm512_storeu_ps(out + i * ld + c0, a[i]);
  }
}
}  // namespace

void dequant_int_tile_avx512(const WeightMatrix& W, int64_t t, float* out, int64_t ld) {
  if (W.dtype == DType::I8) dequant_tile<false>(W, t, out, ld);
  else dequant_tile<true>(W, t, out, ld);
}

}  // namespace qs::cpu
