// Internal: the per-ISA CPU kernels behind linear.h, gemm.h, convert.h and probe.h.
//
// Every kernel exists as a scalar reference (cpu/*_scalar.cpp, baseline x86-64) and, when built
// with QIUSUO_SIMD, as AVX2 and AVX-512 variants (cpu/*_avx2.cpp, cpu/*_avx512.cpp, compiled
// with their ISA flags). The public entry points pick one table with kernels_for(best_isa());
// tests call kernels_for(isa) for every built ISA the CPU runs, so each path is checked
// against the scalar one whatever QIUSUO_ISA says.
#pragma once
#include <cstddef>
#include <cstdint>

#include "qiusuo/core/cpu.h"
#include "qiusuo/kernels/linear.h"

namespace qs::cpu {

// y[m*ldy + r] = sum_c x[m*ldx + c] * W[r][c] for 0 <= m < M and r0 <= r < r1 (one chunk of
// the output rows; gemv() hands chunks to threads). Exact F32 products and F32 accumulation;
// FP8 NaN codes (0x7F, 0xFF) are not special-cased in the SIMD paths (checkpoints hold none).
using GemvRowsFn = void (*)(const float* x, int64_t ldx, int64_t M, const WeightMatrix& W,
                            int64_t r0, int64_t r1, float* y, int64_t ldy);

// Own GEMM microkernel: T = Ap · Bp over kc steps (T is MR x NR), where the packed panels are
// Ap[k*MR + i] and Bp[k*NR + j] (zero-padded to full MR / NR, 64-byte aligned); then for
// i < mr, j < nr: C[i*ldc + j] = alpha * T[i][j] + beta * C[i*ldc + j] (beta == 0: C not read).
using GemmMicroFn = void (*)(int64_t kc, const float* Ap, const float* Bp, float alpha, float beta,
                             float* C, int64_t ldc, int mr, int nr);

// BF16-compute linear (linear.h, Compute::BF16) for output rows [n0, n1) of W and all M rows of
// x: y[m*ldy + n] = dot_bf16(xb row m, W row n). xb holds x already rounded to BF16 (row stride
// ldxb, a multiple of kBf16Pad >= W.cols, zeros from W.cols on). The arithmetic of dot_bf16 is
// fixed (linear_bf16_scalar.cpp states it): every ISA, every M, n0, n1, tile shape and thread
// split gives the same bits for an output element. Uses thread-local scratch; W.cols > 0.
using LinearBf16Fn = void (*)(const uint16_t* xb, int64_t ldxb, int64_t M, const WeightMatrix& W,
                              int64_t n0, int64_t n1, float* y, int64_t ldy);
constexpr int64_t kBf16Pad = 64;

// Rows of x quantized for I8/I4 weights (linear.h, Compute::BF16; quantize_x states how): per
// row, the int8 values in the weight dtype's word order (I8: natural; I4: per 8 columns c0 c2 c4
// c6 c1 c3 c5 c7, the even/odd nibbles of a GPTQ word), and per weight group g its scale and
// zsum = z * sum(q) (z = 128 for I8, 8 for I4: the weights' zero point).
struct QuantizedX {
  const int8_t* q;  // [M][ldq]
  int64_t ldq;
  const float* scale;   // [M][ldg]
  const int32_t* zsum;  // [M][ldg]
  int64_t ldg;
};
// One row of x (K columns, K a multiple of `group`) quantized for weights of dtype `wdtype`.
using QuantizeXFn = void (*)(const float* x, int64_t K, int64_t group, DType wdtype, int8_t* q,
                             float* scale, int32_t* zsum);
// y[m*ldy + n] for m < M, n in [n0, n1) (n0 a multiple of 16; n1 one too or W.rows) from I8/I4
// weights: the arithmetic of linear_int_scalar.cpp, the same bits for every ISA, M and split.
using LinearIntFn = void (*)(const QuantizedX& x, int64_t M, const WeightMatrix& W, int64_t n0,
                             int64_t n1, float* y, int64_t ldy);

struct Kernels {
  Isa isa;
  GemvRowsFn gemv_rows;
  // gemv_rows in two steps, so that threads share one packed copy of x: xp (gemv_xpack_floats
  // floats, ISA-specific order) = gemv_pack_x(x), then gemv_rows_packed(xp, ...) per chunk.
  size_t (*gemv_xpack_floats)(int64_t M, const WeightMatrix& W);
  void (*gemv_pack_x)(const float* x, int64_t ldx, int64_t M, const WeightMatrix& W, float* xp);
  void (*gemv_rows_packed)(const float* xp, int64_t M, const WeightMatrix& W, int64_t r0,
                           int64_t r1, float* y, int64_t ldy);
  // Bulk conversions (bit-exact with the scalar conversions in core/dtype.h, NaN stays NaN).
  void (*bf16_to_f32)(const uint16_t* in, float* out, int64_t n);
  void (*f32_to_bf16)(const float* in, uint16_t* out, int64_t n);
  void (*f16_to_f32)(const uint16_t* in, float* out, int64_t n);
  // out[i] = fp8e4m3_to_f32(in[i]) * scale, rounded once (scale = 1: plain decode).
  void (*fp8_to_f32)(const uint8_t* in, float* out, int64_t n, float scale);
  GemmMicroFn gemm_micro;
  int gemm_mr, gemm_nr;
  LinearBf16Fn linear_bf16;
  QuantizeXFn quantize_x;
  LinearIntFn linear_int;
  // Memory-bandwidth probe: sums `streams` arrays of n floats each, read in lockstep.
  float (*read_streams)(const float* const* p, int streams, int64_t n);
  // I8 / I4 weights: the rows of tile t (rows 16t .. min(16t + 16, W.rows)) dequantized exactly,
  // row 16t + i to out + i*ld: (u - z) * s, the values dequant_rows_f32 gives row by row.
  void (*dequant_int_tile)(const WeightMatrix& W, int64_t t, float* out, int64_t ld);
  // FP8 weights, where the ISA has them (else nullptr: weighted_rows_of / dot_rows_of in
  // linear.cpp dequantize rows first): absorbed decode's products with rows of W read as stored,
  // the bits of dequant_rows_f32 followed by vec_ops' weighted_rows / dot_rows for one query
  // row. W.cols a multiple of 16.
  //   fp8_weighted_rows: dst[c] += Σ_{i<n} p[i] W[r0 + i][c] for c < W.cols, rows in order.
  //   fp8_dot_rows:      out[i] = x · W[r0 + i] for i < n.
  void (*fp8_weighted_rows)(const WeightMatrix& W, int64_t r0, int64_t n, const float* p, float* dst);
  void (*fp8_dot_rows)(const WeightMatrix& W, int64_t r0, int64_t n, const float* x, float* out);
  // The same two for I8 / I4 weights (int_rows_avx2.cpp, int_rows_avx512.cpp; nullptr in the
  // scalar table).
  void (*int_weighted_rows)(const WeightMatrix& W, int64_t r0, int64_t n, const float* p, float* dst);
  void (*int_dot_rows)(const WeightMatrix& W, int64_t r0, int64_t n, const float* x, float* out);
  // Absorbed decode attention's value product over BF16 rows (kernels/attention.h,
  // attn_values_bf16): O[i][c] (+)= Σ_j P[i][j] V[j][c] for i < nq, c < n, j < nk, the keys in
  // pairs as one lane of vdpbf16ps adds them (cpu/attn_bf16_scalar.cpp states the arithmetic):
  // the same bits for every ISA.
  void (*attn_values_bf16)(const uint16_t* P, int64_t nq, int64_t ldp, const uint16_t* V, int64_t nk,
                           int64_t ldv, int64_t n, float* O, int64_t ldo, bool accumulate);
  // E4M3 codes times per-group scales rounded to BF16 in one pass (convert.h's fp8e4m3_to_bf16):
  // fp8_to_f32 followed by f32_to_bf16, the same bits. nullptr: those two in turn
  // (fp8_to_bf16_two_pass).
  void (*fp8_to_bf16)(const uint8_t* in, uint16_t* out, int64_t n, const float* scales, int64_t group) = nullptr;
};

// The per-ISA functions the tables point to: gemv_<isa>.cpp, convert_<isa>.cpp,
// gemm_<isa>.cpp, probe_<isa>.cpp (isa = scalar, avx2, avx512).
#define QS_DECLARE_CPU_KERNELS(isa)                                                             \
  void gemv_rows_##isa(const float* x, int64_t ldx, int64_t M, const WeightMatrix& W,           \
                       int64_t r0, int64_t r1, float* y, int64_t ldy);                          \
  size_t gemv_xpack_floats_##isa(int64_t M, const WeightMatrix& W);                             \
  void gemv_pack_x_##isa(const float* x, int64_t ldx, int64_t M, const WeightMatrix& W,         \
                         float* xp);                                                            \
  void gemv_rows_packed_##isa(const float* xp, int64_t M, const WeightMatrix& W, int64_t r0,    \
                              int64_t r1, float* y, int64_t ldy);                               \
  void bf16_to_f32_##isa(const uint16_t* in, float* out, int64_t n);                            \
  void f32_to_bf16_##isa(const float* in, uint16_t* out, int64_t n);                            \
  void f16_to_f32_##isa(const uint16_t* in, float* out, int64_t n);                             \
  void fp8_to_f32_##isa(const uint8_t* in, float* out, int64_t n, float scale);                 \
  void gemm_micro_##isa(int64_t kc, const float* Ap, const float* Bp, float alpha, float beta,  \
                        float* C, int64_t ldc, int mr, int nr);                                  \
  float read_streams_##isa(const float* const* p, int streams, int64_t n);                     \
  void linear_bf16_##isa(const uint16_t* xb, int64_t ldxb, int64_t M, const WeightMatrix& W,    \
                         int64_t n0, int64_t n1, float* y, int64_t ldy);                         \
  void quantize_x_##isa(const float* x, int64_t K, int64_t group, DType wdtype, int8_t* q,       \
                        float* scale, int32_t* zsum);                                           \
  void linear_int_##isa(const QuantizedX& x, int64_t M, const WeightMatrix& W, int64_t n0,      \
                        int64_t n1, float* y, int64_t ldy);                                     \
  void dequant_int_tile_##isa(const WeightMatrix& W, int64_t t, float* out, int64_t ld);        \
  void attn_values_bf16_##isa(const uint16_t* P, int64_t nq, int64_t ldp, const uint16_t* V,    \
                              int64_t nk, int64_t ldv, int64_t n, float* O, int64_t ldo,        \
                              bool accumulate);
