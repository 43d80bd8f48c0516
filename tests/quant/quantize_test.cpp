// qiusuo quantize (quant/quantize.h) on small random checkpoints:
//  - FP8: every projection becomes E4M3 + weight_scale_inv per 128x128 block, within
//    max(|w| 2^-4, s 2^-10) of the original (E4M3 rounding, subnormals below 2^-6 s), s the
//    block's scale; everything else byte-identical; config.json as DeepSeek-V3's release;
//  - INT8/INT4 (GPTQ): qweight/scales/qzeros/g_idx in the GPTQ layout, each weight within
//    s/2 + |w| 2^-10 of the original (round to nearest, s its group's F16 scale); the model
//    loader reads the result (I8/I4 matrices);
//  - --keep patterns, sharded output with an index, an FP8 input re-quantized;
//  - INT8 heads in an INT4 file (declared in quantization_config.dynamic), from the BF16
//    checkpoint or from its INT4 file (integer tensors passed through);
//  - errors before any output: unknown format, group not dividing a width, unsupported group,
//    an existing output; an interruption leaves no output and no temporary directory.
// Peak RSS and logits after quantization: tests/cli/quantize_cli_test.cpp.
#include "qiusuo/quant/quantize.h"

#include <gtest/gtest.h>

#include <csignal>
#include <cmath>
#include <filesystem>
#include <set>

#include "qiusuo/core/error.h"
#include "qiusuo/io/file.h"
#include "qiusuo/io/safetensors.h"
#include "qiusuo/kernels/int_weights.h"
#include "qiusuo/model/config.h"
#include "qiusuo/model/init.h"
#include "qiusuo/model/transformer.h"
#include "qiusuo/model/weights.h"
#include "model/stored_kv_b.h"
#include "test_util.h"

