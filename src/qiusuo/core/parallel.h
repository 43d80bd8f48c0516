// Threading: OpenMP everywhere (oneDNN in the Debian build uses OpenMP too, so one runtime
// owns the cores). parallel_for splits [0, n) into contiguous chunks, one per thread;
// parallel_for_dynamic hands items out one at a time.
#pragma once
#include <omp.h>

#include <algorithm>
#include <cstdint>

namespace qs {

int num_threads();            // threads used by parallel regions
void set_num_threads(int n);  // n <= 0: all cores

// fn(begin, end) over contiguous chunks of [0, n); runs inline when n is small or when
// already inside a parallel region. `grain` is the smallest chunk worth a thread.
template <typename Fn>
void parallel_for(int64_t n, int64_t grain, Fn&& fn) {
  const int nt = num_threads();
  if (n <= 0) return;
  if (nt <= 1 || n < 2 * grain || omp_in_parallel()) {
    fn(int64_t(0), n);
    return;
  }
  const int64_t chunks = std::min<int64_t>(nt, (n + grain - 1) / grain);
#pragma omp parallel num_threads(int(chunks))
  {
    const int64_t t = omp_get_thread_num();
    const int64_t b = n * t / chunks, e = n * (t + 1) / chunks;
    if (b < e) fn(b, e);
  }
}

// fn(i) for every i in [0, n), items handed out one at a time (work of uneven size, e.g. causal
// attention rows); inline when n < 2 or inside a parallel region.
template <typename Fn>
void parallel_for_dynamic(int64_t n, Fn&& fn) {
  const int nt = num_threads();
  if (n <= 0) return;
  if (nt <= 1 || n < 2 || omp_in_parallel()) {
    for (int64_t i = 0; i < n; ++i) fn(i);
    return;
  }
#pragma omp parallel for num_threads(int(std::min<int64_t>(nt, n))) schedule(dynamic, 1)
  for (int64_t i = 0; i < n; ++i) fn(i);
}

}  // namespace qs
