// Per-ISA kernel tables and run-time selection (see cpu_kernels.h), and the row dequantizers
// shared by linear.cpp's GEMM path.
#include <algorithm>

#include "qiusuo/core/error.h"
#include "qiusuo/kernels/cpu/cpu_kernels.h"

namespace qs::cpu {
namespace {
#define QS_KERNEL_TABLE(isa_enum, isa, MR, NR, INT_ROWS_W, INT_ROWS_D)                          \
  Kernels{isa_enum,          gemv_rows_##isa,   gemv_xpack_floats_##isa, gemv_pack_x_##isa,      \
          gemv_rows_packed_##isa, bf16_to_f32_##isa, f32_to_bf16_##isa, f16_to_f32_##isa,         \
          fp8_to_f32_##isa,  gemm_micro_##isa,  MR,                     NR,                      \
          linear_bf16_##isa, quantize_x_##isa,  linear_int_##isa,       read_streams_##isa,      \
          dequant_int_tile_##isa, nullptr,               nullptr,                 INT_ROWS_W,       \
          INT_ROWS_D,        attn_values_bf16_##isa}

const Kernels kScalar = QS_KERNEL_TABLE(Isa::Scalar, scalar, kGemmMrScalar, kGemmNrScalar, nullptr, nullptr);
#ifdef QIUSUO_SIMD
const Kernels kAvx2 =
    QS_KERNEL_TABLE(Isa::Avx2, avx2, kGemmMrAvx2, kGemmNrAvx2, int_weighted_rows_avx2, int_dot_rows_avx2);
const Kernels kAvx512 =
    QS_KERNEL_TABLE(Isa::Avx512, avx512, kGemmMrAvx512, kGemmNrAvx512, int_weighted_rows_avx512, int_dot_rows_avx512);
#endif
#undef QS_KERNEL_TABLE
}  // namespace

const Kernels* kernels_for(Isa isa) {
  if (isa == Isa::Scalar) return &kScalar;
#ifdef QIUSUO_SIMD
  const CpuFeatures& f = cpu_features();
  const bool avx2 = f.avx2 && f.fma && f.f16c;
  const bool avx512 = avx2 && f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq;
  if (isa == Isa::Avx2) {
    if (!avx2) return nullptr;
    // AVX-VNNI (Intel client cores from Alder Lake): the integer products by vpdpbusd.
    static const Kernels table = [&] {
      Kernels t = kAvx2;
      if (f.avxvnni) t.linear_int = linear_int_avxvnni;
      return t;
    }();
    return &table;
  }
  if (isa == Isa::Avx512) {
    if (!avx512) return nullptr;
    // AVX-512 without AVX512_BF16 (Skylake-X, Cascade Lake) or without VNNI (Skylake-X): those
    // kernels from the AVX2 table, which compute the same bits.
    static const Kernels table = [&] {
      Kernels t = kAvx512;
      if (!f.avx512bf16) {
        t.linear_bf16 = linear_bf16_avx2;
        t.attn_values_bf16 = attn_values_bf16_avx2;
      }
      else if (f.avx512vbmi) t.linear_bf16 = linear_bf16_avx512vbmi;  // FP8 widened by byte lookups
      if (f.avx512vbmi) {  // likewise
        t.fp8_to_f32 = fp8_to_f32_avx512vbmi;
        t.fp8_weighted_rows = fp8_weighted_rows_avx512vbmi;
        t.fp8_dot_rows = fp8_dot_rows_avx512vbmi;
        if (f.avx512bf16) t.fp8_to_bf16 = fp8_to_bf16_avx512vbmi;
      }
      if (!f.avx512vnni) {
        t.quantize_x = quantize_x_avx2;
        t.linear_int = linear_int_avx2;
      }
      return t;
    }();
    return &table;
  }
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
    case DType::I8:
    case DType::I4: {  // (u - z) * s, exact in F32 (u - z: 8 bits, s: an F16)
      const bool i8 = W.dtype == DType::I8;
      const int64_t per = i8 ? 4 : 8, words = W.int_words(), ngroups = W.cols / W.group;
      const int64_t t = r / WeightMatrix::kIntTile, i = r % WeightMatrix::kIntTile;
      const auto* data = static_cast<const uint32_t*>(W.data);
      for (int64_t c = c0; c < c0 + n; ++c) {
        const uint32_t w = data[(t * words + c / per) * WeightMatrix::kIntTile + i];
        const int j = int(c % per);
        const int32_t q = i8 ? int32_t((w >> (8 * j)) & 0xFF) - 128 : int32_t((w >> (4 * j)) & 0xF) - 8;
        out[c - c0] = float(q) * f16_to_f32(W.group_scales[(t * ngroups + c / W.group) * WeightMatrix::kIntTile + i]);
      }
      break;
    }
    default: fail(ErrorKind::Unsupported, "weight dtype ", dtype_name(W.dtype), " is not F32/BF16/F16/F8_E4M3/I8/I4");
  }
}
}  // namespace

void dequant_rows_f32(const Kernels& k, const WeightMatrix& W, int64_t r0, int64_t r1, float* out,
                      int64_t ld) {
  constexpr int64_t kTile = WeightMatrix::kIntTile;
  for (int64_t r = r0; r < r1; ++r) {
    if (W.is_int() && r % kTile == 0 && std::min(r + kTile, W.rows) <= r1) {  // a whole tile at once
      k.dequant_int_tile(W, r / kTile, out + (r - r0) * ld, ld);
      r = std::min(r + kTile, W.rows) - 1;
      continue;
    }
    float* o = out + (r - r0) * ld;
    if (W.dtype == DType::F8_E4M3 || W.is_int()) {
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