namespace qs {
namespace {
using testing_util::TempDir;
namespace fs = std::filesystem;

// A small DeepSeek-V3-like model whose widths are multiples of 128 (so every group size divides).
nlohmann::json small_config() {
  auto j = testing_util::tiny_v3_config(320);
  j["hidden_size"] = 128;
  j["intermediate_size"] = 256;
  j["moe_intermediate_size"] = 128;
  j["q_lora_rank"] = 128;
  j["kv_lora_rank"] = 128;
  j["qk_nope_head_dim"] = 32;
  j["qk_rope_head_dim"] = 32;
  j["v_head_dim"] = 64;
  return j;
}

std::string make_model(const TempDir& d, InitDType dt = InitDType::BF16, size_t shard_bytes = size_t(4) << 30) {
  const std::string dir = d / (dt == InitDType::FP8 ? "fp8" : "bf16");
  make_dirs(dir);
  InitOptions o;
  o.dtype = dt;
  o.seed = 3;
  o.shard_bytes = shard_bytes;
  write_random_checkpoint(parse_model_config(small_config()), dir, o);
  write_text_file_atomic(dir + "/tokenizer.json", "{\"model\": {}}\n");
  return dir;
}

float value(const TensorView& t, int64_t i) {
  switch (t.dtype) {
    case DType::BF16: return bf16_to_f32(t.as<uint16_t>()[i]);
    case DType::F32: return t.as<float>()[i];
    case DType::F16: return f16_to_f32(t.as<uint16_t>()[i]);
    default: return NAN;
  }
}

std::set<std::string> quantizable(const std::string& dir) {
  std::set<std::string> s;
  for (const auto& e : expected_tensors(load_model_config(dir)))
    if (e.quantizable) s.insert(e.name);
  return s;
}

TEST(Quantize, GlobMatch) {
  EXPECT_TRUE(glob_match("*", "a.b"));
  EXPECT_TRUE(glob_match("model.layers.?.mlp.*", "model.layers.3.mlp.up_proj.weight"));
  EXPECT_FALSE(glob_match("model.layers.?.mlp.*", "model.layers.13.mlp.up_proj.weight"));
  EXPECT_TRUE(glob_match("*.kv_b_proj.weight", "model.layers.0.self_attn.kv_b_proj.weight"));
  EXPECT_FALSE(glob_match("*.kv_b_proj.weight", "model.layers.0.self_attn.kv_b_proj.weight_scale_inv"));
  EXPECT_TRUE(glob_match("a*b*c", "aXbYbZc"));
  EXPECT_FALSE(glob_match("a*b*c", "aXbYbZ"));
}

TEST(Quantize, Fp8RoundTripWithinBound) {
  TempDir d("quant");
  const std::string in = make_model(d), out = d / "fp8-out";
  QuantizeOptions o;
  o.model_dir = in;
  o.out_dir = out;
  o.format = QuantFormat::Fp8;
  o.keep = {"model.layers.1.mlp.experts.3.*"};
  const QuantizeReport r = quantize_checkpoint(o);
  EXPECT_GT(r.quantized, 0u);
  const TensorStore a = TensorStore::open_dir(in), b = TensorStore::open_dir(out);
  const auto q = quantizable(in);
  size_t checked = 0;
  for (const std::string& name : a.names()) {
    const TensorView& w = a.get(name);
    const TensorView& v = b.get(name);
    const bool kept = !q.count(name) || glob_match(o.keep[0], name);
    if (kept) {
      ASSERT_EQ(v.dtype, w.dtype) << name;
      ASSERT_EQ(std::memcmp(v.data, w.data, w.nbytes), 0) << name;
      EXPECT_FALSE(b.find(name + "_scale_inv")) << name;
      continue;
    }
    ASSERT_EQ(v.dtype, DType::F8_E4M3) << name;
    const int64_t rows = w.shape[0], cols = w.shape[1], sc = (cols + 127) / 128;
    const TensorView& s = b.require(name + "_scale_inv", {(rows + 127) / 128, sc}, {DType::F32});
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) {
        const float orig = value(w, r * cols + c), scale = s.as<float>()[(r / 128) * sc + c / 128];
        const float deq = fp8e4m3_to_f32(v.as<uint8_t>()[r * cols + c]) * scale;
        ASSERT_LE(std::fabs(deq - orig), std::max(std::fabs(orig) * 0.0625f, scale * 0x1p-10f) * 1.0001f)
            << name << " [" << r << "][" << c << "]";
      }
    ++checked;
  }
  EXPECT_EQ(checked, r.quantized);
  const auto cfg = nlohmann::json::parse(read_text_file(out + "/config.json"));
  EXPECT_EQ(cfg["quantization_config"]["quant_method"], "fp8");
  EXPECT_EQ(cfg["quantization_config"]["fmt"], "e4m3");
  EXPECT_EQ(cfg["quantization_config"]["weight_block_size"], nlohmann::json::array({128, 128}));
  EXPECT_TRUE(load_model_config(out).fp8);
  EXPECT_TRUE(file_exists(out + "/tokenizer.json"));
  // The model loader reads it.
  const ModelWeights mw = load_weights(load_model_config(out), b);
  EXPECT_EQ(mw.layers[0].attn.o_proj.dtype, DType::F8_E4M3);
}

TEST(Quantize, IntRoundTripWithinBoundAndLoads) {
  TempDir d("quant");
  const std::string in = make_model(d);
  const auto q = quantizable(in);
  const TensorStore a = TensorStore::open_dir(in);
  for (QuantFormat f : {QuantFormat::Int8, QuantFormat::Int4})
    for (int64_t group : {32, 64, 128}) {
      SCOPED_TRACE(testing::Message() << quant_format_name(f) << " group " << group);
      const std::string out = d / (std::string(quant_format_name(f)) + "-" + std::to_string(group));
      QuantizeOptions o;
      o.model_dir = in;
      o.out_dir = out;
      o.format = f;
      o.group = group;
      quantize_checkpoint(o);
      const TensorStore b = TensorStore::open_dir(out);
      const int bits = f == QuantFormat::Int4 ? 4 : 8, per = 32 / bits;
      for (const std::string& name : a.names()) {
        const TensorView& w = a.get(name);
        if (!q.count(name)) {
          ASSERT_EQ(std::memcmp(b.get(name).data, w.data, w.nbytes), 0) << name;
          continue;
        }
        ASSERT_FALSE(b.find(name)) << name;
        const std::string base = name.substr(0, name.size() - 7);  // ".weight"
        const int64_t rows = w.shape[0], cols = w.shape[1];
        const TensorView& qz = b.require(base + ".qzeros", {cols / group, rows / per}, {DType::I32});
        for (int64_t i = 0; i < qz.numel(); ++i)
          ASSERT_EQ(qz.as<uint32_t>()[i], bits == 4 ? 0x77777777u : 0x7F7F7F7Fu) << name;
        const TensorView& gi = b.require(base + ".g_idx", {cols}, {DType::I32});
        for (int64_t c = 0; c < cols; ++c) ASSERT_EQ(gi.as<int32_t>()[c], c / group) << name;
        Buffer<float> storage;
        const WeightMatrix W = int_weights_from_gptq(
            base, {&b.get(base + ".qweight"), &b.get(base + ".scales"), &qz, &gi}, rows, cols, storage);
        const TensorView& sc = b.get(base + ".scales");
        std::vector<float> row(static_cast<size_t>(cols));
        for (int64_t r = 0; r < rows; ++r) {
          W.dequant_row(r, row.data());
          for (int64_t c = 0; c < cols; ++c) {
            const float orig = value(w, r * cols + c), s = f16_to_f32(sc.as<uint16_t>()[(c / group) * rows + r]);
            ASSERT_LE(std::fabs(row[size_t(c)] - orig), s * 0.5f + std::fabs(orig) * 0x1p-10f)
                << name << " [" << r << "][" << c << "]";
          }
        }
      }
      const auto cfg = nlohmann::json::parse(read_text_file(out + "/config.json"));
      const auto& qc = cfg["quantization_config"];
      EXPECT_EQ(qc["quant_method"], "gptq");
      EXPECT_EQ(qc["bits"], bits);
      EXPECT_EQ(qc["group_size"], group);
      EXPECT_EQ(qc["sym"], true);
      EXPECT_EQ(qc["desc_act"], false);
      EXPECT_EQ(qc["checkpoint_format"], "gptq");
      // The model loader reads GPTQ layers as I8/I4 matrices.
      const ModelConfig mc = load_model_config(out);
      EXPECT_EQ(mc.gptq_bits, bits);
      const ModelWeights mw = load_weights(mc, b);
      EXPECT_EQ(mw.layers[1].ffn.experts[2].down.dtype, bits == 4 ? DType::I4 : DType::I8);
      EXPECT_EQ(mw.layers[1].ffn.experts[2].down.group, group);
      EXPECT_EQ(mw.lm_head.dtype, DType::BF16);  // kept
    }
}

// An INT8 / INT4 kv_b is read as stored by absorbed decode (dequantized 16 rows at a time, the
// tile dequantization of every ISA) and gives the logits of its F32 copy bit for bit.
TEST(Quantize, IntKvBReadAsStoredEqualsItsF32Copy) {
  TempDir d("quant-kvb");
  const std::string in = make_model(d);
  for (QuantFormat f : {QuantFormat::Int8, QuantFormat::Int4}) {
    SCOPED_TRACE(quant_format_name(f));
    QuantizeOptions o;
    o.model_dir = in;
    o.out_dir = d / quant_format_name(f);
    o.format = f;
    o.group = 32;
    quantize_checkpoint(o);
    auto model = Model::load(o.out_dir);
    ASSERT_EQ(model->weights().layers[0].attn.kv_b_proj.dtype, f == QuantFormat::Int4 ? DType::I4 : DType::I8);
    std::vector<int32_t> input(2 * 5);
    for (size_t i = 0; i < input.size(); ++i) input[i] = int32_t((i * 37 + 11) % 320);
    test::expect_stored_kv_b_equals_f32_copy(*model, input, 2, 5);
  }
}

// A GPTQ checkpoint loaded to be described (WeightPlacement::describe, `qiusuo info`) is the
// loaded model without its tiles: every matrix with the dtype, shape, group and bytes of the
// repacked one (so the decode bytes agree) and no data, nothing copied; it refuses to run a step.
TEST(Quantize, IntDescribedIsTheLoadedModelWithoutItsTiles) {
  TempDir d("quant-describe");
  const std::string in = make_model(d);
  QuantizeOptions o;
  o.model_dir = in;
  o.out_dir = d / "int4";
  o.format = QuantFormat::Int4;
  o.group = 32;
  o.head_format = QuantFormat::Int8;
  quantize_checkpoint(o);
  const auto loaded = Model::load(o.out_dir);
  const auto described = Model::load(o.out_dir, true, {nullptr, false, false, /*describe=*/true});
  EXPECT_EQ(described->decode_weight_bytes_per_token(), loaded->decode_weight_bytes_per_token());
  EXPECT_EQ(described->weights().copies.bytes(), 0u);
  int64_t compared = 0;
  auto same = [&](const WeightMatrix& a, const WeightMatrix& b, const std::string& what) {
    EXPECT_EQ(a.dtype, b.dtype) << what;
    EXPECT_EQ(a.rows, b.rows) << what;
    EXPECT_EQ(a.cols, b.cols) << what;
    EXPECT_EQ(a.group, b.group) << what;
    EXPECT_EQ(a.bytes(), b.bytes()) << what;
    EXPECT_NE(a.data, nullptr) << what;
    if (b.is_int()) {
      EXPECT_EQ(b.data, nullptr) << what;
    }
    ++compared;
  };
  same(loaded->weights().lm_head, described->weights().lm_head, "lm_head");
  EXPECT_EQ(described->weights().lm_head.dtype, DType::I8);
  const auto &L = loaded->weights().layers, &D = described->weights().layers;
  ASSERT_EQ(L.size(), D.size());
  for (size_t l = 0; l < L.size(); ++l) {
    const std::string p = "layer " + std::to_string(l) + " ";
    const auto &a = L[l].attn, &b = D[l].attn;
    same(a.q_a_proj, b.q_a_proj, p + "q_a_proj");
    same(a.q_b_proj, b.q_b_proj, p + "q_b_proj");
    same(a.kv_a_proj, b.kv_a_proj, p + "kv_a_proj");
    same(a.kv_b_proj, b.kv_b_proj, p + "kv_b_proj");
    same(a.o_proj, b.o_proj, p + "o_proj");
    auto mlp = [&](const MlpWeights& x, const MlpWeights& y, const std::string& w) {
      same(x.gate, y.gate, p + w + " gate");
      same(x.up, y.up, p + w + " up");
      same(x.down, y.down, p + w + " down");
    };
    if (!L[l].moe) {
      mlp(L[l].mlp, D[l].mlp, "mlp");
      continue;
    }
    ASSERT_EQ(L[l].ffn.experts.size(), D[l].ffn.experts.size());
    for (size_t e = 0; e < L[l].ffn.experts.size(); ++e)
      mlp(L[l].ffn.experts[e], D[l].ffn.experts[e], "expert " + std::to_string(e));
    if (L[l].ffn.has_shared) mlp(L[l].ffn.shared, D[l].ffn.shared, "shared");
  }
  EXPECT_GT(compared, 20);
  KVPool kv(described->config(), 1, 16);
  StepBatch batch;
  const int32_t toks[2] = {1, 2};
  batch.add(std::vector<int32_t>{0}, 0, toks, 2);
  std::vector<float> logits(size_t(2 * described->config().vocab_size));
  const std::vector<int64_t> rows{0, 1};
  try {
    described->forward(batch, kv, rows, logits.data());
    ADD_FAILURE() << "a described model ran a step";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("described"), std::string::npos) << e.what();
  }
}

