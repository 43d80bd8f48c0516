// Countdown (TinyZero's task): reach a target from the given numbers, each used exactly once, with
// + - * / and parentheses. Solver over exact rationals, the generator (solvable instances only) and
// worked solutions.
#include <algorithm>
#include <array>
#include <string>
#include <unordered_set>
#include <vector>

#include "qiusuo/core/error.h"
#include "qiusuo/rl/task_detail.h"
#include "qiusuo/rl/verifier.h"

namespace qs::rl {
namespace {

constexpr int kMaxSolverNumbers = 6;

std::string rat_str(const Rational& r) { return r.den == 1 ? str(r.num) : str(r.num, "/", r.den); }
bool less(const Rational& a, const Rational& b) { return __int128(a.num) * b.den < __int128(b.num) * a.den; }
bool is_classic(const Rational& r) { return r.den == 1 && r.num >= 0; }  // a non-negative integer

// The six results of combining a and b: a+b, a*b, a-b, b-a, a/b, b/a.
struct Combo {
  char op;
  bool swapped;  // b op a
};
constexpr std::array<Combo, 6> kCombos = {{{'+', false}, {'*', false}, {'-', false}, {'-', true}, {'/', false}, {'/', true}}};

void reach(const Rational* items, int n, int64_t lo, int64_t hi, std::vector<int64_t>& out) {
  if (n == 1) {
    if (items[0].den == 1 && items[0].num >= lo && items[0].num <= hi) out.push_back(items[0].num);
    return;
  }
  Rational next[kMaxSolverNumbers];
  for (int i = 0; i < n; ++i)
    for (int j = i + 1; j < n; ++j) {
      int m = 0;
      for (int k = 0; k < n; ++k)
        if (k != i && k != j) next[m++] = items[k];
      for (const Combo& c : kCombos) {
        const auto r = c.swapped ? rational_op(c.op, items[j], items[i]) : rational_op(c.op, items[i], items[j]);
        if (!r) continue;
        next[m] = *r;
        reach(next, n - 1, lo, hi, out);
      }
    }
}

struct Item {
  Rational v;
  std::string expr;
  int prec = 3;  // 3 literal, 2 product/quotient, 1 sum/difference
};
struct SolStep {
  std::string a, b, r;
  char op;
  std::vector<std::string> left;  // the numbers left after the step
};

Item combine(const Item& a, char op, const Item& b, const Rational& v) {
  const int p = (op == '+' || op == '-') ? 1 : 2;
  const bool wrap_left = a.prec < p;
  const bool wrap_right = b.prec < p || (b.prec == p && (op == '-' || op == '/'));
  Item r;
  r.v = v;
  r.prec = p;
  r.expr = (wrap_left ? "(" + a.expr + ")" : a.expr) + " " + op + " " + (wrap_right ? "(" + b.expr + ")" : b.expr);
  return r;
}

std::vector<std::string> values_of(const std::vector<Item>& items) {
  std::vector<std::string> v;
  for (const Item& it : items) v.push_back(rat_str(it.v));
  return v;
}

// One combination of two items: a = items[i], b = items[j] (already ordered), a op b.
struct Move {
  int i, j;
  char op;
};

// Orders a pair for a combo: commutative results once with the larger operand first ("50 + 25").
void order_pair(const Rational* items, int i, int j, const Combo& c, int& a, int& b) {
  if (c.op == '+' || c.op == '*') {
    const bool ij = !less(items[i], items[j]);
    a = ij ? i : j;
    b = ij ? j : i;
  } else {
    a = c.swapped ? j : i;
    b = c.swapped ? i : j;
  }
}

// Depth-first search over values for a way to reach target (classic: non-negative integer steps
// only); on success `moves` holds the combinations in order. Items after a move: the others in
// order, then the result.
bool search(const Rational* items, int n, int64_t target, bool classic, std::vector<Move>& moves) {
  if (n == 1) return items[0].den == 1 && items[0].num == target;
  Rational next[kMaxSolverNumbers];
  for (int i = 0; i < n; ++i)
    for (int j = i + 1; j < n; ++j) {
      int m = 0;
      for (int k = 0; k < n; ++k)
        if (k != i && k != j) next[m++] = items[k];
      for (const Combo& c : kCombos) {
        int a = 0, b = 0;
        order_pair(items, i, j, c, a, b);
        const auto r = rational_op(c.op, items[a], items[b]);
        if (!r || (classic && !is_classic(*r))) continue;
        next[m] = *r;
        moves.push_back({a, b, c.op});
        if (search(next, n - 1, target, classic, moves)) return true;
        moves.pop_back();
      }
    }
  return false;
}

// The solution's expression and steps; empty expression when there is none.
std::string solve_with_steps(std::span<const int64_t> numbers, int64_t target, std::vector<SolStep>& steps) {
  QS_CHECK(!numbers.empty() && numbers.size() <= size_t(kMaxSolverNumbers),
           "countdown solver: 1 to ", kMaxSolverNumbers, " numbers, not ", numbers.size());
  steps.clear();
  Rational values[kMaxSolverNumbers];
  for (size_t i = 0; i < numbers.size(); ++i) values[i] = Rational{numbers[i], 1};
  for (bool classic : {true, false}) {
    std::vector<Move> moves;
    if (!search(values, int(numbers.size()), target, classic, moves)) continue;
    // Replay the moves with expressions.
    std::vector<Item> items;
    for (int64_t x : numbers) items.push_back({Rational{x, 1}, str(x), 3});
    for (const Move& mv : moves) {
      const Item& a = items[size_t(mv.i)];
      const Item& b = items[size_t(mv.j)];
      const Rational r = *rational_op(mv.op, a.v, b.v);
      Item c = combine(a, mv.op, b, r);
      steps.push_back({rat_str(a.v), rat_str(b.v), rat_str(r), mv.op, {}});
      std::vector<Item> next;
      for (size_t k = 0; k < items.size(); ++k)
        if (int(k) != mv.i && int(k) != mv.j) next.push_back(items[k]);
      next.push_back(std::move(c));
      items = std::move(next);
      steps.back().left = values_of(items);
    }
    return items[0].expr;
  }
  return "";
}

std::string join(const std::vector<std::string>& v, const std::string& sep) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? sep : "") + v[i];
  return s;
}
std::string numbers_list(std::span<const int64_t> v) {
  std::vector<std::string> s;
  for (int64_t x : v) s.push_back(str(x));
  return join(s, ", ");
}

}  // namespace

