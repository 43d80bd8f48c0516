#include "qiusuo/core/parallel.h"

#include <thread>

namespace qs {
namespace {
int g_threads = 0;
}
int num_threads() {
  if (g_threads <= 0) g_threads = std::max(1, omp_get_max_threads());
  return g_threads;
}
void set_num_threads(int n) {
  if (n <= 0) n = std::max(1u, std::thread::hardware_concurrency());
  g_threads = n;
  omp_set_num_threads(n);
}
}  // namespace qs