TEST(Quantize, Fp8InputToIntAndShardedOutput) {
  TempDir d("quant");
  const std::string in = make_model(d, InitDType::FP8);
  QuantizeOptions o;
  o.model_dir = in;
  o.out_dir = d / "int8";
  o.format = QuantFormat::Int8;
  o.group = 64;
  o.shard_gb = 0.0002;  // 200 KB shards
  o.keep = {"*.kv_a_proj_with_mqa.weight"};
  quantize_checkpoint(o);
  EXPECT_TRUE(file_exists(o.out_dir + "/model.safetensors.index.json"));
  EXPECT_FALSE(file_exists(o.out_dir + "/model.safetensors"));
  const TensorStore a = TensorStore::open_dir(in), b = TensorStore::open_dir(o.out_dir);
  // A kept FP8 projection becomes BF16: the FP8 value times its scale, rounded.
  const std::string kept = "model.layers.0.self_attn.kv_a_proj_with_mqa.weight";
  const TensorView &w = a.get(kept), &s = a.get(kept + "_scale_inv"), &v = b.get(kept);
  ASSERT_EQ(v.dtype, DType::BF16);
  EXPECT_FALSE(b.find(kept + "_scale_inv"));
  const int64_t cols = w.shape[1], sc = (cols + 127) / 128;
  for (int64_t i = 0; i < w.numel(); ++i) {
    const int64_t r = i / cols, c = i % cols;
    ASSERT_EQ(v.as<uint16_t>()[i], f32_to_bf16(fp8e4m3_to_f32(w.as<uint8_t>()[i]) * s.as<float>()[(r / 128) * sc + c / 128]));
  }
  // Quantized ones are GPTQ; the model loads.
  EXPECT_TRUE(b.find("model.layers.0.self_attn.o_proj.qweight"));
  const ModelWeights mw = load_weights(load_model_config(o.out_dir), b);
  EXPECT_EQ(mw.layers[0].attn.o_proj.dtype, DType::I8);
  EXPECT_EQ(mw.layers[0].attn.kv_a_proj.dtype, DType::BF16);
}

