// Aligned, owned memory. Buffer<T> is a 64-byte-aligned array that is never copied implicitly.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <span>
#include <utility>
#include <vector>

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

// Long-lived allocations packed into slabs of 2 MiB-aligned memory advised for transparent huge
// pages before the first touch. A model's thousands of expert matrices (1-3 MB each) held in
// separate buffers each contain at most one aligned 2 MiB range, so most of their bytes sat in
// 4 KiB pages (4.6 of the 16.6 GB of a full-depth V2-Lite FP8 model were in huge pages, 0.5 of
// INT4's 8.7); decode reads a few experts out of gigabytes each step, and the TLB misses of 4 KiB
// pages slow the weight stream (Zen 5, 1408x2048 FP8 matrices drawn at random: 15% slower from a
// 5 GB pool than from a 200 MB one; huge pages +9-12% on both). Batch-1 decode from the arena:
// full-depth INT4 +2-4%, 6-layer FP8 +8% (two copies of a model in one process, alternated).
// Whether the kernel grants huge pages depends on fragmentation: 10.6-13.4 of the FP8 16.3 GB.
class HugePageArena {
 public:
  static constexpr size_t kHuge = size_t(2) << 20;
  explicit HugePageArena(size_t slab_bytes = size_t(256) << 20) : slab_bytes_(slab_bytes) {}
  HugePageArena(HugePageArena&&) noexcept = default;
  HugePageArena& operator=(HugePageArena&&) noexcept = default;

  // `bytes` of uninitialized memory, 64-byte aligned, valid as long as the arena. Allocations
  // larger than a slab get a slab of their own.
  void* alloc(size_t bytes);
  // Bytes handed out by alloc (what the allocations hold, not the slabs' reserved size).
  size_t bytes() const { return used_; }

 private:
  size_t slab_bytes_;
  std::vector<Buffer<uint8_t>> slabs_;
  uint8_t* cur_ = nullptr;
  size_t left_ = 0, used_ = 0;
};

}  // namespace qs
