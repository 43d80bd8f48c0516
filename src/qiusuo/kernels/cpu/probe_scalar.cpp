// Read-bandwidth probe kernel, scalar: sums `streams` (<= 8) arrays of n floats read in lockstep.
#include "qiusuo/kernels/cpu/cpu_kernels.h"

namespace qs::cpu {

float read_streams_scalar(const float* const* p, int streams, int64_t n) {
  float acc[8][8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int s = 0; s < streams; ++s)
      for (int l = 0; l < 8; ++l) acc[s][l] += p[s][i + l];
  float total = 0;
  for (int s = 0; s < streams; ++s) {
    for (int64_t j = i; j < n; ++j) total += p[s][j];
    for (int l = 0; l < 8; ++l) total += acc[s][l];
  }
  return total;
}

}  // namespace qs::cpu
