// Per-ISA kernel tables and run-time selection (see cpu_kernels.h), and the row dequantizers
// shared by linear.cpp's GEMM path.
#include <algorithm>

#include "qiusuo/core/error.h"
#include "qiusuo/kernels/cpu/cpu_kernels.h"

namespace qs::cpu {
namespace {
#define QS_KERNEL_TABLE(isa_enum, isa, MR, NR, bf16_isa)                                        \
  Kernels{isa_enum,          gemv_rows_##isa,   gemv_xpack_floats_##isa, gemv_pack_x_##isa,      \
          gemv_rows_packed_##isa, bf16_to_f32_##isa, f32_to_bf16_##isa, f16_to_f32_##isa,         \
          fp8_to_f32_##isa,  gemm_micro_##isa,  MR,                     NR,                      \
          linear_bf16_##bf16_isa, read_streams_##isa}

const Kernels kScalar = QS_KERNEL_TABLE(Isa::Scalar, scalar, kGemmMrScalar, kGemmNrScalar, scalar);
#ifdef QIUSUO_SIMD
const Kernels kAvx2 = QS_KERNEL_TABLE(Isa::Avx2, avx2, kGemmMrAvx2, kGemmNrAvx2, avx2);
const Kernels kAvx512 = QS_KERNEL_TABLE(Isa::Avx512, avx512, kGemmMrAvx512, kGemmNrAvx512, avx512);
// AVX-512 without AVX512_BF16 (Skylake-X, Cascade Lake): the AVX2 BF16 linear, which computes
// the same bits with FMAs.
const Kernels kAvx512NoBf16 = QS_KERNEL_TABLE(Isa::Avx512, avx512, kGemmMrAvx512, kGemmNrAvx512, avx2);
#endif
#undef QS_KERNEL_TABLE
}  // namespace

const Kernels* kernels_for(Isa isa) {
  if (isa == Isa::Scalar) return &kScalar;
#ifdef QIUSUO_SIMD
  const CpuFeatures& f = cpu_features();
  const bool avx2 = f.avx2 && f.fma && f.f16c;
  const bool avx512 = avx2 && f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq;
  if (isa == Isa::Avx2) return avx2 ? &kAvx2 : nullptr;
  if (isa == Isa::Avx512) return avx512 ? (f.avx512bf16 ? &kAvx512 : &kAvx512NoBf16) : nullptr;
#endif
  return nullptr;
}

const Kernels& kernels() {
  static const Kernels* k = [] {
    const Kernels* t = kernels_for(best_isa());
    return t ? t : &kScalar;
  }();
  return *k;
}

namespace {
// Row r, columns [c0, c0 + n) with n <= 128 inside one scale block, to F32.
void dequant_span(const Kernels& k, const WeightMatrix& W, int64_t r, int64_t c0, int64_t n, float* out) {
  const int64_t off = r * W.cols + c0;
  switch (W.dtype) {
    case DType::F32: std::copy_n(static_cast<const float*>(W.data) + off, n, out); break;
    case DType::BF16: k.bf16_to_f32(static_cast<const uint16_t*>(W.data) + off, out, n); break;
    case DType::F16: k.f16_to_f32(static_cast<const uint16_t*>(W.data) + off, out, n); break;
    case DType::F8_E4M3: {
      const float s = W.scale_inv[(r / WeightMatrix::kBlock) * W.scale_cols() + c0 / WeightMatrix::kBlock];
      k.fp8_to_f32(static_cast<const uint8_t*>(W.data) + off, out, n, s);
      break;
    }
    default: fail(ErrorKind::Unsupported, "weight dtype ", dtype_name(W.dtype), " is not F32/BF16/F16/F8_E4M3");
  }
}
}  // namespace

void dequant_rows_f32(const Kernels& k, const WeightMatrix& W, int64_t r0, int64_t r1, float* out,
                      int64_t ld) {
  for (int64_t r = r0; r < r1; ++r) {
    float* o = out + (r - r0) * ld;
    if (W.dtype == DType::F8_E4M3) {
      for (int64_t c = 0; c < W.cols; c += WeightMatrix::kBlock)
        dequant_span(k, W, r, c, std::min(WeightMatrix::kBlock, W.cols - c), o + c);
    } else {
      dequant_span(k, W, r, 0, W.cols, o);
    }
  }
}

void dequant_rows_bf16(const Kernels& k, const WeightMatrix& W, int64_t r0, int64_t r1,
                       uint16_t* out, int64_t ld) {
  constexpr int64_t kChunk = 4 * WeightMatrix::kBlock;
  alignas(64) float buf[kChunk];
  for (int64_t r = r0; r < r1; ++r) {
    uint16_t* o = out + (r - r0) * ld;
    if (W.dtype == DType::BF16) {
      std::copy_n(static_cast<const uint16_t*>(W.data) + r * W.cols, W.cols, o);
      continue;
    }
    if (W.dtype == DType::F32) {
      k.f32_to_bf16(static_cast<const float*>(W.data) + r * W.cols, o, W.cols);
      continue;
    }
    for (int64_t c = 0; c < W.cols; c += kChunk) {
      const int64_t n = std::min(kChunk, W.cols - c);
      for (int64_t b = 0; b < n; b += WeightMatrix::kBlock)
        dequant_span(k, W, r, c + b, std::min(WeightMatrix::kBlock, n - b), buf + b);
      k.f32_to_bf16(buf, o + c, n);
    }
  }
}

}  // namespace qs::cpu
