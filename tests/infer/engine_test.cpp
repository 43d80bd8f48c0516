// The engine: ragged continuous batching gives the same tokens as generating alone; stop
// conditions; determinism; errors.
#include "qiusuo/infer/engine.h"

#include <gtest/gtest.h>

#include "qiusuo/core/error.h"
#include "qiusuo/model/init.h"
#include "test_util.h"

namespace qs {
namespace {

class EngineTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing_util::TempDir("engine");
    InitOptions o;
    o.dtype = InitDType::BF16;
    o.seed = 11;
    write_random_checkpoint(parse_model_config(testing_util::tiny_v3_config(300)), dir_->path, o);
  }
  static void TearDownTestSuite() { delete dir_; }
  static testing_util::TempDir* dir_;
};
testing_util::TempDir* EngineTest::dir_ = nullptr;

std::vector<int32_t> prompt(int n, int salt) {
  std::vector<int32_t> p;
  for (int i = 0; i < n; ++i) p.push_back((i * 37 + salt * 101 + 5) % 300);
  return p;
}

TEST_F(EngineTest, RaggedBatchMatchesOneAtATime) {
  auto model = Model::load(dir_->path);
  SamplingParams sp;
  sp.temperature = 0;
  sp.max_tokens = 12;
  sp.ignore_eos = true;
  std::vector<std::vector<int32_t>> prompts = {prompt(3, 1), prompt(17, 2), prompt(40, 3), prompt(1, 4)};
  EngineOptions eo;
  eo.compute = Compute::F32;
  std::vector<std::vector<int32_t>> alone;
  for (const auto& p : prompts) {
    Engine e(*model, nullptr, eo);
    alone.push_back(e.generate({{p, sp, nullptr}})[0].tokens);
  }
  for (int64_t chunk : {512, 7}) {  // whole prompts, and chunked prefill mixed with decode
    eo.prefill_chunk = chunk;
    Engine e(*model, nullptr, eo);
    std::vector<GenerationRequest> reqs;
    for (const auto& p : prompts) reqs.push_back({p, sp, nullptr});
    auto res = e.generate(std::move(reqs));
    for (size_t i = 0; i < prompts.size(); ++i) {
      EXPECT_EQ(res[i].tokens, alone[i]) << "request " << i << " chunk " << chunk;
      EXPECT_EQ(res[i].reason, FinishReason::Length);
    }
  }
}

TEST_F(EngineTest, SeededSamplingIsReproducibleAndQueuesBeyondTheBatch) {
  auto model = Model::load(dir_->path);
  SamplingParams sp;
  sp.temperature = 1.0f;
  sp.max_tokens = 8;
  sp.seed = 5;
  sp.ignore_eos = true;
  EngineOptions eo;
  eo.max_batch = 2;        // 5 requests: three wait for a free slot
  eo.cache_tokens = 128;   // and for cache room
  Engine e(*model, nullptr, eo);
  std::vector<GenerationRequest> reqs;
  for (int i = 0; i < 5; ++i) reqs.push_back({prompt(10, 9), sp, nullptr});
  auto res = e.generate(std::move(reqs));
  for (const auto& r : res) EXPECT_EQ(r.tokens, res[0].tokens);
  sp.seed = 6;
  auto other = e.generate({{prompt(10, 9), sp, nullptr}});
  EXPECT_NE(other[0].tokens, res[0].tokens);
}

TEST_F(EngineTest, StopTokensCallbacksAndCancel) {
  auto model = Model::load(dir_->path);
  SamplingParams sp;
  sp.temperature = 0;
  sp.max_tokens = 10;
  sp.ignore_eos = true;
  Engine e(*model, nullptr, {});
  auto first = e.generate({{prompt(6, 1), sp, nullptr}})[0].tokens;
  ASSERT_EQ(first.size(), 10u);
  sp.stop_token_ids = {first[3]};
  auto stopped = e.generate({{prompt(6, 1), sp, nullptr}})[0];
  EXPECT_EQ(stopped.reason, FinishReason::Stop);
  const size_t at = size_t(std::find(first.begin(), first.end(), first[3]) - first.begin());
  EXPECT_EQ(stopped.tokens.size(), at + 1);
  int events = 0;
  sp.stop_token_ids.clear();
  GenerationRequest r{prompt(6, 1), sp, [&](const TokenEvent& ev) { return ++events < 4 || ev.finished; }};
  auto cancelled = e.generate({std::move(r)})[0];
  EXPECT_EQ(cancelled.reason, FinishReason::Cancelled);
  EXPECT_EQ(cancelled.tokens.size(), 4u);
}

TEST_F(EngineTest, InvalidRequestsAreErrors) {
  auto model = Model::load(dir_->path);
  EngineOptions eo;
  eo.cache_tokens = 64;
  Engine e(*model, nullptr, eo);
  SamplingParams sp;
  EXPECT_THROW(e.submit({{}, sp, nullptr}), Error);
  EXPECT_THROW(e.submit({{1, 2, 300}, sp, nullptr}), Error);  // outside the vocabulary
  sp.max_tokens = 100;  // more than the cache holds
  EXPECT_THROW(e.submit({{1, 2}, sp, nullptr}), Error);
}

}  // namespace
}  // namespace qs
