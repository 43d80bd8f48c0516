// BF16-compute linear, AVX-512 + AVX512_BF16: y[m][n] = dot_bf16(x row m, W row n) with the
// arithmetic of linear_bf16_scalar.cpp, bit for bit, for every M and tile.
//
// Dot-product formulation: a register tile is MR rows of x times NR rows of W, one zmm
// accumulator per (m, n) whose 16 lanes each hold a pair of columns; per step of 32 columns
// each x row (32 BF16, packed by the caller) and each weight row (32 BF16) is loaded once and
// the MR*NR vdpbf16ps follow. The K walk (steps of 32, in order) and the final lane tree are
// the same for every tile shape, so MR, NR and the split of the rows among threads never change
// a result. Tiles at the edges reuse the last valid row pointer and discard those outputs.
//
// Weights:
//   BF16: read in place (a 64-byte line is one step).
//   FP8 E4M3, M <= 3 (decode): widened in registers: one 64-byte line (two steps) -> F16 of the
//     E4M3 fields (even bytes ((v << 8) >>a 1) & 0xBFFF, odd bytes (v >>a 1) & 0xBF80, as in
//     gemv_avx512.cpp) -> vcvtph2ps (exact; DAZ does not apply to it) -> the upper halves of
//     the F32s are the BF16 of 2^-8 times the value, exact; the 128x128 block scale times 2^8
//     multiplies each block's partial sums (one FMA per accumulator per 128 columns).
//   FP8 with M > 3, F32, F16: panels of output rows are converted once to BF16 in thread-local
//     scratch (FP8 exactly as above, F32/F16 rounded to nearest even), then multiplied by
//     every x tile from L2; FP8 panels keep their block scales.
// Large M: the caller hands out panels of rows sized for L2; within one, x tiles of 4 rows (in
// L1) sweep over the panel's row tiles, so the panel is read from memory once.
// Decode (M <= 3): one x tile; the weights stream from memory once, and the next tile's rows
// are prefetched in software (rows are short streams; the hardware prefetchers stop at 4 KB):
// every line (a BF16 unit is two), non-temporal. Measured on Zen 5 (2 threads, 420 MB head,
// interleaved with the read probe): 0.68-0.75 of the probe with one T0 prefetch per unit, 0.82-0.86
// with both lines NTA; 0.56-0.60 with T1; two tiles ahead no better.
// F32 additions, the block-scale FMAs and the lane tree run under FTZ/DAZ (mxcsr.h), as
// vdpbf16ps itself flushes.
//
// AMX (Sapphire Rapids and later) has AVX512_BF16, so it runs this kernel too: TDPBF16PS sums
// its pairs in another order, and mixing it in for large M would make results depend on M. An
// AMX variant would have to serve every M (decode included) to stay batch-invariant; the hook
// is this file's entry point in the kernel table (cpu/dispatch.cpp).
//
// GCC 12 warns about the deliberately undefined vectors inside its own AVX-512 intrinsics
// (_mm512_undefined_*, GCC PR105593); the warnings point into immintrin.h, not at this code.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
// Compiled twice: as is (linear_bf16_avx512), and by linear_bf16_vbmi_avx512.cpp with
// QS_FP8_VBMI for CPUs with AVX512_VBMI (linear_bf16_avx512vbmi), where FP8 codes are widened
// by byte-table lookups (widen_fp8 below).
#ifdef QS_FP8_VBMI
#pragma GCC target("avx512vbmi")
#define QS_LINEAR_BF16_FN linear_bf16_avx512vbmi
#else
#define QS_LINEAR_BF16_FN linear_bf16_avx512
#endif
#include <immintrin.h>

#include <algorithm>

#include "qiusuo/kernels/cpu/cpu_kernels.h"
#include "qiusuo/kernels/cpu/isa_scratch.h"
#include "qiusuo/kernels/cpu/mxcsr.h"

