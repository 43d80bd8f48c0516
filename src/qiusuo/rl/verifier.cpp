// Answer extraction and matching; the rules are written out in verifier.h.
#include "qiusuo/rl/verifier.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <numeric>

#include "qiusuo/core/error.h"

namespace qs::rl {
namespace {

constexpr std::string_view kThinkOpen = "<think>", kThinkClose = "</think>";
constexpr std::string_view kAnswerOpen = "<answer>", kAnswerClose = "</answer>";

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alnum(char c) { return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

std::string_view trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && is_space(s[b])) ++b;
  while (e > b && is_space(s[e - 1])) --e;
  return s.substr(b, e - b);
}

size_t count_of(std::string_view s, std::string_view needle) {
  size_t n = 0;
  for (size_t at = s.find(needle); at != std::string_view::npos; at = s.find(needle, at + needle.size())) ++n;
  return n;
}

std::string remove_all(std::string_view s, std::string_view needle) {
  std::string out;
  out.reserve(s.size());
  size_t from = 0;
  for (size_t at = s.find(needle); at != std::string_view::npos; at = s.find(needle, from)) {
    out.append(s.substr(from, at - from));
    from = at + needle.size();
  }
  out.append(s.substr(from));
  return out;
}

// Multi-byte operator spellings, longest first where one is a prefix of another.
constexpr std::string_view kMinusSign = "\xE2\x88\x92";   // U+2212
constexpr std::string_view kTimesSign = "\xC3\x97";       // U+00D7
constexpr std::string_view kMiddleDot = "\xC2\xB7";       // U+00B7
constexpr std::string_view kDotOperator = "\xE2\x8B\x85"; // U+22C5
constexpr std::string_view kDivideSign = "\xC3\xB7";      // U+00F7

bool starts_with_at(std::string_view s, size_t i, std::string_view p) { return s.substr(i, p.size()) == p; }

// ---- rationals with bounded parts -----------------------------------------------------------------
using i128 = __int128;
using u128 = unsigned __int128;
constexpr i128 kRationalLimit = i128(1) << 62;

u128 gcd_u128(u128 a, u128 b) {
  while (b != 0) {
    const u128 t = a % b;
    a = b;
    b = t;
  }
  return a;
}

// Normalizes n/d into r; false when d == 0 or a part exceeds 2^62 after reduction.
bool make_rational(i128 n, i128 d, Rational& r) {
  if (d == 0) return false;
  if (d < 0) n = -n, d = -d;
  const u128 an = n < 0 ? u128(-n) : u128(n);
  const u128 g = gcd_u128(an, u128(d));
  if (g > 1) n /= i128(g), d /= i128(g);
  if (n > kRationalLimit || n < -kRationalLimit || d > kRationalLimit) return false;
  r.num = int64_t(n);
  r.den = int64_t(d);
  return true;
}

// ---- countdown expression parser: expr := term (('+'|'-') term)*; term := factor (('*'|'/')
// factor)*; factor := integer | '(' expr ')'. No unary operators. -------------------------------------
class ExprParser {
 public:
  explicit ExprParser(std::string_view s) : s_(s) {}

  bool parse(Rational& value, std::vector<int64_t>* literals, std::string& why) {
    literals_ = literals;
    if (!expr(value)) {
      why = why_;
      return false;
    }
    skip_ws();
    if (i_ != s_.size()) {
      why = s_[i_] == ')' ? "unbalanced ')'" : str("unexpected '", char_at(i_), "'");
      return false;
    }
    return true;
  }

 private:
  enum class Op { None, Add, Sub, Mul, Div };

