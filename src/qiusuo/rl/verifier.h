// Verifiers: find the answer in a model's completion and judge it, parsing everything ourselves
// (model text is never evaluated by an interpreter). All functions take any bytes, including
// invalid UTF-8 and megabytes of text, and run in time linear in the input.
//
// Answer extraction (extract_answer), the exact rule:
//   1. The response is the text after the first "</think>". If the completion has no "</think>":
//      when it opened reasoning ("<think>" occurs, or the prompt already opened it, R1-style:
//      VerifyOptions::starts_in_think) the reasoning never ended and there is no answer; otherwise
//      (a model that does not think) the whole completion is the response.
//   2. In the response, the answer is the content of the last complete <answer>...</answer>: the
//      last "</answer>" and the last "<answer>" before it (so several answers -> the last one;
//      "<answer>1 <answer>2</answer>" -> "2"; an unclosed trailing "<answer>" is ignored).
//   3. With no complete pair and allow_untagged (the default), the response with any answer tags
//      removed is searched by match kind: numeric -> the last decimal number in it ("1,234.5",
//      "-7"; a '-' counts as a sign only when no digit or letter precedes it; the longest valid
//      number ending at the last digit: "values 12,34" -> "34"); countdown -> on the last line
//      holding a digit (trailing '.' removed), the run of expression characters (digits, spaces,
//      + - * / = ( ) and the Unicode operators below) that ends the line, or else the run that
//      ends right before the line's last '=' ("(3 + 5) * 2 = 16." -> "(3 + 5) * 2 = 16";
//      "so 3 + 5 = 8 is it" -> "3 + 5"); exact and regex -> the last non-empty line.
//   4. The answer is trimmed of ASCII whitespace; one longer than max_answer_bytes is rejected
//      (not found).
//
// Matching (answer_correct):
//   exact     : trimmed answer == trimmed reference, byte for byte (case-sensitive).
//   numeric   : both sides are decimal numbers and equal exactly (canonical_decimal): optional
//               sign (+, -, U+2212), digits with optional thousands commas in groups of three,
//               optional fraction; no exponent, no fractions a/b. "1,234" == "1234" == "1234.0";
//               "-0" == "0"; any length, compared as digit strings (no overflow, no rounding). An
//               answer wrapped in \boxed{...} is unwrapped first.
//   regex     : PCRE2 (UTF) full match of the trimmed answer against the reference pattern;
//               invalid UTF-8 in the answer is replaced by U+FFFD first; a match that exceeds
//               PCRE2's match or depth limits counts as no match.
//   countdown : the answer is an expression over integers with + - * / and parentheses
//               (operator spellings: - or U+2212; * x X U+00D7 U+00B7 U+22C5 \times \cdot;
//               / U+00F7 \div), optionally followed by "= N" where N must be the target. No unary
//               plus or minus, no decimal points, at most 64 nested parentheses, 1024 bytes. It is
//               evaluated exactly in rationals whose numerators and denominators stay within
//               +-2^62 (beyond that the answer is invalid, never undefined behaviour); division by
//               zero is invalid; intermediate fractions are allowed. Correct iff the multiset of
//               the literals equals the given numbers (each used exactly as often as given) and
//               the value equals the target.
//
// Format (format_ok), the R1-Zero convention: optional leading whitespace, "<think>" (absent
// when the prompt already opened it), reasoning, "</think>", optional whitespace, "<answer>",
// a non-blank answer, "</answer>", optional trailing whitespace, and nothing else: each of the
// four tags exactly once (zero "<think>" when starts_in_think).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "qiusuo/rl/tasks.h"

namespace qs::rl {

struct VerifyOptions {
  bool starts_in_think = false;    // the prompt ends inside an open <think> (R1's template)
  bool allow_untagged = true;      // rule 3 above
  size_t max_answer_bytes = 4096;  // longer answers are not accepted
};

enum class AnswerSource { None, Tagged, Untagged };
const char* answer_source_name(AnswerSource s);  // "none", "tagged", "untagged"

struct ExtractedAnswer {
  AnswerSource source = AnswerSource::None;
  std::string text;           // trimmed; empty when source == None
  bool think_closed = false;  // the completion contains "</think>"
};
ExtractedAnswer extract_answer(std::string_view completion, MatchKind kind, const VerifyOptions& o = {});

// Judges an already extracted answer against the problem. `why`, when given, receives a short
// reason for a wrong answer (e.g. "uses 7 twice", "division by zero", "not a number").
bool answer_correct(const Problem& p, std::string_view answer, std::string* why = nullptr);

struct Verdict {
  bool correct = false;
  ExtractedAnswer extracted;
  std::string why;  // empty when correct
};
Verdict verify(const Problem& p, std::string_view completion, const VerifyOptions& o = {});

bool format_ok(std::string_view completion, bool starts_in_think = false);

// ---- numbers ---------------------------------------------------------------------------------------
// "1,234.50" -> "1234.5", "-0.0" -> "0", "+007" -> "7", "12,34" -> nullopt; see "numeric" above.
std::optional<std::string> canonical_decimal(std::string_view s);
bool numeric_equal(std::string_view a, std::string_view b);  // both must parse

// ---- countdown ---------------------------------------------------------------------------------------
struct Rational {
  int64_t num = 0, den = 1;  // den > 0, gcd(|num|, den) == 1
};
struct CountdownCheck {
  bool valid = false;    // parsed, evaluated, and used exactly the given numbers
  bool correct = false;  // valid and value == target
  Rational value;
  std::string why;       // why it is not correct
};
CountdownCheck check_countdown(std::string_view expression, std::span<const int64_t> numbers, int64_t target);
// Exact a op b for op in "+-*/" (the arithmetic the countdown verifier and solver share):
// nullopt on division by zero or when a reduced part would exceed 2^62.
std::optional<Rational> rational_op(char op, const Rational& a, const Rational& b);
// Parses and evaluates without the number-use and target checks; why != "" on failure.
std::optional<Rational> eval_countdown_expression(std::string_view expression, std::string* why = nullptr);

// ---- regex --------------------------------------------------------------------------------------------
class Regex {
 public:
  // qs::Error with PCRE2's message and offset when the pattern does not compile.
  static std::shared_ptr<const Regex> compile(const std::string& pattern);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;
  bool full_match(std::string_view text) const;  // see "regex" above
  const std::string& pattern() const { return pattern_; }

 private:
  Regex() = default;
  std::string pattern_;
  void* code_ = nullptr;  // pcre2_code_8*
};

// Invalid UTF-8 sequences replaced by U+FFFD (one per maximal invalid subpart).
std::string sanitize_utf8(std::string_view s);
bool is_valid_utf8(std::string_view s);

}  // namespace qs::rl
