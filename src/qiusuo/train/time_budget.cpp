#include "qiusuo/train/time_budget.h"

#include <algorithm>

namespace qs {

int64_t TimeBudget::replan(int64_t step, int64_t session_steps, double session_time, double total_time,
                           int64_t planned_steps) {
  if (!active() || planned_ || session_steps < probe_) return -1;
  planned_ = true;
  per_step_ = session_time / double(session_steps);
  // Keep two steps of slack for the final evaluation and checkpoint.
  const double left = limit_ - total_time - 2.0 * per_step_;
  const int64_t fit = step + std::max<int64_t>(0, int64_t(left / per_step_));
  return fit < planned_steps ? fit : -1;
}

}  // namespace qs
