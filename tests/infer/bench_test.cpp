// qiusuo bench's library entry point on a tiny model: the JSON fields docs/cli.md lists, with
// sane values, for short runs too (--steps 4 once failed: the KV pool was sized in tokens,
// not in the whole blocks every sequence takes), and the probe-bracketed decode fractions.
#include "qiusuo/infer/bench.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "qiusuo/model/init.h"
#include "qiusuo/model/transformer.h"
#include "test_util.h"

namespace qs {
namespace {

TEST(Bench, ShortRunReportsEveryFieldWithSaneValues) {
  testing_util::TempDir dir("bench");
  InitOptions io;
  io.dtype = InitDType::BF16;
  auto cfg = testing_util::tiny_v3_config(300);
  cfg["max_position_embeddings"] = 2048;  // the prefix-cache figure uses a 1024-token prompt
  write_random_checkpoint(parse_model_config(cfg), dir.path, io);
  const auto model = Model::load(dir.path);
  BenchOptions o;
  o.prefill_tokens = 40;
  o.decode_context = 70;  // not a multiple of the 64-token block
  o.decode_steps = 4;
  o.probe_seconds = 0.05;
  o.long_context = 700;  // rows filled, not prefilled; not a multiple of the block either
  const nlohmann::json j = run_benchmark(*model, o);
  for (const char* k : {"prefill_tokens_per_s", "decode_tokens_per_s", "decode_batch8_tokens_per_s",
                        "decode_batch32_tokens_per_s", "prefix_hit_ttft_speedup", "measured_bandwidth_gb_s",
                        "decode_bandwidth_fraction", "decode_batch8_bandwidth_fraction", "gemm_peak_gflops",
                        "prefill_peak_fraction", "peak_rss_mb", "decode_bytes_per_token",
                        "decode_batch8_bytes_per_step", "long_context_decode_tokens_per_s",
                        "long_context_bandwidth_fraction"}) {
    ASSERT_TRUE(j.contains(k)) << k;
    const double v = j[k].get<double>();
    EXPECT_TRUE(std::isfinite(v) && v > 0) << k << " = " << v;
  }
  EXPECT_EQ(j["long_context"].get<int64_t>(), 700);
  EXPECT_NEAR(j["long_context_bytes_per_token"].get<double>(),
              j["decode_weight_bytes_per_token"].get<double>() + 700 * j["kv_bytes_per_token"].get<double>(), 1.0);
  // Loaded without --mmap: everything but the embedding was copied, and it is counted apart from
  // the F32 copies.
  EXPECT_GT(j["weights_copied_mb"].get<double>(), 0.0);
  EXPECT_LT(j["weights_copied_mb"].get<double>(), j["weights_mb"].get<double>());
  EXPECT_GT(j["weight_f32_copies_mb"].get<double>(), 0.0);
  // 4 rounds of batch 1 between 5 probes, then batch 8 before a 6th.
  ASSERT_EQ(j["decode_probe_gb_s"].size(), 6u);
  ASSERT_EQ(j["decode_bandwidth_fractions"].size(), 4u);
  std::vector<double> f = j["decode_bandwidth_fractions"].get<std::vector<double>>();
  std::sort(f.begin(), f.end());
  EXPECT_DOUBLE_EQ(j["decode_bandwidth_fraction"].get<double>(), 0.5 * (f[1] + f[2]));  // the median
}

}  // namespace
}  // namespace qs
