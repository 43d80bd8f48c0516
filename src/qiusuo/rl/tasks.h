// Verifiable tasks for reinforcement learning: what a problem is, its JSONL form, and generators
// for multi-digit arithmetic and Countdown with train/test splits and difficulty levels.
//
// Task JSONL (a contract; docs/rl.md), one problem per line:
//   {"prompt":"...","answer":"...","match":"exact|numeric|regex|countdown"}
//   countdown lines also carry "numbers":[...] (integers) and "target":N (integer).
// `prompt` is the user message; the model's chat template is applied around it later. `answer`
// is what the verifier compares against (rl/verifier.h): the string for exact, a decimal number
// for numeric, a PCRE2 pattern for regex; for countdown it is one reference solution, kept for
// SFT data and never used to judge (any correct expression counts). Generated lines also carry
// "task" ("arithmetic" | "countdown") and, for arithmetic, "expression" (e.g. "4821 + 937"),
// which the worked-solution renderer reads; readers ignore fields they do not know.
//
// Train/test split: every generated problem has a canonical form (countdown: the sorted numbers
// and the target; arithmetic: the expression, with the two operands of a lone + or * sorted) and
// belongs to the test split iff hash(canonical) % 5 == 0 (FNV-1a 64 + a SplitMix64 finalizer,
// independent of the seed and the machine). A generator draws until the problem falls in the
// requested split and is not a duplicate, so a train file and a test file never share a problem,
// whatever their seeds and difficulties.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "qiusuo/core/rng.h"

