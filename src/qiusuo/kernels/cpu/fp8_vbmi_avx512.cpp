// FP8 E4M3 weights read by AVX512_VBMI byte-table lookups (Zen 4/5, Ice Lake and later):
//  - fp8_to_f32: FP8 -> F32 times a scale, the bits of convert_avx512.cpp's F16 route
//    (tests/kernels/convert_test.cpp), 64 codes per step;
//  - fp8_weighted_rows / fp8_dot_rows: absorbed MLA decode's products with kv_b rows read as
//    stored, each weight widened in registers and used at once, the bits of dequant_rows_f32
//    followed by vec_ops' weighted_rows / dot_rows for one query row (tests/kernels/
//    fp8_rows_test.cpp): no F32 copy of the rows is written and read back. 6-layer V2-Lite FP8
//    batch-1 decode 55.3 against 53.5 tokens/s for dequantized rows (ahead in 6 of 8 rounds
//    alternated in one process, Zen 5, 2 threads, read probe 77 GB/s).
//
// An E4M3 value has 3 mantissa bits, so its F32 has only two nonzero bytes, the upper two (the
// BF16 of the value, exact). Per 64 codes: one byte permute (kTables.order, below), two 128-entry
// lookups of those two bytes with the code's low 7 bits as the index, the sign bit or'ed in,
// then in-lane unpacks (bytes into 16-bit BF16, BF16 into the upper half of 32-bit lanes) give
// four vectors of 16 F32, which the scale multiplies: ~20 instructions per 64 codes against ~44
// for the cvtph_ps route (the absorb's 16-row dequantization alone: 167 against 196 us per layer
// in cache, one thread).
// NaN codes (0x7F, 0xFF) are found 64 at a time and set afterwards (checkpoints hold none).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC target("avx512vbmi")
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "qiusuo/core/dtype.h"
#include "qiusuo/kernels/cpu/cpu_kernels.h"
#include "qiusuo/kernels/cpu/transpose_avx512.h"

