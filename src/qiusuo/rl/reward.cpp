#include "qiusuo/rl/reward.h"

#include <algorithm>
#include <cmath>

#include "qiusuo/core/error.h"

namespace qs::rl {

FormatMode parse_format_mode(std::string_view s) {
  if (s == "additive") return FormatMode::Additive;
  if (s == "tinyzero") return FormatMode::TinyZero;
  fail("unknown format reward mode '", s, "' (expected additive or tinyzero)");
}

void validate(const RewardConfig& c) {
  QS_CHECK(std::isfinite(c.accuracy_weight) && std::isfinite(c.format_weight) && std::isfinite(c.length_weight),
           "reward weights must be finite numbers");
  QS_CHECK(c.length_soft_limit >= 0, "length soft limit must be >= 0 (0 = no length penalty)");
  QS_CHECK(c.length_soft_limit == 0 || c.length_hard_limit > c.length_soft_limit,
           "length hard limit (", c.length_hard_limit, ") must exceed the soft limit (", c.length_soft_limit, ")");
}

Reward compute_reward(const Problem& p, std::string_view completion, int64_t completion_tokens, const RewardConfig& c) {
  validate(c);
  Reward r;
  const Verdict v = verify(p, completion, c.verify);
  r.accuracy = v.correct ? 1.0 : 0.0;
  r.format_ok = format_ok(completion, c.verify.starts_in_think);
  r.answer_source = v.extracted.source;
  r.answer = v.extracted.text;
  r.why = v.why;
  r.length_tokens = completion_tokens;
  if (c.length_soft_limit > 0) {
    const double over = double(completion_tokens - c.length_soft_limit) / double(c.length_hard_limit - c.length_soft_limit);
    r.length_penalty = c.length_weight * std::clamp(over, 0.0, 1.0);
  }
  if (c.format_mode == FormatMode::Additive)
    r.total = c.accuracy_weight * r.accuracy + (r.format_ok ? c.format_weight : 0.0);
  else
    r.total = v.correct ? c.accuracy_weight : (r.format_ok ? c.format_weight : 0.0);
  r.total -= r.length_penalty;
  return r;
}

}  // namespace qs::rl
