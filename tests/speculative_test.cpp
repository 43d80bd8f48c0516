// MTP speculative decoding in the engine, on a tiny model trained (here, in seconds) with its
// MTP module on a periodic token stream, so that drafts are often right: greedy output is
// exactly the plain output — ragged batches, forked samples, preemption and a warm prefix
// cache included — and sampled output has the plain output's distribution; with the LM and MTP
// heads quantized to INT8 (qiusuo quantize --head-to int8) greedy output stays exact.
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "qiusuo/core/error.h"
#include "qiusuo/infer/engine.h"
#include "qiusuo/quant/quantize.h"
#include "qiusuo/train/checkpoint.h"
#include "qiusuo/train/live_model.h"
#include "qiusuo/train/optimizer.h"
#include "qiusuo/train/train_step.h"
#include "test_util.h"

namespace qs {
namespace {

constexpr int64_t kV = 48;

int32_t pattern(int64_t i) { return int32_t(2 + (i * 5) % 13); }  // period 13 over tokens 2..14

struct Trained {
  std::unique_ptr<TrainModel<float>> tm;
  std::unique_ptr<Model> model;
};

const Trained& trained() {
  static Trained t = [] {
    auto j = testing_util::tiny_v3_config(kV);
    j["rope_scaling"] = nullptr;
    j["max_position_embeddings"] = 512;
    Trained r;
    r.tm = std::make_unique<TrainModel<float>>(parse_model_config(j));
    r.tm->init_random(5, 0.05);
    TrainLossOptions lo;
    lo.mtp_lambda = 1.0;
    TrainStep<float> step(*r.tm, {8, 32}, lo);
    AdamW opt(r.tm->layout(), r.tm->params().size(), {});
    std::vector<int32_t> win(8 * 33);
    for (int it = 0; it < 120; ++it) {
      for (int64_t b = 0; b < 8; ++b)
        for (int64_t s = 0; s < 33; ++s) win[size_t(b * 33 + s)] = pattern(b * 3 + it + s);
      r.tm->zero_grad();
      step.run_windows(win.data(), 8, 32, true);
      opt.step(r.tm->params().data(), r.tm->grads().data(), 1e-2);
    }
    r.model = live_model(*r.tm);
    return r;
  }();
  return t;
}

std::vector<int32_t> prompt(int64_t n, int64_t offset, bool noisy) {
  std::vector<int32_t> p;
  for (int64_t i = 0; i < n; ++i) p.push_back(noisy && i % 4 == 1 ? int32_t(20 + (i * 7) % 25) : pattern(offset + i));
  return p;
}

GenerationRequest req(std::vector<int32_t> p, int64_t max_tokens, float temperature = 0, uint64_t seed = 0) {
  GenerationRequest r;
  r.prompt = std::move(p);
  r.params.max_tokens = max_tokens;
  r.params.temperature = temperature;
  r.params.seed = seed;
  r.params.ignore_eos = true;
  return r;
}

class Speculative : public ::testing::TestWithParam<Compute> {};

TEST_P(Speculative, GreedyOutputIsExactlyThePlainOutput) {
  const Model& m = *trained().model;
  ASSERT_TRUE(m.has_mtp());
  EngineOptions eo;
  eo.compute = GetParam();
  eo.block_size = 8;
  eo.cache_tokens = 2048;
  auto requests = [] {
    std::vector<GenerationRequest> v;
    for (int i = 0; i < 8; ++i) v.push_back(req(prompt(3 + 5 * i, i, i % 3 == 2), 6 + 3 * i));
    GenerationRequest forked = req(prompt(17, 4, false), 12);
    forked.n = 3;
    v.push_back(std::move(forked));
    return v;
  };
  Engine plain(m, nullptr, eo);
  const auto ref = plain.generate(requests());
  for (int64_t pool : {2048, 160}) {  // roomy, and small enough to preempt
    EngineOptions so = eo;
    so.speculative = true;
    so.cache_tokens = pool;
    Engine spec(m, nullptr, so);
    const auto got = spec.generate(requests());
    ASSERT_EQ(got.size(), ref.size());
    int64_t drafts = 0, accepted = 0, preempted = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
      EXPECT_EQ(got[i].tokens, ref[i].tokens) << "request " << i << ", pool " << pool;
      EXPECT_EQ(got[i].logprobs, ref[i].logprobs) << "request " << i << ", pool " << pool;
      drafts += got[i].draft_tokens;
      accepted += got[i].accepted_draft_tokens;
      preempted += got[i].preemptions;
    }
    EXPECT_GT(drafts, 20);
    EXPECT_GT(double(accepted), 0.5 * double(drafts)) << accepted << " of " << drafts << " drafts accepted";
    if (pool == 160) {
      EXPECT_GT(preempted, 0) << "the small pool should preempt";
    }
    EXPECT_LT(spec.stats().steps, plain.stats().steps) << "accepted drafts save steps";
    spec.blocks().check();
    EXPECT_EQ(spec.blocks().num_used(), 0);
    // A warm prefix cache (the same prompts again) changes nothing either.
    const auto warm = spec.generate(requests());
    for (size_t i = 0; i < ref.size(); ++i) EXPECT_EQ(warm[i].tokens, ref[i].tokens) << "warm request " << i;
    if (pool == 2048) {
      EXPECT_EQ(warm[7].cached_tokens, 32);  // 4 full blocks of its 38-token prompt
    }
  }
}

// Speculative sampling: the tokens of many seeded requests follow the plain distribution
// (two-sample chi-square per position, p = 0.001).
TEST_P(Speculative, SampledOutputHasThePlainDistribution) {
  const Model& m = *trained().model;
  EngineOptions eo;
  eo.compute = GetParam();
  eo.cache_tokens = 8192;
  if (GetParam() == Compute::F32) GTEST_SKIP() << "the distribution test runs once, in the default precision";
  const int N = 400;
  auto run = [&](bool speculative) {
    EngineOptions o = eo;
    o.speculative = speculative;
    Engine e(m, nullptr, o);
    std::vector<GenerationRequest> v;
    for (int i = 0; i < N; ++i) v.push_back(req(prompt(9, 2, false), 4, 2.5f, uint64_t(1000 + i)));
    auto res = e.generate(std::move(v));
    int64_t acc = 0;
    for (const auto& r : res) acc += r.accepted_draft_tokens;
    if (speculative) {
      EXPECT_GT(acc, 0);
    }
    return res;
  };
  const auto a = run(false), b = run(true);
  int same = 0;
  for (int i = 0; i < N; ++i) same += a[size_t(i)].tokens == b[size_t(i)].tokens;
  EXPECT_LT(same, N) << "speculative sampling draws differently (same distribution, other draws)";
  for (size_t pos = 0; pos < 4; ++pos) {
    std::map<int32_t, std::pair<double, double>> c;
    for (int i = 0; i < N; ++i) {
      c[a[size_t(i)].tokens[pos]].first++;
      c[b[size_t(i)].tokens[pos]].second++;
    }
    // Pool rare tokens so every cell has enough counts.
    std::pair<double, double> rare{0, 0};
    double chi2 = 0;
    int cells = 0;
    for (const auto& [tok, n] : c) {
      if (n.first + n.second < 10) {
        rare.first += n.first;
        rare.second += n.second;
        continue;
      }
      chi2 += (n.first - n.second) * (n.first - n.second) / (n.first + n.second);
      cells++;
    }
    if (rare.first + rare.second > 0) {
      chi2 += (rare.first - rare.second) * (rare.first - rare.second) / (rare.first + rare.second);
      cells++;
    }
    const double df = std::max(1, cells - 1);
    const double z = 3.09;  // one-sided 0.001
    const double crit = df * std::pow(1 - 2 / (9 * df) + z * std::sqrt(2 / (9 * df)), 3);
    EXPECT_LT(chi2, crit) << "position " << pos << ": chi2 " << chi2 << " over " << cells << " cells";
  }
}

// The trained model exported, its LM head and MTP head quantized to INT8 (everything else kept):
// the draft head and the verifying head are now integer matrices read by the INT8 kernels, and
// speculative greedy output is still exactly the plain output of the same checkpoint.
TEST(Speculative, GreedyExactWithInt8Heads) {
  testing_util::TempDir d("spec-int8-heads");
  export_hf_model(d / "f32", *trained().tm, "");
  QuantizeOptions q;
  q.model_dir = d / "f32";
  q.out_dir = d / "heads-int8";
  q.format = QuantFormat::Int4;
  q.head_format = QuantFormat::Int8;
  q.keep = {"*_proj.weight", "*_proj_with_mqa.weight"};
  EXPECT_EQ(quantize_checkpoint(q).quantized, 2u);  // lm_head and the MTP module's head
  auto m = Model::load(q.out_dir);
  ASSERT_TRUE(m->has_mtp());
  ASSERT_EQ(m->weights().lm_head.dtype, DType::I8);
  ASSERT_EQ(m->weights().mtp[0].head.dtype, DType::I8);
  EngineOptions eo;
  eo.block_size = 8;
  eo.cache_tokens = 2048;
  auto requests = [] {
    std::vector<GenerationRequest> v;
    for (int i = 0; i < 6; ++i) v.push_back(req(prompt(3 + 5 * i, i, i % 3 == 2), 8 + 3 * i));
    return v;
  };
  Engine plain(*m, nullptr, eo);
  const auto ref = plain.generate(requests());
  eo.speculative = true;
  Engine spec(*m, nullptr, eo);
  const auto got = spec.generate(requests());
  ASSERT_EQ(got.size(), ref.size());
  int64_t drafts = 0, accepted = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    EXPECT_EQ(got[i].tokens, ref[i].tokens) << "request " << i;
    drafts += got[i].draft_tokens;
    accepted += got[i].accepted_draft_tokens;
  }
  EXPECT_GT(drafts, 20);
  EXPECT_GT(double(accepted), 0.5 * double(drafts)) << accepted << " of " << drafts << " drafts accepted";
}

TEST(Speculative, NeedsAnMtpModule) {
  auto j = testing_util::tiny_v3_config(kV);
  j["num_nextn_predict_layers"] = 0;
  TrainModel<float> tm(parse_model_config(j));
  auto m = live_model(tm);
  EngineOptions eo;
  eo.speculative = true;
  EXPECT_THROW(Engine(*m, nullptr, eo), Error);
}

INSTANTIATE_TEST_SUITE_P(Precision, Speculative, ::testing::Values(Compute::F32, Compute::BF16),
                         [](const auto& info) { return info.param == Compute::F32 ? "F32" : "BF16"; });

}  // namespace
}  // namespace qs
