// `--speculative auto` (infer/engine.h: choose_speculation): the bytes a decode step reads,
// counted from a checkpoint's headers, against a count over the checkpoint's own tensor list;
// the rule's decision on a deep model (MTP pays) and on a head-dominated one (it does not);
// checkpoints without an MTP module; the mode names.
#include <gtest/gtest.h>

#include <fstream>

#include "qiusuo/core/error.h"
#include "qiusuo/infer/engine.h"
#include "qiusuo/io/safetensors.h"
#include "qiusuo/model/init.h"
#include "qiusuo/model/weights.h"
#include "test_util.h"

namespace qs {
namespace {

using testing_util::TempDir;

// Every tensor of the checkpoint, by its name alone: an embedding table counts one row, a routed
// expert k/E of itself, MTP module tensors (layer >= num_hidden_layers) go to `mtp`.
DecodeReadBytes count_by_names(const ModelConfig& c, const TensorStore& st) {
  DecodeReadBytes b;
  for (const std::string& n : st.names()) {
    double bytes = double(st.get(n).nbytes);
    if (n.find("embed_tokens") != std::string::npos) bytes /= double(c.vocab_size);
    const bool routed = n.find(".experts.") != std::string::npos;
    if (routed) bytes *= double(c.num_experts_per_tok) / double(c.n_routed_experts);
    bool mtp = false;
    if (n.rfind("model.layers.", 0) == 0) mtp = std::stoll(n.substr(13)) >= c.num_hidden_layers;
    (mtp ? b.mtp : b.main) += bytes;
    if (routed && !mtp) b.routed += bytes;
  }
  return b;
}

ModelConfig write_model(const std::string& dir, nlohmann::json j, InitDType dtype = InitDType::BF16) {
  const ModelConfig c = parse_model_config(j);
  InitOptions o;
  o.dtype = dtype;
  write_random_checkpoint(c, dir, o);
  return c;
}

TEST(SpeculationChoice, BytesMatchACountOverTheCheckpointsTensors) {
  for (InitDType dt : {InitDType::BF16, InitDType::FP8}) {
    TempDir d("spec-bytes");
    auto j = testing_util::tiny_v3_config(300);
    j["hidden_size"] = 128;
    const ModelConfig c = write_model(d.path, j, dt);
    const TensorStore st = TensorStore::open_dir(d.path);
    const DecodeReadBytes got = checkpoint_decode_bytes(c, st), want = count_by_names(c, st);
    EXPECT_NEAR(got.main, want.main, 1e-6 * want.main);
    EXPECT_NEAR(got.routed, want.routed, 1e-6 * want.routed);
    EXPECT_NEAR(got.mtp, want.mtp, 1e-6 * want.mtp);
    EXPECT_GT(got.routed, 0);
    EXPECT_GT(got.mtp, 0);
  }
}

TEST(SpeculationChoice, OnWhereTheMainModelDominatesOffWhereTheHeadDoes) {
  {  // 16 dense layers and a small vocabulary: the MTP pass reads ~1/16 of a step
    TempDir d("spec-deep");
    auto j = testing_util::tiny_v3_config(64);
    j["num_hidden_layers"] = 16;
    j["first_k_dense_replace"] = 16;
    write_model(d.path, j);
    const SpeculationChoice c = choose_speculation(d.path);
    EXPECT_TRUE(c.on) << c.why;
    EXPECT_GT(c.speedup, 1.5) << c.why;
    EXPECT_LT(c.speedup, 1 + kExpectedAcceptance) << c.why;
  }
  {  // 2 layers and a large vocabulary: the MTP module's own head is as large as the model's
    TempDir d("spec-head");
    auto j = testing_util::tiny_v3_config(20000);
    write_model(d.path, j);
    const SpeculationChoice c = choose_speculation(d.path);
    EXPECT_FALSE(c.on) << c.why;
    EXPECT_GT(c.speedup, 0);
    EXPECT_LT(c.speedup, kMinSpeedup) << c.why;
    EXPECT_NE(c.why.find("off"), std::string::npos) << c.why;
  }
}

TEST(SpeculationChoice, NoModuleNoWeightsAndModeNames) {
  TempDir d("spec-none");
  auto j = testing_util::tiny_v3_config(64);
  j["num_nextn_predict_layers"] = 0;
  write_model(d.path, j);
  SpeculationChoice c = choose_speculation(d.path);
  EXPECT_FALSE(c.on);
  EXPECT_EQ(c.speedup, 0);
  EXPECT_NE(c.why.find("no MTP module"), std::string::npos) << c.why;
  // The config names a module the checkpoint does not hold (conversions that drop it).
  j["num_nextn_predict_layers"] = 1;
  std::ofstream(d.path + "/config.json") << j.dump();
  c = choose_speculation(d.path);
  EXPECT_FALSE(c.on);
  EXPECT_NE(c.why.find("no MTP weights"), std::string::npos) << c.why;

  EXPECT_EQ(speculative_mode_of("none"), SpeculativeMode::None);
  EXPECT_EQ(speculative_mode_of("mtp"), SpeculativeMode::Mtp);
  EXPECT_EQ(speculative_mode_of("auto"), SpeculativeMode::Auto);
  EXPECT_THROW(speculative_mode_of("eagle"), Error);
  EXPECT_TRUE(resolve_speculation(SpeculativeMode::Mtp, d.path).on);  // the engine checks the weights
  EXPECT_FALSE(resolve_speculation(SpeculativeMode::None, d.path).on);
  EXPECT_FALSE(resolve_speculation(SpeculativeMode::Auto, d.path).on);
}

}  // namespace
}  // namespace qs
