// Streaming GEMV, AVX-512: y[M, r0:r1] = x[M, cols] · W[r0:r1, cols]ᵀ (exact F32 math).
//
// Weights are consumed in blocks of one 64-byte line per row (P = 16 F32, 32 BF16/F16 or 64 FP8
// columns). A register tile is R weight rows × MC rows of x (R*MC zmm accumulators): per block
// each of the R rows is loaded once and widened to F32 in registers, then FMA'd with the MC x
// vectors, so the weights stream from memory exactly once for M <= 8 (M > 8: chunks of 8 rows
// of x inside tiles of kTile weight rows, later chunks hitting L2). Each row is a short stream
// (4 KB for 2048 BF16 columns) and the hardware prefetchers stop at 4 KB pages, so the next
// tile's rows are prefetched in software, one line per row per block.
//
// x is first packed (per thread, a few KB) into [block][MC][P] order, permuted to match the
// widening below, zero-padded past `cols`: the x loads are then sequential, free of 4 KB
// aliasing between rows of x, and the last partial block needs only masked weight loads.
//
// Widening a 64-byte line without shuffles (the 16-bit lanes v hold pairs of elements):
//   BF16: F32 of even elements = v32 << 16, of odd elements = v32 & 0xFFFF0000.
//   FP8 E4M3: the F16 with E4M3's sign/exponent/mantissa bits, whose value is the E4M3 value
//   times 2^-8 (subnormals too), is ((b << 8) >>arith 1) & 0xBFFF; for even bytes that is
//   ((v << 8) >>a 1) & 0xBFFF, for odd bytes (v >>a 1) & 0xBF80; then vcvtph2ps. The 2^8 is
//   folded into the 128x128 block scale, which multiplies the widened weights: w rounds exactly
//   as the reference fp8 * scale_inv, and every output element's arithmetic is the same for
//   every M (linear() relies on it: batch invariance).
//   F16: two vcvtph2ps; F32: as is.
// NaN FP8 codes (0x7F, 0xFF) are not special-cased: checkpoints hold none.
//
// GCC 12 warns about the deliberately undefined vectors inside its own AVX-512 intrinsics
// (_mm512_undefined_*, GCC PR105593); the warnings point into immintrin.h, not at this code.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <type_traits>

#include "qiusuo/kernels/cpu/cpu_kernels.h"
#include "qiusuo/kernels/cpu/isa_scratch.h"

namespace qs::cpu {
namespace {

constexpr int64_t kBlock = WeightMatrix::kBlock;
constexpr int kMaxMC = 8;
constexpr int64_t kTile = 12;  // weight rows per tile when M > 8 (a multiple of every R below)

inline __mmask32 mask32(int64_t n) { return n >= 32 ? ~__mmask32(0) : (__mmask32(1) << n) - 1; }
inline __mmask64 mask64(int64_t n) { return n >= 64 ? ~__mmask64(0) : (__mmask64(1) << n) - 1; }
inline __mmask16 mask16(int64_t n) {  // lanes < n, n may be <= 0
  return n >= 16 ? __mmask16(0xffff) : n <= 0 ? __mmask16(0) : __mmask16((1u << n) - 1);
}

// One 64-byte line of a weight row: V zmm of F32, P = 16 V columns.
template <DType D> struct Line;

template <> struct Line<DType::F32> {
  using T = float;
  static constexpr int V = 1, P = 16;
  static void load(const T* p, __m512* f) { f[0] = _mm512_loadu_ps(p); }
  static void load(const T* p, int64_t n, __m512* f) { f[0] = _mm512_maskz_loadu_ps(mask16(n), p); }
  static void pack(const float* x, int64_t n, float* out) {  // identity order
    _mm512_storeu_ps(out, _mm512_maskz_loadu_ps(mask16(n), x));
  }
};

// Even/odd split of 32 floats: out[0:16] = x[0, 2, .., 30], out[16:32] = x[1, 3, .., 31].
inline void split_even_odd(__m512 a, __m512 b, __m512* even, __m512* odd) {
  const __m512i ie = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i io = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
  *even = _mm512_permutex2var_ps(a, ie, b);
  *odd = _mm512_permutex2var_ps(a, io, b);
}

template <> struct Line<DType::BF16> {
  using T = uint16_t;
  static constexpr int V = 2, P = 32;
  static void widen(__m512i v, __m512* f) {
    f[0] = _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));                              // even
    f[1] = _mm512_castsi512_ps(_mm512_and_si512(v, _mm512_set1_epi32(int(0xFFFF0000))));  // odd
  }
  static void load(const T* p, __m512* f) { widen(_mm512_loadu_si512(p), f); }
  static void load(const T* p, int64_t n, __m512* f) { widen(_mm512_maskz_loadu_epi16(mask32(n), p), f); }
  static void pack(const float* x, int64_t n, float* out) {
    const __m512 a = _mm512_maskz_loadu_ps(mask16(n), x), b = _mm512_maskz_loadu_ps(mask16(n - 16), x + 16);
    __m512 e, o;
    split_even_odd(a, b, &e, &o);
    _mm512_storeu_ps(out, e);
    _mm512_storeu_ps(out + 16, o);
  }
};