namespace qs::cpu {
namespace {

constexpr int64_t kBlock = WeightMatrix::kBlock;
constexpr int64_t kUnit = 64;       // columns per unit: two steps of 32
constexpr int kMaxMR = 6;           // x rows per tile
constexpr int kDirectMaxM = 3;      // one x tile: weights streamed (FP8 widened in registers)
constexpr int64_t kBf16InPlaceMaxM = 256;
constexpr size_t kPanelBytes = 256 << 10;  // converted panel (BF16) per thread
constexpr int64_t kKc = 2048;       // K block (columns) for x tiles of many rows: 6 x 4 KB in L1

inline __mmask32 mask32(int64_t n) {  // lanes < n, n may be <= 0
  return n >= 32 ? ~__mmask32(0) : n <= 0 ? __mmask32(0) : (__mmask32(1) << n) - 1;
}
inline __mmask64 mask64(int64_t n) {
  return n >= 64 ? ~__mmask64(0) : n <= 0 ? __mmask64(0) : (__mmask64(1) << n) - 1;
}

inline __m512 dp(__m512 acc, __m512i a, __m512i b) {
  return _mm512_dpbf16_ps(acc, reinterpret_cast<__m512bh>(a), reinterpret_cast<__m512bh>(b));
}

// 64 E4M3 codes -> two vectors of 32 BF16 (columns 0..31, 32..63, natural order), each 2^-8
// times the code's value, exact.
#ifndef QS_FP8_VBMI
inline void widen_fp8(__m512i v, __m512i* w0, __m512i* w1) {
  const __m512i even = _mm512_and_si512(_mm512_srai_epi16(_mm512_slli_epi16(v, 8), 1),
                                        _mm512_set1_epi16(int16_t(0xBFFF)));
  const __m512i odd = _mm512_and_si512(_mm512_srai_epi16(v, 1), _mm512_set1_epi16(int16_t(0xBF80)));
  const __m512i f0 = _mm512_castps_si512(_mm512_cvtph_ps(_mm512_castsi512_si256(even)));      // bytes 0, 2, .., 30
  const __m512i f1 = _mm512_castps_si512(_mm512_cvtph_ps(_mm512_extracti64x4_epi64(even, 1)));  // 32, .., 62
  const __m512i f2 = _mm512_castps_si512(_mm512_cvtph_ps(_mm512_castsi512_si256(odd)));       // 1, 3, .., 31
  const __m512i f3 = _mm512_castps_si512(_mm512_cvtph_ps(_mm512_extracti64x4_epi64(odd, 1)));   // 33, .., 63
  const __mmask32 hi = 0xAAAAAAAAu;  // odd 16-bit lanes: the upper halves of the odd-byte F32s
  *w0 = _mm512_mask_blend_epi16(hi, _mm512_srli_epi32(f0, 16), f2);
  *w1 = _mm512_mask_blend_epi16(hi, _mm512_srli_epi32(f1, 16), f3);
}
#else
// The BF16 bits of 2^-8 times the value of E4M3 magnitude c (0..127): the F16 (c << 7) that the
// version above converts, as BF16 (its 3 mantissa bits fit): exponent e = c >> 3, mantissa m.
// c = 0x7F, E4M3's NaN, maps to 1.875 as above.
constexpr uint16_t fp8_bf16_bits(int c) {
  const int e = c >> 3, m = c & 7;
  if (e > 0) return uint16_t((e + 112) << 7 | m << 4);  // (1 + m/8) 2^(e-15)
  if (m == 0) return 0;
  const int p = m >= 4 ? 2 : m >= 2 ? 1 : 0;  // m 2^-17 = (m / 2^p) 2^(p-17)
  return uint16_t((p + 110) << 7 | ((m - (1 << p)) << (7 - p)));
}
struct Fp8Bytes {
  alignas(64) uint8_t lo[128], hi[128];
};
constexpr Fp8Bytes fp8_bytes() {
  Fp8Bytes t{};
  for (int c = 0; c < 128; ++c) {
    t.lo[c] = uint8_t(fp8_bf16_bits(c) & 0xFF);
    t.hi[c] = uint8_t(fp8_bf16_bits(c) >> 8);
  }
  return t;
}
alignas(64) constexpr Fp8Bytes kFp8Bytes = fp8_bytes();
// Codes permuted so that the in-lane byte interleave below yields natural order: 128-bit lane L
// holds codes 8L..8L+7 (-> w0) then 32+8L..32+8L+7 (-> w1).
alignas(64) constexpr uint8_t kFp8Order[64] = {
    0,  1,  2,  3,  4,  5,  6,  7,  32, 33, 34, 35, 36, 37, 38, 39, 8,  9,  10, 11, 12, 13,
    14, 15, 40, 41, 42, 43, 44, 45, 46, 47, 16, 17, 18, 19, 20, 21, 22, 23, 48, 49, 50, 51,
    52, 53, 54, 55, 24, 25, 26, 27, 28, 29, 30, 31, 56, 57, 58, 59, 60, 61, 62, 63};
// The same bits as the cvtph_ps version from 6 instructions instead of ~17: a byte permute, two
// 128-entry byte lookups (low and high byte of each BF16, the code's low 7 bits as the index),
// the sign bit, two interleaves. Full-depth V2-Lite FP8 batch-1 decode +14% on Zen 5.
inline void widen_fp8(__m512i v, __m512i* w0, __m512i* w1) {
  const __m512i p = _mm512_permutexvar_epi8(_mm512_load_si512(kFp8Order), v);
  const __m512i lo = _mm512_permutex2var_epi8(_mm512_load_si512(kFp8Bytes.lo), p, _mm512_load_si512(kFp8Bytes.lo + 64));
  __m512i hi = _mm512_permutex2var_epi8(_mm512_load_si512(kFp8Bytes.hi), p, _mm512_load_si512(kFp8Bytes.hi + 64));
  hi = _mm512_ternarylogic_epi32(hi, p, _mm512_set1_epi8(int8_t(0x80)), 0xF8);  // hi | (p & 0x80)
  *w0 = _mm512_unpacklo_epi8(lo, hi);
  *w1 = _mm512_unpackhi_epi8(lo, hi);
}
#endif

// 16 F32 -> 16 BF16 (low halves of 16 u32), nearest even, NaN -> quiet NaN (as core/dtype.h).
inline __m512i to_bf16x16(__m512 f) {
  const __m512i u = _mm512_castps_si512(f);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  const __m512i rounded =
      _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff))), 16);
  const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)),
                                                _mm512_set1_epi32(0x7f800000));
  return _mm512_mask_mov_epi32(rounded, nan, _mm512_or_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40)));
}

