#include "qiusuo/core/profile.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

#include "qiusuo/core/timer.h"

namespace qs {
namespace {
struct Entry { std::string name; int64_t calls = 0; double seconds = 0; };
struct Registry {
  std::mutex mu;
  std::vector<Entry> entries;
  double start = now_seconds();
  ~Registry() {
    if (!profiling_enabled() || entries.empty()) return;
    const double total = now_seconds() - start;
    std::vector<Entry> e = entries;
    std::sort(e.begin(), e.end(), [](const Entry& a, const Entry& b) { return a.seconds > b.seconds; });
    std::fprintf(stderr, "\nprofile (wall %.2f s; nested sections overlap)\n", total);
    for (const auto& x : e)
      std::fprintf(stderr, "  %-28s %9lld calls %9.3f s %6.1f%%\n", x.name.c_str(), (long long)x.calls, x.seconds,
                   100 * x.seconds / total);
  }
};
Registry& reg() {
  static Registry r;
  return r;
}
}  // namespace

bool profiling_enabled() {
  static const bool on = [] {
    const char* e = std::getenv("QIUSUO_PROFILE");
    return e && *e && std::string(e) != "0";
  }();
  return on;
}

int profile_slot(const char* name) {
  auto& r = reg();
  std::lock_guard<std::mutex> g(r.mu);
  r.entries.push_back({name, 0, 0});
  return int(r.entries.size() - 1);
}

void profile_add(int slot, double s) {
  auto& r = reg();
  std::lock_guard<std::mutex> g(r.mu);
  r.entries[size_t(slot)].calls++;
  r.entries[size_t(slot)].seconds += s;
}

ProfileScope::ProfileScope(int slot) : slot_(slot), t0_(profiling_enabled() ? now_seconds() : 0) {}
ProfileScope::~ProfileScope() {
  if (profiling_enabled()) profile_add(slot_, now_seconds() - t0_);
}

}  // namespace qs
