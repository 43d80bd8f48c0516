// Shared helpers for the kernel tests: random data in every weight format, double-precision
// references and the ISAs this machine can run.
#pragma once
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "qiusuo/core/dtype.h"
#include "qiusuo/core/buffer.h"
#include "qiusuo/kernels/cpu/cpu_kernels.h"
#include "qiusuo/kernels/int_weights.h"
#include "qiusuo/kernels/linear.h"

namespace qs::test {

// Every kernel table the build has and the CPU runs (scalar first).
inline std::vector<const cpu::Kernels*> runnable_kernels() {
  std::vector<const cpu::Kernels*> out;
  for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512})
    if (const cpu::Kernels* k = cpu::kernels_for(isa)) out.push_back(k);
  return out;
}

// GPTQ tensors (int_weights.h) with random values: u uniform in [0, 2^bits), F16 scales in
// [2^-8, 2^-4), symmetric zeros in the "gptq" convention (z - 1).
struct GptqData {
  std::vector<uint32_t> qweight, qzeros;
  std::vector<uint16_t> scales;
  TensorView vqw, vsc, vqz;
  GptqData(int bits, int64_t rows, int64_t cols, int64_t group, uint32_t seed) {
    std::mt19937 rng(seed);
    const int64_t per = 32 / bits;
    qweight.resize(size_t(cols / per * rows));
    for (auto& w : qweight) w = rng();
    scales.resize(size_t(cols / group * rows));
    std::uniform_real_distribution<float> e(-8.0f, -4.0f);
    for (auto& v : scales) v = f32_to_f16(std::exp2(e(rng)));
    qzeros.assign(size_t(cols / group * (rows / per)), bits == 4 ? 0x77777777u : 0x7F7F7F7Fu);
    vqw = {DType::I32, {cols / per, rows}, qweight.data(), qweight.size() * 4};
    vsc = {DType::F16, {cols / group, rows}, scales.data(), scales.size() * 2};
    vqz = {DType::I32, {cols / group, rows / per}, qzeros.data(), qzeros.size() * 4};
  }
  GptqTensors tensors() const { return {&vqw, &vsc, &vqz, nullptr}; }
};

// A weight matrix with its own storage: random values in [-1, 1] rounded to the dtype; FP8
// codes are random non-NaN bytes with random block scales in [2^-10, 2^-6); I8/I4 random GPTQ
// words repacked (group: `group`, or 64 when cols allows it, else 32).
struct OwnedWeights {
  WeightMatrix W;
  std::vector<uint8_t> data;
  std::vector<float> scales;
  Buffer<float> int_storage;

  OwnedWeights(DType dt, int64_t rows, int64_t cols, uint32_t seed, int64_t group = 0) {
    if (dt == DType::I8 || dt == DType::I4) {
      const GptqData g(dt == DType::I8 ? 8 : 4, rows, cols, group ? group : cols % 64 == 0 ? 64 : 32, seed);
      W = int_weights_from_gptq("test", g.tensors(), rows, cols, int_storage);
      return;
    }
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    W.dtype = dt;
    W.rows = rows;
    W.cols = cols;
    const size_t n = size_t(rows * cols);
    data.resize(n * dtype_size(dt) + 64);
    for (size_t i = 0; i < n; ++i) {
      switch (dt) {
        case DType::F32: reinterpret_cast<float*>(data.data())[i] = u(rng); break;
        case DType::BF16: reinterpret_cast<uint16_t*>(data.data())[i] = f32_to_bf16(u(rng)); break;
        case DType::F16: reinterpret_cast<uint16_t*>(data.data())[i] = f32_to_f16(u(rng)); break;
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
      const int64_t sr = (rows + 127) / 128, sc = (cols + 127) / 128;
      std::uniform_real_distribution<float> e(-10.0f, -6.0f);
      scales.resize(size_t(sr * sc));
      for (float& s : scales) s = std::exp2(e(rng));
      W.scale_inv = scales.data();
    }
    W.data = data.data();
  }

  // Exact value of W[r][c] (double; FP8: fp8 value times its block scale, unrounded).
  double at(int64_t r, int64_t c) const {
    if (W.is_int()) {  // (u - z) * s, exact in F32
      if (cached_row_ != r) {
        cache_.resize(size_t(W.cols));
        W.dequant_row(r, cache_.data());
        cached_row_ = r;
      }
      return cache_[size_t(c)];
    }
    const size_t i = size_t(r * W.cols + c);
    switch (W.dtype) {
      case DType::F32: return reinterpret_cast<const float*>(data.data())[i];
      case DType::BF16: return bf16_to_f32(reinterpret_cast<const uint16_t*>(data.data())[i]);
      case DType::F16: return f16_to_f32(reinterpret_cast<const uint16_t*>(data.data())[i]);
      case DType::F8_E4M3:
        return double(fp8e4m3_to_f32(data[i])) * double(scales[size_t((r / 128) * ((W.cols + 127) / 128) + c / 128)]);
      default: return 0;
    }
  }

 private:
  mutable int64_t cached_row_ = -1;
  mutable std::vector<float> cache_;
};

inline std::vector<float> random_floats(size_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(n);
  for (float& f : v) f = u(rng);
  return v;
}

// Bound on |y - ref| / Σ|x w| for Compute::BF16: x rounded to BF16 (relative error <= 2^-9 per
// product), F32/F16 weights rounded too (another 2^-9; BF16 and FP8 weights are exact), plus
// F32 accumulation over ~K/16 + 8 additions (< 2^-14 for K <= 10^5).
inline double bf16_compute_tol(DType weights) {
  const bool exact_w = weights == DType::BF16 || weights == DType::F8_E4M3;
  return (exact_w ? std::ldexp(1.0, -9) : std::ldexp(1.0, -8) + std::ldexp(1.0, -18)) + std::ldexp(1.0, -14);
}

// ref[m][r] = Σ_c x[m][c] W[r][c] and mag[m][r] = Σ_c |x[m][c] W[r][c]| in double.
struct LinearRef {
  std::vector<double> ref, mag;
  LinearRef(const OwnedWeights& w, const float* x, int64_t ldx, int64_t M) {
    const int64_t R = w.W.rows, C = w.W.cols;
    ref.assign(size_t(M * R), 0.0);
    mag.assign(size_t(M * R), 0.0);
    std::vector<double> row(static_cast<size_t>(C));
    for (int64_t r = 0; r < R; ++r) {
      for (int64_t c = 0; c < C; ++c) row[size_t(c)] = w.at(r, c);
      for (int64_t m = 0; m < M; ++m) {
        double s = 0, a = 0;
        for (int64_t c = 0; c < C; ++c) {
          const double p = double(x[m * ldx + c]) * row[size_t(c)];
          s += p;
          a += std::fabs(p);
        }
        ref[size_t(m * R + r)] = s;
        mag[size_t(m * R + r)] = a;
      }
    }
  }
};

}  // namespace qs::test
