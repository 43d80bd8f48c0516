// A bump allocator for per-step scratch: alloc() hands out 64-byte-aligned F32 spans that stay
// valid until reset(). After a step that needed several chunks, reset() merges them into one,
// so steady state is a single chunk and no allocation at all.
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
    if (chunks_.empty() || used_ + n > chunks_.back().size()) {
      const size_t last = chunks_.empty() ? 0 : chunks_.back().size();
      chunks_.emplace_back(std::max(n, std::max(last * 2, size_t(1) << 16)), false);
      used_ = 0;
    }
    float* p = chunks_.back().data() + used_;
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
    used_ = 0;
    total_ = 0;
  }
  size_t peak_floats() const { return peak_; }

 private:
  std::vector<Buffer<float>> chunks_;
  size_t used_ = 0, total_ = 0, peak_ = 0;
};

}  // namespace qs
