// BF16-compute linear, AVX2 + FMA + F16C (and AVX-512 CPUs without AVX512_BF16): the same bits
// as vdpbf16ps (linear_bf16_scalar.cpp states the arithmetic) from FMAs under FTZ/DAZ.
//
// A lane pair of vdpbf16ps, acc = F(F(acc + a_odd * w_odd) + a_even * w_even), is two FMAs: the
// BF16 products are exact in F32, so an FMA rounds exactly once where vdpbf16ps rounds, and
// MXCSR's FTZ/DAZ flush as it does. The 16 lanes of an accumulator are two ymm (columns 0..15 and
// 16..31 of a step); the lane tree is s8 = lo + hi, then the halves of s8, and so on.
//
// x (BF16, packed by the caller) is split per tile into F32 odd/even vectors ([step][half]
// [odd 8, even 8]), which the FMAs read from L1 as memory operands. Weights: BF16 read in
// place and split in registers (even = v << 16, odd = v & 0xFFFF0000). FP8 is 2^-8 times the
// value, exactly, through the F16 of its fields (even bytes ((v << 8) >>a 1) & 0xBFFF, odd bytes
// (v >>a 1) & 0xBF80, then vcvtph2ps); its block scales then multiply each block's partial sums.
// FP8 is read in place and widened in registers for every chunk of kMaxMR x rows (converting it
// to BF16 panels first, as F32 and F16 weights still are, was slower for every M: 1.12-1.8x at
// M = 4-512 on Zen 5, 2.9x for the batch-1 head, where the panel was written and read back).
#include <immintrin.h>

#include <algorithm>

#include "qiusuo/kernels/cpu/cpu_kernels.h"
#include "qiusuo/kernels/cpu/isa_scratch.h"
#include "qiusuo/kernels/cpu/mxcsr.h"

namespace qs::cpu {
namespace {

constexpr int64_t kBlock = WeightMatrix::kBlock;
constexpr int64_t kUnit = 64;  // columns per unit (two steps), as the AVX-512 kernel
constexpr int64_t kStep = 32;
constexpr int kMaxMR = 3;
constexpr size_t kPanelBytes = 128 << 10;

// Weight rows per tile (16 ymm: 2 per accumulator, x2 with scales, 2 for the weights).
template <bool kFp8>
constexpr int nr_for(int mr) {
  if constexpr (kFp8) return mr == 1 ? 3 : 1;
  else return mr == 1 ? 4 : 2;
}

// 32 E4M3 codes -> the F16 of 2^-8 times each value (exact), per 16-bit lane k: even = byte
// 2k, odd = byte 2k + 1.
inline void fp8_to_f16_pairs(__m256i v, __m256i* even, __m256i* odd) {
  *even = _mm256_and_si256(_mm256_srai_epi16(_mm256_slli_epi16(v, 8), 1), _mm256_set1_epi16(int16_t(0xBFFF)));
  *odd = _mm256_and_si256(_mm256_srai_epi16(v, 1), _mm256_set1_epi16(int16_t(0xBF80)));
}

// Rows [r0, r1) of W (F32 or F16) as BF16 into out[(r - r0) * ldo + c], zeros from W.cols to ldo.
void convert_rows(const WeightMatrix& W, int64_t r0, int64_t r1, uint16_t* out, int64_t ldo) {
  const int64_t K = W.cols;
  alignas(32) float tmp[kStep];
  for (int64_t r = r0; r < r1; ++r) {
    uint16_t* o = out + (r - r0) * ldo;
    std::fill(o + K, o + ldo, uint16_t(0));
    switch (W.dtype) {
      case DType::F32: f32_to_bf16_avx2(static_cast<const float*>(W.data) + r * K, o, K); break;
      case DType::F16:
        for (int64_t c = 0; c < K; c += kStep) {
          const int64_t n = std::min(kStep, K - c);
          f16_to_f32_avx2(static_cast<const uint16_t*>(W.data) + r * K + c, tmp, n);
          f32_to_bf16_avx2(tmp, o + c, n);
        }
        break;
      default: break;
    }
  }
}

// x rows [MR][Kp] BF16 -> xs[m][step][half][odd 8 | even 8] F32.
void split_x(const uint16_t* const* x, int mr, int64_t Kp, float* xs) {
  for (int m = 0; m < mr; ++m) {
    float* o = xs + m * Kp;
    for (int64_t c = 0; c < Kp; c += 16) {
      const __m256i d = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[m] + c));
      _mm256_storeu_ps(o + c, _mm256_castsi256_ps(_mm256_and_si256(d, _mm256_set1_epi32(int(0xFFFF0000)))));
      _mm256_storeu_ps(o + c + 8, _mm256_castsi256_ps(_mm256_slli_epi32(d, 16)));
    }
  }
}

inline float reduce(__m256 lo, __m256 hi) {
  const __m256 s8 = _mm256_add_ps(lo, hi);
  const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
  const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  return _mm_cvtss_f32(_mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1)));
}

