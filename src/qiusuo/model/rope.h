// Rotary position embedding on the decoupled qk_rope_head_dim part of MLA, with YaRN
// context extension. Pairs are interleaved — (x[2i], x[2i+1]) rotate by angle pos·θ_i — as
// the official DeepSeek model.py does (view_as_complex); Hugging Face's modeling code gets the
// same result by permuting before rotate_half.
//
// θ_i = rope_theta^(-2i/dim); with YaRN (factor s, original length L, beta_fast, beta_slow):
//   ramp_i = clamp((i - low) / (high - low), 0, 1) over i in [0, dim/2), where low/high are the
//   dims completing beta_fast / beta_slow rotations over L; θ_i' = θ_i/s · ramp_i + θ_i · (1 - ramp_i).
// cos/sin are multiplied by rope_attention_factor() (1 for every released config).
#pragma once
#include <cstdint>
#include <vector>

#include "qiusuo/model/config.h"

namespace qs {

class Rope {
 public:
  explicit Rope(const ModelConfig& cfg);
  int64_t dim() const { return dim_; }
  const std::vector<float>& inv_freq() const { return inv_freq_; }  // [dim/2]

  // x[dim] rotated in place for position pos (forward), or by -angle (backward: the transpose).
  void apply(float* x, int64_t pos) const;
  void apply_inverse(float* x, int64_t pos) const;
  // Rotates `n` vectors of `dim` floats, `stride` floats apart, all at position `pos`.
  void apply_n(float* x, int64_t n, int64_t stride, int64_t pos) const;
  // Training form, any scalar type: rotates n vectors `stride` apart by +angle (forward) or
  // -angle (inverse = transpose, used by backward passes). Same F32 cos/sin as inference.
  template <typename T>
  void rotate(T* x, int64_t n, int64_t stride, int64_t pos, bool inverse) const;

 private:
  void cos_sin(int64_t pos, float* c, float* s) const;
  int64_t dim_;
  float attn_factor_;
  std::vector<float> inv_freq_;
  std::vector<float> table_;  // [table_len_][dim/2][cos, sin], filled by the constructor
  int64_t table_len_ = 0;     // positions below this read the table; later ones compute cos/sin
};

}  // namespace qs
