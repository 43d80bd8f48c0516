// Helpers shared by tests: temporary directories and a small random model config.
#pragma once
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace qs::testing_util {

// A fresh directory under the build tree, removed when the object dies.
struct TempDir {
  std::string path;
  explicit TempDir(const std::string& tag) {
    path = std::string(QS_BINARY_DIR) + "/tmp/" + tag + "-" + std::to_string(::getpid()) + "-" +
           std::to_string(counter()++);
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string operator/(const std::string& name) const { return path + "/" + name; }
  static int& counter() { static int c = 0; return c; }
};

// The model fixtures: the directories of fixtures/model holding `marker` ("config.json": a
// checkpoint; "expected.safetensors": one with the reference outputs), sorted.
inline std::vector<std::string> model_fixture_dirs(const std::string& marker) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(std::string(QS_FIXTURES) + "/model"))
    if (std::filesystem::exists(e.path() / marker)) out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

// A test parameter's name for a fixture directory: its name with every character other than a
// letter or digit as '_' (what gtest accepts).
inline std::string fixture_test_name(const std::string& dir) {
  std::string n = std::filesystem::path(dir).filename().string();
  for (char& c : n)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  return n;
}

// A tiny DeepSeek-V3-style config (MoE, q_lora, YaRN, MTP) for fast tests.
inline nlohmann::json tiny_v3_config(int64_t vocab = 256) {
  auto j = nlohmann::json::parse(R"({
    "model_type": "deepseek_v3", "hidden_size": 64, "intermediate_size": 128,
    "moe_intermediate_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
    "num_key_value_heads": 2, "q_lora_rank": 48, "kv_lora_rank": 32, "qk_nope_head_dim": 16,
    "qk_rope_head_dim": 8, "v_head_dim": 16, "n_shared_experts": 1, "n_routed_experts": 8,
    "num_experts_per_tok": 2, "first_k_dense_replace": 1, "n_group": 2, "topk_group": 1,
    "topk_method": "noaux_tc", "scoring_func": "sigmoid", "norm_topk_prob": true,
    "routed_scaling_factor": 2.5, "rms_norm_eps": 1e-6, "rope_theta": 10000,
    "rope_scaling": {"type": "yarn", "factor": 4, "original_max_position_embeddings": 64,
                     "beta_fast": 32, "beta_slow": 1, "mscale": 1.0, "mscale_all_dim": 1.0},
    "max_position_embeddings": 256, "num_nextn_predict_layers": 1,
    "bos_token_id": 0, "eos_token_id": 1})");
  j["vocab_size"] = vocab;
  return j;
}

}  // namespace qs::testing_util
