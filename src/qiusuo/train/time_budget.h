// Fitting a training run into a time budget: after the first steps of a session the time per
// step is measured once and the run's step count (and with it the learning-rate schedule) is cut
// to what fits; a run that still overruns stops at 105% of the budget.
#pragma once
#include <cstdint>

namespace qs {

class TimeBudget {
 public:
  // limit_s <= 0: no budget. The plan is made after `probe_steps` steps of this session.
  explicit TimeBudget(double limit_s, int64_t probe_steps = 5) : limit_(limit_s), probe_(probe_steps) {}
  bool active() const { return limit_ > 0; }
  double limit_s() const { return limit_; }

  // After each step: `step` optimizer steps done in total, `session_steps` of them in this
  // session, taking `session_time` seconds; `total_time` is the training time of the whole run
  // (earlier sessions included). Returns the step count that fits when it is smaller than
  // `planned_steps` (once per budget), else -1.
  int64_t replan(int64_t step, int64_t session_steps, double session_time, double total_time,
                 int64_t planned_steps);
  double seconds_per_step() const { return per_step_; }  // measured by replan (0 before)
  bool out_of_time(double total_time) const { return active() && total_time >= 1.05 * limit_; }

 private:
  double limit_;
  int64_t probe_;
  bool planned_ = false;
  double per_step_ = 0;
};

}  // namespace qs
