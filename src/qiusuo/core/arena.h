// A bump allocator for per-step scratch: alloc() hands out 64-byte-aligned F32 spans that stay
// valid until reset() or until the scope they were taken in is rewound. After a step that needed
// several chunks, reset() merges them into one of the step's peak size, so steady state is a
// single chunk and no allocation at all.
//
// Scopes: `Arena::Scope s(arena);` gives back everything allocated after it when it ends, so a
// layer's scratch is reused by the next layer: a step's peak is then one layer's scratch, not
// the sum over all layers (a 27-layer model's 1024-token prefill needed ~5 GB before).
#pragma once
#include <algorithm>
#include <cstddef>
#include <vector>

#include "qiusuo/core/buffer.h"

namespace qs {

class Arena {
 public:
  float* alloc(size_t n) {
    n = (n + 15) / 16 * 16;
    // The current chunk, else a later one (kept from before a rewind) that has room, else a new
    // one appended.
    while (cur_ < chunks_.size() && used_ + n > chunks_[cur_].size()) {
      ++cur_;
      used_ = 0;
    }
    if (cur_ == chunks_.size()) {
      const size_t last = chunks_.empty() ? 0 : chunks_.back().size();
      chunks_.emplace_back(std::max(n, std::max(last * 2, size_t(1) << 16)), false);
      used_ = 0;
    }
    float* p = chunks_[cur_].data() + used_;
    used_ += n;
    total_ += n;
    peak_ = std::max(peak_, total_);
    return p;
  }
  float* alloc_zero(size_t n) {
    float* p = alloc(n);
    std::fill(p, p + n, 0.0f);
    return p;
  }
  void reset() {
    if (chunks_.size() > 1) {
      chunks_.clear();
      chunks_.emplace_back(peak_, false);
    }
    cur_ = 0;
    used_ = 0;
    total_ = 0;
  }
  size_t peak_floats() const { return peak_; }

  struct Mark {
    size_t cur, used, total;
  };
  Mark mark() const { return {cur_, used_, total_}; }
  // Everything allocated since `m` is free again (chunks are kept for the next allocations).
  void rewind(const Mark& m) {
    cur_ = m.cur;
    used_ = m.used;
    total_ = m.total;
  }
  class Scope {
   public:
    explicit Scope(Arena& a) : a_(a), m_(a.mark()) {}
    ~Scope() { a_.rewind(m_); }
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    Arena& a_;
    Mark m_;
  };

 private:
  std::vector<Buffer<float>> chunks_;
  size_t cur_ = 0, used_ = 0, total_ = 0, peak_ = 0;
};

}  // namespace qs
