// Finite-difference gradient checking shared by the training tests: central differences in
// double precision with h = 1e-6 against the analytic gradients, |numeric − analytic| <=
// 1e-7 + 1e-5·|analytic| for every checked entry; a small MoE + MTP config with O(1) activations.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "qiusuo/core/rng.h"
#include "qiusuo/train/train_model.h"
#include "test_util.h"

namespace qs::gradcheck {

using Vec = std::vector<double>;

struct Checked {
  int n = 0, bad = 0;
  double worst = 0;
};

// Compares d f / d x[i] with central differences for up to `max_entries` entries of x[0..n).
inline void check(const std::string& what, double* x, const double* g, size_t n, const std::function<double()>& f,
           Checked& st, size_t max_entries = 60, uint64_t seed = 1) {
  Rng rng(seed);
  const double h = 1e-6;
  for (size_t c = 0; c < std::min(n, max_entries); ++c) {
    const size_t i = n <= max_entries ? c : size_t(rng.below(n));
    const double x0 = x[i];
    x[i] = x0 + h;
    const double fp = f();
    x[i] = x0 - h;
    const double fm = f();
    x[i] = x0;
    const double num = (fp - fm) / (2 * h);
    const double err = std::fabs(num - g[i]);
    st.n++;
    st.worst = std::max(st.worst, err / (1e-7 + 1e-5 * std::fabs(g[i])));
    if (err > 1e-7 + 1e-5 * std::fabs(g[i])) {
      st.bad++;
      ADD_FAILURE() << what << "[" << i << "]: numeric " << num << " analytic " << g[i];
    }
  }
}

// Unzeroed arena allocations are NaN-filled so that an output a kernel fails to write is caught.
inline const bool kPoison = [] { return setenv("QIUSUO_ARENA_POISON", "1", 1) == 0; }();

inline nlohmann::json small_config() {
  auto j = testing_util::tiny_v3_config(40);
  j["hidden_size"] = 24;
  j["intermediate_size"] = 20;
  j["moe_intermediate_size"] = 8;
  j["q_lora_rank"] = 12;
  j["kv_lora_rank"] = 10;
  j["qk_nope_head_dim"] = 6;
  j["qk_rope_head_dim"] = 4;
  j["v_head_dim"] = 5;
  j["n_routed_experts"] = 8;
  j["num_experts_per_tok"] = 2;
  j["n_group"] = 4;
  j["topk_group"] = 2;
  j["rope_scaling"]["original_max_position_embeddings"] = 2;  // YaRN active at these positions
  return j;
}

inline void randomize(std::vector<double>& v, uint64_t seed, double s) {
  Rng r(seed);
  for (auto& x : v) x = r.normal() * s;
}

// A model whose parameters are random with O(1) activations (norm weights near 1).
inline TrainModel<double> make_model(const nlohmann::json& j) {
  TrainModel<double> m(parse_model_config(j));
  m.init_random(3, 0.3);
  Rng r(9);
  for (const auto& p : m.layout()) {
    double* w = m.params().data() + p.offset;
    if (p.name.find("norm.weight") != std::string::npos)
      for (size_t i = 0; i < p.numel; ++i) w[i] = 1.0 + 0.2 * r.normal();
    if (!p.optimize)
      for (size_t i = 0; i < p.numel; ++i) w[i] = 0.05 * r.normal();  // selection bias
  }
  return m;
}

// Checks every parameter tensor whose name contains `filter`, through loss(), after
// backward() has filled the model's gradients.
inline void check_params(TrainModel<double>& m, const std::string& filter, const std::function<double()>& loss, Checked& st,
                  size_t per_tensor = 12) {
  for (const auto& p : m.layout()) {
    if (p.name.find(filter) == std::string::npos || !p.optimize) continue;
    check(p.name, m.params().data() + p.offset, m.grads().data() + p.offset, p.numel, loss, st, per_tensor,
          std::hash<std::string>()(p.name));
  }
}

}  // namespace qs::gradcheck
