// Internal: flush-to-zero and denormals-are-zero for the F32 arithmetic of a kernel (MXCSR bits
// FTZ and DAZ), restored on scope exit. The BF16-compute kernels run under it so that their
// FMAs and additions flush exactly as vdpbf16ps does (see linear_bf16_scalar.cpp). Header-only
// with internal linkage, safe to include from the ISA files (see isa_scratch.h).
#pragma once
#include <xmmintrin.h>

namespace qs::cpu {
namespace {
class FlushDenormals {
 public:
  FlushDenormals() : saved_(_mm_getcsr()) { _mm_setcsr(saved_ | kFtz | kDaz); }
  ~FlushDenormals() { _mm_setcsr(saved_); }
  FlushDenormals(const FlushDenormals&) = delete;
  FlushDenormals& operator=(const FlushDenormals&) = delete;

 private:
  static constexpr unsigned kFtz = 0x8000, kDaz = 0x0040;
  unsigned saved_;
};
}  // namespace
}  // namespace qs::cpu
