#include "qiusuo/train/train_model.h"

#include <cmath>
#include <map>

#include "qiusuo/core/buffer.h"
#include "qiusuo/core/error.h"
#include "qiusuo/core/profile.h"
#include "qiusuo/core/rng.h"
#include "qiusuo/model/weights.h"

namespace qs {
namespace {
bool ends_with(const std::string& s, const std::string& suf) {
  return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}
bool is_mtp_shared_copy(const ModelConfig& c, const std::string& name) {
  for (int64_t k = 0; k < c.num_nextn_predict_layers; ++k) {
    const std::string p = "model.layers." + std::to_string(c.num_hidden_layers + k) + ".";
    if (name == p + "embed_tokens.weight" || name == p + "shared_head.head.weight") return true;
  }
  return false;
}
}  // namespace

std::vector<ParamInfo> training_param_layout(const ModelConfig& cfg, size_t* total) {
  std::vector<ParamInfo> out;
  size_t off = 0;
  for (const auto& e : expected_tensors(cfg)) {
    if (is_mtp_shared_copy(cfg, e.name)) continue;
    ParamInfo p;
    p.name = e.name;
    p.shape = e.shape;
    p.numel = size_t(shape_numel(e.shape));
    p.offset = off;
    off += (p.numel + 15) / 16 * 16;  // 64-byte aligned tensors
    p.decay = e.shape.size() == 2;  // matrices only: no decay on norms and biases
    p.optimize = !ends_with(e.name, "e_score_correction_bias");
    if (!p.optimize) p.decay = false;
    out.push_back(std::move(p));
  }
  if (total) *total = off;
  return out;
}

template <typename T>
TrainModel<T>::TrainModel(const ModelConfig& cfg) : cfg_(cfg), rope_(cfg) {
  size_t total = 0;
  layout_ = training_param_layout(cfg_, &total);
  for (auto* v : {&params_, &grads_}) {
    v->reserve(total);
    advise_huge_pages(v->data(), total * sizeof(T));
    v->assign(total, T(0));
  }
  std::map<std::string, size_t> off;
  for (const auto& p : layout_) off[p.name] = p.offset;
  auto view = [&](std::vector<T>& buf) {
    return make_param_views<T>(cfg_, [&](const std::string& n) -> T* {
      auto it = off.find(n);
      if (it == off.end()) fail(ErrorKind::Internal, "no training parameter '", n, "'");
      return buf.data() + it->second;
    });
  };
  P_ = view(params_);
  G_ = view(grads_);
}

template <typename T>
const BlockParamsT<T>& TrainModel<T>::block(int64_t layer) const {
  const int64_t L = cfg_.num_hidden_layers;
  QS_CHECK(layer >= 0 && layer < L + cfg_.num_nextn_predict_layers, "no layer ", layer, " (the model has ", L,
           " layers and ", cfg_.num_nextn_predict_layers, " MTP modules)");
  return layer < L ? P_.layers[size_t(layer)] : P_.mtp[size_t(layer - L)].block;
}

template <typename T>
const ParamInfo* TrainModel<T>::info(const std::string& name) const {
  for (const auto& p : layout_)
    if (p.name == name) return &p;
  return nullptr;
}

template <typename T>
T* TrainModel<T>::param(const std::string& name) {
  const ParamInfo* p = info(name);
  if (!p) fail(ErrorKind::NotFound, "model has no parameter '", name, "'");
  return params_.data() + p->offset;
}

template <typename T>
void TrainModel<T>::init_random(uint64_t seed, double std) {
  const double out_std = std / std::sqrt(2.0 * double(cfg_.num_hidden_layers + cfg_.num_nextn_predict_layers));
  for (size_t i = 0; i < layout_.size(); ++i) {
    const ParamInfo& p = layout_[i];
    T* w = params_.data() + p.offset;
    if (ends_with(p.name, "norm.weight")) {
      std::fill(w, w + p.numel, T(1));
    } else if (!p.optimize) {
      std::fill(w, w + p.numel, T(0));
    } else {
      Rng rng(seed * 0x9e3779b97f4a7c15ull + i);
      const double s = (ends_with(p.name, "o_proj.weight") || ends_with(p.name, "down_proj.weight")) ? out_std : std;
      for (size_t j = 0; j < p.numel; ++j) w[j] = T(rng.normal() * s);
    }
  }
}

template <typename T>
void TrainModel<T>::set_expert_parallel(const ExpertParallel* ep) {
  for (ModelParamsT<T>* v : {&P_, &G_}) {
    for (auto& l : v->layers) l.ffn.ep = ep;
    for (auto& m : v->mtp) m.block.ffn.ep = ep;
  }
}

template <typename T>
void TrainModel<T>::zero_grad() {
  std::fill(grads_.begin(), grads_.end(), T(0));
}

template class TrainModel<float>;
template class TrainModel<double>;

}  // namespace qs
