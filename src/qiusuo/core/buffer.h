// Aligned, owned memory. Buffer<T> is a 64-byte-aligned array that is never copied implicitly.
#pragma once
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <new>
#include <span>
#include <utility>

namespace qs {

void* aligned_alloc_bytes(size_t bytes);  // 64-byte aligned, throws on failure
void aligned_free(void* p);
// Asks the kernel to back [p, p + bytes) with transparent huge pages (2 MiB) where the system
// allows it (THP "madvise" mode): fewer page faults and TLB misses for big, long-lived buffers.
// Best effort: errors are ignored.
void advise_huge_pages(void* p, size_t bytes);

template <typename T>
class Buffer {
 public:
  Buffer() = default;
  explicit Buffer(size_t n, bool zero = true) { resize(n, zero); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  Buffer(Buffer&& o) noexcept : p_(std::exchange(o.p_, nullptr)), n_(std::exchange(o.n_, 0)) {}
  Buffer& operator=(Buffer&& o) noexcept {
    if (this != &o) { aligned_free(p_); p_ = std::exchange(o.p_, nullptr); n_ = std::exchange(o.n_, 0); }
    return *this;
  }
  ~Buffer() { aligned_free(p_); }

  // Reallocates (contents are not kept) unless the size already matches.
  void resize(size_t n, bool zero = true) {
    if (n != n_) {
      aligned_free(p_);
      p_ = n ? static_cast<T*>(aligned_alloc_bytes(n * sizeof(T))) : nullptr;
      n_ = n;
    }
    if (zero && n) std::memset(static_cast<void*>(p_), 0, n * sizeof(T));
  }
  // Grows to at least n elements (contents not kept on growth).
  void reserve(size_t n) { if (n > n_) resize(n, false); }
  void zero() { if (n_) std::memset(static_cast<void*>(p_), 0, n_ * sizeof(T)); }

  T* data() { return p_; }
  const T* data() const { return p_; }
  size_t size() const { return n_; }
  T& operator[](size_t i) { return p_[i]; }
  const T& operator[](size_t i) const { return p_[i]; }
  std::span<T> span() { return {p_, n_}; }
  std::span<const T> span() const { return {p_, n_}; }
  T* begin() { return p_; }
  T* end() { return p_ + n_; }
  const T* begin() const { return p_; }
  const T* end() const { return p_ + n_; }

 private:
  T* p_ = nullptr;
  size_t n_ = 0;
};

}  // namespace qs
