#include "qiusuo/model/config.h"

#include <cmath>

#include "qiusuo/core/error.h"
#include "qiusuo/io/file.h"

namespace qs {
namespace {

using json = nlohmann::json;

struct Reader {
  const json& j;
  const std::string& src;

  [[noreturn]] void bad(const std::string& key, const std::string& why) const {
    fail(ErrorKind::Format, src, ": field '", key, "' ", why);
  }
  bool has(const std::string& key) const { return j.contains(key) && !j[key].is_null(); }
  int64_t integer(const std::string& key, std::optional<int64_t> def = std::nullopt) const {
    if (!has(key)) {
      if (def) return *def;
      bad(key, "is missing");
    }
    const auto& v = j[key];
    if (v.is_number_integer()) return v.get<int64_t>();
    if (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>()) return int64_t(v.get<double>());
    bad(key, "must be an integer, got " + v.dump());
  }
  double number(const std::string& key, std::optional<double> def = std::nullopt) const {
    if (!has(key)) {
      if (def) return *def;
      bad(key, "is missing");
    }
    if (!j[key].is_number()) bad(key, "must be a number, got " + j[key].dump());
    return j[key].get<double>();
  }
  bool boolean(const std::string& key, bool def) const {
    if (!has(key)) return def;
    if (!j[key].is_boolean()) bad(key, "must be true or false, got " + j[key].dump());
    return j[key].get<bool>();
  }
  std::string string(const std::string& key, const std::string& def) const {
    if (!has(key)) return def;
    if (!j[key].is_string()) bad(key, "must be a string, got " + j[key].dump());
    return j[key].get<std::string>();
  }
};

double yarn_m(double factor, double mscale) {
  if (factor <= 1.0 || mscale == 0.0) return 1.0;
  return 0.1 * mscale * std::log(factor) + 1.0;
}

}  // namespace

double ModelConfig::softmax_scale() const {
  double s = 1.0 / std::sqrt(double(qk_head_dim()));
  if (rope_scaling) {
    const double m = yarn_m(rope_scaling->factor, rope_scaling->mscale_all_dim);
    s *= m * m;
  }
  return s;
}

double ModelConfig::rope_attention_factor() const {
  if (!rope_scaling) return 1.0;
  return yarn_m(rope_scaling->factor, rope_scaling->mscale) /
         yarn_m(rope_scaling->factor, rope_scaling->mscale_all_dim);
}

ModelConfig parse_model_config(const json& j, const std::string& src) {
  if (!j.is_object()) fail(ErrorKind::Format, src, ": not a JSON object");
  Reader r{j, src};
  ModelConfig c;
  c.model_type = r.string("model_type", "");
  if (c.model_type != "deepseek_v2" && c.model_type != "deepseek_v3")
    r.bad("model_type", "is '" + c.model_type + "'; supported: deepseek_v2, deepseek_v3");
  auto positive = [&](const char* key, int64_t v) {
    if (v <= 0) r.bad(key, "must be positive, got " + std::to_string(v));
    return v;
  };
  c.vocab_size = positive("vocab_size", r.integer("vocab_size"));
  c.hidden_size = positive("hidden_size", r.integer("hidden_size"));
  c.intermediate_size = positive("intermediate_size", r.integer("intermediate_size"));
  c.num_hidden_layers = positive("num_hidden_layers", r.integer("num_hidden_layers"));
  c.num_attention_heads = positive("num_attention_heads", r.integer("num_attention_heads"));
  c.num_key_value_heads = r.integer("num_key_value_heads", c.num_attention_heads);
  if (c.num_key_value_heads != c.num_attention_heads)
    r.bad("num_key_value_heads", "must equal num_attention_heads for MLA (got " +
                                     std::to_string(c.num_key_value_heads) + " vs " +
                                     std::to_string(c.num_attention_heads) + ")");
  c.q_lora_rank = r.has("q_lora_rank") ? r.integer("q_lora_rank") : 0;
  if (c.q_lora_rank < 0) r.bad("q_lora_rank", "must be null or positive");
  c.kv_lora_rank = positive("kv_lora_rank", r.integer("kv_lora_rank"));
  c.qk_nope_head_dim = positive("qk_nope_head_dim", r.integer("qk_nope_head_dim"));
  c.qk_rope_head_dim = positive("qk_rope_head_dim", r.integer("qk_rope_head_dim"));
  if (c.qk_rope_head_dim % 2) r.bad("qk_rope_head_dim", "must be even (RoPE rotates pairs)");
  c.v_head_dim = positive("v_head_dim", r.integer("v_head_dim"));
  c.n_routed_experts = r.has("n_routed_experts") ? r.integer("n_routed_experts") : 0;
  if (c.n_routed_experts < 0) r.bad("n_routed_experts", "must be null or >= 0");
  c.n_shared_experts = r.has("n_shared_experts") ? r.integer("n_shared_experts") : 0;
  if (c.n_shared_experts < 0) r.bad("n_shared_experts", "must be null or >= 0");
  c.first_k_dense_replace = r.integer("first_k_dense_replace", 0);
  if (c.first_k_dense_replace < 0) r.bad("first_k_dense_replace", "must be >= 0");
  c.moe_layer_freq = r.integer("moe_layer_freq", 1);
  if (c.moe_layer_freq <= 0) r.bad("moe_layer_freq", "must be positive");
  if (c.n_routed_experts > 0) {
    c.moe_intermediate_size = positive("moe_intermediate_size", r.integer("moe_intermediate_size"));
    c.num_experts_per_tok = positive("num_experts_per_tok", r.integer("num_experts_per_tok"));
    if (c.num_experts_per_tok > c.n_routed_experts)
      r.bad("num_experts_per_tok", "(" + std::to_string(c.num_experts_per_tok) + ") exceeds n_routed_experts (" +
                                       std::to_string(c.n_routed_experts) + ")");
  }
  c.n_group = r.integer("n_group", 1);
  c.topk_group = r.integer("topk_group", 1);
  const std::string tm = r.string("topk_method", c.model_type == "deepseek_v3" ? "noaux_tc" : "greedy");
  if (tm == "greedy") c.topk_method = TopkMethod::Greedy;
  else if (tm == "group_limited_greedy") c.topk_method = TopkMethod::GroupLimitedGreedy;
  else if (tm == "noaux_tc") c.topk_method = TopkMethod::NoauxTc;
  else r.bad("topk_method", "is '" + tm + "'; supported: greedy, group_limited_greedy, noaux_tc");
  const std::string sf = r.string("scoring_func", "softmax");
  if (sf == "softmax") c.scoring_func = ScoringFunc::Softmax;
  else if (sf == "sigmoid") c.scoring_func = ScoringFunc::Sigmoid;
  else r.bad("scoring_func", "is '" + sf + "'; supported: softmax, sigmoid");
  if (c.n_routed_experts > 0 && c.topk_method != TopkMethod::Greedy) {
    if (c.n_group <= 0 || c.n_routed_experts % c.n_group)
      r.bad("n_group", "(" + std::to_string(c.n_group) + ") must divide n_routed_experts (" +
                           std::to_string(c.n_routed_experts) + ")");
    if (c.topk_group <= 0 || c.topk_group > c.n_group)
      r.bad("topk_group", "must be in 1..n_group, got " + std::to_string(c.topk_group));
    if (c.num_experts_per_tok > c.topk_group * (c.n_routed_experts / c.n_group))
      r.bad("num_experts_per_tok", "exceeds the experts in topk_group groups");
    if (c.topk_method == TopkMethod::NoauxTc && c.n_routed_experts / c.n_group < 2)
      r.bad("n_group", "leaves fewer than 2 experts per group (noaux_tc scores groups by their top 2)");
  }
  c.norm_topk_prob = r.boolean("norm_topk_prob", false);
  c.routed_scaling_factor = r.number("routed_scaling_factor", 1.0);
  c.rms_norm_eps = r.number("rms_norm_eps", 1e-6);
  if (!(c.rms_norm_eps > 0)) r.bad("rms_norm_eps", "must be positive");
  c.rope_theta = r.number("rope_theta", 10000.0);
  if (!(c.rope_theta > 1)) r.bad("rope_theta", "must be > 1");
  c.max_position_embeddings = r.integer("max_position_embeddings", 4096);
  if (r.has("rope_scaling")) {
    const json& rs = j["rope_scaling"];
    if (!rs.is_object()) r.bad("rope_scaling", "must be an object or null");
    Reader rr{rs, src};
    const std::string type = rr.string("type", rr.string("rope_type", ""));
    if (type != "yarn") r.bad("rope_scaling", "type '" + type + "' is not supported (DeepSeek uses yarn)");
    RopeScaling y;
    y.factor = rr.number("factor");
    if (!(y.factor >= 1.0)) r.bad("rope_scaling.factor", "must be >= 1");
    y.original_max_position_embeddings = rr.integer("original_max_position_embeddings", 4096);
    if (y.original_max_position_embeddings <= 0) r.bad("rope_scaling.original_max_position_embeddings", "must be positive");
    y.beta_fast = rr.number("beta_fast", 32.0);
    y.beta_slow = rr.number("beta_slow", 1.0);
    y.mscale = rr.number("mscale", 1.0);
    y.mscale_all_dim = rr.number("mscale_all_dim", 0.0);
    c.rope_scaling = y;
  }
  c.tie_word_embeddings = r.boolean("tie_word_embeddings", false);
  c.num_nextn_predict_layers = r.integer("num_nextn_predict_layers", 0);
  if (c.num_nextn_predict_layers < 0) r.bad("num_nextn_predict_layers", "must be >= 0");
  c.torch_dtype = r.string("torch_dtype", "bfloat16");
  c.bos_token_id = r.integer("bos_token_id", 0);
  if (r.has("eos_token_id")) {
    const auto& e = j["eos_token_id"];
    if (e.is_number_integer()) c.eos_token_ids.push_back(e.get<int64_t>());
    else if (e.is_array()) {
      for (const auto& x : e) {
        if (!x.is_number_integer()) r.bad("eos_token_id", "must be an integer or a list of integers");
        c.eos_token_ids.push_back(x.get<int64_t>());
      }
    } else r.bad("eos_token_id", "must be an integer or a list of integers");
  }
  for (auto id : c.eos_token_ids)
    if (id < 0 || id >= c.vocab_size) r.bad("eos_token_id", "is outside the vocabulary");
  if (c.bos_token_id < 0 || c.bos_token_id >= c.vocab_size) r.bad("bos_token_id", "is outside the vocabulary");
  if (r.has("quantization_config")) {
    const json& q = j["quantization_config"];
    Reader qr{q, src};
    const std::string method = qr.string("quant_method", "");
    if (method != "fp8") r.bad("quantization_config.quant_method", "'" + method + "' is not supported (fp8 only)");
    const std::string fmt = qr.string("fmt", "e4m3");
    if (fmt != "e4m3") r.bad("quantization_config.fmt", "'" + fmt + "' is not supported (e4m3 only)");
    c.fp8 = true;
    if (q.contains("weight_block_size")) {
      const auto& b = q["weight_block_size"];
      if (!b.is_array() || b.size() != 2 || !b[0].is_number_integer() || !b[1].is_number_integer())
        r.bad("quantization_config.weight_block_size", "must be [rows, cols]");
      c.weight_block_rows = b[0].get<int64_t>();
      c.weight_block_cols = b[1].get<int64_t>();
      if (c.weight_block_rows != 128 || c.weight_block_cols != 128)
        r.bad("quantization_config.weight_block_size", "must be [128, 128]");
    }
  }
  return c;
}

ModelConfig load_model_config(const std::string& dir) {
  const std::string path = is_directory(dir) ? path_join(dir, "config.json") : dir;
  json j;
  try {
    j = json::parse(read_text_file(path));
  } catch (const json::exception& e) {
    fail(ErrorKind::Format, path, ": invalid JSON (", e.what(), ")");
  }
  return parse_model_config(j, path);
}

namespace {
int64_t attn_params(const ModelConfig& c) {
  const int64_t d = c.hidden_size, h = c.num_attention_heads;
  int64_t n = 0;
  if (c.q_lora_rank > 0) n += d * c.q_lora_rank + c.q_lora_rank + c.q_lora_rank * h * c.qk_head_dim();
  else n += d * h * c.qk_head_dim();
  n += d * (c.kv_lora_rank + c.qk_rope_head_dim) + c.kv_lora_rank;
  n += c.kv_lora_rank * h * (c.qk_nope_head_dim + c.v_head_dim);
  n += h * c.v_head_dim * d;
  return n;
}
int64_t layer_params(const ModelConfig& c, int64_t l, bool active) {
  const int64_t d = c.hidden_size;
  int64_t n = attn_params(c) + 2 * d;
  if (c.is_moe_layer(l)) {
    const int64_t e = 3 * d * c.moe_intermediate_size;
    n += (active ? c.num_experts_per_tok : c.n_routed_experts) * e + c.n_shared_experts * e;
    n += c.n_routed_experts * d;  // router
  } else {
    n += 3 * d * c.intermediate_size;
  }
  return n;
}
}  // namespace

int64_t ModelConfig::total_params() const {
  int64_t n = vocab_size * hidden_size * (tie_word_embeddings ? 1 : 2) + hidden_size;
  for (int64_t l = 0; l < num_hidden_layers; ++l) n += layer_params(*this, l, false);
  return n;
}
int64_t ModelConfig::active_params() const {
  // one token reads one embedding row, not the table
  int64_t n = hidden_size + vocab_size * hidden_size + hidden_size;
  for (int64_t l = 0; l < num_hidden_layers; ++l) n += layer_params(*this, l, true);
  return n;
}
int64_t ModelConfig::mtp_params() const {
  const int64_t d = hidden_size;
  int64_t per = layer_params(*this, num_hidden_layers, false) + 2 * d + 2 * d * d + d;
  per += vocab_size * d * 2;  // embed_tokens + shared_head.head copies stored per module
  return per * num_nextn_predict_layers;
}

nlohmann::json model_config_to_json(const ModelConfig& c) {
  json j;
  const bool v3 = c.model_type == "deepseek_v3";
  j["architectures"] = {v3 ? "DeepseekV3ForCausalLM" : "DeepseekV2ForCausalLM"};
  j["model_type"] = c.model_type;
  j["attention_bias"] = false;
  j["attention_dropout"] = 0.0;
  j["auto_map"] = v3 ? json{{"AutoConfig", "configuration_deepseek.DeepseekV3Config"},
                            {"AutoModel", "modeling_deepseek.DeepseekV3Model"},
                            {"AutoModelForCausalLM", "modeling_deepseek.DeepseekV3ForCausalLM"}}
                     : json{{"AutoConfig", "configuration_deepseek.DeepseekV2Config"},
                            {"AutoModel", "modeling_deepseek.DeepseekV2Model"},
                            {"AutoModelForCausalLM", "modeling_deepseek.DeepseekV2ForCausalLM"}};
  j["bos_token_id"] = c.bos_token_id;
  if (c.eos_token_ids.size() == 1) j["eos_token_id"] = c.eos_token_ids[0];
  else if (!c.eos_token_ids.empty()) j["eos_token_id"] = c.eos_token_ids;
  j["ep_size"] = 1;
  j["first_k_dense_replace"] = c.first_k_dense_replace;
  j["hidden_act"] = "silu";
  j["hidden_size"] = c.hidden_size;
  j["initializer_range"] = 0.02;
  j["intermediate_size"] = c.intermediate_size;
  j["kv_lora_rank"] = c.kv_lora_rank;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["moe_intermediate_size"] = c.moe_intermediate_size;
  j["moe_layer_freq"] = c.moe_layer_freq;
  j["n_group"] = c.n_group;
  j["n_routed_experts"] = c.n_routed_experts;
  j["n_shared_experts"] = c.n_shared_experts;
  j["norm_topk_prob"] = c.norm_topk_prob;
  j["num_attention_heads"] = c.num_attention_heads;
  j["num_experts_per_tok"] = c.num_experts_per_tok;
  j["num_hidden_layers"] = c.num_hidden_layers;
  j["num_key_value_heads"] = c.num_key_value_heads;
  j["num_nextn_predict_layers"] = c.num_nextn_predict_layers;
  j["pretraining_tp"] = 1;
  j["q_lora_rank"] = c.q_lora_rank > 0 ? json(c.q_lora_rank) : json(nullptr);
  j["qk_nope_head_dim"] = c.qk_nope_head_dim;
  j["qk_rope_head_dim"] = c.qk_rope_head_dim;
  j["rms_norm_eps"] = c.rms_norm_eps;
  if (c.rope_scaling) {
    const auto& y = *c.rope_scaling;
    j["rope_scaling"] = {{"type", "yarn"}, {"factor", y.factor},
                         {"original_max_position_embeddings", y.original_max_position_embeddings},
                         {"beta_fast", y.beta_fast}, {"beta_slow", y.beta_slow},
                         {"mscale", y.mscale}, {"mscale_all_dim", y.mscale_all_dim}};
  } else {
    j["rope_scaling"] = nullptr;
  }
  j["rope_theta"] = c.rope_theta;
  j["routed_scaling_factor"] = c.routed_scaling_factor;
  j["scoring_func"] = c.scoring_func == ScoringFunc::Sigmoid ? "sigmoid" : "softmax";
  j["seq_aux"] = true;
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["topk_group"] = c.topk_group;
  j["topk_method"] = c.topk_method == TopkMethod::NoauxTc ? "noaux_tc"
                     : c.topk_method == TopkMethod::GroupLimitedGreedy ? "group_limited_greedy"
                                                                        : "greedy";
  j["torch_dtype"] = c.torch_dtype;
  j["transformers_version"] = "4.46.3";
  j["use_cache"] = true;
  j["v_head_dim"] = c.v_head_dim;
  j["vocab_size"] = c.vocab_size;
  if (c.fp8)
    j["quantization_config"] = {{"activation_scheme", "dynamic"}, {"fmt", "e4m3"},
                                {"quant_method", "fp8"}, {"weight_block_size", {128, 128}}};
  return j;
}

}  // namespace qs
