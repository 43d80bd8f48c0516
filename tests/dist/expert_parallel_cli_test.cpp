// Expert-parallel inference through the command: `mpirun -np 2|3 qiusuo logits --expert-parallel`
// on every model fixture (prefill and decode, F32 and BF16) writes the same logits, bit for bit, as
// one process, within the usual bound of the official reference logits; greedy generation gives
// the same tokens and log-probabilities; every output says how it ran; commands that do not run
// distributed refuse with a clear error; a GPTQ checkpoint runs expert parallel too.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "dist/mpi_util.h"
#include "qiusuo/io/file.h"
#include "qiusuo/io/safetensors.h"

namespace qs {
namespace {

using ::testing::HasSubstr;
using testing_util::mpirun_cmd;
using testing_util::run_shell;
using testing_util::TempDir;

std::string qiusuo_bin() { return std::string(QS_BINARY_DIR) + "/qiusuo"; }

// The fixture's prompts as --ids (sequence 1 cut short: a ragged batch).
std::string fixture_ids(const std::string& dir, int64_t* B, int64_t* P) {
  const auto exp = SafetensorsFile::open(dir + "/expected.safetensors");
  const TensorView& in = *exp.find("input_ids");
  *B = in.shape[0];
  *P = in.shape[1];
  std::string ids;
  for (int64_t b = 0; b < *B; ++b) {
    if (b) ids += ";";
    const int64_t n = b == 1 ? std::min<int64_t>(*P, 5) : *P;
    for (int64_t t = 0; t < n; ++t) ids += (t ? "," : "") + std::to_string(in.as<int64_t>()[b * *P + t]);
  }
  return ids;
}

class ExpertParallelLogits : public ::testing::TestWithParam<std::string> {};

TEST_P(ExpertParallelLogits, EqualOneProcessBitwiseAndMatchTheReference) {
  QS_REQUIRE_MPI();
  const std::string dir = GetParam();
  int64_t B = 0, P = 0;
  const std::string ids = fixture_ids(dir, &B, &P);
  const auto exp = SafetensorsFile::open(dir + "/expected.safetensors");
  const TensorView& want = *exp.find("prefill_logits");
  const int64_t V = want.shape[2];
  float mx = 0;
  for (int64_t i = 0; i < want.numel(); ++i) mx = std::max(mx, std::fabs(want.as<float>()[i]));
  TempDir d("eplogits");
  for (const char* mode : {"prefill", "decode"})
    for (const char* prec : {"f32", "bf16"}) {
      const std::string args = " logits --model " + dir + " --ids '" + ids + "' --mode " + mode + " --precision " + prec;
      const auto one = run_shell(qiusuo_bin() + args + " --threads 1 --out " + (d / "one.st"), 120);
      ASSERT_EQ(one.code, 0) << one.err;
      EXPECT_THAT(one.err, HasSubstr("\"world_size\":1"));
      const int np = std::string(prec) == "f32" ? 2 : 3;
      const auto ep = run_shell(mpirun_cmd(np) + qiusuo_bin() + args + " --expert-parallel --out " + (d / "ep.st"), 180);
      ASSERT_EQ(ep.code, 0) << ep.err;
      EXPECT_THAT(ep.err, HasSubstr("expert parallel over " + std::to_string(np) + " ranks"));
      EXPECT_THAT(ep.err, HasSubstr("\"expert_parallel\":true"));
      EXPECT_THAT(ep.err, HasSubstr("\"world_size\":" + std::to_string(np)));
      const auto a = SafetensorsFile::open(d / "one.st"), b = SafetensorsFile::open(d / "ep.st");
      const TensorView& la = *a.find("logits");
      const TensorView& lb = *b.find("logits");
      ASSERT_EQ(la.shape, lb.shape);
      ASSERT_EQ(la.shape, (Shape{B, P, V}));
      EXPECT_EQ(std::memcmp(la.data, lb.data, la.nbytes), 0) << mode << " " << prec << ": not bitwise one process's";
      if (std::string(prec) != "f32") continue;
      float worst = 0;
      for (int64_t s = 0; s < B; ++s)
        for (int64_t t = 0; t < (s == 1 ? std::min<int64_t>(P, 5) : P); ++t)
          for (int64_t v = 0; v < V; ++v)
            worst = std::max(worst, std::fabs(lb.as<float>()[(s * P + t) * V + v] - want.as<float>()[(s * P + t) * V + v]));
      EXPECT_LE(worst, 1e-4f * mx) << dir << " " << mode;
    }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, ExpertParallelLogits,
                         ::testing::ValuesIn(testing_util::model_fixture_dirs("expected.safetensors")),
                         [](const auto& info) { return testing_util::fixture_test_name(info.param); });

TEST(ExpertParallelCli, GreedyGenerationIsOneProcesss) {
  QS_REQUIRE_MPI();
  const std::string model = std::string(QS_FIXTURES) + "/model/v3-tiny";
  TempDir d("epgen");
  write_text_file_atomic(d / "p.jsonl", "{\"ids\": [1, 2, 3, 4]}\n{\"ids\": [9, 8, 7, 6, 5, 4, 3]}\n{\"ids\": [42]}\n");
  const std::string args = " generate --model " + model + " --jsonl " + (d / "p.jsonl") + " -n 10 --json";
  const auto one = run_shell(qiusuo_bin() + args + " --threads 1", 120);
  ASSERT_EQ(one.code, 0) << one.err;
  const auto ep = run_shell(mpirun_cmd(2) + qiusuo_bin() + args + " --expert-parallel", 180);
  ASSERT_EQ(ep.code, 0) << ep.err;
  std::vector<nlohmann::json> a, b;
  for (auto* p : {&one, &ep}) {
    std::istringstream in(p->out);
    std::string line;
    while (std::getline(in, line)) (p == &one ? a : b).push_back(nlohmann::json::parse(line));
  }
  ASSERT_EQ(a.size(), 3u);
  ASSERT_EQ(b.size(), 3u) << "only rank 0 prints";
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(a[i]["tokens"], b[i]["tokens"]) << i;
    EXPECT_EQ(a[i]["logprobs"], b[i]["logprobs"]) << i;
    EXPECT_EQ(a[i]["world_size"], 1);
    EXPECT_EQ(a[i]["expert_parallel"], false);
    EXPECT_EQ(b[i]["world_size"], 2);
    EXPECT_EQ(b[i]["expert_parallel"], true);
  }
}

// A GPTQ INT4 checkpoint (v3-tiny quantized): each rank repacks only its own experts and knows the
// others' from their headers; the logits are one process's, bit for bit, in both precisions.
TEST(ExpertParallelCli, GptqCheckpointEqualsOneProcessBitwise) {
  QS_REQUIRE_MPI();
  const std::string dir = std::string(QS_FIXTURES) + "/model/v3-tiny";
  TempDir d("epgptq");
  const std::string model = d / "int4";
  auto r = run_shell(qiusuo_bin() + " quantize --model " + dir + " --to int4 --out " + model + " 2>&1", 120);
  ASSERT_EQ(r.code, 0) << r.out;
  int64_t B = 0, P = 0;
  const std::string ids = fixture_ids(dir, &B, &P);
  for (const char* prec : {"f32", "bf16"}) {
    const std::string args = " logits --model " + model + " --ids '" + ids + "' --mode decode --precision " + prec;
    const auto one = run_shell(qiusuo_bin() + args + " --threads 1 --out " + (d / "one.st"), 120);
    ASSERT_EQ(one.code, 0) << one.err;
    const auto ep = run_shell(mpirun_cmd(2) + qiusuo_bin() + args + " --expert-parallel --out " + (d / "ep.st"), 180);
    ASSERT_EQ(ep.code, 0) << ep.err;
    EXPECT_THAT(ep.err, HasSubstr("expert parallel over 2 ranks"));
    const auto a = SafetensorsFile::open(d / "one.st"), b = SafetensorsFile::open(d / "ep.st");
    const TensorView& la = *a.find("logits");
    const TensorView& lb = *b.find("logits");
    ASSERT_EQ(la.shape, lb.shape);
    EXPECT_EQ(std::memcmp(la.data, lb.data, la.nbytes), 0) << prec << ": not bitwise one process's";
  }
}

TEST(ExpertParallelCli, CommandsThatDoNotRunDistributedRefuse) {
  QS_REQUIRE_MPI();
  const std::string model = std::string(QS_FIXTURES) + "/model/v3-tiny";
  auto r = run_shell(mpirun_cmd(2) + qiusuo_bin() + " info --model " + model, 60);
  EXPECT_NE(r.code, 0);
  EXPECT_THAT(r.err, HasSubstr("qiusuo info does not run distributed, but mpirun started it as 2 ranks"));
  r = run_shell(mpirun_cmd(2) + qiusuo_bin() + " generate --model " + model + " --ids 1,2 -n 2", 60);
  EXPECT_NE(r.code, 0);
  EXPECT_THAT(r.err, HasSubstr("inference runs distributed only with --expert-parallel"));
  EXPECT_EQ(r.out, "") << "no rank may print results";
}

}  // namespace
}  // namespace qs
