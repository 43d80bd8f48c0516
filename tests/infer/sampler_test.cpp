#include "qiusuo/infer/sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "qiusuo/core/error.h"
#include "qiusuo/infer/reasoning.h"

namespace qs {
namespace {

std::vector<float> logits_of(std::initializer_list<float> v) { return std::vector<float>(v); }

TEST(Sampler, GreedyAndTopK1PickTheArgmax) {
  auto l = logits_of({0.1f, 2.0f, -1.0f, 1.9f});
  SamplingParams p;
  p.temperature = 0;
  EXPECT_EQ(Sampler(p, 4).sample(l.data()), 1);
  p.temperature = 1;
  p.top_k = 1;
  auto l2 = logits_of({0.1f, 2.0f, -1.0f, 1.9f});
  EXPECT_EQ(Sampler(p, 4).sample(l2.data()), 1);
}

TEST(Sampler, SameSeedSameTokensDifferentSeedDiffers) {
  SamplingParams p;
  p.seed = 42;
  auto draw = [&](uint64_t seed) {
    p.seed = seed;
    Sampler s(p, 16);
    std::vector<int32_t> out;
    for (int i = 0; i < 64; ++i) {
      std::vector<float> l(16, 0.0f);
      out.push_back(s.sample(l.data()));
    }
    return out;
  };
  EXPECT_EQ(draw(42), draw(42));
  EXPECT_NE(draw(42), draw(43));
}

TEST(Sampler, FollowsTheSoftmaxDistribution) {
  SamplingParams p;
  p.temperature = 0.5f;
  p.seed = 1;
  Sampler s(p, 3);
  const float base[3] = {0.0f, 0.5f, 1.0f};
  std::map<int, int> n;
  const int N = 40000;
  for (int i = 0; i < N; ++i) {
    float l[3] = {base[0], base[1], base[2]};
    n[s.sample(l)]++;
  }
  double z = 0, pr[3];
  for (int i = 0; i < 3; ++i) z += (pr[i] = std::exp(base[i] / 0.5));
  for (int i = 0; i < 3; ++i) {
    const double want = pr[i] / z, got = double(n[i]) / N;
    EXPECT_NEAR(got, want, 5 * std::sqrt(want * (1 - want) / N)) << i;  // 5 sigma
  }
}

// Speculative verification of a point-mass draft: the draft is accepted with probability
// p(draft) and the returned token is distributed exactly as sample()'s (here with top-k
// truncation too); greedy accepts iff the draft is the argmax.
TEST(Sampler, VerifiedDraftsKeepTheDistribution) {
  const std::vector<float> base = {0.5f, 1.5f, -0.3f, 1.0f, 0.2f, -2.0f};
  SamplingParams p;
  p.temperature = 0.8f;
  p.top_k = 5;
  // The distribution sample() draws from.
  std::vector<double> want(base.size(), 0.0);
  {
    std::vector<std::pair<float, int>> c;
    for (size_t i = 0; i < base.size(); ++i) c.push_back({base[i] / p.temperature, int(i)});
    std::sort(c.begin(), c.end(), [](auto a, auto b) { return a.first > b.first; });
    c.resize(5);
    double z = 0;
    for (auto& x : c) z += std::exp(double(x.first));
    for (auto& x : c) want[size_t(x.second)] = std::exp(double(x.first)) / z;
  }
  const int N = 40000;
  for (int32_t draft : {1, 4, 5}) {  // likely, unlikely, truncated away
    std::vector<double> got(base.size(), 0.0);
    int accepted = 0;
    for (int i = 0; i < N; ++i) {
      p.seed = uint64_t(i) * 7919 + uint64_t(draft);
      Sampler s(p, int64_t(base.size()));
      auto l = base;
      bool ok = false;
      const int32_t t = s.verify_draft(l.data(), draft, &ok);
      got[size_t(t)] += 1.0 / N;
      accepted += ok;
      if (ok) {
        EXPECT_EQ(t, draft);
      }
    }
    for (size_t v = 0; v < base.size(); ++v)
      EXPECT_NEAR(got[v], want[v], 4 * std::sqrt(want[v] * (1 - want[v]) / N) + 1e-9) << "draft " << draft << " token " << v;
    EXPECT_NEAR(double(accepted) / N, want[size_t(draft)], 4 * std::sqrt(0.25 / N) + 1e-9) << "draft " << draft;
  }
  p.temperature = 0;
  Sampler g(p, int64_t(base.size()));
  auto l = base;
  bool ok = true;
  EXPECT_EQ(g.verify_draft(l.data(), 3, &ok), 1);
  EXPECT_FALSE(ok);
  l = base;
  EXPECT_EQ(g.verify_draft(l.data(), 1, &ok), 1);
  EXPECT_TRUE(ok);
}

TEST(Sampler, TopPAndMinPTruncate) {
  SamplingParams p;
  p.top_p = 0.5f;  // token 2 alone has > 0.5 of the mass
  p.seed = 3;
  Sampler s(p, 3);
  for (int i = 0; i < 200; ++i) {
    float l[3] = {0.0f, 0.0f, 3.0f};
    EXPECT_EQ(s.sample(l), 2);
  }
  SamplingParams q;
  q.min_p = 0.5f;  // p1/p2 = e^-1 < 0.5
  Sampler t(q, 3);
  for (int i = 0; i < 200; ++i) {
    float l[3] = {-5.0f, 1.0f, 2.0f};
    EXPECT_EQ(t.sample(l), 2);
  }
  SamplingParams r;
  r.top_k = 2;
  Sampler u(r, 4);
  for (int i = 0; i < 300; ++i) {
    float l[4] = {1.0f, 1.1f, 0.9f, -3.0f};
    const int tok = u.sample(l);
    EXPECT_TRUE(tok == 0 || tok == 1) << tok;
  }
}

TEST(Sampler, PenaltiesDiscourageRepeats) {
  SamplingParams p;
  p.temperature = 0;
  p.repetition_penalty = 2.0f;
  Sampler s(p, 3);
  s.observe_prompt({1});
  float l[3] = {1.0f, 1.5f, 0.2f};  // token 1 halves to 0.75 < 1.0
  EXPECT_EQ(s.sample(l), 0);
  SamplingParams q;
  q.temperature = 0;
  q.frequency_penalty = 0.6f;
  Sampler t(q, 2);
  std::vector<int32_t> got;
  for (int i = 0; i < 4; ++i) {
    float m[2] = {1.0f, 0.0f};
    got.push_back(t.sample(m));
  }
  // 1.0 - 0.6·count: token 0 until its penalty passes 1.0, then token 1.
  EXPECT_EQ(got, (std::vector<int32_t>{0, 0, 1, 0}));
}

TEST(Sampler, BadParametersAreErrors) {
  SamplingParams p;
  p.top_p = 0;
  EXPECT_THROW(Sampler(p, 4), Error);
  p = {};
  p.temperature = -1;
  EXPECT_THROW(Sampler(p, 4), Error);
  p = {};
  p.stop = {""};
  EXPECT_THROW(p.validate(), Error);
}

TEST(Reasoning, SplitsThinkBlocksAcrossChunkBoundaries) {
  ReasoningSplitter s(false);
  std::string r, c;
  for (const char* piece : {"<th", "ink>\nLet me ", "think.</t", "hink>\n\nThe answer", " is 4."}) {
    auto o = s.push(piece);
    r += o.reasoning;
    c += o.content;
  }
  auto o = s.flush();
  r += o.reasoning;
  c += o.content;
  EXPECT_EQ(r, "\nLet me think.");
  EXPECT_EQ(c, "\n\nThe answer is 4.");
}

TEST(Reasoning, StartsInsideWhenThePromptOpensIt) {
  EXPECT_TRUE(ReasoningSplitter::prompt_opens_reasoning("<｜User｜>hi<｜Assistant｜><think>\n"));
  EXPECT_FALSE(ReasoningSplitter::prompt_opens_reasoning("<think>a</think>b"));
  ReasoningSplitter s(true);
  auto o = s.push("step 1</think>done");
  EXPECT_EQ(o.reasoning, "step 1");
  EXPECT_EQ(o.content, "done");
  // A <think> in the middle of an answer is text.
  ReasoningSplitter t(false);
  auto p = t.push("Use the <think> tag.");
  p.content += t.flush().content;
  EXPECT_EQ(p.content, "Use the <think> tag.");
}

}  // namespace
}  // namespace qs