// Rows [r0, r1) of W as BF16 into out[(r - r0) * ldo + c] for c < Kp (a multiple of kUnit),
// zeros from W.cols on. FP8: 2^-8 times the value (scales applied later).
void convert_rows(const WeightMatrix& W, int64_t r0, int64_t r1, int64_t Kp, uint16_t* out, int64_t ldo) {
  const int64_t K = W.cols;
  for (int64_t r = r0; r < r1; ++r) {
    uint16_t* o = out + (r - r0) * ldo;
    switch (W.dtype) {
      case DType::F8_E4M3: {
        const uint8_t* w = static_cast<const uint8_t*>(W.data) + r * K;
        for (int64_t c = 0; c < Kp; c += kUnit) {
          __m512i w0, w1;
          widen_fp8(_mm512_maskz_loadu_epi8(mask64(K - c), w + c), &w0, &w1);
          _mm512_storeu_si512(o + c, w0);
          _mm512_storeu_si512(o + c + 32, w1);
        }
        break;
      }
      case DType::BF16: {
        const uint16_t* w = static_cast<const uint16_t*>(W.data) + r * K;
        for (int64_t c = 0; c < Kp; c += 32) _mm512_storeu_si512(o + c, _mm512_maskz_loadu_epi16(mask32(K - c), w + c));
        break;
      }
      default:
        for (int64_t c = 0; c < Kp; c += 16) {
          const __mmask16 k = __mmask16(mask32(K - c));
          __m512 f;
          if (W.dtype == DType::F32) f = _mm512_maskz_loadu_ps(k, static_cast<const float*>(W.data) + r * K + c);
          else f = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(k, static_cast<const uint16_t*>(W.data) + r * K + c));
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + c), _mm512_cvtepi32_epi16(to_bf16x16(f)));
        }
        break;
    }
  }
}

