// `qiusuo generate --jsonl/--completions/--logprobs --json` and `qiusuo score` through their
// contracts: one JSON line per completion in input order, log-probabilities equal to
// log-softmax of `qiusuo logits` at those positions (F32, every model fixture), batched greedy
// results equal to each prompt alone, clear errors for bad input.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cli/cli_util.h"
#include "qiusuo/io/safetensors.h"
#include "test_util.h"

namespace qs {
namespace {

using json = nlohmann::json;
using ::testing::HasSubstr;
using testing_util::qiusuo;
using testing_util::TempDir;

std::vector<json> lines_of(const std::string& out) {
  std::vector<json> v;
  std::istringstream in(out);
  std::string l;
  while (std::getline(in, l))
    if (!l.empty()) v.push_back(json::parse(l));
  return v;
}

std::string ids_csv(const std::vector<int32_t>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
  return s;
}

// log-softmax of the `qiusuo logits` output (F32 prefill) of `seq` at position p, token `tok`.
struct Logits {
  std::vector<float> v;
  int64_t V = 0;
  double logprob(int64_t p, int32_t tok) const {
    const float* l = v.data() + p * V;
    double m = -1e30, z = 0;
    for (int64_t i = 0; i < V; ++i) m = std::max(m, double(l[i]));
    for (int64_t i = 0; i < V; ++i) z += std::exp(double(l[i]) - m);
    return double(l[tok]) - m - std::log(z);
  }
};
Logits reference_logits(const std::string& model, const std::vector<int32_t>& seq, const TempDir& d) {
  const auto r = qiusuo("logits --model " + model + " --ids " + ids_csv(seq) + " --out " + (d / "l.safetensors"));
  EXPECT_EQ(r.code, 0) << r.err;
  auto f = SafetensorsFile::open(d / "l.safetensors");
  const TensorView& t = *f.find("logits");
  Logits out;
  out.V = t.shape[2];
  out.v.assign(t.as<float>(), t.as<float>() + t.numel());
  return out;
}

class GenerateCli : public ::testing::TestWithParam<std::string> {};

TEST_P(GenerateCli, LogprobsOfGeneratedAndScoredTokensMatchTheLogits) {
  const std::string model = GetParam();
  TempDir d("gencli");
  const std::vector<int32_t> prompt = {5, 17, 3, 99, 42, 8};
  const auto r = qiusuo("generate --model " + model + " --ids " + ids_csv(prompt) +
                        " --max-tokens 6 --temperature 0 --precision f32 --logprobs 2 --json");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto out = lines_of(r.out);
  ASSERT_EQ(out.size(), 1u);
  const json& g = out[0];
  for (const char* k : {"index", "tokens", "text", "logprobs", "top_logprobs", "finish_reason", "prompt_tokens",
                        "cached_tokens", "completion_tokens", "ttft_s", "decode_tokens_per_s"})
    EXPECT_TRUE(g.contains(k)) << k;
  const auto gen = g["tokens"].get<std::vector<int32_t>>();
  ASSERT_FALSE(gen.empty());
  ASSERT_EQ(g["logprobs"].size(), gen.size());
  ASSERT_EQ(g["top_logprobs"].size(), gen.size());
  std::vector<int32_t> all = prompt;
  all.insert(all.end(), gen.begin(), gen.end());
  const Logits ref = reference_logits(model, all, d);
  for (size_t t = 0; t < gen.size(); ++t) {
    const int64_t pos = int64_t(prompt.size() + t) - 1;
    EXPECT_NEAR(g["logprobs"][t].get<double>(), ref.logprob(pos, gen[t]), 1e-5) << model << " token " << t;
    ASSERT_EQ(g["top_logprobs"][t].size(), 2u);
    EXPECT_EQ(g["top_logprobs"][t][0]["id"], gen[t]);  // greedy: the chosen token is the most likely
    EXPECT_NEAR(g["top_logprobs"][t][1]["logprob"].get<double>(),
                ref.logprob(pos, g["top_logprobs"][t][1]["id"].get<int32_t>()), 1e-5);
  }
  // score: the same completion, and another one, batched.
  {
    std::ofstream f(d / "score.jsonl");
    f << json{{"prompt_ids", prompt}, {"completion_ids", gen}}.dump() << "\n";
    f << json{{"prompt_ids", {1, 2}}, {"completion_ids", {3, 4, 5}}}.dump() << "\n";
  }
  const auto s = qiusuo("score --model " + model + " --jsonl " + (d / "score.jsonl") + " --precision f32 --top-logprobs 3");
  ASSERT_EQ(s.code, 0) << s.err;
  const auto sc = lines_of(s.out);
  ASSERT_EQ(sc.size(), 2u);
  ASSERT_EQ(sc[0]["logprobs"].size(), gen.size());
  for (size_t t = 0; t < gen.size(); ++t)
    EXPECT_NEAR(sc[0]["logprobs"][t].get<double>(), ref.logprob(int64_t(prompt.size() + t) - 1, gen[t]), 1e-5);
  EXPECT_EQ(sc[0]["top_logprobs"][0].size(), 3u);
  const Logits ref2 = reference_logits(model, {1, 2, 3, 4, 5}, d);
  ASSERT_EQ(sc[1]["logprobs"].size(), 3u);
  for (int t = 0; t < 3; ++t) EXPECT_NEAR(sc[1]["logprobs"][t].get<double>(), ref2.logprob(1 + t, 3 + t), 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, GenerateCli, ::testing::ValuesIn(testing_util::model_fixture_dirs("config.json")),
                         [](const auto& info) { return testing_util::fixture_test_name(info.param); });

TEST(GenerateJsonl, ManyPromptsAndCompletionsInInputOrderEachAsAlone) {
  const std::string model = std::string(QS_FIXTURES) + "/model/v3-tiny";
  TempDir d("genjsonl");
  {
    std::ofstream f(d / "p.jsonl");
    f << R"({"ids":[5,6,7,8,9,10,11]})" << "\n";
    f << R"({"ids":[100,3], "max_tokens": 3})" << "\n";
    f << "\n";  // blank lines are skipped
    f << R"({"ids":[7,7,7,7,7,7,7,7,7,7,7,7], "temperature": 0.9, "seed": 4})" << "\n";
  }
  const auto r = qiusuo("generate --model " + model + " --jsonl " + (d / "p.jsonl") +
                        " --completions 3 --max-tokens 5 --temperature 0 --logprobs 1 --json");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto out = lines_of(r.out);
  ASSERT_EQ(out.size(), 9u);
  for (size_t i = 0; i < out.size(); ++i) {
    EXPECT_EQ(out[i]["index"], i);
    EXPECT_EQ(out[i]["prompt_index"], i / 3);
    EXPECT_EQ(out[i]["logprobs"].size(), out[i]["tokens"].size());
    for (const auto& top : out[i]["top_logprobs"]) EXPECT_EQ(top.size(), 1u);
  }
  EXPECT_EQ(out[3]["tokens"].size(), 3u);  // per-line max_tokens
  EXPECT_EQ(out[3]["finish_reason"], "length");
  EXPECT_EQ(out[0]["prompt_tokens"], 7);
  EXPECT_EQ(out[1]["cached_tokens"], 7);  // forked samples share the computed prompt
  // Greedy samples of one prompt are identical, and equal the prompt run alone.
  EXPECT_EQ(out[0]["tokens"], out[1]["tokens"]);
  EXPECT_EQ(out[0]["tokens"], out[2]["tokens"]);
  const auto alone = lines_of(qiusuo("generate --model " + model + " --ids 5,6,7,8,9,10,11 --max-tokens 5 "
                                     "--temperature 0 --json").out);
  ASSERT_EQ(alone.size(), 1u);
  EXPECT_EQ(alone[0]["tokens"], out[0]["tokens"]);
  EXPECT_EQ(alone[0]["logprobs"], out[0]["logprobs"]);  // bitwise: batching changes nothing
  // Sampled completions of one prompt use seeds seed, seed+1, ...: distinct, and reproducible.
  EXPECT_NE(out[6]["tokens"], out[7]["tokens"]);
  const auto again = lines_of(qiusuo("generate --model " + model + " --ids 7,7,7,7,7,7,7,7,7,7,7,7 --max-tokens 5 "
                                     "--temperature 0.9 --seed 5 --json").out);
  EXPECT_EQ(again[0]["tokens"], out[7]["tokens"]);
}

TEST(GenerateJsonl, BadInputIsAClearError) {
  const std::string model = std::string(QS_FIXTURES) + "/model/v3-tiny";
  TempDir d("genbad");
  auto run_with = [&](const std::string& content) {
    std::ofstream(d / "p.jsonl") << content;
    return qiusuo("generate --model " + model + " --jsonl " + (d / "p.jsonl") + " --max-tokens 2 --json");
  };
  auto r = run_with("{\"ids\": [1, 2]}\n{not json\n");
  EXPECT_NE(r.code, 0);
  EXPECT_THAT(r.err, HasSubstr("p.jsonl:2"));
  r = run_with("{\"text\": \"x\"}\n");
  EXPECT_NE(r.code, 0);
  EXPECT_THAT(r.err, HasSubstr("\"prompt\""));
  r = run_with("{\"ids\": [1, 100000]}\n");
  EXPECT_NE(r.code, 0);
  EXPECT_THAT(r.err, HasSubstr("outside the vocabulary"));
  r = run_with("{\"ids\": [1], \"temperature\": -1}\n");
  EXPECT_NE(r.code, 0);
  EXPECT_THAT(r.err, HasSubstr("temperature"));
  r = run_with("");
  EXPECT_NE(r.code, 0);
  EXPECT_THAT(r.err, HasSubstr("no prompts"));
  r = qiusuo("generate --model " + model + " --jsonl " + (d / "missing.jsonl"));
  EXPECT_NE(r.code, 0);
  EXPECT_THAT(r.err, HasSubstr("cannot open"));
  std::ofstream(d / "s.jsonl") << "{\"prompt_ids\": [], \"completion_ids\": [1]}\n";
  r = qiusuo("score --model " + model + " --jsonl " + (d / "s.jsonl"));
  EXPECT_NE(r.code, 0);
  EXPECT_THAT(r.err, HasSubstr("prompt_ids is empty"));
  std::ofstream(d / "s.jsonl") << "{\"prompt_ids\": [1], \"completion_ids\": \"x\"}\n";
  r = qiusuo("score --model " + model + " --jsonl " + (d / "s.jsonl"));
  EXPECT_NE(r.code, 0);
  EXPECT_THAT(r.err, HasSubstr("completion_ids"));
}

}  // namespace
}  // namespace qs
