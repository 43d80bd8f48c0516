// `qiusuo quantize` end to end on a checkpoint of DeepSeek-V2-Lite's real widths (hidden 2048,
// dense FFN 10944, experts 1408; fewer experts, 2 layers and a smaller vocabulary, ~0.6 GB in
// BF16): memory stays bounded by a tensor, not the model (the stated bound: peak RSS under
// 160 MB, a quarter of the input; full-depth V2-Lite measured 97-99 MB, docs/quantization.md),
// --group auto picks 64 for the 10944-wide FFN, the outputs load and give finite logits, and bad
// arguments are clear errors with nothing written. And `qiusuo init`, which writes such
// checkpoints, holds one tensor at a time (InitCli).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "cli/cli_util.h"
#include "qiusuo/io/file.h"
#include "qiusuo/io/safetensors.h"
#include "test_util.h"

namespace qs {
namespace {

using ::testing::HasSubstr;
using testing_util::peak_rss_mb;
using testing_util::qiusuo;
using testing_util::TempDir;
using testing_util::write_small_v2_lite_config;

// `qiusuo init` holds one tensor at a time, not a shard: a 632 MB BF16 checkpoint of V2-Lite's
// widths (2 layers, 16 experts, a 16000-token vocabulary) written as one shard and as shards of
// 0.1 GB peaks at ~205-220 MB (the embedding's F32 fill, 131 MB, and its BF16 copy); the stated
// bound is 320 MB. (Holding each shard's tensors until it was written peaked at 760 MB in one
// shard, 420 MB in shards, and grew by ~2.5 GB a shard at full depth.) The files are the same.
TEST(InitCli, MemoryBoundedByATensorNotAShard) {
  TempDir d("initcli");
  write_small_v2_lite_config(d / "config.json");
  for (const std::string shard : {"4", "0.1"}) {
    int code = -1;
    const double mb =
        peak_rss_mb({"init", "--config", d / "config.json", "--out", d / ("m" + shard), "--shard-gb", shard}, code);
    ASSERT_EQ(code, 0) << "shard " << shard;
    EXPECT_GT(mb, 0.0);
    EXPECT_LT(mb, 320.0) << "init with shards of " << shard << " GB held more than a tensor's worth of memory";
  }
  // Both layouts hold the same tensors.
  const TensorStore one = TensorStore::open_dir(d / "m4"), many = TensorStore::open_dir(d / "m0.1");
  for (const char* name : {"model.embed_tokens.weight", "model.layers.1.mlp.experts.15.down_proj.weight", "lm_head.weight"}) {
    const auto& a = one.get(name);
    const auto& b = many.get(name);
    ASSERT_EQ(a.nbytes, b.nbytes) << name;
    EXPECT_EQ(std::memcmp(a.data, b.data, a.nbytes), 0) << name;
  }
}

TEST(QuantizeCli, BoundedMemoryAutoGroupAndLoadableOutput) {
  TempDir d("quantcli");
  write_small_v2_lite_config(d / "config.json");
  auto r = qiusuo("init --config " + (d / "config.json") + " --out " + (d / "bf16") + " --dtype bf16");
  ASSERT_EQ(r.code, 0) << r.err;
  double in_bytes = 0;
  for (const auto& e : std::filesystem::directory_iterator(d / "bf16"))
    if (e.path().extension() == ".safetensors") in_bytes += double(std::filesystem::file_size(e.path()));
  ASSERT_GT(in_bytes, 5e8);

  for (const std::string to : {"int4", "fp8", "int4-head", "fp8-head"}) {
    SCOPED_TRACE(to);
    const bool head = to.size() > 5 && to.substr(to.size() - 5) == "-head";
    const std::string fmt = head ? to.substr(0, to.size() - 5) : to;
    r = qiusuo("quantize --model " + (d / "bf16") + " --to " + fmt + " --out " + (d / to) + " --json" +
               (head ? " --quantize-head" : ""));
    ASSERT_EQ(r.code, 0) << r.err;
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_LT(j["peak_rss_mb"].get<double>(), 160.0) << "quantize held more than a tensor's worth of memory";
    EXPECT_LT(j["peak_rss_mb"].get<double>() * 1e6, in_bytes / 4);
    EXPECT_EQ(j["group"].get<int>(), fmt == "fp8" ? 128 : 64);  // 10944 = 64 x 171
    EXPECT_EQ(j["input_quantized"], false);
    // The LM head: as it was (BF16) unless --quantize-head.
    {
      const TensorStore st = TensorStore::open_dir(d / to);
      if (!head) EXPECT_EQ(st.get("lm_head.weight").dtype, DType::BF16);
      else if (fmt == "int4") EXPECT_NE(st.find("lm_head.qweight"), nullptr);
      else EXPECT_EQ(st.get("lm_head.weight").dtype, DType::F8_E4M3);
    }
    const auto cfg = nlohmann::json::parse(read_text_file(d / (to + "/config.json")));
    if (fmt == "int4") {
      EXPECT_EQ(cfg["quantization_config"]["group_size"], 64);
    }
    // The output loads and runs: finite logits for two positions.
    r = qiusuo("logits --model " + (d / to) + " --ids 1,2 --mode prefill --out " + (d / (to + ".safetensors")));
    ASSERT_EQ(r.code, 0) << r.err;
    auto got = SafetensorsFile::open(d / (to + ".safetensors"));
    const TensorView* l = got.find("logits");
    ASSERT_NE(l, nullptr);
    ASSERT_EQ(l->shape, (Shape{1, 2, 16000}));
    for (int64_t i = 0; i < l->numel(); ++i) ASSERT_TRUE(std::isfinite(l->as<float>()[i])) << i;
  }

  // The INT4 output's head to INT8 (--head-to): its integer tensors pass through, the head is
  // quantized alone, and the result loads and runs.
  r = qiusuo("quantize --model " + (d / "int4") + " --to int4 --head-to int8 --out " + (d / "int4h8") + " --json");
  ASSERT_EQ(r.code, 0) << r.err;
  {
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["head_format"], "int8");
    EXPECT_EQ(j["input_quantized"], true);  // the rest passed through
    EXPECT_EQ(j["quantized"], 1);
    EXPECT_EQ(j["group"], 64);
    const TensorStore st = TensorStore::open_dir(d / "int4h8");
    EXPECT_EQ(st.get("lm_head.qweight").shape, (Shape{2048 / 4, 16000}));  // 8 bits: 4 per word
    const auto cfg = nlohmann::json::parse(read_text_file(d / "int4h8/config.json"));
    EXPECT_EQ(cfg["quantization_config"]["dynamic"]["+:^lm_head$"]["bits"], 8);
    r = qiusuo("logits --model " + (d / "int4h8") + " --ids 1,2 --mode prefill --out " + (d / "int4h8.safetensors"));
    ASSERT_EQ(r.code, 0) << r.err;
  }
  r = qiusuo("quantize --model " + (d / "bf16") + " --to int4 --head-to fp8 --out " + (d / "bad"));
  EXPECT_NE(r.code, 0);
  EXPECT_THAT(r.err, HasSubstr("--head-to fp8 with --to int4 is not supported"));

  // Bad arguments: clear errors, no output directory.
  r = qiusuo("quantize --model " + (d / "bf16") + " --to int4 --group 100 --out " + (d / "bad"));
  EXPECT_NE(r.code, 0);
  EXPECT_THAT(r.err, HasSubstr("--group '100' is not supported (32, 64, 128 or auto)"));
  r = qiusuo("quantize --model " + (d / "bf16") + " --to int4 --group 128 --out " + (d / "bad"));
  EXPECT_NE(r.code, 0);
  EXPECT_THAT(r.err, HasSubstr("the group size 128 does not divide its width 10944"));
  r = qiusuo("quantize --model " + (d / "bf16") + " --to nf4 --out " + (d / "bad"));
  EXPECT_NE(r.code, 0);
  EXPECT_THAT(r.err, HasSubstr("unknown format 'nf4'"));
  EXPECT_FALSE(std::filesystem::exists(d / "bad"));
}

}  // namespace
}  // namespace qs
