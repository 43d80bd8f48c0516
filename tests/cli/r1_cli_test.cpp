// `qiusuo r1 --quick` (the main job's pipeline in seconds) and the evaluate / sample commands on
// its models, as a user runs them: results.json's contract, results.md and plots, a second run
// that keeps the finished stages, and clear errors for bad input.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "cli/cli_util.h"
#include "qiusuo/io/file.h"
#include "test_util.h"

namespace qs {
namespace {

using ::testing::HasSubstr;
using testing_util::CmdResult;
using testing_util::qiusuo;
using testing_util::TempDir;

TEST(R1Cli, QuickRunWritesTheResultsContract) {
  TempDir d("r1cli");
  const std::string out = d / "run";
  CmdResult r = qiusuo("r1 --quick -q --json --out " + out);
  ASSERT_EQ(r.code, 0) << r.err;
  const nlohmann::json printed = nlohmann::json::parse(r.out);
  const nlohmann::json res = nlohmann::json::parse(read_text_file(out + "/results.json"));
  EXPECT_EQ(printed["stages"], res["stages"]);
  ASSERT_TRUE(res["test_set"].is_string());
  EXPECT_TRUE(file_exists(res["test_set"].get<std::string>()));
  const std::vector<std::string> names = {"base", "grpo", "rejection_sft", "distill_student", "student_grpo"};
  ASSERT_EQ(res["stages"].size(), names.size());
  for (size_t i = 0; i < names.size(); ++i) {
    const nlohmann::json& s = res["stages"][i];
    EXPECT_EQ(s["stage"], names[i]);
    ASSERT_TRUE(s["model"].is_string());
    EXPECT_TRUE(file_exists(s["model"].get<std::string>() + "/config.json")) << s["model"];
    EXPECT_TRUE(file_exists(s["model"].get<std::string>() + "/tokenizer_config.json")) << s["model"];
    for (const char* k : {"test_accuracy", "format_rate"}) {
      ASSERT_TRUE(s[k].is_number()) << names[i] << " " << k;
      EXPECT_GE(s[k].get<double>(), 0.0);
      EXPECT_LE(s[k].get<double>(), 1.0);
    }
    for (const char* k : {"mean_response_tokens", "seconds"}) {
      ASSERT_TRUE(s[k].is_number()) << names[i] << " " << k;
      EXPECT_GE(s[k].get<double>(), 0.0);
    }
    ASSERT_TRUE(s["train_tokens"].is_number_integer()) << names[i];
    EXPECT_GT(s["train_tokens"].get<int64_t>(), 0) << names[i];
  }
  for (const char* f : {"results.md", "plots/stages.svg", "plots/reward.svg", "plots/response_length.svg",
                        "grpo/metrics.jsonl", "grpo/samples.jsonl", "traces.jsonl"})
    EXPECT_TRUE(file_exists(out + "/" + f)) << f;
  EXPECT_THAT(read_text_file(out + "/results.md"), HasSubstr("| distill_student |"));

  // A second run keeps the finished stages: the same table.
  r = qiusuo("r1 --quick -q --out " + out);
  ASSERT_EQ(r.code, 0) << r.err;
  const nlohmann::json again = nlohmann::json::parse(read_text_file(out + "/results.json"));
  EXPECT_EQ(again["stages"], res["stages"]);

  // evaluate and sample on a stage model.
  const std::string model = out + "/grpo", tasks = res["test_set"].get<std::string>();
  r = qiusuo("evaluate --model " + model + " --tasks " + tasks + " --max-tokens 16 -q --json");
  ASSERT_EQ(r.code, 0) << r.err;
  const nlohmann::json ev = nlohmann::json::parse(r.out);
  for (const char* k : {"n", "accuracy", "pass_at_k", "format_rate", "mean_response_tokens"})
    EXPECT_TRUE(ev[k].is_number()) << k;
  EXPECT_EQ(ev["n"], res["stages"][1]["test_problems"]);
  r = qiusuo("evaluate --model " + model + " --tasks " + tasks + " --max-tokens 16 --samples 3 -q --json");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["k"], 3);
  r = qiusuo("sample --model " + model + " --tasks " + tasks + " --n 2 --max-tokens 16 -q --json --out " + (d / "s.jsonl"));
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string lines = read_text_file(d / "s.jsonl");
  EXPECT_EQ(std::count(lines.begin(), lines.end(), '\n'), nlohmann::json::parse(r.out)["kept"].get<int64_t>());
  EXPECT_THAT(lines, HasSubstr("\"messages\""));
}

TEST(R1Cli, BadInputIsAClearError) {
  TempDir d("r1bad");
  write_text_file_atomic(d / "recipe.json", R"({"grpo": {"stepz": 3}})");
  CmdResult r = qiusuo("r1 --quick -q --recipe " + (d / "recipe.json") + " --out " + (d / "run"));
  EXPECT_NE(r.code, 0);
  EXPECT_THAT(r.err, HasSubstr("stepz"));
  r = qiusuo("r1 --quick -q --until nowhere --out " + (d / "run"));
  EXPECT_NE(r.code, 0);
  EXPECT_THAT(r.err, HasSubstr("nowhere"));
  r = qiusuo("evaluate --model " + (d / "missing") + " --tasks " + (d / "recipe.json") + " -q");
  EXPECT_NE(r.code, 0);
  EXPECT_THAT(r.err, HasSubstr("recipe.json"));
  r = qiusuo("grpo --model " + (d / "missing") + " --tasks " + (d / "none.jsonl") + " --out " + (d / "g") + " --group 1");
  EXPECT_NE(r.code, 0);
  EXPECT_THAT(r.err, HasSubstr("--group"));
}

}  // namespace
}  // namespace qs
