#include "qiusuo/model/train_ops.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <type_traits>

#include "qiusuo/core/buffer.h"
#include "qiusuo/core/dtype.h"
#include "qiusuo/core/error.h"
#include "qiusuo/core/parallel.h"
#include "qiusuo/core/profile.h"
#include "qiusuo/kernels/convert.h"
#include "qiusuo/kernels/gemm.h"
#include "qiusuo/kernels/train_vec.h"
#include "qiusuo/kernels/vec_ops.h"

namespace qs {

const char* train_precision_name(TrainPrecision p) {
  switch (p) {
    case TrainPrecision::F32: return "fp32";
    case TrainPrecision::BF16: return "bf16";
    case TrainPrecision::FP8: return "fp8";
  }
  return "?";
}

TrainPrecision parse_train_precision(const std::string& s) {
  if (s == "fp32" || s == "f32") return TrainPrecision::F32;
  if (s == "bf16") return TrainPrecision::BF16;
  if (s == "fp8") return TrainPrecision::FP8;
  fail("precision must be fp32, bf16 or fp8, got '", s, "'");
}

namespace {

// Copies op(X) — rows x cols as seen by the product — into a dense row-major buffer.
// X is [rows, cols] (ld) when !t, else [cols, rows].
void gather(const float* X, int64_t ld, bool t, int64_t rows, int64_t cols, float* out) {
  if (!t) {
    for (int64_t r = 0; r < rows; ++r) std::memcpy(out + r * cols, X + r * ld, size_t(cols) * sizeof(float));
  } else {
    for (int64_t c = 0; c < cols; ++c)
      for (int64_t r = 0; r < rows; ++r) out[r * cols + c] = X[c * ld + r];
  }
}

// FP8 fake quantization in place of a dense [rows, K] operand (K = contraction): one scale per
// (tile_rows x 128) tile, amax/448, values rounded to E4M3 and scaled back (the scaled product
// the FP8 GEMM forms, up to F32 rounding of code·scale).
void fp8_quantize_tiles(float* X, int64_t rows, int64_t K, int64_t tile_rows) {
  const int64_t kt = (K + 127) / 128, rt = (rows + tile_rows - 1) / tile_rows;
  parallel_for(rt, 1, [&](int64_t b, int64_t e) {
    for (int64_t bi = b; bi < e; ++bi)
      for (int64_t bj = 0; bj < kt; ++bj) {
        const int64_t r1 = std::min(rows, (bi + 1) * tile_rows), c1 = std::min(K, (bj + 1) * 128);
        float amax = 0;
        for (int64_t r = bi * tile_rows; r < r1; ++r)
          for (int64_t c = bj * 128; c < c1; ++c) amax = std::max(amax, std::fabs(X[r * K + c]));
        if (amax == 0) continue;
        const float s = amax / 448.0f, inv = 448.0f / amax;
        for (int64_t r = bi * tile_rows; r < r1; ++r)
          for (int64_t c = bj * 128; c < c1; ++c) X[r * K + c] = fp8e4m3_to_f32(f32_to_fp8e4m3(X[r * K + c] * inv)) * s;
      }
  });
}

thread_local std::vector<float> tl_a, tl_b;
thread_local std::vector<uint16_t> tl_ha, tl_hb, tl_hd;

// X[rows, cols] (row stride ld) rounded to BF16 into out[rows, cols], rows split over threads.
void to_bf16_rows(const float* X, int64_t rows, int64_t cols, int64_t ld, std::vector<uint16_t>& out) {
  out.resize(size_t(rows * cols));
  uint16_t* o = out.data();
  parallel_for(rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, cols)), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) f32_to_bf16(X + r * ld, o + r * cols, cols);
  });
}

// The precision one product runs at: the run's, lowered by the caller's tier.
TrainPrecision effective_precision(const MatmulPolicy& pol, Prec tier) {
  TrainPrecision p = pol.precision;
  if (tier == Prec::Full) p = TrainPrecision::F32;
  if (tier == Prec::High && p == TrainPrecision::FP8) p = TrainPrecision::BF16;
  return p;
}

}  // namespace

