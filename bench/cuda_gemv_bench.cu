// CUDA decode-GEMV benchmark (plain executable; see docs/cuda.md). Prints one JSON line per case:
//   {"kind":"device", ...}   the GPU, its datasheet-style peak and the measured read bandwidth
//                            (qs::cuda::probe_read_bandwidth over a 2 GiB buffer)
//   {"kind":"gemv", ...}     one shape x dtype x M: time per call, GB/s, fraction of the probe
// Shapes: DeepSeek-V2-Lite decode (expert gate/up 1408x2048, dense MLP 10944x2048, LM head
// 102400x2048) and a DeepSeek-V3 expert gate/up (2048x7168); BF16 and FP8 (128x128 block
// scales); M = 1 and 8 rows of activations.
//
// Timing: `copies` distinct uploads of the matrix, together at least 4x the L2 size, are used
// in rotation so every call streams its weights from HBM as in real decode (a single small
// expert would otherwise be served from L2). us_per_call: N back-to-back launches on a stream
// between two events (launch gaps included); us_per_call_graph: the same N launches captured in
// a CUDA graph and replayed (closer to kernel time). Each is the median of 7 repetitions.
// bytes = weights + scales + x + y, each once.
//
// Usage: cuda_gemv_bench [--quick] [--only CASE:DTYPE:M]
//   --quick  fewer repetitions and a 512 MiB probe
//   --only   run one case, e.g. --only v2lite_head:BF16:8 (for profilers; the probe still runs)
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "qiusuo/core/dtype.h"
#include "qiusuo/core/error.h"
#include "qiusuo/kernels/cuda/gemv.cuh"
#include "qiusuo/kernels/linear.h"

namespace {

void ok(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    std::fprintf(stderr, "cuda_gemv_bench: %s: %s\n", what, cudaGetErrorString(e));
    std::exit(1);
  }
}

struct Rng {  // xorshift64*: fast enough for hundreds of MB of weights
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed * 0x9e3779b97f4a7c15ull + 1) {}
  uint64_t next() {
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 0x2545f4914f6cdd1dull;
  }
};

// Random weights as stored: BF16 values of magnitude [2^-7, 1), random sign; FP8 random non-NaN
// codes with block scales near 2^-8.
struct HostMatrix {
  qs::WeightMatrix W;
  std::vector<uint8_t> data;
  std::vector<float> scales;
  HostMatrix(qs::DType dt, int64_t rows, int64_t cols, uint64_t seed) {
    Rng rng(seed);
    W.dtype = dt;
    W.rows = rows;
    W.cols = cols;
    const size_t n = size_t(rows) * size_t(cols);
    data.resize(n * qs::dtype_size(dt));
    if (dt == qs::DType::BF16) {
      uint16_t* p = reinterpret_cast<uint16_t*>(data.data());
      for (size_t i = 0; i < n; i += 4) {
        const uint64_t r = rng.next();
        for (size_t j = 0; j < 4 && i + j < n; ++j) {
          const uint32_t b = uint32_t(r >> (16 * j));
          p[i + j] = uint16_t((b & 0x807fu) | ((120u + (b >> 8) % 7u) << 7));  // sign, exp 120..126, mantissa
        }
      }
    } else {
      for (size_t i = 0; i < n; i += 8) {
        const uint64_t r = rng.next();
        for (size_t j = 0; j < 8 && i + j < n; ++j) {
          uint8_t b = uint8_t(r >> (8 * j));
          if ((b & 0x7f) == 0x7f) b ^= 1;  // no NaN codes
          data[i + j] = b;
        }
      }
      scales.resize(size_t((rows + 127) / 128) * size_t((cols + 127) / 128));
      for (float& s : scales) s = std::ldexp(1.0f + float(rng.next() % 1000) / 1000.0f, -9);
      W.scale_inv = scales.data();
    }
    W.data = data.data();
  }
};

