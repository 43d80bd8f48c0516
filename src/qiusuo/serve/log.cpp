#include "qiusuo/serve/log.h"

#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>

namespace qs::serve {

void log_line(const std::string& text) {
  static std::mutex mu;
  const auto now = std::chrono::system_clock::now();
  const std::time_t t = std::chrono::system_clock::to_time_t(now);
  const int ms = int(std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
  std::lock_guard<std::mutex> lk(mu);
  std::fprintf(stderr, "%s.%03dZ qiusuo serve: %s\n", stamp, ms, text.c_str());
  std::fflush(stderr);
}

}  // namespace qs::serve