QS_DECLARE_CPU_KERNELS(scalar)
#ifdef QIUSUO_SIMD
QS_DECLARE_CPU_KERNELS(avx2)
QS_DECLARE_CPU_KERNELS(avx512)
// linear_bf16_avx512 with FP8 widened by AVX512_VBMI byte lookups (the same bits).
void linear_bf16_avx512vbmi(const uint16_t* xb, int64_t ldxb, int64_t M, const WeightMatrix& W, int64_t n0,
                            int64_t n1, float* y, int64_t ldy);
// FP8 read by AVX512_VBMI byte lookups (fp8_vbmi_avx512.cpp): fp8_to_f32_avx512's bits, and
// the table's fp8_weighted_rows / fp8_dot_rows.
void fp8_to_f32_avx512vbmi(const uint8_t* in, float* out, int64_t n, float scale);
// fp8_to_f32 then f32_to_bf16 in one pass (the table's fp8_to_bf16; AVX512_BF16 as well).
void fp8_to_bf16_avx512vbmi(const uint8_t* in, uint16_t* out, int64_t n, const float* scales, int64_t group);
void fp8_weighted_rows_avx512vbmi(const WeightMatrix& W, int64_t r0, int64_t n, const float* p, float* dst);
void fp8_dot_rows_avx512vbmi(const WeightMatrix& W, int64_t r0, int64_t n, const float* x, float* out);
// linear_int_avx2 with AVX-VNNI's vpdpbusd (linear_int_avxvnni.cpp; the same bits).
void linear_int_avxvnni(const QuantizedX& x, int64_t M, const WeightMatrix& W, int64_t n0, int64_t n1, float* y,
                        int64_t ldy);
