// int_rows_avx512.cpp for CPUs with AVX2 and no AVX-512 (Zen 2/3, Intel client cores before
// Ice Lake): I8 / I4 kv_b rows read as stored by the absorbed decode's products, the bits of
// dequant_rows_f32 followed by vec_ops' weighted_rows / dot_rows for one query row
// (tests/kernels/fp8_rows_test.cpp runs every table that has them).
//
// A row's 8 consecutive columns are one 32-bit word (I4) or two (I8) of the tile layout
// (linear.h): broadcast from memory (a load, no shuffle), shifted per lane so that column l's
// bits are at the bottom of lane l, masked, offset, converted and times the row's group scale,
// the exact (u - z) * s the fallback computes after its 8x8 transposes. vec_ops' order is that of
// 16-float vectors also under AVX2 (two ymm): column c's term goes to lane c mod 16, so a row's
// accumulators are a pair (8-column chunks alternate between them), and its 16 lanes are summed in
// order, 8 rows at once after transposes.
// V2-Lite's kv_b [4096, 512] in INT4 g64, one layer's decode products, one thread, Zen 5 with
// QIUSUO_ISA=avx2: 72 + 75 us in cache against 797 + 747 us for the fallback (whose vec_ops
// products compile poorly for AVX2); full-depth V2-Lite INT4 batch-1 decode under
// QIUSUO_ISA=avx2 14.59 against 11.30 tokens/s (4 of 4 rounds alternated in one process).
#include <immintrin.h>

#include <algorithm>

#include "qiusuo/kernels/cpu/cpu_kernels.h"
#include "qiusuo/kernels/cpu/int_rows.h"
#include "qiusuo/kernels/cpu/transpose_avx2.h"

namespace qs::cpu {
namespace {

constexpr int64_t kTile = WeightMatrix::kIntTile;

template <bool kI4>
struct Rows {
  static constexpr int kWordsPerChunk = kI4 ? 1 : 2;  // words holding 8 columns of a row
  const WeightMatrix& W;
  const uint32_t* data;
  int64_t words, ngroups;
  explicit Rows(const WeightMatrix& w)
      : W(w), data(static_cast<const uint32_t*>(w.data)), words(w.int_words()), ngroups(w.cols / w.group) {}

  const uint32_t* tile(int64_t t) const { return data + t * words * kTile; }
  // Tile t's scales into sf: sf[g * 16 + i] = s[row i][group g] in F32.
  void scales(int64_t t, float* sf) const {
    const uint16_t* s = W.group_scales + t * ngroups * kTile;
    for (int64_t g = 0; g < ngroups * kTile; g += 8)
      _mm256_storeu_ps(sf + g, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + g))));
  }
  // Columns [8 * chunk, 8 * chunk + 8) of the tile's row i, times s (its group scale broadcast).
  static __m256 values(const uint32_t* tw, int64_t chunk, int64_t i, __m256 s) {
    const uint32_t* line = tw + chunk * kWordsPerChunk * kTile + i;
    if constexpr (kI4) {
      const __m256i v = _mm256_set1_epi32(int(line[0]));
      const __m256i u = _mm256_and_si256(_mm256_srlv_epi32(v, _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28)),
                                         _mm256_set1_epi32(0xF));
      return _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(u, _mm256_set1_epi32(8))), s);
    } else {
      const __m256i v = _mm256_blend_epi32(_mm256_set1_epi32(int(line[0])), _mm256_set1_epi32(int(line[kTile])), 0xF0);
      const __m256i u = _mm256_and_si256(_mm256_srlv_epi32(v, _mm256_setr_epi32(0, 8, 16, 24, 0, 8, 16, 24)),
                                         _mm256_set1_epi32(0xFF));
      return _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(u, _mm256_set1_epi32(128))), s);
    }
  }
  // Prefetch tile t's lines of columns [c, c + 32).
  void prefetch(int64_t t, int64_t c) const {
    const char* p = reinterpret_cast<const char*>(tile(t) + (c / 8) * kWordsPerChunk * kTile);
    for (int k = 0; k < 4 * kWordsPerChunk; ++k) _mm_prefetch(p + 64 * k, _MM_HINT_T0);
  }
};

