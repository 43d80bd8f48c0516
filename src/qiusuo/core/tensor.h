// Tensor views: a dtype, a shape and a pointer into memory owned by someone else (an mmapped
// checkpoint, a flat parameter buffer, an arena). Row-major, contiguous.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "qiusuo/core/dtype.h"

namespace qs {

using Shape = std::vector<int64_t>;

std::string shape_str(const Shape& s);  // "[2, 3]"
int64_t shape_numel(const Shape& s);

struct TensorView {
  DType dtype = DType::F32;
  Shape shape;
  const void* data = nullptr;
  size_t nbytes = 0;

  int64_t numel() const { return shape_numel(shape); }
  int64_t dim(int i) const { return shape[i < 0 ? shape.size() + i : i]; }
  template <typename T> const T* as() const { return static_cast<const T*>(data); }
};

}  // namespace qs
