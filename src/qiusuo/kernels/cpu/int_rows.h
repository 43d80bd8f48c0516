// What int_rows_avx2.cpp and int_rows_avx512.cpp share (plain C++, no ISA code): the walk over
// the 16-row tiles that hold rows [r0, r0 + n) of an I8 / I4 weight matrix (linear.h's layout),
// and a per-thread buffer for a tile's group scales in F32.
#pragma once
#include <algorithm>
#include <cstdint>

#include "qiusuo/kernels/linear.h"

namespace qs::cpu {

// A tile's scales in F32: at least ngroups * 16 floats, one buffer per thread (int_rows.cpp).
float* int_rows_scale_buffer(int64_t ngroups);

// fn(t, i0, i1, last) for each tile t holding rows of [r0, r0 + n): its rows 16t + i for i in
// [i0, i1); `last` for the final tile (the kernels prefetch the next one otherwise).
template <typename Fn>
inline void for_each_int_tile(int64_t r0, int64_t n, Fn&& fn) {
  constexpr int64_t kTile = WeightMatrix::kIntTile;
  const int64_t r1 = r0 + n, t1 = (r1 + kTile - 1) / kTile;
  for (int64_t t = r0 / kTile; t < t1; ++t)
    fn(t, std::max(r0, t * kTile) - t * kTile, std::min(r1, (t + 1) * kTile) - t * kTile, t + 1 == t1);
}

}  // namespace qs::cpu
