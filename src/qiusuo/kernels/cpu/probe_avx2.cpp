// Read-bandwidth probe kernel, AVX2: sums `streams` (<= 8) arrays of n floats read in lockstep,
// 64 bytes per stream per step.
#include <immintrin.h>

#include "qiusuo/kernels/cpu/cpu_kernels.h"

namespace qs::cpu {

float read_streams_avx2(const float* const* p, int streams, int64_t n) {
  __m256 acc[8];
  for (auto& a : acc) a = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int s = 0; s < streams; ++s)
      acc[s] = _mm256_add_ps(acc[s], _mm256_add_ps(_mm256_loadu_ps(p[s] + i), _mm256_loadu_ps(p[s] + i + 8)));
  float total = 0;
  for (int s = 0; s < streams; ++s) {
    alignas(32) float v[8];
    _mm256_store_ps(v, acc[s]);
    for (float f : v) total += f;
    for (int64_t j = i; j < n; ++j) total += p[s][j];
  }
  return total;
}

}  // namespace qs::cpu
