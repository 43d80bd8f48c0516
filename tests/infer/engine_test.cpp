// The engine: batching never changes results (32 concurrent requests, chunked prefill,
// preemption by recompute, a warm prefix cache, forked samples); log-probabilities of sampled
// and scored tokens against log-softmax of the model's logits; stop conditions; cancellation;
// no leaked blocks; thread-safe submission; errors.
#include "qiusuo/infer/engine.h"

#include <gtest/gtest.h>

#include <cmath>
#include <thread>

#include "qiusuo/core/error.h"
#include "qiusuo/model/init.h"
#include "test_util.h"

namespace qs {
namespace {

constexpr int64_t kVocab = 300;

class EngineTest : public ::testing::TestWithParam<Compute> {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing_util::TempDir("engine");
    InitOptions o;
    o.dtype = InitDType::BF16;
    o.seed = 11;
    write_random_checkpoint(parse_model_config(testing_util::tiny_v3_config(kVocab)), dir_->path, o);
    model_ = Model::load(dir_->path).release();
  }
  static void TearDownTestSuite() {
    delete model_;
    delete dir_;
  }
  EngineOptions opts() const {
    EngineOptions eo;
    eo.compute = GetParam();
    eo.block_size = 8;
    eo.cache_tokens = 4096;
    return eo;
  }
  static testing_util::TempDir* dir_;
  static Model* model_;
};
testing_util::TempDir* EngineTest::dir_ = nullptr;
Model* EngineTest::model_ = nullptr;

std::vector<int32_t> prompt(int n, int salt) {
  std::vector<int32_t> p;
  for (int i = 0; i < n; ++i) p.push_back(int32_t((i * 37 + salt * 101 + 5) % kVocab));
  return p;
}

SamplingParams greedy(int64_t max_tokens) {
  SamplingParams sp;
  sp.temperature = 0;
  sp.max_tokens = max_tokens;
  sp.ignore_eos = true;
  return sp;
}

GenerationRequest req(std::vector<int32_t> p, SamplingParams sp) {
  GenerationRequest r;
  r.prompt = std::move(p);
  r.params = sp;
  return r;
}

// What a request gives alone: its tokens, and the log-probabilities, which must match
// bitwise (batch invariance is exact, not approximate).
struct Alone {
  std::vector<int32_t> tokens;
  std::vector<float> logprobs;
  bool operator==(const GenerationResult& r) const { return tokens == r.tokens && logprobs == r.logprobs; }
};
Alone alone_result(const Model& m, EngineOptions eo, const std::vector<int32_t>& p, SamplingParams sp) {
  eo.max_seqs = 1;
  eo.prefix_caching = false;
  Engine e(m, nullptr, eo);
  auto r = e.generate({req(p, sp)})[0];
  return {r.tokens, r.logprobs};
}
std::vector<int32_t> alone(const Model& m, EngineOptions eo, const std::vector<int32_t>& p, SamplingParams sp) {
  return alone_result(m, eo, p, sp).tokens;
}

void expect_no_blocks_in_use(Engine& e) {
  e.blocks().check();
  EXPECT_EQ(e.blocks().num_used(), 0);
  EXPECT_EQ(e.stats().blocks_used, 0);
}

// 32 requests of mixed lengths at once, with chunked prefill mixed into decode steps: every
// one gives exactly the tokens it gives alone.
TEST_P(EngineTest, ConcurrentRequestsGiveTheirOwnTokens) {
  std::vector<std::vector<int32_t>> prompts;
  std::vector<SamplingParams> sps;
  for (int i = 0; i < 32; ++i) {
    prompts.push_back(prompt(1 + (i * 7) % 45, i));
    SamplingParams sp = greedy(4 + i % 9);
    if (i % 4 == 3) {  // some sample, with their own seeds
      sp.temperature = 0.8f;
      sp.seed = uint64_t(i);
    }
    sps.push_back(sp);
  }
  std::vector<Alone> ref;
  for (int i = 0; i < 32; ++i) ref.push_back(alone_result(*model_, opts(), prompts[size_t(i)], sps[size_t(i)]));
  for (int64_t budget : {512, 13}) {
    EngineOptions eo = opts();
    eo.max_step_tokens = budget;
    Engine e(*model_, nullptr, eo);
    std::vector<GenerationRequest> reqs;
    for (int i = 0; i < 32; ++i) reqs.push_back(req(prompts[size_t(i)], sps[size_t(i)]));
    auto res = e.generate(std::move(reqs));
    ASSERT_EQ(res.size(), 32u);
    for (int i = 0; i < 32; ++i) {
      EXPECT_TRUE(ref[size_t(i)] == res[size_t(i)]) << "request " << i << ", step budget " << budget;
      EXPECT_EQ(res[size_t(i)].reason, FinishReason::Length);
    }
    EXPECT_GT(e.stats().steps, 4);
    expect_no_blocks_in_use(e);
  }
}

// A pool too small for all sequences at once: the newest are preempted (blocks released),
// recomputed later, and still give the tokens they give alone.
TEST_P(EngineTest, PreemptedSequencesContinueExactly) {
  EngineOptions eo = opts();
  eo.cache_tokens = 96;  // 12 blocks of 8
  eo.prefix_caching = false;
  std::vector<GenerationRequest> reqs;
  std::vector<Alone> ref;
  for (int i = 0; i < 6; ++i) {
    SamplingParams sp = greedy(30);
    if (i % 2) {
      sp.temperature = 1.0f;
      sp.seed = uint64_t(100 + i);
    }
    ref.push_back(alone_result(*model_, opts(), prompt(10 + i, i), sp));
    reqs.push_back(req(prompt(10 + i, i), sp));
  }
  Engine e(*model_, nullptr, eo);
  auto res = e.generate(std::move(reqs));
  int64_t preempted = 0;
  for (size_t i = 0; i < res.size(); ++i) {
    EXPECT_TRUE(ref[i] == res[i]) << "request " << i;
    preempted += res[i].preemptions;
  }
  EXPECT_GT(preempted, 0) << "the test needs the pool to run out";
  EXPECT_EQ(e.stats().preemptions, preempted);
  expect_no_blocks_in_use(e);
  // And with the prefix cache on, resumed sequences find their own blocks again.
  eo.prefix_caching = true;
  Engine c(*model_, nullptr, eo);
  std::vector<GenerationRequest> again;
  for (int i = 0; i < 6; ++i) {
    SamplingParams sp = greedy(30);
    if (i % 2) {
      sp.temperature = 1.0f;
      sp.seed = uint64_t(100 + i);
    }
    again.push_back(req(prompt(10 + i, i), sp));
  }
  auto res2 = c.generate(std::move(again));
  for (size_t i = 0; i < res2.size(); ++i) EXPECT_TRUE(ref[i] == res2[i]) << "request " << i;
  expect_no_blocks_in_use(c);
}

// A prompt whose prefix is cached (a repeated system prompt, the next turn of a chat) reuses
// the blocks, reports them, and gives the same tokens as with a cold cache.
TEST_P(EngineTest, WarmPrefixCacheGivesTheSameTokens) {
  const auto system = prompt(40, 7);
  auto with = [&](std::vector<int32_t> tail) {
    auto p = system;
    p.insert(p.end(), tail.begin(), tail.end());
    return p;
  };
  const auto p1 = with(prompt(5, 1)), p2 = with(prompt(9, 2)), p3 = system;  // p3: all cached but the last block
  Engine e(*model_, nullptr, opts());
  auto r1 = e.generate({req(p1, greedy(6))})[0];
  EXPECT_EQ(r1.cached_tokens, 0);
  auto r2 = e.generate({req(p2, greedy(6))})[0];
  EXPECT_EQ(r2.cached_tokens, 40);  // 5 full blocks of 8
  EXPECT_TRUE(alone_result(*model_, opts(), p2, greedy(6)) == r2);
  auto r3 = e.generate({req(p3, greedy(6))})[0];  // the whole prompt is cached: its last token is recomputed
  EXPECT_EQ(r3.cached_tokens, 40);
  EXPECT_TRUE(alone_result(*model_, opts(), p3, greedy(6)) == r3);
  auto r1b = e.generate({req(p1, greedy(6))})[0];
  EXPECT_EQ(r1b.tokens, r1.tokens);
  EXPECT_GE(r1b.cached_tokens, 40);
  EXPECT_GT(e.blocks().num_cached(), 0);
  expect_no_blocks_in_use(e);
  // After the weights change the cache must not be used: clear_prefix_cache forgets it.
  e.clear_prefix_cache();
  EXPECT_EQ(e.generate({req(p2, greedy(2))})[0].cached_tokens, 0);
}

// n samples of one prompt share its blocks; sample i is the request with seed + i.
TEST_P(EngineTest, ForkedSamplesEqualSeparateRequests) {
  const auto p = prompt(21, 3);
  SamplingParams sp;
  sp.temperature = 1.0f;
  sp.max_tokens = 10;
  sp.seed = 40;
  sp.ignore_eos = true;
  Engine e(*model_, nullptr, opts());
  GenerationRequest r = req(p, sp);
  r.n = 4;
  r.top_logprobs = 2;
  auto res = e.generate({std::move(r)});
  ASSERT_EQ(res.size(), 4u);
  for (int64_t i = 0; i < 4; ++i) {
    SamplingParams si = sp;
    si.seed = sp.seed + uint64_t(i);
    EXPECT_TRUE(alone_result(*model_, opts(), p, si) == res[size_t(i)]) << "sample " << i;
    EXPECT_EQ(res[size_t(i)].request, res[0].request + i);
    EXPECT_EQ(res[size_t(i)].top_logprobs.size(), res[size_t(i)].tokens.size());
  }
  EXPECT_EQ(res[1].cached_tokens, 21);  // the forks computed none of the prompt
  EXPECT_NE(res[0].tokens, res[1].tokens);
  expect_no_blocks_in_use(e);
}

// Log-probabilities of sampled tokens (greedy: of the raw logits; temperature T: of logits/T)
// and of scored completions equal log-softmax of the model's own logits at those positions.
TEST_P(EngineTest, LogprobsMatchLogSoftmaxOfTheLogits) {
  if (GetParam() != Compute::F32) GTEST_SKIP() << "the F32 comparison";
  const auto p = prompt(12, 5);
  for (float temp : {0.0f, 0.7f}) {
    SamplingParams sp = greedy(8);
    sp.temperature = temp;
    sp.seed = 3;
    Engine e(*model_, nullptr, opts());
    GenerationRequest r = req(p, sp);
    r.top_logprobs = 3;
    const auto res = e.generate({std::move(r)})[0];
    ASSERT_EQ(res.logprobs.size(), res.tokens.size());
    // Reference: one prefill of prompt + generated, logits of every position.
    std::vector<int32_t> all = p;
    all.insert(all.end(), res.tokens.begin(), res.tokens.end());
    KVCache cache(model_->config(), 256, 1);
    StepBatch b;
    cache.append(b, cache.add_sequence(), all.data(), int64_t(all.size()));
    std::vector<int64_t> rows;
    for (size_t i = p.size() - 1; i + 1 < all.size(); ++i) rows.push_back(int64_t(i));
    std::vector<float> logits(rows.size() * size_t(kVocab));
    ForwardOptions fo;
    fo.compute = Compute::F32;
    model_->forward(b, cache.pool(), rows, logits.data(), fo);
    for (size_t t = 0; t < res.tokens.size(); ++t) {
      std::vector<float> l(logits.begin() + ptrdiff_t(t * kVocab), logits.begin() + ptrdiff_t((t + 1) * kVocab));
      if (temp > 0)
        for (auto& x : l) x /= temp;
      double m = -1e30, z = 0;
      for (float x : l) m = std::max(m, double(x));
      for (float x : l) z += std::exp(double(x) - m);
      const double lse = m + std::log(z);
      EXPECT_NEAR(res.logprobs[t], double(l[size_t(res.tokens[t])]) - lse, 1e-5) << "token " << t << " T " << temp;
      ASSERT_EQ(res.top_logprobs[t].size(), 3u);
      EXPECT_GE(res.top_logprobs[t][0].logprob, res.top_logprobs[t][1].logprob);
      EXPECT_NEAR(res.top_logprobs[t][0].logprob, double(*std::max_element(l.begin(), l.end())) - lse, 1e-5);
      if (temp == 0) {
        EXPECT_EQ(res.top_logprobs[t][0].id, res.tokens[t]);
      }
    }
    // Scoring the same completion: the same numbers (raw logits), batched with a second request.
    if (temp == 0) {
      ScoreRequest s1{p, res.tokens, 2}, s2{prompt(30, 9), prompt(7, 4), 0};
      const auto sc = e.score({s1, s2});
      ASSERT_EQ(sc[0].logprobs.size(), res.tokens.size());
      for (size_t t = 0; t < res.tokens.size(); ++t) EXPECT_NEAR(sc[0].logprobs[t], res.logprobs[t], 1e-5);
      EXPECT_EQ(sc[0].top_logprobs.size(), res.tokens.size());
      EXPECT_EQ(sc[1].logprobs.size(), 7u);
      EXPECT_GT(sc[0].cached_tokens, 0);  // the prompt's blocks were cached by the generation
      expect_no_blocks_in_use(e);
    }
  }
}

TEST_P(EngineTest, ScoringIsIndependentOfBatchingAndChunking) {
  std::vector<ScoreRequest> reqs;
  for (int i = 0; i < 5; ++i) reqs.push_back({prompt(3 + 5 * i, i), prompt(4 + 3 * i, 10 + i), 0});
  Engine a(*model_, nullptr, opts());
  auto together = a.score(reqs);
  EngineOptions eo = opts();
  eo.max_step_tokens = 7;  // chunked
  for (size_t i = 0; i < reqs.size(); ++i) {
    Engine b(*model_, nullptr, eo);
    auto one = b.score({reqs[i]});
    EXPECT_EQ(one[0].logprobs, together[i].logprobs) << "request " << i;
  }
}

TEST_P(EngineTest, StopTokensStopStringsCallbacksAndCancel) {
  Engine e(*model_, nullptr, opts());
  auto first = e.generate({req(prompt(6, 1), greedy(10))})[0].tokens;
  ASSERT_EQ(first.size(), 10u);
  SamplingParams sp = greedy(10);
  sp.stop_token_ids = {first[3]};
  auto stopped = e.generate({req(prompt(6, 1), sp)})[0];
  EXPECT_EQ(stopped.reason, FinishReason::Stop);
  const size_t at = size_t(std::find(first.begin(), first.end(), first[3]) - first.begin());
  EXPECT_EQ(stopped.tokens.size(), at + 1);
  int events = 0;
  GenerationRequest r = req(prompt(6, 1), greedy(10));
  r.on_event = [&](const TokenEvent& ev) { return ++events < 4 || ev.finished; };
  auto cancelled = e.generate({std::move(r)})[0];
  EXPECT_EQ(cancelled.reason, FinishReason::Cancelled);
  EXPECT_EQ(cancelled.tokens.size(), 4u);
  SamplingParams zero = greedy(0);
  auto none = e.generate({req(prompt(6, 1), zero)})[0];
  EXPECT_TRUE(none.tokens.empty());
  EXPECT_EQ(none.reason, FinishReason::Length);
  expect_no_blocks_in_use(e);
}

// A server: one thread runs the engine, others submit and cancel.
TEST_P(EngineTest, SubmitAndCancelFromOtherThreads) {
  Engine e(*model_, nullptr, opts());
  std::atomic<bool> stop{false};
  std::thread loop([&] { e.run(stop); });
  std::mutex mu;
  std::condition_variable cv;
  std::vector<GenerationResult> done;
  std::vector<std::thread> clients;
  const auto ref = alone(*model_, opts(), prompt(9, 2), greedy(12));
  for (int c = 0; c < 4; ++c)
    clients.emplace_back([&, c] {
      GenerationRequest r = req(prompt(9, 2), greedy(c == 3 ? 200 : 12));
      r.on_finish = [&](GenerationResult&& res) {
        std::lock_guard<std::mutex> lk(mu);
        done.push_back(std::move(res));
        cv.notify_all();
      };
      const int64_t id = e.submit(std::move(r));
      if (c == 3) e.cancel(id);
    });
  for (auto& t : clients) t.join();
  {
    std::unique_lock<std::mutex> lk(mu);
    ASSERT_TRUE(cv.wait_for(lk, std::chrono::seconds(60), [&] { return done.size() == 4; }));
  }
  stop = true;
  e.notify();
  loop.join();
  int cancelled = 0;
  for (const auto& r : done) {
    if (r.reason == FinishReason::Cancelled) cancelled++;
    else EXPECT_EQ(r.tokens, ref);
  }
  EXPECT_EQ(cancelled, 1);
  expect_no_blocks_in_use(e);
}

TEST_P(EngineTest, InvalidRequestsAreErrors) {
  EngineOptions eo = opts();
  eo.cache_tokens = 64;
  Engine e(*model_, nullptr, eo);
  EXPECT_THROW(e.submit(req({}, greedy(4))), Error);
  EXPECT_THROW(e.submit(req({1, 2, int32_t(kVocab)}, greedy(4))), Error);  // outside the vocabulary
  EXPECT_THROW(e.submit(req({1, 2}, greedy(100))), Error);                  // more than the context
  SamplingParams bad = greedy(4);
  bad.top_p = 0;
  EXPECT_THROW(e.submit(req({1, 2}, bad)), Error);
  GenerationRequest r = req({1, 2}, greedy(4));
  r.n = 0;
  EXPECT_THROW(e.submit(std::move(r)), Error);
  EXPECT_THROW(e.submit_score({{}, {1}, 0}, nullptr), Error);
  EXPECT_TRUE(e.idle());
}

// A request that finishes in the step that fills its last full prompt block still leaves every
// full block in the prefix cache: the same prompt again recomputes only the last partial block
// (and the position before the first generated token).
TEST_P(EngineTest, FinishedRequestsLeaveAllTheirFullBlocksCached) {
  EngineOptions eo = opts();
  eo.max_step_tokens = 13;  // the prompt's last chunk and its only generated token in one step
  Engine e(*model_, nullptr, eo);
  const auto p = prompt(41, 7);  // 5 full blocks of 8, and one token
  const auto first = e.generate({req(p, greedy(1))})[0];
  const auto again = e.generate({req(p, greedy(1))})[0];
  EXPECT_EQ(first.cached_tokens, 0);
  EXPECT_EQ(again.cached_tokens, 40);
  EXPECT_EQ(again.tokens, first.tokens);
  expect_no_blocks_in_use(e);
}

// Contexts longer than attention's 256-position segments, for every KV cache type: a request
// gives bitwise the same tokens and log-probabilities alone (one 512-token prefill step) and
// among others with its prefill chunked at 13 and 100 tokens per step (the segments' partial
// softmax states merge in position order whatever the chunking, and converted BF16/FP8 rows are
// the same rows however they are shared).
TEST(EngineLongContext, EveryKvTypeIsBatchInvariantAcrossSegments) {
  testing_util::TempDir dir("engine-long");
  auto cfg = testing_util::tiny_v3_config(kVocab);
  cfg["max_position_embeddings"] = 1024;
  InitOptions o;
  o.dtype = InitDType::BF16;
  o.seed = 5;
  write_random_checkpoint(parse_model_config(cfg), dir.path, o);
  auto model = Model::load(dir.path);
  for (KvDtype kv : {KvDtype::F32, KvDtype::BF16, KvDtype::FP8}) {
    EngineOptions eo;
    eo.compute = Compute::BF16;
    eo.kv_dtype = kv;
    eo.block_size = 16;
    eo.cache_tokens = 4096;
    const std::vector<std::vector<int32_t>> prompts = {prompt(300, 1), prompt(600, 2), prompt(40, 3)};
    std::vector<Alone> ref;
    for (const auto& p : prompts) ref.push_back(alone_result(*model, eo, p, greedy(6)));
    for (int64_t budget : {13, 100}) {
      EngineOptions e2 = eo;
      e2.max_step_tokens = budget;
      Engine e(*model, nullptr, e2);
      std::vector<GenerationRequest> reqs;
      for (const auto& p : prompts) reqs.push_back(req(p, greedy(6)));
      const auto res = e.generate(std::move(reqs));
      for (size_t i = 0; i < prompts.size(); ++i)
        EXPECT_TRUE(ref[i] == res[i]) << kv_dtype_name(kv) << " prompt " << i << " budget " << budget;
      expect_no_blocks_in_use(e);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Precision, EngineTest, ::testing::Values(Compute::F32, Compute::BF16),
                         [](const auto& info) { return info.param == Compute::F32 ? "F32" : "BF16"; });

}  // namespace
}  // namespace qs
