#include "qiusuo/model/rope.h"

#include <algorithm>
#include <cmath>

#include "qiusuo/core/error.h"

namespace qs {
namespace {
// Dimension index at which the wavelength completes `rot` rotations over `len` positions.
double correction_dim(double rot, int64_t dim, double base, double len) {
  return double(dim) * std::log(len / (rot * 2.0 * M_PI)) / (2.0 * std::log(base));
}
}  // namespace

Rope::Rope(const ModelConfig& cfg) : dim_(cfg.qk_rope_head_dim), attn_factor_(float(cfg.rope_attention_factor())) {
  QS_CHECK(dim_ > 0 && dim_ <= 512 && dim_ % 2 == 0, "qk_rope_head_dim must be even and <= 512, got ", dim_);
  const int64_t half = dim_ / 2;
  inv_freq_.resize(size_t(half));
  const float base = float(cfg.rope_theta);
  // F32 arithmetic as the reference computes it: base ** (arange(0, dim, 2) / dim).
  for (int64_t i = 0; i < half; ++i) {
    const float e = float(2 * i) / float(dim_);
    inv_freq_[size_t(i)] = 1.0f / std::pow(base, e);
  }
  if (cfg.rope_scaling && cfg.rope_scaling->factor > 1.0) {
    const auto& y = *cfg.rope_scaling;
    const double L = double(y.original_max_position_embeddings);
    double low = std::floor(correction_dim(y.beta_fast, dim_, cfg.rope_theta, L));
    double high = std::ceil(correction_dim(y.beta_slow, dim_, cfg.rope_theta, L));
    low = std::max(low, 0.0);
    high = std::min(high, double(dim_ - 1));
    if (low == high) high += 0.001;
    for (int64_t i = 0; i < half; ++i) {
      float ramp = float((double(i) - low) / (high - low));
      ramp = std::clamp(ramp, 0.0f, 1.0f);
      const float smooth = 1.0f - ramp;  // 1 keeps the original frequency
      const float f = inv_freq_[size_t(i)];
      inv_freq_[size_t(i)] = f / float(y.factor) * (1.0f - smooth) + f * smooth;
    }
  }
  table_len_ = 8192;
  table_.resize(size_t(table_len_ * half * 2));
  for (int64_t p = 0; p < table_len_; ++p)
    for (int64_t i = 0; i < half; ++i) {
      const float ang = float(p) * inv_freq_[size_t(i)];  // F32 product, as torch.outer
      table_[size_t((p * half + i) * 2)] = float(std::cos(double(ang))) * attn_factor_;
      table_[size_t((p * half + i) * 2 + 1)] = float(std::sin(double(ang))) * attn_factor_;
    }
}

void Rope::cos_sin(int64_t pos, float* c, float* s) const {
  const int64_t half = dim_ / 2;
  if (pos < table_len_) {
    const float* t = table_.data() + pos * half * 2;
    for (int64_t i = 0; i < half; ++i) { c[i] = t[2 * i]; s[i] = t[2 * i + 1]; }
    return;
  }
  for (int64_t i = 0; i < half; ++i) {
    const float ang = float(pos) * inv_freq_[size_t(i)];
    c[i] = float(std::cos(double(ang))) * attn_factor_;
    s[i] = float(std::sin(double(ang))) * attn_factor_;
  }
}

void Rope::apply(float* x, int64_t pos) const { apply_n(x, 1, dim_, pos); }

void Rope::apply_n(float* x, int64_t n, int64_t stride, int64_t pos) const {
  const int64_t half = dim_ / 2;
  float c[256], s[256];
  cos_sin(pos, c, s);
  for (int64_t k = 0; k < n; ++k) {
    float* v = x + k * stride;
    for (int64_t i = 0; i < half; ++i) {
      const float a = v[2 * i], b = v[2 * i + 1];
      v[2 * i] = a * c[i] - b * s[i];
      v[2 * i + 1] = a * s[i] + b * c[i];
    }
  }
}

void Rope::apply_inverse(float* x, int64_t pos) const {
  const int64_t half = dim_ / 2;
  float c[256], s[256];
  cos_sin(pos, c, s);
  for (int64_t i = 0; i < half; ++i) {
    const float a = x[2 * i], b = x[2 * i + 1];
    x[2 * i] = a * c[i] + b * s[i];
    x[2 * i + 1] = -a * s[i] + b * c[i];
  }
}

template <typename T>
void Rope::rotate(T* x, int64_t n, int64_t stride, int64_t pos, bool inverse) const {
  const int64_t half = dim_ / 2;
  float c[256], s[256];
  cos_sin(pos, c, s);
  for (int64_t k = 0; k < n; ++k) {
    T* v = x + k * stride;
    for (int64_t i = 0; i < half; ++i) {
      const T a = v[2 * i], b = v[2 * i + 1], ci = T(c[i]), si = inverse ? -T(s[i]) : T(s[i]);
      v[2 * i] = a * ci - b * si;
      v[2 * i + 1] = a * si + b * ci;
    }
  }
}
template void Rope::rotate<float>(float*, int64_t, int64_t, int64_t, bool) const;
template void Rope::rotate<double>(double*, int64_t, int64_t, int64_t, bool) const;

}  // namespace qs
