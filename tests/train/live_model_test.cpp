// One model for training and inference: the inference Model over a TrainModel's parameters
// sees every optimizer update — after k AdamW steps its logits equal the training forward's,
// and again after one more step and a correction-bias update, without being rebuilt.
#include "qiusuo/train/live_model.h"

#include <gtest/gtest.h>

#include <cmath>

#include "qiusuo/train/optimizer.h"
#include "qiusuo/train/train_step.h"
#include "test_util.h"

namespace qs {
namespace {

constexpr int64_t kV = 64, kB = 2, kS = 12;

// log p(target) of every position from the inference model, one prefill per row (F32).
std::vector<double> inference_logprobs(const Model& m, const std::vector<int32_t>& in, const std::vector<int32_t>& tgt) {
  std::vector<double> out;
  for (int64_t b = 0; b < kB; ++b) {
    KVCache cache(m.config(), 64, 1);
    StepBatch sb;
    cache.append(sb, cache.add_sequence(), in.data() + b * kS, kS);
    std::vector<int64_t> rows(kS);
    for (int64_t i = 0; i < kS; ++i) rows[size_t(i)] = i;
    std::vector<float> logits(size_t(kS * kV));
    ForwardOptions fo;
    fo.compute = Compute::F32;
    m.forward(sb, cache.pool(), rows, logits.data(), fo);
    for (int64_t t = 0; t < kS; ++t) {
      const float* l = logits.data() + t * kV;
      double mx = -1e30, z = 0;
      for (int64_t v = 0; v < kV; ++v) mx = std::max(mx, double(l[v]));
      for (int64_t v = 0; v < kV; ++v) z += std::exp(double(l[v]) - mx);
      out.push_back(double(l[tgt[size_t(b * kS + t)]]) - mx - std::log(z));
    }
  }
  return out;
}

TEST(LiveModel, SeesEveryOptimizerUpdate) {
  auto j = testing_util::tiny_v3_config(kV);
  j["rope_scaling"] = nullptr;
  const ModelConfig cfg = parse_model_config(j);
  TrainModel<float> tm(cfg);
  tm.init_random(3, 0.08);
  TrainStep<float> step(tm, {kB, kS}, {});
  AdamW opt(tm.layout(), tm.params().size(), {});
  const auto live = live_model(tm);  // built once, before any update
  EXPECT_EQ(live->weights().mtp.size(), 1u);

  std::vector<int32_t> win(size_t(kB * (kS + 1)));
  for (size_t i = 0; i < win.size(); ++i) win[i] = int32_t((i * 13 + 5) % kV);
  std::vector<int32_t> in, tgt;
  for (int64_t b = 0; b < kB; ++b)
    for (int64_t s = 0; s < kS; ++s) {
      in.push_back(win[size_t(b * (kS + 1) + s)]);
      tgt.push_back(win[size_t(b * (kS + 1) + s + 1)]);
    }
  auto compare = [&](const char* when) -> std::vector<double> {
    TokenBatch batch{kB, kS, in, tgt, {}, {}};
    StepRequest r;
    r.backward = false;
    r.logprobs = true;
    const StepResult res = step.run(batch, r);
    const auto inf = inference_logprobs(*live, in, tgt);
    EXPECT_EQ(res.logprobs.size(), inf.size());
    if (res.logprobs.size() != inf.size()) return {};
    double worst = 0;
    for (size_t i = 0; i < inf.size(); ++i)
      worst = std::max(worst, std::abs(inf[i] - res.logprobs[i]) / std::max(1.0, std::abs(res.logprobs[i])));
    EXPECT_LE(worst, 1e-5) << when;
    return res.logprobs;
  };
  const auto before = compare("at init");
  for (int k = 0; k < 5; ++k) {
    tm.zero_grad();
    step.run_windows(win.data(), kB, kS, true);
    opt.step(tm.params().data(), tm.grads().data(), 3e-3);
  }
  const auto after5 = compare("after 5 AdamW steps");
  EXPECT_NE(before, after5);  // the steps moved the model (and the live view with it)
  tm.zero_grad();
  step.run_windows(win.data(), kB, kS, true);
  opt.step(tm.params().data(), tm.grads().data(), 3e-3);
  // The auxiliary-loss-free rule moves the correction bias outside the optimizer: live too.
  float* bias = tm.param("model.layers.1.mlp.gate.e_score_correction_bias");
  for (int64_t e = 0; e < cfg.n_routed_experts; ++e) bias[e] += (e % 2 ? 0.3f : -0.3f);
  const auto after6 = compare("after one more step and a bias update");
  EXPECT_NE(after5, after6);
}

}  // namespace
}  // namespace qs
