// Element types of stored tensors and their scalar conversions (the reference every fast
// kernel is tested against).
//   F32, F16, BF16     IEEE / bfloat16
//   F8_E4M3            "e4m3fn": 1 sign, 4 exponent (bias 7), 3 mantissa; no infinities,
//                      0x7F/0xFF are NaN, max finite 448. Real DeepSeek-V3 checkpoints store
//                      projection weights this way with one F32 `weight_scale_inv` per
//                      128x128 block: w = fp8 * scale_inv[row/128][col/128].
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace qs {

enum class DType : uint8_t { F32, F16, BF16, F8_E4M3, F64, I64, I32, I16, I8, U8, U32, BOOL };

size_t dtype_size(DType t);
std::string_view dtype_name(DType t);          // safetensors spelling: "F32", "BF16", "F8_E4M3", ...
bool parse_dtype(std::string_view s, DType* out);  // false when unknown

inline float f32_from_bits(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }
inline uint32_t bits_from_f32(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }

inline float bf16_to_f32(uint16_t h) { return f32_from_bits(uint32_t(h) << 16); }
// Round to nearest even; NaN stays NaN.
inline uint16_t f32_to_bf16(float f) {
  uint32_t u = bits_from_f32(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);  // round to nearest even, overflow to inf

// E4M3 (fn) decode: exact; 0x7F and 0xFF give NaN.
inline float fp8e4m3_to_f32(uint8_t b) {
  const uint32_t sign = uint32_t(b & 0x80) << 24;
  const uint32_t e = (b >> 3) & 0xF, m = b & 0x7;
  if (e == 0xF && m == 0x7) return std::nanf("");
  float v = e == 0 ? std::ldexp(float(m), -9) : std::ldexp(float(8 + m), int(e) - 10);
  return f32_from_bits(bits_from_f32(v) | sign);
}
// E4M3 encode: round to nearest even, saturating to +-448 (as torch's float8_e4m3fn cast
// of values already clamped to the range, which is how FP8 training quantizes).
uint8_t f32_to_fp8e4m3(float f);

}  // namespace qs
