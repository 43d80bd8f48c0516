// Bulk conversions (see convert.h): the best ISA's kernels from cpu/convert_<isa>.cpp.
#include "qiusuo/kernels/convert.h"

#include "qiusuo/kernels/cpu/cpu_kernels.h"

namespace qs {
void bf16_to_f32(const uint16_t* in, float* out, int64_t n) { cpu::kernels().bf16_to_f32(in, out, n); }
void f32_to_bf16(const float* in, uint16_t* out, int64_t n) { cpu::kernels().f32_to_bf16(in, out, n); }
void f16_to_f32(const uint16_t* in, float* out, int64_t n) { cpu::kernels().f16_to_f32(in, out, n); }
void fp8e4m3_to_f32(const uint8_t* in, float* out, int64_t n) { cpu::kernels().fp8_to_f32(in, out, n, 1.0f); }
}  // namespace qs
