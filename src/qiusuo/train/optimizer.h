// AdamW with decoupled weight decay (Loshchilov & Hutter), F32 moments over the flat parameter
// buffer; learning-rate schedules; gradient clipping by global norm.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "qiusuo/train/train_model.h"

namespace qs {

struct AdamWConfig {
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8;
  double weight_decay = 0.1;  // applied to ParamInfo::decay tensors only
};

enum class ScheduleKind { Cosine, Wsd, Constant };

// lr(step): linear warmup from 0 over `warmup` steps, then
//   cosine   half-cosine from peak to min_ratio·peak at `total`
//   wsd      warmup-stable-decay: constant until total − decay_fraction·total, then linear to min
//   constant peak
struct LrSchedule {
  ScheduleKind kind = ScheduleKind::Cosine;
  double peak = 3e-4;
  int64_t warmup = 100;
  int64_t total = 1000;
  double min_ratio = 0.1;
  double decay_fraction = 0.2;
  double at(int64_t step) const;  // step counts from 0
};
ScheduleKind parse_schedule(const std::string& s);  // cosine | wsd | constant

class AdamW {
 public:
  AdamW(const std::vector<ParamInfo>& layout, size_t total, AdamWConfig cfg);
  // One update of params from grads with learning rate lr (moments updated, step += 1).
  void step(float* params, const float* grads, double lr);
  int64_t steps() const { return t_; }
  void set_steps(int64_t t) { t_ = t; }
  std::vector<float>& exp_avg() { return m_; }
  std::vector<float>& exp_avg_sq() { return v_; }
  const AdamWConfig& config() const { return cfg_; }

 private:
  std::vector<ParamInfo> layout_;
  AdamWConfig cfg_;
  std::vector<float> m_, v_;
  int64_t t_ = 0;
};

// Global L2 norm of the optimized gradients (double accumulation, fixed order); when it exceeds
// max_norm (> 0), scales them by max_norm / norm. Returns the norm before clipping.
double clip_grad_norm(const std::vector<ParamInfo>& layout, float* grads, double max_norm);

}  // namespace qs
