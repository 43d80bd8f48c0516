#include "qiusuo/kernels/cpu/int_rows.h"

#include <vector>

namespace qs::cpu {

float* int_rows_scale_buffer(int64_t ngroups) {
  thread_local std::vector<float> buf;
  const size_t n = size_t(ngroups * WeightMatrix::kIntTile);
  if (buf.size() < n) buf.resize(n);
  return buf.data();
}

}  // namespace qs::cpu
