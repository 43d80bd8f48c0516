#include "qiusuo/core/buffer.h"

#include "qiusuo/core/error.h"

namespace qs {
void* aligned_alloc_bytes(size_t bytes) {
  size_t rounded = (bytes + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, rounded);
  if (!p) fail(ErrorKind::Io, "out of memory allocating ", bytes, " bytes");
  return p;
}
void aligned_free(void* p) { std::free(p); }
}  // namespace qs
