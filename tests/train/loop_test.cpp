// The units a training loop is built from (pretraining here; SFT, GRPO and distillation reuse
// them): metrics log with truncate-on-resume, time budget, progress line, auxiliary-loss-free
// bias update and expert-load summary, run directory (resume source, save, damaged checkpoint).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "qiusuo/core/error.h"
#include "qiusuo/io/file.h"
#include "qiusuo/train/balance.h"
#include "qiusuo/train/metrics.h"
#include "qiusuo/train/progress.h"
#include "qiusuo/train/run_directory.h"
#include "qiusuo/train/time_budget.h"
#include "test_util.h"

namespace qs {
namespace {

using ::testing::HasSubstr;
using testing_util::TempDir;

std::vector<int64_t> steps_in(const std::string& path) {
  std::vector<int64_t> v;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) v.push_back(nlohmann::json::parse(line)["step"].get<int64_t>());
  return v;
}

TEST(MetricsLog, FreshRunEmptiesAndResumeKeepsTheStepsUpToTheCheckpoint) {
  TempDir d("metrics");
  const std::string p = d / "metrics.jsonl";
  {
    MetricsLog m(p, -1);
    for (int s = 1; s <= 5; ++s) m.append({{"step", s}, {"loss", 1.0 / s}});
    m.sync();
  }
  EXPECT_EQ(steps_in(p), (std::vector<int64_t>{1, 2, 3, 4, 5}));
  // A crash left a torn line after step 5; the run resumes from the checkpoint of step 3.
  {
    std::ofstream out(p, std::ios::app);
    out << "{\"step\": 6, \"lo";
  }
  {
    MetricsLog m(p, 3);
    m.append({{"step", 4}, {"loss", 0.0}});
    m.sync();
  }
  EXPECT_EQ(steps_in(p), (std::vector<int64_t>{1, 2, 3, 4}));
  { MetricsLog m(p, -1); }
  EXPECT_EQ(read_text_file(p), "");
}

TEST(TimeBudget, PlansOnceFromTheFirstStepsAndStopsAtTheHardLimit) {
  TimeBudget none(0);
  EXPECT_FALSE(none.active());
  EXPECT_EQ(none.replan(5, 5, 5.0, 5.0, 1000), -1);
  EXPECT_FALSE(none.out_of_time(1e9));
  TimeBudget b(100.0, 5);
  EXPECT_EQ(b.replan(4, 4, 4.0, 4.0, 1000), -1);  // not enough steps measured yet
  // 1 s per step, 5 s spent: (100 - 5 - 2 slack) / 1 = 93 more steps.
  EXPECT_EQ(b.replan(5, 5, 5.0, 5.0, 1000), 98);
  EXPECT_DOUBLE_EQ(b.seconds_per_step(), 1.0);
  EXPECT_EQ(b.replan(6, 6, 6.0, 6.0, 1000), -1);  // once
  TimeBudget enough(100.0, 5);
  EXPECT_EQ(enough.replan(5, 5, 5.0, 5.0, 50), -1);  // 50 steps fit: nothing to cut
  EXPECT_FALSE(b.out_of_time(104.9));
  EXPECT_TRUE(b.out_of_time(105.0));
}

TEST(ProgressLine, WithoutATerminalPrintsMilestonesAndNotes) {
  std::FILE* f = std::tmpfile();
  ASSERT_NE(f, nullptr);
  {
    ProgressLine p(true, f);
    EXPECT_FALSE(p.terminal());
    p.update("step 1", false);
    p.update("step 2", true);
    p.note("planning 10 steps");
    p.update("step 3", false);
  }
  ProgressLine off(false, f);
  off.update("hidden", true);
  std::rewind(f);
  char buf[256] = {};
  const size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  EXPECT_EQ(std::string(buf, n), "step 2\nplanning 10 steps\n");
  EXPECT_EQ(format_duration(42), "42s");
  EXPECT_EQ(format_duration(187), "3m07s");
  EXPECT_EQ(format_duration(3900), "1h05m");
}

nlohmann::json moe_config() {
  auto j = testing_util::tiny_v3_config(32);
  j["num_hidden_layers"] = 3;  // dense, MoE, MoE + one MTP block (MoE)
  return j;
}

TEST(Balance, BiasMovesAgainstTheLoadByLayerIndex) {
  TrainModel<float> m(parse_model_config(moe_config()));
  const int64_t E = m.config().n_routed_experts;
  ExpertLoad load(4);  // layers 0 (dense), 1, 2, MTP block 3
  load[1].assign(size_t(E), 10);
  load[1][0] = 30;  // overloaded
  load[1][1] = 0;   // idle
  load[3].assign(size_t(E), 5);
  load[3][2] = 1;
  ExpertLoad sum;
  accumulate_expert_load(sum, load);
  accumulate_expert_load(sum, load);
  EXPECT_EQ(sum[1][0], 60);
  EXPECT_TRUE(sum[0].empty());
  update_correction_bias(m, load, 0.25);
  const float* b1 = m.param("model.layers.1.mlp.gate.e_score_correction_bias");
  const float* b2 = m.param("model.layers.2.mlp.gate.e_score_correction_bias");
  const float* b3 = m.param("model.layers.3.mlp.gate.e_score_correction_bias");
  // mean of layer 1 = (30 + 0 + 6·10) / 8 = 11.25
  EXPECT_EQ(b1[0], -0.25f);
  EXPECT_EQ(b1[1], 0.25f);
  EXPECT_EQ(b1[2], 0.25f);
  for (int64_t e = 0; e < E; ++e) EXPECT_EQ(b2[e], 0.0f) << "layer 2 had no load reported";
  EXPECT_EQ(b3[2], 0.25f);
  EXPECT_EQ(b3[0], -0.25f);  // mean 4.5 < 5
  const ExpertLoadSummary s = summarize_expert_load(load);
  ASSERT_EQ(s.fractions.size(), 4u);
  EXPECT_TRUE(s.fractions[0].is_null());
  EXPECT_DOUBLE_EQ(s.fractions[1][0].get<double>(), 30.0 / 90.0);
  EXPECT_DOUBLE_EQ(s.max_ratio, 30.0 / 11.25);
  EXPECT_DOUBLE_EQ(s.min_ratio, 0.0);
}

TEST(RunDirectory, ResumeSourceSaveAndADamagedCheckpoint) {
  TempDir d("rundir");
  TrainModel<float> m(parse_model_config(moe_config()));
  m.init_random(1);
  AdamW opt(m.layout(), m.params().size(), {});
  RunDirectory run(d / "out", "", 2);
  EXPECT_EQ(run.resume_source(false, ""), "");
  EXPECT_EQ(run.resume_source(false, "/x/step-1"), "/x/step-1");
  try {
    run.resume_source(true, "");
    FAIL();
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("no checkpoint"));
  }
  MetricsLog metrics(run.metrics_path(), -1);
  TrainerState st;
  for (int s = 1; s <= 2; ++s) {
    st.step = s;
    metrics.append({{"step", s}, {"loss", 2.0}, {"lr", 1e-3}, {"tokens_per_s", 1.0}});
    run.save(m, opt, st, metrics);
  }
  EXPECT_TRUE(file_exists(d / "out/model.safetensors"));
  EXPECT_TRUE(file_exists(d / "out/plots/loss.svg"));
  const std::string latest = run.resume_source(true, "");
  EXPECT_THAT(latest, HasSubstr("step-00000002"));
  TrainModel<float> m2(m.config());
  AdamW opt2(m2.layout(), m2.params().size(), {});
  EXPECT_EQ(run.load(latest, m2, opt2).step, 2);
  EXPECT_EQ(m2.params(), m.params());
  std::filesystem::resize_file(latest + "/model.safetensors", 100);
  try {
    run.load(latest, m2, opt2);
    FAIL();
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("corrupt"));
    EXPECT_THAT(e.what(), HasSubstr("--resume-from " + (d / "out/checkpoints/step-00000001")));
  }
}

}  // namespace
}  // namespace qs