// ---- lane tree -------------------------------------------------------------------------------
// Up to 16 accumulators reduced at once, each by s8[l] = a[l] + a[l+8], s4 = s8[l] + s8[l+4],
// s2 = s4[l] + s4[l+2], s1 = s2[0] + s2[1] (the tree of the scalar reference): out[i] = sum of
// acc[i] (unused slots are zero vectors).
inline __m512 tree_l1(__m512 a, __m512 b) {  // [a s8 | b s8]
  return _mm512_add_ps(_mm512_shuffle_f32x4(a, b, 0x44), _mm512_shuffle_f32x4(a, b, 0xEE));
}
inline __m512 tree_l2(__m512 u, __m512 w) {  // quarters: s4 of 4 accumulators
  return _mm512_add_ps(_mm512_shuffle_f32x4(u, w, 0x88), _mm512_shuffle_f32x4(u, w, 0xDD));
}
inline __m512 tree_l3(__m512 p, __m512 q) {  // per quarter: [p s2_0, p s2_1, q s2_0, q s2_1]
  return _mm512_add_ps(_mm512_shuffle_ps(p, q, 0x44), _mm512_shuffle_ps(p, q, 0xEE));
}
inline __m512 tree_l4(__m512 r, __m512 t) {  // per quarter: 4 sums
  return _mm512_add_ps(_mm512_shuffle_ps(r, t, 0x88), _mm512_shuffle_ps(r, t, 0xDD));
}
// acc[0..16) -> out[0..16).
inline void reduce16(const __m512* acc, float* out) {
  __m512 v[8], u[4], w[2];
#pragma GCC unroll 8
  for (int i = 0; i < 8; ++i) v[i] = tree_l1(acc[2 * i], acc[2 * i + 1]);
#pragma GCC unroll 8
  for (int j = 0; j < 4; ++j) u[j] = tree_l2(v[2 * j], v[2 * j + 1]);
  w[0] = tree_l3(u[0], u[1]);
  w[1] = tree_l3(u[2], u[3]);
  alignas(64) float t[16];
  _mm512_store_ps(t, tree_l4(w[0], w[1]));  // t[4q + e] = sum of acc[q + 4e]
#pragma GCC unroll 16
  for (int i = 0; i < 16; ++i) out[i] = t[4 * (i % 4) + i / 4];
}

// ---- microkernel -------------------------------------------------------------------------------
// Weight rows in place as BF16, or as FP8 codes (widened here).
template <typename T>
struct Src;
template <>
struct Src<uint16_t> {
  static constexpr bool kFp8 = false;
};
template <>
struct Src<uint8_t> {
  static constexpr bool kFp8 = true;
};

// Weight rows per tile for MR rows of x: accumulators (x2 with block scales in registers), x
// vectors and widening temporaries within the 32 zmm registers.
template <typename T, bool kScaled>
constexpr int nr_for(int mr) {
  if constexpr (Src<T>::kFp8) return mr == 1 ? 8 : mr == 2 ? 4 : 2;
  else if constexpr (kScaled) return mr == 1 ? 8 : mr == 2 ? 6 : mr == 3 ? 4 : mr == 4 ? 3 : 2;
  else return mr <= 3 ? 8 : mr == 4 ? 6 : mr == 5 ? 5 : 4;
}

struct Tile {
  const uint16_t* x[kMaxMR];   // x rows (BF16, padded to a multiple of kUnit)
  const void* w[8];            // weight rows (T)
  const float* s[8];           // FP8 scale rows (scale_inv + (row / 128) * scale_cols)
  float* y;                    // y[m * ldy + i] for m < mvalid, i < nvalid
  int64_t ldy, K, prefetch;    // prefetch: elements ahead (0: none)
  int64_t u0, u1;              // units [u0, u1) of this call (a K block; kUnit columns each)
  float* state;                // MR*NR accumulators (16 floats each) kept between K blocks
  bool first, last;            // first: start from zero (else load state); last: reduce into y
  int mvalid, nvalid;
};