namespace qs::cpu {
namespace {

struct Fp8Tables {
  alignas(64) uint8_t lo[128], hi[128];  // bytes 2 and 3 of the F32 of magnitude code c
  alignas(64) uint8_t order[64];
};

constexpr uint32_t f32_bits_of_magnitude(int c) {  // E4M3 code c in 0..126, as F32 bits
  const int e = c >> 3, m = c & 7;
  if (e > 0) return uint32_t(e + 120) << 23 | uint32_t(m) << 20;  // (1 + m/8) 2^(e-7)
  if (m == 0) return 0;
  const int p = m >= 4 ? 2 : m >= 2 ? 1 : 0;  // m 2^-9 = (m / 2^p) 2^(p-9): exponent p - 9
  return uint32_t(p - 9 + 127) << 23 | uint32_t(m - (1 << p)) << (23 - p);
}

constexpr Fp8Tables make_tables() {
  Fp8Tables t{};
  for (int c = 0; c < 128; ++c) {
    const uint32_t b = f32_bits_of_magnitude(c == 127 ? 126 : c);  // 127 is NaN, set later
    t.lo[c] = uint8_t(b >> 16);
    t.hi[c] = uint8_t(b >> 24);
  }
  // Output vector a (of 4) lane L (of 4) takes permuted bytes 16L + 4a .. 16L + 4a + 3 (the
  // unpacks below), which must be codes 16a + 4L .. 16a + 4L + 3: a 4x4 transpose of 4-byte groups.
  for (int L = 0; L < 4; ++L)
    for (int a = 0; a < 4; ++a)
      for (int j = 0; j < 4; ++j) t.order[16 * L + 4 * a + j] = uint8_t(16 * a + 4 * L + j);
  return t;
}
alignas(64) constexpr Fp8Tables kTables = make_tables();

static_assert(f32_bits_of_magnitude(0x7e) == 0x43E00000u);  // 448
static_assert(f32_bits_of_magnitude(0x01) == 0x3B000000u);  // 2^-9, the smallest subnormal
static_assert(f32_bits_of_magnitude(0x38) == 0x3F800000u);  // 1

// 64 codes -> f[0..4): codes 16a..16a+15 as F32 times s (rounded once, as the scalar
// fp8e4m3_to_f32(code) * s), NaN codes as NaN.
inline void widen64(__m512i v, __m512 s, __m512 f[4]) {
  const __m512i p = _mm512_permutexvar_epi8(_mm512_load_si512(kTables.order), v);
  const __m512i lo = _mm512_permutex2var_epi8(_mm512_load_si512(kTables.lo), p, _mm512_load_si512(kTables.lo + 64));
  __m512i hi = _mm512_permutex2var_epi8(_mm512_load_si512(kTables.hi), p, _mm512_load_si512(kTables.hi + 64));
  hi = _mm512_ternarylogic_epi32(hi, p, _mm512_set1_epi8(int8_t(0x80)), 0xF8);  // hi | (p & 0x80)
  const __m512i b0 = _mm512_unpacklo_epi8(lo, hi), b1 = _mm512_unpackhi_epi8(lo, hi);
  const __m512i z = _mm512_setzero_si512();
  f[0] = _mm512_castsi512_ps(_mm512_unpacklo_epi16(z, b0));
  f[1] = _mm512_castsi512_ps(_mm512_unpackhi_epi16(z, b0));
  f[2] = _mm512_castsi512_ps(_mm512_unpacklo_epi16(z, b1));
  f[3] = _mm512_castsi512_ps(_mm512_unpackhi_epi16(z, b1));
  const __mmask64 nan = _mm512_cmpeq_epi8_mask(_mm512_and_si512(v, _mm512_set1_epi8(0x7f)), _mm512_set1_epi8(0x7f));
#pragma GCC unroll 4
  for (int a = 0; a < 4; ++a) {
    f[a] = _mm512_mul_ps(f[a], s);
    if (nan) [[unlikely]]
      f[a] = _mm512_mask_mov_ps(f[a], __mmask16(nan >> (16 * a)), _mm512_set1_ps(__builtin_nanf("")));
  }
}

// 64 codes (k: valid lanes) -> out[0, 64) masked to the valid ones.
inline void fp8x64(__m512i v, __m512 s, float* out, __mmask64 k) {
  __m512 f[4];
  widen64(v, s, f);
#pragma GCC unroll 4
  for (int a = 0; a < 4; ++a) {
    const __mmask16 ka = __mmask16(k >> (16 * a));
    if (ka == 0xFFFF) _mm512_storeu_ps(out + 16 * a, f[a]);
    else _mm512_mask_storeu_ps(out + 16 * a, ka, f[a]);
  }
}

inline __mmask64 mask64(int64_t n) { return n >= 64 ? ~__mmask64(0) : (__mmask64(1) << n) - 1; }

// The block scale of row r, columns [c, c + 64) (c a multiple of 64: one 128-column block).
inline float scale_of(const WeightMatrix& W, int64_t r, int64_t c) {
  return W.scale_inv[(r / WeightMatrix::kBlock) * W.scale_cols() + c / WeightMatrix::kBlock];
}

}  // namespace

// dst[c] += Σ_i p[i] W[r0 + i][c], i = 0..n-1 in order, one FMA per term (weighted_rows' order:
// each output column adds its rows' terms one by one). W.cols a multiple of 16.
// Rows go in chunks of kChunk (8 KB of codes at V2-Lite's 512 columns), each swept tile by tile
// (64 columns, 4 accumulators in registers, dst read and written once per tile and chunk) while
// the next chunk is prefetched, one line per row and tile: the rows are read from memory once,
// in order. (Sweeping all n rows per tile instead read a 128-row block 8 times, a line per row
// each time: 1.09x slower decode, 6-layer FP8, Zen 5.)
void fp8_weighted_rows_avx512vbmi(const WeightMatrix& W, int64_t r0, int64_t n, const float* p, float* dst) {
  constexpr int64_t kChunk = 16;
  const int64_t K = W.cols;
  const uint8_t* data = static_cast<const uint8_t*>(W.data);
  for (int64_t c = 0; c < K; c += 64)  // the first chunk
    for (int64_t i = 0; i < std::min(kChunk, n); ++i) _mm_prefetch(reinterpret_cast<const char*>(data + (r0 + i) * K + c), _MM_HINT_T0);
  for (int64_t i0 = 0; i0 < n; i0 += kChunk) {
    const int64_t i1 = std::min(n, i0 + kChunk), ahead = std::min(n, i1 + kChunk);
    for (int64_t c = 0; c < K; c += 64) {
      const int64_t nc = std::min<int64_t>(64, K - c), groups = nc / 16;
      for (int64_t i = i1; i < ahead; ++i) _mm_prefetch(reinterpret_cast<const char*>(data + (r0 + i) * K + c), _MM_HINT_T0);
      __m512 acc[4];
#pragma GCC unroll 4
      for (int a = 0; a < 4; ++a) acc[a] = a < groups ? _mm512_loadu_ps(dst + c + 16 * a) : _mm512_setzero_ps();
      for (int64_t i = i0; i < i1; ++i) {
        const int64_t r = r0 + i;
        __m512 f[4];
        widen64(_mm512_maskz_loadu_epi8(mask64(nc), data + r * K + c), _mm512_set1_ps(scale_of(W, r, c)), f);
        const __m512 pi = _mm512_set1_ps(p[i]);
#pragma GCC unroll 4
        for (int a = 0; a < 4; ++a) acc[a] = _mm512_fmadd_ps(pi, f[a], acc[a]);
      }
#pragma GCC unroll 4
      for (int a = 0; a < 4; ++a)
        if (a < groups) _mm512_storeu_ps(dst + c + 16 * a, acc[a]);
    }
  }
}

// out[i] = x · W[r0 + i] for i < n: per row one accumulator over the columns in steps of 16,
// then its 16 lanes summed in order from 0.0f (dot_rows' order), 16 rows per vector addition
// after a transpose (a scalar chain of 16 additions per row before: full-depth V2-Lite FP8 batch
// 1 +0.8%, ahead in 5 of 6 rounds alternated in one process). W.cols a multiple of 16.
void fp8_dot_rows_avx512vbmi(const WeightMatrix& W, int64_t r0, int64_t n, const float* x, float* out) {
  const int64_t K = W.cols;
  const uint8_t* data = static_cast<const uint8_t*>(W.data);
  constexpr int kRows = 4;  // independent accumulator chains
  __m512 acc16[16];   // the accumulators of rows [b16, b16 + 16)
  int64_t b16 = 0;
  for (int64_t i0 = 0; i0 < n; i0 += kRows) {
    const int64_t m = std::min<int64_t>(kRows, n - i0);
    __m512 acc[kRows];
#pragma GCC unroll 4
    for (int t = 0; t < kRows; ++t) acc[t] = _mm512_setzero_ps();
    for (int64_t c = 0; c < K; c += 64) {
      const int64_t nc = std::min<int64_t>(64, K - c), groups = nc / 16;
      __m512 xv[4];
#pragma GCC unroll 4
      for (int a = 0; a < 4; ++a) xv[a] = a < groups ? _mm512_loadu_ps(x + c + 16 * a) : _mm512_setzero_ps();
      for (int64_t r = r0 + i0 + kRows; r < r0 + std::min(n, i0 + 2 * kRows); ++r)  // the next group
        _mm_prefetch(reinterpret_cast<const char*>(data + r * K + c), _MM_HINT_T0);
#pragma GCC unroll 4
      for (int t = 0; t < kRows; ++t) {
        if (t >= m) break;
        const int64_t r = r0 + i0 + t;
        __m512 f[4];
        widen64(_mm512_maskz_loadu_epi8(mask64(nc), data + r * K + c), _mm512_set1_ps(scale_of(W, r, c)), f);
        if (groups == 4) [[likely]] {
#pragma GCC unroll 4
          for (int a = 0; a < 4; ++a) acc[t] = _mm512_fmadd_ps(xv[a], f[a], acc[t]);
        } else {
          for (int a = 0; a < groups; ++a) acc[t] = _mm512_fmadd_ps(xv[a], f[a], acc[t]);
        }
      }
    }
#pragma GCC unroll 4
    for (int t = 0; t < kRows; ++t) acc16[i0 - b16 + t] = acc[t];  // rows past n: zeros, unstored
    if (i0 + kRows >= std::min(n, b16 + 16)) {  // a block of 16 rows (or the last rows) is done
      const int64_t nb = std::min<int64_t>(16, n - b16);
      for (int64_t i = nb; i < 16; ++i) acc16[i] = _mm512_setzero_ps();
      transpose16(acc16);  // acc16[l]: lane l of every row
      __m512 s = _mm512_setzero_ps();
#pragma GCC unroll 16
      for (int l = 0; l < 16; ++l) s = _mm512_add_ps(s, acc16[l]);
      _mm512_mask_storeu_ps(out + b16, __mmask16((1u << nb) - 1), s);
      b16 += 16;
    }
  }
}

void fp8_to_f32_avx512vbmi(const uint8_t* in, float* out, int64_t n, float scale) {
  const __m512 s = _mm512_set1_ps(scale);
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) fp8x64(_mm512_loadu_si512(in + i), s, out + i, ~__mmask64(0));
  if (i < n) {
    const __mmask64 k = (__mmask64(1) << (n - i)) - 1;  // n - i < 64
    fp8x64(_mm512_maskz_loadu_epi8(k, in + i), s, out + i, k);
  }
}

