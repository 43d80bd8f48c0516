#include "qiusuo/train/optimizer.h"

#include <cmath>

#include "qiusuo/core/buffer.h"
#include "qiusuo/core/error.h"
#include "qiusuo/core/parallel.h"
#include "qiusuo/kernels/train_vec.h"
#include "qiusuo/kernels/vec_ops.h"

namespace qs {

ScheduleKind parse_schedule(const std::string& s) {
  if (s == "cosine") return ScheduleKind::Cosine;
  if (s == "wsd") return ScheduleKind::Wsd;
  if (s == "constant") return ScheduleKind::Constant;
  fail("schedule must be cosine, wsd or constant, got '", s, "'");
}

double LrSchedule::at(int64_t step) const {
  if (warmup > 0 && step < warmup) return peak * double(step + 1) / double(warmup);
  const double lo = peak * min_ratio;
  switch (kind) {
    case ScheduleKind::Constant: return peak;
    case ScheduleKind::Cosine: {
      if (step >= total) return lo;
      const double t = double(step - warmup) / double(std::max<int64_t>(1, total - warmup));
      return lo + 0.5 * (peak - lo) * (1.0 + std::cos(M_PI * t));
    }
    case ScheduleKind::Wsd: {
      const int64_t decay_steps = std::max<int64_t>(1, int64_t(decay_fraction * double(total)));
      const int64_t start = total - decay_steps;
      if (step < start) return peak;
      if (step >= total) return lo;
      return peak - (peak - lo) * double(step - start) / double(decay_steps);
    }
  }
  return peak;
}

AdamW::AdamW(const std::vector<ParamInfo>& layout, size_t total, AdamWConfig cfg) : layout_(layout), cfg_(cfg) {
  for (auto* v : {&m_, &v_}) {
    v->reserve(total);
    advise_huge_pages(v->data(), total * sizeof(float));
    v->assign(total, 0.0f);
  }
}

void AdamW::step(float* params, const float* grads, double lr) {
  ++t_;
  const double b1 = cfg_.beta1, b2 = cfg_.beta2;
  const double c1 = 1.0 - std::pow(b1, double(t_)), c2 = 1.0 - std::pow(b2, double(t_));
  const float step_size = float(lr / c1), inv_c2 = float(1.0 / c2), eps = float(cfg_.eps);
  for (const ParamInfo& p : layout_) {
    if (!p.optimize) continue;
    const float decay = p.decay ? float(1.0 - lr * cfg_.weight_decay) : 1.0f;
    float* w = params + p.offset;
    const float* g = grads + p.offset;
    float* m = m_.data() + p.offset;
    float* v = v_.data() + p.offset;
    const float fb1 = float(b1), fb2 = float(b2);
    parallel_for(int64_t(p.numel), 1 << 14, [&](int64_t b, int64_t e) {
      adamw_update(w + b, g + b, m + b, v + b, e - b, fb1, fb2, step_size, inv_c2, eps, decay);
    });
  }
}

double clip_grad_norm(const std::vector<ParamInfo>& layout, float* grads, double max_norm) {
  // Per tensor, fixed chunks summed in order: the norm does not depend on the thread count.
  constexpr int64_t kChunk = 1 << 16;
  double ss = 0;
  std::vector<double> part;
  for (const ParamInfo& p : layout) {
    if (!p.optimize) continue;
    const float* g = grads + p.offset;
    const int64_t n = int64_t(p.numel), chunks = (n + kChunk - 1) / kChunk;
    part.assign(size_t(chunks), 0.0);
    parallel_for(chunks, 1, [&](int64_t b, int64_t e) {
      for (int64_t c = b; c < e; ++c) part[size_t(c)] = sum_squares(g + c * kChunk, std::min(kChunk, n - c * kChunk));
    });
    for (double x : part) ss += x;
  }
  const double norm = std::sqrt(ss);
  if (max_norm > 0 && norm > max_norm && std::isfinite(norm)) {
    const float k = float(max_norm / norm);
    for (const ParamInfo& p : layout) {
      if (!p.optimize) continue;
      float* g = grads + p.offset;
      parallel_for(int64_t(p.numel), 1 << 14, [&](int64_t b, int64_t e) { qs::scale(g + b, k, e - b); });
    }
  }
  return norm;
}

}  // namespace qs
