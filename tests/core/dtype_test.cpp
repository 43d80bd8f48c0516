#include "qiusuo/core/dtype.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace qs {
namespace {

TEST(Dtype, Fp8E4M3DecodesAll256CodesExactly) {
  // Independent formula: (-1)^s * 2^(e-7) * (1 + m/8) for e > 0, (-1)^s * 2^-6 * m/8 for e == 0.
  for (int b = 0; b < 256; ++b) {
    const int s = b >> 7, e = (b >> 3) & 15, m = b & 7;
    const float got = fp8e4m3_to_f32(uint8_t(b));
    if (e == 15 && m == 7) {
      EXPECT_TRUE(std::isnan(got)) << b;
      continue;
    }
    double want = e ? std::pow(2.0, e - 7) * (1.0 + m / 8.0) : std::pow(2.0, -6) * (m / 8.0);
    if (s) want = -want;
    EXPECT_EQ(double(got), want) << "code " << b;
  }
  EXPECT_EQ(fp8e4m3_to_f32(0x7e), 448.0f);
  EXPECT_TRUE(std::signbit(fp8e4m3_to_f32(0x80)));
}

TEST(Dtype, Fp8EncodeRoundTripsAndRoundsToNearest) {
  for (int b = 0; b < 256; ++b) {
    if ((b & 0x7f) == 0x7f) continue;
    const float v = fp8e4m3_to_f32(uint8_t(b));
    EXPECT_EQ(fp8e4m3_to_f32(f32_to_fp8e4m3(v)), v) << b;
  }
  EXPECT_EQ(f32_to_fp8e4m3(1000.0f), 0x7e);  // saturates
  EXPECT_EQ(fp8e4m3_to_f32(f32_to_fp8e4m3(1.0625f)), 1.0f);   // tie to even (1.0 has m=0)
  EXPECT_EQ(fp8e4m3_to_f32(f32_to_fp8e4m3(1.1875f)), 1.25f);  // tie to even (m=2)
  EXPECT_EQ(fp8e4m3_to_f32(f32_to_fp8e4m3(0.0009765625f)), 0.0f);  // 2^-10: tie to 0
}

// The bit-level encoder against an independent search for the nearest code (ties to even).
TEST(Dtype, Fp8EncodeIsNearestEvenEverywhere) {
  std::vector<float> codes;
  for (int b = 0; b <= 0x7e; ++b) codes.push_back(fp8e4m3_to_f32(uint8_t(b)));
  for (int i = -200000; i <= 200000; ++i) {
    const float x = std::ldexp(float(i), -12) * (i % 7 == 0 ? 37.0f : 1.0f);
    const float ax = std::fabs(x);
    int best = 0;
    for (int b = 1; b <= 0x7e; ++b) {
      const float d = std::fabs(codes[b] - ax), db = std::fabs(codes[best] - ax);
      if (d < db || (d == db && (b & 1) == 0)) best = b;
    }
    if (ax >= 448.0f) best = 0x7e;
    const uint8_t want = uint8_t(best | (std::signbit(x) && best ? 0x80 : 0));
    const uint8_t got = f32_to_fp8e4m3(x);
    ASSERT_EQ(fp8e4m3_to_f32(got), fp8e4m3_to_f32(want)) << x;
  }
}

TEST(Dtype, Bf16AndF16) {
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(1.0f)), 1.0f);
  EXPECT_EQ(f32_to_bf16(1.00390625f), 0x3f80);  // tie to even, down
  EXPECT_EQ(f32_to_bf16(1.01171875f), 0x3f82);  // tie to even, up
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = f16_to_f32(uint16_t(h));
    if (std::isnan(f)) continue;
    EXPECT_EQ(f32_to_f16(f), h) << h;
  }
}

}  // namespace
}  // namespace qs
