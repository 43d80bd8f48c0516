#include "qiusuo/model/transformer.h"

#include <cstring>

#include "qiusuo/core/error.h"
#include "qiusuo/core/profile.h"
#include "qiusuo/kernels/vec_ops.h"
#include "qiusuo/model/mla.h"
#include "qiusuo/model/mlp.h"
#include "qiusuo/model/moe.h"

namespace qs {

Model::Model(ModelConfig cfg, ModelWeights w) : cfg_(std::move(cfg)), w_(std::move(w)), rope_(cfg_) {}

std::unique_ptr<Model> Model::load(const std::string& dir, bool with_mtp, const WeightPlacement& place) {
  ModelConfig cfg = load_model_config(dir);
  auto store = std::make_unique<TensorStore>(TensorStore::open_dir(dir));
  ModelWeights w = load_weights(cfg, *store, with_mtp, place);
  auto m = std::make_unique<Model>(std::move(cfg), std::move(w));
  m->dir_ = dir;
  m->store_ = std::move(store);
  return m;
}

void Model::check_step(const StepBatch& batch, const KVPool& kv, int64_t layers, std::span<const int64_t> rows) const {
  const int64_t T = batch.size(), V = cfg_.vocab_size;
  QS_CHECK(!w_.described_only, "forward: the model was loaded to be described (WeightPlacement::describe), "
           "not to run: its integer weights were not read");
  QS_CHECK(T > 0, "forward: empty batch");
  QS_CHECK(kv.num_layers() >= layers && kv.row_width() == cfg_.kv_lora_rank + cfg_.qk_rope_head_dim,
           "forward: the KV pool (", kv.num_layers(), " layers of width ", kv.row_width(),
           ") is shaped for another model (", layers, " layers of width ", cfg_.kv_lora_rank + cfg_.qk_rope_head_dim,
           ")");
  for (int32_t t : batch.tokens)
    QS_CHECK(t >= 0 && t < V, "token id ", t, " is outside the vocabulary [0, ", V, ")");
  for (int64_t r : rows) QS_CHECK(r >= 0 && r < T, "logit row ", r, " outside the step's ", T, " tokens");
  const int64_t BS = kv.block_size();
  for (size_t ci = 0; ci < batch.chunks.size(); ++ci) {
    const SeqChunk& ch = batch.chunks[ci];
    const int64_t need = (ch.start_pos + ch.n_tokens + BS - 1) / BS;
    QS_CHECK(ch.start_pos >= 0 && ch.n_tokens > 0 && ch.block_end - ch.block_begin >= need, "forward: chunk ", ci,
             " (positions ", ch.start_pos, "..", ch.start_pos + ch.n_tokens, ") has a block table of ",
             ch.block_end - ch.block_begin, " blocks, needs ", need);
    for (int64_t i = 0; i < need; ++i) {
      const int32_t blk = batch.blocks(ci)[i];
      QS_CHECK(blk >= 0 && blk < kv.num_blocks(), "forward: block id ", blk, " outside the pool of ", kv.num_blocks());
    }
  }
}

void Model::block(const LayerWeights& lw, int64_t layer, KVPool& kv, float* h, StepContext& ctx) const {
  const int64_t T = ctx.batch.size(), d = cfg_.hidden_size;
  const float eps = float(cfg_.rms_norm_eps);
  float* xn = ctx.arena.alloc(size_t(T * d));
  float* y = ctx.arena.alloc(size_t(T * d));
  for (int64_t t = 0; t < T; ++t) rmsnorm(h + t * d, lw.input_norm, eps, d, xn + t * d);
  {
    QS_PROFILE("block.attention");
    mla_forward(cfg_, lw.attn, rope_, layer, kv, xn, y, ctx);
  }
  axpy(1.0f, y, h, T * d);
  for (int64_t t = 0; t < T; ++t) rmsnorm(h + t * d, lw.post_attn_norm, eps, d, xn + t * d);
  {
    QS_PROFILE("block.ffn");
    if (lw.moe) moe_forward(cfg_, lw.ffn, layer, xn, y, ctx);
    else mlp_forward(lw.mlp, xn, T, y, ctx.opt.compute, ctx.arena);
  }
  axpy(1.0f, y, h, T * d);
}

void Model::forward(const StepBatch& batch, KVPool& kv, std::span<const int64_t> rows, float* logits,
                    const ForwardOptions& opt, Arena& arena) const {
  check_step(batch, kv, cfg_.num_hidden_layers, rows);
  const int64_t T = batch.size(), d = cfg_.hidden_size;
  arena.reset();
  StepContext ctx{batch, opt, arena};
  const float eps = float(cfg_.rms_norm_eps);
  float* h = arena.alloc(size_t(T * d));  // residual stream [T, d]
  for (int64_t t = 0; t < T; ++t) w_.embed_row(batch.tokens[size_t(t)], h + t * d);
  if (opt.hidden_states) opt.hidden_states->assign(h, h + T * d);
  {
    QS_PROFILE("forward.layers");
    for (int64_t l = 0; l < cfg_.num_hidden_layers; ++l) {
      Arena::Scope layer_scratch(arena);  // the next layer reuses this one's scratch
      block(w_.layers[size_t(l)], l, kv, h, ctx);
      if (opt.hidden_states) opt.hidden_states->insert(opt.hidden_states->end(), h, h + T * d);
    }
  }
  if (opt.last_hidden) opt.last_hidden->assign(h, h + T * d);
  const int64_t R = int64_t(rows.size());
  if (R > 0) {
    float* hr = arena.alloc(size_t(R * d));
    for (int64_t i = 0; i < R; ++i) rmsnorm(h + rows[size_t(i)] * d, w_.final_norm, eps, d, hr + i * d);
    QS_PROFILE("forward.lm_head");
    linear(hr, R, w_.lm_head, logits, opt.compute);
  }
}

void Model::forward_mtp(const StepBatch& batch, const float* hprev, KVPool& kv, std::span<const int64_t> rows,
                        float* logits, const ForwardOptions& opt, Arena& arena) const {
  QS_CHECK(has_mtp(), "this model has no MTP module (num_nextn_predict_layers = 0, or loaded without it)");
  check_step(batch, kv, cfg_.num_hidden_layers + 1, rows);
  const MtpWeights& m = w_.mtp[0];
  const int64_t T = batch.size(), d = cfg_.hidden_size;
  const float eps = float(cfg_.rms_norm_eps);
  arena.reset();
  StepContext ctx{batch, opt, arena};
  // h' = eh_proj([enorm(Emb(next)) ; hnorm(h_prev)])  (embedding first)
  float* cat = arena.alloc(size_t(T * 2 * d));
  float* e = arena.alloc(size_t(d));
  for (int64_t t = 0; t < T; ++t) {
    w_.embed_row(batch.tokens[size_t(t)], e);
    rmsnorm(e, m.enorm, eps, d, cat + t * 2 * d);
    rmsnorm(hprev + t * d, m.hnorm, eps, d, cat + t * 2 * d + d);
  }
  float* h = arena.alloc(size_t(T * d));
  linear(cat, T, m.eh_proj, h, opt.compute);
  block(m.block, cfg_.num_hidden_layers, kv, h, ctx);
  const int64_t R = int64_t(rows.size());
  if (R > 0) {
    float* hr = arena.alloc(size_t(R * d));
    for (int64_t i = 0; i < R; ++i) rmsnorm(h + rows[size_t(i)] * d, m.head_norm, eps, d, hr + i * d);
    linear(hr, R, m.head, logits, opt.compute);
  }
}

void Model::forward(const StepBatch& batch, KVPool& kv, std::span<const int64_t> rows, float* logits,
                    const ForwardOptions& opt) const {
  Arena arena;
  forward(batch, kv, rows, logits, opt, arena);
}

namespace {
// The k routed experts one token of a MoE block reads (0 in a dense block).
size_t routed_bytes_per_token(const ModelConfig& cfg, const LayerWeights& l) {
  if (!l.moe) return 0;
  const auto& e = l.ffn.experts[0];
  return (e.gate.bytes() + e.up.bytes() + e.down.bytes()) * size_t(cfg.num_experts_per_tok);
}
}  // namespace

size_t block_weight_bytes(const ModelConfig& cfg, const LayerWeights& l, int64_t step_tokens) {
  const auto& a = l.attn;
  size_t n = cfg.q_lora_rank > 0 ? a.q_a_proj.bytes() + a.q_b_proj.bytes() : a.q_proj.bytes();
  n += a.kv_a_proj.bytes() + a.o_proj.bytes();
  n += kv_b_read_as_stored(a.kv_b_proj.dtype, step_tokens)
           ? a.kv_b_proj.bytes()
           : size_t(a.kv_b_proj.rows * a.kv_b_proj.cols) * sizeof(float);
  if (!l.moe) return n + l.mlp.gate.bytes() + l.mlp.up.bytes() + l.mlp.down.bytes();
  if (l.ffn.has_shared) n += l.ffn.shared.gate.bytes() + l.ffn.shared.up.bytes() + l.ffn.shared.down.bytes();
  return n + size_t(cfg.n_routed_experts * cfg.hidden_size) * sizeof(float);
}

size_t Model::decode_weight_bytes_per_token() const {
  size_t n = size_t(cfg_.hidden_size) * dtype_size(w_.embed.dtype) + w_.lm_head.bytes();
  for (const auto& l : w_.layers) n += block_weight_bytes(cfg_, l, 1) + routed_bytes_per_token(cfg_, l);
  return n;
}

}  // namespace qs
