// A DeepSeek model laid out for training: every parameter in one flat buffer (Hugging Face
// tensor names, F32 master weights — or double for gradient checks), gradients in a second
// buffer of the same layout, and the activations of one step in an arena planned from the
// config and the batch shape before the first step.
//
// forward_backward() runs embed → blocks → final norm + head + CE, plus the MTP modules and the
// sequence-wise balance loss, then the backward pass of all of it:
//   objective = CE_main + λ/D · Σ_k CE_mtp_k + Σ_layers α·L_bal
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "qiusuo/core/tensor.h"
#include "qiusuo/model/block.h"
#include "qiusuo/model/config.h"
#include "qiusuo/model/mtp.h"
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

struct TrainLossOptions {
  TrainPrecision precision = TrainPrecision::F32;
  double mtp_lambda = 0.3;  // weight of the MTP loss (averaged over depths)
  double aux_alpha = 0.0;   // sequence-wise balance loss weight (DeepSeek-V3: 1e-4)
};

struct StepLosses {
  double objective = 0;  // what the gradients are of
  double main = 0;       // mean CE of next-token prediction
  double mtp = 0;        // mean CE of MTP depth 1..D, averaged over depths
  double aux = 0;        // balance loss (summed over layers)
  int64_t tokens = 0;    // predicted positions of the main head
  std::vector<std::vector<int64_t>> expert_load;  // [layer][expert] tokens routed (MoE layers; empty rows otherwise)
};

template <typename T>
class TrainModel {
 public:
  TrainModel(const ModelConfig& cfg, int64_t batch, int64_t seq_len, TrainLossOptions opt);

  const ModelConfig& config() const { return cfg_; }
  int64_t batch() const { return B_; }
  int64_t seq_len() const { return S_; }
  const TrainLossOptions& options() const { return opt_; }
  void set_precision(TrainPrecision p) { opt_.precision = p; }
  const std::vector<ParamInfo>& layout() const { return layout_; }
  std::vector<T>& params() { return params_; }
  std::vector<T>& grads() { return grads_; }
  T* param(const std::string& name);  // qs::Error when unknown
  const ModelParamsT<T>& views() const { return P_; }       // per-module views of params()
  const ModelParamsT<T>& grad_views() const { return G_; }  // the same over grads()
  const Rope& rope() const { return rope_; }
  const ParamInfo* info(const std::string& name) const;

  // GPT-style init: N(0, 0.02) matrices (output projections / √(2·layers)), norms 1, biases 0.
  void init_random(uint64_t seed, double std = 0.02);
  void zero_grad();

  // tokens [B, S+1]: inputs are [:, :S], targets [:, 1:]. Adds grad_scale·∂objective/∂θ to the
  // gradients when `backward`; returns the losses either way.
  StepLosses forward_backward(const int32_t* tokens, bool backward, double grad_scale = 1.0);

  size_t arena_planned_bytes() const { return arena_.capacity() * sizeof(T); }
  size_t arena_peak_bytes() const { return arena_.peak() * sizeof(T); }
  // Multiply-adds ×2 of one forward+backward of one token (for MFU).
  double flops_per_token() const;

 private:
  ModelConfig cfg_;
  int64_t B_, S_;
  TrainLossOptions opt_;
  Rope rope_;
  std::vector<ParamInfo> layout_;
  std::vector<T> params_, grads_;
  ModelParamsT<T> P_, G_;
  TrainArena<T> arena_;
  std::unique_ptr<WeightCache> weight_cache_ = std::make_unique<WeightCache>();  // per-step BF16 / FP8 weights
};

}  // namespace qs
