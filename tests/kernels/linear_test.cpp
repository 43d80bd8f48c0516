// gemv / linear / WeightMatrix: every ISA's streaming kernel, linear() and the oneDNN peer
// against a double-precision reference, for all weight formats, odd shapes (partial vectors,
// partial row tiles, partial FP8 edge blocks), M from 1 to 33, padded strides and both Compute
// modes. The BF16 kernels and batch invariance: linear_bf16_test.cpp.
#include "qiusuo/kernels/linear.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <limits>

#include "kernels/kernel_test_util.h"
#include "qiusuo/core/error.h"
#include "qiusuo/core/parallel.h"

namespace qs {
namespace {
using test::LinearRef;
using test::OwnedWeights;

constexpr DType kDtypes[] = {DType::F32, DType::BF16, DType::F16, DType::F8_E4M3};
constexpr float kSentinel = -12345.0f;

struct Shape {
  int64_t rows, cols;
};
// Odd columns (tails of 16 and 8), partial FP8 blocks in both dimensions, rows not a multiple
// of any row tile (3, 4, 12).
constexpr Shape kShapes[] = {{1, 1}, {7, 13}, {37, 200}, {130, 257}, {29, 1000}, {64, 2048}};
constexpr int64_t kMs[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 16, 33};

// |y - ref| <= tol * Σ|products| (+ a tiny absolute floor for all-zero rows).
void expect_close(const LinearRef& ref, const float* y, int64_t ldy, int64_t M, int64_t rows,
                  double tol, const char* what) {
  int bad = 0;
  for (int64_t m = 0; m < M; ++m)
    for (int64_t r = 0; r < rows; ++r) {
      const size_t i = size_t(m * rows + r);
      const double err = std::fabs(double(y[m * ldy + r]) - ref.ref[i]);
      if (!(err <= tol * ref.mag[i] + 1e-30) && bad++ < 5)
        ADD_FAILURE() << what << ": y[" << m << "][" << r << "] = " << y[m * ldy + r] << ", want "
                      << ref.ref[i] << " (err " << err << ", sum|p| " << ref.mag[i] << ")";
    }
  EXPECT_EQ(bad, 0) << what;
}

void expect_padding_untouched(const std::vector<float>& y, int64_t ldy, int64_t M, int64_t rows) {
  for (int64_t m = 0; m < M; ++m)
    for (int64_t r = rows; r < ldy; ++r) ASSERT_EQ(y[size_t(m * ldy + r)], kSentinel) << m << "," << r;
}

TEST(Gemv, EveryIsaMatchesDoubleReference) {
  for (const cpu::Kernels* k : test::runnable_kernels()) {
    for (DType dt : kDtypes) {
      for (const Shape& s : kShapes) {
        const OwnedWeights w(dt, s.rows, s.cols, uint32_t(s.rows * 7 + s.cols));
        for (int64_t M : kMs) {
          SCOPED_TRACE(testing::Message() << isa_name(k->isa) << " " << dtype_name(dt) << " rows="
                                          << s.rows << " cols=" << s.cols << " M=" << M);
          const int64_t ldx = s.cols + 3, ldy = s.rows + 5;
          const auto x = test::random_floats(size_t(M * ldx), uint32_t(M));
          const LinearRef ref(w, x.data(), ldx, M);
          std::vector<float> y(size_t(M * ldy), kSentinel);
          k->gemv_rows(x.data(), ldx, M, w.W, 0, s.rows, y.data(), ldy);
          expect_close(ref, y.data(), ldy, M, s.rows, 1e-5, "full range");
          expect_padding_untouched(y, ldy, M, s.rows);
          // A sub-range of rows (one thread's share) writes exactly those rows.
          if (s.rows >= 7) {
            const int64_t r0 = s.rows / 3, r1 = s.rows - 2;
            std::vector<float> y2(size_t(M * ldy), kSentinel);
            k->gemv_rows(x.data(), ldx, M, w.W, r0, r1, y2.data(), ldy);
            for (int64_t m = 0; m < M; ++m)
              for (int64_t r = 0; r < ldy; ++r) {
                const float v = y2[size_t(m * ldy + r)];
                if (r >= r0 && r < r1) ASSERT_EQ(v, y[size_t(m * ldy + r)]) << m << "," << r;
                else ASSERT_EQ(v, kSentinel) << m << "," << r;
              }
          }
        }
      }
    }
  }
}

TEST(Gemv, PublicEntryPointUsesThreadsAndMatches) {
  for (DType dt : kDtypes) {
    const OwnedWeights w(dt, 1000, 300, 5);
    for (int64_t M : {int64_t(1), int64_t(8), int64_t(11)}) {
      SCOPED_TRACE(testing::Message() << dtype_name(dt) << " M=" << M);
      const int64_t ldx = 301, ldy = 1003;
      const auto x = test::random_floats(size_t(M * ldx), 9);
      const LinearRef ref(w, x.data(), ldx, M);
      std::vector<float> y(size_t(M * ldy), kSentinel);
      gemv(x.data(), ldx, M, w.W, y.data(), ldy);
      expect_close(ref, y.data(), ldy, M, 1000, 1e-5, "gemv");
      expect_padding_untouched(y, ldy, M, 1000);
      // Deterministic: same result again (fixed split for a fixed thread count).
      std::vector<float> y2(size_t(M * ldy), kSentinel);
      gemv(x.data(), ldx, M, w.W, y2.data(), ldy);
      EXPECT_EQ(y, y2);
    }
  }
}

// The in-register FP8 widening of every non-NaN code, with and without a block scale:
// W = one row of all 254 codes, x = unit vectors, so y is exactly the decoded weight.
TEST(Gemv, Fp8DecodesEveryCodeExactly) {
  std::vector<uint8_t> codes;
  for (int b = 0; b < 256; ++b)
    if ((b & 0x7f) != 0x7f) codes.push_back(uint8_t(b));
  const int64_t n = int64_t(codes.size());
  for (float scale : {1.0f, 0.0078125f, 3.0e-3f}) {
    std::vector<float> scales(size_t((n + 127) / 128), scale);
    WeightMatrix W{DType::F8_E4M3, 1, n, codes.data(), scales.data()};
    std::vector<float> x(size_t(n * n), 0.0f);
    for (int64_t i = 0; i < n; ++i) x[size_t(i * n + i)] = 1.0f;
    for (const cpu::Kernels* k : test::runnable_kernels()) {
      std::vector<float> y(size_t(n), kSentinel);
      k->gemv_rows(x.data(), n, n, W, 0, 1, y.data(), 1);  // M = n rows of x, ldy = 1
      for (int64_t i = 0; i < n; ++i)
        ASSERT_EQ(y[size_t(i)], fp8e4m3_to_f32(codes[size_t(i)]) * scale)
            << isa_name(k->isa) << " code 0x" << std::hex << int(codes[size_t(i)]) << " scale " << scale;
    }
  }
}

TEST(WeightMatrix, BytesAndDequantRow) {
  for (DType dt : kDtypes) {
    const OwnedWeights w(dt, 130, 257, 3);
    size_t want = size_t(130 * 257) * dtype_size(dt);
    if (dt == DType::F8_E4M3) want += 2 * 3 * sizeof(float);
    EXPECT_EQ(w.W.bytes(), want) << dtype_name(dt);
    std::vector<float> row(257);
    for (int64_t r : {0, 1, 127, 128, 129}) {
      w.W.dequant_row(r, row.data());
      for (int64_t c = 0; c < 257; ++c)
        ASSERT_EQ(row[size_t(c)], float(w.at(r, c))) << dtype_name(dt) << " r=" << r << " c=" << c;
    }
  }
  // FP8 NaN codes dequantize to NaN.
  uint8_t nan_codes[2] = {0x7f, 0xff};
  float s = 0.5f;
  WeightMatrix W{DType::F8_E4M3, 1, 2, nan_codes, &s};
  float out[2];
  W.dequant_row(0, out);
  EXPECT_TRUE(std::isnan(out[0]) && std::isnan(out[1]));
}

// The former oneDNN GEMM path (cpu::linear_gemm), kept as the benchmarks' peer: still correct.
TEST(Linear, OnednnPeerMatchesReference) {
  struct Case { int64_t rows, cols, M; };
  // 4100 x 1024 spans several dequantization panels (F32 panel: 2048 rows at 1024 columns).
  const Case cases[] = {{37, 200, 9}, {130, 257, 17}, {4100, 1024, 12}, {70, 130, 100}};
  for (DType dt : kDtypes) {
    for (const Case& c : cases) {
      const OwnedWeights w(dt, c.rows, c.cols, uint32_t(c.rows + c.M));
      const int64_t ldx = c.cols + 1, ldy = c.rows + 2;
      const auto x = test::random_floats(size_t(c.M * ldx), 77);
      const LinearRef ref(w, x.data(), ldx, c.M);
      for (Compute mode : {Compute::F32, Compute::BF16}) {
        SCOPED_TRACE(testing::Message() << dtype_name(dt) << " rows=" << c.rows << " cols=" << c.cols << " M="
                                        << c.M << (mode == Compute::F32 ? " F32" : " BF16"));
        std::vector<float> y(size_t(c.M * ldy), kSentinel);
        cpu::linear_gemm(x.data(), ldx, c.M, w.W, y.data(), ldy, mode);
        expect_padding_untouched(y, ldy, c.M, c.rows);
        const double tol = mode == Compute::F32 ? 1e-5 : dt == DType::BF16 ? std::ldexp(1.0, -8) : std::ldexp(1.0, -7);
        expect_close(ref, y.data(), ldy, c.M, c.rows, tol, "linear_gemm");
      }
    }
  }
}

TEST(Linear, BucketRows) {
  int64_t prev = 0;
  for (int64_t M = 1; M <= 5000; ++M) {
    const int64_t b = cpu::linear_bucket_rows(M);
    EXPECT_GE(b, M);
    EXPECT_GE(b, prev);
    EXPECT_LE(b, M <= 64 ? M + 15 : M + std::max<int64_t>(M / 3, 255)) << M;
    prev = b;
  }
}

// linear() in both modes against the double reference (bounds stated in linear_bf16_test.cpp's
// header), unpadded strides, M past the F32 path's 64-row blocks, and K = 0.
TEST(Linear, MatchesReferenceInBothModes) {
  for (DType dt : kDtypes) {
    for (int64_t M : {int64_t(1), int64_t(5), int64_t(64), int64_t(300)}) {
      const OwnedWeights w(dt, 70, 50, 11);
      const auto x = test::random_floats(size_t(M * 50), 12);
      const LinearRef ref(w, x.data(), 50, M);
      for (Compute mode : {Compute::F32, Compute::BF16}) {
        SCOPED_TRACE(testing::Message() << dtype_name(dt) << " M=" << M << (mode == Compute::F32 ? " F32" : " BF16"));
        std::vector<float> y(size_t(M * 70), kSentinel);
        linear(x.data(), M, w.W, y.data(), mode);
        expect_close(ref, y.data(), 70, M, 70, mode == Compute::F32 ? 1e-5 : test::bf16_compute_tol(dt), "linear");
      }
    }
  }
  const OwnedWeights empty(DType::BF16, 5, 0, 1);
  std::vector<float> x(16), y(16 * 5, kSentinel);
  for (Compute mode : {Compute::F32, Compute::BF16}) {
    linear(x.data(), 0, 16, empty.W, y.data(), 5, mode);
    for (float v : y) EXPECT_EQ(v, 0.0f);
  }
}

TEST(Linear, RejectsBadArguments) {
  const OwnedWeights w(DType::F32, 4, 8, 1);
  std::vector<float> x(64), y(64);
  EXPECT_THROW(linear(x.data(), 7, 1, w.W, y.data(), 4), Error);   // ldx < cols
  EXPECT_THROW(linear(x.data(), 8, 16, w.W, y.data(), 3), Error);  // ldy < rows
  WeightMatrix bad = w.W;
  bad.dtype = DType::I32;
  EXPECT_THROW(gemv(x.data(), 8, 1, bad, y.data(), 4), Error);
  WeightMatrix noscale{DType::F8_E4M3, 4, 8, w.W.data, nullptr};
  EXPECT_THROW(gemv(x.data(), 8, 1, noscale, y.data(), 4), Error);
}

}  // namespace
}  // namespace qs

