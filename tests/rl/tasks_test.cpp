// Task generators: solvable instances, exact answers, disjoint train/test splits for every seed,
// determinism, worked solutions that verify, and the JSONL contract with its error messages.
#include "qiusuo/rl/tasks.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

#include "qiusuo/core/error.h"
#include "qiusuo/rl/reward.h"
#include "qiusuo/rl/verifier.h"

namespace qs::rl {
namespace {

std::vector<Problem> gen(TaskKind task, Split split, int64_t n, uint64_t seed, int level) {
  GenerateOptions o;
  o.task = task;
  o.split = split;
  o.n = n;
  o.seed = seed;
  o.arithmetic = arithmetic_difficulty(level);
  o.countdown = countdown_difficulty(level);
  return generate_problems(o);
}

TEST(Tasks, SplitsAreDisjointForEverySeed) {
  for (TaskKind task : {TaskKind::Arithmetic, TaskKind::Countdown}) {
    for (int level : {1, 3}) {
      std::set<std::string> train, test;
      for (uint64_t seed = 0; seed < 12; ++seed) {
        for (const Problem& p : gen(task, Split::Train, 40, seed, level)) {
          const std::string c = canonical_form(p);
          EXPECT_EQ(split_of_canonical(c), Split::Train);
          train.insert(c);
        }
        for (const Problem& p : gen(task, Split::Test, 40, seed * 7 + 1, level)) {
          const std::string c = canonical_form(p);
          EXPECT_EQ(split_of_canonical(c), Split::Test);
          test.insert(c);
        }
      }
      for (const std::string& c : test) EXPECT_EQ(train.count(c), 0u) << c;
      EXPECT_GT(train.size(), 200u);  // many distinct problems across seeds
      EXPECT_GT(test.size(), 200u);
    }
  }
  // The canonical form ignores the order of the numbers and of the operands of a lone + or *.
  Problem a = make_countdown_problem({3, 7, 25}, 46), b = make_countdown_problem({25, 3, 7}, 46);
  EXPECT_EQ(canonical_form(a), canonical_form(b));
  EXPECT_EQ(canonical_form(make_arithmetic_problem({"12", "345"}, "+")),
            canonical_form(make_arithmetic_problem({"345", "12"}, "+")));
  EXPECT_NE(canonical_form(make_arithmetic_problem({"12", "345"}, "-")),
            canonical_form(make_arithmetic_problem({"345", "12"}, "-")));
  // About one problem in five is a test problem.
  int test = 0;
  for (int i = 0; i < 10000; ++i) test += split_of_canonical("countdown:" + std::to_string(i)) == Split::Test;
  EXPECT_NEAR(test, 2000, 200);
}

TEST(Tasks, DeterministicDistinctAndSolvable) {
  for (int level = 1; level <= 5; ++level) {
    const auto a = gen(TaskKind::Countdown, Split::Train, 30, 5, level);
    const auto b = gen(TaskKind::Countdown, Split::Train, 30, 5, level);
    const auto c = gen(TaskKind::Countdown, Split::Train, 30, 6, level);
    EXPECT_EQ(task_jsonl(a), task_jsonl(b));
    EXPECT_NE(task_jsonl(a), task_jsonl(c));
    const CountdownKnobs k = countdown_difficulty(level);
    std::set<std::string> seen;
    for (const Problem& p : a) {
      EXPECT_TRUE(seen.insert(canonical_form(p)).second) << "duplicate " << canonical_form(p);
      EXPECT_GE(int(p.numbers.size()), k.min_count);
      EXPECT_LE(int(p.numbers.size()), k.max_count);
      for (int64_t x : p.numbers) EXPECT_TRUE(x >= k.min_number && x <= k.max_number);
      EXPECT_TRUE(p.target >= k.min_target && p.target <= k.max_target);
      // The reference solution is a correct answer under the verifier.
      const CountdownCheck chk = check_countdown(p.answer, p.numbers, p.target);
      EXPECT_TRUE(chk.correct) << p.answer << ": " << chk.why;
      EXPECT_NE(p.prompt.find("<answer>"), std::string::npos);
    }
  }
  for (int level = 1; level <= 5; ++level) {
    std::set<std::string> seen;
    const ArithmeticKnobs k = arithmetic_difficulty(level);
    for (const Problem& p : gen(TaskKind::Arithmetic, Split::Test, 50, 3, level)) {
      EXPECT_TRUE(seen.insert(canonical_form(p)).second);
      EXPECT_NE(p.answer[0], '-');
      EXPECT_TRUE(canonical_decimal(p.answer).has_value());
      size_t operands = 1;
      for (char ch : p.expression) operands += ch == '+' || ch == '-' || ch == '*';
      EXPECT_EQ(int(operands), k.operands) << p.expression;
    }
  }
}

TEST(Tasks, ArithmeticAnswersAreExact) {
  // Independent check in 128-bit integers for operands of up to 9 digits.
  ArithmeticKnobs k{1, 9, "+-*", 3, true};
  GenerateOptions o;
  o.task = TaskKind::Arithmetic;
  o.n = 300;
  o.seed = 11;
  o.arithmetic = k;
  for (const Problem& p : generate_problems(o)) {
    std::vector<__int128> v;
    std::string ops;
    for (size_t i = 0; i < p.expression.size();) {
      if (p.expression[i] == ' ') { ++i; continue; }
      if (p.expression[i] >= '0' && p.expression[i] <= '9') {
        __int128 x = 0;
        while (i < p.expression.size() && p.expression[i] >= '0' && p.expression[i] <= '9')
          x = x * 10 + (p.expression[i++] - '0');
        v.push_back(x);
      } else {
        ops.push_back(p.expression[i++]);
      }
    }
    for (size_t q; (q = ops.find('*')) != std::string::npos;) {
      v[q] *= v[q + 1];
      v.erase(v.begin() + long(q) + 1);
      ops.erase(q, 1);
    }
    __int128 r = v[0];
    for (size_t q = 0; q < ops.size(); ++q) r = ops[q] == '+' ? r + v[q + 1] : r - v[q + 1];
    const bool neg = r < 0;
    std::string s;
    for (__int128 m = neg ? -r : r; m > 0 || s.empty(); m /= 10) s.insert(s.begin(), char('0' + int(m % 10)));
    EXPECT_EQ(p.answer, (neg ? "-" : "") + s) << p.expression;
  }
  // Far beyond 64 bits.
  EXPECT_EQ(make_arithmetic_problem({"99999999999999999999", "99999999999999999999"}, "*").answer,
            "9999999999999999999800000000000000000001");
  EXPECT_EQ(make_arithmetic_problem({"5", "12", "3"}, "-*").answer, "-31");
  EXPECT_EQ(make_arithmetic_problem({"1000", "1"}, "-").answer, "999");
}

TEST(Tasks, WorkedSolutionsVerify) {
  Rng rng(3);
  for (TaskKind task : {TaskKind::Arithmetic, TaskKind::Countdown})
    for (int level : {1, 2, 3, 4, 5})
      for (const Problem& p : gen(task, Split::Train, 12, 9, level))
        for (const std::string& style : trace_styles(task)) {
          const WorkedSolution w = worked_solution(p, style, rng);
          const std::string response = format_response(w);
          const Reward r = compute_reward(p, response, 100);
          EXPECT_EQ(r.accuracy, 1.0) << style << "\n" << response << "\n" << r.why;
          EXPECT_TRUE(r.format_ok) << response;
          EXPECT_EQ(response.find("<answer>", 1), response.rfind("<answer>"));
          const auto j = sft_example(p, w);
          EXPECT_EQ(j["messages"][0]["content"], p.prompt);
          EXPECT_EQ(j["messages"][1]["role"], "assistant");
        }
  // Column arithmetic with negative intermediate results and borrows across zeros.
  for (const auto& [ops, operands] : std::vector<std::pair<std::string, std::vector<std::string>>>{
           {"-+", {"3", "1000", "4"}}, {"--", {"1000", "999", "5"}}, {"-*", {"7", "123", "45"}}, {"+", {"0", "0"}}}) {
    const Problem p = make_arithmetic_problem(operands, ops);
    for (const std::string& style : trace_styles(TaskKind::Arithmetic)) {
      const WorkedSolution w = worked_solution(p, style, rng);
      EXPECT_EQ(w.answer, p.answer);
      EXPECT_TRUE(verify(p, format_response(w)).correct);
    }
  }
  EXPECT_NE(worked_solution(make_arithmetic_problem({"4821", "937"}, "+"), "columns", rng)
                .reasoning.find("hundreds: 8 + 9 = 17, write 7, carry 1"),
            std::string::npos);
  Problem user;
  user.match = MatchKind::Exact;
  EXPECT_THROW(worked_solution(user, "", rng), Error);
  EXPECT_THROW(worked_solution(make_countdown_problem({1, 2}, 3), "columns", rng), Error);
}

TEST(Tasks, SolverAndReachability) {
  const std::vector<int64_t> n = {8, 3, 8, 3};
  const std::string s = solve_countdown(n, 24);
  ASSERT_FALSE(s.empty());
  EXPECT_TRUE(check_countdown(s, n, 24).correct) << s;  // only 8 / (3 - 8 / 3) works: a fraction
  EXPECT_TRUE(solve_countdown(std::vector<int64_t>{1, 1, 1}, 100).empty());
  EXPECT_THROW(make_countdown_problem({1, 1, 1}, 100), Error);
  const std::vector<int64_t> two = {2, 3};
  EXPECT_EQ(countdown_reachable(two, -10, 10), (std::vector<int64_t>{-1, 1, 5, 6}));
}

TEST(Tasks, TooSmallProblemSpaceIsAnError) {
  GenerateOptions o;
  o.task = TaskKind::Arithmetic;
  o.split = Split::Test;
  o.n = 200;
  o.arithmetic = ArithmeticKnobs{1, 1, "+", 2, false};  // 55 distinct sums, about 11 test ones
  try {
    generate_problems(o);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("distinct test arithmetic problems"), std::string::npos) << e.what();
  }
  o.arithmetic = ArithmeticKnobs{0, 3, "+", 2, false};
  EXPECT_THROW(generate_problems(o), Error);
  o.arithmetic = ArithmeticKnobs{1, 3, "+/", 2, false};
  EXPECT_THROW(generate_problems(o), Error);
  o.task = TaskKind::Countdown;
  o.countdown = CountdownKnobs{3, 9, 1, 10, 1, 10};
  EXPECT_THROW(generate_problems(o), Error);
}

TEST(Tasks, DifficultyNames) {
  EXPECT_EQ(parse_difficulty("easy"), 1);
  EXPECT_EQ(parse_difficulty("medium"), 3);
  EXPECT_EQ(parse_difficulty("hard"), 5);
  EXPECT_EQ(parse_difficulty("4"), 4);
  EXPECT_THROW(parse_difficulty("6"), Error);
  EXPECT_THROW(parse_difficulty("0"), Error);
  EXPECT_THROW(parse_difficulty("extreme"), Error);
}

std::string load_error(const std::string& text) {
  try {
    parse_task_jsonl(text, "t.jsonl");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(TaskJsonl, RoundTripAndContract) {
  std::vector<Problem> ps = gen(TaskKind::Countdown, Split::Test, 5, 1, 3);
  const auto more = gen(TaskKind::Arithmetic, Split::Test, 5, 1, 3);
  ps.insert(ps.end(), more.begin(), more.end());
  const std::string text = task_jsonl(ps);
  const auto back = parse_task_jsonl(text, "x");
  ASSERT_EQ(back.size(), ps.size());
  EXPECT_EQ(task_jsonl(back), text);
  const auto j = nlohmann::json::parse(text.substr(0, text.find('\n')));
  EXPECT_EQ(j["match"], "countdown");
  EXPECT_TRUE(j["numbers"].is_array());
  EXPECT_TRUE(j["target"].is_number_integer());
  EXPECT_TRUE(j["prompt"].is_string());
  EXPECT_TRUE(j["answer"].is_string());

  const auto user = parse_task_jsonl(
      "\n{\"prompt\":\"p\",\"answer\":\"1,000\",\"match\":\"numeric\",\"extra\":[1]}\r\n"
      "  \n{\"prompt\":\"p\",\"answer\":7,\"match\":\"exact\"}\n"
      "{\"prompt\":\"p\",\"answer\":\"\\\\d+\",\"match\":\"regex\"}\n"
      "{\"prompt\":\"p\",\"answer\":\"\",\"match\":\"countdown\",\"numbers\":[1,2],\"target\":3}",
      "u");
  ASSERT_EQ(user.size(), 4u);
  EXPECT_EQ(user[1].answer, "7");
  ASSERT_TRUE(user[2].regex);
  EXPECT_TRUE(user[2].regex->full_match("123"));
  EXPECT_TRUE(verify(user[3], "<think>x</think><answer>1 + 2</answer>").correct);
}

TEST(TaskJsonl, ErrorsNameTheLineAndField) {
  const std::string ok = "{\"prompt\":\"p\",\"answer\":\"1\",\"match\":\"exact\"}\n";
  const auto has = [](const std::string& err, const std::string& what) {
    return err.find(what) != std::string::npos;
  };
  std::string e = load_error(ok + "{\"answer\":\"1\",\"match\":\"exact\"}");
  EXPECT_TRUE(has(e, "t.jsonl:2:") && has(e, "missing field 'prompt'")) << e;
  e = load_error(ok + ok + "{\"prompt\":\"p\",\"answer\":[1],\"match\":\"exact\"}");
  EXPECT_TRUE(has(e, "t.jsonl:3:") && has(e, "'answer' must be a string")) << e;
  e = load_error("{\"prompt\":\"p\",\"answer\":1.5,\"match\":\"numeric\"}");
  EXPECT_TRUE(has(e, "'answer' must be a string, not a decimal number")) << e;
  e = load_error("{\"prompt\":\"p\",\"answer\":\"1\",\"match\":\"fuzzy\"}");
  EXPECT_TRUE(has(e, "unknown match kind 'fuzzy'")) << e;
  e = load_error("{\"prompt\":\"p\",\"answer\":\"1\"}");
  EXPECT_TRUE(has(e, "missing field 'match'")) << e;
  e = load_error("{\"prompt\":\"p\",\"answer\":\"(a\",\"match\":\"regex\"}");
  EXPECT_TRUE(has(e, "t.jsonl:1:") && has(e, "invalid regex")) << e;
  e = load_error("{\"prompt\":\"p\",\"answer\":\"x\",\"match\":\"numeric\"}");
  EXPECT_TRUE(has(e, "not a decimal number")) << e;
  e = load_error("{\"prompt\":\"p\",\"answer\":\"\",\"match\":\"countdown\",\"target\":3}");
  EXPECT_TRUE(has(e, "countdown problem without 'numbers'")) << e;
  e = load_error("{\"prompt\":\"p\",\"answer\":\"\",\"match\":\"countdown\",\"numbers\":[1,2]}");
  EXPECT_TRUE(has(e, "countdown problem without 'target'")) << e;
  e = load_error("{\"prompt\":\"p\",\"answer\":\"\",\"match\":\"countdown\",\"numbers\":[1,2.5],\"target\":3}");
  EXPECT_TRUE(has(e, "numbers[1] must be an integer")) << e;
  e = load_error("{\"prompt\":\"p\",\"answer\":\"\",\"match\":\"countdown\",\"numbers\":[1],\"target\":\"3\"}");
  EXPECT_TRUE(has(e, "'target' must be an integer, not a string")) << e;
  e = load_error("{\"prompt\":\"p\",\"answer\":\"\",\"match\":\"countdown\",\"numbers\":[],\"target\":3}");
  EXPECT_TRUE(has(e, "1 to 16 integers")) << e;
  e = load_error("{\"prompt\":\"p\",\"answer\":\"\",\"match\":\"countdown\",\"numbers\":[1],\"target\":-9223372036854775808}");
  EXPECT_TRUE(has(e, "out of range")) << e;
  e = load_error(ok + "{\"prompt\":\"p\",");
  EXPECT_TRUE(has(e, "t.jsonl:2: invalid JSON")) << e;
  e = load_error("[1,2]");
  EXPECT_TRUE(has(e, "expected a JSON object")) << e;
  e = load_error("{\"prompt\":\"p\xff\",\"answer\":\"1\",\"match\":\"exact\"}");
  EXPECT_TRUE(has(e, "t.jsonl:1: invalid JSON")) << e;
  EXPECT_EQ(load_error(""), "");  // empty text: no problems, no error (load_task_jsonl reports it)
}

}  // namespace
}  // namespace qs::rl
