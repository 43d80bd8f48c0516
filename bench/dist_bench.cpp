// The collectives of data and expert parallelism, timed under mpirun (docs/dist.md, "Scaling"):
// Comm::allreduce_sum of n floats (the gradient reduction: fixed-order reduce-scatter by
// all-to-all + all-gather), its all-gather half alone (Comm::allgather_shards, also ZeRO-1's
// parameter all-gather) and Comm::alltoallv of n floats spread evenly over the ranks (the
// expert exchange). Rank 0 prints one JSON line per collective and size: the best and median
// seconds per call and the bus bandwidth 2(N-1)/N · bytes / t (all-reduce) or (N-1)/N · bytes / t
// (all-gather, all-to-all), the figure the scaling model uses.
//
//   mpirun -np 2 --oversubscribe --bind-to none -x OMP_NUM_THREADS=1 build/bench/dist_bench [REPS]
//
// Not a Google Benchmark: every rank must run the same number of calls (its own main).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>
#include <vector>

#include "qiusuo/core/error.h"
#include "qiusuo/dist/comm.h"

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

template <typename F>
std::vector<double> timed(qs::Comm& c, int reps, F&& f) {
  std::vector<double> t;
  f();  // warm-up
  for (int i = 0; i < reps; ++i) {
    c.barrier();
    const double t0 = now_s();
    f();
    double dt = now_s() - t0;
    // The slowest rank's time is the collective's.
    int64_t ns = int64_t(dt * 1e9);
    c.allreduce(std::span<int64_t>(&ns, 1), qs::ReduceOp::Max);
    t.push_back(double(ns) * 1e-9);
  }
  std::sort(t.begin(), t.end());
  return t;
}

void report(qs::Comm& c, const char* what, int64_t n, const std::vector<double>& t, double factor) {
  if (c.rank() != 0) return;
  const double bytes = double(n) * sizeof(float);
  std::printf(
      "{\"collective\": \"%s\", \"ranks\": %d, \"floats\": %lld, \"mbytes\": %.1f, \"best_s\": %.6f, "
      "\"median_s\": %.6f, \"bus_gbit_s\": %.2f}\n",
      what, c.size(), (long long)n, bytes / 1e6, t.front(), t[t.size() / 2], factor * bytes * 8 / t[t.size() / 2] / 1e9);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    qs::init_world();
    qs::Comm& c = qs::world();
    const int reps = argc > 1 ? std::max(1, std::atoi(argv[1])) : 5;
    const int N = c.size();
    if (c.rank() == 0) std::fprintf(stderr, "dist_bench: %s\n", qs::world_description().c_str());
    for (int64_t n : {int64_t(1) << 16, int64_t(1) << 20, int64_t(1) << 22, int64_t(1) << 24}) {
      std::vector<float> x(size_t(n), 1.0f);
      report(c, "allreduce_sum", n, timed(c, reps, [&] { c.allreduce_sum(x); }), 2.0 * (N - 1) / N);
      report(c, "allgather_shards", n, timed(c, reps, [&] { c.allgather_shards(x); }), double(N - 1) / N);
      // Rank q sends its shard r of x to rank r, which receives shard r from every rank.
      const size_t un = static_cast<size_t>(N);
      std::vector<int64_t> counts(un), displs(un), rcounts(un), rdispls(un);
      const int64_t mine = c.shard_begin(n, c.rank() + 1) - c.shard_begin(n, c.rank());
      for (int r = 0; r < N; ++r) {
        displs[size_t(r)] = c.shard_begin(n, r);
        counts[size_t(r)] = c.shard_begin(n, r + 1) - displs[size_t(r)];
        rcounts[size_t(r)] = mine;
        rdispls[size_t(r)] = r * mine;
      }
      std::vector<float> y(size_t(mine * N));
      report(c, "alltoallv", n, timed(c, reps, [&] {
               c.alltoallv(x.data(), counts, displs, y.data(), rcounts, rdispls, sizeof(float));
             }),
             double(N - 1) / N);
    }
    qs::finalize_world();
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dist_bench: %s\n", e.what());
    return 1;
  }
}