void expect_error(const QuantizeOptions& o, const std::string& want) {
  try {
    quantize_checkpoint(o);
    ADD_FAILURE() << "no error, want '" << want << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(o.out_dir)) << o.out_dir;
}

// An INT4 file with INT8 heads (--head-to int8): the heads (lm_head and the MTP module's
// shared_head.head) are GPTQ 8-bit within half a step, declared in quantization_config's
// "dynamic" overrides and "lm_head"; the loader reads them as I8 beside I4 projections. The
// same file results from the BF16 checkpoint directly and from its INT4 file (head kept) given
// --to int4 --head-to int8: the integer tensors pass through byte for byte, and so do the
// projections the INT4 file kept wide (--keep there, none here).
TEST(Quantize, IntHeadOfOtherBitsFromWideOrGptqInput) {
  TempDir d("quant-head");
  const std::string in = make_model(d);
  const TensorStore a = TensorStore::open_dir(in);
  const ModelConfig cfg = load_model_config(in);
  ASSERT_EQ(cfg.num_nextn_predict_layers, 1);
  const std::string mtp_head = "model.layers." + std::to_string(cfg.num_hidden_layers) + ".shared_head.head";
  QuantizeOptions o;
  o.model_dir = in;
  o.format = QuantFormat::Int4;
  o.group = 64;
  o.head_format = QuantFormat::Int8;
  o.keep = {"*.kv_a_proj_with_mqa.weight"};
  o.out_dir = d / "direct";
  quantize_checkpoint(o);
  QuantizeOptions k = o;  // INT4, heads kept in BF16
  k.head_format.reset();
  k.out_dir = d / "int4";
  const QuantizeReport rk = quantize_checkpoint(k);
  EXPECT_FALSE(rk.head_format);
  EXPECT_FALSE(rk.input_quantized);
  QuantizeOptions g = o;  // ... then their heads to INT8; what the input kept wide stays so
  g.model_dir = k.out_dir;
  g.group = 0;            // the input's
  g.keep.clear();
  g.out_dir = d / "via-gptq";
  const QuantizeReport rg = quantize_checkpoint(g);
  EXPECT_EQ(rg.quantized, 2u);  // the two heads
  EXPECT_TRUE(rg.input_quantized);
  EXPECT_EQ(rg.head_format, QuantFormat::Int8);
  EXPECT_EQ(rg.group, 64);

  const TensorStore b = TensorStore::open_dir(o.out_dir), c = TensorStore::open_dir(g.out_dir);
  ASSERT_EQ(b.names(), c.names());
  for (const std::string& name : b.names()) {
    const TensorView &x = b.get(name), &y = c.get(name);
    ASSERT_EQ(x.dtype, y.dtype) << name;
    ASSERT_EQ(x.shape, y.shape) << name;
    ASSERT_EQ(std::memcmp(x.data, y.data, x.nbytes), 0) << name;
  }
  for (const std::string& dir : {o.out_dir, g.out_dir}) {
    SCOPED_TRACE(dir);
    const auto qc = nlohmann::json::parse(read_text_file(dir + "/config.json"))["quantization_config"];
    EXPECT_EQ(qc["bits"], 4);
    EXPECT_EQ(qc["group_size"], 64);
    EXPECT_EQ(qc["lm_head"], true);
    const nlohmann::json want = {{"+:^lm_head$", {{"bits", 8}}},
                                 {"+:^model\\.layers\\.2\\.shared_head\\.head$", {{"bits", 8}}}};
    EXPECT_EQ(qc["dynamic"], want);
  }
  // The heads: 8-bit words ([K / 4, V]), within half a step of the BF16 values.
  for (const std::string& base : {std::string("lm_head"), mtp_head}) {
    SCOPED_TRACE(base);
    const TensorView& w = a.get(base + ".weight");
    const int64_t rows = w.shape[0], cols = w.shape[1];
    ASSERT_FALSE(b.find(base + ".weight"));
    const TensorView& qz = b.require(base + ".qzeros", {cols / 64, rows / 4}, {DType::I32});
    b.require(base + ".qweight", {cols / 4, rows}, {DType::I32});
    Buffer<float> storage;
    const WeightMatrix W = int_weights_from_gptq(
        base, {&b.get(base + ".qweight"), &b.get(base + ".scales"), &qz, &b.get(base + ".g_idx")}, rows, cols, storage);
    ASSERT_EQ(W.dtype, DType::I8);
    const TensorView& sc = b.get(base + ".scales");
    std::vector<float> row(static_cast<size_t>(cols));
    for (int64_t r = 0; r < rows; ++r) {
      W.dequant_row(r, row.data());
      for (int64_t col = 0; col < cols; ++col) {
        const float orig = value(w, r * cols + col), s = f16_to_f32(sc.as<uint16_t>()[(col / 64) * rows + r]);
        ASSERT_LE(std::fabs(row[size_t(col)] - orig), s * 0.5f + std::fabs(orig) * 0x1p-10f) << r << ", " << col;
      }
    }
  }
  const ModelConfig mc = load_model_config(o.out_dir);
  EXPECT_EQ(mc.gptq_bits, 4);
  const ModelWeights mw = load_weights(mc, b);
  EXPECT_EQ(mw.lm_head.dtype, DType::I8);
  EXPECT_EQ(mw.mtp[0].head.dtype, DType::I8);
  EXPECT_EQ(mw.layers[1].ffn.experts[2].down.dtype, DType::I4);
  EXPECT_EQ(mw.layers[1].attn.kv_a_proj.dtype, DType::BF16);

  // Heads in the file's own bits need no override; fp8 heads only in fp8 files and back.
  QuantizeOptions same = o;
  same.head_format = QuantFormat::Int4;
  same.out_dir = d / "same";
  quantize_checkpoint(same);
  const auto qs4 = nlohmann::json::parse(read_text_file(same.out_dir + "/config.json"))["quantization_config"];
  EXPECT_FALSE(qs4.contains("dynamic"));
  EXPECT_EQ(qs4["lm_head"], true);
  EXPECT_EQ(load_weights(load_model_config(same.out_dir), TensorStore::open_dir(same.out_dir)).lm_head.dtype, DType::I4);
  QuantizeOptions bad = o;
  bad.out_dir = d / "bad";
  bad.head_format = QuantFormat::Fp8;
  expect_error(bad, "--head-to fp8 with --to int4 is not supported");
  bad.format = QuantFormat::Fp8;
  bad.head_format = QuantFormat::Int8;
  expect_error(bad, "--head-to int8 with --to fp8 is not supported");
  // A GPTQ input is not quantized again to another format or group.
  bad = g;
  bad.out_dir = d / "bad";
  bad.format = QuantFormat::Int8;
  bad.head_format = QuantFormat::Int8;
  expect_error(bad, "is already GPTQ int4 (group_size 64); --to int8 would quantize quantized weights again");
  bad.format = QuantFormat::Int4;
  bad.group = 128;
  expect_error(bad, "--to int4 --group 128 would quantize quantized weights again");
  bad.group = 0;
  bad.format = QuantFormat::Fp8;
  bad.head_format.reset();
  expect_error(bad, "--to fp8 would quantize quantized weights again");
}

