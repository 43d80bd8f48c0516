// Bulk dtype conversions, AVX-512 (F + BW + VL): 16 elements per step, masked tails. Bit-exact
// with the scalar conversions of core/dtype.h (F32 -> BF16 uses integer round-to-nearest-even,
// not vcvtneps2bf16, which flushes F32 subnormals).
// GCC 12 warns about the deliberately undefined vectors inside its own AVX-512 intrinsics
// (_mm512_undefined_*, GCC PR105593); the warnings point into immintrin.h, not at this code.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include "qiusuo/kernels/cpu/cpu_kernels.h"

namespace qs::cpu {
namespace {
inline __mmask16 tail(int64_t n) { return __mmask16((1u << n) - 1); }

inline __m512 bf16x16(__m256i h) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

// 16 F32 -> 16 BF16 (in the low halves of 16 u32), round to nearest even, NaN -> quiet NaN.
inline __m512i to_bf16x16(__m512 f) {
  const __m512i u = _mm512_castps_si512(f);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  const __m512i rounded =
      _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff))), 16);
  const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)),
                                                _mm512_set1_epi32(0x7f800000));
  const __m512i quiet = _mm512_or_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40));
  return _mm512_mask_mov_epi32(rounded, nan, quiet);
}

// 16 E4M3 codes -> F32 * scale (scale256 = scale * 256), NaN codes -> NaN.
inline __m512 fp8x16(__m128i b, __m512 scale256) {
  const __m256i h = _mm256_slli_epi16(_mm256_cvtepi8_epi16(b), 7);
  const __m512 v = _mm512_mul_ps(_mm512_cvtph_ps(_mm256_and_si256(h, _mm256_set1_epi16(int16_t(0xBFFF)))), scale256);
  const __mmask16 nan = _mm_cmpeq_epi8_mask(_mm_and_si128(b, _mm_set1_epi8(0x7f)), _mm_set1_epi8(0x7f));
  return _mm512_mask_mov_ps(v, nan, _mm512_set1_ps(__builtin_nanf("")));
}
}  // namespace

void bf16_to_f32_avx512(const uint16_t* in, float* out, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(out + i, bf16x16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(in + i))));
  if (i < n) {
    const __mmask16 k = tail(n - i);
    _mm512_mask_storeu_ps(out + i, k, bf16x16(_mm256_maskz_loadu_epi16(k, in + i)));
  }
}

void f32_to_bf16_avx512(const float* in, uint16_t* out, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), _mm512_cvtepi32_epi16(to_bf16x16(_mm512_loadu_ps(in + i))));
  if (i < n) {
    const __mmask16 k = tail(n - i);
    _mm512_mask_cvtepi32_storeu_epi16(out + i, k, to_bf16x16(_mm512_maskz_loadu_ps(k, in + i)));
  }
}

void f16_to_f32_avx512(const uint16_t* in, float* out, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(out + i, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(in + i))));
  if (i < n) {
    const __mmask16 k = tail(n - i);
    _mm512_mask_storeu_ps(out + i, k, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(k, in + i)));
  }
}

void fp8_to_f32_avx512(const uint8_t* in, float* out, int64_t n, float scale) {
  const __m512 s = _mm512_set1_ps(scale * 256.0f);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(out + i, fp8x16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i)), s));
  if (i < n) {
    const __mmask16 k = tail(n - i);
    _mm512_mask_storeu_ps(out + i, k, fp8x16(_mm_maskz_loadu_epi8(k, in + i), s));
  }
}

}  // namespace qs::cpu
