#include "qiusuo/core/buffer.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstdint>

#include "qiusuo/core/error.h"

namespace qs {
void* aligned_alloc_bytes(size_t bytes) {
  size_t rounded = (bytes + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, rounded);
  if (!p) fail(ErrorKind::Io, "out of memory allocating ", bytes, " bytes");
  return p;
}
void aligned_free(void* p) { std::free(p); }

void advise_huge_pages(void* p, size_t bytes) {
  constexpr uintptr_t kHuge = uintptr_t(2) << 20;
  const uintptr_t b = (reinterpret_cast<uintptr_t>(p) + kHuge - 1) & ~(kHuge - 1);
  const uintptr_t e = (reinterpret_cast<uintptr_t>(p) + bytes) & ~(kHuge - 1);
  if (e > b) madvise(reinterpret_cast<void*>(b), e - b, MADV_HUGEPAGE);
}

void* HugePageArena::alloc(size_t bytes) {
  const size_t need = (bytes + 63) / 64 * 64;
  if (need > left_) {
    const size_t slab = (std::max(need, slab_bytes_) + kHuge - 1) / kHuge * kHuge;
    Buffer<uint8_t> b(slab + kHuge, false);  // room to start at a 2 MiB boundary
    const uintptr_t start = (reinterpret_cast<uintptr_t>(b.data()) + kHuge - 1) & ~uintptr_t(kHuge - 1);
    cur_ = reinterpret_cast<uint8_t*>(start);
    left_ = slab;
    advise_huge_pages(cur_, slab);
    slabs_.push_back(std::move(b));
  }
  void* p = cur_;
  cur_ += need;
  left_ -= need;
  used_ += bytes;
  return p;
}
}  // namespace qs
