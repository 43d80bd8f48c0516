// ModelConfig mirrors the Hugging Face config.json of DeepSeek-V2 / V2-Lite / V3 / R1
// (model_type deepseek_v2 / deepseek_v3). Field names are the Hugging Face names; each is
// documented once, here. V2, V2-Lite and V3 differ only by these values.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace qs {

enum class TopkMethod { Greedy, GroupLimitedGreedy, NoauxTc };
enum class ScoringFunc { Softmax, Sigmoid };

struct RopeScaling {            // rope_scaling {"type": "yarn", ...}; absent = plain RoPE
  double factor = 1.0;          // context extension factor s
  int64_t original_max_position_embeddings = 4096;
  double beta_fast = 32.0;      // rotations: dims rotating faster than this keep their frequency
  double beta_slow = 1.0;       // dims rotating slower than this are interpolated by 1/factor
  double mscale = 1.0;          // attention temperature terms: softmax scale is multiplied by
  double mscale_all_dim = 0.0;  //   m(mscale_all_dim)^2, RoPE cos/sin by m(mscale)/m(mscale_all_dim),
                                //   m(x) = 0.1 x ln(factor) + 1 (x = 0 or factor <= 1: m = 1)
};

struct ModelConfig {
  std::string model_type;         // "deepseek_v2" | "deepseek_v3"
  int64_t vocab_size = 0;         // rows of embed_tokens / lm_head
  int64_t hidden_size = 0;        // d, the residual stream width
  int64_t intermediate_size = 0;  // dense SwiGLU MLP width (the first_k_dense_replace layers)
  int64_t moe_intermediate_size = 0;  // width of each routed (and each shared) expert
  int64_t num_hidden_layers = 0;  // decoder layers (MTP layers come after these)
  int64_t num_attention_heads = 0;    // n_h
  int64_t num_key_value_heads = 0;    // must equal n_h (MLA has no GQA); checked
  int64_t q_lora_rank = 0;        // query compression rank d_c'; 0 (null in JSON) = direct q_proj
  int64_t kv_lora_rank = 0;       // KV compression rank d_c: the latent cached per token
  int64_t qk_nope_head_dim = 0;   // per-head query/key dims without position
  int64_t qk_rope_head_dim = 0;   // decoupled RoPE dims (one key shared by all heads)
  int64_t v_head_dim = 0;         // per-head value dims
  int64_t n_shared_experts = 0;   // shared experts = one SwiGLU of width n_shared * moe_inter
  int64_t n_routed_experts = 0;   // 0 = dense model
  int64_t num_experts_per_tok = 0;  // routed experts per token (top-k)
  int64_t moe_layer_freq = 1;     // layer l is MoE if l >= first_k_dense_replace and l % freq == 0
  int64_t first_k_dense_replace = 0;
  int64_t n_group = 1;            // expert groups for group-limited routing
  int64_t topk_group = 1;         // groups kept per token
  TopkMethod topk_method = TopkMethod::Greedy;
  ScoringFunc scoring_func = ScoringFunc::Softmax;
  bool norm_topk_prob = false;    // renormalise the k selected weights to sum to 1
  double routed_scaling_factor = 1.0;  // multiplies the routed experts' weights
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  std::optional<RopeScaling> rope_scaling;  // YaRN
  int64_t max_position_embeddings = 4096;
  bool tie_word_embeddings = false;  // lm_head shares embed_tokens
  int64_t num_nextn_predict_layers = 0;  // MTP modules (V3: 1), stored as layers L..L+n-1
  std::string torch_dtype = "bfloat16";
  int64_t bos_token_id = 0;
  std::vector<int64_t> eos_token_ids;  // eos_token_id may be an int or a list
  // quantization_config (FP8 checkpoints): weight_block_size, fmt
  bool fp8 = false;
  // quantization_config (GPTQ checkpoints, quant_method "gptq"): bits (4 or 8; 0: none)
  int64_t gptq_bits = 0;
  int64_t weight_block_rows = 128, weight_block_cols = 128;

  int64_t qk_head_dim() const { return qk_nope_head_dim + qk_rope_head_dim; }
  bool is_moe_layer(int64_t l) const {
    return n_routed_experts > 0 && l >= first_k_dense_replace && l % moe_layer_freq == 0;
  }
  double softmax_scale() const;  // qk_head_dim^-0.5, times the YaRN mscale^2 correction
  double rope_attention_factor() const;  // YaRN cos/sin multiplier m(mscale)/m(mscale_all_dim)

  // Parameter counts (MTP excluded): every weight, and those one token reads.
  int64_t total_params() const;
  int64_t active_params() const;
  int64_t mtp_params() const;
};

// Upper bounds on the counts and sizes read from config.json: far above any released DeepSeek
// model (DeepSeek-V3's value in the comment), low enough that every derived size fits easily in
// 64 bits and that a corrupt or hostile file fails at once with an error instead of allocating or
// looping for minutes.
struct ConfigLimits {
  static constexpr int64_t vocab_size = int64_t(1) << 22;              // 4194304 (V3: 129280)
  static constexpr int64_t hidden_size = 65536;                        // (7168)
  static constexpr int64_t intermediate_size = int64_t(1) << 20;       // 1048576 (18432)
  static constexpr int64_t moe_intermediate_size = int64_t(1) << 18;   // 262144 (2048)
  static constexpr int64_t num_hidden_layers = 1024;                   // (61)
  static constexpr int64_t num_attention_heads = 1024;                 // (128)
  static constexpr int64_t lora_rank = 65536;                          // q_lora_rank, kv_lora_rank (1536, 512)
  static constexpr int64_t head_dim = 4096;                            // qk_nope_head_dim, v_head_dim (128)
  static constexpr int64_t qk_rope_head_dim = 512;                     // (64)
  static constexpr int64_t n_routed_experts = 65536;                   // (256)
  static constexpr int64_t n_shared_experts = 1024;                    // (1)
  static constexpr int64_t layer_index = 1024;                         // first_k_dense_replace, moe_layer_freq (3, 1)
  static constexpr int64_t max_position_embeddings = int64_t(1) << 24; // 16777216 (163840)
  static constexpr int64_t num_nextn_predict_layers = 64;              // (1)
  static constexpr int64_t eos_token_ids = 1024;                       // entries of an eos_token_id list (1)
  static constexpr double total_params = 1e13;                         // weights the fields describe (6.7e11)
};

// Parses and validates; errors name the field ("config.json: field 'kv_lora_rank' ...").
// Integer fields must be JSON integers (1e17 or 2.5 is an error) within ConfigLimits.
ModelConfig parse_model_config(const nlohmann::json& j, const std::string& source = "config.json");
ModelConfig load_model_config(const std::string& dir);  // dir/config.json
nlohmann::json model_config_to_json(const ModelConfig& c);  // Hugging Face keys, for writing

}  // namespace qs
