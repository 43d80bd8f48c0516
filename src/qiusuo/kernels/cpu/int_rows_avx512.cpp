// Group-wise integer weights (I8 / I4, linear.h's tile layout) read as stored by the absorbed
// MLA decode's products with kv_b rows (int_weighted_rows / int_dot_rows, cpu_kernels.h): the
// bits of dequant_rows_f32 followed by vec_ops' weighted_rows / dot_rows for one query row
// (tests/kernels/fp8_rows_test.cpp), without the F32 copy of the rows that the fallback
// (weighted_rows_of / dot_rows_of, linear.cpp) writes and reads back.
//
// The tile layout holds one row's 16 consecutive columns in 2 (I4) or 4 (I8) 32-bit words, one in
// each of as many consecutive 64-byte lines (a line is one column word of the tile's 16 rows).
// The fallback dequantizes a tile column word by column word and transposes 16x16 blocks back
// into rows; here each row's 16 columns are gathered from the lines with vpermt2d (the lane
// index selects the row), and
//  - I4: per-lane shifts put column l's nibble into lane l's low 4 bits, which vpermps takes as
//    the index into the 16-entry table (k - 8) * s of the row's group scale s: the exact value
//    (u - 8) * s (4 bits times an F16: exact in F32) in 4 instructions per 16 weights;
//  - I8: the 4 words make 16 bytes, widened, offset and converted, times s (exact likewise).
// Each value then goes into the one FMA per term of weighted_rows (rows in order per column) or
// dot_rows (columns in steps of 16 per row, the 16 lanes summed in order from 0.0f, 16 rows at
// once after a transpose).
// V2-Lite's kv_b [4096, 512] in INT4 g64, one layer's decode products (16 heads' q·W_UK and
// W_UV·latent), one thread, Zen 5: 33 + 35 us in cache against 79 + 91 us for the fallback's
// dequantized rows (INT8: 63 + 63 against 83 + 96); full-depth V2-Lite INT4 batch-1 decode 27.70 against 26.18 tokens/s (ahead
// in 8 of 8 rounds alternated in one process, 2 threads). Tried, not kept: each row's words
// broadcast and blended instead of vpermt2d (one cross-lane operation fewer): 35.5 + 40.6 us.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>

#include "qiusuo/kernels/cpu/cpu_kernels.h"
#include "qiusuo/kernels/cpu/int_rows.h"
#include "qiusuo/kernels/cpu/transpose_avx512.h"

namespace qs::cpu {
namespace {

constexpr int64_t kTile = WeightMatrix::kIntTile;

struct RowIndex {
  // vpermt2d indices picking row i's word of line a (lanes 0..7) and of line b (lanes 8..15)
  // (I4), or of line a in lane 0 and line b in lane 1 (I8: two such pairs make 16 bytes).
  alignas(64) int32_t i4[kTile][16];
  alignas(64) int32_t i8[kTile][16];
};
constexpr RowIndex make_index() {
  RowIndex x{};
  for (int i = 0; i < kTile; ++i)
    for (int l = 0; l < 16; ++l) {
      x.i4[i][l] = l < 8 ? i : 16 + i;
      x.i8[i][l] = l % 2 == 0 ? i : 16 + i;
    }
  return x;
}
alignas(64) constexpr RowIndex kIndex = make_index();

template <bool kI4>
struct Rows {
  static constexpr int kWordsPerChunk = kI4 ? 2 : 4;  // words holding 16 columns of a row
  const WeightMatrix& W;
  const uint32_t* data;
  int64_t words, ngroups;
  explicit Rows(const WeightMatrix& w)
      : W(w), data(static_cast<const uint32_t*>(w.data)), words(w.int_words()), ngroups(w.cols / w.group) {}

