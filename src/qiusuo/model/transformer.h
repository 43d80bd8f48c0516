// The whole model: embed → [RMSNorm → MLA → +residual → RMSNorm → MLP|MoE → +residual] × L
// → RMSNorm → lm_head, plus the multi-token-prediction modules (loaded and validated here;
// forward_mtp runs module 1 for speculative decoding; their training path is model/mtp.h).
#pragma once
#include <memory>
#include <span>
#include <string>

#include "qiusuo/io/safetensors.h"
#include "qiusuo/model/config.h"
#include "qiusuo/model/forward.h"
#include "qiusuo/model/kv_cache.h"
#include "qiusuo/model/rope.h"
#include "qiusuo/model/weights.h"

namespace qs {

class Model {
 public:
  // Loads config.json and the safetensors checkpoint in `dir`, validating every tensor
  // (`place`: only some experts mapped, expert parallelism — model/weights.h).
  static std::unique_ptr<Model> load(const std::string& dir, bool with_mtp = true, const WeightPlacement& place = {});
  // A model over weights held elsewhere (training buffers).
  Model(ModelConfig cfg, ModelWeights w);

  const ModelConfig& config() const { return cfg_; }
  const ModelWeights& weights() const { return w_; }
  const Rope& rope() const { return rope_; }
  const std::string& dir() const { return dir_; }
  const TensorStore* store() const { return store_.get(); }

  // One step over `batch`: writes every chunk's new latents into `kv` through its block table
  // and writes logits [rows.size(), vocab] for the flat token indices in `rows` (e.g. the last
  // token of each chunk). The model is not modified (several threads may run steps at once,
  // each with its own pool rows and scratch); `scratch` holds the step's activations. On an
  // error the new positions' rows in `kv` are unspecified; nothing else changes.
  void forward(const StepBatch& batch, KVPool& kv, std::span<const int64_t> rows, float* logits,
               const ForwardOptions& opt, Arena& scratch) const;
  // The same with scratch of its own (tests and one-off calls).
  void forward(const StepBatch& batch, KVPool& kv, std::span<const int64_t> rows, float* logits,
               const ForwardOptions& opt = {}) const;

  // Multi-token prediction, inference (DeepSeek-V3 §2.2; the training form is model/mtp.h):
  // module 1 over a step whose token i is the token AFTER position positions[i] (its embedding
  // enters the module) and whose hprev [T, d] is the main model's last hidden state at that
  // position (ForwardOptions::last_hidden). The module's latents go to pool layer
  // num_hidden_layers (the pool needs num_hidden_layers + 1 layers); logits [rows, vocab] are
  // its prediction of the token two positions ahead — the draft of speculative decoding.
  // Needs the MTP weights (Model::load(dir, true) of a checkpoint that has them).
  void forward_mtp(const StepBatch& batch, const float* hprev, KVPool& kv, std::span<const int64_t> rows,
                   float* logits, const ForwardOptions& opt, Arena& scratch) const;
  bool has_mtp() const { return !w_.mtp.empty(); }

  // Bytes of weights one decode token reads (dense parts, k routed + shared experts per MoE
  // layer, head) — the numerator of decode bandwidth figures.
  size_t decode_weight_bytes_per_token() const;

 private:
  void check_step(const StepBatch& batch, const KVPool& kv, int64_t layers, std::span<const int64_t> rows) const;
  // One decoder block over the step: h [T, d] += attention and FFN of `lw` (pool layer `layer`).
  void block(const LayerWeights& lw, int64_t layer, KVPool& kv, float* h, StepContext& ctx) const;

  ModelConfig cfg_;
  ModelWeights w_;
  Rope rope_;
  std::string dir_;
  std::unique_ptr<TensorStore> store_;
};

// Bytes of weights a decode step of `step_tokens` tokens reads in block `l`, its routed experts
// apart (they depend on the routing): the attention projections (kv_b as that step reads it:
// kv_b_read_as_stored, mla.h: as stored, else its F32 copy), then
// the dense MLP, or the router and the shared experts.
size_t block_weight_bytes(const ModelConfig& cfg, const LayerWeights& l, int64_t step_tokens);

}  // namespace qs
