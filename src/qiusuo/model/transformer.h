// The whole model: embed → [RMSNorm → MLA → +residual → RMSNorm → MLP|MoE → +residual] × L
// → RMSNorm → lm_head, plus the multi-token-prediction modules (loaded and validated here;
// used by speculative decoding and training).
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
  // Loads config.json and the safetensors checkpoint in `dir`, validating every tensor.
  static std::unique_ptr<Model> load(const std::string& dir, bool with_mtp = true);
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

  // Bytes of weights one decode token reads (dense parts, k routed + shared experts per MoE
  // layer, head) — the numerator of decode bandwidth figures.
  size_t decode_weight_bytes_per_token() const;

 private:
  ModelConfig cfg_;
  ModelWeights w_;
  Rope rope_;
  std::string dir_;
  std::unique_ptr<TensorStore> store_;
};

}  // namespace qs
