#include "qiusuo/core/dtype.h"

#include <array>

namespace qs {
namespace {
struct Info { DType t; std::string_view name; size_t size; };
constexpr std::array<Info, 12> kInfo{{{DType::F32, "F32", 4},   {DType::F16, "F16", 2},
                                      {DType::BF16, "BF16", 2}, {DType::F8_E4M3, "F8_E4M3", 1},
                                      {DType::F64, "F64", 8},   {DType::I64, "I64", 8},
                                      {DType::I32, "I32", 4},   {DType::I16, "I16", 2},
                                      {DType::I8, "I8", 1},     {DType::U8, "U8", 1},
                                      {DType::U32, "U32", 4},   {DType::BOOL, "BOOL", 1}}};
}  // namespace

size_t dtype_size(DType t) { return kInfo[size_t(t)].size; }
std::string_view dtype_name(DType t) { return kInfo[size_t(t)].name; }
bool parse_dtype(std::string_view s, DType* out) {
  for (const auto& i : kInfo)
    if (i.name == s) { *out = i.t; return true; }
  return false;
}

float f16_to_f32(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000) << 16;
  const uint32_t e = (h >> 10) & 0x1f, m = h & 0x3ff;
  float v;
  if (e == 0) v = std::ldexp(float(m), -24);
  else if (e == 31) v = m ? std::nanf("") : INFINITY;
  else v = std::ldexp(float(m | 0x400), int(e) - 25);
  return f32_from_bits(bits_from_f32(v) | sign);
}

uint16_t f32_to_f16(float f) {
  uint32_t u = bits_from_f32(f);
  const uint16_t sign = uint16_t((u >> 16) & 0x8000);
  u &= 0x7fffffffu;
  if (u > 0x7f800000u) return sign | 0x7e00;
  if (u >= 0x477ff000u) return sign | 0x7c00;  // >= 65520 rounds to inf
  if (u < 0x38800000u) {                        // subnormal or zero in f16
    // value / 2^-24 rounded to nearest even
    float a = f32_from_bits(u);
    float q = a * 16777216.0f;  // exact (power of two scaling)
    float r = std::nearbyint(q);  // default rounding mode: nearest even
    return sign | uint16_t(r);
  }
  uint32_t mant = u & 0x7fffff, exp = (u >> 23) - 112;
  uint32_t out = (exp << 10) | (mant >> 13);
  uint32_t rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (out & 1))) out++;
  return sign | uint16_t(out);
}

uint8_t f32_to_fp8e4m3(float f) {
  uint32_t u = bits_from_f32(f);
  const uint8_t sign = uint8_t((u >> 24) & 0x80);
  float a = std::fabs(f);
  if (std::isnan(f)) return sign | 0x7f;
  if (a >= 448.0f) return sign | 0x7e;
  if (a < std::ldexp(1.0f, -6)) {  // subnormal range: multiples of 2^-9
    float r = std::nearbyint(a * 512.0f);
    return sign | uint8_t(r);  // r == 8 gives 0x08 = 2^-6, the smallest normal: correct
  }
  int e;
  std::frexp(a, &e);  // a = frac * 2^e, frac in [0.5,1)
  // normal: a = 1.mmm * 2^(e-1); quantum 2^(e-4)
  float q = std::nearbyint(std::ldexp(a, 4 - e));  // in [8, 16]
  int exp = e - 1;
  if (q >= 16.0f) { q = 8.0f; exp++; }
  int biased = exp + 7;
  if (biased > 15 || (biased == 15 && q > 14.0f)) return sign | 0x7e;
  return sign | uint8_t((biased << 3) | (int(q) - 8));
}

}  // namespace qs