template <typename T, bool kScaled, int MR>
void micro(const Tile& t) {
  constexpr int NR = nr_for<T, kScaled>(MR);
  constexpr bool kFp8 = Src<T>::kFp8;
  const int64_t K = t.K, nfull = K / kUnit, nunits = (K + kUnit - 1) / kUnit;
  // Locals, not t's fields: the state stores below could alias them for the compiler.
  const T* w[NR];
  const uint16_t* xr[MR];
  const float* sr[kScaled ? NR : 1];
#pragma GCC unroll 8
  for (int i = 0; i < NR; ++i) w[i] = static_cast<const T*>(t.w[i]);
#pragma GCC unroll 8
  for (int m = 0; m < MR; ++m) xr[m] = t.x[m];
  if constexpr (kScaled) {
#pragma GCC unroll 8
    for (int i = 0; i < NR; ++i) sr[i] = t.s[i];
  }
  const int64_t pf = t.prefetch;
  __m512 acc[MR * NR], part[kScaled ? MR * NR : 1];
  float* const state = t.state;
  if (t.first) {
#pragma GCC unroll 24
    for (int i = 0; i < MR * NR; ++i) acc[i] = _mm512_setzero_ps();
  } else {
#pragma GCC unroll 24
    for (int i = 0; i < MR * NR; ++i) acc[i] = _mm512_load_ps(state + 16 * i);
  }
  auto clear_part = [&] __attribute__((always_inline)) {
    if constexpr (kScaled) {
#pragma GCC unroll 24
      for (int i = 0; i < MR * NR; ++i) part[i] = _mm512_setzero_ps();
    }
  };
  clear_part();  // K blocks are whole 128-column blocks: partial sums never span two calls
  // The accumulator a step adds to: the block's partial sum when scaled.
  auto target = [&](int i) __attribute__((always_inline)) -> __m512& {
    if constexpr (kScaled) return part[i];
    else return acc[i];
  };

  // One unit (64 columns = 2 steps) u; n < 64 valid weight columns when masked.
  auto unit = [&](int64_t u, auto masked, int64_t n) __attribute__((always_inline)) {
    const int64_t c = u * kUnit;
    if (pf) {  // the next tile's lines of this unit: one for FP8 codes, two for BF16
#pragma GCC unroll 8
      for (int i = 0; i < NR; ++i) {
        _mm_prefetch(reinterpret_cast<const char*>(w[i] + c + pf), _MM_HINT_NTA);
        if constexpr (!kFp8) _mm_prefetch(reinterpret_cast<const char*>(w[i] + c + pf + 32), _MM_HINT_NTA);
      }
    }
    if constexpr (kFp8) {
      __m512i x0[MR], x1[MR];
#pragma GCC unroll 8
      for (int m = 0; m < MR; ++m) {
        x0[m] = _mm512_loadu_si512(xr[m] + c);
        x1[m] = _mm512_loadu_si512(xr[m] + c + 32);
      }
#pragma GCC unroll 8
      for (int i = 0; i < NR; ++i) {
        __m512i w0, w1;
        if constexpr (decltype(masked)::value) widen_fp8(_mm512_maskz_loadu_epi8(mask64(n), w[i] + c), &w0, &w1);
        else widen_fp8(_mm512_loadu_si512(w[i] + c), &w0, &w1);
#pragma GCC unroll 8
        for (int m = 0; m < MR; ++m) {
          target(m * NR + i) = dp(target(m * NR + i), x0[m], w0);
          target(m * NR + i) = dp(target(m * NR + i), x1[m], w1);
        }
      }
    } else {
#pragma GCC unroll 2
      for (int s = 0; s < 2; ++s) {
        __m512i xv[MR];
#pragma GCC unroll 8
        for (int m = 0; m < MR; ++m) xv[m] = _mm512_loadu_si512(xr[m] + c + 32 * s);
#pragma GCC unroll 8
        for (int i = 0; i < NR; ++i) {
          __m512i wv;
          if constexpr (decltype(masked)::value) wv = _mm512_maskz_loadu_epi16(mask32(n - 32 * s), w[i] + c + 32 * s);
          else wv = _mm512_loadu_si512(w[i] + c + 32 * s);
#pragma GCC unroll 8
          for (int m = 0; m < MR; ++m) target(m * NR + i) = dp(target(m * NR + i), xv[m], wv);
        }
      }
    }
    if constexpr (kScaled) {  // end of a 128-column block (2 units) or of the row: fold the scale
      if ((u & 1) || u + 1 == nunits) {
#pragma GCC unroll 8
        for (int i = 0; i < NR; ++i) {
          const __m512 s = _mm512_set1_ps(sr[i][u / 2] * 256.0f);
#pragma GCC unroll 8
          for (int m = 0; m < MR; ++m) acc[m * NR + i] = _mm512_fmadd_ps(part[m * NR + i], s, acc[m * NR + i]);
        }
        clear_part();
      }
    }
  };
  const int64_t ufull = std::min(t.u1, nfull);
  for (int64_t u = t.u0; u < ufull; ++u) unit(u, std::false_type{}, kUnit);
  if (ufull < t.u1) unit(ufull, std::true_type{}, K - ufull * kUnit);  // the row's partial last unit

  if (!t.last) {
#pragma GCC unroll 24
    for (int i = 0; i < MR * NR; ++i) _mm512_store_ps(state + 16 * i, acc[i]);
    return;
  }
  alignas(64) float out[MR * NR + 16];
  for (int g = 0; g < MR * NR; g += 16) {
    __m512 a[16];
#pragma GCC unroll 16
    for (int i = 0; i < 16; ++i) a[i] = g + i < MR * NR ? acc[g + i] : _mm512_setzero_ps();
    reduce16(a, out + g);
  }
  for (int m = 0; m < t.mvalid; ++m)
    for (int i = 0; i < t.nvalid; ++i) t.y[m * t.ldy + i] = out[m * NR + i];
}