namespace qs::rl {

// How an answer is judged (rl/verifier.h).
enum class MatchKind { Exact, Numeric, Regex, Countdown };
const char* match_kind_name(MatchKind k);          // "exact", "numeric", "regex", "countdown"
MatchKind parse_match_kind(std::string_view name);  // qs::Error for an unknown name

class Regex;  // a compiled PCRE2 pattern (rl/verifier.h)

struct Problem {
  std::string prompt;                  // the user message
  std::string answer;                  // see the header comment
  MatchKind match = MatchKind::Exact;
  std::vector<int64_t> numbers;        // countdown: the given numbers (each to be used exactly once)
  int64_t target = 0;                  // countdown: the value to reach
  std::string task;                    // "arithmetic", "countdown", or "" (a user task)
  std::string expression;              // arithmetic: the expression asked for, e.g. "12 + 3 * 45"
  std::shared_ptr<const Regex> regex;  // regex: `answer` compiled (set by problem_from_json / load)
};

// ---- JSONL --------------------------------------------------------------------------------------
nlohmann::ordered_json problem_to_json(const Problem& p);
// Validates and converts one JSON object: required "prompt" (string), "answer" (string; an
// integer is accepted and written in decimal), "match" (one of the four kinds); countdown needs
// "numbers" (1..16 integers, |n| <= 1e12) and "target" (integer, |t| <= 1e12); numeric needs an
// answer that is a decimal number; regex compiles `answer` (a compile error is reported here).
// Errors are qs::Error naming the field.
Problem problem_from_json(const nlohmann::json& j);
// Parses task JSONL text; blank lines are skipped; errors name `source` and the 1-based line.
std::vector<Problem> parse_task_jsonl(std::string_view text, const std::string& source);
std::vector<Problem> load_task_jsonl(const std::string& path);
std::string task_jsonl(std::span<const Problem> problems);  // one line per problem
void write_task_jsonl(const std::string& path, std::span<const Problem> problems);  // atomic

// ---- splits ---------------------------------------------------------------------------------------
enum class Split { Train, Test };
Split parse_split(std::string_view name);  // "train" | "test"
const char* split_name(Split s);
// The canonical form of a generated problem (see the header comment); "" for user tasks.
std::string canonical_form(const Problem& p);
Split split_of_canonical(std::string_view canonical);

// ---- difficulty -------------------------------------------------------------------------------------
// Levels 1..5; the names easy = 1, medium = 3, hard = 5 are accepted too.
int parse_difficulty(std::string_view s);

struct ArithmeticKnobs {
  int min_digits = 1, max_digits = 1;  // digits of each operand, drawn uniformly (1..30)
  std::string ops = "+";               // operators to draw from, a subset of "+-*"
  int operands = 2;                    // operands per expression (2..6); usual precedence
  bool allow_negative = false;         // false: redraw until the result is >= 0
};
// Level: 1 = 1..2 digits +; 2 = 2 digits +-; 3 = 2..3 digits +-*; 4 = 3..4 digits +-*;
// 5 = 3..5 digits +-*, three operands. Results are never negative at any level.
ArithmeticKnobs arithmetic_difficulty(int level);

struct CountdownKnobs {
  int min_count = 3, max_count = 3;            // how many numbers are given (2..6)
  int64_t min_number = 1, max_number = 10;     // range of each given number (>= 1)
  int64_t min_target = 1, max_target = 20;     // range of the target
};
// Level: 1 = 3 numbers in 1..10, target 1..20; 2 = 3 numbers in 1..20, target 1..50;
// 3 = 3..4 numbers in 1..50, target 1..100; 4 = 4 numbers in 1..100, target 1..100
// (TinyZero's Countdown-Tasks-3to4 scale); 5 = 4 numbers in 1..100, target 100..999.
CountdownKnobs countdown_difficulty(int level);

// ---- generators -----------------------------------------------------------------------------------
enum class TaskKind { Arithmetic, Countdown };
TaskKind parse_task_kind(std::string_view name);  // "arithmetic" | "countdown"
const char* task_kind_name(TaskKind k);

struct GenerateOptions {
  TaskKind task = TaskKind::Arithmetic;
  Split split = Split::Train;
  int64_t n = 0;
  uint64_t seed = 0;
  ArithmeticKnobs arithmetic = arithmetic_difficulty(3);
  CountdownKnobs countdown = countdown_difficulty(3);
};
// n distinct problems of the split, deterministic in (options); qs::Error when the knobs are out
// of range or the problem space of that split holds fewer than n distinct problems.
std::vector<Problem> generate_problems(const GenerateOptions& o);

// One arithmetic problem over decimal operands (non-negative, no sign) and operators from "+-*"
// (ops.size() == operands.size() - 1). The answer is the exact integer (any length).
Problem make_arithmetic_problem(const std::vector<std::string>& operands, const std::string& ops);
// One countdown problem; qs::Error if the target cannot be reached.
Problem make_countdown_problem(const std::vector<int64_t>& numbers, int64_t target);

// ---- countdown solver ------------------------------------------------------------------------------
// A solution using every number exactly once with + - * / over exact rationals, written with the
// fewest parentheses; solutions whose intermediate values are all non-negative integers (the
// classic game's rule) are preferred. Empty when the target cannot be reached.
std::string solve_countdown(std::span<const int64_t> numbers, int64_t target);
// Every integer in [lo, hi] reachable from the numbers (each used exactly once), ascending.
std::vector<int64_t> countdown_reachable(std::span<const int64_t> numbers, int64_t lo, int64_t hi);

// ---- worked solutions (SFT and pretraining text) -------------------------------------------------
// A reasoning trace and the answer, in one of a few styles:
//   arithmetic: "columns"   column-by-column addition/subtraction with carries and borrows,
//                           multiplication by partial products (one per digit), then their sum
//               "decompose" split the second operand by place value: 4821 + 937 =
//                           4821 + 900 + 30 + 7 = ...
//               "brief"     the result of each operation only
//   countdown:  "search"    a short search narrative: a few tries that miss, then the solution
//               "steps"     the solution's operations one per line
//               "brief"     the equation and its value
// Every number in a trace is computed exactly, so a trace's answer always verifies.
struct WorkedSolution {
  std::string reasoning;  // the text that goes inside <think> ... </think>
  std::string answer;     // the text that goes inside <answer> ... </answer>
};
std::vector<std::string> trace_styles(TaskKind k);
// Needs p.task == "arithmetic" (with p.expression) or "countdown"; qs::Error otherwise or for an
// unknown style. "" as style picks one uniformly with rng.
WorkedSolution worked_solution(const Problem& p, std::string_view style, Rng& rng);
// "<think>\n" + reasoning + "\n</think>\n<answer>" + answer + "</answer>": the assistant message.
std::string format_response(const WorkedSolution& s);
// {"messages":[{"role":"user","content":prompt},{"role":"assistant","content":response}]}
nlohmann::ordered_json sft_example(const Problem& p, const WorkedSolution& s);

}  // namespace qs::rl
