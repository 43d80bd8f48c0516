// Bulk conversions of every ISA (and the public entry points) bit-exact against the scalar
// conversions of core/dtype.h: all 65536 BF16/F16 patterns, all 256 FP8 codes (scaled and
// not), F32 -> BF16 rounding on random bit patterns and edge values, every tail length.
#include "qiusuo/kernels/convert.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
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

// FP8 -> BF16 with per-group scales (the FP8 KV cache's rows for BF16 attention): the scalar F32
// product rounded by the scalar f32_to_bf16, bit for bit — every code, lengths 1..300 (tails, a
// last partial group), groups of 128, 64 and 100, and scales on both sides of the fused AVX-512
// kernel's switch to its two-pass route (|scale| < 2^-117: subnormal products, which
// vcvtne2ps2bf16 would flush), zero, negative, huge and NaN, mixed within one row.
TEST(Convert, Fp8ToBf16IsTheScaledF32Rounded) {
  struct Fn {
    std::string name;
    std::function<void(const uint8_t*, uint16_t*, int64_t, const float*, int64_t)> fn;
  };
  std::vector<Fn> fns = {{"public", fp8e4m3_to_bf16}};
  for (const cpu::Kernels* k : test::runnable_kernels()) {
    fns.push_back({std::string(isa_name(k->isa)) + " two-pass",
                   [k](const uint8_t* in, uint16_t* out, int64_t n, const float* s, int64_t g) {
                     cpu::fp8_to_bf16_two_pass(k->fp8_to_f32, k->f32_to_bf16, in, out, n, s, g);
                   }});
    if (k->fp8_to_bf16) fns.push_back({std::string(isa_name(k->isa)) + " fused", k->fp8_to_bf16});
  }
  std::vector<uint8_t> codes(300 + 256);
  std::mt19937 g(7);
  for (size_t i = 0; i < codes.size(); ++i) codes[i] = i < 256 ? uint8_t(i) : uint8_t(g());
  const std::vector<float> scales = {1.0f,  3.7e-3f, 0.5f,  2.1f / 448.0f, 0x1p-117f, 0x1.8p-118f, 0x1.fffffep-118f,
                                     1e-40f, 0.0f,   -2.5f, 1e30f,         7.6e35f,   std::nanf("")};
  auto bf16_same = [](uint16_t a, uint16_t b) {
    const bool na = (a & 0x7fff) > 0x7f80, nb = (b & 0x7fff) > 0x7f80;
    return na || nb ? na && nb : a == b;
  };
  auto want = [&](const uint8_t* c, int64_t i, const float* sc, int64_t group) {
    return qs::f32_to_bf16(qs::fp8e4m3_to_f32(c[i]) * sc[i / group]);
  };
  for (const Fn& f : fns) {
    // All 256 codes under each scale (one group).
    for (float s : scales) {
      std::vector<uint16_t> got(256, 0x1234);
      f.fn(codes.data(), got.data(), 256, &s, 256);
      for (int64_t i = 0; i < 256; ++i)
        ASSERT_TRUE(bf16_same(got[size_t(i)], qs::f32_to_bf16(qs::fp8e4m3_to_f32(codes[size_t(i)]) * s)))
            << f.name << " code " << i << " scale " << s << ": " << got[size_t(i)];
    }
    // Rows of several groups, their scales drawn from the list (mixed routes), every length.
    for (int64_t group : {128, 64, 100})
      for (int64_t n = 1; n <= 300; ++n) {
        std::vector<float> sc(size_t((n + group - 1) / group));
        for (size_t k = 0; k < sc.size(); ++k) sc[k] = scales[(size_t(n) * 7 + k * 5) % scales.size()];
        std::vector<uint16_t> t(size_t(n) + 1, 0x1234);
        f.fn(codes.data() + 256, t.data(), n, sc.data(), group);
        for (int64_t i = 0; i < n; ++i)
          ASSERT_TRUE(bf16_same(t[size_t(i)], want(codes.data() + 256, i, sc.data(), group)))
              << f.name << " group " << group << " n " << n << " i " << i << " scale " << sc[size_t(i / group)];
        ASSERT_EQ(t[size_t(n)], 0x1234) << f.name << " wrote past n = " << n;
      }
  }
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
