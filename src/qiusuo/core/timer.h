#pragma once
#include <chrono>

namespace qs {
inline double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
struct Stopwatch {
  double t0 = now_seconds();
  double elapsed() const { return now_seconds() - t0; }
  void reset() { t0 = now_seconds(); }
};
}  // namespace qs