TrainPrecision product_precision(const MatmulPolicy& pol, Prec tier) { return effective_precision(pol, tier); }

namespace {

// A weight operand [rows, cols] (ld) as BF16: the per-step cache when there is one.
const uint16_t* weight_bf16(const MatmulPolicy& pol, const float* W, int64_t rows, int64_t cols, int64_t ld,
                            std::vector<uint16_t>& scratch) {
  if (pol.cache) return pol.cache->bf16(W, rows, cols, ld);
  to_bf16_rows(W, rows, cols, ld, scratch);
  return scratch.data();
}

// Any operand [rows, cols] (ld) as BF16, by its kind.
const uint16_t* operand_bf16(const MatmulPolicy& pol, Operand kind, const float* X, int64_t rows, int64_t cols,
                             int64_t ld, std::vector<uint16_t>& scratch) {
  if (kind == Operand::Weight) return weight_bf16(pol, X, rows, cols, ld, scratch);
  if (kind == Operand::Saved && pol.acts) return pol.acts->bf16(X, rows, cols, ld);
  to_bf16_rows(X, rows, cols, ld, scratch);
  return scratch.data();
}

}  // namespace

WeightCache::Entry& WeightCache::entry(const float* w, int64_t rows, int64_t cols) {
  Entry& e = map_[w];
  if (e.rows != rows || e.cols != cols) {
    e = Entry{};
    e.rows = rows;
    e.cols = cols;
  }
  return e;
}

const uint16_t* WeightCache::bf16(const float* w, int64_t rows, int64_t cols, int64_t ld) {
  std::lock_guard<std::mutex> g(mu_);
  Entry& e = entry(w, rows, cols);
  if (e.version != version_ || e.h.empty()) {
    e.h.resize(size_t(rows * cols));
    parallel_for(rows, 16, [&](int64_t b, int64_t end) {
      for (int64_t r = b; r < end; ++r) f32_to_bf16(w + r * ld, e.h.data() + r * cols, cols);
    });
    e.version = version_;
  }
  return e.h.data();
}

const uint16_t* ActivationCache::bf16(const float* x, int64_t rows, int64_t cols, int64_t ld) {
  std::lock_guard<std::mutex> g(mu_);
  Entry& e = map_[x];
  if (e.version != version_ || e.rows != rows || e.cols != cols || e.ld != ld) {
    e.h.resize(size_t(rows * cols));
    parallel_for(rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, cols)), [&](int64_t b, int64_t end) {
      for (int64_t r = b; r < end; ++r) f32_to_bf16(x + r * ld, e.h.data() + r * cols, cols);
    });
    e.version = version_;
    e.rows = rows;
    e.cols = cols;
    e.ld = ld;
  }
  return e.h.data();
}

const float* WeightCache::fp8(const float* w, int64_t rows, int64_t cols, int64_t ld) {
  std::lock_guard<std::mutex> g(mu_);
  Entry& e = entry(w, rows, cols);
  if (e.version != version_ || e.q.empty()) {
    e.q.resize(size_t(rows * cols));
    gather(w, ld, false, rows, cols, e.q.data());
    fp8_quantize_tiles(e.q.data(), rows, cols, 128);
    e.version = version_;
  }
  return e.q.data();
}