  std::string char_at(size_t i) const {
    // The whole UTF-8 sequence, for a readable message.
    size_t n = 1;
    const unsigned char c = static_cast<unsigned char>(s_[i]);
    if (c >= 0xC0) n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
    return sanitize_utf8(s_.substr(i, n));
  }
  void skip_ws() {
    while (i_ < s_.size() && is_space(s_[i_])) ++i_;
  }
  // Reads an operator at i_ without consuming it; returns its byte length in len.
  Op peek_op(size_t& len) const {
    len = 0;
    if (i_ >= s_.size()) return Op::None;
    const char c = s_[i_];
    if (c == '+') return len = 1, Op::Add;
    if (c == '-') return len = 1, Op::Sub;
    if (c == '*' || c == 'x' || c == 'X') return len = 1, Op::Mul;
    if (c == '/') return len = 1, Op::Div;
    for (const auto& [sp, op] : {std::pair{kMinusSign, Op::Sub}, std::pair{kTimesSign, Op::Mul},
                                std::pair{kMiddleDot, Op::Mul}, std::pair{kDotOperator, Op::Mul},
                                std::pair{kDivideSign, Op::Div}, std::pair{std::string_view("\\times"), Op::Mul},
                                std::pair{std::string_view("\\cdot"), Op::Mul},
                                std::pair{std::string_view("\\div"), Op::Div}})
      if (starts_with_at(s_, i_, sp)) return len = sp.size(), op;
    return Op::None;
  }
  bool fail(std::string why) {
    if (why_.empty()) why_ = std::move(why);
    return false;
  }
  bool apply(Op op, const Rational& a, const Rational& b, Rational& out) {
    const char c = op == Op::Add ? '+' : op == Op::Sub ? '-' : op == Op::Mul ? '*' : '/';
    if (op == Op::Div && b.num == 0) return fail("division by zero");
    const auto r = rational_op(c, a, b);
    if (!r) return fail("a value is too large (beyond 2^62)");
    out = *r;
    return true;
  }
  bool expr(Rational& v) {
    if (!term(v)) return false;
    for (;;) {
      skip_ws();
      size_t len = 0;
      const Op op = peek_op(len);
      if (op != Op::Add && op != Op::Sub) return true;
      i_ += len;
      Rational r;
      if (!term(r) || !apply(op, v, r, v)) return false;
    }
  }
  bool term(Rational& v) {
    if (!factor(v)) return false;
    for (;;) {
      skip_ws();
      size_t len = 0;
      const Op op = peek_op(len);
      if (op != Op::Mul && op != Op::Div) return true;
      i_ += len;
      Rational r;
      if (!factor(r) || !apply(op, v, r, v)) return false;
    }
  }
  bool factor(Rational& v) {
    skip_ws();
    if (i_ >= s_.size()) return fail("expression ends where a number was expected");
    const char c = s_[i_];
    if (c == '(') {
      if (++depth_ > 64) return fail("more than 64 nested parentheses");
      ++i_;
      if (!expr(v)) return false;
      skip_ws();
      if (i_ >= s_.size() || s_[i_] != ')') return fail("missing ')'");
      ++i_;
      --depth_;
      return true;
    }
    if (is_digit(c)) {
      int64_t x = 0;
      size_t nd = 0;
      while (i_ < s_.size() && is_digit(s_[i_])) {
        if (++nd > 18) return fail("a number has more than 18 digits");
        x = x * 10 + (s_[i_] - '0');
        ++i_;
      }
      if (i_ + 1 < s_.size() && s_[i_] == '.' && is_digit(s_[i_ + 1]))
        return fail("decimal numbers are not allowed (integers only)");
      v = Rational{x, 1};
      if (literals_) literals_->push_back(x);
      return true;
    }
    size_t len = 0;
    const Op op = peek_op(len);
    if (op == Op::Add || op == Op::Sub) return fail("unary plus or minus is not allowed");
    if (op != Op::None) return fail("an operator where a number was expected");
    if (c == ')') return fail("unbalanced ')'");
    return fail(str("unexpected '", char_at(i_), "'"));
  }

