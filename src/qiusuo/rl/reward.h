// Rule-based rewards for GRPO: accuracy from the verifier, a format reward for the R1-Zero layout,
// an optional overlong penalty; every component is returned for logging.
//
//   accuracy  a = 1 if the extracted answer is correct (rl/verifier.h), else 0
//   format    f = 1 if format_ok(completion) (<think>...</think> then one <answer>...</answer>)
//   length    p = length_weight * clamp((L - soft) / (hard - soft), 0, 1), L the completion length
//               in tokens; 0 when length_soft_limit == 0 (DAPO's overlong reward shaping with
//               soft = L_max - L_cache, hard = L_max; L > hard gets the full penalty)
//   total     additive (default): accuracy_weight * a + format_weight * f - p
//             tinyzero          : a ? accuracy_weight : (f ? format_weight : 0), then - p
//               (TinyZero's countdown score: 1 for a correct answer, 0.1 for a well-formed wrong one)
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

#include "qiusuo/rl/tasks.h"
#include "qiusuo/rl/verifier.h"

namespace qs::rl {

enum class FormatMode { Additive, TinyZero };
FormatMode parse_format_mode(std::string_view s);  // "additive" | "tinyzero"

struct RewardConfig {
  double accuracy_weight = 1.0;
  double format_weight = 0.1;
  FormatMode format_mode = FormatMode::Additive;
  int64_t length_soft_limit = 0;  // tokens; 0 = no length penalty
  int64_t length_hard_limit = 0;  // tokens; > soft limit when the penalty is on
  double length_weight = 1.0;     // the penalty at and beyond the hard limit
  VerifyOptions verify;           // starts_in_think, allow_untagged, max_answer_bytes
};
void validate(const RewardConfig& c);  // qs::Error for inconsistent limits or non-finite weights

struct Reward {
  double total = 0;
  double accuracy = 0;         // 1 or 0
  bool format_ok = false;
  double length_penalty = 0;   // >= 0, already subtracted in total
  int64_t length_tokens = 0;
  AnswerSource answer_source = AnswerSource::None;
  std::string answer;          // the extracted answer ("" when none)
  std::string why;             // why the answer is wrong ("" when correct)
};

Reward compute_reward(const Problem& p, std::string_view completion, int64_t completion_tokens,
                      const RewardConfig& c = {});

}  // namespace qs::rl
