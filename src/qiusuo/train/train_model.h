// A DeepSeek model laid out for training: every parameter in one flat buffer (Hugging Face
// tensor names, F32 master weights — or double for gradient checks) and the gradients in a
// second buffer of the same layout, with per-module views of both. The forward and backward
// passes over it are a TrainStep (train/train_step.h); the optimizer updates params() from
// grads() (train/optimizer.h).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "qiusuo/core/tensor.h"
#include "qiusuo/model/config.h"
#include "qiusuo/model/rope.h"
#include "qiusuo/model/train_params.h"

namespace qs {

struct ParamInfo {
  std::string name;
  Shape shape;
  size_t offset = 0, numel = 0;
  bool decay = true;     // AdamW weight decay (not for norms and biases)
  bool optimize = true;  // false for e_score_correction_bias (moved by the balancing rule)
};

// The trainable tensors of `cfg` in checkpoint order (MTP embed_tokens / shared_head.head are
// the main model's and not listed).
std::vector<ParamInfo> training_param_layout(const ModelConfig& cfg, size_t* total = nullptr);

template <typename T>
class TrainModel {
 public:
  explicit TrainModel(const ModelConfig& cfg);
  TrainModel(const TrainModel&) = delete;  // the views point into the buffers (a move keeps them)
  TrainModel& operator=(const TrainModel&) = delete;
  TrainModel(TrainModel&&) = default;

  const ModelConfig& config() const { return cfg_; }
  const std::vector<ParamInfo>& layout() const { return layout_; }
  std::vector<T>& params() { return params_; }
  const std::vector<T>& params() const { return params_; }
  std::vector<T>& grads() { return grads_; }
  T* param(const std::string& name);  // qs::Error when unknown
  const ModelParamsT<T>& views() const { return P_; }       // per-module views of params()
  const ModelParamsT<T>& grad_views() const { return G_; }  // the same over grads()
  // The parameters of block `layer`: decoder layers 0..L-1, then the MTP modules' blocks.
  const BlockParamsT<T>& block(int64_t layer) const;
  const Rope& rope() const { return rope_; }
  const ParamInfo* info(const std::string& name) const;

  // GPT-style init: N(0, std) matrices (output projections / √(2·layers)), norms 1, biases 0.
  void init_random(uint64_t seed, double std = 0.02);
  void zero_grad();
  // Expert parallelism (dist/expert_parallel.h): the MoE views of the parameters and gradients
  // carry `ep`, so a training step computes only this rank's routed experts and exchanges the
  // rest by all-to-all; null: every expert here. `ep` must outlive the steps that use it.
  void set_expert_parallel(const ExpertParallel* ep);

 private:
  ModelConfig cfg_;
  Rope rope_;
  std::vector<ParamInfo> layout_;
  std::vector<T> params_, grads_;
  ModelParamsT<T> P_, G_;
};

}  // namespace qs