TEST(Quantize, BadInputsAreClearErrorsAndWriteNothing) {
  TempDir d("quant");
  const std::string in = make_model(d);
  EXPECT_THROW(parse_quant_format("int3"), Error);
  try {
    parse_quant_format("nf4");
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unknown format 'nf4' (fp8, int8 or int4)"), std::string::npos) << e.what();
  }
  QuantizeOptions o;
  o.model_dir = in;
  o.out_dir = d / "out";
  o.format = QuantFormat::Int4;
  o.group = 48;
  expect_error(o, "--group 48 is not supported");
  // A group that does not divide a width: q_lora_rank 96 = q_b_proj's width, group 64.
  {
    TempDir d2("quant");
    auto j = small_config();
    j["q_lora_rank"] = 96;
    const std::string in2 = d2 / "m";
    make_dirs(in2);
    write_random_checkpoint(parse_model_config(j), in2, {});
    QuantizeOptions o2;
    o2.model_dir = in2;
    o2.out_dir = d2 / "out";
    o2.format = QuantFormat::Int8;
    o2.group = 64;
    expect_error(o2, "tensor 'model.layers.0.self_attn.q_b_proj.weight' [128, 96]: the group size 64 does not divide its width 96");
    o2.keep = {"*.q_b_proj.weight"};
    QuantizeReport r = quantize_checkpoint(o2);
    EXPECT_EQ(r.group, 64);
    // --group auto: the largest size dividing every quantized width (96 = 3 x 32: 32), or 64
    // once q_b_proj is kept; the config states the size used.
    o2.group = 0;
    o2.keep.clear();
    o2.out_dir = d2 / "auto";
    r = quantize_checkpoint(o2);
    EXPECT_EQ(r.group, 32);
    EXPECT_EQ(nlohmann::json::parse(read_text_file(o2.out_dir + "/config.json"))["quantization_config"]["group_size"], 32);
    o2.keep = {"*.q_b_proj.weight"};
    o2.out_dir = d2 / "auto-keep";
    EXPECT_EQ(quantize_checkpoint(o2).group, 128);
    // No size fits (q_lora_rank 80): --group auto names a tensor none divides.
    j["q_lora_rank"] = 80;
    const std::string in3 = d2 / "m80";
    make_dirs(in3);
    write_random_checkpoint(parse_model_config(j), in3, {});
    o2.model_dir = in3;
    o2.keep.clear();
    o2.out_dir = d2 / "auto-none";
    expect_error(o2, "--group auto: no group size (128, 64 or 32) divides the width of every tensor to quantize "
                     "('model.layers.0.self_attn.q_b_proj.weight' is 80 wide)");
  }
  o.group = 64;
  o.model_dir = d / "missing";
  expect_error(o, "missing");
  o.model_dir = in;
  make_dirs(o.out_dir);
  try {
    quantize_checkpoint(o);
    ADD_FAILURE() << "existing output accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("exists"), std::string::npos) << e.what();
  }
}

