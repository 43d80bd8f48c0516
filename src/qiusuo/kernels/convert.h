// Bulk dtype conversions over spans (SIMD where available; scalar reference in core/dtype.h).
#pragma once
#include <cstdint>

namespace qs {
void bf16_to_f32(const uint16_t* in, float* out, int64_t n);
void f32_to_bf16(const float* in, uint16_t* out, int64_t n);   // round to nearest even
void f16_to_f32(const uint16_t* in, float* out, int64_t n);
void fp8e4m3_to_f32(const uint8_t* in, float* out, int64_t n);  // unscaled codes
// E4M3 codes times per-group scales rounded to BF16: code i times scales[i / group], the F32
// product (one rounding, as the scaled fp8_to_f32 of the kernel tables) rounded to nearest even
// (as f32_to_bf16). group > 0.
void fp8e4m3_to_bf16(const uint8_t* in, uint16_t* out, int64_t n, const float* scales, int64_t group);
}  // namespace qs
