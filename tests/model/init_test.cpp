// `qiusuo init` checkpoints: the Hugging Face layout, loadable, FP8 blocks as the real release,
// deterministic, activations of order one.
#include "qiusuo/model/init.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "qiusuo/core/error.h"
#include "qiusuo/io/file.h"
#include "qiusuo/io/safetensors.h"
#include "qiusuo/model/transformer.h"
#include "test_util.h"

namespace qs {
namespace {

using testing_util::TempDir;
using ::testing::HasSubstr;

std::vector<float> run(Model& m, const std::vector<int32_t>& ids) {
  KVCache cache(m.config(), 256, 1);
  StepBatch b;
  cache.append(b, cache.add_sequence(), ids.data(), int64_t(ids.size()));
  std::vector<int64_t> rows;
  for (size_t i = 0; i < ids.size(); ++i) rows.push_back(int64_t(i));
  std::vector<float> out(ids.size() * size_t(m.config().vocab_size));
  m.forward(b, cache.pool(), rows, out.data());
  return out;
}

TEST(Init, WritesLoadableCheckpointsInEveryDtype) {
  TempDir d("init");
  const ModelConfig cfg = parse_model_config(testing_util::tiny_v3_config());
  std::vector<int32_t> ids{3, 9, 27, 81, 243, 7, 1, 0};
  std::vector<std::vector<float>> outs;
  for (auto dt : {InitDType::F32, InitDType::BF16, InitDType::FP8}) {
    const std::string dir = d / ("m" + std::to_string(int(dt)));
    InitOptions opt;
    opt.dtype = dt;
    opt.seed = 7;
    write_random_checkpoint(cfg, dir, opt);
    auto m = Model::load(dir);
    EXPECT_EQ(m->weights().mtp.size(), 1u);
    outs.push_back(run(*m, ids));
    // Logits of order one: not collapsed, not exploding.
    double s2 = 0;
    for (float x : outs.back()) s2 += double(x) * x;
    const double rms = std::sqrt(s2 / double(outs.back().size()));
    EXPECT_GT(rms, 0.2);
    EXPECT_LT(rms, 5.0);
  }
  // Same seed: BF16 and FP8 are roundings of the same F32 weights.
  auto rel = [&](const std::vector<float>& a, const std::vector<float>& b) {
    double num = 0, den = 0;
    for (size_t i = 0; i < a.size(); ++i) { num += double(a[i] - b[i]) * (a[i] - b[i]); den += double(a[i]) * a[i]; }
    return std::sqrt(num / den);
  };
  EXPECT_LT(rel(outs[0], outs[1]), 0.03);
  EXPECT_LT(rel(outs[0], outs[2]), 0.15);
  EXPECT_GT(rel(outs[0], outs[2]), 1e-4);
}

TEST(Init, Fp8LayoutMatchesTheOfficialRelease) {
  TempDir d("init");
  nlohmann::json j = testing_util::tiny_v3_config();
  j["hidden_size"] = 192;  // partial 128-blocks
  j["intermediate_size"] = 320;
  const ModelConfig cfg = parse_model_config(j);
  InitOptions opt;
  opt.dtype = InitDType::FP8;
  write_random_checkpoint(cfg, d.path, opt);
  auto s = TensorStore::open_dir(d.path);
  EXPECT_EQ(s.get("model.layers.0.mlp.down_proj.weight").dtype, DType::F8_E4M3);
  EXPECT_EQ(s.get("model.layers.0.mlp.down_proj.weight_scale_inv").shape, (Shape{2, 3}));
  EXPECT_EQ(s.get("model.layers.0.mlp.down_proj.weight_scale_inv").dtype, DType::F32);
  EXPECT_EQ(s.get("model.embed_tokens.weight").dtype, DType::BF16);
  EXPECT_EQ(s.get("lm_head.weight").dtype, DType::BF16);
  EXPECT_EQ(s.get("model.layers.1.mlp.gate.weight").dtype, DType::BF16);
  EXPECT_EQ(s.get("model.layers.1.mlp.gate.e_score_correction_bias").dtype, DType::F32);
  EXPECT_EQ(s.get("model.layers.2.eh_proj.weight").dtype, DType::BF16);
  EXPECT_EQ(s.get("model.layers.2.self_attn.q_a_proj.weight").dtype, DType::F8_E4M3);
  const auto cj = nlohmann::json::parse(read_text_file(d / "config.json"));
  EXPECT_EQ(cj["quantization_config"]["weight_block_size"], nlohmann::json({128, 128}));
  EXPECT_EQ(cj["quantization_config"]["fmt"], "e4m3");
}

TEST(Init, DeterministicAndSharded) {
  TempDir d("init");
  const ModelConfig cfg = parse_model_config(testing_util::tiny_v3_config());
  InitOptions opt;
  opt.seed = 3;
  opt.shard_bytes = 100000;
  write_random_checkpoint(cfg, d / "a", opt);
  write_random_checkpoint(cfg, d / "b", opt);
  EXPECT_TRUE(std::filesystem::exists(d / "a/model.safetensors.index.json"));
  auto a = TensorStore::open_dir(d / "a"), b = TensorStore::open_dir(d / "b");
  for (const auto& n : a.names()) {
    const auto& ta = a.get(n);
    ASSERT_EQ(std::memcmp(ta.data, b.get(n).data, ta.nbytes), 0) << n;
  }
  auto m = Model::load(d / "a");
  EXPECT_EQ(m->config().num_hidden_layers, 2);
}

TEST(Init, MissingTensorAndWrongShapeAreClearErrors) {
  TempDir d("init");
  const ModelConfig cfg = parse_model_config(testing_util::tiny_v3_config());
  write_random_checkpoint(cfg, d.path, {});
  // Wrong shape: claim a bigger hidden size in config.json.
  auto j = nlohmann::json::parse(read_text_file(d / "config.json"));
  j["kv_lora_rank"] = 40;
  write_text_file_atomic(d / "config.json", j.dump());
  try {
    Model::load(d.path);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("kv_a_proj_with_mqa.weight' has shape [40, 64] but the config implies [48, 64]"));
  }
  // Missing tensor: a layer more than the checkpoint has.
  j = nlohmann::json::parse(read_text_file(d / "config.json"));
  j["kv_lora_rank"] = 32;
  j["num_hidden_layers"] = 4;
  write_text_file_atomic(d / "config.json", j.dump());
  try {
    Model::load(d.path);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("is missing tensor 'model.layers.3."));
  }
}

}  // namespace
}  // namespace qs
