// Multi-digit arithmetic: exact evaluation over decimal digit strings of any length, the
// generator, and worked solutions (column by column, by place value, or brief).
#include <algorithm>
#include <cstdint>
#include <string>
#include <unordered_set>
#include <vector>

#include "qiusuo/core/error.h"
#include "qiusuo/rl/task_detail.h"
#include "qiusuo/rl/verifier.h"

namespace qs::rl {
namespace {

// ---- signed integers of any length: decimal digits, least significant first -------------------------
struct Big {
  bool neg = false;
  std::vector<uint8_t> d;  // no leading zeros; zero is empty (and never negative)
  bool zero() const { return d.empty(); }
};

void normalize(Big& x) {
  while (!x.d.empty() && x.d.back() == 0) x.d.pop_back();
  if (x.d.empty()) x.neg = false;
}

Big big_from_digits(std::string_view s) {  // digits only
  Big x;
  for (size_t i = s.size(); i > 0; --i) x.d.push_back(uint8_t(s[i - 1] - '0'));
  normalize(x);
  return x;
}

std::string to_string(const Big& x) {
  if (x.zero()) return "0";
  std::string s = x.neg ? "-" : "";
  for (size_t i = x.d.size(); i > 0; --i) s.push_back(char('0' + x.d[i - 1]));
  return s;
}

int cmp_mag(const Big& a, const Big& b) {
  if (a.d.size() != b.d.size()) return a.d.size() < b.d.size() ? -1 : 1;
  for (size_t i = a.d.size(); i > 0; --i)
    if (a.d[i - 1] != b.d[i - 1]) return a.d[i - 1] < b.d[i - 1] ? -1 : 1;
  return 0;
}

Big add_mag(const Big& a, const Big& b) {
  Big r;
  int carry = 0;
  for (size_t i = 0; i < std::max(a.d.size(), b.d.size()) || carry; ++i) {
    const int s = (i < a.d.size() ? a.d[i] : 0) + (i < b.d.size() ? b.d[i] : 0) + carry;
    r.d.push_back(uint8_t(s % 10));
    carry = s / 10;
  }
  normalize(r);
  return r;
}

Big sub_mag(const Big& a, const Big& b) {  // |a| >= |b|
  Big r;
  int borrow = 0;
  for (size_t i = 0; i < a.d.size(); ++i) {
    int s = a.d[i] - borrow - (i < b.d.size() ? b.d[i] : 0);
    borrow = s < 0;
    r.d.push_back(uint8_t(s + (borrow ? 10 : 0)));
  }
  normalize(r);
  return r;
}

Big mul_mag(const Big& a, const Big& b) {
  if (a.zero() || b.zero()) return {};
  std::vector<uint32_t> acc(a.d.size() + b.d.size(), 0);
  for (size_t i = 0; i < a.d.size(); ++i)
    for (size_t j = 0; j < b.d.size(); ++j) acc[i + j] += uint32_t(a.d[i]) * b.d[j];
  Big r;
  uint32_t carry = 0;
  for (uint32_t v : acc) {
    v += carry;
    r.d.push_back(uint8_t(v % 10));
    carry = v / 10;
  }
  while (carry) r.d.push_back(uint8_t(carry % 10)), carry /= 10;
  normalize(r);
  return r;
}

Big negate(Big x) {
  if (!x.zero()) x.neg = !x.neg;
  return x;
}

Big add(const Big& a, const Big& b) {
  if (a.neg == b.neg) {
    Big r = add_mag(a, b);
    r.neg = a.neg && !r.zero();
    return r;
  }
  if (cmp_mag(a, b) >= 0) {
    Big r = sub_mag(a, b);
    r.neg = a.neg && !r.zero();
    return r;
  }
  Big r = sub_mag(b, a);
  r.neg = b.neg && !r.zero();
  return r;
}
Big sub(const Big& a, const Big& b) { return add(a, negate(b)); }
Big mul(const Big& a, const Big& b) {
  Big r = mul_mag(a, b);
  r.neg = (a.neg != b.neg) && !r.zero();
  return r;
}
Big apply(const Big& a, char op, const Big& b) { return op == '+' ? add(a, b) : op == '-' ? sub(a, b) : mul(a, b); }
Big abs_of(Big x) { x.neg = false; return x; }
Big shifted(const Big& x, size_t places) {  // x * 10^places
  if (x.zero()) return x;
  Big r = x;
  r.d.insert(r.d.begin(), places, 0);
  return r;
}

// ---- expressions ---------------------------------------------------------------------------------------
struct Expr {
  std::vector<Big> operands;
  std::string ops;
};

Expr parse_expression(const std::string& e) {
  Expr x;
  size_t i = 0;
  const auto skip = [&] { while (i < e.size() && e[i] == ' ') ++i; };
  for (;;) {
    skip();
    const size_t b = i;
    while (i < e.size() && e[i] >= '0' && e[i] <= '9') ++i;
    if (i == b) fail("arithmetic expression '", e, "': expected a number at offset ", b);
    x.operands.push_back(big_from_digits(std::string_view(e).substr(b, i - b)));
    skip();
    if (i == e.size()) break;
    if (e[i] != '+' && e[i] != '-' && e[i] != '*') fail("arithmetic expression '", e, "': unexpected '", e[i], "'");
    x.ops.push_back(e[i++]);
  }
  return x;
}

std::string render(const std::vector<Big>& vals, const std::string& ops) {
  std::string s = to_string(vals[0]);
  for (size_t i = 0; i < ops.size(); ++i) s += std::string(" ") + ops[i] + " " + to_string(vals[i + 1]);
  return s;
}

struct Step {
  Big a, b, r;
  char op;
  std::string after;  // the expression after this step
};

// Multiplications first (left to right), then + and - left to right. Every right operand is
// therefore non-negative (an operand or a product of operands); only the left one can be negative.
std::vector<Step> evaluate(Expr x) {
  std::vector<Step> steps;
  const auto reduce = [&](size_t k) {
    Step s{x.operands[k], x.operands[k + 1], apply(x.operands[k], x.ops[k], x.operands[k + 1]), x.ops[k], ""};
    x.operands[k] = s.r;
    x.operands.erase(x.operands.begin() + long(k) + 1);
    x.ops.erase(k, 1);
    s.after = render(x.operands, x.ops);
    steps.push_back(std::move(s));
  };
  for (size_t k; (k = x.ops.find('*')) != std::string::npos;) reduce(k);
  while (!x.ops.empty()) reduce(0);
  return steps;
}

// ---- worked solutions ------------------------------------------------------------------------------------
std::string column_name(size_t i) {
  static const char* names[] = {"ones", "tens", "hundreds", "thousands"};
  return i < 4 ? names[i] : str("10^", i);
}
std::string S(const Big& x) { return to_string(x); }
int digit(const Big& x, size_t i) { return i < x.d.size() ? x.d[i] : 0; }

std::string columns_add(const Big& x, const Big& y) {  // x, y >= 0
  std::string t = "Add " + S(x) + " + " + S(y) + " column by column, from the right:\n";
  int carry = 0;
  const size_t n = std::max<size_t>(1, std::max(x.d.size(), y.d.size()));
  for (size_t i = 0; i < n; ++i) {
    const int s = digit(x, i) + digit(y, i) + carry;
    t += str(column_name(i), ": ", digit(x, i), " + ", digit(y, i), carry ? " + 1 (carry)" : "", " = ", s,
             ", write ", s % 10, s >= 10 ? ", carry 1" : "", "\n");
    carry = s / 10;
  }
  if (carry) t += "write the carry 1\n";
  return t + "So " + S(x) + " + " + S(y) + " = " + S(add(x, y)) + ".";
}

std::string columns_sub(const Big& x, const Big& y) {  // x >= y >= 0
  std::string t = "Subtract " + S(x) + " - " + S(y) + " column by column, from the right:\n";
  int borrow = 0;
  for (size_t i = 0; i < std::max<size_t>(1, x.d.size()); ++i) {
    const int top = digit(x, i) - borrow, dy = digit(y, i);
    t += column_name(i) + ": ";
    if (borrow) t += str(digit(x, i), " - 1 (borrowed) = ", top, "; ");
    if (top < dy) t += str(top, " - ", dy, " needs a borrow: ", top + 10, " - ", dy, " = ", top + 10 - dy, "\n");
    else t += str(top, " - ", dy, " = ", top - dy, "\n");
    borrow = top < dy;
  }
  return t + "So " + S(x) + " - " + S(y) + " = " + S(sub(x, y)) + ".";
}

std::string columns_mul(const Big& a, const Big& b) {  // a, b >= 0
  const bool swap = b.d.size() > a.d.size();
  const Big& x = swap ? b : a;  // multiplicand
  const Big& m = swap ? a : b;  // multiplier: the operand with fewer digits
  const std::string head = S(a) + " * " + S(b);
  if (m.d.size() <= 1) {
    const int md = digit(m, 0);
    std::string t = "Multiply " + S(x) + " by " + S(m) + " digit by digit, from the right:\n";
    int carry = 0;
    for (size_t i = 0; i < std::max<size_t>(1, x.d.size()); ++i) {
      const int p = digit(x, i) * md, s = p + carry;
      t += str(column_name(i), ": ", digit(x, i), " * ", md, " = ", p);
      if (carry) t += str(", + ", carry, " (carry) = ", s);
      t += str(", write ", s % 10, s >= 10 ? str(", carry ", s / 10) : std::string(), "\n");
      carry = s / 10;
    }
    if (carry) t += str("write the carry ", carry, "\n");
    return t + "So " + head + " = " + S(mul(a, b)) + ".";
  }
  std::string t = "Multiply " + S(x) + " by each digit of " + S(m) + ", from the right:\n";
  std::vector<Big> rows;
  for (size_t i = 0; i < m.d.size(); ++i) {
    const Big row = mul(x, big_from_digits(std::string(1, char('0' + m.d[i]))));
    t += str(S(x), " * ", int(m.d[i]), " = ", S(row));
    if (i > 0) t += str(", shifted ", i, i == 1 ? " place: " : " places: ", S(shifted(row, i)));
    t += "\n";
    if (!row.zero()) rows.push_back(shifted(row, i));
  }
  if (rows.size() > 1) {
    t += "Add the rows:\n";
    Big acc = rows[0];
    for (size_t i = 1; i < rows.size(); ++i) {
      const Big next = add(acc, rows[i]);
      t += S(acc) + " + " + S(rows[i]) + " = " + S(next) + "\n";
      acc = next;
    }
  }
  return t + "So " + head + " = " + S(mul(a, b)) + ".";
}

// a op b with b >= 0 (see evaluate), in columns; handles a negative left operand by signs.
std::string columns_step(const Step& s) {
  const std::string head = S(s.a) + " " + s.op + " " + S(s.b);
  if (s.op == '*') return columns_mul(s.a, s.b);
  const Big x = abs_of(s.a);
  if (!s.a.neg && s.op == '+') return columns_add(s.a, s.b);
  if (!s.a.neg) {  // a - b
    if (cmp_mag(s.a, s.b) >= 0) return columns_sub(s.a, s.b);
    return head + ": " + S(s.b) + " is larger than " + S(s.a) + ", so compute " + S(s.b) + " - " + S(s.a) +
           " and make it negative.\n" + columns_sub(s.b, s.a) + "\nSo " + head + " = " + S(s.r) + ".";
  }
  if (s.op == '+') {  // -x + b
    if (cmp_mag(s.b, x) >= 0)
      return head + " = " + S(s.b) + " - " + S(x) + ".\n" + columns_sub(s.b, x) + "\nSo " + head + " = " + S(s.r) + ".";
    return head + " = -(" + S(x) + " - " + S(s.b) + ").\n" + columns_sub(x, s.b) + "\nSo " + head + " = " + S(s.r) + ".";
  }
  return head + " = -(" + S(x) + " + " + S(s.b) + ").\n" + columns_add(x, s.b) + "\nSo " + head + " = " + S(s.r) + ".";
}

// The non-zero place-value parts of x >= 0, largest first: 937 -> 900, 30, 7 (0 -> 0).
std::vector<Big> place_parts(const Big& x) {
  std::vector<Big> parts;
  for (size_t i = x.d.size(); i > 0; --i)
    if (x.d[i - 1]) parts.push_back(shifted(big_from_digits(std::string(1, char('0' + x.d[i - 1]))), i - 1));
  if (parts.empty()) parts.push_back(Big{});
  return parts;
}

std::string decompose_step(const Step& s) {
  const std::string head = S(s.a) + " " + s.op + " " + S(s.b);
  if (s.op != '*') {
    // A sum splits its smaller operand: 169 + 1066968 = 1066968 + 100 + 60 + 9.
    const bool swap = s.op == '+' && !s.a.neg && cmp_mag(s.a, s.b) < 0;
    const Big& x = swap ? s.b : s.a;
    const std::vector<Big> parts = place_parts(swap ? s.a : s.b);
    if (parts.size() == 1) return head + " = " + S(s.r) + ".";
    std::string t = head + " = " + (swap ? S(x) + " + " + S(s.a) + " = " : "") + S(x);
    for (const Big& p : parts) t += std::string(" ") + s.op + " " + S(p);
    t += "\n";
    Big acc = x;
    for (const Big& p : parts) {
      const Big next = apply(acc, s.op, p);
      t += S(acc) + " " + s.op + " " + S(p) + " = " + S(next) + "\n";
      acc = next;
    }
    return t + "So " + head + " = " + S(s.r) + ".";
  }
  const bool swap = s.b.d.size() > s.a.d.size();
  const Big& x = swap ? s.b : s.a;
  const std::vector<Big> parts = place_parts(swap ? s.a : s.b);
  if (parts.size() == 1) return head + " = " + S(s.r) + ".";
  std::string t = head + " = ";
  for (size_t i = 0; i < parts.size(); ++i) t += (i ? " + " : "") + S(x) + " * " + S(parts[i]);
  t += "\n";
  std::vector<Big> prods;
  for (const Big& p : parts) {
    prods.push_back(mul(x, p));
    t += S(x) + " * " + S(p) + " = " + S(prods.back()) + "\n";
  }
  Big acc = prods[0];
  for (size_t i = 1; i < prods.size(); ++i) {
    const Big next = add(acc, prods[i]);
    t += S(acc) + " + " + S(prods[i]) + " = " + S(next) + "\n";
    acc = next;
  }
  return t + "So " + head + " = " + S(s.r) + ".";
}

std::string brief_step(const Step& s) { return S(s.a) + " " + s.op + " " + S(s.b) + " = " + S(s.r); }

bool is_digits(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

}  // namespace

Problem make_arithmetic_problem(const std::vector<std::string>& operands, const std::string& ops) {
  QS_CHECK(operands.size() >= 2 && ops.size() + 1 == operands.size(),
           "arithmetic problem: need n >= 2 operands and n - 1 operators (got ", operands.size(), " and ", ops.size(), ")");
  Expr x;
  for (const std::string& o : operands) {
    QS_CHECK(is_digits(o) && o.size() <= 1000, "arithmetic problem: operand '", o, "' is not a non-negative integer");
    x.operands.push_back(big_from_digits(o));
  }
  for (char c : ops) QS_CHECK(c == '+' || c == '-' || c == '*', "arithmetic problem: operator '", c, "' is not one of + - *");
  x.ops = ops;
  Problem p;
  p.task = "arithmetic";
  p.match = MatchKind::Numeric;
  p.expression = render(x.operands, x.ops);
  const std::vector<Step> steps = evaluate(x);
  p.answer = S(steps.back().r);
  p.prompt = "Calculate " + p.expression +
             ". Think step by step inside <think> </think>, then give only the final number inside "
             "<answer> </answer>.";
  return p;
}

namespace detail {

std::string arithmetic_canonical(const std::string& expression) {
  Expr x = parse_expression(expression);
  if (x.operands.size() == 2 && (x.ops[0] == '+' || x.ops[0] == '*') && cmp_mag(x.operands[1], x.operands[0]) < 0)
    std::swap(x.operands[0], x.operands[1]);
  std::string s = "arithmetic:" + S(x.operands[0]);
  for (size_t i = 0; i < x.ops.size(); ++i) s += x.ops[i] + S(x.operands[i + 1]);
  return s;
}

std::vector<Problem> generate_arithmetic(const ArithmeticKnobs& k, Split split, int64_t n, Rng& rng) {
  QS_CHECK(k.min_digits >= 1 && k.max_digits <= 30 && k.min_digits <= k.max_digits,
           "arithmetic: digits must satisfy 1 <= min <= max <= 30 (got ", k.min_digits, "..", k.max_digits, ")");
  QS_CHECK(k.operands >= 2 && k.operands <= 6, "arithmetic: operands must be in 2..6 (got ", k.operands, ")");
  QS_CHECK(!k.ops.empty() && k.ops.find_first_not_of("+-*") == std::string::npos,
           "arithmetic: operators must be a non-empty subset of \"+-*\" (got \"", k.ops, "\")");
  std::vector<Problem> out;
  std::unordered_set<std::string> seen;
  int64_t draws = 0, misses = 0;
  while (int64_t(out.size()) < n && misses < kArithmeticMaxMisses) {
    ++draws;
    ++misses;
    std::vector<std::string> operands;
    std::string ops;
    for (int i = 0; i < k.operands; ++i) {
      const int nd = k.min_digits + int(rng.below(uint64_t(k.max_digits - k.min_digits + 1)));
      std::string o;
      for (int j = 0; j < nd; ++j) o.push_back(char('0' + (j == 0 && nd > 1 ? 1 + rng.below(9) : rng.below(10))));
      operands.push_back(std::move(o));
      if (i > 0) ops.push_back(k.ops[rng.below(k.ops.size())]);
    }
    Problem p = make_arithmetic_problem(operands, ops);
    if (!k.allow_negative && p.answer[0] == '-') continue;
    std::string c = arithmetic_canonical(p.expression);
    if (split_of_canonical(c) != split || !seen.insert(std::move(c)).second) continue;
    out.push_back(std::move(p));
    misses = 0;
  }
  if (int64_t(out.size()) < n)
    fail("task-gen: only ", out.size(), " distinct ", split_name(split), " arithmetic problems found in ", draws,
         " draws with these knobs (digits ", k.min_digits, "..", k.max_digits, ", operators \"", k.ops,
         "\"); ask for fewer or use a harder difficulty");
  return out;
}

WorkedSolution arithmetic_solution(const Problem& p, const std::string& style, Rng&) {
  QS_CHECK(!p.expression.empty(), "arithmetic problem without an 'expression' field");
  const std::vector<Step> steps = evaluate(parse_expression(p.expression));
  WorkedSolution w;
  w.answer = S(steps.back().r);
  QS_CHECK(numeric_equal(w.answer, p.answer), "arithmetic problem '", p.expression,
           "': its answer '", p.answer, "' is not the value ", w.answer);
  std::string t;
  for (size_t i = 0; i < steps.size(); ++i) {
    const Step& s = steps[i];
    if (steps.size() > 1)
      t += str("Step ", i + 1, ": ", S(s.a), " ", s.op, " ", S(s.b),
               i == 0 ? (p.expression.find('*') != std::string::npos && p.expression.find_first_of("+-") != std::string::npos
                             ? " (multiplication first)"
                             : "")
                      : "",
               "\n");
    t += style == "columns" ? columns_step(s) : style == "decompose" ? decompose_step(s) : brief_step(s);
    t += "\n";
    if (i + 1 < steps.size()) t += "Now: " + s.after + "\n";
  }
  if (steps.size() > 1) t += "So " + p.expression + " = " + w.answer + ".";
  while (!t.empty() && t.back() == '\n') t.pop_back();
  w.reasoning = std::move(t);
  return w;
}

}  // namespace detail
}  // namespace qs::rl
