// linear / gemv / WeightMatrix (see linear.h).
//
// linear, Compute::F32: the streaming gemv over blocks of kF32BlockRows rows of x (x packed
// once per block stays in L2; the weights are read once per block). gemv: output rows are split
// in chunks of contiguous rows handed out dynamically to the OpenMP threads; each runs the best
// ISA's streaming kernel (cpu/gemv_<isa>.cpp) on its chunks.
//
// linear, Compute::BF16: x rounded to BF16 once (xb, rows padded to a multiple of 64 with
// zeros), then the ISA's BF16 kernel (cpu/linear_bf16_<isa>.cpp) on work items of (block of x
// rows, chunk of output rows) handed out dynamically: decode-sized M takes chunks of 64 KB-1 MB
// of weights (streamed once); larger M takes L2-sized panels (~256 KB as BF16) that every x
// tile of the block sweeps. Every output element is computed whole by one kernel call with the
// kernel's fixed arithmetic, so the split never changes a bit.
//
// cpu::linear_gemm: the former GEMM path (oneDNN, BF16-rounded activations, M padded to
// buckets). Not batch-invariant, so linear() no longer uses it; kept as the peer that
// bench/kernels_bench.cpp measures the BF16 kernel against.
#include "qiusuo/kernels/linear.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "qiusuo/core/buffer.h"
#include "qiusuo/core/error.h"
#include "qiusuo/core/parallel.h"
#include "qiusuo/kernels/cpu/cpu_kernels.h"
#include "qiusuo/kernels/gemm.h"
#include "qiusuo/kernels/vec_ops.h"

