#include "qiusuo/model/flops.h"

namespace qs {
namespace {

double layer_matmul_params(const ModelConfig& c, int64_t layer) {
  const double d = double(c.hidden_size), H = double(c.num_attention_heads);
  double n = 0;
  // MLA: query (compressed or direct), kv_a, kv_b, o_proj.
  if (c.q_lora_rank > 0) n += d * double(c.q_lora_rank) + double(c.q_lora_rank) * H * double(c.qk_head_dim());
  else n += d * H * double(c.qk_head_dim());
  n += d * double(c.kv_lora_rank + c.qk_rope_head_dim);
  n += double(c.kv_lora_rank) * H * double(c.qk_nope_head_dim + c.v_head_dim);
  n += H * double(c.v_head_dim) * d;
  // FFN: SwiGLU (gate, up, down), or router + shared + top-k routed experts.
  if (c.is_moe_layer(layer)) {
    n += double(c.n_routed_experts) * d;
    n += double(c.num_experts_per_tok + c.n_shared_experts) * 3.0 * d * double(c.moe_intermediate_size);
  } else {
    n += 3.0 * d * double(c.intermediate_size);
  }
  return n;
}

}  // namespace

double matmul_params_per_token(const ModelConfig& c, bool mtp) {
  const double d = double(c.hidden_size), head = double(c.vocab_size) * d;
  double n = head;
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) n += layer_matmul_params(c, l);
  if (mtp)
    for (int64_t k = 0; k < c.num_nextn_predict_layers; ++k)
      n += 2.0 * d * d + layer_matmul_params(c, c.num_hidden_layers + k) + head;
  return n;
}

double forward_flops_per_token(const ModelConfig& c, double mean_context, bool mtp) {
  const double layers = double(c.num_hidden_layers + (mtp ? c.num_nextn_predict_layers : 0));
  const double attn = layers * double(c.num_attention_heads) * double(c.qk_head_dim() + c.v_head_dim) * mean_context;
  return 2.0 * (matmul_params_per_token(c, mtp) + attn);
}

double train_flops_per_token(const ModelConfig& c, int64_t seq_len, bool mtp) {
  return 3.0 * forward_flops_per_token(c, double(seq_len + 1) / 2.0, mtp);
}

}  // namespace qs
