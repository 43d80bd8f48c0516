// Verifiers against adversarial completions: several answers, nested and unclosed tags, huge
// numbers, division by zero, numbers used twice or not at all, unary minus, decimals, invalid
// UTF-8, megabyte outputs, catastrophic regexes.
#include "qiusuo/rl/verifier.h"

#include <gtest/gtest.h>

#include <string>

#include "qiusuo/core/error.h"

namespace qs::rl {
namespace {

using qs::rl::check_countdown;
CountdownCheck check_countdown(std::string_view e, std::initializer_list<int64_t> n, int64_t t) {
  return check_countdown(e, std::span<const int64_t>(n.begin(), n.size()), t);
}

Problem numeric(const std::string& answer) {
  Problem p;
  p.prompt = "q";
  p.answer = answer;
  p.match = MatchKind::Numeric;
  return p;
}
Problem countdown(std::vector<int64_t> numbers, int64_t target) {
  Problem p;
  p.prompt = "q";
  p.match = MatchKind::Countdown;
  p.numbers = std::move(numbers);
  p.target = target;
  return p;
}
Problem exact(const std::string& answer) {
  Problem p;
  p.prompt = "q";
  p.answer = answer;
  p.match = MatchKind::Exact;
  return p;
}
Problem regex(const std::string& pattern) {
  Problem p = exact(pattern);
  p.match = MatchKind::Regex;
  p.regex = Regex::compile(pattern);
  return p;
}

TEST(Extract, LastCompleteAnswerAfterThink) {
  const auto x = [](const std::string& s, VerifyOptions o = {}) { return extract_answer(s, MatchKind::Exact, o); };
  EXPECT_EQ(x("<think>r</think><answer>1</answer> <answer> 2 </answer>").text, "2");  // several: the last
  EXPECT_EQ(x("<think>r</think><answer>1 <answer>2</answer>").text, "2");             // nested opens
  EXPECT_EQ(x("<think>r</think><answer>5</answer><answer>6").text, "5");              // unclosed trailing
  EXPECT_EQ(x("<think>r</think><answer>5</answer><answer>6").source, AnswerSource::Tagged);
  // Answers inside the reasoning do not count.
  EXPECT_EQ(x("<think><answer>4</answer></think><answer>5</answer>").text, "5");
  EXPECT_EQ(x("<think>so <answer>4</answer> maybe").source, AnswerSource::None);  // reasoning never closed
  // The prompt opened <think> (R1 template): the completion starts inside the reasoning.
  VerifyOptions r1;
  r1.starts_in_think = true;
  EXPECT_EQ(x("hmm</think>\n<answer>7</answer>", r1).text, "7");
  EXPECT_EQ(x("<answer>7</answer>", r1).source, AnswerSource::None);  // still thinking
  // A model that does not think at all: the whole completion is the response.
  EXPECT_EQ(x("<answer>8</answer>").text, "8");
  // Only the first </think> ends the reasoning; a stray second one stays in the response.
  EXPECT_EQ(x("<think>a</think><answer>1</answer></think><answer>2</answer>").text, "2");
  EXPECT_TRUE(x("<think>a</think>x").think_closed);
}

TEST(Extract, UntaggedFallbackByKind) {
  EXPECT_EQ(extract_answer("<think>r</think>The answer is 1,234.", MatchKind::Numeric).text, "1,234");
  EXPECT_EQ(extract_answer("<think>r</think>so -7 it is", MatchKind::Numeric).text, "-7");
  EXPECT_EQ(extract_answer("<think>r</think>3-5 gives 2", MatchKind::Numeric).text, "2");
  EXPECT_EQ(extract_answer("<think>r</think>values 12,34", MatchKind::Numeric).text, "34");
  EXPECT_EQ(extract_answer("<think>r</think>x 1,234.5 y", MatchKind::Numeric).text, "1,234.5");
  EXPECT_EQ(extract_answer("<think>r</think>v1.2.3", MatchKind::Numeric).text, "2.3");
  EXPECT_EQ(extract_answer("<think>r</think>is .5", MatchKind::Numeric).text, ".5");
  EXPECT_EQ(extract_answer("<think>r</think>1234,567", MatchKind::Numeric).text, "567");
  EXPECT_EQ(extract_answer("<think>r</think><answer>42", MatchKind::Numeric).text, "42");  // unclosed tag
  EXPECT_EQ(extract_answer("<think>r</think><answer>42", MatchKind::Numeric).source, AnswerSource::Untagged);
  EXPECT_EQ(extract_answer("<think>r</think>no digits", MatchKind::Numeric).source, AnswerSource::None);
  EXPECT_EQ(extract_answer("<think>r</think>\nSo: (3 + 5) * 2 = 16.\n", MatchKind::Countdown).text, "(3 + 5) * 2 = 16");
  EXPECT_EQ(extract_answer("<think>r</think>use 8 × 3", MatchKind::Countdown).text, "8 × 3");
  EXPECT_EQ(extract_answer("<think>r</think>so 3 + 5 = 8 is it", MatchKind::Countdown).text, "3 + 5");
  EXPECT_EQ(extract_answer("<think>r</think>3 + 5\nno digits here", MatchKind::Countdown).text, "3 + 5");
  EXPECT_EQ(extract_answer("<think>r</think>nothing", MatchKind::Countdown).source, AnswerSource::None);
  EXPECT_EQ(extract_answer("<think>r</think>\n  Paris \n\n", MatchKind::Exact).text, "Paris");
  VerifyOptions strict;
  strict.allow_untagged = false;
  EXPECT_EQ(extract_answer("<think>r</think>42", MatchKind::Numeric, strict).source, AnswerSource::None);
}

TEST(Numeric, ExactDecimalEquality) {
  EXPECT_TRUE(numeric_equal("1,234", "1234"));
  EXPECT_TRUE(numeric_equal("1234", "1234.0"));
  EXPECT_TRUE(numeric_equal("+001,234.500", "1234.5"));
  EXPECT_TRUE(numeric_equal("-0", "0.000"));
  EXPECT_TRUE(numeric_equal(".5", "0.5"));
  EXPECT_TRUE(numeric_equal("42.", "42"));
  EXPECT_TRUE(numeric_equal("\xE2\x88\x92" "3", "-3"));  // U+2212 minus sign
  EXPECT_FALSE(numeric_equal("0.3", "0.30000000000000004"));  // no double rounding
  EXPECT_FALSE(numeric_equal("-3", "3"));
  for (const char* bad : {"12,34", "1,2345", "1.2.3", "1e3", "", "-", ".", "abc", "1 000", "0x10", "1,234,56"})
    EXPECT_FALSE(canonical_decimal(bad).has_value()) << bad;
  EXPECT_EQ(*canonical_decimal("1,234,567.000"), "1234567");
  // Thousand-digit numbers compare exactly.
  const std::string big(1000, '9');
  std::string big2 = big;
  big2.back() = '8';
  EXPECT_TRUE(numeric_equal(big, big + ".000"));
  EXPECT_FALSE(numeric_equal(big, big2));
  EXPECT_TRUE(verify(numeric(big), "<think>x</think><answer>" + big + "</answer>").correct);
  EXPECT_TRUE(verify(numeric("42"), "<think>x</think><answer>\\boxed{42}</answer>").correct);
}

TEST(Countdown, ExactRationalEvaluation) {
  const std::vector<int64_t> n = {8, 3, 8, 3};
  EXPECT_TRUE(check_countdown("8 / (3 - 8 / 3)", n, 24).correct);  // needs the fraction 1/3
  const std::vector<int64_t> m = {3, 7, 25, 50};
  EXPECT_TRUE(check_countdown("(50 + 25) + 3 * 7 + 7 - 7", m, 103).valid == false);
  EXPECT_TRUE(check_countdown("50 + 25 + 7 * 3 + 7", m, 103).valid == false);  // 7 twice
  EXPECT_EQ(check_countdown("50 + 25 + 7 * 3", m, 96).why, "");               // correct
  EXPECT_TRUE(check_countdown("50 + 25 + 7 * 3", m, 96).correct);
  EXPECT_NE(check_countdown("50 + 25 * 3", m, 125).why.find("does not use 7"), std::string::npos);
  EXPECT_NE(check_countdown("50 + 25 + 7 * 3 + 3", m, 99).why.find("uses 3 2 times"), std::string::npos);
  EXPECT_NE(check_countdown("50 + 25 + 7 * 4", m, 103).why.find("4, which is not given"), std::string::npos);
  // Operator spellings and "= target".
  EXPECT_TRUE(check_countdown("50 × 3 − 25 ÷ 25 * 7", {50, 3, 25, 25, 7}, 143).correct);
  EXPECT_TRUE(check_countdown("50 \\times 3 - 7", {50, 3, 7}, 143).correct);
  EXPECT_TRUE(check_countdown("50 x 3 - 7 = 143", {50, 3, 7}, 143).correct);
  EXPECT_FALSE(check_countdown("50 x 3 - 7 = 144", {50, 3, 7}, 143).correct);
  EXPECT_FALSE(check_countdown("50 x 3 - 7 = 143 = 143", {50, 3, 7}, 143).correct);
  EXPECT_FALSE(check_countdown("50 * 3 - 7", {50, 3, 7}, 144).correct);
  EXPECT_EQ(check_countdown("50 * 3 - 7", {50, 3, 7}, 144).why, "equals 143, not 144");
  // Rejected: division by zero, unary minus, decimals, junk, unbalanced parentheses.
  EXPECT_EQ(check_countdown("5 / (3 - 3)", {5, 3, 3}, 1).why, "division by zero");
  EXPECT_NE(check_countdown("-3 + 5 + 4", {3, 5, 4}, 6).why.find("unary"), std::string::npos);
  EXPECT_NE(check_countdown("3 * -5 + 4", {3, 5, 4}, -11).why.find("unary"), std::string::npos);
  EXPECT_NE(check_countdown("2.5 * 2 + 1", {2, 2, 1}, 6).why.find("decimal"), std::string::npos);
  EXPECT_FALSE(check_countdown("import os", {1}, 1).valid);
  EXPECT_FALSE(check_countdown("(3 + 5", {3, 5}, 8).valid);
  EXPECT_FALSE(check_countdown("3 + 5)", {3, 5}, 8).valid);
  EXPECT_FALSE(check_countdown("", {3}, 3).valid);
  EXPECT_FALSE(check_countdown("3 +", {3}, 3).valid);
  // Overflow is invalid, not undefined behaviour.
  std::string why;
  EXPECT_FALSE(eval_countdown_expression("999999999999999999 * 999999999999999999", &why).has_value());
  EXPECT_NE(why.find("too large"), std::string::npos);
  EXPECT_FALSE(eval_countdown_expression("1" + std::string(30, '0') + " + 1", &why).has_value());
  EXPECT_TRUE(eval_countdown_expression("1 / 999999999999999999 / 999999999999999999", &why) == std::nullopt);
  // Depth and length limits.
  EXPECT_TRUE(eval_countdown_expression(std::string(64, '(') + "1" + std::string(64, ')')).has_value());
  EXPECT_FALSE(eval_countdown_expression(std::string(65, '(') + "1" + std::string(65, ')'), &why).has_value());
  EXPECT_NE(why.find("nested"), std::string::npos);
  EXPECT_FALSE(eval_countdown_expression(std::string(1 << 20, '(')).has_value());
  std::string long_sum = "1";
  for (int i = 0; i < 1000; ++i) long_sum += " + 1";
  EXPECT_FALSE(eval_countdown_expression(long_sum).has_value());  // over 1024 bytes
}

TEST(Verify, CountdownThroughCompletions) {
  const Problem p = countdown({3, 7, 25, 50}, 96);
  EXPECT_FALSE(verify(p, "<think>try</think>\n<answer>50 + 25 + 3 * 7 + 7 - 7</answer>").correct);
  EXPECT_TRUE(verify(p, "<think>try</think>\n<answer>(50 + 25) + 3 * 7</answer>").correct);
  // The last answer counts, even when an earlier one was right.
  EXPECT_FALSE(verify(p, "<think>t</think><answer>50 + 25 + 3 * 7</answer><answer>1</answer>").correct);
  EXPECT_TRUE(verify(p, "<think>t</think><answer>1</answer><answer>50 + 25 + 3 * 7</answer>").correct);
  // Without tags: the expression on the last line.
  EXPECT_TRUE(verify(p, "<think>t</think>\nSo the equation is 50 + 25 + 3 * 7 = 96.").correct);
  const Verdict none = verify(p, "<think>thinking forever");
  EXPECT_FALSE(none.correct);
  EXPECT_EQ(none.why, "reasoning never closed (no </think>)");
}

TEST(Verify, InvalidUtf8AndHugeOutputs) {
  const std::string junk = "\xff\xfe\xc3(\xe2\x82\xed\xa0\x80\xf4\x90\x80\x80";
  EXPECT_FALSE(is_valid_utf8(junk));
  EXPECT_TRUE(is_valid_utf8(sanitize_utf8(junk)));
  EXPECT_TRUE(is_valid_utf8("ok \xE4\xB8\xAD\xF0\x9F\x98\x80"));
  EXPECT_EQ(sanitize_utf8("a\xffz"), "a\xEF\xBF\xBDz");
  EXPECT_TRUE(verify(numeric("12"), "<think>" + junk + "</think>" + junk + "<answer>12</answer>" + junk).correct);
  EXPECT_FALSE(verify(exact("ab"), "<think>x</think><answer>a\xff" "b</answer>").correct);
  EXPECT_TRUE(verify(regex("a.b"), "<think>x</think><answer>a\xff" "b</answer>").correct);  // U+FFFD is one char
  EXPECT_FALSE(verify(countdown({3}, 3), "<think>x</think><answer>\xff</answer>").correct);

  // A megabyte of reasoning, then the answer.
  const std::string mb(1 << 20, 'x');
  EXPECT_TRUE(verify(numeric("5"), "<think>" + mb + "</think><answer>5</answer>").correct);
  EXPECT_TRUE(format_ok("<think>" + mb + "</think><answer>5</answer>"));
  // A megabyte answer is rejected, not processed.
  const std::string huge_digits(1 << 20, '7');
  const Verdict v = verify(numeric(huge_digits), "<think>x</think><answer>" + huge_digits + "</answer>");
  EXPECT_FALSE(v.correct);
  EXPECT_EQ(v.extracted.source, AnswerSource::None);
  VerifyOptions big;
  big.max_answer_bytes = 2 << 20;
  EXPECT_TRUE(verify(numeric(huge_digits), "<think>x</think><answer>" + huge_digits + "</answer>", big).correct);
  // Megabytes of tags and digits without a closing tag.
  std::string many;
  for (int i = 0; i < 100000; ++i) many += "<answer>1";
  // (its fallback number is 100000 digits long: over max_answer_bytes, so no answer)
  EXPECT_EQ(verify(numeric("1"), "<think>x</think>" + many).extracted.source, AnswerSource::None);
  std::string seps = "1";
  for (int i = 0; i < 200000; ++i) seps += ",111";
  seps += ".1.1";  // one pass from the right, not quadratic
  EXPECT_EQ(extract_answer("<think>x</think>" + seps, MatchKind::Numeric).text, "1.1");
  EXPECT_FALSE(format_ok("<think>x</think>" + many));
}

TEST(Verify, ExactAndRegex) {
  EXPECT_TRUE(verify(exact("Paris"), "<think>x</think><answer>  Paris\n</answer>").correct);
  EXPECT_FALSE(verify(exact("Paris"), "<think>x</think><answer>paris</answer>").correct);
  EXPECT_TRUE(verify(regex("a|ab"), "<think>x</think><answer>ab</answer>").correct);  // full match backtracks
  EXPECT_FALSE(verify(regex("ab"), "<think>x</think><answer>abc</answer>").correct);
  EXPECT_FALSE(verify(regex("b"), "<think>x</think><answer>ab</answer>").correct);
  EXPECT_TRUE(verify(regex("(?i)paris|lutetia"), "<think>x</think><answer>PARIS</answer>").correct);
  // Catastrophic backtracking ends at PCRE2's match limit as "no match".
  const Problem evil = regex("(a+)+b");
  EXPECT_FALSE(verify(evil, "<think>x</think><answer>" + std::string(40, 'a') + "</answer>").correct);
  EXPECT_THROW(Regex::compile("(unclosed"), Error);
  // Without a compiled regex the pattern is compiled on the fly.
  Problem lazy = exact("\\d+");
  lazy.match = MatchKind::Regex;
  EXPECT_TRUE(verify(lazy, "<think>x</think><answer>123</answer>").correct);
}

TEST(Format, R1ZeroLayout) {
  EXPECT_TRUE(format_ok("<think>\nreason\n</think>\n<answer>\n5\n</answer>\n"));
  EXPECT_TRUE(format_ok("  <think></think><answer>5</answer>"));
  EXPECT_FALSE(format_ok("<think>r</think><answer> </answer>"));                      // blank answer
  EXPECT_FALSE(format_ok("<think>r</think>so <answer>5</answer>"));                   // text before the answer
  EXPECT_FALSE(format_ok("<think>r</think><answer>5</answer> done"));                 // text after it
  EXPECT_FALSE(format_ok("<think>r</think><answer>5</answer><answer>6</answer>"));    // two answers
  EXPECT_FALSE(format_ok("<think>r<answer>5</answer></think><answer>5</answer>"));   // answer inside
  EXPECT_FALSE(format_ok("<think>r<think></think><answer>5</answer>"));               // nested think
  EXPECT_FALSE(format_ok("r</think><answer>5</answer>"));                            // no <think>
  EXPECT_TRUE(format_ok("r</think><answer>5</answer>", /*starts_in_think=*/true));
  EXPECT_FALSE(format_ok("<think>r</think><answer>5</answer>", /*starts_in_think=*/true));
  EXPECT_FALSE(format_ok("<think>r</think><answer>5"));                               // unclosed answer
  EXPECT_FALSE(format_ok("<think>r<answer>5</answer>"));                              // unclosed think
  EXPECT_FALSE(format_ok("<answer>5</answer>"));
  EXPECT_FALSE(format_ok(""));
}

}  // namespace
}  // namespace qs::rl