  std::string_view s_;
  size_t i_ = 0;
  int depth_ = 0;
  std::string why_;
  std::vector<int64_t>* literals_ = nullptr;
};

bool parse_integer_literal(std::string_view s, int64_t& out) {
  s = trim(s);
  if (s.empty() || s.size() > 18) return false;
  int64_t x = 0;
  for (char c : s) {
    if (!is_digit(c)) return false;
    x = x * 10 + (c - '0');
  }
  out = x;
  return true;
}

// ---- untagged answers ---------------------------------------------------------------------------------
// The last decimal number in s, found right to left in one pass: the longest valid number that
// ends at the last digit ("values 12,34" -> "34", "1.2.3" -> "2.3", "x 1,234.5" -> "1,234.5").
std::string last_number(std::string_view s) {
  size_t i = s.size();
  while (i > 0 && !is_digit(s[i - 1])) --i;
  if (i == 0) return "";
  const auto digits_before = [&](size_t at) {  // start of the digit run that ends at `at`
    while (at > 0 && is_digit(s[at - 1])) --at;
    return at;
  };
  size_t j = digits_before(i);  // [j, i): the last digit run
  size_t start = j;
  if (j > 0 && s[j - 1] == '.') {  // [j, i) is a fraction
    const size_t dot = j - 1, m = digits_before(dot);
    if (m == dot) {
      start = dot;  // ".5"
      j = i = dot;
    } else {
      start = m;
      j = m;
      i = dot;
    }
  }
  // Thousands groups to the left of the integer part's last group [j, i).
  while (j == start && i - j == 3 && j > 0 && s[j - 1] == ',') {
    const size_t comma = j - 1, m = digits_before(comma);
    const size_t len = comma - m;
    if (len == 0 || len > 3) break;
    start = m;
    if (len < 3) break;  // the leftmost group
    i = comma;
    j = m;
  }
  if (start >= 1 && s[start - 1] == '-' && (start < 2 || !is_alnum(s[start - 2]))) {
    --start;
  } else if (start >= kMinusSign.size() && s.substr(start - kMinusSign.size(), kMinusSign.size()) == kMinusSign &&
             (start == kMinusSign.size() || !is_alnum(s[start - kMinusSign.size() - 1]))) {
    start -= kMinusSign.size();
  }
  size_t e = s.size();
  while (e > start && !is_digit(s[e - 1])) --e;
  std::string cand(s.substr(start, e - start));
  return canonical_decimal(cand) ? cand : "";
}

bool is_expression_byte_at(std::string_view s, size_t i, size_t& len) {
  const char c = s[i];
  len = 1;
  if (is_digit(c) || c == ' ' || c == '\t' || c == '+' || c == '-' || c == '*' || c == '/' || c == '(' ||
      c == ')' || c == '=')
    return true;
  for (std::string_view sp : {kMinusSign, kTimesSign, kMiddleDot, kDotOperator, kDivideSign})
    if (starts_with_at(s, i, sp)) return len = sp.size(), true;
  return false;
}

std::string last_expression(std::string_view s) {
  // The last line holding a digit.
  size_t digit = std::string_view::npos;
  for (size_t i = s.size(); i > 0; --i)
    if (is_digit(s[i - 1])) { digit = i - 1; break; }
  if (digit == std::string_view::npos) return "";
  size_t lb = s.rfind('\n', digit);
  lb = lb == std::string_view::npos ? 0 : lb + 1;
  size_t le = s.find('\n', digit);
  if (le == std::string_view::npos) le = s.size();
  std::string_view line = trim(s.substr(lb, le - lb));
  while (!line.empty() && (line.back() == '.' || is_space(line.back()))) line.remove_suffix(1);
  // The run of expression characters (scanning forward: the start of a run is just after the
  // last byte that is not an expression character) that ends `text`, trimmed.
  const auto run_at_end = [](std::string_view text) {
    size_t start = 0;
    for (size_t i = 0; i < text.size();) {
      size_t len = 1;
      if (is_expression_byte_at(text, i, len)) {
        i += len;
      } else {
        i += 1;
        start = i;
      }
    }
    return trim(text.substr(start));
  };
  const auto has_digit = [](std::string_view t) { return std::any_of(t.begin(), t.end(), is_digit); };
  std::string_view run = run_at_end(line);
  if (!has_digit(run)) {  // "so 3 + 5 = 8 is it": the run before the last '='
    const size_t eq = line.rfind('=');
    run = eq == std::string_view::npos ? std::string_view() : run_at_end(line.substr(0, eq));
    if (!has_digit(run)) run = {};
  }
  return std::string(run);
}

std::string last_nonempty_line(std::string_view s) {
  size_t e = s.size();
  while (e > 0) {
    size_t b = s.rfind('\n', e - 1);
    b = b == std::string_view::npos ? 0 : b + 1;
    const std::string_view line = trim(s.substr(b, e - b));
    if (!line.empty()) return std::string(line);
    if (b == 0) break;
    e = b - 1;
  }
  return "";
}

std::string_view unwrap_boxed(std::string_view s) {
  s = trim(s);
  constexpr std::string_view kBoxed = "\\boxed{";
  if (s.size() > kBoxed.size() && s.substr(0, kBoxed.size()) == kBoxed && s.back() == '}')
    return trim(s.substr(kBoxed.size(), s.size() - kBoxed.size() - 1));
  return s;
}

// Length of a valid UTF-8 sequence at s[i], or 0 if none starts there.
size_t utf8_len(std::string_view s, size_t i, size_t* maximal_invalid = nullptr) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  if (maximal_invalid) *maximal_invalid = 1;
  if (c < 0x80) return 1;
  size_t n = 0;
  unsigned char lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) n = 2;
  else if (c == 0xE0) n = 3, lo = 0xA0;
  else if (c >= 0xE1 && c <= 0xEC) n = 3;
  else if (c == 0xED) n = 3, hi = 0x9F;
  else if (c >= 0xEE && c <= 0xEF) n = 3;
  else if (c == 0xF0) n = 4, lo = 0x90;
  else if (c >= 0xF1 && c <= 0xF3) n = 4;
  else if (c == 0xF4) n = 4, hi = 0x8F;
  else return 0;
  for (size_t k = 1; k < n; ++k) {
    if (i + k >= s.size()) return 0;
    const unsigned char x = b(i + k);
    const unsigned char l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
    if (x < l || x > h) return 0;
    if (maximal_invalid) *maximal_invalid = k + 1;
  }
  return n;
}

}  // namespace

