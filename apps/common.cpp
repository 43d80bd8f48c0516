#include <cstdio>

#include "commands.h"
#include "qiusuo/core/parallel.h"

namespace qs::cli {
void apply_threads(int threads) { set_num_threads(threads); }
int num_threads_for_cli() { return num_threads(); }

std::string human_count(double n) {
  char buf[32];
  if (n >= 1e9) std::snprintf(buf, sizeof buf, "%.2fB", n / 1e9);
  else if (n >= 1e6) std::snprintf(buf, sizeof buf, "%.2fM", n / 1e6);
  else if (n >= 1e3) std::snprintf(buf, sizeof buf, "%.1fK", n / 1e3);
  else std::snprintf(buf, sizeof buf, "%.0f", n);
  return buf;
}
std::string human_bytes(double n) {
  char buf[32];
  if (n >= 1e9) std::snprintf(buf, sizeof buf, "%.2f GB", n / 1e9);
  else if (n >= 1e6) std::snprintf(buf, sizeof buf, "%.2f MB", n / 1e6);
  else if (n >= 1e3) std::snprintf(buf, sizeof buf, "%.1f KB", n / 1e3);
  else std::snprintf(buf, sizeof buf, "%.0f B", n);
  return buf;
}
}  // namespace qs::cli
