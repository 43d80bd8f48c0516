// Opt-in wall-clock profile of named sections: set QIUSUO_PROFILE=1 and the totals are printed
// to stderr at exit (section, calls, seconds, share). Costs one branch when off.
//   { QS_PROFILE("mla.fwd"); ... }
#pragma once
#include <cstdint>

namespace qs {

bool profiling_enabled();
int profile_slot(const char* name);  // registers a section once
void profile_add(int slot, double seconds);

class ProfileScope {
 public:
  explicit ProfileScope(int slot);
  ~ProfileScope();

 private:
  int slot_;
  double t0_;
};

}  // namespace qs

#define QS_PROFILE_CAT2(a, b) a##b
#define QS_PROFILE_CAT(a, b) QS_PROFILE_CAT2(a, b)
#define QS_PROFILE(name)                                                                         \
  static const int QS_PROFILE_CAT(qs_prof_slot_, __LINE__) = ::qs::profile_slot(name);           \
  ::qs::ProfileScope QS_PROFILE_CAT(qs_prof_scope_, __LINE__)(QS_PROFILE_CAT(qs_prof_slot_, __LINE__))
