// Rewards: accuracy, format, the overlong penalty and both combination modes.
#include "qiusuo/rl/reward.h"

#include <gtest/gtest.h>

#include "qiusuo/core/error.h"

namespace qs::rl {
namespace {

Problem numeric(const std::string& a) {
  Problem p;
  p.prompt = "q";
  p.answer = a;
  p.match = MatchKind::Numeric;
  return p;
}

TEST(Reward, ComponentsAndModes) {
  const Problem p = numeric("12");
  const std::string right = "<think>6+6</think>\n<answer>12</answer>";
  const std::string wrong = "<think>6+6</think>\n<answer>13</answer>";
  const std::string untagged_right = "<think>6+6</think> it is 12";
  const std::string nothing = "<think>6+6";
  RewardConfig c;  // additive: 1 * accuracy + 0.1 * format
  Reward r = compute_reward(p, right, 10, c);
  EXPECT_DOUBLE_EQ(r.total, 1.1);
  EXPECT_EQ(r.accuracy, 1.0);
  EXPECT_TRUE(r.format_ok);
  EXPECT_EQ(r.answer, "12");
  EXPECT_EQ(r.answer_source, AnswerSource::Tagged);
  EXPECT_DOUBLE_EQ(compute_reward(p, wrong, 10, c).total, 0.1);
  r = compute_reward(p, untagged_right, 10, c);
  EXPECT_DOUBLE_EQ(r.total, 1.0);
  EXPECT_FALSE(r.format_ok);
  EXPECT_EQ(r.answer_source, AnswerSource::Untagged);
  r = compute_reward(p, nothing, 10, c);
  EXPECT_DOUBLE_EQ(r.total, 0.0);
  EXPECT_EQ(r.why, "reasoning never closed (no </think>)");

  c.format_mode = FormatMode::TinyZero;  // 1 if correct, 0.1 if well-formed but wrong, else 0
  EXPECT_DOUBLE_EQ(compute_reward(p, right, 10, c).total, 1.0);
  EXPECT_DOUBLE_EQ(compute_reward(p, wrong, 10, c).total, 0.1);
  EXPECT_DOUBLE_EQ(compute_reward(p, "<think>x</think> 13", 10, c).total, 0.0);
  c.verify.allow_untagged = false;
  EXPECT_DOUBLE_EQ(compute_reward(p, untagged_right, 10, c).total, 0.0);

  RewardConfig w;
  w.accuracy_weight = 2.0;
  w.format_weight = 0.5;
  EXPECT_DOUBLE_EQ(compute_reward(p, right, 10, w).total, 2.5);
  // R1-style prompt that opened <think>: the completion has no opening tag.
  RewardConfig r1;
  r1.verify.starts_in_think = true;
  r = compute_reward(p, "6+6</think><answer>12</answer>", 10, r1);
  EXPECT_TRUE(r.format_ok);
  EXPECT_DOUBLE_EQ(r.total, 1.1);
}

TEST(Reward, OverlongPenalty) {
  const Problem p = numeric("1");
  const std::string right = "<think>x</think><answer>1</answer>";
  RewardConfig c;
  c.length_soft_limit = 100;
  c.length_hard_limit = 200;
  c.length_weight = 0.5;
  EXPECT_DOUBLE_EQ(compute_reward(p, right, 100, c).length_penalty, 0.0);
  EXPECT_DOUBLE_EQ(compute_reward(p, right, 150, c).length_penalty, 0.25);
  EXPECT_DOUBLE_EQ(compute_reward(p, right, 150, c).total, 1.1 - 0.25);
  EXPECT_DOUBLE_EQ(compute_reward(p, right, 200, c).length_penalty, 0.5);
  EXPECT_DOUBLE_EQ(compute_reward(p, right, 5000, c).length_penalty, 0.5);
  EXPECT_EQ(compute_reward(p, right, 150, c).length_tokens, 150);
  c.length_hard_limit = 100;
  EXPECT_THROW(compute_reward(p, right, 1, c), Error);
  EXPECT_THROW(parse_format_mode("mult"), Error);
  EXPECT_EQ(parse_format_mode("tinyzero"), FormatMode::TinyZero);
}

}  // namespace
}  // namespace qs::rl