// ---- UTF-8 ------------------------------------------------------------------------------------------
bool is_valid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const size_t n = utf8_len(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

std::string sanitize_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    size_t bad = 1;
    const size_t n = utf8_len(s, i, &bad);
    if (n) {
      out.append(s.substr(i, n));
      i += n;
    } else {
      out.append("\xEF\xBF\xBD");
      i += std::max<size_t>(1, std::min(bad, s.size() - i));
    }
  }
  return out;
}

// ---- numbers --------------------------------------------------------------------------------------------
std::optional<std::string> canonical_decimal(std::string_view s) {
  s = trim(s);
  size_t i = 0;
  bool neg = false;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
    neg = s[i] == '-';
    ++i;
  } else if (starts_with_at(s, i, kMinusSign)) {
    neg = true;
    i += kMinusSign.size();
  }
  std::string int_digits, frac_digits;
  // Integer part: digits, or 1..3 digits followed by groups ",ddd".
  while (i < s.size() && is_digit(s[i])) int_digits.push_back(s[i++]);
  if (i < s.size() && s[i] == ',') {
    if (int_digits.empty() || int_digits.size() > 3) return std::nullopt;
    while (i < s.size() && s[i] == ',') {
      if (i + 4 > s.size() || !is_digit(s[i + 1]) || !is_digit(s[i + 2]) || !is_digit(s[i + 3])) return std::nullopt;
      if (i + 4 < s.size() && is_digit(s[i + 4])) return std::nullopt;  // a group of more than 3
      int_digits.append(s.substr(i + 1, 3));
      i += 4;
    }
  }
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && is_digit(s[i])) frac_digits.push_back(s[i++]);
  }
  if (i != s.size() || (int_digits.empty() && frac_digits.empty())) return std::nullopt;
  const size_t nz = int_digits.find_first_not_of('0');
  int_digits = nz == std::string::npos ? "0" : int_digits.substr(nz);
  while (!frac_digits.empty() && frac_digits.back() == '0') frac_digits.pop_back();
  std::string out;
  if (neg && !(int_digits == "0" && frac_digits.empty())) out.push_back('-');
  out += int_digits;
  if (!frac_digits.empty()) out += "." + frac_digits;
  return out;
}

