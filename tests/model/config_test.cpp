#include "qiusuo/model/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "qiusuo/core/error.h"
#include "qiusuo/io/file.h"
#include "qiusuo/model/transformer.h"
#include "test_util.h"

namespace qs {
namespace {

using ::testing::HasSubstr;
using json = nlohmann::json;

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

json fixture_config(const std::string& name) {
  return json::parse(read_text_file(std::string(QS_FIXTURES) + "/model/" + name + "/config.json"));
}

TEST(Config, ParsesEveryFixture) {
  for (const char* name : {"v3-tiny", "v2-tiny", "v2-lite-tiny", "v3-tiny-fp8"}) {
    ModelConfig c = parse_model_config(fixture_config(name));
    EXPECT_GT(c.hidden_size, 0) << name;
  }
  ModelConfig v2l = parse_model_config(fixture_config("v2-lite-tiny"));
  EXPECT_EQ(v2l.q_lora_rank, 0);  // null: direct q_proj
  EXPECT_EQ(v2l.topk_method, TopkMethod::Greedy);
  EXPECT_EQ(v2l.scoring_func, ScoringFunc::Softmax);
  ASSERT_TRUE(v2l.rope_scaling.has_value());
  EXPECT_DOUBLE_EQ(v2l.rope_scaling->mscale_all_dim, 0.707);
  ModelConfig v3 = parse_model_config(fixture_config("v3-tiny"));
  EXPECT_EQ(v3.topk_method, TopkMethod::NoauxTc);
  EXPECT_EQ(v3.num_nextn_predict_layers, 1);
  EXPECT_TRUE(parse_model_config(fixture_config("v3-tiny-fp8")).fp8);
  EXPECT_FALSE(parse_model_config(fixture_config("v2-tiny")).rope_scaling.has_value());
}

TEST(Config, SoftmaxScaleIncludesYarnMscale) {
  ModelConfig c = parse_model_config(fixture_config("v2-lite-tiny"));
  const double m = 0.1 * 0.707 * std::log(40.0) + 1.0;
  EXPECT_NEAR(c.softmax_scale(), m * m / std::sqrt(double(c.qk_head_dim())), 1e-12);
  EXPECT_DOUBLE_EQ(c.rope_attention_factor(), 1.0);
}

TEST(Config, BadValuesNameTheField) {
  auto err = [&](const std::function<void(json&)>& edit) {
    json j = fixture_config("v3-tiny");
    edit(j);
    return error_of([&] { parse_model_config(j); });
  };
  EXPECT_THAT(err([](json& j) { j["model_type"] = "llama"; }), HasSubstr("field 'model_type'"));
  EXPECT_THAT(err([](json& j) { j.erase("hidden_size"); }), HasSubstr("field 'hidden_size' is missing"));
  EXPECT_THAT(err([](json& j) { j["kv_lora_rank"] = -4; }), HasSubstr("field 'kv_lora_rank' must be positive"));
  EXPECT_THAT(err([](json& j) { j["num_experts_per_tok"] = 99; }), HasSubstr("field 'num_experts_per_tok'"));
  EXPECT_THAT(err([](json& j) { j["n_group"] = 5; }), HasSubstr("field 'n_group'"));
  EXPECT_THAT(err([](json& j) { j["topk_group"] = 9; }), HasSubstr("field 'topk_group'"));
  EXPECT_THAT(err([](json& j) { j["topk_method"] = "best"; }), HasSubstr("field 'topk_method'"));
  EXPECT_THAT(err([](json& j) { j["scoring_func"] = "relu"; }), HasSubstr("field 'scoring_func'"));
  EXPECT_THAT(err([](json& j) { j["num_key_value_heads"] = 2; }), HasSubstr("field 'num_key_value_heads'"));
  EXPECT_THAT(err([](json& j) { j["qk_rope_head_dim"] = 15; }), HasSubstr("must be even"));
  EXPECT_THAT(err([](json& j) { j["rope_scaling"]["type"] = "linear"; }), HasSubstr("field 'rope_scaling'"));
  EXPECT_THAT(err([](json& j) { j["hidden_size"] = "big"; }), HasSubstr("field 'hidden_size' must be an integer"));
  EXPECT_THAT(err([](json& j) { j["eos_token_id"] = 100000; }), HasSubstr("field 'eos_token_id'"));
  EXPECT_THAT(err([](json& j) { j["rms_norm_eps"] = 0; }), HasSubstr("field 'rms_norm_eps'"));
}

// GPTQ quantization_config: GPTQModel's per-module overrides ("dynamic") are accepted when the
// loader can read what they declare (each tensor's bits and group come from its shapes), and
// name the pattern and field otherwise.
TEST(Config, GptqDynamicOverrides) {
  auto with = [&](const json& dynamic) {
    json j = fixture_config("v3-tiny");
    j["quantization_config"] = {{"quant_method", "gptq"}, {"bits", 4}, {"group_size", 64}, {"sym", true},
                                {"desc_act", false}};
    if (!dynamic.is_null()) j["quantization_config"]["dynamic"] = dynamic;
    return j;
  };
  EXPECT_EQ(parse_model_config(with(nullptr)).gptq_bits, 4);
  EXPECT_EQ(parse_model_config(with({{"+:^lm_head$", {{"bits", 8}}},
                                     {"-:.*shared_experts.*", json::object()},
                                     {".*\\.3\\..*", {{"bits", 8}, {"group_size", 128}}}}))
                .gptq_bits,
            4);
  auto err = [&](const json& dynamic) { return error_of([&] { parse_model_config(with(dynamic)); }); };
  EXPECT_THAT(err({{"+:^lm_head$", {{"bits", 3}}}}),
              HasSubstr("field 'quantization_config.dynamic['+:^lm_head$'].bits' must be 4 or 8, got 3"));
  EXPECT_THAT(err({{"+:^lm_head$", {{"sym", false}}}}), HasSubstr("dynamic['+:^lm_head$'].sym' must be true"));
  EXPECT_THAT(err({{".*", {{"desc_act", true}}}}), HasSubstr("dynamic['.*'].desc_act' must be false"));
  EXPECT_THAT(err({{"+:x", 8}}), HasSubstr("'+:x' must map to an object of overrides, got 8"));
  EXPECT_THAT(err(json::array({1})), HasSubstr("field 'quantization_config.dynamic' must be an object"));
}

// The fixtures use rms_norm_eps 1e-6 and cannot tell it from 1e-5 (3e-5 on the logits): check
// directly that the value is read and used.
TEST(Config, RmsNormEpsIsReadAndUsed) {
  testing_util::TempDir d("eps");
  const std::string src = std::string(QS_FIXTURES) + "/model/v3-tiny";
  std::filesystem::create_symlink(src + "/model.safetensors", d / "model.safetensors");
  auto logits_with = [&](double eps) {
    json j = fixture_config("v3-tiny");
    j["rms_norm_eps"] = eps;
    write_text_file_atomic(d / "config.json", j.dump());
    auto m = Model::load(d.path);
    EXPECT_EQ(m->config().rms_norm_eps, eps);
    KVCache cache(m->config(), 64, 1);
    StepBatch b;
    std::vector<int32_t> ids{5, 17, 300, 2, 99, 4};
    cache.append(b, cache.add_sequence(), ids.data(), int64_t(ids.size()));
    std::vector<int64_t> rows{0, 1, 2, 3, 4, 5};
    std::vector<float> out(rows.size() * 512);
    m->forward(b, cache.pool(), rows, out.data());
    return out;
  };
  const auto a = logits_with(1e-6), b = logits_with(1e-5), c = logits_with(1e-2);
  double dab = 0, dac = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    dab = std::max(dab, double(std::fabs(a[i] - b[i])));
    dac = std::max(dac, double(std::fabs(a[i] - c[i])));
  }
  EXPECT_GT(dab, 1e-6);  // eps changes the output...
  EXPECT_LT(dab, 1e-3);  // ...slightly, as expected for 1e-6 vs 1e-5
  EXPECT_GT(dac, 1e-3);
}

}  // namespace
}  // namespace qs
