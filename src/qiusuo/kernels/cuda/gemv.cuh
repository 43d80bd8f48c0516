// CUDA decode GEMV (optional, -DQIUSUO_CUDA=ON; see docs/cuda.md): y[M, rows] = x[M, cols] · Wᵀ
// for a few rows of activations (M = 1..8 per launch; larger M is done 8 rows at a time), with
// the weights resident on the GPU in their stored format: F32, BF16, F16 or F8_E4M3 with one F32
// scale_inv per 128x128 block (same meaning as qs::WeightMatrix in kernels/linear.h). Products
// and sums are F32 (weights widened exactly in registers), so results match the CPU qs::gemv to
// rounding; only the summation order differs.
//
// All pointers named *_dev are device pointers. Launches are asynchronous on the given stream;
// errors (bad arguments, failed launches, failed allocations) throw qs::Error.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "qiusuo/core/dtype.h"
#include "qiusuo/kernels/linear.h"

namespace qs::cuda {

// A weight matrix in device memory, in the kernel's own layout (not plain row-major): each row
// holds `ld` elements (cols rounded up to a multiple of 16 bytes, zero-padded; ld == cols for
// checkpoint shapes), and within each 512-byte stretch of a row the 4-element groups are
// interleaved so that the activations a warp reads are contiguous (gemv.cu, step()). Only
// upload() writes it; the scales are stored as given.
struct DeviceWeight {
  DType dtype = DType::F32;   // F32, BF16, F16 or F8_E4M3
  int64_t rows = 0, cols = 0;
  int64_t ld = 0;              // elements per stored row (>= cols)
  void* data = nullptr;        // [rows, ld], interleaved within each row (see above)
  float* scale_inv = nullptr;  // F8_E4M3: [ceil(rows/128), ceil(cols/128)], row-major
  static constexpr int64_t kBlock = 128;

  int64_t scale_cols() const { return (cols + kBlock - 1) / kBlock; }
  // Bytes one full pass must read (weights + scales, padding not counted): the same figure as
  // WeightMatrix::bytes(), used for GB/s.
  size_t bytes() const;
};

// Copies W (host memory, e.g. an mmapped checkpoint) to the current device.
DeviceWeight upload(const WeightMatrix& W);
// Frees the device memory of W (no-op for an empty one) and resets it.
void free(DeviceWeight& W);

// y[m][r] = Σ_c x[m][c] W[r][c] for m < M, r < W.rows. x_dev [M, ldx] and y_dev [M, ldy] are row
// major F32 device arrays (ldx >= W.cols, ldy >= W.rows; elements of y past W.rows untouched).
void gemv(const float* x_dev, int64_t ldx, int64_t M, const DeviceWeight& W, float* y_dev,
          int64_t ldy, cudaStream_t stream = nullptr);
inline void gemv(const float* x_dev, int64_t M, const DeviceWeight& W, float* y_dev,
                 cudaStream_t stream = nullptr) {
  gemv(x_dev, W.cols, M, W, y_dev, W.rows, stream);
}

// Number of CUDA devices this process can use; 0 when there is no device or no driver (never
// throws), so tests can skip.
int device_count();

// What the benchmark prints about the current device.
struct DeviceInfo {
  std::string name;
  int cc_major = 0, cc_minor = 0;
  int sms = 0;
  size_t l2_bytes = 0, mem_bytes = 0;
  double peak_gbps = 0;  // from memory clock and bus width (datasheet-style; 0 if unknown)
};
DeviceInfo device_info();

// Read-bandwidth probe: streams a `bytes`-sized device buffer with 16-byte loads (the same load
// instruction the GEMV uses), `iters` timed passes after one warm-up; returns the median GB/s
// (1e9 bytes/s). Use a buffer far larger than L2 (the default is 2 GiB).
double probe_read_bandwidth(size_t bytes = size_t(2) << 30, int iters = 20);

}  // namespace qs::cuda