template <>
void mm<float>(const MatmulPolicy& pol, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
               int64_t lda, Operand ka, const float* B, int64_t ldb, Operand kb, float beta, float* C, int64_t ldc,
               Prec tier) {
  if (M == 0 || N == 0) return;
  QS_PROFILE("mm");
  const TrainPrecision p = effective_precision(pol, tier);
  if (p == TrainPrecision::F32 || K == 0) {
    gemm_f32(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  if (p == TrainPrecision::BF16) {
    // Round each operand to BF16 in its stored layout; the GEMM handles the transposes.
    const int64_t ar = ta ? K : M, ac = ta ? M : K, br = tb ? N : K, bc = tb ? K : N;
    const uint16_t* ha = operand_bf16(pol, ka, A, ar, ac, lda, tl_ha);
    const uint16_t* hb = operand_bf16(pol, kb, B, br, bc, ldb, tl_hb);
    gemm_bf16(ta, tb, M, N, K, alpha, ha, ac, hb, bc, beta, C, ldc);
    return;
  }
  // FP8: A as [M, K] tiles along K; B as op(B)ᵀ = [N, K] so its tiles also run along K.
  tl_a.resize(size_t(M * K));
  tl_b.resize(size_t(N * K));
  gather(A, lda, ta, M, K, tl_a.data());
  fp8_quantize_tiles(tl_a.data(), M, K, ka == Operand::Weight ? 128 : 1);
  if (kb == Operand::Weight && pol.cache) {
    // 128x128 blocks quantize the same in either orientation: transpose the cached copy.
    const int64_t br = tb ? N : K, bc = tb ? K : N;
    gather(pol.cache->fp8(B, br, bc, ldb), bc, !tb, N, K, tl_b.data());
  } else {
    gather(B, ldb, !tb, N, K, tl_b.data());
    fp8_quantize_tiles(tl_b.data(), N, K, kb == Operand::Weight ? 128 : 1);
  }
  gemm_f32(false, true, M, N, K, alpha, tl_a.data(), K, tl_b.data(), K, beta, C, ldc);
}

template <>
void mm<double>(const MatmulPolicy&, bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha, const double* A,
                int64_t lda, Operand, const double* B, int64_t ldb, Operand, double beta, double* C, int64_t ldc,
                Prec) {
  // Threads only for products worth them (the gradient checks run thousands of tiny ones).
  const int64_t grain = std::max<int64_t>(4, (int64_t(1) << 16) / std::max<int64_t>(1, N * K));
  parallel_for(M, grain, [&](int64_t b, int64_t e) {
    std::vector<double> acc(N);
    for (int64_t i = b; i < e; ++i) {
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t k = 0; k < K; ++k) {
        const double a = ta ? A[k * lda + i] : A[i * lda + k];
        if (a == 0) continue;
        if (tb) for (int64_t j = 0; j < N; ++j) acc[j] += a * B[j * ldb + k];
        else for (int64_t j = 0; j < N; ++j) acc[j] += a * B[k * ldb + j];
      }
      for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = alpha * acc[j] + (beta == 0 ? 0.0 : beta * C[i * ldc + j]);
    }
  });
}

template <typename T>
void linear_fwd(const MatmulPolicy& p, const T* x, int64_t n, int64_t in, const T* W, int64_t out, T* y,
                bool accumulate, Prec tier, Operand xk) {
  mm<T>(p, false, true, n, out, in, T(1), x, in, xk, W, in, Operand::Weight, accumulate ? T(1) : T(0), y, out, tier);
}
template <typename T>
void linear_bwd_input(const MatmulPolicy& p, const T* dy, int64_t n, int64_t out, const T* W, int64_t in, T* dx,
                      bool accumulate, Prec tier) {
  mm<T>(p, false, false, n, in, out, T(1), dy, out, Operand::Act, W, in, Operand::Weight, accumulate ? T(1) : T(0), dx, in, tier);
}
template <typename T>
void linear_bwd_weight(const MatmulPolicy& p, const T* dy, int64_t n, int64_t out, const T* x, int64_t in, T* dW,
                       Prec tier, Operand xk) {
  mm<T>(p, true, false, out, in, n, T(1), dy, out, Operand::Act, x, in, xk, T(1), dW, in, tier);
}

template <typename T>
void linear_bwd(const MatmulPolicy& p, const T* dy, int64_t n, int64_t out, const T* W, const T* x, int64_t in, T* dx,
                bool accumulate, T* dW, Prec tier, Operand xk) {
  if constexpr (std::is_same_v<T, float>) {
    if (n > 0 && out > 0 && in > 0 && effective_precision(p, tier) == TrainPrecision::BF16) {
      // dy feeds both products in the same stored layout: round it to BF16 once.
      QS_PROFILE("mm.bf16_bwd");
      to_bf16_rows(dy, n, out, out, tl_hd);
      if (dx) {
        const uint16_t* hw = weight_bf16(p, W, out, in, in, tl_hb);
        gemm_bf16(false, false, n, in, out, 1.0f, tl_hd.data(), out, hw, in, accumulate ? 1.0f : 0.0f, dx, in);
      }
      const uint16_t* hx = operand_bf16(p, xk, x, n, in, in, tl_ha);
      gemm_bf16(true, false, out, in, n, 1.0f, tl_hd.data(), out, hx, in, 1.0f, dW, in);
      return;
    }
  }
  if (dx) linear_bwd_input<T>(p, dy, n, out, W, in, dx, accumulate, tier);
  linear_bwd_weight<T>(p, dy, n, out, x, in, dW, tier, xk);
}

template <typename T>
void rmsnorm_fwd(const T* x, const T* w, T eps, int64_t n, int64_t dim, T* y, T* rstd, int64_t ldx, int64_t ldy) {
  if (ldx == 0) ldx = dim;
  if (ldy == 0) ldy = dim;
  parallel_for(n, 16, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const T* xi = x + i * ldx;
      T* yi = y + i * ldy;
      if constexpr (std::is_same_v<T, float>) {
        rstd[i] = rmsnorm_row(xi, w, eps, dim, yi);
        continue;
      }
      T ss = 0;
      for (int64_t j = 0; j < dim; ++j) ss += xi[j] * xi[j];
      const T r = T(1) / std::sqrt(ss / T(dim) + eps);
      rstd[i] = r;
      for (int64_t j = 0; j < dim; ++j) yi[j] = xi[j] * r * w[j];
    }
  });
}