TEST(Quantize, InterruptionLeavesNoOutput) {
  TempDir d("quant");
  const std::string in = make_model(d);
  QuantizeOptions o;
  o.model_dir = in;
  o.out_dir = d / "out";
  o.format = QuantFormat::Int4;
  o.group = 64;
  // A stale temporary directory of an earlier, killed run is cleaned up too.
  make_dirs(d / "out.tmp-999999");
  int calls = 0;
  o.progress = [&](size_t, size_t, const std::string&) {
    if (++calls == 5) std::raise(SIGINT);  // the handler only flags it; the loop stops at the next tensor
  };
  expect_error(o, "interrupted by SIGINT");
  EXPECT_EQ(calls, 5);
  for (const auto& e : fs::directory_iterator(d.path))
    EXPECT_EQ(e.path().filename().string().find("out.tmp-"), std::string::npos) << e.path();
  // A failure inside the writer (here: an exception from the progress callback) cleans up alike.
  calls = 0;
  o.progress = [&](size_t, size_t, const std::string&) {
    if (++calls == 3) throw Error(ErrorKind::Io, "disk full (simulated)");
  };
  expect_error(o, "disk full");
  for (const auto& e : fs::directory_iterator(d.path))
    EXPECT_EQ(e.path().filename().string().find("out.tmp-"), std::string::npos) << e.path();
  // And without interruption it completes.
  o.progress = nullptr;
  quantize_checkpoint(o);
  EXPECT_TRUE(file_exists(o.out_dir + "/model.safetensors"));
}

}  // namespace
}  // namespace qs
