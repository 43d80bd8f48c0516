// Machine-peak probes: sane, finite figures on small problems (the full-size measurements are
// in bench/kernels_bench.cpp), and every ISA's read kernel sums correctly.
#include "qiusuo/kernels/probe.h"

#include <gtest/gtest.h>

#include <cmath>

#include "kernels/kernel_test_util.h"
#include "qiusuo/core/parallel.h"

namespace qs {
namespace {

TEST(Probe, ReadStreamsSumsEveryElement) {
  std::vector<float> a(1000, 1.0f), b(1000, 2.0f), c(1000, 0.5f), d(1000, 0.25f);
  const float* p[4] = {a.data(), b.data(), c.data(), d.data()};
  for (const cpu::Kernels* k : test::runnable_kernels()) {
    EXPECT_EQ(k->read_streams(p, 4, 1000), 3750.0f) << isa_name(k->isa);
    EXPECT_EQ(k->read_streams(p, 4, 37), 3.75f * 37) << isa_name(k->isa);
    EXPECT_EQ(k->read_streams(p, 3, 1000), 3500.0f) << isa_name(k->isa);
  }
}

TEST(Probe, ReadBandwidthIsPlausible) {
  const double gbs = measure_read_bandwidth_gbs(size_t(64) << 20, 0, 0.05);
  EXPECT_TRUE(std::isfinite(gbs));
  EXPECT_GT(gbs, 0.5);
  EXPECT_LT(gbs, 10000.0);
  const int before = num_threads();
  measure_read_bandwidth_gbs(size_t(16) << 20, 1, 0.01);
  EXPECT_EQ(num_threads(), before);  // thread count restored
}

TEST(Probe, GemmPeakIsPlausible) {
  for (Compute c : {Compute::F32, Compute::BF16}) {
    const double g = measure_gemm_peak_gflops(c, 0, 0.05);
    EXPECT_TRUE(std::isfinite(g));
    EXPECT_GT(g, 1.0);
  }
}

}  // namespace
}  // namespace qs