template <typename T>
void rmsnorm_bwd(const T* x, const T* w, const T* rstd, const T* dy, int64_t n, int64_t dim, T* dx, T* dw,
                 bool accumulate, int64_t ldx, int64_t lddy, int64_t lddx) {
  if (ldx == 0) ldx = dim;
  if (lddy == 0) lddy = dim;
  if (lddx == 0) lddx = dim;
  // dx = r·(w⊙dy) − x·r³·⟨x, w⊙dy⟩/dim ; dw = Σ_rows x·r⊙dy (reduced per chunk, then summed in order)
  constexpr int kMaxChunks = 64;
  const int64_t chunks = std::min<int64_t>({int64_t(num_threads()), kMaxChunks, std::max<int64_t>(1, n / 16)});
  thread_local std::vector<T> tl_part;
  std::vector<T>& part = tl_part;  // the caller's: worker threads write into it
  part.assign(size_t(chunks * dim), T(0));
  parallel_for(chunks, 1, [&](int64_t cb, int64_t ce) {
    for (int64_t c = cb; c < ce; ++c) {
      T* pw = part.data() + c * dim;
      for (int64_t i = n * c / chunks; i < n * (c + 1) / chunks; ++i) {
        const T* xi = x + i * ldx;
        const T* gi = dy + i * lddy;
        T* di = dx + i * lddx;
        const T r = rstd[i];
        if constexpr (std::is_same_v<T, float>) {
          rmsnorm_row_backward(xi, w, r, gi, dim, di, pw, accumulate);
          continue;
        }
        T dot = 0;
        for (int64_t j = 0; j < dim; ++j) dot += xi[j] * w[j] * gi[j];
        const T k = r * r * r * dot / T(dim);
        for (int64_t j = 0; j < dim; ++j) {
          const T v = r * w[j] * gi[j] - xi[j] * k;
          di[j] = accumulate ? di[j] + v : v;
          pw[j] += xi[j] * r * gi[j];
        }
      }
    }
  });
  for (int64_t c = 0; c < chunks; ++c)
    for (int64_t j = 0; j < dim; ++j) dw[j] += part[size_t(c * dim + j)];
}

