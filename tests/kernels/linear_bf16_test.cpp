// Batch invariance of linear() and the BF16-compute kernels (linear.h, cpu/linear_bf16_*.cpp):
//  - every ISA's BF16 kernel gives the scalar reference's bits (random data, odd shapes,
//    values around the F32 denormal range where vdpbf16ps flushes), so on a CPU with
//    AVX512_BF16 this also checks the reference's model of vdpbf16ps;
//  - linear() output row m is a function of x row m and W alone: M in 1..70, 100, 513, rows at
//    different places in the batch, padded strides, 1 and 2 threads, both Compute modes, every
//    weight dtype, K not a multiple of 32/128, N not a multiple of any tile;
//  - accuracy against a double-precision reference: |y - ref| <= tol * Σ|x w| with tol =
//    test::bf16_compute_tol (2^-9 + 2^-14 for BF16/FP8 weights, 2^-8 + 2^-14 for F32/F16) in
//    BF16 compute and 1e-5 in F32 compute.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "kernels/kernel_test_util.h"
#include "qiusuo/core/cpu.h"
#include "qiusuo/core/parallel.h"
#include "qiusuo/kernels/linear.h"

namespace qs {
namespace {
using test::LinearRef;
using test::OwnedWeights;

constexpr DType kDtypes[] = {DType::F32, DType::BF16, DType::F16, DType::F8_E4M3};
constexpr float kSentinel = -12345.0f;

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

// x rows rounded to BF16, padded with zeros to a multiple of cpu::kBf16Pad (as linear() packs).
std::vector<uint16_t> pack_bf16(const float* x, int64_t ldx, int64_t M, int64_t K, int64_t* ldxb) {
  *ldxb = std::max<int64_t>(cpu::kBf16Pad, (K + cpu::kBf16Pad - 1) / cpu::kBf16Pad * cpu::kBf16Pad);
  std::vector<uint16_t> xb(size_t(M * *ldxb), 0);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t c = 0; c < K; ++c) xb[size_t(m * *ldxb + c)] = f32_to_bf16(x[m * ldx + c]);
  return xb;
}

// Values with random signs and exponents in [lo, hi] (powers of two times [1, 2)).
std::vector<float> wide_floats(size_t n, uint32_t seed, int lo, int hi) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(1.0f, 2.0f);
  std::vector<float> v(n);
  for (float& f : v) f = std::ldexp(u(rng), lo + int(rng() % uint32_t(hi - lo + 1))) * (rng() & 1 ? -1.0f : 1.0f);
  return v;
}

void expect_same_bits(const std::vector<float>& a, const std::vector<float>& b, const char* what) {
  ASSERT_EQ(a.size(), b.size());
  int bad = 0;
  for (size_t i = 0; i < a.size(); ++i)
    if (bits(a[i]) != bits(b[i]) && bad++ < 5)
      ADD_FAILURE() << what << ": element " << i << ": " << a[i] << " (0x" << std::hex << bits(a[i]) << ") vs "
                    << b[i] << " (0x" << bits(b[i]) << std::dec << ")";
  EXPECT_EQ(bad, 0) << what;
}

// Every linear_bf16 this CPU runs: each ISA's table entry, and on AVX-512 with BF16 both the
// plain kernel and the AVX512_VBMI one (FP8 widened by byte lookups), whichever the table picked.
struct Bf16Kernel {
  std::string name;
  cpu::LinearBf16Fn fn;
};
std::vector<Bf16Kernel> bf16_kernels() {
  std::vector<Bf16Kernel> out;
  for (const cpu::Kernels* k : test::runnable_kernels()) out.push_back({isa_name(k->isa), k->linear_bf16});
#ifdef QIUSUO_SIMD
  const CpuFeatures& f = cpu_features();
  if (cpu::kernels_for(Isa::Avx512) && f.avx512bf16) {
    out.push_back({"avx512 (plain FP8 widening)", cpu::linear_bf16_avx512});
    if (f.avx512vbmi) out.push_back({"avx512 (VBMI FP8 widening)", cpu::linear_bf16_avx512vbmi});
  }
#endif
  return out;
}

