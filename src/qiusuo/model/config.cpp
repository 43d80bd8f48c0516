#include "qiusuo/model/config.h"

#include <cmath>
#include <cstdio>
#include <limits>

#include "qiusuo/core/error.h"
#include "qiusuo/core/json_util.h"
#include "qiusuo/io/file.h"

namespace qs {
namespace {

using json = nlohmann::json;

struct Reader {
  const json& j;
  const std::string& src;
  std::string prefix;  // "rope_scaling." for a nested object

  [[noreturn]] void bad(const std::string& key, const std::string& why) const {
    fail(ErrorKind::Format, src, ": field '", prefix, key, "' ", why);
  }
  bool has(const std::string& key) const { return j.contains(key) && !j[key].is_null(); }
  // An integer field: a JSON integer (not 1e17, not 2.5, not "3") in [lo, hi].
  int64_t integer(const std::string& key, std::optional<int64_t> def, int64_t lo, int64_t hi,
                  const char* hint = nullptr) const {
    if (!has(key)) {
      if (def) return *def;
      bad(key, "is missing");
    }
    const auto& v = j[key];
    if (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(hi))
      bad(key, "is " + json_excerpt(v) + ", above the bound " + std::to_string(hi) + (hint ? std::string(" ") + hint : ""));
    if (!v.is_number_integer()) bad(key, "must be an integer, got " + json_excerpt(v));
    const int64_t x = v.get<int64_t>();
    if (x < lo) {
      if (lo == 1) bad(key, "must be positive, got " + std::to_string(x));
      bad(key, "must be >= " + std::to_string(lo) + ", got " + std::to_string(x));
    }
    if (x > hi) bad(key, "is " + std::to_string(x) + ", above the bound " + std::to_string(hi) + (hint ? std::string(" ") + hint : ""));
    return x;
  }
  // A real field: a finite JSON number in [lo, hi].
  double number(const std::string& key, std::optional<double> def, double lo, double hi) const {
    if (!has(key)) {
      if (def) return *def;
      bad(key, "is missing");
    }
    if (!j[key].is_number()) bad(key, "must be a number, got " + json_excerpt(j[key]));
    const double x = j[key].get<double>();
    if (!(x >= lo && x <= hi)) bad(key, "is " + json_excerpt(j[key]) + ", outside [" + num(lo) + ", " + num(hi) + "]");
    return x;
  }
  static std::string num(double x) {
    char b[32];
    std::snprintf(b, sizeof b, "%g", x);
    return b;
  }
  bool boolean(const std::string& key, bool def) const {
    if (!has(key)) return def;
    if (!j[key].is_boolean()) bad(key, "must be true or false, got " + json_excerpt(j[key]));
    return j[key].get<bool>();
  }
  std::string string(const std::string& key, const std::string& def) const {
    if (!has(key)) return def;
    if (!j[key].is_string()) bad(key, "must be a string, got " + json_excerpt(j[key]));
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
  using Lim = ConfigLimits;
  Reader r{j, src, ""};
  ModelConfig c;
  c.model_type = r.string("model_type", "");
  if (c.model_type != "deepseek_v2" && c.model_type != "deepseek_v3")
    r.bad("model_type", "is '" + c.model_type + "'; supported: deepseek_v2, deepseek_v3");
  // Integer fields within [lo, hi]; nullable ones (null = absent) take a default.
  auto count = [&](const char* key, int64_t lo, int64_t hi, std::optional<int64_t> def = std::nullopt) {
    return r.integer(key, def, lo, hi);
  };
  c.vocab_size = count("vocab_size", 1, Lim::vocab_size);
  c.hidden_size = count("hidden_size", 1, Lim::hidden_size);
  c.intermediate_size = count("intermediate_size", 1, Lim::intermediate_size);
  c.num_hidden_layers = count("num_hidden_layers", 1, Lim::num_hidden_layers);
  c.num_attention_heads = count("num_attention_heads", 1, Lim::num_attention_heads);
  c.num_key_value_heads = count("num_key_value_heads", 1, Lim::num_attention_heads, c.num_attention_heads);
  if (c.num_key_value_heads != c.num_attention_heads)
    r.bad("num_key_value_heads", "must equal num_attention_heads for MLA (got " +
                                     std::to_string(c.num_key_value_heads) + " vs " +
                                     std::to_string(c.num_attention_heads) + ")");
  c.q_lora_rank = count("q_lora_rank", 0, Lim::lora_rank, 0);  // null or 0: direct q_proj
  c.kv_lora_rank = count("kv_lora_rank", 1, Lim::lora_rank);
  c.qk_nope_head_dim = count("qk_nope_head_dim", 1, Lim::head_dim);
  c.qk_rope_head_dim = count("qk_rope_head_dim", 1, Lim::qk_rope_head_dim);
  if (c.qk_rope_head_dim % 2) r.bad("qk_rope_head_dim", "must be even (RoPE rotates pairs)");
  c.v_head_dim = count("v_head_dim", 1, Lim::head_dim);
  c.n_routed_experts = count("n_routed_experts", 0, Lim::n_routed_experts, 0);
  c.n_shared_experts = count("n_shared_experts", 0, Lim::n_shared_experts, 0);
  c.first_k_dense_replace = count("first_k_dense_replace", 0, Lim::layer_index, 0);
  c.moe_layer_freq = count("moe_layer_freq", 1, Lim::layer_index, 1);
  if (c.n_routed_experts > 0) {
    c.moe_intermediate_size = count("moe_intermediate_size", 1, Lim::moe_intermediate_size);
    c.num_experts_per_tok = count("num_experts_per_tok", 1, Lim::n_routed_experts);
    if (c.num_experts_per_tok > c.n_routed_experts)
      r.bad("num_experts_per_tok", "(" + std::to_string(c.num_experts_per_tok) + ") exceeds n_routed_experts (" +
                                       std::to_string(c.n_routed_experts) + ")");
  }
  c.n_group = count("n_group", 1, Lim::n_routed_experts, 1);
  c.topk_group = count("topk_group", 1, Lim::n_routed_experts, 1);
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
    if (c.n_routed_experts % c.n_group)
      r.bad("n_group", "(" + std::to_string(c.n_group) + ") must divide n_routed_experts (" +
                           std::to_string(c.n_routed_experts) + ")");
    if (c.topk_group > c.n_group)
      r.bad("topk_group", "must be in 1..n_group, got " + std::to_string(c.topk_group));
    if (c.num_experts_per_tok > c.topk_group * (c.n_routed_experts / c.n_group))
      r.bad("num_experts_per_tok", "exceeds the experts in topk_group groups");
    if (c.topk_method == TopkMethod::NoauxTc && c.n_routed_experts / c.n_group < 2)
      r.bad("n_group", "leaves fewer than 2 experts per group (noaux_tc scores groups by their top 2)");
  }
  c.norm_topk_prob = r.boolean("norm_topk_prob", false);
  c.routed_scaling_factor = r.number("routed_scaling_factor", 1.0, 1e-6, 1e6);
  c.rms_norm_eps = r.number("rms_norm_eps", 1e-6, 1e-30, 1.0);
  if (!(c.rms_norm_eps > 0)) r.bad("rms_norm_eps", "must be positive");
  c.rope_theta = r.number("rope_theta", 10000.0, 1.0, 1e12);
  if (!(c.rope_theta > 1)) r.bad("rope_theta", "must be > 1");
  c.max_position_embeddings = count("max_position_embeddings", 1, Lim::max_position_embeddings, 4096);
  if (r.has("rope_scaling")) {
    const json& rs = j["rope_scaling"];
    if (!rs.is_object()) r.bad("rope_scaling", "must be an object or null");
    Reader rr{rs, src, "rope_scaling."};
    const std::string type = rr.string("type", rr.string("rope_type", ""));
    if (type != "yarn") r.bad("rope_scaling", "type '" + type + "' is not supported (DeepSeek uses yarn)");
    RopeScaling y;
    y.factor = rr.number("factor", std::nullopt, 1.0, 1e4);
    y.original_max_position_embeddings =
        rr.integer("original_max_position_embeddings", 4096, 1, Lim::max_position_embeddings);
    y.beta_fast = rr.number("beta_fast", 32.0, 1e-3, 1e6);
    y.beta_slow = rr.number("beta_slow", 1.0, 1e-3, 1e6);
    y.mscale = rr.number("mscale", 1.0, -1e3, 1e3);
    y.mscale_all_dim = rr.number("mscale_all_dim", 0.0, -1e3, 1e3);
    c.rope_scaling = y;
  }
  c.tie_word_embeddings = r.boolean("tie_word_embeddings", false);
  c.num_nextn_predict_layers = count("num_nextn_predict_layers", 0, Lim::num_nextn_predict_layers, 0);
  c.torch_dtype = r.string("torch_dtype", "bfloat16");
  c.bos_token_id = count("bos_token_id", 0, std::numeric_limits<int64_t>::max(), 0);
  if (c.bos_token_id >= c.vocab_size) r.bad("bos_token_id", "is outside the vocabulary");
  if (r.has("eos_token_id")) {
    const auto& e = j["eos_token_id"];
    auto id = [&](const json& x) {
      if (!x.is_number_integer()) r.bad("eos_token_id", "must be an integer or a list of integers, got " + json_excerpt(x));
      if (x.is_number_unsigned() ? x.get<uint64_t>() >= uint64_t(c.vocab_size)
                                 : (x.get<int64_t>() < 0 || x.get<int64_t>() >= c.vocab_size))
        r.bad("eos_token_id", json_excerpt(x) + " is outside the vocabulary [0, " + std::to_string(c.vocab_size) + ")");
      c.eos_token_ids.push_back(x.get<int64_t>());
    };
    if (e.is_array()) {
      if (int64_t(e.size()) > Lim::eos_token_ids)
        r.bad("eos_token_id", "lists " + std::to_string(e.size()) + " ids, above the bound " +
                                  std::to_string(Lim::eos_token_ids));
      for (const auto& x : e) id(x);
    } else {
      id(e);
    }
  }
  if (r.has("quantization_config")) {
    const json& q = j["quantization_config"];
    if (!q.is_object()) r.bad("quantization_config", "must be an object or null");
    Reader qr{q, src, "quantization_config."};
    const std::string method = qr.string("quant_method", "");
    if (method == "gptq") {  // group-wise INT4/INT8 weights (kernels/int_weights.h): symmetric, no act-order
      const int64_t bits = qr.integer("bits", std::nullopt, 4, 8);
      if (bits != 4 && bits != 8) qr.bad("bits", "must be 4 or 8, got " + std::to_string(bits));
      if (!qr.boolean("sym", true)) qr.bad("sym", "must be true (asymmetric GPTQ weights are not supported)");
      if (qr.boolean("desc_act", false)) qr.bad("desc_act", "must be false (act-order GPTQ weights are not supported)");
      const std::string f = qr.string("checkpoint_format", "gptq");
      if (f != "gptq" && f != "gptq_v2") qr.bad("checkpoint_format", "'" + f + "' is not supported (gptq, gptq_v2)");
      // GPTQModel's per-module overrides {"+:REGEX": {"bits": 8, ...}, "-:REGEX": {}}: each
      // tensor's bits and group are read from its shapes at load, so only what no shape can
      // say is checked here (symmetric, no act-order; 4 or 8 bits).
      if (qr.has("dynamic")) {
        const json& d = q["dynamic"];
        if (!d.is_object()) qr.bad("dynamic", "must be an object of pattern: overrides, got " + json_excerpt(d));
        for (const auto& [pattern, o] : d.items()) {
          if (!o.is_object())
            qr.bad("dynamic", "'" + pattern + "' must map to an object of overrides, got " + json_excerpt(o));
          Reader dr{o, src, "quantization_config.dynamic['" + pattern + "']."};
          if (pattern.rfind("-:", 0) == 0) continue;  // left unquantized: the tensors say so
          if (dr.has("bits")) {
            const int64_t b = dr.integer("bits", std::nullopt, 2, 8);
            if (b != 4 && b != 8) dr.bad("bits", "must be 4 or 8, got " + std::to_string(b));
          }
          if (!dr.boolean("sym", true)) dr.bad("sym", "must be true (asymmetric GPTQ weights are not supported)");
          if (dr.boolean("desc_act", false)) dr.bad("desc_act", "must be false (act-order GPTQ weights are not supported)");
        }
      }
      c.gptq_bits = bits;
    } else if (method != "fp8") {
      r.bad("quantization_config.quant_method", "'" + method + "' is not supported (fp8 or gptq)");
    }
    const std::string fmt = method == "gptq" ? "e4m3" : qr.string("fmt", "e4m3");
    if (fmt != "e4m3") r.bad("quantization_config.fmt", "'" + fmt + "' is not supported (e4m3 only)");
    c.fp8 = method == "fp8";
    if (c.fp8 && q.contains("weight_block_size")) {
      const auto& b = q["weight_block_size"];
      if (!b.is_array() || b.size() != 2 || !b[0].is_number_integer() || !b[1].is_number_integer() ||
          b[0].get<int64_t>() != 128 || b[1].get<int64_t>() != 128)
        r.bad("quantization_config.weight_block_size", "must be [128, 128], got " + json_excerpt(b));
    }
  }
  // Derived sizes. Within the bounds above every tensor's size and the int64 parameter counts stay
  // below 2^62 (worst case about 4.3e18, nearly all routed experts: 1024 layers x 65536 experts x
  // 3 x 65536 x 262144); the model as a whole is bounded here.
  const double total = double(c.total_params()) + double(c.mtp_params());
  if (!(total <= Lim::total_params))
    fail(ErrorKind::Format, src, ": the sizes (hidden_size, num_hidden_layers, n_routed_experts, ...) describe ",
         Reader::num(total), " parameters, above the bound ", Reader::num(Lim::total_params));
  return c;
}

ModelConfig load_model_config(const std::string& dir) {
  const std::string path = is_directory(dir) ? path_join(dir, "config.json") : dir;
  return parse_model_config(parse_json_file_text<json>(read_text_file(path), path), path);
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