  const uint32_t* tile(int64_t t) const { return data + t * words * kTile; }
  // Tile t's scales into sf: sf[g * 16 + i] = s[row i][group g] in F32.
  void scales(int64_t t, float* sf) const {
    const uint16_t* s = W.group_scales + t * ngroups * kTile;
    for (int64_t g = 0; g < ngroups; ++g)
      _mm512_storeu_ps(sf + g * kTile, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + g * kTile))));
  }
  // What values() takes for a row's group scale s: I4 the table (k - 8) * s, k = 0..15 (exact),
  // I8 s broadcast.
  static __m512 per_group(float s) {
    if constexpr (kI4)
      return _mm512_mul_ps(_mm512_setr_ps(-8, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7), _mm512_set1_ps(s));
    else
      return _mm512_set1_ps(s);
  }
  static __m512i index(int64_t i) { return _mm512_load_si512(kI4 ? kIndex.i4[i] : kIndex.i8[i]); }
  // Columns [16 * chunk, 16 * chunk + 16) of the tile's row whose index vector is idx, with g =
  // per_group(its scale): the exact values (u - z) * s.
  static __m512 values(const uint32_t* tw, int64_t chunk, __m512i idx, __m512 g) {
    const uint32_t* line = tw + chunk * kWordsPerChunk * kTile;
    if constexpr (kI4) {
      const __m512i shifts = _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 0, 4, 8, 12, 16, 20, 24, 28);
      const __m512i v = _mm512_permutex2var_epi32(_mm512_loadu_si512(line), idx, _mm512_loadu_si512(line + kTile));
      return _mm512_permutexvar_ps(_mm512_srlv_epi32(v, shifts), g);  // lane l: table[nibble l]
    } else {
      const __m512i a = _mm512_permutex2var_epi32(_mm512_loadu_si512(line), idx, _mm512_loadu_si512(line + kTile));
      const __m512i b =
          _mm512_permutex2var_epi32(_mm512_loadu_si512(line + 2 * kTile), idx, _mm512_loadu_si512(line + 3 * kTile));
      const __m128i bytes = _mm512_castsi512_si128(_mm512_unpacklo_epi64(a, b));  // columns 0..15
      const __m512i u = _mm512_sub_epi32(_mm512_cvtepu8_epi32(bytes), _mm512_set1_epi32(128));
      return _mm512_mul_ps(_mm512_cvtepi32_ps(u), g);
    }
  }
  // Prefetch tile t's lines of columns [c, c + 64).
  void prefetch(int64_t t, int64_t c) const {
    const char* p = reinterpret_cast<const char*>(tile(t) + (c / 16) * kWordsPerChunk * kTile);
    for (int k = 0; k < 4 * kWordsPerChunk; ++k) _mm_prefetch(p + 64 * k, _MM_HINT_T0);
  }
};

// dst[c] += Σ_i p[i] W[r0 + i][c]: tile by tile (the rows' words are read once, in order, the
// next tile's prefetched), 64 columns at a time in 4 accumulators kept over the tile's rows.
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
    for (int64_t c = 0; c < K; c += 64) {
      if (!last) rows.prefetch(t + 1, c);
      const int64_t g0 = c / W.group, g1 = (c + 32) / W.group;  // groups of chunks 0-1 and 2-3
      const int64_t k = c / 16;
      if (K - c >= 64) [[likely]] {
        __m512 acc[4];
#pragma GCC unroll 4
        for (int a = 0; a < 4; ++a) acc[a] = _mm512_loadu_ps(dst + c + 16 * a);
        for (int64_t i = i0; i < i1; ++i) {
          const __m512i idx = R::index(i);
          const __m512 pi = _mm512_set1_ps(pt[i]);
          const __m512 ga = R::per_group(sf[g0 * kTile + i]);
          const __m512 gb = g1 == g0 ? ga : R::per_group(sf[g1 * kTile + i]);
          acc[0] = _mm512_fmadd_ps(pi, R::values(tw, k, idx, ga), acc[0]);
          acc[1] = _mm512_fmadd_ps(pi, R::values(tw, k + 1, idx, ga), acc[1]);
          acc[2] = _mm512_fmadd_ps(pi, R::values(tw, k + 2, idx, gb), acc[2]);
          acc[3] = _mm512_fmadd_ps(pi, R::values(tw, k + 3, idx, gb), acc[3]);
        }
#pragma GCC unroll 4
        for (int a = 0; a < 4; ++a) _mm512_storeu_ps(dst + c + 16 * a, acc[a]);
      } else {  // the last 32 columns (K is a multiple of 32)
        __m512 acc0 = _mm512_loadu_ps(dst + c), acc1 = _mm512_loadu_ps(dst + c + 16);
        for (int64_t i = i0; i < i1; ++i) {
          const __m512i idx = R::index(i);
          const __m512 pi = _mm512_set1_ps(pt[i]);
          const __m512 ga = R::per_group(sf[g0 * kTile + i]);
          acc0 = _mm512_fmadd_ps(pi, R::values(tw, k, idx, ga), acc0);
          acc1 = _mm512_fmadd_ps(pi, R::values(tw, k + 1, idx, ga), acc1);
        }
        _mm512_storeu_ps(dst + c, acc0);
        _mm512_storeu_ps(dst + c + 16, acc1);
      }
    }
  });
}

