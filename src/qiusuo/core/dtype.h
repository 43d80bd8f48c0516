// Element types of stored tensors and their scalar conversions (the reference every fast
// kernel is tested against).
//   F32, F16, BF16     IEEE / bfloat16
//   F8_E4M3            "e4m3fn": 1 sign, 4 exponent (bias 7), 3 mantissa; no infinities,
//                      0x7F/0xFF are NaN, max finite 448. Real DeepSeek-V3 checkpoints store
//                      projection weights this way with one F32 `weight_scale_inv` per
//                      128x128 block: w = fp8 * scale_inv[row/128][col/128].
//   I4                 packed signed 4-bit integers (group-wise weights, kernels/linear.h): two per
//                      byte, so dtype_size(I4) is not meaningful; never a safetensors dtype
//                      (parse_dtype does not accept it; GPTQ checkpoints store I32 words).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace qs {

enum class DType : uint8_t { F32, F16, BF16, F8_E4M3, F64, I64, I32, I16, I8, U8, U32, BOOL, I4 };

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

// E4M3 (fn) decode: exact; 0x7F and 0xFF give the same quiet NaN (positive, 0x7FC00000, as the
// SIMD decoders give it: a NaN's sign means nothing, and every ISA gives the same bits). A
// 256-entry table built from the formula (-1)^s · 2^(e-7) · (1 + m/8), subnormals 2^-6 · m/8.
struct Fp8Table {
  float v[256];
  constexpr Fp8Table() : v{} {
    for (int b = 0; b < 256; ++b) {
      const int e = (b >> 3) & 0xF, m = b & 0x7;
      if (e == 0xF && m == 0x7) {
        v[b] = __builtin_nanf("");
        continue;
      }
      float x = e == 0 ? float(m) / 512.0f : float(8 + m) / 8.0f;
      for (int k = 7; k < e; ++k) x *= 2.0f;
      for (int k = e; k < 7 && e > 0; ++k) x /= 2.0f;
      v[b] = (b & 0x80) ? -x : x;
    }
  }
};
inline constexpr Fp8Table kFp8Table{};
inline float fp8e4m3_to_f32(uint8_t b) { return kFp8Table.v[b]; }

// E4M3 encode: round to nearest even, saturating to +-448 (as torch's float8_e4m3fn cast
// of values already clamped to the range, which is how FP8 training quantizes). NaN → 0x7F.
inline uint8_t f32_to_fp8e4m3(float f) {
  const uint32_t u = bits_from_f32(f);
  const uint8_t sign = uint8_t((u >> 24) & 0x80);
  const uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return sign | 0x7f;   // NaN
  if (a >= 0x43e00000u) return sign | 0x7e;  // >= 448 (and inf): saturate
  if (a < 0x3c800000u) {                     // below 2^-6: subnormal codes m·2^-9, m in 0..8
    const float r = (f32_from_bits(a) * 512.0f + 8388608.0f) - 8388608.0f;  // round half to even
    return sign | uint8_t(r);
  }
  // Normal: exponent and mantissa bits are contiguous, so rounding the mantissa to 3 bits
  // carries into the exponent by itself.
  const uint32_t rounded = a + 0x7ffffu + ((a >> 20) & 1u);
  uint32_t code = (rounded >> 20) - (120u << 3);
  if (code > 0x7e) code = 0x7e;
  return sign | uint8_t(code);
}

}  // namespace qs