std::string solve_countdown(std::span<const int64_t> numbers, int64_t target) {
  std::vector<SolStep> steps;
  return solve_with_steps(numbers, target, steps);
}

std::vector<int64_t> countdown_reachable(std::span<const int64_t> numbers, int64_t lo, int64_t hi) {
  QS_CHECK(!numbers.empty() && numbers.size() <= size_t(kMaxSolverNumbers),
           "countdown solver: 1 to ", kMaxSolverNumbers, " numbers, not ", numbers.size());
  Rational items[kMaxSolverNumbers];
  for (size_t i = 0; i < numbers.size(); ++i) items[i] = Rational{numbers[i], 1};
  std::vector<int64_t> v;
  reach(items, int(numbers.size()), lo, hi, v);
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  return v;
}

Problem make_countdown_problem(const std::vector<int64_t>& numbers, int64_t target) {
  Problem p;
  p.task = "countdown";
  p.match = MatchKind::Countdown;
  p.numbers = numbers;
  p.target = target;
  p.answer = solve_countdown(numbers, target);
  if (p.answer.empty()) fail("countdown: ", target, " cannot be reached from [", numbers_list(numbers), "]");
  p.prompt = "Using the numbers [" + numbers_list(numbers) + "], create an equation that equals " + str(target) +
             ". You can use +, -, * and /, and each number must be used exactly once. Think step by step inside "
             "<think> </think>, then give only the equation inside <answer> </answer>, for example "
             "<answer>(1 + 2) * 3</answer>.";
  return p;
}