namespace qs {
namespace {
constexpr size_t kPanelBytes = size_t(8) << 20;
constexpr int64_t kF32BlockRows = 64;           // rows of x per gemv call (F32 compute)
constexpr int64_t kBf16StreamMaxM = 4;          // up to this M the weights stream (decode)
constexpr size_t kBf16PanelBytes = 256 << 10;   // larger M: output rows per item, as BF16

void check_weights(const WeightMatrix& W) {
  QS_CHECK(W.dtype == DType::F32 || W.dtype == DType::BF16 || W.dtype == DType::F16 ||
               W.dtype == DType::F8_E4M3 || W.is_int(),
           "linear: weight dtype ", dtype_name(W.dtype), " is not F32/BF16/F16/F8_E4M3/I8/I4");
  QS_CHECK(W.rows >= 0 && W.cols >= 0, "linear: negative weight shape [", W.rows, ", ", W.cols, "]");
  QS_CHECK(W.data || W.rows * W.cols == 0, "linear: weight data is null");
  QS_CHECK(W.dtype != DType::F8_E4M3 || W.scale_inv || W.rows * W.cols == 0,
           "linear: F8_E4M3 weight without scale_inv");
  if (W.is_int())
    QS_CHECK(W.group_scales && W.group > 0 && W.group % 32 == 0 && W.cols % W.group == 0,
             "linear: ", dtype_name(W.dtype), " weight [", W.rows, ", ", W.cols, "] needs group scales and a group ",
             "size that is a multiple of 32 dividing the columns (group ", W.group, ")");
}

// Output rows per panel so that a dequantized panel holds about kPanelBytes.
int64_t panel_rows(const WeightMatrix& W, size_t elem_bytes) {
  const int64_t r = int64_t(kPanelBytes / (size_t(std::max<int64_t>(W.cols, 1)) * elem_bytes));
  return std::clamp<int64_t>(r / 64 * 64, 64, std::max<int64_t>(W.rows, 1));
}

// c[M, N] = a[M, K] · b[N, K]ᵀ
void gemm_t(int64_t M, int64_t N, int64_t K, const float* a, int64_t lda, const float* b, float* c,
            int64_t ldc) {
  gemm_f32(false, true, M, N, K, 1.0f, a, lda, b, K, 0.0f, c, ldc);
}
void gemm_t(int64_t M, int64_t N, int64_t K, const uint16_t* a, int64_t lda, const uint16_t* b,
            float* c, int64_t ldc) {
  gemm_bf16(false, true, M, N, K, 1.0f, a, lda, b, K, 0.0f, c, ldc);
}

// y[M, N] (ldy) = xq[Mb, K] (row stride ldq) · Wᵀ restricted to the first M rows; W [N, K] in
// the compute type T, in place (w != nullptr) or dequantized panel by panel with `fill`.
template <typename T, typename Fill>
void gemm_panels(const T* xq, int64_t ldq, int64_t M, int64_t Mb, int64_t K, int64_t N, const T* w,
                 int64_t np, Fill&& fill, float* y, int64_t ldy) {
  thread_local Buffer<T> panel;
  thread_local Buffer<float> ybuf;  // [Mb, nb] when Mb > M
  if (!w) panel.reserve(size_t(np * K));
  if (w && Mb == M) {  // one product over the whole matrix
    gemm_t(M, N, K, xq, ldq, w, y, ldy);
    return;
  }
  if (Mb > M) ybuf.reserve(size_t(Mb * np));
  for (int64_t n0 = 0; n0 < N; n0 += np) {
    const int64_t nb = std::min(np, N - n0);
    const T* wp = w ? w + n0 * K : panel.data();
    if (!w) fill(n0, nb, panel.data());
    if (Mb == M) {
      gemm_t(M, nb, K, xq, ldq, wp, y + n0, ldy);
    } else {
      gemm_t(Mb, nb, K, xq, ldq, wp, ybuf.data(), nb);
      for (int64_t m = 0; m < M; ++m)
        std::memcpy(y + m * ldy + n0, ybuf.data() + m * nb, size_t(nb) * sizeof(float));
    }
  }
}

}  // namespace

void cpu::linear_gemm(const float* x, int64_t ldx, int64_t M, const WeightMatrix& W, float* y,
                      int64_t ldy, Compute compute) {
  const cpu::Kernels& k = cpu::kernels();
  const int64_t K = W.cols, N = W.rows, Mb = cpu::linear_bucket_rows(M);
  if (K == 0) {
    for (int64_t m = 0; m < M; ++m) std::fill_n(y + m * ldy, N, 0.0f);
    return;
  }
  const int64_t xgrain = std::max<int64_t>(1, 16384 / std::max<int64_t>(K, 1));
  if (compute == Compute::F32) {
    // x as is when no padding is needed, else copied into [Mb, K] with zero rows.
    const float* xq = x;
    int64_t ldq = ldx;
    thread_local Buffer<float> xpad;
    if (Mb > M) {
      xpad.reserve(size_t(Mb * K));
      for (int64_t m = 0; m < M; ++m) std::memcpy(xpad.data() + m * K, x + m * ldx, size_t(K) * sizeof(float));
      std::memset(xpad.data() + M * K, 0, size_t((Mb - M) * K) * sizeof(float));
      xq = xpad.data();
      ldq = K;
    }
    const float* w = W.dtype == DType::F32 ? static_cast<const float*>(W.data) : nullptr;
    auto fill = [&](int64_t n0, int64_t nb, float* p) {
      parallel_for(nb, 16, [&](int64_t b, int64_t e) {
        cpu::dequant_rows_f32(k, W, n0 + b, n0 + e, p + b * K, K);
      });
    };
    gemm_panels(xq, ldq, M, Mb, K, N, w, panel_rows(W, sizeof(float)), fill, y, ldy);
  } else {
    thread_local Buffer<uint16_t> xb;  // [Mb, K] activations rounded to BF16, zero rows past M
    xb.reserve(size_t(Mb * K));
    uint16_t* xp = xb.data();
    parallel_for(M, xgrain, [&](int64_t b, int64_t e) {
      for (int64_t m = b; m < e; ++m) k.f32_to_bf16(x + m * ldx, xp + m * K, K);
    });
    std::memset(xp + M * K, 0, size_t((Mb - M) * K) * sizeof(uint16_t));
    const uint16_t* w = W.dtype == DType::BF16 ? static_cast<const uint16_t*>(W.data) : nullptr;
    auto fill = [&](int64_t n0, int64_t nb, uint16_t* p) {
      parallel_for(nb, 16, [&](int64_t b, int64_t e) {
        cpu::dequant_rows_bf16(k, W, n0 + b, n0 + e, p + b * K, K);
      });
    };
    gemm_panels(static_cast<const uint16_t*>(xp), K, M, Mb, K, N, w, panel_rows(W, sizeof(uint16_t)),
                fill, y, ldy);
  }
}

int64_t cpu::linear_bucket_rows(int64_t M) {
  if (M <= 64) return (M + 15) / 16 * 16;
  if (M <= 256) return (M + 31) / 32 * 32;
  if (M <= 1024) return (M + 127) / 128 * 128;
  return (M + 255) / 256 * 256;
}

size_t WeightMatrix::bytes() const {
  if (is_int()) {
    const size_t padded = size_t(int_tiles() * kIntTile);
    return padded * size_t(cols) / (dtype == DType::I8 ? 1 : 2) + padded * size_t(group ? cols / group : 0) * 2;
  }
  size_t b = size_t(rows) * size_t(cols) * dtype_size(dtype);
  if (dtype == DType::F8_E4M3) b += size_t((rows + kBlock - 1) / kBlock) * size_t(scale_cols()) * sizeof(float);
  return b;
}

void WeightMatrix::dequant_row(int64_t r, float* out) const { dequant_rows(r, r + 1, out); }

void WeightMatrix::dequant_rows(int64_t r0, int64_t r1, float* out) const {
  check_weights(*this);
  QS_CHECK(r0 >= 0 && r0 <= r1 && r1 <= rows, "dequant_rows: rows [", r0, ", ", r1, ") out of [0, ", rows, ")");
  cpu::dequant_rows_f32(cpu::kernels(), *this, r0, r1, out, cols);
}

namespace {
// Rows [r0, r0 + n) of W in F32, kRowsOf at a time, fn(i0, rows [nb, W.cols], nb) for each.
constexpr int64_t kRowsOf = 16;
template <typename Fn>
void rows_of(const cpu::Kernels& k, const WeightMatrix& W, int64_t r0, int64_t n, Fn&& fn) {
  if (W.dtype == DType::F32) {
    fn(0, static_cast<const float*>(W.data) + r0 * W.cols, n);
    return;
  }
  thread_local Buffer<float> tmp;
  tmp.reserve(size_t(kRowsOf * W.cols));
  for (int64_t i0 = 0; i0 < n; i0 += kRowsOf) {
    const int64_t nb = std::min(kRowsOf, n - i0);
    cpu::dequant_rows_f32(k, W, r0 + i0, r0 + i0 + nb, tmp.data(), W.cols);
    fn(i0, tmp.data(), nb);
  }
}
void check_rows_of(const WeightMatrix& W, int64_t r0, int64_t n) {
  check_weights(W);
  QS_CHECK(r0 >= 0 && n >= 0 && r0 + n <= W.rows, "rows [", r0, ", ", r0 + n, ") out of [0, ", W.rows, ")");
}
// The table's kernel that reads W's rows as stored (`fp8` or `integer`, by W's dtype), or
// nullptr where there is none: then rows_of dequantizes them.
template <typename Fn>
Fn stored_rows_kernel(const WeightMatrix& W, Fn fp8, Fn integer) {
  if (W.dtype == DType::F8_E4M3 && W.cols % 16 == 0) return fp8;
  if (W.is_int()) return integer;
  return nullptr;
}
}  // namespace

void weighted_rows_of(const WeightMatrix& W, int64_t r0, int64_t n, const float* p, float* dst) {
  check_rows_of(W, r0, n);
  const cpu::Kernels& k = cpu::kernels();
  if (auto kernel = stored_rows_kernel(W, k.fp8_weighted_rows, k.int_weighted_rows)) {
    kernel(W, r0, n, p, dst);
    return;
  }
  rows_of(k, W, r0, n, [&](int64_t i0, const float* rows, int64_t nb) {
    weighted_rows(p + i0, 1, nb, rows, nb, W.cols, W.cols, dst, W.cols, true);
  });
}

void dot_rows_of(const WeightMatrix& W, int64_t r0, int64_t n, const float* x, float* out) {
  check_rows_of(W, r0, n);
  const cpu::Kernels& k = cpu::kernels();
  if (auto kernel = stored_rows_kernel(W, k.fp8_dot_rows, k.int_dot_rows)) {
    kernel(W, r0, n, x, out);
    return;
  }
  rows_of(k, W, r0, n, [&](int64_t i0, const float* rows, int64_t nb) {
    dot_rows(x, 1, W.cols, rows, nb, W.cols, W.cols, out + i0, nb);
  });
}

void gemv(const float* x, int64_t ldx, int64_t M, const WeightMatrix& W, float* y, int64_t ldy) {
  check_weights(W);
  QS_CHECK(!W.is_int(), "gemv: ", dtype_name(W.dtype), " weights go through linear()");
  QS_CHECK(M >= 0 && ldx >= W.cols && ldy >= W.rows, "gemv: bad strides ldx=", ldx, " ldy=", ldy,
           " for W [", W.rows, ", ", W.cols, "], M=", M);
  if (M == 0 || W.rows == 0) return;
  const cpu::Kernels& k = cpu::kernels();
  thread_local Buffer<float> xpack;  // x packed once for all threads
  xpack.reserve(std::max<size_t>(k.gemv_xpack_floats(M, W), 1));
  const float* xp = xpack.data();
  k.gemv_pack_x(x, ldx, M, W, xpack.data());
  // Chunks of contiguous rows, ~1/8 of a thread's share (64 KB .. 1 MB of weights), handed out
  // dynamically: a thread that is preempted or slower does not hold the others up. Each row is
  // computed whole by one thread, so results do not depend on the schedule.
  const int nt = num_threads();
  const int64_t row_bytes = std::max<int64_t>(1, int64_t(W.bytes() / size_t(W.rows)));
  const int64_t chunk_bytes = std::clamp<int64_t>(int64_t(W.bytes()) / (8 * nt), 64 << 10, 1 << 20);
  const int64_t chunk = std::max<int64_t>(16, chunk_bytes / row_bytes);
  const int64_t nchunks = (W.rows + chunk - 1) / chunk;
  if (nt <= 1 || nchunks < 2 || omp_in_parallel()) {
    k.gemv_rows_packed(xp, M, W, 0, W.rows, y, ldy);
    return;
  }
#pragma omp parallel for num_threads(int(std::min<int64_t>(nt, nchunks))) schedule(dynamic, 1)
  for (int64_t c = 0; c < nchunks; ++c)
    k.gemv_rows_packed(xp, M, W, c * chunk, std::min(W.rows, (c + 1) * chunk), y, ldy);
}

namespace {
void check_linear_args(int64_t M, int64_t ldx, const WeightMatrix& W, int64_t ldy) {
  check_weights(W);
  QS_CHECK(M >= 0 && ldx >= W.cols && ldy >= W.rows, "linear: bad strides ldx=", ldx, " ldy=", ldy,
           " for W [", W.rows, ", ", W.cols, "], M=", M);
}

// fn(m0, mc, n0, n1) for items of (block of x rows, chunk of output rows) covering [0, M) x
// [0, N), handed out dynamically to the threads. `chunk`: output rows per item. Blocks of x
// rows (multiples of 4, the kernels' x tile) only when there are too few chunks (many-row
// products; `stream` is false).
template <typename Fn>
void split_work(int64_t M, int64_t N, int64_t chunk, bool stream, Fn&& fn) {
  const int nt = omp_in_parallel() ? 1 : num_threads();
  const int64_t nchunks = (N + chunk - 1) / chunk;
  int64_t mblock = M;
  if (!stream && nchunks < 4 * nt) {
    const int64_t parts = (4 * nt + nchunks - 1) / nchunks;
    mblock = std::max<int64_t>(4, ((M + parts - 1) / parts + 3) / 4 * 4);
  }
  const int64_t nmblocks = (M + mblock - 1) / mblock, items = nchunks * nmblocks;
  auto item = [&](int64_t it) {
    const int64_t c = it % nchunks, mb = it / nchunks;
    const int64_t m0 = mb * mblock;
    fn(m0, std::min(mblock, M - m0), c * chunk, std::min(N, (c + 1) * chunk));
  };
  if (nt <= 1 || items < 2) {
    for (int64_t it = 0; it < items; ++it) item(it);
    return;
  }
#pragma omp parallel for num_threads(int(std::min<int64_t>(nt, items))) schedule(dynamic, 1)
  for (int64_t it = 0; it < items; ++it) item(it);
}

// Output rows per item for streaming (decode-sized M): ~1/8 of a thread's share of the work,
// 64 KB .. 1 MB of weights, in whole passes of the decode kernels for one row of x: 8 weight rows
// at once for BF16 / FP8 (AVX-512; AVX2 4 and 3), 8 tiles of 16 rows for integer weights
// (AVX-512; 4 or 2 tiles for 2..4 rows of x, 2 on AVX2: all divide 8). The work is W alone for
// linear(), every call's weights for linear_batch(): the matrices of a batch (a decode step's
// experts) are then cut by the batch's size, not each by its own, which the dynamic schedule
// already balances. Each item's first pass has nothing prefetched ahead of it, and the prefetch
// of its last pass falls into the next item, most often another thread's: 1408-row FP8 experts
// were cut into 88-row items, now 512-row ones. Full-depth V2-Lite batch-1 decode FP8 +14%,
// INT4 +2%, the 6-layer FP8 model +4%; 8 of 64 INT4 experts alone 0.71 -> 0.74 of the probe
// (Zen 5, 2 threads, the two alternated in one process). Whole passes: a chunk of 5 tiles (a
// 1408-row INT4 expert's share before) ran a pass of 8 tiles whose last 3 repeated its last
// tile, unstored: 1.6x the arithmetic of its rows (0.51 -> 0.55 of the probe, full-depth INT4
// decode +5%).
int64_t stream_chunk(const WeightMatrix& W, size_t work_bytes) {
  const int64_t align = W.is_int() ? 8 * WeightMatrix::kIntTile : 8;
  const int nt = omp_in_parallel() ? 1 : num_threads();
  const int64_t row_bytes = std::max<int64_t>(1, int64_t(W.bytes() / size_t(W.rows)));
  const int64_t chunk_bytes = std::clamp<int64_t>(int64_t(work_bytes / size_t(8 * nt)), 64 << 10, 1 << 20);
  return std::max(align, std::max<int64_t>(16, chunk_bytes / row_bytes) / align * align);
}

// x rows in BF16 for the BF16 kernels: row stride Kp (K padded to the kernels' multiple), plus
// one cache line when rows would be a multiple of 4 KB apart (they would then all map to the
// same L1 sets and evict each other); zeros past K.
int64_t bf16_x_stride(int64_t K) {
  const int64_t Kp = (K + cpu::kBf16Pad - 1) / cpu::kBf16Pad * cpu::kBf16Pad;
  return Kp * 2 % 4096 == 0 ? Kp + 32 : Kp;
}
void bf16_x_rows(const cpu::Kernels& k, const float* x, int64_t ldx, int64_t b, int64_t e, int64_t K, uint16_t* xb,
                 int64_t ldxb) {
  for (int64_t m = b; m < e; ++m) {
    k.f32_to_bf16(x + m * ldx, xb + m * ldxb, K);
    std::fill(xb + m * ldxb + K, xb + (m + 1) * ldxb, uint16_t(0));
  }
}

// x rows [b, e) quantized for the integer kernels of W: row m's int8 values at q + m * K, its
// group scales and zero sums at sc / zs + m * (K / W.group).
void int_x_rows(const cpu::Kernels& k, const float* x, int64_t ldx, int64_t b, int64_t e, const WeightMatrix& W,
                int8_t* q, float* sc, int32_t* zs) {
  const int64_t K = W.cols, ngroups = K / W.group;
  for (int64_t m = b; m < e; ++m)
    k.quantize_x(x + m * ldx, K, W.group, W.dtype, q + m * K, sc + m * ngroups, zs + m * ngroups);
}

// y = x · Wᵀ in BF16 compute (see the top of this file).
void linear_bf16(const float* x, int64_t ldx, int64_t M, const WeightMatrix& W, float* y, int64_t ldy) {
  const cpu::Kernels& k = cpu::kernels();
  const int64_t K = W.cols, N = W.rows;
  const int64_t Kp = (K + cpu::kBf16Pad - 1) / cpu::kBf16Pad * cpu::kBf16Pad, ldxb = bf16_x_stride(K);
  thread_local Buffer<uint16_t> xbuf;  // [M, ldxb]
  xbuf.reserve(size_t(M * ldxb));
  uint16_t* xb = xbuf.data();
  parallel_for(M, std::max<int64_t>(1, 16384 / Kp), [&](int64_t b, int64_t e) { bf16_x_rows(k, x, ldx, b, e, K, xb, ldxb); });
  const bool stream = M <= kBf16StreamMaxM;
  const int64_t chunk = stream ? stream_chunk(W, W.bytes())
                               : std::max<int64_t>(24, int64_t(kBf16PanelBytes / size_t(Kp * 2)) / 24 * 24);
  split_work(M, N, chunk, stream, [&](int64_t m0, int64_t mc, int64_t n0, int64_t n1) {
    k.linear_bf16(xb + m0 * ldxb, ldxb, mc, W, n0, n1, y + m0 * ldy, ldy);
  });
}

// I8 / I4 weights, Compute::BF16: x quantized per row and group (cpu::QuantizedX), then the
// ISA's integer kernel on items as above (stream_chunk: whole passes of 8 tiles of 16 rows).
void linear_int(const float* x, int64_t ldx, int64_t M, const WeightMatrix& W, float* y, int64_t ldy) {
  const cpu::Kernels& k = cpu::kernels();
  const int64_t K = W.cols, N = W.rows, ngroups = K / W.group;
  thread_local Buffer<int8_t> qbuf;
  thread_local Buffer<float> sbuf;
  thread_local Buffer<int32_t> zbuf;
  qbuf.reserve(size_t(M * K));
  sbuf.reserve(size_t(M * ngroups));
  zbuf.reserve(size_t(M * ngroups));
  // Pointers, not the thread_local buffers themselves: the workers below see their own.
  int8_t* q = qbuf.data();
  float* sc = sbuf.data();
  int32_t* zs = zbuf.data();
  const cpu::QuantizedX xq{q, K, sc, zs, ngroups};
  parallel_for(M, std::max<int64_t>(1, 16384 / K), [&](int64_t b, int64_t e) { int_x_rows(k, x, ldx, b, e, W, q, sc, zs); });
  const bool stream = M <= kBf16StreamMaxM;
  const int64_t tile = WeightMatrix::kIntTile;
  const int64_t chunk = stream ? stream_chunk(W, W.bytes())
                               : std::max<int64_t>(2 * tile, int64_t(kBf16PanelBytes / size_t(K)) / (2 * tile) * (2 * tile));
  split_work(M, N, chunk, stream, [&](int64_t m0, int64_t mc, int64_t n0, int64_t n1) {
    const cpu::QuantizedX xs{xq.q + m0 * xq.ldq, xq.ldq, xq.scale + m0 * xq.ldg, xq.zsum + m0 * xq.ldg, xq.ldg};
    k.linear_int(xs, mc, W, n0, n1, y + m0 * ldy, ldy);
  });
}

// I8 / I4 weights, Compute::F32: rows dequantized exactly into F32 panels, then the F32
// streaming kernel on each (the same per-output arithmetic as F32 weights).
void linear_int_exact(const float* x, int64_t ldx, int64_t M, const WeightMatrix& W, float* y, int64_t ldy) {
  const cpu::Kernels& k = cpu::kernels();
  const int64_t K = W.cols, N = W.rows;
  const int64_t chunk = std::max<int64_t>(16, int64_t((256 << 10) / size_t(K * 4)));
  split_work(1, N, chunk, true, [&](int64_t, int64_t, int64_t n0, int64_t n1) {
    thread_local Buffer<float> panel;
    panel.reserve(size_t((n1 - n0) * K));
    cpu::dequant_rows_f32(k, W, n0, n1, panel.data(), K);
    const WeightMatrix P{DType::F32, n1 - n0, K, panel.data(), nullptr};
    for (int64_t m0 = 0; m0 < M; m0 += kF32BlockRows)
      k.gemv_rows(x + m0 * ldx, ldx, std::min(kF32BlockRows, M - m0), P, 0, n1 - n0, y + m0 * ldy + n0, ldy);
  });
}

}  // namespace

void linear_batch(std::span<const LinearCall> calls, Compute compute) {
  bool together = compute == Compute::BF16 && calls.size() > 1 && num_threads() > 1 && !omp_in_parallel();
  for (const LinearCall& c : calls) {
    check_linear_args(c.M, c.ldx, *c.W, c.ldy);
    together = together && c.M >= 1 && c.M <= kBf16StreamMaxM && c.W->rows > 0 && c.W->cols > 0;
  }
  if (!together) {
    for (const LinearCall& c : calls) linear(c.x, c.ldx, c.M, *c.W, c.y, c.ldy, compute);
    return;
  }
  // Each call's x in its kernel's form (BF16 rows, or int8 rows with group scales), then the
  // weight chunks of all the calls as one list of work items, sized by the whole batch's bytes.
  // Calls reading the same x in the same form share one conversion: a MoE layer's gate and up
  // products of every expert at batch 1 read one token's x (14 conversions of it, 0.34 us each
  // in int8 at V2-Lite's width, were serial work before the parallel region).
  const cpu::Kernels& k = cpu::kernels();
  struct Prepared {
    size_t xb = 0, q = 0, g = 0;  // offsets into the buffers below
    int64_t ldxb = 0, ngroups = 0;
    bool convert = true;  // false: an earlier call's conversion is this one's
  };
  auto same_form = [](const LinearCall& a, const LinearCall& b) {
    const WeightMatrix &A = *a.W, &B = *b.W;
    if (a.x != b.x || a.ldx != b.ldx || a.M != b.M || A.cols != B.cols || A.is_int() != B.is_int()) return false;
    return !A.is_int() || (A.dtype == B.dtype && A.group == B.group);
  };
  std::vector<Prepared> prep(calls.size());
  size_t nxb = 0, nq = 0, ng = 0, total_bytes = 0;  // total_bytes: every call's weights
  for (size_t i = 0; i < calls.size(); ++i) {
    const LinearCall& c = calls[i];
    Prepared& p = prep[i];
    total_bytes += c.W->bytes();
    const auto earlier = std::find_if(calls.begin(), calls.begin() + ptrdiff_t(i),
                                      [&](const LinearCall& e) { return same_form(e, c); });
    if (earlier != calls.begin() + ptrdiff_t(i)) {
      p = prep[size_t(earlier - calls.begin())];
      p.convert = false;
      continue;
    }
    if (c.W->is_int()) {
      p.ngroups = c.W->cols / c.W->group;
      p.q = nq;
      p.g = ng;
      nq += size_t(c.M * c.W->cols);
      ng += size_t(c.M * p.ngroups);
    } else {
      p.ldxb = bf16_x_stride(c.W->cols);
      p.xb = nxb;
      nxb += size_t(c.M * p.ldxb);
    }
  }
  thread_local Buffer<uint16_t> xbuf;
  thread_local Buffer<int8_t> qbuf;
  thread_local Buffer<float> sbuf;
  thread_local Buffer<int32_t> zbuf;
  xbuf.reserve(std::max<size_t>(nxb, 1));
  qbuf.reserve(std::max<size_t>(nq, 1));
  sbuf.reserve(std::max<size_t>(ng, 1));
  zbuf.reserve(std::max<size_t>(ng, 1));
  uint16_t* xb = xbuf.data();
  int8_t* q = qbuf.data();
  float* sc = sbuf.data();
  int32_t* zs = zbuf.data();
  struct Item {
    size_t call;
    int64_t n0, n1;
  };
  std::vector<Item> items;
  for (size_t i = 0; i < calls.size(); ++i) {
    const LinearCall& c = calls[i];
    const WeightMatrix& W = *c.W;
    const Prepared& p = prep[i];
    const int64_t K = W.cols;
    if (p.convert && W.is_int()) int_x_rows(k, c.x, c.ldx, 0, c.M, W, q + p.q, sc + p.g, zs + p.g);
    else if (p.convert) bf16_x_rows(k, c.x, c.ldx, 0, c.M, K, xb + p.xb, p.ldxb);
    const int64_t chunk = stream_chunk(W, total_bytes);
    for (int64_t n0 = 0; n0 < W.rows; n0 += chunk) items.push_back({i, n0, std::min(W.rows, n0 + chunk)});
  }
#pragma omp parallel for num_threads(int(std::min<int64_t>(num_threads(), int64_t(items.size())))) schedule(dynamic, 1)
  for (size_t it = 0; it < items.size(); ++it) {
    const Item& w = items[it];
    const LinearCall& c = calls[w.call];
    const Prepared& p = prep[w.call];
    if (c.W->is_int()) {
      const cpu::QuantizedX xs{q + p.q, c.W->cols, sc + p.g, zs + p.g, p.ngroups};
      k.linear_int(xs, c.M, *c.W, w.n0, w.n1, c.y, c.ldy);
    } else {
      k.linear_bf16(xb + p.xb, p.ldxb, c.M, *c.W, w.n0, w.n1, c.y, c.ldy);
    }
  }
}

void linear(const float* x, int64_t ldx, int64_t M, const WeightMatrix& W, float* y, int64_t ldy,
            Compute compute) {
  check_linear_args(M, ldx, W, ldy);
  if (M == 0 || W.rows == 0) return;
  if (W.cols == 0) {
    for (int64_t m = 0; m < M; ++m) std::fill_n(y + m * ldy, W.rows, 0.0f);
    return;
  }
  if (W.is_int()) {
    if (compute == Compute::BF16) linear_int(x, ldx, M, W, y, ldy);
    else linear_int_exact(x, ldx, M, W, y, ldy);
    return;
  }
  if (compute == Compute::BF16) {
    linear_bf16(x, ldx, M, W, y, ldy);
    return;
  }
  for (int64_t m0 = 0; m0 < M; m0 += kF32BlockRows)
    gemv(x + m0 * ldx, ldx, std::min(kF32BlockRows, M - m0), W, y + m0 * ldy, ldy);
}

}  // namespace qs
