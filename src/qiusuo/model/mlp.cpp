#include "qiusuo/model/mlp.h"

#include "qiusuo/kernels/vec_ops.h"

namespace qs {

void mlp_forward(const MlpWeights& w, const float* x, int64_t T, float* out, Compute compute, Arena& arena) {
  const int64_t I = w.gate.rows;
  float* g = arena.alloc(size_t(T * I));  // [T, I]
  float* u = arena.alloc(size_t(T * I));
  linear(x, T, w.gate, g, compute);
  linear(x, T, w.up, u, compute);
  silu_mul(g, u, g, T * I);
  linear(g, T, w.down, out, compute);
}

}  // namespace qs
