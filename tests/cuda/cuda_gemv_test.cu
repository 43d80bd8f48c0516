// qs::cuda::gemv against the CPU reference qs::gemv (kernels/linear.h) for every weight format,
// odd shapes (columns not a multiple of 128 or of a 16-byte vector, partial FP8 edge blocks in
// both dimensions, rows not a multiple of the 4-row warp tile), every M from 1 to 8 (one kernel
// each) and M > 8, padded strides, the column-split path and empty matrices.
// |y_gpu - y_cpu| <= 1e-5 · Σ|x·w| per output. Skips (never fails) when there is no CUDA device.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <stdexcept>
#include <vector>

#include "qiusuo/core/dtype.h"
#include "qiusuo/core/error.h"
#include "qiusuo/kernels/cuda/gemv.cuh"
#include "qiusuo/kernels/linear.h"

namespace qs {
namespace {

constexpr DType kDtypes[] = {DType::F32, DType::BF16, DType::F16, DType::F8_E4M3};
constexpr uint32_t kPoison = 0xffffffffu;  // a NaN: every output element must be overwritten

void cuda_ok(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(e));
}

template <class T>
struct DevBuf {
  T* p = nullptr;
  size_t n = 0;
  explicit DevBuf(size_t n_) : n(n_) { cuda_ok(cudaMalloc(reinterpret_cast<void**>(&p), std::max<size_t>(n, 1) * sizeof(T)), "cudaMalloc"); }
  ~DevBuf() { cudaFree(p); }
  DevBuf(const DevBuf&) = delete;
  DevBuf& operator=(const DevBuf&) = delete;
  void upload(const std::vector<T>& v) { cuda_ok(cudaMemcpy(p, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice), "H2D"); }
  std::vector<T> download() const {
    std::vector<T> v(n);
    cuda_ok(cudaMemcpy(v.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost), "D2H");
    return v;
  }
};

struct Uploaded {
  cuda::DeviceWeight d;
  explicit Uploaded(const WeightMatrix& W) : d(cuda::upload(W)) {}
  ~Uploaded() { cuda::free(d); }
  Uploaded(const Uploaded&) = delete;
  Uploaded& operator=(const Uploaded&) = delete;
};

// A weight matrix with its own storage: values in [-1, 1] rounded to the dtype, 1 in 16 of them
// tiny (F16/F32 subnormals included); FP8: random non-NaN codes (subnormal codes and -0 included)
// with block scales in [2^-10, 2^-6).
struct HostWeights {
  WeightMatrix W;
  std::vector<uint8_t> data;
  std::vector<float> scales;

