// Problems, task JSONL, splits, difficulty levels; the generators live in task_arithmetic.cpp and
// task_countdown.cpp.
#include "qiusuo/rl/tasks.h"

#include <algorithm>

#include "qiusuo/core/error.h"
#include "qiusuo/io/file.h"
#include "qiusuo/rl/task_detail.h"
#include "qiusuo/rl/verifier.h"

namespace qs::rl {

const char* match_kind_name(MatchKind k) {
  switch (k) {
    case MatchKind::Exact: return "exact";
    case MatchKind::Numeric: return "numeric";
    case MatchKind::Regex: return "regex";
    case MatchKind::Countdown: return "countdown";
  }
  return "?";
}

MatchKind parse_match_kind(std::string_view name) {
  for (MatchKind k : {MatchKind::Exact, MatchKind::Numeric, MatchKind::Regex, MatchKind::Countdown})
    if (name == match_kind_name(k)) return k;
  fail("unknown match kind '", name, "' (expected exact, numeric, regex or countdown)");
}

// ---- JSONL ------------------------------------------------------------------------------------------
nlohmann::ordered_json problem_to_json(const Problem& p) {
  nlohmann::ordered_json j;
  j["prompt"] = p.prompt;
  j["answer"] = p.answer;
  j["match"] = match_kind_name(p.match);
  if (p.match == MatchKind::Countdown) {
    j["numbers"] = p.numbers;
    j["target"] = p.target;
  }
  if (!p.task.empty()) j["task"] = p.task;
  if (!p.expression.empty()) j["expression"] = p.expression;
  return j;
}

namespace {
const char* json_type(const nlohmann::json& v) {
  if (v.is_number_float()) return "a decimal number";
  if (v.is_number()) return "an integer";
  if (v.is_string()) return "a string";
  if (v.is_boolean()) return "a boolean";
  if (v.is_null()) return "null";
  if (v.is_array()) return "an array";
  return "an object";
}

std::string required_string(const nlohmann::json& j, const char* key) {
  const auto it = j.find(key);
  if (it == j.end()) fail("missing field '", key, "'");
  if (!it->is_string()) fail("field '", key, "' must be a string, not ", json_type(*it));
  return it->get<std::string>();
}

int64_t bounded_integer(const nlohmann::json& v, const std::string& what) {
  if (!v.is_number_integer()) fail(what, " must be an integer, not ", json_type(v));
  constexpr int64_t kMax = 1000000000000;  // 1e12
  const bool out = v.is_number_unsigned() ? v.get<uint64_t>() > uint64_t(kMax)
                                          : (v.get<int64_t>() < -kMax || v.get<int64_t>() > kMax);
  if (out) fail(what, " is out of range (|value| <= 1e12)");
  return v.get<int64_t>();
}
}  // namespace

Problem problem_from_json(const nlohmann::json& j) {
  if (!j.is_object()) fail("expected a JSON object, not ", json_type(j));
  Problem p;
  p.prompt = required_string(j, "prompt");
  const auto a = j.find("answer");
  if (a == j.end()) fail("missing field 'answer'");
  if (a->is_string()) p.answer = a->get<std::string>();
  else if (a->is_number_integer()) p.answer = a->dump();
  else fail("field 'answer' must be a string, not ", json_type(*a));
  p.match = parse_match_kind(required_string(j, "match"));
  for (const char* key : {"task", "expression"}) {
    const auto it = j.find(key);
    if (it == j.end()) continue;
    if (!it->is_string()) fail("field '", key, "' must be a string, not ", json_type(*it));
    (std::string_view(key) == "task" ? p.task : p.expression) = it->get<std::string>();
  }
  switch (p.match) {
    case MatchKind::Exact: break;
    case MatchKind::Numeric:
      if (!canonical_decimal(p.answer))
        fail("numeric answer '", p.answer, "' is not a decimal number (e.g. 42, -3.5, 1,234)");
      break;
    case MatchKind::Regex: p.regex = Regex::compile(p.answer); break;
    case MatchKind::Countdown: {
      const auto nums = j.find("numbers");
      if (nums == j.end()) fail("countdown problem without 'numbers'");
      if (!nums->is_array()) fail("field 'numbers' must be an array of integers, not ", json_type(*nums));
      if (nums->empty() || nums->size() > 16) fail("field 'numbers' must hold 1 to 16 integers, not ", nums->size());
      for (size_t i = 0; i < nums->size(); ++i) p.numbers.push_back(bounded_integer((*nums)[i], str("numbers[", i, "]")));
      const auto t = j.find("target");
      if (t == j.end()) fail("countdown problem without 'target'");
      p.target = bounded_integer(*t, "field 'target'");
      break;
    }
  }
  return p;
}

std::vector<Problem> parse_task_jsonl(std::string_view text, const std::string& source) {
  std::vector<Problem> out;
  size_t line_no = 0;
  for (size_t pos = 0; pos < text.size();) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find_first_not_of(" \t") == std::string_view::npos) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      fail(ErrorKind::Format, source, ":", line_no, ": invalid JSON: ", e.what());
    }
    try {
      out.push_back(problem_from_json(j));
    } catch (const Error& e) {
      fail(ErrorKind::Format, source, ":", line_no, ": ", e.what());
    }
  }
  return out;
}

std::vector<Problem> load_task_jsonl(const std::string& path) {
  std::vector<Problem> v = parse_task_jsonl(read_text_file(path), path);
  if (v.empty()) fail(ErrorKind::Format, path, ": no problems (expected JSON lines with prompt, answer, match)");
  return v;
}

