// Bulk dtype conversions, AVX2 + F16C: 8 elements per step, scalar tails. Bit-exact with the
// scalar conversions of core/dtype.h.
#include <immintrin.h>

#include "qiusuo/kernels/cpu/cpu_kernels.h"

namespace qs::cpu {
namespace {
inline __m256 bf16x8(__m128i h) {
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

// 8 F32 -> 8 BF16, round to nearest even, NaN -> quiet NaN.
inline __m128i to_bf16x8(__m256 f) {
  const __m256i u = _mm256_castps_si256(f);
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
  const __m256i rounded =
      _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff))), 16);
  const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff)),
                                         _mm256_set1_epi32(0x7f800000));
  const __m256i quiet = _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(0x40));
  const __m256i r = _mm256_blendv_epi8(rounded, quiet, nan);  // 8 x u32, each < 2^16
  return _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));
}

// 8 E4M3 codes -> F32 * scale (scale256 = scale * 256), NaN codes -> NaN.
inline __m256 fp8x8(__m128i b, __m256 scale256) {
  const __m128i h = _mm_slli_epi16(_mm_cvtepi8_epi16(b), 7);
  const __m256 v = _mm256_mul_ps(_mm256_cvtph_ps(_mm_and_si128(h, _mm_set1_epi16(int16_t(0xBFFF)))), scale256);
  const __m128i isnan8 = _mm_cmpeq_epi8(_mm_and_si128(b, _mm_set1_epi8(0x7f)), _mm_set1_epi8(0x7f));
  const __m256 nan = _mm256_castsi256_ps(_mm256_cvtepi8_epi32(isnan8));  // all-ones lanes
  return _mm256_blendv_ps(v, _mm256_set1_ps(__builtin_nanf("")), nan);
}
}  // namespace

void bf16_to_f32_avx2(const uint16_t* in, float* out, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(out + i, bf16x8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i))));
  bf16_to_f32_scalar(in + i, out + i, n - i);
}

void f32_to_bf16_avx2(const float* in, uint16_t* out, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), to_bf16x8(_mm256_loadu_ps(in + i)));
  f32_to_bf16_scalar(in + i, out + i, n - i);
}

void f16_to_f32_avx2(const uint16_t* in, float* out, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i))));
  f16_to_f32_scalar(in + i, out + i, n - i);
}

void fp8_to_f32_avx2(const uint8_t* in, float* out, int64_t n, float scale) {
  const __m256 s = _mm256_set1_ps(scale * 256.0f);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(out + i, fp8x8(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(in + i)), s));
  fp8_to_f32_scalar(in + i, out + i, n - i, scale);
}

}  // namespace qs::cpu