bool numeric_equal(std::string_view a, std::string_view b) {
  const auto ca = canonical_decimal(a), cb = canonical_decimal(b);
  return ca && cb && *ca == *cb;
}

// ---- countdown ------------------------------------------------------------------------------------------
std::optional<Rational> rational_op(char op, const Rational& a, const Rational& b) {
  // Fast path: parts below 2^31 fit every product and sum in int64 (the solver's common case).
  constexpr int64_t kSmall = int64_t(1) << 31;
  if (a.num > -kSmall && a.num < kSmall && b.num > -kSmall && b.num < kSmall && a.den < kSmall && b.den < kSmall) {
    int64_t n = 0, d = 1;
    switch (op) {
      case '+': n = a.num * b.den + b.num * a.den; d = a.den * b.den; break;
      case '-': n = a.num * b.den - b.num * a.den; d = a.den * b.den; break;
      case '*': n = a.num * b.num; d = a.den * b.den; break;
      case '/':
        if (b.num == 0) return std::nullopt;
        n = a.num * b.den;
        d = a.den * b.num;
        if (d < 0) n = -n, d = -d;
        break;
      default: return std::nullopt;
    }
    if (d != 1) {
      const int64_t g = std::gcd(n < 0 ? -n : n, d);
      if (g > 1) n /= g, d /= g;
    }
    if (n > int64_t(kRationalLimit) || n < -int64_t(kRationalLimit) || d > int64_t(kRationalLimit)) return std::nullopt;
    return Rational{n, d};
  }
  i128 n = 0, d = 1;
  switch (op) {
    case '+': n = i128(a.num) * b.den + i128(b.num) * a.den; d = i128(a.den) * b.den; break;
    case '-': n = i128(a.num) * b.den - i128(b.num) * a.den; d = i128(a.den) * b.den; break;
    case '*': n = i128(a.num) * b.num; d = i128(a.den) * b.den; break;
    case '/':
      if (b.num == 0) return std::nullopt;
      n = i128(a.num) * b.den;
      d = i128(a.den) * b.num;
      break;
    default: return std::nullopt;
  }
  Rational r;
  if (d == 1) {  // integers: no reduction needed (the common case in the solver)
    if (n > kRationalLimit || n < -kRationalLimit) return std::nullopt;
    return Rational{int64_t(n), 1};
  }
  if (!make_rational(n, d, r)) return std::nullopt;
  return r;
}

std::optional<Rational> eval_countdown_expression(std::string_view expression, std::string* why) {
  std::string w;
  Rational v;
  if (expression.size() > 1024) w = "expression longer than 1024 bytes";
  else if (trim(expression).empty()) w = "empty expression";
  else if (expression.find('=') != std::string_view::npos) w = "'=' inside the expression";
  else if (ExprParser(expression).parse(v, nullptr, w)) return v;
  if (why) *why = w;
  return std::nullopt;
}

