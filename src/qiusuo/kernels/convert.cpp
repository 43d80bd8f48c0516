// Bulk conversions (see convert.h): the best ISA's kernels from cpu/convert_<isa>.cpp.
#include "qiusuo/kernels/convert.h"

#include <algorithm>

#include "qiusuo/kernels/cpu/cpu_kernels.h"

namespace qs {
void bf16_to_f32(const uint16_t* in, float* out, int64_t n) { cpu::kernels().bf16_to_f32(in, out, n); }
void f32_to_bf16(const float* in, uint16_t* out, int64_t n) { cpu::kernels().f32_to_bf16(in, out, n); }
void f16_to_f32(const uint16_t* in, float* out, int64_t n) { cpu::kernels().f16_to_f32(in, out, n); }
void fp8e4m3_to_f32(const uint8_t* in, float* out, int64_t n) { cpu::kernels().fp8_to_f32(in, out, n, 1.0f); }
void fp8e4m3_to_bf16(const uint8_t* in, uint16_t* out, int64_t n, const float* scales, int64_t group) {
  const cpu::Kernels& k = cpu::kernels();
  if (k.fp8_to_bf16) k.fp8_to_bf16(in, out, n, scales, group);
  else cpu::fp8_to_bf16_two_pass(k.fp8_to_f32, k.f32_to_bf16, in, out, n, scales, group);
}
namespace cpu {
void fp8_to_bf16_two_pass(void (*fp8_to_f32)(const uint8_t*, float*, int64_t, float),
                          void (*f32_to_bf16)(const float*, uint16_t*, int64_t), const uint8_t* in, uint16_t* out,
                          int64_t n, const float* scales, int64_t group) {
  float f[128];  // a chunk in F32, in L1
  for (int64_t g0 = 0; g0 < n; g0 += group) {
    const int64_t g1 = std::min(n, g0 + group);
    for (int64_t i = g0; i < g1; i += 128) {
      const int64_t m = std::min<int64_t>(128, g1 - i);
      fp8_to_f32(in + i, f, m, scales[g0 / group]);
      f32_to_bf16(f, out + i, m);
    }
  }
}
}  // namespace cpu
}  // namespace qs
