// The `qiusuo` command end to end, through its machine-readable interfaces: logits against the
// official reference fixtures (prefill and decode, ragged batches), tokenize/render against the
// Hugging Face fixtures, and clear errors with a non-zero exit for bad input.
#include <gmock/gmock.h>
#include <gtest/gtest.h>


#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "qiusuo/core/dtype.h"
#include "qiusuo/io/file.h"
#include "qiusuo/io/safetensors.h"
#include "cli/cli_util.h"
#include "test_util.h"

namespace qs {
namespace {

using ::testing::HasSubstr;
using json = nlohmann::json;

using testing_util::CmdResult;
using testing_util::qiusuo;

std::string fixtures() { return QS_FIXTURES; }

class LogitsCli : public ::testing::TestWithParam<std::string> {};

// Runs `qiusuo logits --model model_dir` on prompts taken from the fixture: row i of the batch is
// the fixture's sequence seqs[i].first cut to seqs[i].second tokens. Compares every real position
// with the reference prefill logits; padded positions must be zero.
void check_logits_rows(const std::string& fixture_dir, const std::string& model_dir, const std::string& mode,
                       const std::vector<std::pair<int64_t, int64_t>>& seqs) {
  auto exp = SafetensorsFile::open(fixture_dir + "/expected.safetensors");
  const TensorView& in = *exp.find("input_ids");
  const TensorView& want = *exp.find("prefill_logits");
  const int64_t P = in.shape[1], V = want.shape[2];
  const int64_t B = int64_t(seqs.size());
  std::string ids;
  int64_t S = 0;
  for (int64_t i = 0; i < B; ++i) {
    const auto [b, n] = seqs[size_t(i)];
    ASSERT_LE(n, P);
    S = std::max(S, n);
    if (i) ids += ";";
    for (int64_t t = 0; t < n; ++t) ids += (t ? "," : "") + std::to_string(in.as<int64_t>()[b * P + t]);
  }
  if (std::getenv("QS_VERBOSE")) std::fprintf(stderr, "ids: %s\n", ids.c_str());
  testing_util::TempDir d("logits");
  const CmdResult r =
      qiusuo("logits --model " + model_dir + " --ids '" + ids + "' --mode " + mode + " --out " + (d / "l.safetensors"));
  ASSERT_EQ(r.code, 0) << r.err;
  auto got = SafetensorsFile::open(d / "l.safetensors");
  const TensorView* l = got.find("logits");
  ASSERT_NE(l, nullptr);
  ASSERT_EQ(l->dtype, DType::F32);
  ASSERT_EQ(l->shape, (Shape{B, S, V}));
  float mx = 0;
  for (int64_t i = 0; i < want.numel(); ++i) mx = std::max(mx, std::fabs(want.as<float>()[i]));
  float worst = 0;
  for (int64_t i = 0; i < B; ++i)
    for (int64_t t = 0; t < S; ++t)
      for (int64_t v = 0; v < V; ++v) {
        const float g = l->as<float>()[(i * S + t) * V + v];
        if (t >= seqs[size_t(i)].second) {
          ASSERT_EQ(g, 0.0f) << "padding must be zero";
          continue;
        }
        worst = std::max(worst, std::fabs(g - want.as<float>()[(seqs[size_t(i)].first * P + t) * V + v]));
      }
  EXPECT_LE(worst, 1e-4f * mx) << model_dir << " " << mode;
}

// The fixture's own prompts, sequence b cut to cut[b] tokens (all P when cut is empty).
void check_logits(const std::string& dir, const std::string& mode, const std::vector<int64_t>& cut) {
  const SafetensorsFile exp = SafetensorsFile::open(dir + "/expected.safetensors");
  const TensorView& in = *exp.find("input_ids");
  std::vector<std::pair<int64_t, int64_t>> seqs;
  for (int64_t b = 0; b < in.shape[0]; ++b) seqs.push_back({b, cut.empty() ? in.shape[1] : cut[size_t(b)]});
  check_logits_rows(dir, dir, mode, seqs);
}

TEST_P(LogitsCli, PrefillMatchesReference) { check_logits(GetParam(), "prefill", {}); }
TEST_P(LogitsCli, DecodeMatchesReference) { check_logits(GetParam(), "decode", {}); }
TEST_P(LogitsCli, RaggedBatchesBothModes) {
  const int64_t P = SafetensorsFile::open(GetParam() + "/expected.safetensors").find("input_ids")->shape[1];
  check_logits(GetParam(), "prefill", {7, P});
  check_logits(GetParam(), "decode", {P, 3});
}

// The same weights stored as F32 in three shards that split every layer's tensors across files
// (tensor i of the sorted names in shard i % 3, with model.safetensors.index.json), asked for a
// batch of 3 ragged sequences: the form of the held-back checks. FP8 weights are dequantized
// with their 128x128 block scales (the F32 values the FP8 path computes with) and the
// quantization_config dropped.
TEST_P(LogitsCli, F32ShardsSplittingLayersBatchOf3) {
  const std::string dir = GetParam();
  const json cfg = json::parse(read_text_file(dir + "/config.json"));
  const TensorStore store = TensorStore::open_dir(dir);
  testing_util::TempDir out("f32shards");
  std::vector<std::vector<float>> data;
  std::array<SafetensorsWriter, 3> shards;
  json index = {{"metadata", {{"total_size", 0}}}, {"weight_map", json::object()}};
  size_t total = 0;
  std::vector<std::string> names;
  for (const auto& n : store.names())
    if (!n.ends_with("_scale_inv")) names.push_back(n);
  data.reserve(names.size());
  for (size_t i = 0; i < names.size(); ++i) {
    const TensorView& t = store.get(names[i]);
    std::vector<float> f(size_t(t.numel()));
    for (int64_t k = 0; k < t.numel(); ++k) {
      switch (t.dtype) {
        case DType::F32: f[size_t(k)] = t.as<float>()[k]; break;
        case DType::BF16: f[size_t(k)] = bf16_to_f32(t.as<uint16_t>()[k]); break;
        case DType::F16: f[size_t(k)] = f16_to_f32(t.as<uint16_t>()[k]); break;
        case DType::F8_E4M3: {
          const TensorView& sc = store.get(names[i] + "_scale_inv");
          const int64_t cols = t.shape[1], r = k / cols, col = k % cols;
          f[size_t(k)] = fp8e4m3_to_f32(t.as<uint8_t>()[k]) * sc.as<float>()[(r / 128) * sc.shape[1] + col / 128];
          break;
        }
        default: FAIL() << names[i] << ": unexpected dtype";
      }
    }
    data.push_back(std::move(f));
    const std::string file = "model-0000" + std::to_string(i % 3 + 1) + "-of-00003.safetensors";
    shards[i % 3].add(names[i], DType::F32, t.shape, data.back().data());
    index["weight_map"][names[i]] = file;
    total += data.back().size() * sizeof(float);
  }
  for (size_t k = 0; k < 3; ++k) shards[k].write(out / ("model-0000" + std::to_string(k + 1) + "-of-00003.safetensors"));
  index["metadata"]["total_size"] = total;
  write_text_file_atomic(out / "model.safetensors.index.json", index.dump());
  json c = cfg;
  c["torch_dtype"] = "float32";
  c.erase("quantization_config");
  write_text_file_atomic(out / "config.json", c.dump(2));
  const int64_t P = SafetensorsFile::open(dir + "/expected.safetensors").find("input_ids")->shape[1];
  check_logits_rows(dir, out.path, "prefill", {{1, P}, {0, P}, {1, 5}});
  check_logits_rows(dir, out.path, "decode", {{0, 4}, {1, P}, {0, P}});
}

INSTANTIATE_TEST_SUITE_P(Fixtures, LogitsCli, ::testing::ValuesIn(testing_util::model_fixture_dirs("expected.safetensors")),
                         [](const auto& info) { return testing_util::fixture_test_name(info.param); });

TEST(Cli, TokenizeMatchesEveryFixtureCase) {
  const json cases = json::parse(read_text_file(fixtures() + "/tokenizer/cases.json"));
  for (const char* tok : {"deepseek-v3", "deepseek-r1"}) {
    testing_util::TempDir d("tok");
    std::ofstream in(d / "in.jsonl");
    std::vector<json> mine;
    for (const auto& c : cases)
      if (c["tokenizer"] == tok) {
        in << json{{"text", c["text"]}}.dump() << "\n";
        mine.push_back(c);
      }
    in.close();
    for (bool special : {false, true}) {
      const CmdResult r = qiusuo(std::string("tokenize --tokenizer ") + fixtures() + "/tokenizer/" + tok + " --jsonl " +
                           (d / "in.jsonl") + (special ? " --add-special-tokens" : ""));
      ASSERT_EQ(r.code, 0) << r.err;
      std::istringstream lines(r.out);
      std::string line;
      size_t i = 0;
      while (std::getline(lines, line)) {
        ASSERT_LT(i, mine.size());
        EXPECT_EQ(json::parse(line)["ids"], mine[i][special ? "ids_with_special" : "ids"]) << mine[i]["text"];
        ++i;
      }
      EXPECT_EQ(i, mine.size());
    }
  }
  const CmdResult one = qiusuo("tokenize --model " + fixtures() + "/tokenizer/deepseek-v3 --text 'Hello world'");
  ASSERT_EQ(one.code, 0);
  EXPECT_EQ(one.out, "{\"ids\":[19923,2058]}\n");
}

TEST(Cli, RenderMatchesEveryChatCase) {
  const json cases = json::parse(read_text_file(fixtures() + "/tokenizer/chat_cases.json"));
  for (const char* tok : {"deepseek-v3", "deepseek-r1"}) {
    testing_util::TempDir d("render");
    std::ofstream in(d / "in.jsonl");
    std::vector<json> mine;
    for (const auto& c : cases)
      if (c["tokenizer"] == tok) {
        in << json{{"messages", c["messages"]}, {"add_generation_prompt", c["add_generation_prompt"]}}.dump() << "\n";
        mine.push_back(c);
      }
    in.close();
    const CmdResult r = qiusuo(std::string("render --tokenizer ") + fixtures() + "/tokenizer/" + tok + " --jsonl " + (d / "in.jsonl"));
    ASSERT_EQ(r.code, 0) << r.err;
    std::istringstream lines(r.out);
    std::string line;
    size_t i = 0;
    while (std::getline(lines, line)) {
      const json j = json::parse(line);
      EXPECT_EQ(j["rendered"], mine[i]["rendered"]);
      EXPECT_EQ(j["ids"], mine[i]["ids"]);
      ++i;
    }
    EXPECT_EQ(i, mine.size());
  }
}

TEST(Cli, BadInputIsAClearErrorWithNonZeroExit) {
  const std::string m = fixtures() + "/model/v3-tiny";
  CmdResult r = qiusuo("logits --model " + m + " --ids 1,2,99999 --out /tmp/x.safetensors");
  EXPECT_NE(r.code, 0);
  EXPECT_THAT(r.err, HasSubstr("token id 99999 is outside the vocabulary"));
  r = qiusuo("logits --model /nonexistent --ids 1 --out /tmp/x.safetensors");
  EXPECT_NE(r.code, 0);
  EXPECT_THAT(r.err, HasSubstr("qiusuo: error:"));
  r = qiusuo("logits --model " + m + " --ids 1,a --out /tmp/x.safetensors");
  EXPECT_NE(r.code, 0);
  EXPECT_THAT(r.err, HasSubstr("'a' is not an integer"));
  r = qiusuo("logits --model " + m + " --ids 1 --mode sideways --out /tmp/x.safetensors");
  EXPECT_NE(r.code, 0);
  testing_util::TempDir d("bad");
  {
    std::ofstream f(d / "bad.txt", std::ios::binary);
    f << "ok \xff\xfe";
  }
  r = qiusuo("tokenize --tokenizer " + fixtures() + "/tokenizer/deepseek-v3 --file " + (d / "bad.txt"));
  EXPECT_NE(r.code, 0);
  EXPECT_THAT(r.err, HasSubstr("UTF-8"));
  r = qiusuo("frobnicate");
  EXPECT_NE(r.code, 0);
  r = qiusuo("logits --help");
  EXPECT_EQ(r.code, 0);
  EXPECT_THAT(r.out, HasSubstr("padded with zeros"));
}

}  // namespace
}  // namespace qs
