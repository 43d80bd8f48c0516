// Building blocks of the training paths (forward with saved activations + backward), templated
// on the scalar type: float for training, double for the finite-difference gradient checks.
//
// mm() is every matrix product of training. For float it follows the run's precision:
//   F32  plain F32 GEMM
//   BF16 inputs rounded to BF16, F32 accumulation (AMX / AVX-512-BF16 where present)
//   FP8  DeepSeek-V3's recipe, emulated exactly: each input quantized to E4M3 with one F32
//        scale per tile along the contraction dimension — 1x128 tiles for activations and
//        gradients, 128x128 blocks for weights — then multiplied with F32 accumulation.
// Per product the caller picks a tier: Prec::Run (the run's precision: linear layers),
// Prec::High (attention core and LM head: F32 in an F32 run, else BF16 — "higher precision" as
// DeepSeek-V3 keeps them), Prec::Full (router: always F32). Norms and softmax are F32 code.
// For double every product is exact double arithmetic.
#pragma once
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace qs {

enum class TrainPrecision { F32, BF16, FP8 };
const char* train_precision_name(TrainPrecision p);
TrainPrecision parse_train_precision(const std::string& s);  // "fp32"/"f32", "bf16", "fp8"

// What an operand of a product is:
//   Act     an activation or gradient used by this product (rounded / quantized here); FP8
//           tiles it per 1x128 along K
//   Weight  a parameter matrix: the per-step WeightCache holds its BF16 / FP8 copy; FP8 tiles
//           it per 128x128 block
//   Saved   an activation that stays unchanged for the rest of the step (a forward input the
//           backward uses again): in a BF16 run rounded once, at its first product, and reused
//           (ActivationCache); otherwise like Act
enum class Operand { Act, Weight, Saved };

// Low-precision copies of the weights for one training step: weights do not change between
// the forward and backward products of a step, so each is rounded to BF16 / fake-quantized to
// FP8 once per step rather than at every product. invalidate() after every optimizer update.
class WeightCache {
 public:
  void invalidate() { ++version_; }
  // w[rows, cols] (row stride ld) as BF16, contiguous [rows, cols].
  const uint16_t* bf16(const float* w, int64_t rows, int64_t cols, int64_t ld);
  // w with each 128x128 block quantized to E4M3 and scaled back, contiguous [rows, cols].
  const float* fp8(const float* w, int64_t rows, int64_t cols, int64_t ld);

 private:
  struct Entry {
    uint64_t version = 0;
    int64_t rows = 0, cols = 0;
    std::vector<uint16_t> h;
    std::vector<float> q;
  };
  Entry& entry(const float* w, int64_t rows, int64_t cols);
  std::mutex mu_;
  std::unordered_map<const float*, Entry> map_;
  uint64_t version_ = 1;
};

// BF16 copies of the saved activations of one training step (Operand::Saved), keyed by
// address and shape; invalidate() at every step. The copies' memory is kept from step to step.
class ActivationCache {
 public:
  void invalidate() { ++version_; }
  // x[rows, cols] (row stride ld) as BF16, contiguous [rows, cols].
  const uint16_t* bf16(const float* x, int64_t rows, int64_t cols, int64_t ld);

 private:
  struct Entry {
    uint64_t version = 0;
    int64_t rows = 0, cols = 0, ld = 0;
    std::vector<uint16_t> h;
  };
  std::mutex mu_;
  std::unordered_map<const float*, Entry> map_;
  uint64_t version_ = 1;
};

struct MatmulPolicy {
  TrainPrecision precision = TrainPrecision::F32;
  WeightCache* cache = nullptr;      // optional (Operand::Weight inputs)
  ActivationCache* acts = nullptr;   // optional (Operand::Saved inputs)
};

enum class Prec { Run, High, Full };

// The precision a product of `tier` runs at under `pol` (Prec::Full: F32; Prec::High: F32 in an
// F32 run, else BF16; Prec::Run: the run's).
TrainPrecision product_precision(const MatmulPolicy& pol, Prec tier);

// C[M,N] = alpha·op(A)·op(B) + beta·C, row-major, op(X) = X or Xᵀ (see gemm.h).
template <typename T>
void mm(const MatmulPolicy& pol, bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A,
        int64_t lda, Operand ka, const T* B, int64_t ldb, Operand kb, T beta, T* C, int64_t ldc,
        Prec tier = Prec::Run);

// Simple linear-layer forms over contiguous rows (W is [out, in] row-major):
//   y[n, out] (+)= x[n, in] · Wᵀ                 linear_fwd
//   dx[n, in] (+)= dy[n, out] · W                linear_bwd_input
//   dW[out, in] += dy[n, out]ᵀ · x[n, in]        linear_bwd_weight
// `xk` says what x is (Operand::Saved for the forward inputs the backward uses again).
template <typename T>
void linear_fwd(const MatmulPolicy& p, const T* x, int64_t n, int64_t in, const T* W, int64_t out, T* y,
                bool accumulate = false, Prec tier = Prec::Run, Operand xk = Operand::Act);
template <typename T>
void linear_bwd_input(const MatmulPolicy& p, const T* dy, int64_t n, int64_t out, const T* W, int64_t in, T* dx,
                      bool accumulate, Prec tier = Prec::Run);
template <typename T>
void linear_bwd_weight(const MatmulPolicy& p, const T* dy, int64_t n, int64_t out, const T* x, int64_t in, T* dW,
                       Prec tier = Prec::Run, Operand xk = Operand::Act);
// Both backward products of one linear layer, dx (+)= dy·W and dW += dyᵀ·x, as the two calls
// above would compute them; in a BF16 run dy is rounded once for both. dx may be null (no
// input gradient wanted).
template <typename T>
void linear_bwd(const MatmulPolicy& p, const T* dy, int64_t n, int64_t out, const T* W, const T* x, int64_t in, T* dx,
                bool accumulate, T* dW, Prec tier = Prec::Run, Operand xk = Operand::Act);

// RMSNorm over n rows of dim: y = x · r · w, r = (mean(x²) + eps)^-½; stores r per row. Rows
// of x and y are ldx / ldy apart (0: dim).
template <typename T>
void rmsnorm_fwd(const T* x, const T* w, T eps, int64_t n, int64_t dim, T* y, T* rstd, int64_t ldx = 0,
                 int64_t ldy = 0);
// dx (+)= ∂/∂x, dw += ∂/∂w, given dy (rows ldx, lddy, lddx apart; 0: dim).
template <typename T>
void rmsnorm_bwd(const T* x, const T* w, const T* rstd, const T* dy, int64_t n, int64_t dim, T* dx, T* dw,
                 bool accumulate, int64_t ldx = 0, int64_t lddy = 0, int64_t lddx = 0);

// out = a + b over n elements (threads split it; vectorized for float).
template <typename T>
void residual_add(const T* a, const T* b, T* out, int64_t n);

// h = silu(g)·u elementwise, and its backward (dg, du overwritten).
template <typename T>
void swiglu_fwd(const T* g, const T* u, int64_t n, T* h);
template <typename T>
void swiglu_bwd(const T* g, const T* u, const T* dh, int64_t n, T* dg, T* du);

// The rows of one training step: B sequences of S positions, N = B·S rows in sequence-major
// order (row b·S + s is position s of sequence b; each sequence is causal from position 0).
// `len[b]` positions of sequence b are real tokens, the rest is padding at its end: padding
// takes part in the products (it cannot influence the real positions before it) but is left
// out of the MoE expert load and the balance loss. len = nullptr: every position is real.
struct TrainShape {
  int64_t B = 0, S = 0;
  const int32_t* len = nullptr;  // [B] in [0, S], or nullptr
  int64_t N() const { return B * S; }
  int64_t length(int64_t b) const { return len ? int64_t(len[b]) : S; }
  bool real(int64_t row) const { return !len || row % S < int64_t(len[row / S]); }
};

// Elements one TrainArena::alloc(n) takes (64-byte aligned blocks).
inline size_t arena_rounded(size_t n) { return (n + 15) / 16 * 16; }

// The planning side of a TrainArena: each module's *_train_plan() adds the buffers its forward
// and backward allocate, in the sizes they allocate them — the one source the arena of a
// training step is sized from (train/train_step.cpp).
struct ArenaPlan {
  size_t elems = 0;
  void add(size_t n, size_t times = 1) { elems += times * arena_rounded(n); }
};

// A bump allocator over one planned buffer (activations of a training step).
template <typename T>
class TrainArena {
 public:
  void reserve(size_t n);  // capacity in elements; allocations beyond it are a qs::Error
  // 64-byte aligned; zero = false for outputs written in full (NaN-filled when the environment
  // sets QIUSUO_ARENA_POISON=1, so that a missed write shows up in the gradient checks).
  T* alloc(size_t n, bool zero = true);
  void reset() { used_ = 0; }
  size_t used() const { return used_; }
  size_t peak() const { return peak_; }
  size_t capacity() const { return buf_.size(); }

 private:
  std::vector<T> buf_;
  size_t used_ = 0, peak_ = 0;
  bool poison_ = false;  // QIUSUO_ARENA_POISON=1: fill unzeroed allocations with NaN (tests)
};

}  // namespace qs