// I8 / I4 rows read as stored (int_rows_avx2.cpp, int_rows_avx512.cpp): the tables'
// int_weighted_rows / int_dot_rows.
void int_weighted_rows_avx2(const WeightMatrix& W, int64_t r0, int64_t n, const float* p, float* dst);
void int_dot_rows_avx2(const WeightMatrix& W, int64_t r0, int64_t n, const float* x, float* out);
void int_weighted_rows_avx512(const WeightMatrix& W, int64_t r0, int64_t n, const float* p, float* dst);
void int_dot_rows_avx512(const WeightMatrix& W, int64_t r0, int64_t n, const float* x, float* out);
#endif
#undef QS_DECLARE_CPU_KERNELS

// Microkernel tile sizes (MR x NR), one pair per ISA.
constexpr int kGemmMrScalar = 4, kGemmNrScalar = 8;
constexpr int kGemmMrAvx2 = 6, kGemmNrAvx2 = 16;
constexpr int kGemmMrAvx512 = 12, kGemmNrAvx512 = 32;

// fp8e4m3_to_bf16 (convert.h) as a table's fp8_to_f32 then its f32_to_bf16, 128 values at a time
// through L1 (what tables without their own fp8_to_bf16 do, and the fused kernel's route for
// scales it cannot take).
void fp8_to_bf16_two_pass(void (*fp8_to_f32)(const uint8_t*, float*, int64_t, float),
                          void (*f32_to_bf16)(const float*, uint16_t*, int64_t), const uint8_t* in, uint16_t* out,
                          int64_t n, const float* scales, int64_t group);