// Every runnable ISA's linear_bf16 on (W, x) against the scalar reference, bit for bit, over
// all rows and over a sub-range of rows (one thread's share: only those rows written).
void check_isas_against_scalar(const WeightMatrix& W, const std::vector<float>& x, int64_t M) {
  const int64_t K = W.cols, N = W.rows, ldy = N + 3;
  int64_t ldxb;
  const auto xb = pack_bf16(x.data(), K, M, K, &ldxb);
  const auto run = [&](cpu::LinearBf16Fn fn, int64_t n0, int64_t n1) {
    std::vector<float> y(size_t(M * ldy), kSentinel);
    fn(xb.data(), ldxb, M, W, n0, n1, y.data(), ldy);
    return y;
  };
  const cpu::Kernels* scalar = cpu::kernels_for(Isa::Scalar);
  const auto ref = run(scalar->linear_bf16, 0, N);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t r = N; r < ldy; ++r) ASSERT_EQ(ref[size_t(m * ldy + r)], kSentinel);
  for (const Bf16Kernel& k : bf16_kernels()) {
    if (k.fn == scalar->linear_bf16) continue;
    SCOPED_TRACE(k.name);
    expect_same_bits(run(k.fn, 0, N), ref, "all rows");
    if (N >= 7) {
      const int64_t r0 = N / 3, r1 = N - 2;
      const auto y = run(k.fn, r0, r1);
      for (int64_t m = 0; m < M; ++m)
        for (int64_t r = 0; r < ldy; ++r) {
          const float v = y[size_t(m * ldy + r)];
          if (r >= r0 && r < r1) ASSERT_EQ(bits(v), bits(ref[size_t(m * ldy + r)])) << m << "," << r;
          else ASSERT_EQ(v, kSentinel) << m << "," << r;
        }
    }
  }
}

TEST(LinearBf16, EveryIsaMatchesScalarBitwise) {
  struct Shape { int64_t rows, cols; };
  // Tails of 32/64 columns, partial FP8 blocks in both dimensions, rows not a multiple of any
  // tile (1, 2, 3, 4, 6, 8), one row longer than a 4 KB page.
  const Shape shapes[] = {{1, 1}, {7, 13}, {37, 200}, {130, 257}, {29, 1000}, {11, 2117}};
  for (DType dt : kDtypes)
    for (const Shape& s : shapes) {
      const OwnedWeights w(dt, s.rows, s.cols, uint32_t(s.rows * 31 + s.cols));
      for (int64_t M : {1, 2, 3, 4, 5, 7, 9}) {
        SCOPED_TRACE(testing::Message() << dtype_name(dt) << " rows=" << s.rows << " cols=" << s.cols << " M=" << M);
        check_isas_against_scalar(w.W, test::random_floats(size_t(M * s.cols), uint32_t(M + s.cols)), M);
      }
    }
}

// Products and sums around 2^-126, where vdpbf16ps flushes (inputs, each addition) and an FMA
// without FTZ/DAZ would not; x values down to BF16 subnormals.
TEST(LinearBf16, TinyValuesFlushAsVdpbf16ps) {
  for (DType dt : {DType::BF16, DType::F32, DType::F8_E4M3}) {
    const int64_t N = 45, K = 300;
    OwnedWeights w(dt, N, K, 5);
    if (dt != DType::F8_E4M3) {
      const auto v = wide_floats(size_t(N * K), 6, -75, -50);
      for (size_t i = 0; i < v.size(); ++i) {
        if (dt == DType::BF16) reinterpret_cast<uint16_t*>(w.data.data())[i] = f32_to_bf16(v[i]);
        else reinterpret_cast<float*>(w.data.data())[i] = v[i];
      }
    } else {
      for (float& s : w.scales) s = std::ldexp(1.0f, -120);  // partial sums near 2^-126 after scaling
    }
    for (int64_t M : {1, 2, 5}) {
      SCOPED_TRACE(testing::Message() << dtype_name(dt) << " M=" << M);
      const int lo = dt == DType::F8_E4M3 ? -20 : -85, hi = dt == DType::F8_E4M3 ? 0 : -60;
      auto x = wide_floats(size_t(M * K), uint32_t(7 + M), lo, hi);
      x[0] = std::ldexp(1.0f, -130);  // a BF16 subnormal (DAZ)
      check_isas_against_scalar(w.W, x, M);
    }
  }
}

