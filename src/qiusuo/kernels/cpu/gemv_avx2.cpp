// Streaming GEMV, AVX2 + FMA + F16C: y[M, r0:r1] = x[M, cols] · W[r0:r1, cols]ᵀ (exact F32).
//
// Same design as gemv_avx512.cpp with 32-byte blocks (P = 8 F32, 16 BF16/F16 or 32 FP8
// columns) and 16 ymm registers, so at most 4 rows of x per pass over the weights (M > 4:
// chunks of 4 inside tiles of kTile weight rows, later chunks hitting L2):
//   - x is packed per thread into [block][MC][P] order, permuted to match the widening and
//     zero-padded past `cols`;
//   - per block, each of the R rows of a register tile is widened to F32 once and FMA'd with
//     the MC x vectors (R*MC ymm accumulators);
//   - the next tile's rows are prefetched in software (rows are short streams, and the
//     hardware prefetchers stop at 4 KB pages);
//   - widening without shuffles: BF16 even/odd elements = v32 << 16 / v32 & 0xFFFF0000; FP8
//     E4M3 -> the F16 of its bits (value * 2^-8): even bytes ((v << 8) >>a 1) & 0xBFFF, odd
//     bytes (v >>a 1) & 0xBF80, then vcvtph2ps; the 2^8 is folded into the block scale, which
//     multiplies the widened weights (exactly the reference's fp8 * scale_inv, and the same
//     arithmetic for every M);
//   - the last partial block of a row is copied to a zeroed 32-byte buffer.
// NaN FP8 codes (0x7F, 0xFF) are not special-cased: checkpoints hold none.
#include <immintrin.h>

#include <algorithm>
#include <type_traits>
#include <cstring>

#include "qiusuo/kernels/cpu/cpu_kernels.h"
#include "qiusuo/kernels/cpu/isa_scratch.h"

namespace qs::cpu {
namespace {

constexpr int64_t kBlock = WeightMatrix::kBlock;
constexpr int kMaxMC = 4;
constexpr int64_t kTile = 12;  // weight rows per tile when M > 4 (a multiple of every R below)

inline __m256 load_x(const float* x, int64_t n) {  // x[0, n) zero-extended to 8 lanes
  if (n >= 8) return _mm256_loadu_ps(x);
  if (n <= 0) return _mm256_setzero_ps();
  const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_maskload_ps(x, _mm256_cmpgt_epi32(_mm256_set1_epi32(int(n)), lanes));
}

// Even/odd split of 16 floats: even = x[0, 2, .., 14], odd = x[1, 3, .., 15].
inline void split_even_odd(__m256 a, __m256 b, __m256* even, __m256* odd) {
  const __m256 e = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));  // a0 a2 b0 b2 | a4 a6 b4 b6
  const __m256 o = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
  *even = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), _MM_SHUFFLE(3, 1, 2, 0)));
  *odd = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(o), _MM_SHUFFLE(3, 1, 2, 0)));
}

// One 32-byte block of a weight row: V ymm of F32, P = 8 V columns.
template <DType D> struct Line;

template <> struct Line<DType::F32> {
  using T = float;
  static constexpr int V = 1, P = 8;
  static void widen(__m256i v, __m256* f) { f[0] = _mm256_castsi256_ps(v); }
  static void pack(const float* x, int64_t n, float* out) { _mm256_storeu_ps(out, load_x(x, n)); }
};

template <> struct Line<DType::BF16> {
  using T = uint16_t;
  static constexpr int V = 2, P = 16;
  static void widen(__m256i v, __m256* f) {
    f[0] = _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
    f[1] = _mm256_castsi256_ps(_mm256_and_si256(v, _mm256_set1_epi32(int(0xFFFF0000))));
  }
  static void pack(const float* x, int64_t n, float* out) {
    __m256 e, o;
    split_even_odd(load_x(x, n), load_x(x + 8, n - 8), &e, &o);
    _mm256_storeu_ps(out, e);
    _mm256_storeu_ps(out + 8, o);
  }
};

template <> struct Line<DType::F16> {
  using T = uint16_t;
  static constexpr int V = 2, P = 16;
  static void widen(__m256i v, __m256* f) {
    f[0] = _mm256_cvtph_ps(_mm256_castsi256_si128(v));
    f[1] = _mm256_cvtph_ps(_mm256_extracti128_si256(v, 1));
  }
  static void pack(const float* x, int64_t n, float* out) {
    _mm256_storeu_ps(out, load_x(x, n));
    _mm256_storeu_ps(out + 8, load_x(x + 8, n - 8));
  }
};