  HostWeights(DType dt, int64_t rows, int64_t cols, uint32_t seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    W.dtype = dt;
    W.rows = rows;
    W.cols = cols;
    const size_t n = size_t(rows * cols);
    data.resize(n * dtype_size(dt) + 16);
    for (size_t i = 0; i < n; ++i) {
      float f = u(rng);
      if ((rng() & 15) == 0) f *= dt == DType::F16 ? 1e-6f : 1e-39f;
      switch (dt) {
        case DType::F32: std::memcpy(data.data() + 4 * i, &f, 4); break;
        case DType::BF16: { const uint16_t h = f32_to_bf16(f); std::memcpy(data.data() + 2 * i, &h, 2); break; }
        case DType::F16: { const uint16_t h = f32_to_f16(f); std::memcpy(data.data() + 2 * i, &h, 2); break; }
        case DType::F8_E4M3: {
          uint8_t b;
          do b = uint8_t(rng() & 0xff); while ((b & 0x7f) == 0x7f);
          data[i] = b;
          break;
        }
        default: break;
      }
    }
    if (dt == DType::F8_E4M3) {
      std::uniform_real_distribution<float> e(-10.0f, -6.0f);
      scales.resize(size_t(((rows + 127) / 128) * ((cols + 127) / 128)));
      for (float& s : scales) s = std::exp2(e(rng));
      W.scale_inv = scales.data();
    }
    W.data = data.data();
  }
};

std::vector<float> random_floats(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (float& f : v) f = u(rng);
  return v;
}

// Largest |y_gpu - y_cpu| / (1e-5 · Σ|x·w|) seen so far (1 = at the bound), reported per test.
double g_worst = 0;

// Runs the GPU gemv on poisoned outputs and compares with the CPU qs::gemv.
void check_case(DType dt, int64_t rows, int64_t cols, int64_t M, int64_t ldx, int64_t ldy, uint32_t seed) {
  SCOPED_TRACE(testing::Message() << dtype_name(dt) << " rows=" << rows << " cols=" << cols << " M=" << M
                                  << " ldx=" << ldx << " ldy=" << ldy);
  const HostWeights hw(dt, rows, cols, seed);
  const std::vector<float> x = random_floats(size_t(M * ldx), seed * 31u + 7u);

  std::vector<float> y_cpu(size_t(M * ldy), 0.0f);
  gemv(x.data(), ldx, M, hw.W, y_cpu.data(), ldy);
  // Σ|x·w| per output, from the exactly dequantized rows.
  std::vector<double> mag(size_t(M * rows), 0.0);
  std::vector<float> wrow(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows; ++r) {
    if (cols > 0) hw.W.dequant_row(r, wrow.data());
    for (int64_t m = 0; m < M; ++m) {
      double a = 0;
      for (int64_t c = 0; c < cols; ++c) a += std::fabs(double(x[size_t(m * ldx + c)]) * double(wrow[size_t(c)]));
      mag[size_t(m * rows + r)] = a;
    }
  }

  const Uploaded w(hw.W);
  DevBuf<float> xd(x.size()), yd(size_t(M * ldy));
  xd.upload(x);
  std::vector<float> y_gpu;
  for (int rep = 0; rep < 2; ++rep) {
    cuda_ok(cudaMemset(yd.p, 0xff, yd.n * sizeof(float)), "cudaMemset");
    cuda::gemv(xd.p, ldx, M, w.d, yd.p, ldy);
    cuda_ok(cudaDeviceSynchronize(), "gemv");
    std::vector<float> y = yd.download();
    if (rep == 1) {  // same inputs, same bits: no dependence on scheduling
      ASSERT_EQ(std::memcmp(y.data(), y_gpu.data(), y.size() * sizeof(float)), 0) << "results differ between runs";
    }
    y_gpu = std::move(y);
  }

  int bad = 0;
  for (int64_t m = 0; m < M; ++m) {
    for (int64_t r = 0; r < rows; ++r) {
      const float g = y_gpu[size_t(m * ldy + r)], c = y_cpu[size_t(m * ldy + r)];
      const double bound = 1e-5 * mag[size_t(m * rows + r)] + 1e-30;
      const double err = std::fabs(double(g) - double(c));
      if (err == err) g_worst = std::max(g_worst, err / bound);
      if (!(err <= bound) && bad++ < 5)
        ADD_FAILURE() << "y[" << m << "][" << r << "] = " << g << ", cpu " << c << " (err " << err
                      << ", sum|p| " << mag[size_t(m * rows + r)] << ")";
    }
    for (int64_t r = rows; r < ldy; ++r) {
      uint32_t bits;
      std::memcpy(&bits, &y_gpu[size_t(m * ldy + r)], 4);
      if (bits != kPoison && bad++ < 5) ADD_FAILURE() << "y[" << m << "][" << r << "] past rows was written";
    }
  }
  EXPECT_EQ(bad, 0);
}

class CudaGemv : public testing::Test {
 protected:
  void SetUp() override {
    if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA device (or no driver): CUDA tests skipped";
    g_worst = 0;
  }
  void TearDown() override {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.3g", g_worst);
    RecordProperty("worst_err_over_bound", buf);
  }
};

struct Shape {
  int64_t rows, cols;
};

// Contiguous x and y, M = 1, 3, 8, shapes from tiny to a few thousand columns. Columns: 1, 7
// (no float4 activations), 16, 200 and 1000 (partial 128-blocks and a partial last warp step),
// 208 (FP8: padded-free partial block), 257 (row padding for every dtype), 2048, 8200 (FP8 padded
// to 8208, column split with a partial last step). Rows: 1, 3, 5, 37, 129, 130, 257 (partial
// 4-row warp tiles, partial 128-row FP8 blocks).
TEST_F(CudaGemv, MatchesCpuGemv) {
  const Shape shapes[] = {{1, 1}, {3, 7}, {5, 16}, {37, 200}, {130, 208}, {129, 257},
                          {257, 1000}, {64, 2048}, {33, 8200}};
  for (DType dt : kDtypes)
    for (const Shape& s : shapes)
      for (int64_t M : {1, 3, 8}) check_case(dt, s.rows, s.cols, M, s.cols, s.rows, uint32_t(s.rows * 131 + s.cols + M));
}

// Every M kernel (1..8) and M > 8 (done 8 rows at a time), on a V2-Lite expert-like shape and a
// narrow one that takes the column-split path (few rows, many columns).
TEST_F(CudaGemv, EveryM) {
  for (DType dt : kDtypes)
    for (const Shape& s : {Shape{260, 1408}, Shape{12, 4096}})
      for (int64_t M : {1, 2, 3, 4, 5, 6, 7, 8, 11, 17}) check_case(dt, s.rows, s.cols, M, s.cols, s.rows, uint32_t(M * 977 + s.rows));
}

// Padded strides: ldx not a multiple of 4 (unaligned activation rows: scalar loads), ldy > rows
// (elements past rows must stay untouched).
TEST_F(CudaGemv, Strides) {
  for (DType dt : kDtypes)
    for (const Shape& s : {Shape{37, 200}, Shape{130, 2048}})
      for (int64_t M : {1, 5, 8, 9}) {
        check_case(dt, s.rows, s.cols, M, s.cols + 3, s.rows + 5, uint32_t(M + s.cols));
        check_case(dt, s.rows, s.cols, M, s.cols + 4, s.rows + 1, uint32_t(M + s.cols + 1));
      }
}

TEST_F(CudaGemv, EmptyColumnsGiveZeros) {
  for (DType dt : kDtypes) {
    WeightMatrix W;
    W.dtype = dt;
    W.rows = 9;
    W.cols = 0;
    const Uploaded w(W);
    DevBuf<float> xd(4), yd(size_t(2 * 9));
    cuda_ok(cudaMemset(yd.p, 0xff, yd.n * sizeof(float)), "cudaMemset");
    cuda::gemv(xd.p, 2, w.d, yd.p);
    cuda_ok(cudaDeviceSynchronize(), "gemv");
    for (float v : yd.download()) EXPECT_EQ(v, 0.0f) << dtype_name(dt);
  }
}

TEST_F(CudaGemv, RejectsBadArguments) {
  WeightMatrix W;
  W.dtype = DType::I32;
  W.rows = W.cols = 4;
  std::vector<int32_t> d(16);
  W.data = d.data();
  EXPECT_THROW(cuda::upload(W), Error);
  const HostWeights hw(DType::F8_E4M3, 4, 4, 1);
  WeightMatrix noscale = hw.W;
  noscale.scale_inv = nullptr;
  EXPECT_THROW(cuda::upload(noscale), Error);
  const Uploaded w(hw.W);
  DevBuf<float> buf(64);
  EXPECT_THROW(cuda::gemv(buf.p, 3, 1, w.d, buf.p, 4), Error);  // ldx < cols
  EXPECT_THROW(cuda::gemv(buf.p, 4, 1, w.d, buf.p, 3), Error);  // ldy < rows
}

TEST_F(CudaGemv, BandwidthProbeRuns) {
  const double gbps = cuda::probe_read_bandwidth(size_t(256) << 20, 3);
  EXPECT_GT(gbps, 1.0);
  RecordProperty("probe_gbps_256MiB", std::to_string(gbps));
}

}  // namespace
}  // namespace qs
