#include "qiusuo/model/train_params.h"

namespace qs {
namespace {
template <typename T>
MlpParamsT<T> mlp(const std::function<T*(const std::string&)>& at, const std::string& p) {
  return {at(p + "gate_proj.weight"), at(p + "up_proj.weight"), at(p + "down_proj.weight")};
}

template <typename T>
BlockParamsT<T> block(const ModelConfig& c, const std::function<T*(const std::string&)>& at, int64_t l) {
  const std::string p = "model.layers." + std::to_string(l) + ".";
  BlockParamsT<T> b;
  b.input_norm = at(p + "input_layernorm.weight");
  b.post_norm = at(p + "post_attention_layernorm.weight");
  const std::string s = p + "self_attn.";
  if (c.q_lora_rank > 0) {
    b.attn.q_a = at(s + "q_a_proj.weight");
    b.attn.q_a_norm = at(s + "q_a_layernorm.weight");
    b.attn.q_b = at(s + "q_b_proj.weight");
  } else {
    b.attn.q_proj = at(s + "q_proj.weight");
  }
  b.attn.kv_a = at(s + "kv_a_proj_with_mqa.weight");
  b.attn.kv_a_norm = at(s + "kv_a_layernorm.weight");
  b.attn.kv_b = at(s + "kv_b_proj.weight");
  b.attn.o = at(s + "o_proj.weight");
  b.moe = c.is_moe_layer(l);
  if (b.moe) {
    b.ffn.router = at(p + "mlp.gate.weight");
    if (c.topk_method == TopkMethod::NoauxTc) b.ffn.bias = at(p + "mlp.gate.e_score_correction_bias");
    for (int64_t e = 0; e < c.n_routed_experts; ++e) b.ffn.experts.push_back(mlp<T>(at, p + "mlp.experts." + std::to_string(e) + "."));
    if (c.n_shared_experts > 0) {
      b.ffn.has_shared = true;
      b.ffn.shared = mlp<T>(at, p + "mlp.shared_experts.");
    }
  } else {
    b.mlp = mlp<T>(at, p + "mlp.");
  }
  return b;
}
}  // namespace

template <typename T>
ModelParamsT<T> make_param_views(const ModelConfig& c, const std::function<T*(const std::string&)>& at) {
  ModelParamsT<T> m;
  m.embed = at("model.embed_tokens.weight");
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) m.layers.push_back(block<T>(c, at, l));
  m.final_norm = at("model.norm.weight");
  m.head = c.tie_word_embeddings ? m.embed : at("lm_head.weight");
  for (int64_t k = 0; k < c.num_nextn_predict_layers; ++k) {
    const int64_t l = c.num_hidden_layers + k;
    const std::string p = "model.layers." + std::to_string(l) + ".";
    MtpParamsT<T> t;
    t.enorm = at(p + "enorm.weight");
    t.hnorm = at(p + "hnorm.weight");
    t.eh_proj = at(p + "eh_proj.weight");
    t.head_norm = at(p + "shared_head.norm.weight");
    t.block = block<T>(c, at, l);
    m.mtp.push_back(std::move(t));
  }
  return m;
}

template ModelParamsT<float> make_param_views<float>(const ModelConfig&, const std::function<float*(const std::string&)>&);
template ModelParamsT<double> make_param_views<double>(const ModelConfig&, const std::function<double*(const std::string&)>&);

}  // namespace qs