CountdownCheck check_countdown(std::string_view expression, std::span<const int64_t> numbers, int64_t target) {
  CountdownCheck r;
  if (expression.size() > 1024) {
    r.why = "expression longer than 1024 bytes";
    return r;
  }
  std::string_view lhs = expression;
  const size_t eq = expression.find('=');
  if (eq != std::string_view::npos) {
    if (expression.find('=', eq + 1) != std::string_view::npos) {
      r.why = "more than one '='";
      return r;
    }
    int64_t rhs = 0;
    if (!parse_integer_literal(expression.substr(eq + 1), rhs) || rhs != target) {
      r.why = "the right side of '=' is not the target";
      return r;
    }
    lhs = expression.substr(0, eq);
  }
  if (trim(lhs).empty()) {
    r.why = "empty expression";
    return r;
  }
  std::vector<int64_t> used;
  if (!ExprParser(lhs).parse(r.value, &used, r.why)) return r;
  std::map<int64_t, int> given_count, used_count;
  for (int64_t n : numbers) ++given_count[n];
  for (int64_t n : used) ++used_count[n];
  for (const auto& [n, k] : used_count) {
    const auto it = given_count.find(n);
    if (it == given_count.end()) {
      r.why = str("uses ", n, ", which is not given");
      return r;
    }
    if (k > it->second) {
      r.why = it->second == 1 ? str("uses ", n, " ", k, " times (given once)")
                              : str("uses ", n, " ", k, " times (given ", it->second, " times)");
      return r;
    }
  }
  for (const auto& [n, k] : given_count) {
    const auto it = used_count.find(n);
    if (it == used_count.end() || it->second < k) {
      r.why = str("does not use ", n, k > 1 ? " as often as given" : "");
      return r;
    }
  }
  r.valid = true;
  r.correct = r.value.den == 1 && r.value.num == target;
  if (!r.correct)
    r.why = r.value.den == 1 ? str("equals ", r.value.num, ", not ", target)
                             : str("equals ", r.value.num, "/", r.value.den, ", not ", target);
  return r;
}

// ---- regex ---------------------------------------------------------------------------------------------------
std::shared_ptr<const Regex> Regex::compile(const std::string& pattern) {
  int err = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   PCRE2_UTF | PCRE2_ANCHORED | PCRE2_ENDANCHORED, &err, &offset, nullptr);
  if (!code) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    fail("invalid regex '", sanitize_utf8(pattern), "': ", reinterpret_cast<const char*>(msg), " at offset ", offset);
  }
  std::shared_ptr<Regex> r(new Regex());
  r->pattern_ = pattern;
  r->code_ = code;
  return r;
}

Regex::~Regex() {
  if (code_) pcre2_code_free(static_cast<pcre2_code*>(code_));
}

bool Regex::full_match(std::string_view text) const {
  const std::string subject = sanitize_utf8(text);
  pcre2_code* code = static_cast<pcre2_code*>(code_);
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(code, nullptr);
  pcre2_match_context* mc = pcre2_match_context_create(nullptr);
  if (!md || !mc) {
    if (md) pcre2_match_data_free(md);
    if (mc) pcre2_match_context_free(mc);
    fail(ErrorKind::Internal, "regex: out of memory");
  }
  pcre2_set_match_limit(mc, 1000000);
  pcre2_set_depth_limit(mc, 10000);
  const int rc = pcre2_match(code, reinterpret_cast<PCRE2_SPTR>(subject.data()), subject.size(), 0, 0, md, mc);
  pcre2_match_context_free(mc);
  pcre2_match_data_free(md);
  return rc >= 0;  // no match, match-limit and depth-limit errors all count as no match
}

// ---- extraction, matching, format -----------------------------------------------------------------------
const char* answer_source_name(AnswerSource s) {
  switch (s) {
    case AnswerSource::None: return "none";
    case AnswerSource::Tagged: return "tagged";
    case AnswerSource::Untagged: return "untagged";
  }
  return "?";
}