// out[i] = x · W[r0 + i]: per row one accumulator over the columns in steps of 16 (4 rows at a
// time, independent chains), then a tile's accumulators transposed and their lanes summed in
// order from 0.0f, 16 rows per vector addition.
template <bool kI4>
void dot_rows(const WeightMatrix& W, int64_t r0, int64_t n, const float* x, float* out) {
  using R = Rows<kI4>;
  const R rows(W);
  const int64_t K = W.cols, chunks_per_group = W.group / 16;
  if (n <= 0) return;
  constexpr int kRows = 4;
  float* sf = int_rows_scale_buffer(rows.ngroups);
  for_each_int_tile(r0, n, [&](int64_t t, int64_t i0, int64_t i1, bool last) {
    const uint32_t* tw = rows.tile(t);
    rows.scales(t, sf);
    if (!last)
      for (int64_t c = 0; c < K; c += 64) rows.prefetch(t + 1, c);
    __m512 acc16[kTile];
    for (int64_t b = i0; b < i1; b += kRows) {
      int64_t row[kRows];  // rows past the last repeat it (computed, not stored)
      __m512i idx[kRows];
      __m512 acc[kRows];
#pragma GCC unroll 4
      for (int j = 0; j < kRows; ++j) {
        row[j] = std::min<int64_t>(b + j, i1 - 1);
        idx[j] = R::index(row[j]);
        acc[j] = _mm512_setzero_ps();
      }
      for (int64_t g = 0; g < rows.ngroups; ++g) {
        __m512 gs[kRows];
#pragma GCC unroll 4
        for (int j = 0; j < kRows; ++j) gs[j] = R::per_group(sf[g * kTile + row[j]]);
        for (int64_t k = g * chunks_per_group; k < (g + 1) * chunks_per_group; ++k) {
          const __m512 xv = _mm512_loadu_ps(x + 16 * k);
#pragma GCC unroll 4
          for (int j = 0; j < kRows; ++j) acc[j] = _mm512_fmadd_ps(xv, R::values(tw, k, idx[j], gs[j]), acc[j]);
        }
      }
#pragma GCC unroll 4
      for (int j = 0; j < kRows; ++j) acc16[(b - i0 + j) % kTile] = acc[j];
    }
    // acc16[i - i0] holds row i's lanes; the rows from i1 - i0 on are unused.
    for (int64_t i = i1 - i0; i < kTile; ++i) acc16[i] = _mm512_setzero_ps();
    transpose16(acc16);  // acc16[l]: lane l of every row
    __m512 s = _mm512_setzero_ps();
#pragma GCC unroll 16
    for (int l = 0; l < 16; ++l) s = _mm512_add_ps(s, acc16[l]);
    _mm512_mask_storeu_ps(out + t * kTile + i0 - r0, __mmask16((1u << (i1 - i0)) - 1), s);
  });
}

}  // namespace

void int_weighted_rows_avx512(const WeightMatrix& W, int64_t r0, int64_t n, const float* p, float* dst) {
  if (W.dtype == DType::I4) weighted_rows<true>(W, r0, n, p, dst);
  else weighted_rows<false>(W, r0, n, p, dst);
}

void int_dot_rows_avx512(const WeightMatrix& W, int64_t r0, int64_t n, const float* x, float* out) {
  if (W.dtype == DType::I4) dot_rows<true>(W, r0, n, x, out);
  else dot_rows<false>(W, r0, n, x, out);
}

}  // namespace qs::cpu
