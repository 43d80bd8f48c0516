// Read-bandwidth probe kernel, AVX-512: sums `streams` (<= 8) arrays of n floats read in
// lockstep, 64 bytes per stream per step, two accumulators per stream.
// GCC 12 warns about the deliberately undefined vectors inside its own AVX-512 intrinsics
// (_mm512_undefined_*, GCC PR105593); the warnings point into immintrin.h, not at this code.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include "qiusuo/kernels/cpu/cpu_kernels.h"

namespace qs::cpu {

float read_streams_avx512(const float* const* p, int streams, int64_t n) {
  __m512 acc = _mm512_setzero_ps(), acc2 = _mm512_setzero_ps();
  int64_t i = 0;
  if (streams == 4) {  // the common case, fully unrolled
    const float *p0 = p[0], *p1 = p[1], *p2 = p[2], *p3 = p[3];
    __m512 a0 = acc, a1 = acc, a2 = acc, a3 = acc;
    for (; i + 32 <= n; i += 32) {
      a0 = _mm512_add_ps(a0, _mm512_add_ps(_mm512_loadu_ps(p0 + i), _mm512_loadu_ps(p0 + i + 16)));
      a1 = _mm512_add_ps(a1, _mm512_add_ps(_mm512_loadu_ps(p1 + i), _mm512_loadu_ps(p1 + i + 16)));
      a2 = _mm512_add_ps(a2, _mm512_add_ps(_mm512_loadu_ps(p2 + i), _mm512_loadu_ps(p2 + i + 16)));
      a3 = _mm512_add_ps(a3, _mm512_add_ps(_mm512_loadu_ps(p3 + i), _mm512_loadu_ps(p3 + i + 16)));
    }
    acc = _mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3));
  } else {
    for (; i + 32 <= n; i += 32)
      for (int s = 0; s < streams; ++s) {
        acc = _mm512_add_ps(acc, _mm512_loadu_ps(p[s] + i));
        acc2 = _mm512_add_ps(acc2, _mm512_loadu_ps(p[s] + i + 16));
      }
  }
  float total = _mm512_reduce_add_ps(_mm512_add_ps(acc, acc2));
  for (int s = 0; s < streams; ++s)
    for (int64_t j = i; j < n; ++j) total += p[s][j];
  return total;
}

}  // namespace qs::cpu
