// Group-wise integer weights (I8 / I4, kernels/int_weights.h, cpu/linear_int_*.cpp):
//  - GPTQ tensors repacked exactly (dequant_row against the GPTQ formula) and every malformed
//    input a clear error (shapes, dtypes, asymmetric zeros, act-order g_idx, group sizes);
//  - every ISA's activation quantizer and integer kernel give the scalar reference's bits
//    (odd rows, group sizes 32/64/128/whole row, both widths, zero and non-finite groups);
//  - the reference's integer arithmetic against a direct double evaluation of its definition.
// Batch invariance and accuracy through linear(): linear_bf16_test.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "kernels/kernel_test_util.h"
#include "qiusuo/core/cpu.h"
#include "qiusuo/core/error.h"
#include "qiusuo/kernels/int_weights.h"
#include "qiusuo/kernels/linear.h"

namespace qs {
namespace {
using test::GptqData;

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

TEST(IntWeights, GptqRepackIsExact) {
  for (int nbits : {4, 8})
    for (int64_t group : {32, 128, 256})
      for (int64_t rows : {40, 648}) {  // 3 tiles (one thread) and 41 (split among the threads), the last partial
        const int64_t cols = 256, per = 32 / nbits;
        const GptqData g(nbits, rows, cols, group, 7);
        Buffer<float> storage;
        const WeightMatrix W = int_weights_from_gptq("layer", g.tensors(), rows, cols, storage);
        EXPECT_EQ(W.dtype, nbits == 8 ? DType::I8 : DType::I4);
        EXPECT_EQ(W.group, group);
        // Described without the repack (expert parallelism's other ranks, `qiusuo info`): the same
        // matrix, bytes included, and no data.
        for (const WeightMatrix& D : {gptq_layout("layer", g.tensors(), rows, cols),
                                      gptq_described("layer", g.tensors(), rows, cols)}) {
          EXPECT_EQ(D.dtype, W.dtype);
          EXPECT_EQ(D.rows, rows);
          EXPECT_EQ(D.cols, cols);
          EXPECT_EQ(D.group, group);
          EXPECT_EQ(D.bytes(), W.bytes());
          EXPECT_EQ(D.data, nullptr);
          EXPECT_EQ(D.group_scales, nullptr);
        }
        std::vector<float> row(static_cast<size_t>(cols));
        for (int64_t n = 0; n < rows; ++n) {
          W.dequant_row(n, row.data());
          for (int64_t c = 0; c < cols; ++c) {
            const uint32_t word = g.qweight[size_t((c / per) * rows + n)];
            const int u = int((word >> (nbits * (c % per))) & ((1u << nbits) - 1));
            const float s = f16_to_f32(g.scales[size_t((c / group) * rows + n)]);
            ASSERT_EQ(row[size_t(c)], float(u - (1 << (nbits - 1))) * s) << nbits << " bits, n=" << n << " c=" << c;
          }
        }
        // The layout itself (linear.h): tile t's word w holds rows 16t..16t+15 of qweight row w, its
        // group g's scales those rows' scales; the rows past the last are the value 0 with scale 0.
        const int64_t T = WeightMatrix::kIntTile, words = cols / per, ngroups = cols / group;
        const auto* data = static_cast<const uint32_t*>(W.data);
        const uint32_t zero_word = nbits == 4 ? 0x88888888u : 0x80808080u;
        for (int64_t n = 0; n < W.int_tiles() * T; ++n) {
          const int64_t t = n / T, i = n % T;
          for (int64_t w = 0; w < words; ++w)
            ASSERT_EQ(data[(t * words + w) * T + i], n < rows ? g.qweight[size_t(w * rows + n)] : zero_word)
                << nbits << " bits, row " << n << " word " << w;
          for (int64_t gi = 0; gi < ngroups; ++gi)
            ASSERT_EQ(W.group_scales[(t * ngroups + gi) * T + i], n < rows ? g.scales[size_t(gi * rows + n)] : uint16_t(0))
                << nbits << " bits, row " << n << " group " << gi;
        }
      }
}

// The same error from the repack and from gptq_described; from gptq_layout too unless only the
// zeros' or g_idx's values are wrong (it reads no value).
TEST(IntWeights, MalformedGptqIsAClearError) {
  constexpr int64_t rows = 16, cols = 128;
  auto expect_error = [&](const GptqTensors& t, const char* what, int64_t r = 16, int64_t c = 128) {
    const std::string name = "model.layers.0.mlp.up_proj";
    const bool in_values = std::string(what) == "asymmetric" || std::string(what) == "act-order";
    for (int way = 0; way < 3; ++way) {
      Buffer<float> storage;
      try {
        if (way == 0) int_weights_from_gptq(name, t, r, c, storage);
        if (way == 1) gptq_described(name, t, r, c);
        if (way == 2) gptq_layout(name, t, r, c);
        if (way < 2 || !in_values) ADD_FAILURE() << "no error for " << what << " (way " << way << ")";
      } catch (const Error& e) {
        EXPECT_FALSE(way == 2 && in_values) << e.what();
        EXPECT_NE(std::string(e.what()).find("up_proj"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
      }
    }
  };
  {  // asymmetric zeros
    GptqData g(4, rows, cols, 32, 1);
    g.qzeros[3] = 0x77777776u;
    expect_error(g.tensors(), "asymmetric");
    g.qzeros.assign(g.qzeros.size(), 0x55555555u);
    expect_error(g.tensors(), "asymmetric");
  }
  {  // act-order
    GptqData g(4, rows, cols, 32, 1);
    std::vector<int32_t> gi(static_cast<size_t>(cols));
    for (int64_t c = 0; c < cols; ++c) gi[size_t(c)] = int32_t((cols - 1 - c) / 32);
    const TensorView vg{DType::I32, {cols}, gi.data(), gi.size() * 4};
    GptqTensors t = g.tensors();
    t.g_idx = &vg;
    expect_error(t, "act-order");
  }
  {  // wrong shapes / dtypes / group sizes
    const GptqData g(4, rows, cols, 32, 1);
    expect_error(g.tensors(), ".qweight", rows + 1, cols);  // out_features mismatch
    GptqTensors t = g.tensors();
    TensorView bad = *t.scales;
    bad.dtype = DType::F32;
    t.scales = &bad;
    expect_error(t, ".scales");
    const GptqData g16(4, rows, cols, 16, 1);
    expect_error(g16.tensors(), "group size 16");
    const GptqData g2(2, rows, cols, 32, 1);  // 2-bit words
    expect_error(g2.tensors(), "only 4 and 8 bits");
    GptqTensors missing = g.tensors();
    missing.qzeros = nullptr;
    expect_error(missing, ".qzeros");
  }
}

// Rows of x with a zero group, a NaN, an infinity and tiny values, besides random ones.
std::vector<float> awkward_rows(int64_t M, int64_t K, uint32_t seed) {
  auto x = test::random_floats(size_t(M * K), seed, -3.0f, 3.0f);
  if (M >= 4) {
    std::fill_n(x.begin() + K, 32, 0.0f);                         // row 1, group 0: zeros
    x[size_t(2 * K + 5)] = std::numeric_limits<float>::quiet_NaN();  // row 2, group 0
    x[size_t(3 * K + K - 1)] = std::numeric_limits<float>::infinity();  // row 3, last group
    for (int64_t c = 0; c < 32; ++c) x[size_t(K + 32 + c)] = float(c) * 1e-30f;
  }
  return x;
}

TEST(IntWeights, QuantizeXEveryIsaMatchesScalar) {
  const cpu::Kernels* scalar = cpu::kernels_for(Isa::Scalar);
  for (DType wdt : {DType::I8, DType::I4})
    for (int64_t group : {32, 64, 128, 384}) {
      const int64_t K = 384, M = 5, ng = K / group;
      const auto x = awkward_rows(M, K, uint32_t(group));
      std::vector<int8_t> q0(size_t(M * K)), q1(q0.size());
      std::vector<float> s0(size_t(M * ng)), s1(s0.size());
      std::vector<int32_t> z0(s0.size()), z1(s0.size());
      for (int64_t m = 0; m < M; ++m)
        scalar->quantize_x(x.data() + m * K, K, group, wdt, q0.data() + m * K, s0.data() + m * ng, z0.data() + m * ng);
      // Spot checks of the reference: the NaN/inf groups are NaN-scaled zeros, the zero group 0.
      EXPECT_TRUE(std::isnan(s0[size_t(2 * ng)]));
      EXPECT_TRUE(std::isnan(s0[size_t(3 * ng + ng - 1)]));
      if (group == 32) {
        EXPECT_EQ(s0[size_t(ng)], 0.0f);
      }
      for (const cpu::Kernels* k : test::runnable_kernels()) {
        for (int64_t m = 0; m < M; ++m)
          k->quantize_x(x.data() + m * K, K, group, wdt, q1.data() + m * K, s1.data() + m * ng, z1.data() + m * ng);
        SCOPED_TRACE(testing::Message() << isa_name(k->isa) << " " << dtype_name(wdt) << " group " << group);
        EXPECT_EQ(q1, q0);
        EXPECT_EQ(z1, z0);
        for (size_t i = 0; i < s0.size(); ++i) ASSERT_EQ(bits(s1[i]), bits(s0[i])) << i;
      }
    }
}

// The scalar kernel against its definition evaluated independently: isum exactly in 64-bit
// integers from the dequantized values, the float steps as stated.
TEST(IntWeights, ScalarKernelFollowsItsDefinition) {
  const cpu::Kernels* scalar = cpu::kernels_for(Isa::Scalar);
  for (DType dt : {DType::I8, DType::I4}) {
    const int64_t rows = 24, cols = 256, M = 3;
    const test::OwnedWeights w(dt, rows, cols, 3);
    const int64_t G = w.W.group, ng = cols / G;
    const auto x = test::random_floats(size_t(M * cols), 4);
    std::vector<int8_t> q(size_t(M * cols));
    std::vector<float> s(size_t(M * ng));
    std::vector<int32_t> z(s.size());
    for (int64_t m = 0; m < M; ++m)
      scalar->quantize_x(x.data() + m * cols, cols, G, dt, q.data() + m * cols, s.data() + m * ng, z.data() + m * ng);
    std::vector<float> y(size_t(M * rows));
    scalar->linear_int({q.data(), cols, s.data(), z.data(), ng}, M, w.W, 0, rows, y.data(), rows);
    std::vector<float> wrow(static_cast<size_t>(cols));
    for (int64_t n = 0; n < rows; ++n) {
      w.W.dequant_row(n, wrow.data());
      for (int64_t m = 0; m < M; ++m) {
        float acc = 0;
        for (int64_t g = 0; g < ng; ++g) {
          // Recover q in natural column order from x directly (the definition of quantize_x).
          float amax = 0;
          for (int64_t c = g * G; c < (g + 1) * G; ++c) amax = std::max(amax, std::fabs(x[size_t(m * cols + c)]));
          const float inv = 127.0f / amax;
          int64_t isum = 0;
          float sw = 0;
          for (int64_t c = g * G; c < (g + 1) * G; ++c) {
            const int64_t qc = int64_t(std::nearbyint(x[size_t(m * cols + c)] * inv));
            // w = (u - z) * sw: the integer weight times the group scale, exactly.
            const int64_t t = n / 16, i = n % 16;
            sw = f16_to_f32(w.W.group_scales[(t * ng + g) * 16 + i]);
            isum += int64_t(std::lround(wrow[size_t(c)] / sw)) * qc;
          }
          const float c = (amax / 127.0f) * sw;
          acc = std::fma(float(isum), c, acc);
        }
        ASSERT_EQ(bits(y[size_t(m * rows + n)]), bits(acc)) << dtype_name(dt) << " m=" << m << " n=" << n;
      }
    }
  }
}

using LinearIntFn = void (*)(const cpu::QuantizedX&, int64_t, const WeightMatrix&, int64_t, int64_t, float*, int64_t);

// Every table's integer kernel, and the AVX2 variants by name (the AVX2 table takes the AVX-VNNI
// one where the CPU has it, so both are tested where it does).
std::vector<std::pair<std::string, LinearIntFn>> int_kernels() {
  std::vector<std::pair<std::string, LinearIntFn>> out;
  for (const cpu::Kernels* k : test::runnable_kernels()) out.emplace_back(isa_name(k->isa), k->linear_int);
#ifdef QIUSUO_SIMD
  const CpuFeatures& f = cpu_features();
  if (cpu::kernels_for(Isa::Avx2)) out.emplace_back("linear_int_avx2", cpu::linear_int_avx2);
  if (cpu::kernels_for(Isa::Avx2) && f.avxvnni) out.emplace_back("linear_int_avxvnni", cpu::linear_int_avxvnni);
#endif
  return out;
}

TEST(IntWeights, EveryIsaMatchesScalarBitwise) {
  struct Case { DType dt; int64_t rows, cols, group; };
  const Case cases[] = {{DType::I4, 8, 32, 32},    {DType::I4, 40, 256, 64},  {DType::I4, 136, 384, 128},
                        {DType::I4, 24, 512, 512}, {DType::I8, 8, 64, 32},    {DType::I8, 40, 256, 128},
                        {DType::I8, 136, 384, 64}, {DType::I8, 16, 1024, 1024}};
  const cpu::Kernels* scalar = cpu::kernels_for(Isa::Scalar);
  for (const Case& c : cases) {
    const test::OwnedWeights w(c.dt, c.rows, c.cols, uint32_t(c.rows + c.cols), c.group);
    const int64_t ng = c.cols / c.group;
    for (int64_t M : {1, 2, 3, 4, 5, 7, 9}) {
      SCOPED_TRACE(testing::Message() << dtype_name(c.dt) << " rows=" << c.rows << " cols=" << c.cols
                                      << " group=" << c.group << " M=" << M);
      const auto x = awkward_rows(M, c.cols, uint32_t(M));
      std::vector<int8_t> q(size_t(M * c.cols));
      std::vector<float> s(size_t(M * ng));
      std::vector<int32_t> z(s.size());
      for (int64_t m = 0; m < M; ++m)
        scalar->quantize_x(x.data() + m * c.cols, c.cols, c.group, c.dt, q.data() + m * c.cols, s.data() + m * ng,
                           z.data() + m * ng);
      const cpu::QuantizedX xq{q.data(), c.cols, s.data(), z.data(), ng};
      const int64_t ldy = c.rows + 3;
      auto run = [&](LinearIntFn fn, int64_t n0, int64_t n1) {
        std::vector<float> y(size_t(M * ldy), -7.0f);
        fn(xq, M, w.W, n0, n1, y.data(), ldy);
        return y;
      };
      const auto ref = run(scalar->linear_int, 0, c.rows);
      for (const auto& [name, fn] : int_kernels()) {
        const auto y = run(fn, 0, c.rows);
        for (size_t i = 0; i < y.size(); ++i) ASSERT_EQ(bits(y[i]), bits(ref[i])) << name << " element " << i;
        if (c.rows > 16) {  // a sub-range of whole tiles (one thread's share)
          const auto ys = run(fn, 16, c.rows);
          for (int64_t m = 0; m < M; ++m)
            for (int64_t r = 0; r < ldy; ++r) {
              const float v = ys[size_t(m * ldy + r)];
              if (r >= 16 && r < c.rows) ASSERT_EQ(bits(v), bits(ref[size_t(m * ldy + r)])) << name;
              else ASSERT_EQ(v, -7.0f) << name << " wrote row " << r;
            }
        }
      }
    }
  }
}

// A whole tile dequantized at once (absorbed attention reads an integer kv_b this way) gives the
// bits of the row-by-row dequantization, on every ISA, into a strided output, writing nothing
// past the matrix's last row (partial last tiles included).
TEST(IntWeights, TileDequantizationMatchesRows) {
  struct Case { DType dt; int64_t rows, cols, group; };
  const Case cases[] = {{DType::I4, 40, 256, 64}, {DType::I4, 16, 512, 128}, {DType::I4, 8, 64, 32}, {DType::I4, 24, 96, 32},
                        {DType::I8, 40, 256, 128}, {DType::I8, 24, 96, 32}, {DType::I8, 28, 64, 64}};
  for (const Case& c : cases) {
    SCOPED_TRACE(testing::Message() << dtype_name(c.dt) << " rows=" << c.rows << " cols=" << c.cols << " group=" << c.group);
    const test::OwnedWeights w(c.dt, c.rows, c.cols, uint32_t(c.rows * 3 + c.cols), c.group);
    std::vector<float> ref(size_t(c.rows * c.cols));
    for (int64_t r = 0; r < c.rows; ++r) w.W.dequant_row(r, ref.data() + r * c.cols);
    const int64_t ld = c.cols + 5;
    for (const cpu::Kernels* k : test::runnable_kernels()) {
      for (int64_t t = 0; t * WeightMatrix::kIntTile < c.rows; ++t) {
        std::vector<float> out(size_t(WeightMatrix::kIntTile * ld), -7.0f);
        k->dequant_int_tile(w.W, t, out.data(), ld);
        for (int64_t i = 0; i < WeightMatrix::kIntTile; ++i)
          for (int64_t col = 0; col < ld; ++col) {
            const int64_t r = t * WeightMatrix::kIntTile + i;
            const float v = out[size_t(i * ld + col)];
            if (r < c.rows && col < c.cols)
              ASSERT_EQ(bits(v), bits(ref[size_t(r * c.cols + col)])) << isa_name(k->isa) << " row " << r << " col " << col;
            else
              ASSERT_EQ(v, -7.0f) << isa_name(k->isa) << " wrote row " << r << " col " << col;
          }
      }
      // Through WeightMatrix::dequant_rows (tiles where whole, rows elsewhere): rows 3..40.
      if (c.rows > 20) {
        std::vector<float> got(size_t((c.rows - 3) * c.cols));
        w.W.dequant_rows(3, c.rows, got.data());
        for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(bits(got[i]), bits(ref[size_t(3 * c.cols) + i])) << i;
      }
    }
  }
}

}  // namespace
}  // namespace qs