template <> struct Line<DType::F16> {
  using T = uint16_t;
  static constexpr int V = 2, P = 32;
  static void widen(__m512i v, __m512* f) {
    f[0] = _mm512_cvtph_ps(_mm512_castsi512_si256(v));
    f[1] = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(v, 1));
  }
  static void load(const T* p, __m512* f) { widen(_mm512_loadu_si512(p), f); }
  static void load(const T* p, int64_t n, __m512* f) { widen(_mm512_maskz_loadu_epi16(mask32(n), p), f); }
  static void pack(const float* x, int64_t n, float* out) {  // identity order
    _mm512_storeu_ps(out, _mm512_maskz_loadu_ps(mask16(n), x));
    _mm512_storeu_ps(out + 16, _mm512_maskz_loadu_ps(mask16(n - 16), x + 16));
  }
};

template <> struct Line<DType::F8_E4M3> {
  using T = uint8_t;
  static constexpr int V = 4, P = 64;
  // f = [bytes 0,2,..,30], [32,34,..,62], [1,3,..,31], [33,35,..,63], as F32 times 2^-8.
  static void widen(__m512i v, __m512* f) {
    const __m512i even = _mm512_and_si512(_mm512_srai_epi16(_mm512_slli_epi16(v, 8), 1),
                                          _mm512_set1_epi16(int16_t(0xBFFF)));
    const __m512i odd = _mm512_and_si512(_mm512_srai_epi16(v, 1), _mm512_set1_epi16(int16_t(0xBF80)));
    f[0] = _mm512_cvtph_ps(_mm512_castsi512_si256(even));
    f[1] = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(even, 1));
    f[2] = _mm512_cvtph_ps(_mm512_castsi512_si256(odd));
    f[3] = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(odd, 1));
  }
  static void load(const T* p, __m512* f) { widen(_mm512_loadu_si512(p), f); }
  static void load(const T* p, int64_t n, __m512* f) { widen(_mm512_maskz_loadu_epi8(mask64(n), p), f); }
  static void pack(const float* x, int64_t n, float* out) {
    __m512 e0, o0, e1, o1;
    split_even_odd(_mm512_maskz_loadu_ps(mask16(n), x), _mm512_maskz_loadu_ps(mask16(n - 16), x + 16), &e0, &o0);
    split_even_odd(_mm512_maskz_loadu_ps(mask16(n - 32), x + 32), _mm512_maskz_loadu_ps(mask16(n - 48), x + 48), &e1, &o1);
    _mm512_storeu_ps(out, e0);
    _mm512_storeu_ps(out + 16, e1);
    _mm512_storeu_ps(out + 32, o0);
    _mm512_storeu_ps(out + 48, o1);
  }
};

// Weight rows per register tile: accumulators + V widened vectors + x + constants within the
// 32 zmm registers, R <= 4.
template <DType D>
constexpr int rows_for(int mc) {
  const int budget = 27 - Line<D>::V;
  return std::clamp(budget / mc, 1, 4);
}

// y[m*ldy + r + i] for i < R, m < MC from packed x (xp[block][MC][P]).
template <DType D, int R, int MC>
inline void tile(const float* xp, const WeightMatrix& W, int64_t r, float* y, int64_t ldy) {
  using L = Line<D>;
  using T = typename L::T;
  constexpr int V = L::V, P = L::P;
  constexpr bool kFp8 = D == DType::F8_E4M3;
  const int64_t cols = W.cols;
  const int64_t nfull = cols / P, nblk = (cols + P - 1) / P;
  const T* w[R];
  const float* srow[R] = {};
  for (int i = 0; i < R; ++i) {
    w[i] = static_cast<const T*>(W.data) + (r + i) * cols;
    if constexpr (kFp8) srow[i] = W.scale_inv + ((r + i) / kBlock) * W.scale_cols();
  }
  const int64_t ahead = R * cols;  // same column, next tile

  __m512 acc[R][MC];
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i)
#pragma GCC unroll 8
    for (int m = 0; m < MC; ++m) acc[i][m] = _mm512_setzero_ps();

  // One block (line) j of all R rows; n < P valid columns in the last partial block.
  auto block = [&](int64_t j, auto masked, int64_t n) __attribute__((always_inline)) {
    const int64_t c = j * P;
    const float* xb = xp + j * MC * P;
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) _mm_prefetch(reinterpret_cast<const char*>(w[i] + c + ahead), _MM_HINT_T0);
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) {
      __m512 f[V];
      if constexpr (decltype(masked)::value) L::load(w[i] + c, n, f);
      else L::load(w[i] + c, f);
      if constexpr (kFp8) {
        const __m512 s = _mm512_set1_ps(srow[i][c / kBlock] * 256.0f);
#pragma GCC unroll 4
        for (int v = 0; v < V; ++v) f[v] = _mm512_mul_ps(f[v], s);
      }
#pragma GCC unroll 4
      for (int v = 0; v < V; ++v)
#pragma GCC unroll 8
        for (int m = 0; m < MC; ++m) {
          const __m512 xv = _mm512_loadu_ps(xb + m * P + v * 16);
          acc[i][m] = _mm512_fmadd_ps(f[v], xv, acc[i][m]);
        }
    }
  };

  for (int64_t j = 0; j < nfull; ++j) block(j, std::false_type{}, P);
  if (nfull < nblk) block(nfull, std::true_type{}, cols - nfull * P);

#pragma GCC unroll 8
  for (int m = 0; m < MC; ++m)
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) y[m * ldy + r + i] = _mm512_reduce_add_ps(acc[i][m]);
}

}  // namespace

#define QS_GEMV_ISA avx512
#include "qiusuo/kernels/cpu/gemv_driver.inc"
#undef QS_GEMV_ISA

}  // namespace qs::cpu