// The table for `isa`, or nullptr when the build lacks it or the CPU cannot run it.
const Kernels* kernels_for(Isa isa);
// The table for best_isa() (cached).
const Kernels& kernels();

// Own blocked GEMM (the path without oneDNN; tests call it directly). Same contract as gemm.h.
// A/B are F32 or BF16 bits (bf16 = true), widened to F32 while packing.
void gemm_own(const Kernels& k, bool bf16, bool trans_a, bool trans_b, int64_t M, int64_t N,
              int64_t K, float alpha, const void* A, int64_t lda, const void* B, int64_t ldb,
              float beta, float* C, int64_t ldc);

// Rows [r0, r1) of W dequantized, row i to out + i*ld (exact: F32 out, or BF16 out rounded
// to nearest even from the exact F32 value).
void dequant_rows_f32(const Kernels& k, const WeightMatrix& W, int64_t r0, int64_t r1, float* out,
                      int64_t ld);
void dequant_rows_bf16(const Kernels& k, const WeightMatrix& W, int64_t r0, int64_t r1,
                       uint16_t* out, int64_t ld);

// The former GEMM path of linear() for any M (oneDNN, x rounded to BF16 in Compute::BF16, M
// padded to linear_bucket_rows): not batch-invariant, no longer used by linear(); the peer the
// benchmarks measure the BF16 kernel against. Arguments as linear() (checked there).
void linear_gemm(const float* x, int64_t ldx, int64_t M, const WeightMatrix& W, float* y,
                 int64_t ldy, Compute compute);

// M as linear_gemm passes it to the GEMM: rounded up to a bucket (multiples of 16 up to 64, of 32
// up to 256, of 128 up to 1024, then of 256) so that varying batch sizes share primitives.
int64_t linear_bucket_rows(int64_t M);

}  // namespace qs::cpu