struct Tile {
  const float* x[kMaxMR];  // split x rows
  const uint16_t* w[4];    // BF16 weight rows (FP8 read in place: w8)
  const uint8_t* w8[4];
  const float* s[4];       // FP8 scale rows
  float* y;
  int64_t ldy, K, prefetch;  // prefetch: elements ahead (0: none)
  int mvalid, nvalid;
};

// kFp8: t.w8 holds the FP8 rows, widened here, and each 128-column block's partial sums are
// scaled by its block scale (t.s).
template <bool kFp8, int MR>
void micro(const Tile& t) {
  constexpr int NR = nr_for<kFp8>(MR);
  const int64_t K = t.K, nsteps = (K + kUnit - 1) / kUnit * 2;
  __m256 acc[MR * NR][2], part[kFp8 ? MR * NR : 1][2];
  for (int i = 0; i < MR * NR; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
  auto clear_part = [&] __attribute__((always_inline)) {
    if constexpr (kFp8)
      for (int i = 0; i < MR * NR; ++i) part[i][0] = part[i][1] = _mm256_setzero_ps();
  };
  clear_part();
  auto target = [&](int i, int h) __attribute__((always_inline)) -> __m256& {
    if constexpr (kFp8) return part[i][h];
    else return acc[i][h];
  };
  const __m256i hi_mask = _mm256_set1_epi32(int(0xFFFF0000));
  // Weight row i's half h of the step at column c (odd and even columns as F32) into the
  // accumulators of every x row: the odd columns' FMA, then the even ones' (vdpbf16ps' order).
  auto fma_rows = [&](int i, int h, int64_t c, __m256 w_odd, __m256 w_even) __attribute__((always_inline)) {
#pragma GCC unroll 3
    for (int m = 0; m < MR; ++m) {
      const float* xp = t.x[m] + c + 16 * h;
      __m256& a = target(m * NR + i, h);
      a = _mm256_fmadd_ps(_mm256_loadu_ps(xp), w_odd, a);
      a = _mm256_fmadd_ps(_mm256_loadu_ps(xp + 8), w_even, a);
    }
  };
  for (int64_t j = 0; j < nsteps; ++j) {
    const int64_t c = j * kStep;
    const int64_t n = K - c;  // valid weight columns in this step (may be <= 0 or >= 32)
    if (t.prefetch) {  // the next tile's line of this step
#pragma GCC unroll 4
      for (int i = 0; i < NR; ++i) {
        if constexpr (kFp8) _mm_prefetch(reinterpret_cast<const char*>(t.w8[i] + c + t.prefetch), _MM_HINT_NTA);
        else _mm_prefetch(reinterpret_cast<const char*>(t.w[i] + c + t.prefetch), _MM_HINT_NTA);
      }
    }
    if constexpr (kFp8) {
      // A row's 32 codes of this step: F32 odd / even columns of each half from vcvtph2ps of
      // the F16 pairs' 128-bit halves; the same FMAs in the same order as from a BF16 panel.
#pragma GCC unroll 4
      for (int i = 0; i < NR; ++i) {
        __m256i d;
        if (n >= kStep) {
          d = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(t.w8[i] + c));
        } else {
          alignas(32) uint8_t buf[kStep] = {};
          std::copy(t.w8[i] + c, t.w8[i] + c + std::clamp<int64_t>(n, 0, kStep), buf);
          d = _mm256_load_si256(reinterpret_cast<const __m256i*>(buf));
        }
        __m256i even, odd;
        fp8_to_f16_pairs(d, &even, &odd);
#pragma GCC unroll 2
        for (int h = 0; h < 2; ++h) {
          const __m256 w_odd = _mm256_cvtph_ps(h ? _mm256_extracti128_si256(odd, 1) : _mm256_castsi256_si128(odd));
          const __m256 w_even = _mm256_cvtph_ps(h ? _mm256_extracti128_si256(even, 1) : _mm256_castsi256_si128(even));
          fma_rows(i, h, c, w_odd, w_even);
        }
      }
    } else {
#pragma GCC unroll 2
      for (int h = 0; h < 2; ++h) {
#pragma GCC unroll 4
        for (int i = 0; i < NR; ++i) {
          __m256i d;
          if (n >= kStep) {
            d = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(t.w[i] + c + 16 * h));
          } else {
            alignas(32) uint16_t buf[16] = {};
            const int64_t v = std::clamp<int64_t>(n - 16 * h, 0, 16);
            std::copy(t.w[i] + c + 16 * h, t.w[i] + c + 16 * h + v, buf);
            d = _mm256_load_si256(reinterpret_cast<const __m256i*>(buf));
          }
          const __m256 w_odd = _mm256_castsi256_ps(_mm256_and_si256(d, hi_mask));
          const __m256 w_even = _mm256_castsi256_ps(_mm256_slli_epi32(d, 16));
          fma_rows(i, h, c, w_odd, w_even);
        }
      }
    }
    if constexpr (kFp8) {
      if ((j + 1) % 4 == 0 || j + 1 == nsteps) {
#pragma GCC unroll 4
        for (int i = 0; i < NR; ++i) {
          const __m256 s = _mm256_set1_ps(t.s[i][j / 4] * 256.0f);
#pragma GCC unroll 3
          for (int m = 0; m < MR; ++m)
            for (int h = 0; h < 2; ++h) acc[m * NR + i][h] = _mm256_fmadd_ps(part[m * NR + i][h], s, acc[m * NR + i][h]);
        }
        clear_part();
      }
    }
  }
  for (int m = 0; m < t.mvalid; ++m)
    for (int i = 0; i < t.nvalid; ++i) t.y[m * t.ldy + i] = reduce(acc[m * NR + i][0], acc[m * NR + i][1]);
}