// Every non-NaN FP8 code through the BF16 path, with and without a block scale: x = unit rows,
// so y is the decoded weight times the scale, rounded once (the reference's value).
TEST(LinearBf16, Fp8DecodesEveryCodeExactly) {
  std::vector<uint8_t> codes;
  for (int b = 0; b < 256; ++b)
    if ((b & 0x7f) != 0x7f) codes.push_back(uint8_t(b));
  const int64_t n = int64_t(codes.size());
  for (float scale : {1.0f, 0.0078125f, 3.0e-3f}) {
    std::vector<float> scales(size_t((n + 127) / 128), scale);
    const WeightMatrix W{DType::F8_E4M3, 1, n, codes.data(), scales.data()};
    std::vector<float> x(size_t(n * n), 0.0f);
    for (int64_t i = 0; i < n; ++i) x[size_t(i * n + i)] = 1.0f;
    int64_t ldxb;
    const auto xb = pack_bf16(x.data(), n, n, n, &ldxb);
    for (const Bf16Kernel& k : bf16_kernels()) {
      for (int64_t M : {int64_t(1), n}) {  // M = 1: widened in registers; M = n: panels
        std::vector<float> y(size_t(n), kSentinel);
        for (int64_t i0 = 0; i0 < n; i0 += M)
          k.fn(xb.data() + i0 * ldxb, ldxb, M, W, 0, 1, y.data() + i0, 1);
        for (int64_t i = 0; i < n; ++i)
          ASSERT_EQ(y[size_t(i)], fp8e4m3_to_f32(codes[size_t(i)]) * scale)
              << k.name << " M=" << M << " code 0x" << std::hex << int(codes[size_t(i)]) << " scale " << scale;
      }
    }
  }
}

// linear(): every output row equals the row computed alone, bit for bit, whatever M, the row's
// place, the strides and the thread count; and it is within the stated bound of the double
// reference.
class BatchInvariance {
 public:
  BatchInvariance(DType dt, int64_t N, int64_t K, Compute mode)
      : w_(dt, N, K, uint32_t(N * 3 + K)), mode_(mode), pool_(test::random_floats(size_t(kPool * K), uint32_t(K))) {
    // Each pool row alone (M = 1), and checked against the double reference.
    alone_.resize(size_t(kPool * N));
    for (int64_t p = 0; p < kPool; ++p) linear(pool_.data() + p * K, K, 1, w_.W, alone_.data() + p * N, N, mode_);
    const LinearRef ref(w_, pool_.data(), K, kPool);
    const double tol = mode == Compute::F32 ? 1e-5 : test::bf16_compute_tol(dt);
    for (size_t i = 0; i < alone_.size(); ++i)
      EXPECT_LE(std::fabs(double(alone_[i]) - ref.ref[i]), tol * ref.mag[i] + int_bound(mode, i) + 1e-30)
          << "element " << i;
  }

  // I8/I4 in BF16 compute: x is quantized to int8 per group, |x - x^| <= amax_g / 254 per
  // element, so |err| <= sum_g amax_g / 254 * sum_{c in g} |w_c| (plus F32 rounding, in tol).
  double int_bound(Compute mode, size_t i) const {
    if (!w_.W.is_int() || mode == Compute::F32) return 0.0;
    const int64_t N = w_.W.rows, K = w_.W.cols, G = w_.W.group;
    const int64_t p = int64_t(i) / N, n = int64_t(i) % N;
    double b = 0;
    for (int64_t g = 0; g < K / G; ++g) {
      double amax = 0, wsum = 0;
      for (int64_t c = g * G; c < (g + 1) * G; ++c) {
        amax = std::max(amax, std::fabs(double(pool_[size_t(p * K + c)])));
        wsum += std::fabs(w_.at(n, c));
      }
      b += amax / 254.0 * wsum * 1.0001;
    }
    return b;
  }