namespace qs {
namespace {

// linear_batch: decode-sized calls of every weight type, ragged shapes (odd rows and columns,
// 1..4 rows of x), handed out together, give bitwise what linear() gives call by call; calls it
// cannot take together (F32 compute, many rows) go one by one with the same result.
TEST(Linear, BatchEqualsOneCallAtATimeBitwise) {
  struct Case {
    DType dt;
    int64_t rows, cols, M;
  };
  const std::vector<Case> cases = {{DType::BF16, 1408, 2048, 1}, {DType::F8_E4M3, 300, 384, 2},
                                   {DType::I4, 272, 256, 1},     {DType::I8, 160, 192, 4},
                                   {DType::BF16, 77, 130, 3},    {DType::F16, 50, 96, 1},
                                   {DType::BF16, 2048, 1408, 1}};
  std::vector<std::unique_ptr<test::OwnedWeights>> ws;
  std::vector<std::vector<float>> xs, want, got;
  for (size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    ws.push_back(std::make_unique<test::OwnedWeights>(c.dt, c.rows, c.cols, 11 + uint32_t(i)));
    xs.push_back(test::random_floats(size_t((c.M + 12) * (c.cols + 3)), 90 + uint32_t(i)));
  }
  for (Compute compute : {Compute::BF16, Compute::F32}) {
    for (int64_t extra_rows : {0, 12}) {  // 12: M beyond the streaming size, one call at a time
      std::vector<LinearCall> calls;
      want.assign(cases.size(), {});
      got.assign(cases.size(), {});
      for (size_t i = 0; i < cases.size(); ++i) {
        const Case& c = cases[i];
        const int64_t M = c.M + extra_rows;
        want[i].assign(size_t(M * (c.rows + 1)), -1.0f);
        got[i].assign(size_t(M * (c.rows + 1)), -2.0f);
        linear(xs[i].data(), c.cols + 3, M, ws[i]->W, want[i].data(), c.rows + 1, compute);
        calls.push_back({xs[i].data(), c.cols + 3, M, &ws[i]->W, got[i].data(), c.rows + 1});
      }
      linear_batch(calls, compute);
      for (size_t i = 0; i < cases.size(); ++i)
        for (size_t j = 0; j < want[i].size(); ++j) {
          if (j % size_t(cases[i].rows + 1) == size_t(cases[i].rows)) continue;  // padding column: untouched
          uint32_t g, w;
          std::memcpy(&g, &got[i][j], 4);
          std::memcpy(&w, &want[i][j], 4);
          ASSERT_EQ(g, w)
              << "call " << i << " (" << dtype_name(cases[i].dt) << ") element " << j;
        }
    }
  }
}

// Calls that read one x in different forms (int8 rows per weight dtype and group, BF16 rows) or
// the same x with other rows or strides: linear_batch converts x once per form and every call
// still gets what linear() gives it (a wrong sharing would hand I8 weights the I4 zero sums, or
// g32 weights g64 scales).
TEST(Linear, BatchSharingOneXEqualsOneCallAtATimeBitwise) {
  struct Case {
    DType dt;
    int64_t rows, group, ldx, M;
  };
  constexpr int64_t K = 256;
  const std::vector<Case> cases = {{DType::I4, 160, 64, K, 1},  {DType::I4, 96, 64, K, 1},  {DType::I8, 80, 64, K, 1},
                                   {DType::I4, 48, 32, K, 1},   {DType::I4, 64, 64, K + 8, 2}, {DType::BF16, 40, 0, K, 1},
                                   {DType::F8_E4M3, 130, 0, K, 1}, {DType::BF16, 33, 0, K, 2},  {DType::I4, 112, 64, K, 2},
                                   {DType::I8, 32, 128, K, 1}};
  const std::vector<float> x = test::random_floats(size_t(2 * (K + 8)), 7);
  std::vector<std::unique_ptr<test::OwnedWeights>> ws;
  std::vector<LinearCall> calls;
  std::vector<std::vector<float>> want(cases.size()), got(cases.size());
  for (size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    ws.push_back(std::make_unique<test::OwnedWeights>(c.dt, c.rows, K, 40 + uint32_t(i), c.group));
    want[i].assign(size_t(c.M * c.rows), -1.0f);
    got[i].assign(size_t(c.M * c.rows), -2.0f);
    linear(x.data(), c.ldx, c.M, ws[i]->W, want[i].data(), c.rows, Compute::BF16);
    calls.push_back({x.data(), c.ldx, c.M, &ws[i]->W, got[i].data(), c.rows});
  }
  linear_batch(calls, Compute::BF16);
  for (size_t i = 0; i < cases.size(); ++i)
    for (size_t j = 0; j < want[i].size(); ++j) {
      uint32_t g, w;
      std::memcpy(&g, &got[i][j], 4);
      std::memcpy(&w, &want[i][j], 4);
      ASSERT_EQ(g, w) << "call " << i << " (" << dtype_name(cases[i].dt) << ") element " << j;
    }
}

}  // namespace
}  // namespace qs