// Codes times per-group scales rounded to BF16 (convert.h's fp8e4m3_to_bf16: the F32 product
// rounded to nearest even), for the FP8 latent cache's rows (KVPool::load_bf16): widen64's F32
// products rounded by vcvtne2ps2bf16, 64 codes per step — ~30 instructions against ~70 for
// fp8_to_f32 followed by f32_to_bf16's integer rounding. vcvtne2ps2bf16 flushes subnormal
// inputs; the products have none when |scale| >= 2^-117 (the smallest nonzero code is 2^-9),
// and a group with another scale (subnormal products possible, zero, NaN) takes the two-pass
// route: the same bits either way (tests/kernels/convert_test.cpp). Needs AVX512_BF16 as well.
void fp8_to_bf16_avx512vbmi(const uint8_t* in, uint16_t* out, int64_t n, const float* scales, int64_t group) {
  for (int64_t g0 = 0; g0 < n; g0 += group) {
    const int64_t g1 = std::min(n, g0 + group);
    const float scale = scales[g0 / group];
    if (!(std::fabs(scale) >= 0x1p-117f)) {
      fp8_to_bf16_two_pass(fp8_to_f32_avx512vbmi, f32_to_bf16_avx512, in + g0, out + g0, g1 - g0, &scale, group);
      continue;
    }
    const __m512 s = _mm512_set1_ps(scale);
    for (int64_t i = g0; i < g1; i += 64) {
      const int64_t m = g1 - i;
      __m512 f[4];
      widen64(m >= 64 ? _mm512_loadu_si512(in + i) : _mm512_maskz_loadu_epi8(mask64(m), in + i), s, f);
      const __m512i lo = __m512i(_mm512_cvtne2ps_pbh(f[1], f[0]));  // codes 0..31 in order
      const __m512i hi = __m512i(_mm512_cvtne2ps_pbh(f[3], f[2]));  // codes 32..63
      if (m >= 64) {
        _mm512_storeu_si512(out + i, lo);
        _mm512_storeu_si512(out + i + 32, hi);
      } else {
        const __mmask64 k = mask64(m);
        _mm512_mask_storeu_epi16(out + i, __mmask32(k), lo);
        _mm512_mask_storeu_epi16(out + i + 32, __mmask32(k >> 32), hi);
      }
    }
  }
}

}  // namespace qs::cpu
