// Bulk conversions of every ISA (and the public entry points) bit-exact against the scalar
// conversions of core/dtype.h: all 65536 BF16/F16 patterns, all 256 FP8 codes (scaled and
// not), F32 -> BF16 rounding on random bit patterns and edge values, every tail length.
#include "qiusuo/kernels/convert.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/kernel_test_util.h"

namespace qs {
namespace {

bool same(float a, float b) {
  return (std::isnan(a) && std::isnan(b)) || std::memcmp(&a, &b, 4) == 0;
}

// Every FP8 -> F32 converter this CPU runs: each ISA table's, and the plain AVX-512 one where the
// table holds the AVX512_VBMI variant instead.
struct Fp8Converter {
  std::string name;
  void (*fn)(const uint8_t*, float*, int64_t, float);
};
std::vector<Fp8Converter> fp8_converters() {
  std::vector<Fp8Converter> out;
  for (const cpu::Kernels* k : test::runnable_kernels()) out.push_back({isa_name(k->isa), k->fp8_to_f32});
#ifdef QIUSUO_SIMD
  if (const cpu::Kernels* k = cpu::kernels_for(Isa::Avx512); k && k->fp8_to_f32 != cpu::fp8_to_f32_avx512) {
    out.back().name += " (VBMI)";
    out.push_back({"avx512 (F16 route)", cpu::fp8_to_f32_avx512});
  }
#endif
  return out;
}

TEST(Convert, Bf16AndF16ToF32AllPatterns) {
  std::vector<uint16_t> in(65536);
  for (int i = 0; i < 65536; ++i) in[size_t(i)] = uint16_t(i);
  std::vector<float> out(65536);
  for (const cpu::Kernels* k : test::runnable_kernels()) {
    k->bf16_to_f32(in.data(), out.data(), 65536);
    for (int i = 0; i < 65536; ++i)
      ASSERT_TRUE(same(out[size_t(i)], bf16_to_f32(uint16_t(i)))) << isa_name(k->isa) << " bf16 " << i;
    k->f16_to_f32(in.data(), out.data(), 65536);
    for (int i = 0; i < 65536; ++i)
      ASSERT_TRUE(same(out[size_t(i)], f16_to_f32(uint16_t(i)))) << isa_name(k->isa) << " f16 " << i;
  }
  bf16_to_f32(in.data(), out.data(), 65536);
  EXPECT_TRUE(same(out[0x3f80], 1.0f));
  f16_to_f32(in.data(), out.data(), 65536);
  EXPECT_TRUE(same(out[0x3c00], 1.0f));
}

TEST(Convert, Fp8AllCodesScaledAndUnscaled) {
  std::vector<uint8_t> in(256);
  for (int i = 0; i < 256; ++i) in[size_t(i)] = uint8_t(i);
  std::vector<float> out(256);
  for (const Fp8Converter& k : fp8_converters())
    for (float s : {1.0f, 0.001953125f, 3.7e-3f, 1.5e4f, 1e-30f}) {
      k.fn(in.data(), out.data(), 256, s);
      for (int i = 0; i < 256; ++i)
        ASSERT_TRUE(same(out[size_t(i)], fp8e4m3_to_f32(uint8_t(i)) * s))
            << k.name << " code " << i << " scale " << s << ": " << out[size_t(i)];
      // Both NaN codes give the one positive quiet NaN, bit for bit, in every converter.
      for (int c : {0x7f, 0xff}) {
        uint32_t u;
        std::memcpy(&u, &out[size_t(c)], 4);
        EXPECT_EQ(u, 0x7fc00000u) << k.name << " code " << c;
      }
    }
  // Every finite code in a mixed order over a long span (every vector of it mixes negative,
  // subnormal and large codes), then with one NaN code placed at a few positions in turn.
  std::vector<uint8_t> finite;
  for (int i = 0; i < 256; ++i) {
    const int c = (i * 77 + 13) & 0xff;  // a permutation of the codes
    if ((c & 0x7f) != 0x7f) finite.push_back(uint8_t(c));
  }
  for (int nan_at = -1; nan_at < int(finite.size()); nan_at += 61) {
    std::vector<uint8_t> codes = finite;
    if (nan_at >= 0) codes[size_t(nan_at)] = 0xff;
    std::vector<float> got(codes.size());
    for (const Fp8Converter& k : fp8_converters()) {
      k.fn(codes.data(), got.data(), int64_t(codes.size()), 3.7e-3f);
      for (size_t i = 0; i < codes.size(); ++i)
        ASSERT_TRUE(same(got[i], fp8e4m3_to_f32(codes[i]) * 3.7e-3f))
            << k.name << " code " << int(codes[i]) << " at " << i << " (NaN at " << nan_at << ")";
    }
  }
  fp8e4m3_to_f32(in.data(), out.data(), 256);
  EXPECT_EQ(out[0x7e], 448.0f);
  EXPECT_TRUE(std::isnan(out[0x7f]) && std::isnan(out[0xff]));
}

TEST(Convert, F32ToBf16RoundsLikeScalar) {
  std::mt19937 rng(1);
  std::vector<float> in(100000);
  for (float& f : in) {
    const uint32_t u = rng();
    std::memcpy(&f, &u, 4);  // every class: NaN, inf, subnormal, ties (low half 0x8000)
  }
  const uint32_t edge[] = {0x7f800000, 0xff800000, 0x7f7fffff, 0x00000001, 0x80000001, 0x3f808000,
                           0x3f818000, 0x7fc00000, 0x7f800001, 0xffffffff, 0x00008000, 0x0};
  for (size_t i = 0; i < std::size(edge); ++i) std::memcpy(&in[i], &edge[i], 4);
  std::vector<uint16_t> out(in.size());
  for (const cpu::Kernels* k : test::runnable_kernels()) {
    k->f32_to_bf16(in.data(), out.data(), int64_t(in.size()));
    for (size_t i = 0; i < in.size(); ++i)
      ASSERT_EQ(out[i], f32_to_bf16(in[i])) << isa_name(k->isa) << " at " << i;
  }
  f32_to_bf16(in.data(), out.data(), int64_t(in.size()));
  EXPECT_EQ(out[5], f32_to_bf16(in[5]));
}

// Every length 0..70 from an odd offset: tails must neither miss elements nor write past n.
TEST(Convert, TailsAndBounds) {
  std::vector<uint16_t> h(80);
  std::vector<uint8_t> b(80);
  std::vector<float> f = test::random_floats(80, 3);
  for (size_t i = 0; i < 80; ++i) {
    h[i] = uint16_t(0x3c00 + i);
    b[i] = uint8_t(0x30 + i);
  }
  for (const cpu::Kernels* k : test::runnable_kernels())
    for (int64_t n = 0; n <= 70; ++n) {
      std::vector<float> out(80, -7.0f);
      std::vector<uint16_t> out16(80, 0xdead);
      k->bf16_to_f32(h.data() + 1, out.data() + 1, n);
      for (int64_t i = 0; i < 80; ++i)
        ASSERT_EQ(out[size_t(i)], i >= 1 && i <= n ? bf16_to_f32(h[size_t(i)]) : -7.0f) << n << " " << i;
      std::fill(out.begin(), out.end(), -7.0f);
      k->f16_to_f32(h.data() + 1, out.data() + 1, n);
      for (int64_t i = 0; i < 80; ++i)
        ASSERT_EQ(out[size_t(i)], i >= 1 && i <= n ? f16_to_f32(h[size_t(i)]) : -7.0f) << n << " " << i;
      std::fill(out.begin(), out.end(), -7.0f);
      for (const Fp8Converter& c : fp8_converters()) {
        std::fill(out.begin(), out.end(), -7.0f);
        c.fn(b.data() + 1, out.data() + 1, n, 0.5f);
        for (int64_t i = 0; i < 80; ++i)
          ASSERT_EQ(out[size_t(i)], i >= 1 && i <= n ? fp8e4m3_to_f32(b[size_t(i)]) * 0.5f : -7.0f)
              << c.name << " " << n << " " << i;
      }
      k->f32_to_bf16(f.data() + 1, out16.data() + 1, n);
      for (int64_t i = 0; i < 80; ++i)
        ASSERT_EQ(out16[size_t(i)], i >= 1 && i <= n ? f32_to_bf16(f[size_t(i)]) : 0xdead) << n << " " << i;
    }
}

// FP8 over every length 0..200 from an odd offset: several 64-code steps and every tail, codes of
// every class (a NaN code among them), nothing written outside [1, n].
TEST(Convert, Fp8LongTailsAndBounds) {
  std::vector<uint8_t> b(210);
  for (size_t i = 0; i < b.size(); ++i) b[i] = uint8_t(i * 37 + 5);
  std::vector<float> out(210);
  for (const Fp8Converter& c : fp8_converters())
    for (int64_t n = 0; n <= 200; ++n) {
      std::fill(out.begin(), out.end(), -7.0f);
      c.fn(b.data() + 1, out.data() + 1, n, 0.75f);
      for (int64_t i = 0; i < 210; ++i) {
        const float want = i >= 1 && i <= n ? fp8e4m3_to_f32(b[size_t(i)]) * 0.75f : -7.0f;
        ASSERT_TRUE(same(out[size_t(i)], want)) << c.name << " n " << n << " at " << i;
      }
    }
}

}  // namespace
}  // namespace qs
