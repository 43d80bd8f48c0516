#include "qiusuo/core/dtype.h"

#include <array>

namespace qs {
namespace {
struct Info { DType t; std::string_view name; size_t size; };
constexpr std::array<Info, 13> kInfo{{{DType::F32, "F32", 4},   {DType::F16, "F16", 2},
                                      {DType::BF16, "BF16", 2}, {DType::F8_E4M3, "F8_E4M3", 1},
                                      {DType::F64, "F64", 8},   {DType::I64, "I64", 8},
                                      {DType::I32, "I32", 4},   {DType::I16, "I16", 2},
                                      {DType::I8, "I8", 1},     {DType::U8, "U8", 1},
                                      {DType::U32, "U32", 4},   {DType::BOOL, "BOOL", 1},
                                      {DType::I4, "I4", 1}}};  // two per byte (see dtype.h)
}  // namespace

size_t dtype_size(DType t) { return kInfo[size_t(t)].size; }
std::string_view dtype_name(DType t) { return kInfo[size_t(t)].name; }
bool parse_dtype(std::string_view s, DType* out) {
  for (const auto& i : kInfo)
    if (i.name == s && i.t != DType::I4) { *out = i.t; return true; }
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

}  // namespace qs
