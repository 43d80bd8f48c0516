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

  // One step over `batch`: appends every chunk's tokens to its cache sequence (whose length
  // must equal the chunk's start_pos) and writes logits [rows.size(), vocab] for the flat
  // token indices in `rows` (e.g. the last token of each chunk). Errors leave the cache as it
  // was before the call.
  void forward(const StepBatch& batch, KVCache& cache, std::span<const int64_t> rows, float* logits,
               const ForwardOptions& opt = {});

  // Bytes of weights one decode token reads (dense parts, k routed + shared experts per MoE
  // layer, head) — the numerator of decode bandwidth figures.
  size_t decode_weight_bytes_per_token() const;

 private:
  ModelConfig cfg_;
  ModelWeights w_;
  Rope rope_;
  std::string dir_;
  std::unique_ptr<TensorStore> store_;
  Arena arena_;
};

}  // namespace qs
