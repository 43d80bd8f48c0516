// Bulk dtype conversions, scalar reference: loops over the scalar conversions of core/dtype.h.
#include "qiusuo/core/dtype.h"
#include "qiusuo/kernels/cpu/cpu_kernels.h"

namespace qs::cpu {

void bf16_to_f32_scalar(const uint16_t* in, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = qs::bf16_to_f32(in[i]);
}
void f32_to_bf16_scalar(const float* in, uint16_t* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = qs::f32_to_bf16(in[i]);
}
void f16_to_f32_scalar(const uint16_t* in, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = qs::f16_to_f32(in[i]);
}

// out[n] = fp8(in[n]) * scale through a 256-entry table of the exact decodes.
void fp8_to_f32_scalar(const uint8_t* in, float* out, int64_t n, float scale) {
  static const auto table = [] {
    struct T { float v[256]; } t;
    for (int b = 0; b < 256; ++b) t.v[b] = qs::fp8e4m3_to_f32(uint8_t(b));
    return t;
  }();
  if (scale == 1.0f) {
    for (int64_t i = 0; i < n; ++i) out[i] = table.v[in[i]];
  } else {
    for (int64_t i = 0; i < n; ++i) out[i] = table.v[in[i]] * scale;
  }
}

}  // namespace qs::cpu