template <> struct Line<DType::F8_E4M3> {
  using T = uint8_t;
  static constexpr int V = 4, P = 32;
  // f = [bytes 0,2,..,14], [16,18,..,30], [1,3,..,15], [17,19,..,31], as F32 times 2^-8.
  static void widen(__m256i v, __m256* f) {
    const __m256i even = _mm256_and_si256(_mm256_srai_epi16(_mm256_slli_epi16(v, 8), 1),
                                          _mm256_set1_epi16(int16_t(0xBFFF)));
    const __m256i odd = _mm256_and_si256(_mm256_srai_epi16(v, 1), _mm256_set1_epi16(int16_t(0xBF80)));
    f[0] = _mm256_cvtph_ps(_mm256_castsi256_si128(even));
    f[1] = _mm256_cvtph_ps(_mm256_extracti128_si256(even, 1));
    f[2] = _mm256_cvtph_ps(_mm256_castsi256_si128(odd));
    f[3] = _mm256_cvtph_ps(_mm256_extracti128_si256(odd, 1));
  }
  static void pack(const float* x, int64_t n, float* out) {
    __m256 e0, o0, e1, o1;
    split_even_odd(load_x(x, n), load_x(x + 8, n - 8), &e0, &o0);
    split_even_odd(load_x(x + 16, n - 16), load_x(x + 24, n - 24), &e1, &o1);
    _mm256_storeu_ps(out, e0);
    _mm256_storeu_ps(out + 8, e1);
    _mm256_storeu_ps(out + 16, o0);
    _mm256_storeu_ps(out + 24, o1);
  }
};

// Weight rows per register tile: accumulators + V widened vectors + x + constants in 16 ymm.
template <DType D>
constexpr int rows_for(int mc) {
  const int budget = 12 - Line<D>::V;
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

  __m256 acc[R][MC];
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i)
#pragma GCC unroll 8
    for (int m = 0; m < MC; ++m) acc[i][m] = _mm256_setzero_ps();

  auto block = [&](int64_t j, auto tail) __attribute__((always_inline)) {
    const int64_t c = j * P;
    const float* xb = xp + j * MC * P;
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) _mm_prefetch(reinterpret_cast<const char*>(w[i] + c + ahead), _MM_HINT_T0);
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) {
      __m256i v;
      if constexpr (decltype(tail)::value) {
        alignas(32) T buf[P] = {};
        std::memcpy(buf, w[i] + c, size_t(cols - c) * sizeof(T));
        v = _mm256_load_si256(reinterpret_cast<const __m256i*>(buf));
      } else {
        v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[i] + c));
      }
      __m256 f[V];
      L::widen(v, f);
      if constexpr (kFp8) {
        const __m256 s = _mm256_set1_ps(srow[i][c / kBlock] * 256.0f);
#pragma GCC unroll 4
        for (int q = 0; q < V; ++q) f[q] = _mm256_mul_ps(f[q], s);
      }
#pragma GCC unroll 4
      for (int q = 0; q < V; ++q)
#pragma GCC unroll 8
        for (int m = 0; m < MC; ++m) {
          const __m256 xv = _mm256_loadu_ps(xb + m * P + q * 8);
          acc[i][m] = _mm256_fmadd_ps(f[q], xv, acc[i][m]);
        }
    }
  };

  for (int64_t j = 0; j < nfull; ++j) block(j, std::false_type{});
  if (nfull < nblk) block(nfull, std::true_type{});

#pragma GCC unroll 8
  for (int m = 0; m < MC; ++m)
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) {
      const __m256 v = acc[i][m];
      __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
      s = _mm_add_ps(s, _mm_movehl_ps(s, s));
      s = _mm_add_ss(s, _mm_movehdup_ps(s));
      y[m * ldy + r + i] = _mm_cvtss_f32(s);
    }
}

}  // namespace

#define QS_GEMV_ISA avx2
#include "qiusuo/kernels/cpu/gemv_driver.inc"
#undef QS_GEMV_ISA

}  // namespace qs::cpu