template <typename T>
void residual_add(const T* a, const T* b, T* out, int64_t n) {
  parallel_for(n, 1 << 14, [&](int64_t s, int64_t e) {
    if constexpr (std::is_same_v<T, float>) {
      add(a + s, b + s, out + s, e - s);
    } else {
      for (int64_t i = s; i < e; ++i) out[i] = a[i] + b[i];
    }
  });
}

template <typename T>
void swiglu_fwd(const T* g, const T* u, int64_t n, T* h) {
  parallel_for(n, 4096, [&](int64_t b, int64_t e) {
    if constexpr (std::is_same_v<T, float>) {
      silu_mul(g + b, u + b, h + b, e - b);
    } else {
      for (int64_t i = b; i < e; ++i) h[i] = g[i] / (T(1) + std::exp(-g[i])) * u[i];
    }
  });
}

template <typename T>
void swiglu_bwd(const T* g, const T* u, const T* dh, int64_t n, T* dg, T* du) {
  parallel_for(n, 4096, [&](int64_t b, int64_t e) {
    if constexpr (std::is_same_v<T, float>) {
      silu_mul_backward(g + b, u + b, dh + b, dg + b, du + b, e - b);
      return;
    }
    for (int64_t i = b; i < e; ++i) {
      const T s = T(1) / (T(1) + std::exp(-g[i]));
      const T silu = g[i] * s;
      du[i] = dh[i] * silu;
      dg[i] = dh[i] * u[i] * s * (T(1) + g[i] * (T(1) - s));
    }
  });
}

template <typename T>
void TrainArena<T>::reserve(size_t n) {
  buf_.clear();
  buf_.shrink_to_fit();
  buf_.reserve(n);
  advise_huge_pages(buf_.data(), n * sizeof(T));
  buf_.assign(n, T(0));
  used_ = 0;
  const char* e = std::getenv("QIUSUO_ARENA_POISON");
  poison_ = e && *e && *e != '0';
}

template <typename T>
T* TrainArena<T>::alloc(size_t n, bool zero) {
  const size_t a = arena_rounded(n);
  if (used_ + a > buf_.size())
    fail(ErrorKind::Internal, "training arena overflow: planned ", buf_.size(), " elements, the step needs more (",
         used_ + a, "); the plan of some module misses a buffer");
  T* p = buf_.data() + used_;
  if (zero) std::fill(p, p + n, T(0));
  else if (poison_) std::fill(p, p + n, std::numeric_limits<T>::quiet_NaN());
  used_ += a;
  peak_ = std::max(peak_, used_);
  return p;
}

#define QS_INSTANTIATE(T)                                                                                        \
  template void linear_fwd<T>(const MatmulPolicy&, const T*, int64_t, int64_t, const T*, int64_t, T*, bool, Prec,  \
                              Operand);                                                                          \
  template void linear_bwd_input<T>(const MatmulPolicy&, const T*, int64_t, int64_t, const T*, int64_t, T*, bool,  \
                                    Prec);                                                                       \
  template void linear_bwd_weight<T>(const MatmulPolicy&, const T*, int64_t, int64_t, const T*, int64_t, T*, Prec, \
                                     Operand);                                                                   \
  template void linear_bwd<T>(const MatmulPolicy&, const T*, int64_t, int64_t, const T*, const T*, int64_t, T*, bool, \
                              T*, Prec, Operand);                                                                \
  template void rmsnorm_fwd<T>(const T*, const T*, T, int64_t, int64_t, T*, T*, int64_t, int64_t);             \
  template void rmsnorm_bwd<T>(const T*, const T*, const T*, const T*, int64_t, int64_t, T*, T*, bool, int64_t,  \
                               int64_t, int64_t);                                                                \
  template void residual_add<T>(const T*, const T*, T*, int64_t);                                               \
  template void swiglu_fwd<T>(const T*, const T*, int64_t, T*);                                                  \
  template void swiglu_bwd<T>(const T*, const T*, const T*, int64_t, T*, T*);                                    \
  template class TrainArena<T>;
QS_INSTANTIATE(float)
QS_INSTANTIATE(double)

}  // namespace qs