ExtractedAnswer extract_answer(std::string_view completion, MatchKind kind, const VerifyOptions& o) {
  ExtractedAnswer ex;
  std::string_view response;
  const size_t close = completion.find(kThinkClose);
  if (close != std::string_view::npos) {
    ex.think_closed = true;
    response = completion.substr(close + kThinkClose.size());
  } else if (o.starts_in_think || completion.find(kThinkOpen) != std::string_view::npos) {
    return ex;  // still reasoning: no answer
  } else {
    response = completion;
  }
  std::string answer;
  const size_t aclose = response.rfind(kAnswerClose);
  const size_t aopen = aclose == std::string_view::npos ? std::string_view::npos : response.rfind(kAnswerOpen, aclose);
  if (aopen != std::string_view::npos) {
    answer = std::string(trim(response.substr(aopen + kAnswerOpen.size(), aclose - aopen - kAnswerOpen.size())));
    ex.source = AnswerSource::Tagged;
  } else if (o.allow_untagged) {
    const std::string text = remove_all(remove_all(response, kAnswerOpen), kAnswerClose);
    switch (kind) {
      case MatchKind::Numeric: answer = last_number(text); break;
      case MatchKind::Countdown: answer = last_expression(text); break;
      case MatchKind::Exact:
      case MatchKind::Regex: answer = last_nonempty_line(text); break;
    }
    if (!answer.empty()) ex.source = AnswerSource::Untagged;
  }
  if (ex.source != AnswerSource::None && answer.size() > o.max_answer_bytes) {
    ex.source = AnswerSource::None;
    answer.clear();
  }
  ex.text = std::move(answer);
  return ex;
}

bool answer_correct(const Problem& p, std::string_view answer, std::string* why) {
  std::string w;
  bool ok = false;
  switch (p.match) {
    case MatchKind::Exact:
      ok = trim(answer) == trim(p.answer);
      if (!ok) w = "differs from the reference";
      break;
    case MatchKind::Numeric: {
      const auto a = canonical_decimal(unwrap_boxed(answer)), ref = canonical_decimal(p.answer);
      if (!ref) w = "the reference answer is not a number";
      else if (!a) w = "not a number";
      else if (!(ok = *a == *ref)) w = "a different number";
      break;
    }
    case MatchKind::Regex: {
      const std::shared_ptr<const Regex> re = p.regex ? p.regex : Regex::compile(p.answer);
      ok = re->full_match(trim(answer));
      if (!ok) w = "does not match the pattern";
      break;
    }
    case MatchKind::Countdown: {
      const CountdownCheck c = check_countdown(trim(answer), p.numbers, p.target);
      ok = c.correct;
      w = c.why;
      break;
    }
  }
  if (why) *why = ok ? "" : w;
  return ok;
}

Verdict verify(const Problem& p, std::string_view completion, const VerifyOptions& o) {
  Verdict v;
  v.extracted = extract_answer(completion, p.match, o);
  if (v.extracted.source == AnswerSource::None) {
    const bool reasoning_open =
        !v.extracted.think_closed && (o.starts_in_think || completion.find(kThinkOpen) != std::string_view::npos);
    v.why = reasoning_open ? "reasoning never closed (no </think>)" : "no answer found";
    return v;
  }
  v.correct = answer_correct(p, v.extracted.text, &v.why);
  return v;
}

bool format_ok(std::string_view s, bool starts_in_think) {
  if (count_of(s, kThinkOpen) != (starts_in_think ? 0u : 1u) || count_of(s, kThinkClose) != 1 ||
      count_of(s, kAnswerOpen) != 1 || count_of(s, kAnswerClose) != 1)
    return false;
  size_t i = 0;
  if (!starts_in_think) {
    while (i < s.size() && is_space(s[i])) ++i;
    if (s.substr(i, kThinkOpen.size()) != kThinkOpen) return false;
  }
  i = s.find(kThinkClose) + kThinkClose.size();
  while (i < s.size() && is_space(s[i])) ++i;
  if (s.substr(i, kAnswerOpen.size()) != kAnswerOpen) return false;
  i += kAnswerOpen.size();
  const size_t close = s.find(kAnswerClose, i);
  if (close == std::string_view::npos || trim(s.substr(i, close - i)).empty()) return false;
  return trim(s.substr(close + kAnswerClose.size())).empty();
}

}  // namespace qs::rl
