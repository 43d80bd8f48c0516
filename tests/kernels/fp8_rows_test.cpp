// weighted_rows_of / dot_rows_of (linear.h), the absorbed decode's products with rows of a stored
// weight matrix: bit for bit what vec_ops' weighted_rows / dot_rows give on the exactly
// dequantized rows (the version of the kernel's own ISA: the versions sum in different orders,
// and a table's kernel is tested under any QIUSUO_ISA), for every dtype, and for FP8 and I8 / I4
// for every kernel this CPU runs (the AVX512_VBMI FP8 kernels widen each weight in registers, the
// AVX-512 integer ones gather each row from its tile in registers): odd widths, row ranges across
// 128-row scale blocks and 16-row tiles, row counts that are not multiples of the kernels'
// groups, NaN / subnormal / negative-zero codes, every integer group size.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/kernel_test_util.h"
#include "qiusuo/core/cpu.h"
#include "qiusuo/kernels/linear.h"
#include "qiusuo/kernels/vec_ops.h"

namespace qs {
namespace {

// FP8 [rows, cols] with every class of code (a few NaN codes when `nan`) and varied block scales.
struct Fp8Matrix {
  std::vector<uint8_t> codes;
  std::vector<float> scales;
  WeightMatrix W;
  Fp8Matrix(int64_t rows, int64_t cols, uint32_t seed, bool nan) {
    std::mt19937 rng(seed);
    codes.resize(size_t(rows * cols));
    for (auto& c : codes) {
      c = uint8_t(rng());
      if (!nan && (c & 0x7f) == 0x7f) c = 0x80;  // negative zero instead
    }
    W.dtype = DType::F8_E4M3;
    W.rows = rows;
    W.cols = cols;
    W.data = codes.data();
    scales.resize(size_t(W.scale_cols() * ((rows + 127) / 128)));
    for (auto& s : scales) s = std::ldexp(1.0f + float(rng() % 1000) / 1000.0f, int(rng() % 12) - 10);
    W.scale_inv = scales.data();
  }
};

std::vector<float> dequant(const WeightMatrix& W, int64_t r0, int64_t n) {
  std::vector<float> out(size_t(n * W.cols));
  W.dequant_rows(r0, r0 + n, out.data());
  return out;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

struct RowsKernel {
  std::string name;
  Isa isa;  // the vec_ops version it matches bit for bit
  void (*weighted)(const WeightMatrix&, int64_t, int64_t, const float*, float*);
  void (*dot)(const WeightMatrix&, int64_t, int64_t, const float*, float*);
};
// k on rows [r0, r0 + n) of W against its own ISA's vec_ops on those rows dequantized (rows_f32):
// the rows weighted by p[0..n) added to `start`, and their dot products with x. `at` names the case.
void expect_rows_match(const RowsKernel& k, const WeightMatrix& W, int64_t r0, int64_t n,
                       const std::vector<float>& rows_f32, const float* x, const float* p,
                       const std::vector<float>& start, const std::string& at) {
  const int64_t cols = W.cols;
  std::vector<float> want_w = start;  // accumulates into what dst holds
  weighted_rows(k.isa, p, 1, n, rows_f32.data(), n, cols, cols, want_w.data(), cols, true);
  std::vector<float> want_d(static_cast<size_t>(n));
  dot_rows(k.isa, x, 1, cols, rows_f32.data(), n, cols, cols, want_d.data(), n);
  std::vector<float> got_w = start, got_d(size_t(n), -1.0f);
  k.weighted(W, r0, n, p, got_w.data());
  k.dot(W, r0, n, x, got_d.data());
  EXPECT_TRUE(same_bits(got_w, want_w)) << "weighted rows, " << k.name << at;
  EXPECT_TRUE(same_bits(got_d, want_d)) << "dot rows, " << k.name << at;
}

// The public entry points, which match the vec_ops version best_isa() picks.
RowsKernel public_rows() { return {"weighted_rows_of / dot_rows_of", best_isa(), weighted_rows_of, dot_rows_of}; }

// The public entry points, and the table's FP8 kernels of every ISA that has them.
std::vector<RowsKernel> fp8_rows_kernels() {
  std::vector<RowsKernel> out{public_rows()};
  for (const cpu::Kernels* k : test::runnable_kernels())
    if (k->fp8_weighted_rows) out.push_back({isa_name(k->isa), k->isa, k->fp8_weighted_rows, k->fp8_dot_rows});
  return out;
}

TEST(Fp8Rows, MatchDequantizedRowsBitForBit) {
  const auto kernels = fp8_rows_kernels();
  if (cpu_features().avx512vbmi && cpu::kernels_for(Isa::Avx512)) {
    ASSERT_GE(kernels.size(), 2u);  // the VBMI kernels are in the AVX-512 table
  }
  for (int64_t cols : {16, 48, 64, 80, 144, 512}) {
    for (bool nan : {false, true}) {
      const int64_t rows = 300;
      const Fp8Matrix m(rows, cols, uint32_t(cols * 7 + nan), nan);
      const std::vector<float> x = test::random_floats(size_t(cols), uint32_t(cols));
      const std::vector<float> p = test::random_floats(size_t(rows), uint32_t(cols + 1));
      const std::vector<float> start = test::random_floats(size_t(cols), uint32_t(cols + 2));
      for (auto [r0, n] : {std::pair<int64_t, int64_t>{0, 1}, {5, 3}, {120, 16}, {127, 5}, {0, 128}, {64, 236}}) {
        const std::vector<float> rows_f32 = dequant(m.W, r0, n);
        const std::string at = " cols " + std::to_string(cols) + " rows [" + std::to_string(r0) + ", " +
                               std::to_string(r0 + n) + ")" + (nan ? " with NaN codes" : "");
        for (const RowsKernel& k : kernels) expect_rows_match(k, m.W, r0, n, rows_f32, x.data(), p.data() + r0, start, at);
      }
    }
  }
}

// I8 / I4 (group-wise, linear.h's tile layout): the public entry points and the table's integer
// kernels of every ISA that has them (AVX-512 gathers each row's columns from the tile in
// registers), against the dequantized rows: every group size, widths of 32..512 (2 or 4 chunks
// of 16 per 64 columns), row ranges inside one tile, across tiles and ending in a partial one.
TEST(IntRows, MatchDequantizedRowsBitForBit) {
  std::vector<RowsKernel> kernels{public_rows()};
  for (const cpu::Kernels* k : test::runnable_kernels())
    if (k->int_weighted_rows) kernels.push_back({isa_name(k->isa), k->isa, k->int_weighted_rows, k->int_dot_rows});
  if (cpu::kernels_for(Isa::Avx512)) {
    ASSERT_GE(kernels.size(), 2u);  // the AVX-512 table has them
  }
  for (DType dt : {DType::I8, DType::I4})
    for (int64_t group : {32, 64, 128})
      for (int64_t cols : {32, 96, 128, 160, 512, 2304}) {
        if (cols % group != 0) continue;
        const int64_t rows = 72;  // the last tile partial (rows past 72 hold u = z, s = 0)
        const test::OwnedWeights w(dt, rows, cols, uint32_t(cols * 3 + group), group);
        const std::vector<float> x = test::random_floats(size_t(cols), uint32_t(cols));
        const std::vector<float> p = test::random_floats(size_t(rows), uint32_t(cols + 1));
        const std::vector<float> start = test::random_floats(size_t(cols), uint32_t(cols + 2));
        for (auto [r0, n] : {std::pair<int64_t, int64_t>{0, 1}, {5, 3}, {15, 2}, {16, 16}, {3, 29}, {0, 72}, {60, 12}}) {
          const std::vector<float> rows_f32 = dequant(w.W, r0, n);
          const std::string at = " " + std::string(dtype_name(dt)) + " group " + std::to_string(group) + " cols " +
                                 std::to_string(cols) + " rows [" + std::to_string(r0) + ", " + std::to_string(r0 + n) + ")";
          for (const RowsKernel& k : kernels) expect_rows_match(k, w.W, r0, n, rows_f32, x.data(), p.data() + r0, start, at);
        }
      }
}

// The other dtypes go through dequantized rows: the same contract.
TEST(Fp8Rows, OtherDtypesMatchDequantizedRows) {
  for (DType dt : {DType::F32, DType::BF16, DType::F16, DType::I8, DType::I4}) {
    const test::OwnedWeights w(dt, 48, 128, 3);
    const std::vector<float> x = test::random_floats(128, 4), p = test::random_floats(48, 5);
    expect_rows_match(public_rows(), w.W, 3, 40, dequant(w.W, 3, 40), x.data(), p.data(), std::vector<float>(128, 0.5f),
                      std::string(" ") + std::string(dtype_name(dt)));
  }
}

TEST(Fp8Rows, RowsOutOfRangeAreAnError) {
  const Fp8Matrix m(64, 32, 1, false);
  std::vector<float> x(32), out(64);
  EXPECT_THROW(dot_rows_of(m.W, 60, 8, x.data(), out.data()), std::exception);
  EXPECT_THROW(weighted_rows_of(m.W, -1, 2, x.data(), out.data()), std::exception);
}

}  // namespace
}  // namespace qs