std::string task_jsonl(std::span<const Problem> problems) {
  std::string out;
  for (const Problem& p : problems)
    out += problem_to_json(p).dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
  return out;
}

void write_task_jsonl(const std::string& path, std::span<const Problem> problems) {
  write_text_file_atomic(path, task_jsonl(problems));
}

// ---- splits -------------------------------------------------------------------------------------
Split parse_split(std::string_view name) {
  if (name == "train") return Split::Train;
  if (name == "test") return Split::Test;
  fail("unknown split '", name, "' (expected train or test)");
}
const char* split_name(Split s) { return s == Split::Train ? "train" : "test"; }

std::string canonical_form(const Problem& p) {
  if (p.task == "countdown") return detail::countdown_canonical(p.numbers, p.target);
  if (p.task == "arithmetic") return detail::arithmetic_canonical(p.expression);
  return "";
}

Split split_of_canonical(std::string_view canonical) {
  uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a 64
  for (unsigned char c : canonical) h = (h ^ c) * 0x100000001b3ull;
  h ^= h >> 30, h *= 0xbf58476d1ce4e5b9ull;  // SplitMix64 finalizer: spreads the low bits
  h ^= h >> 27, h *= 0x94d049bb133111ebull;
  h ^= h >> 31;
  return h % 5 == 0 ? Split::Test : Split::Train;
}

// ---- difficulty ------------------------------------------------------------------------------------
int parse_difficulty(std::string_view s) {
  if (s == "easy") return 1;
  if (s == "medium") return 3;
  if (s == "hard") return 5;
  if (s.size() == 1 && s[0] >= '1' && s[0] <= '5') return s[0] - '0';
  fail("difficulty '", s, "' is not a level (1, 2, 3, 4, 5, easy = 1, medium = 3, hard = 5)");
}

ArithmeticKnobs arithmetic_difficulty(int level) {
  switch (level) {
    case 1: return {1, 2, "+", 2, false};
    case 2: return {2, 2, "+-", 2, false};
    case 3: return {2, 3, "+-*", 2, false};
    case 4: return {3, 4, "+-*", 2, false};
    case 5: return {3, 5, "+-*", 3, false};
  }
  fail("difficulty level ", level, " is out of range (1..5)");
}

CountdownKnobs countdown_difficulty(int level) {
  switch (level) {
    case 1: return {3, 3, 1, 10, 1, 20};
    case 2: return {3, 3, 1, 20, 1, 50};
    case 3: return {3, 4, 1, 50, 1, 100};
    case 4: return {4, 4, 1, 100, 1, 100};
    case 5: return {4, 4, 1, 100, 100, 999};
  }
  fail("difficulty level ", level, " is out of range (1..5)");
}

// ---- generators -------------------------------------------------------------------------------------
TaskKind parse_task_kind(std::string_view name) {
  if (name == "arithmetic") return TaskKind::Arithmetic;
  if (name == "countdown") return TaskKind::Countdown;
  fail("unknown task '", name, "' (expected arithmetic or countdown)");
}
const char* task_kind_name(TaskKind k) { return k == TaskKind::Arithmetic ? "arithmetic" : "countdown"; }

std::vector<Problem> generate_problems(const GenerateOptions& o) {
  QS_CHECK(o.n >= 0 && o.n <= 1000000, "task-gen: the number of problems must be in 0..1,000,000, not ", o.n);
  // Train and test streams of one seed are independent of each other.
  Rng rng(o.seed * 0x9E3779B97F4A7C15ull + (o.split == Split::Test ? 0x7E57ull : 0x7A1Full) +
          (o.task == TaskKind::Countdown ? 0xC0DEull : 0));
  return o.task == TaskKind::Arithmetic ? detail::generate_arithmetic(o.arithmetic, o.split, o.n, rng)
                                        : detail::generate_countdown(o.countdown, o.split, o.n, rng);
}

// ---- worked solutions ---------------------------------------------------------------------------------
std::vector<std::string> trace_styles(TaskKind k) {
  if (k == TaskKind::Arithmetic) return {"columns", "decompose", "brief"};
  return {"search", "steps", "brief"};
}

WorkedSolution worked_solution(const Problem& p, std::string_view style, Rng& rng) {
  TaskKind kind;
  if (p.task == "arithmetic") kind = TaskKind::Arithmetic;
  else if (p.task == "countdown") kind = TaskKind::Countdown;
  else fail("worked solutions exist for generated arithmetic and countdown problems only (task '", p.task, "')");
  const std::vector<std::string> styles = trace_styles(kind);
  std::string s(style);
  if (s.empty()) s = styles[rng.below(styles.size())];
  if (std::find(styles.begin(), styles.end(), s) == styles.end())
    fail("unknown trace style '", s, "' for ", task_kind_name(kind));
  return kind == TaskKind::Arithmetic ? detail::arithmetic_solution(p, s, rng) : detail::countdown_solution(p, s, rng);
}

std::string format_response(const WorkedSolution& s) {
  return "<think>\n" + s.reasoning + "\n</think>\n<answer>" + s.answer + "</answer>";
}

nlohmann::ordered_json sft_example(const Problem& p, const WorkedSolution& s) {
  nlohmann::ordered_json user, assistant;
  user["role"] = "user";
  user["content"] = p.prompt;
  assistant["role"] = "assistant";
  assistant["content"] = format_response(s);
  nlohmann::ordered_json j;
  j["messages"] = nlohmann::ordered_json::array({user, assistant});
  return j;
}

}  // namespace qs::rl