// All M rows of x against weight rows [r0, r1) (BF16 at w + (r - r0) * ldw; kFp8: W's FP8 rows
// read in place, w unused).
template <bool kFp8>
void run(const uint16_t* xb, int64_t ldxb, int64_t M, const uint16_t* w, int64_t ldw, const WeightMatrix& W,
         int64_t r0, int64_t r1, float* y, int64_t ldy) {
  const int64_t Kp = (W.cols + kUnit - 1) / kUnit * kUnit;
  thread_local IsaScratch<float> xsplit;
  float* xs = xsplit.get(size_t(kMaxMR * Kp));
  for (int64_t m0 = 0; m0 < M; m0 += kMaxMR) {
    const int mr = int(std::min<int64_t>(kMaxMR, M - m0));
    const uint16_t* xr[kMaxMR];
    for (int m = 0; m < mr; ++m) xr[m] = xb + (m0 + m) * ldxb;
    split_x(xr, mr, Kp, xs);
    Tile t;
    t.ldy = ldy;
    t.K = W.cols;
    t.mvalid = mr;
    auto sweep = [&](auto mr_const) {
      constexpr int MR = decltype(mr_const)::value;
      constexpr int NR = nr_for<kFp8>(MR);
      // BF16 weights read in place by one x tile stream from memory: the next tile's rows are
      // prefetched (rows are short streams; the hardware prefetchers stop at 4 KB pages). On
      // Zen 5 with QIUSUO_ISA=avx2 (102400x2048 head, alternated in one process with the
      // prefetch off): 0.65 of the read probe against 0.45 without; T0 a little less; 512 or 1024
      // columns ahead in the same rows no better than none.
      t.prefetch = kFp8 ? NR * W.cols : M <= kMaxMR && W.dtype == DType::BF16 ? NR * ldw : 0;  // read in place
      for (int m = 0; m < MR; ++m) t.x[m] = xs + std::min(m, mr - 1) * Kp;
      for (int64_t r = r0; r < r1; r += NR) {
        t.nvalid = int(std::min<int64_t>(NR, r1 - r));
        for (int i = 0; i < NR; ++i) {
          const int64_t ri = std::min<int64_t>(r + i, r1 - 1);
          if constexpr (kFp8) {
            t.w8[i] = static_cast<const uint8_t*>(W.data) + ri * W.cols;
            t.s[i] = W.scale_inv + (ri / kBlock) * W.scale_cols();
          } else {
            t.w[i] = w + (ri - r0) * ldw;
          }
        }
        t.y = y + m0 * ldy + r;
        micro<kFp8, MR>(t);
      }
    };
    if (mr == 1) sweep(std::integral_constant<int, 1>{});
    else if (mr == 2) sweep(std::integral_constant<int, 2>{});
    else sweep(std::integral_constant<int, 3>{});
  }
}

}  // namespace

void linear_bf16_avx2(const uint16_t* xb, int64_t ldxb, int64_t M, const WeightMatrix& W,
                      int64_t n0, int64_t n1, float* y, int64_t ldy) {
  if (M <= 0 || n1 <= n0) return;
  const FlushDenormals ftz_daz;
  const int64_t K = W.cols;
  if (W.dtype == DType::BF16) {
    run<false>(xb, ldxb, M, static_cast<const uint16_t*>(W.data) + n0 * K, K, W, n0, n1, y, ldy);
    return;
  }
  if (W.dtype == DType::F8_E4M3) {
    run<true>(xb, ldxb, M, nullptr, 0, W, n0, n1, y, ldy);
    return;
  }
  const int64_t Kp = (K + kUnit - 1) / kUnit * kUnit;
  const int64_t prows = std::clamp<int64_t>(int64_t(kPanelBytes / (size_t(Kp) * 2)), 4, n1 - n0);
  thread_local IsaScratch<uint16_t> scratch;
  uint16_t* panel = scratch.get(size_t(prows * Kp));
  for (int64_t p0 = n0; p0 < n1; p0 += prows) {
    const int64_t p1 = std::min(n1, p0 + prows);
    convert_rows(W, p0, p1, panel, Kp);
    run<false>(xb, ldxb, M, panel, Kp, W, p0, p1, y, ldy);
  }
}

}  // namespace qs::cpu