// Weight rows [r0, r1) of W, stored at w + (r - r0) * ldw (T), for the M rows of x.
//   stream: one x tile (M <= kDirectMaxM), weights in place and read once, whole rows per call;
//   else: x tiles of up to kMaxMR rows each sweep the rows (held in L2) in K blocks of kKc
//   columns, so that an x tile's block stays in L1; accumulators persist between blocks.
template <typename T, bool kScaled>
void run(const uint16_t* xb, int64_t ldxb, int64_t M, const T* w, int64_t ldw, const WeightMatrix& W,
         int64_t r0, int64_t r1, float* y, int64_t ldy) {
  const int64_t K = W.cols, nunits = (K + kUnit - 1) / kUnit;
  const bool stream = M <= kDirectMaxM;
  const int64_t kb_units = stream ? nunits : kKc / kUnit;
  thread_local IsaScratch<float> state_buf;
  float* state = stream ? nullptr : state_buf.get(size_t(kMaxMR * 8 * ((r1 - r0) + 8) * 16));
  for (int64_t m0 = 0; m0 < M; m0 += kMaxMR) {
    const int mr = int(std::min<int64_t>(kMaxMR, M - m0));
    auto sweep = [&](auto mr_const) {
      constexpr int MR = decltype(mr_const)::value;
      constexpr int NR = nr_for<T, kScaled>(MR);
      Tile t;
      for (int m = 0; m < MR; ++m) t.x[m] = xb + (m0 + std::min(m, mr - 1)) * ldxb;
      t.ldy = ldy;
      t.K = K;
      // Streaming: the next tile's rows (from memory); panels: 512 bytes ahead in the same rows
      // (from L2; measured best on Zen 5 among next-tile, L2-hint and near prefetches) — except
      // the first x tile's sweep over rows read in place, which brings them from memory: the
      // next tile's rows, as streaming does (Zen 5, alternated in one process: BF16-weight
      // prefill in chunks of 256 rows 1.08x, of 32 1.03x, of 8 and 64 within noise; decode
      // attention's scores over a BF16 cache, M = 16 heads, 1.05-1.08x at a 32k context).
      const bool from_memory = w == static_cast<const T*>(W.data) + r0 * ldw;
      t.prefetch = stream || (from_memory && m0 == 0) ? NR * ldw : 256;
      t.mvalid = mr;
      for (int64_t u0 = 0; u0 < nunits; u0 += kb_units) {
        t.u0 = u0;
        t.u1 = std::min(nunits, u0 + kb_units);
        t.first = u0 == 0;
        t.last = t.u1 == nunits;
        for (int64_t r = r0; r < r1; r += NR) {
          t.nvalid = int(std::min<int64_t>(NR, r1 - r));
          for (int i = 0; i < NR; ++i) {
            const int64_t ri = std::min<int64_t>(r + i, r1 - 1);
            t.w[i] = w + (ri - r0) * ldw;
            if constexpr (kScaled) t.s[i] = W.scale_inv + (ri / kBlock) * W.scale_cols();
          }
          t.y = y + m0 * ldy + r;
          t.state = state ? state + (r - r0) * MR * 16 : nullptr;
          micro<T, kScaled, MR>(t);
        }
      }
    };
    switch (mr) {
      case 1: sweep(std::integral_constant<int, 1>{}); break;
      case 2: sweep(std::integral_constant<int, 2>{}); break;
      case 3: sweep(std::integral_constant<int, 3>{}); break;
      default:
        if constexpr (!Src<T>::kFp8) {  // FP8 in place only for M <= kDirectMaxM
          if (mr == 4) sweep(std::integral_constant<int, 4>{});
          else if (mr == 5) sweep(std::integral_constant<int, 5>{});
          else sweep(std::integral_constant<int, 6>{});
        }
        break;
    }
  }
}

}  // namespace