// dst[c] += Σ_i p[i] W[r0 + i][c]: tile by tile, 32 columns (one group: groups are multiples of
// 32) at a time in 4 accumulators kept over the tile's rows.
template <bool kI4>
void weighted_rows(const WeightMatrix& W, int64_t r0, int64_t n, const float* p, float* dst) {
  using R = Rows<kI4>;
  const R rows(W);
  const int64_t K = W.cols;
  if (n <= 0) return;
  float* sf = int_rows_scale_buffer(rows.ngroups);
  for_each_int_tile(r0, n, [&](int64_t t, int64_t i0, int64_t i1, bool last) {
    const uint32_t* tw = rows.tile(t);
    const float* pt = p + t * kTile - r0;
    rows.scales(t, sf);
    for (int64_t c = 0; c < K; c += 32) {
      if (!last) rows.prefetch(t + 1, c);
      const float* sg = sf + (c / W.group) * kTile;
      const int64_t k = c / 8;
      __m256 acc[4];
#pragma GCC unroll 4
      for (int a = 0; a < 4; ++a) acc[a] = _mm256_loadu_ps(dst + c + 8 * a);
      for (int64_t i = i0; i < i1; ++i) {
        const __m256 pi = _mm256_set1_ps(pt[i]), s = _mm256_set1_ps(sg[i]);
#pragma GCC unroll 4
        for (int a = 0; a < 4; ++a) acc[a] = _mm256_fmadd_ps(pi, R::values(tw, k + a, i, s), acc[a]);
      }
#pragma GCC unroll 4
      for (int a = 0; a < 4; ++a) _mm256_storeu_ps(dst + c + 8 * a, acc[a]);
    }
  });
}

// out[i] = x · W[r0 + i]: per row two accumulators (lanes 0-7 and 8-15 of vec_ops' 16-float
// vector) over the columns, 2 rows at a time; then 8 rows' lanes summed in order from 0.0f after
// transposes.
template <bool kI4>
void dot_rows(const WeightMatrix& W, int64_t r0, int64_t n, const float* x, float* out) {
  using R = Rows<kI4>;
  const R rows(W);
  const int64_t K = W.cols, chunks_per_group = W.group / 8;  // even: groups are multiples of 32
  if (n <= 0) return;
  constexpr int kRows = 2;
  float* sf = int_rows_scale_buffer(rows.ngroups);
  for_each_int_tile(r0, n, [&](int64_t t, int64_t i0, int64_t i1, bool last) {
    const uint32_t* tw = rows.tile(t);
    rows.scales(t, sf);
    if (!last)
      for (int64_t c = 0; c < K; c += 32) rows.prefetch(t + 1, c);
    for (int64_t b8 = i0; b8 < i1; b8 += 8) {  // blocks of 8 rows
      const int64_t nb = std::min<int64_t>(8, i1 - b8);
      __m256 lo8[8], hi8[8];
      for (int64_t b = b8; b < b8 + nb; b += kRows) {
        const int64_t ra = b, rb = std::min<int64_t>(b + 1, b8 + nb - 1);  // a row past the last repeats it
        __m256 lo_a = _mm256_setzero_ps(), hi_a = _mm256_setzero_ps(), lo_b = lo_a, hi_b = lo_a;
        for (int64_t g = 0; g < rows.ngroups; ++g) {
          const __m256 sa = _mm256_set1_ps(sf[g * kTile + ra]), sb = _mm256_set1_ps(sf[g * kTile + rb]);
          for (int64_t k = g * chunks_per_group; k < (g + 1) * chunks_per_group; k += 2) {
            const __m256 x0 = _mm256_loadu_ps(x + 8 * k), x1 = _mm256_loadu_ps(x + 8 * k + 8);
            lo_a = _mm256_fmadd_ps(x0, R::values(tw, k, ra, sa), lo_a);
            hi_a = _mm256_fmadd_ps(x1, R::values(tw, k + 1, ra, sa), hi_a);
            lo_b = _mm256_fmadd_ps(x0, R::values(tw, k, rb, sb), lo_b);
            hi_b = _mm256_fmadd_ps(x1, R::values(tw, k + 1, rb, sb), hi_b);
          }
        }
        lo8[b - b8] = lo_a;
        hi8[b - b8] = hi_a;
        if (b + 1 < b8 + nb) {
          lo8[b + 1 - b8] = lo_b;
          hi8[b + 1 - b8] = hi_b;
        }
      }
      for (int64_t i = nb; i < 8; ++i) lo8[i] = hi8[i] = _mm256_setzero_ps();
      transpose8(lo8);  // lo8[l]: lane l of the 8 rows
      transpose8(hi8);  // hi8[l]: lane 8 + l
      __m256 s = _mm256_setzero_ps();
#pragma GCC unroll 8
      for (int l = 0; l < 8; ++l) s = _mm256_add_ps(s, lo8[l]);
#pragma GCC unroll 8
      for (int l = 0; l < 8; ++l) s = _mm256_add_ps(s, hi8[l]);
      alignas(32) float sums[8];
      _mm256_store_ps(sums, s);
      std::copy_n(sums, nb, out + t * kTile + b8 - r0);
    }
  });
}

}  // namespace

void int_weighted_rows_avx2(const WeightMatrix& W, int64_t r0, int64_t n, const float* p, float* dst) {
  if (W.dtype == DType::I4) weighted_rows<true>(W, r0, n, p, dst);
  else weighted_rows<false>(W, r0, n, p, dst);
}

void int_dot_rows_avx2(const WeightMatrix& W, int64_t r0, int64_t n, const float* x, float* out) {
  if (W.dtype == DType::I4) dot_rows<true>(W, r0, n, x, out);
  else dot_rows<false>(W, r0, n, x, out);
}

}  // namespace qs::cpu
