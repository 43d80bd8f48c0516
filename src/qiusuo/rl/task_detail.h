// Internal to rl/: the per-task generators and trace renderers behind rl/tasks.h.
#pragma once
#include <string>
#include <unordered_set>
#include <vector>

#include "qiusuo/core/rng.h"
#include "qiusuo/rl/tasks.h"

namespace qs::rl::detail {

// Draws problems until `n` distinct ones of the split are found (see tasks.h).
std::vector<Problem> generate_arithmetic(const ArithmeticKnobs& k, Split split, int64_t n, Rng& rng);
std::vector<Problem> generate_countdown(const CountdownKnobs& k, Split split, int64_t n, Rng& rng);

WorkedSolution arithmetic_solution(const Problem& p, const std::string& style, Rng& rng);
WorkedSolution countdown_solution(const Problem& p, const std::string& style, Rng& rng);

std::string countdown_canonical(const std::vector<int64_t>& numbers, int64_t target);
std::string arithmetic_canonical(const std::string& expression);

// A generator gives up (and reports a too small problem space) after this many draws in a row
// that found nothing new for the split.
constexpr int64_t kArithmeticMaxMisses = 200000;
constexpr int64_t kCountdownMaxMisses = 5000;

}  // namespace qs::rl::detail