void QS_LINEAR_BF16_FN(const uint16_t* xb, int64_t ldxb, int64_t M, const WeightMatrix& W, int64_t n0, int64_t n1,
                       float* y, int64_t ldy) {
  if (M <= 0 || n1 <= n0) return;
  const FlushDenormals ftz_daz;
  const int64_t K = W.cols;
  // BF16 weights in place up to a few hundred rows of x: copying a panel (to pad its rows off 4 KB
  // multiples) pays only for large M (measured on Zen 5: in place 1.8x faster at M = 8, 1.1x at
  // 128; the copy 1.1x faster at 512).
  if (W.dtype == DType::BF16 && M <= kBf16InPlaceMaxM) {
    run<uint16_t, false>(xb, ldxb, M, static_cast<const uint16_t*>(W.data) + n0 * K, K, W, n0, n1, y, ldy);
    return;
  }
  const bool fp8 = W.dtype == DType::F8_E4M3;
  if (M <= kDirectMaxM && fp8) {
    run<uint8_t, true>(xb, ldxb, M, static_cast<const uint8_t*>(W.data) + n0 * K, K, W, n0, n1, y, ldy);
    return;
  }
  // Panels converted to BF16 once (rows padded off multiples of 4 KB: no L1 set aliasing), then
  // multiplied by every x tile.
  const int64_t Kp = (K + kUnit - 1) / kUnit * kUnit;
  const int64_t ldp = Kp * 2 % 4096 == 0 ? Kp + 32 : Kp;
  const int64_t prows = std::clamp<int64_t>(int64_t(kPanelBytes / (size_t(ldp) * 2)), 8, n1 - n0);
  thread_local IsaScratch<uint16_t> scratch;
  uint16_t* panel = scratch.get(size_t(prows * ldp));
  for (int64_t p0 = n0; p0 < n1; p0 += prows) {
    const int64_t p1 = std::min(n1, p0 + prows);
    convert_rows(W, p0, p1, Kp, panel, ldp);
    if (fp8) run<uint16_t, true>(xb, ldxb, M, panel, ldp, W, p0, p1, y, ldy);
    else run<uint16_t, false>(xb, ldxb, M, panel, ldp, W, p0, p1, y, ldy);
  }
}

}  // namespace qs::cpu
