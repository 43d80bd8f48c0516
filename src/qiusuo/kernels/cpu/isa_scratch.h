// Internal: a growable, 64-byte-aligned thread-local scratch array for the ISA-specific files
// (*_avx2.cpp, *_avx512.cpp).
//
// Why not qs::Buffer: an inline or template function with external linkage (Buffer<float>'s
// members, say) that an ISA file instantiates is emitted there compiled with that file's ISA
// flags, and the linker keeps one copy for the whole program — possibly the AVX-512 one, which
// baseline code on a CPU without AVX-512 would then call. Everything here has internal linkage
// (anonymous namespace), so each file keeps its own copy. ISA files should likewise avoid
// out-of-line calls to shared inline/template functions (check with `nm -C --defined-only
// <file>.o | grep ' W '`: nothing should be listed).
#pragma once
#include <cstddef>

#include "qiusuo/core/buffer.h"  // aligned_alloc_bytes / aligned_free: compiled for the baseline

namespace qs::cpu {
namespace {
template <typename T>
class IsaScratch {
 public:
  IsaScratch() = default;
  IsaScratch(const IsaScratch&) = delete;
  IsaScratch& operator=(const IsaScratch&) = delete;
  ~IsaScratch() { aligned_free(p_); }
  // At least n elements (contents not kept on growth).
  T* get(size_t n) {
    if (n > n_) {
      aligned_free(p_);
      p_ = nullptr;
      n_ = 0;
      p_ = static_cast<T*>(aligned_alloc_bytes(n * sizeof(T)));
      n_ = n;
    }
    return p_;
  }

 private:
  T* p_ = nullptr;
  size_t n_ = 0;
};
}  // namespace
}  // namespace qs::cpu