namespace detail {

std::string countdown_canonical(const std::vector<int64_t>& numbers, int64_t target) {
  std::vector<int64_t> s = numbers;
  std::sort(s.begin(), s.end());
  return "countdown:" + numbers_list(s) + "=" + str(target);
}

std::vector<Problem> generate_countdown(const CountdownKnobs& k, Split split, int64_t n, Rng& rng) {
  QS_CHECK(k.min_count >= 2 && k.max_count <= 5 && k.min_count <= k.max_count,
           "countdown: the count of numbers must satisfy 2 <= min <= max <= 5 (got ", k.min_count, "..", k.max_count, ")");
  QS_CHECK(k.min_number >= 1 && k.max_number <= 1000000 && k.min_number <= k.max_number,
           "countdown: numbers must satisfy 1 <= min <= max <= 1000000 (got ", k.min_number, "..", k.max_number, ")");
  QS_CHECK(k.min_target <= k.max_target && k.min_target >= -1000000000 && k.max_target <= 1000000000,
           "countdown: targets must satisfy -1e9 <= min <= max <= 1e9 (got ", k.min_target, "..", k.max_target, ")");
  std::vector<Problem> out;
  std::unordered_set<std::string> seen;
  int64_t draws = 0, misses = 0;
  while (int64_t(out.size()) < n && misses < kCountdownMaxMisses) {
    ++draws;
    ++misses;
    const int count = k.min_count + int(rng.below(uint64_t(k.max_count - k.min_count + 1)));
    std::vector<int64_t> numbers;
    for (int i = 0; i < count; ++i)
      numbers.push_back(k.min_number + int64_t(rng.below(uint64_t(k.max_number - k.min_number + 1))));
    // Targets reachable from these numbers that fall in the split and are new.
    std::vector<int64_t> candidates;
    const std::string any = countdown_canonical(numbers, 0);
    const std::string prefix = any.substr(0, any.size() - 1);  // "countdown:a, b, c="
    std::string c;
    for (int64_t t : countdown_reachable(numbers, k.min_target, k.max_target)) {
      c = prefix;
      c += std::to_string(t);
      if (split_of_canonical(c) == split && !seen.count(c)) candidates.push_back(t);
    }
    if (candidates.empty()) continue;
    const int64_t t = candidates[rng.below(candidates.size())];
    seen.insert(countdown_canonical(numbers, t));
    out.push_back(make_countdown_problem(numbers, t));
    misses = 0;
  }
  if (int64_t(out.size()) < n)
    fail("task-gen: only ", out.size(), " distinct ", split_name(split), " countdown problems found in ", draws,
         " draws with these knobs (", k.min_count, "..", k.max_count, " numbers in ", k.min_number, "..", k.max_number,
         ", targets ", k.min_target, "..", k.max_target, "); ask for fewer or use a harder difficulty");
  return out;
}

WorkedSolution countdown_solution(const Problem& p, const std::string& style, Rng& rng) {
  std::vector<SolStep> steps;
  WorkedSolution w;
  w.answer = solve_with_steps(p.numbers, p.target, steps);
  if (w.answer.empty()) fail("countdown: ", p.target, " cannot be reached from [", numbers_list(p.numbers), "]");
  const std::string target = str(p.target);
  std::string t = "Numbers: " + numbers_list(p.numbers) + ". Target: " + target + ".\n";
  const auto step_text = [](const SolStep& s) { return s.a + " " + s.op + " " + s.b + " = " + s.r; };
  if (style == "brief") {
    t += w.answer + " = " + target + ".";
  } else if (style == "steps") {
    for (size_t i = 0; i < steps.size(); ++i)
      t += step_text(steps[i]) + (i + 1 < steps.size() ? ", left: " + join(steps[i].left, ", ") : ", the target.") + "\n";
    t += "So " + w.answer + " = " + target + ".";
  } else {  // search: a few random tries with non-negative integer steps that miss, then the solution
    const int tries = 1 + int(rng.below(3));
    for (int k = 0; k < tries; ++k) {
      std::vector<Rational> items;
      for (int64_t x : p.numbers) items.push_back(Rational{x, 1});
      std::vector<std::string> parts;
      while (items.size() > 1) {
        struct Move { size_t i, j; char op; Rational r; };
        std::vector<Move> moves;
        for (size_t i = 0; i < items.size(); ++i)
          for (size_t j = 0; j < items.size(); ++j) {
            if (i == j) continue;
            for (char op : {'+', '-', '*', '/'}) {
              if ((op == '+' || op == '*') && j < i) continue;
              const auto r = rational_op(op, items[i], items[j]);
              if (r && is_classic(*r)) moves.push_back({i, j, op, *r});
            }
          }
        if (moves.empty()) break;
        const Move m = moves[rng.below(moves.size())];
        parts.push_back(rat_str(items[m.i]) + " " + m.op + " " + rat_str(items[m.j]) + " = " + rat_str(m.r));
        std::vector<Rational> next;
        for (size_t q = 0; q < items.size(); ++q)
          if (q != m.i && q != m.j) next.push_back(items[q]);
        next.push_back(m.r);
        items = std::move(next);
      }
      if (items.size() != 1 || (items[0].den == 1 && items[0].num == p.target)) break;  // a lucky hit: stop trying
      t += "Try " + join(parts, ", ") + ": " + rat_str(items[0]) + ", not " + target + ".\n";
    }
    std::vector<std::string> parts;
    for (const SolStep& s : steps) parts.push_back(step_text(s));
    t += "Try " + join(parts, ", ") + ": " + target + ". Found it.\n";
    t += "So " + w.answer + " = " + target + ".";
  }
  w.reasoning = std::move(t);
  return w;
}

}  // namespace detail
}  // namespace qs::rl