struct Case {
  const char* name;
  int64_t rows, cols;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  std::string only;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0) {
      quick = true;
    } else if (std::strcmp(argv[i], "--only") == 0 && i + 1 < argc) {
      only = argv[++i];
    } else {
      std::fprintf(stderr, "usage: cuda_gemv_bench [--quick] [--only CASE:DTYPE:M]\n");
      return 2;
    }
  }
  auto selected = [&](const char* name, qs::DType dt, int64_t M) {
    return only.empty() || only == std::string(name) + ":" + std::string(qs::dtype_name(dt)) + ":" + std::to_string(M);
  };
  auto any_selected = [&](const char* name, qs::DType dt) { return selected(name, dt, 1) || selected(name, dt, 8); };
  if (qs::cuda::device_count() == 0) {
    std::printf("{\"kind\":\"error\",\"error\":\"no CUDA device\"}\n");
    return 1;
  }
  try {
    const qs::cuda::DeviceInfo info = qs::cuda::device_info();
    const size_t probe_bytes = quick ? (size_t(512) << 20) : (size_t(2) << 30);
    const double probe = qs::cuda::probe_read_bandwidth(probe_bytes, quick ? 5 : 20);
    std::printf("{\"kind\":\"device\",\"name\":\"%s\",\"cc\":\"%d.%d\",\"sms\":%d,\"l2_mb\":%.1f,\"mem_gb\":%.1f,"
                "\"peak_gbps\":%.0f,\"probe_bytes\":%zu,\"probe_gbps\":%.1f,\"probe_frac_of_peak\":%.3f}\n",
                info.name.c_str(), info.cc_major, info.cc_minor, info.sms, double(info.l2_bytes) / 1048576.0,
                double(info.mem_bytes) / 1e9, info.peak_gbps, probe_bytes, probe,
                info.peak_gbps > 0 ? probe / info.peak_gbps : 0.0);
    std::fflush(stdout);

    const Case cases[] = {{"v2lite_expert", 1408, 2048},
                          {"v2lite_dense", 10944, 2048},
                          {"v2lite_head", 102400, 2048},
                          {"v3_expert", 2048, 7168}};
    const qs::DType dtypes[] = {qs::DType::BF16, qs::DType::F8_E4M3};
    const int reps = quick ? 3 : 7;
    cudaStream_t stream;
    ok(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "stream");
    cudaEvent_t e0, e1;
    ok(cudaEventCreate(&e0), "event");
    ok(cudaEventCreate(&e1), "event");

    for (const Case& c : cases) {
      for (qs::DType dt : dtypes) {
        if (!any_selected(c.name, dt)) continue;
        const HostMatrix hm(dt, c.rows, c.cols, uint64_t(c.rows * 7 + c.cols));
        std::vector<qs::cuda::DeviceWeight> ws{qs::cuda::upload(hm.W)};
        const size_t wbytes = ws[0].bytes();
        const size_t budget = std::min<size_t>(info.mem_bytes / 4, size_t(4) << 30);
        const int copies = int(std::clamp<size_t>((4 * info.l2_bytes + wbytes - 1) / wbytes, 1,
                                                  std::max<size_t>(1, std::min<size_t>(64, budget / wbytes))));
        for (int k = 1; k < copies; ++k) ws.push_back(qs::cuda::upload(hm.W));

        for (int64_t M : {int64_t(1), int64_t(8)}) {
          if (!selected(c.name, dt, M)) continue;
          std::vector<float> xh(size_t(M * c.cols));
          Rng rng{uint64_t(M)};
          for (float& f : xh) f = float(int64_t(rng.next() % 2001) - 1000) / 1000.0f;
          float *x = nullptr, *y = nullptr;
          ok(cudaMalloc(&x, xh.size() * sizeof(float)), "malloc x");
          ok(cudaMalloc(&y, size_t(M * c.rows) * sizeof(float)), "malloc y");
          ok(cudaMemcpy(x, xh.data(), xh.size() * sizeof(float), cudaMemcpyHostToDevice), "copy x");

          // Calls per timed batch: a multiple of `copies`, about 3 ms of streaming at the probe rate.
          const double est_us = double(wbytes) / (probe * 1e3);
          int n = int(std::clamp(3000.0 / std::max(est_us, 1.0), 20.0, 2000.0));
          n = std::max(copies, (n + copies - 1) / copies * copies);
          auto batch = [&] {
            for (int i = 0; i < n; ++i) qs::cuda::gemv(x, M, ws[size_t(i % copies)], y, stream);
          };
          batch();  // warm-up (module load, first touch)
          ok(cudaStreamSynchronize(stream), "warm-up");

          std::vector<double> t_stream, t_graph;
          for (int r = 0; r < reps; ++r) {
            ok(cudaEventRecord(e0, stream), "record");
            batch();
            ok(cudaEventRecord(e1, stream), "record");
            ok(cudaEventSynchronize(e1), "sync");
            float ms = 0;
            ok(cudaEventElapsedTime(&ms, e0, e1), "elapsed");
            t_stream.push_back(double(ms) * 1e3 / n);
          }
          cudaGraph_t graph;
          cudaGraphExec_t exec;
          ok(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), "capture");
          batch();
          ok(cudaStreamEndCapture(stream, &graph), "end capture");
          ok(cudaGraphInstantiate(&exec, graph, 0), "instantiate");
          ok(cudaGraphLaunch(exec, stream), "graph warm-up");
          ok(cudaStreamSynchronize(stream), "graph warm-up");
          for (int r = 0; r < reps; ++r) {
            ok(cudaEventRecord(e0, stream), "record");
            ok(cudaGraphLaunch(exec, stream), "graph launch");
            ok(cudaEventRecord(e1, stream), "record");
            ok(cudaEventSynchronize(e1), "sync");
            float ms = 0;
            ok(cudaEventElapsedTime(&ms, e0, e1), "elapsed");
            t_graph.push_back(double(ms) * 1e3 / n);
          }
          cudaGraphExecDestroy(exec);
          cudaGraphDestroy(graph);

          const double bytes = double(wbytes) + double(M * c.cols + M * c.rows) * 4.0;
          const double us = median(t_stream), usg = median(t_graph);
          const double gbps = bytes / (us * 1e3), gbpsg = bytes / (usg * 1e3);
          std::printf("{\"kind\":\"gemv\",\"case\":\"%s\",\"rows\":%lld,\"cols\":%lld,\"dtype\":\"%s\",\"M\":%lld,"
                      "\"bytes\":%.0f,\"copies\":%d,\"calls\":%d,\"us_per_call\":%.2f,\"gbps\":%.1f,"
                      "\"frac_of_probe\":%.3f,\"us_per_call_graph\":%.2f,\"gbps_graph\":%.1f,"
                      "\"frac_of_probe_graph\":%.3f,\"us_at_probe_bw\":%.2f}\n",
                      c.name, (long long)c.rows, (long long)c.cols, std::string(qs::dtype_name(dt)).c_str(),
                      (long long)M, bytes, copies, n, us, gbps, gbps / probe, usg, gbpsg, gbpsg / probe,
                      bytes / (probe * 1e3));
          std::fflush(stdout);
          cudaFree(x);
          cudaFree(y);
        }
        for (auto& w : ws) qs::cuda::free(w);
      }
    }
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    cudaStreamDestroy(stream);
  } catch (const qs::Error& e) {
    std::fprintf(stderr, "cuda_gemv_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