  // A batch of M rows drawn from the pool (row m = pool[(m * 37 + seed) % kPool]), with padded
  // strides (NaN in x's padding, a sentinel in y's): every row equals its alone result.
  void check(int64_t M, uint32_t seed) const {
    const int64_t K = w_.W.cols, N = w_.W.rows, ldx = K + 3, ldy = N + 5;
    std::vector<float> x(size_t(M * ldx), std::numeric_limits<float>::quiet_NaN());
    std::vector<int64_t> src(static_cast<size_t>(M));
    for (int64_t m = 0; m < M; ++m) {
      src[size_t(m)] = (m * 37 + seed) % kPool;
      std::memcpy(x.data() + m * ldx, pool_.data() + src[size_t(m)] * K, size_t(K) * sizeof(float));
    }
    std::vector<float> y(size_t(M * ldy), kSentinel);
    linear(x.data(), ldx, M, w_.W, y.data(), ldy, mode_);
    for (int64_t m = 0; m < M; ++m) {
      const float* a = alone_.data() + src[size_t(m)] * N;
      for (int64_t n = 0; n < N; ++n)
        ASSERT_EQ(bits(y[size_t(m * ldy + n)]), bits(a[n]))
            << "M=" << M << " row " << m << " (pool row " << src[size_t(m)] << ") col " << n;
      for (int64_t n = N; n < ldy; ++n) ASSERT_EQ(y[size_t(m * ldy + n)], kSentinel);
    }
  }

 private:
  static constexpr int64_t kPool = 29;
  OwnedWeights w_;
  Compute mode_;
  std::vector<float> pool_, alone_;
};

struct ThreadsGuard {
  int saved = num_threads();
  ~ThreadsGuard() { set_num_threads(saved); }
};

TEST(Linear, BatchInvariantForEveryMAndPlace) {
  ThreadsGuard guard;
  set_num_threads(2);
  for (Compute mode : {Compute::BF16, Compute::F32})
    for (DType dt : kDtypes) {
      SCOPED_TRACE(testing::Message() << dtype_name(dt) << (mode == Compute::F32 ? " F32" : " BF16"));
      const BatchInvariance b(dt, 37, 200, mode);
      for (int64_t M = 1; M <= 70; ++M) b.check(M, uint32_t(M));
      for (int64_t M : {100, 513}) b.check(M, 5);
    }
}

// I8 / I4 weights (rows a multiple of 8 for GPTQ's zero packing, not of the 16-row tile).
TEST(Linear, BatchInvariantForEveryMAndPlaceIntWeights) {
  ThreadsGuard guard;
  set_num_threads(2);
  for (Compute mode : {Compute::BF16, Compute::F32})
    for (DType dt : {DType::I8, DType::I4}) {
      SCOPED_TRACE(testing::Message() << dtype_name(dt) << (mode == Compute::F32 ? " F32" : " BF16"));
      const BatchInvariance b(dt, 40, 192, mode);
      for (int64_t M = 1; M <= 70; ++M) b.check(M, uint32_t(M));
      for (int64_t M : {100, 513}) b.check(M, 5);
    }
}

// Larger shapes: several row chunks and panels, x split into blocks among threads, K blocks
// (2048 columns) with a partial last one, FP8 edge
// blocks in both dimensions; 1 and 2 threads.
TEST(Linear, BatchInvariantAcrossPanelsAndThreads) {
  ThreadsGuard guard;
  for (Compute mode : {Compute::BF16, Compute::F32})
    for (DType dt : {DType::F32, DType::BF16, DType::F16, DType::F8_E4M3, DType::I8, DType::I4}) {
      SCOPED_TRACE(testing::Message() << dtype_name(dt) << (mode == Compute::F32 ? " F32" : " BF16"));
      set_num_threads(2);
      const bool is_int = dt == DType::I8 || dt == DType::I4;
      const BatchInvariance b(dt, is_int ? 296 : 300, is_int ? 2112 : 2100, mode);  // computed alone with 2 threads
      for (int threads : {1, 2}) {
        set_num_threads(threads);
        for (int64_t M : {1, 3, 4, 5, 33, 257}) {
          if (threads == 1 && (M == 3 || M == 257)) continue;  // keep the test quick
          b.check(M, uint32_t(M + threads));
        }
      }
    }
}

}  // namespace
}  // namespace qs
