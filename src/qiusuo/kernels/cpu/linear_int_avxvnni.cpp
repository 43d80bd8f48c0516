// Group-wise integer weights (I8 / I4) on CPUs with AVX2 and AVX-VNNI but no AVX-512 (Intel
// client cores from Alder Lake on): linear_int_avx2.cpp's kernel with vpdpbusd doing the byte
// products and their sums in one instruction (linear_int_avx2.inc), I8 weights as whole bytes.
// The integer sums are exact, so the bits are linear_int_scalar.cpp's. Built with -mavxvnni;
// dispatch.cpp uses it only when CPUID reports AVX-VNNI.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "qiusuo/kernels/cpu/cpu_kernels.h"
#include "qiusuo/kernels/cpu/mxcsr.h"

namespace qs::cpu {
namespace {

#define QS_INT_AVX_VNNI 1
#include "qiusuo/kernels/cpu/linear_int_avx2.inc"
#undef QS_INT_AVX_VNNI

}  // namespace

void linear_int_avxvnni(const QuantizedX& x, int64_t M, const WeightMatrix& W, int64_t n0, int64_t n1, float* y,
                        int64_t ldy) {
  linear_int_entry(x, M, W, n0, n1, y, ldy);
}

}  // namespace qs::cpu
