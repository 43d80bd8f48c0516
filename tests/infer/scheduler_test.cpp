// Scheduler alone (no model): the step token budget, chunked prefill after decode, max_seqs,
// block allocation as sequences grow, preemption of the newest when the pool runs out, prefix
// reuse at admission, and no blocks left after removal.
#include "qiusuo/infer/scheduler.h"

#include <gtest/gtest.h>

#include <memory>

#include "qiusuo/model/config.h"
#include "test_util.h"

namespace qs {
namespace {

struct Fixture {
  explicit Fixture(int64_t blocks, SchedulerOptions o = {}) : pool(cfg, blocks, 4), bm(pool), sched(bm, o) {}
  ModelConfig cfg = parse_model_config(testing_util::tiny_v3_config(64));
  KVPool pool;
  BlockManager bm;
  Scheduler sched;
  std::vector<std::unique_ptr<Sequence>> seqs;

  Sequence* add(int n_prompt, int salt = 0) {
    auto s = std::make_unique<Sequence>();
    s->id = int64_t(seqs.size());
    for (int i = 0; i < n_prompt; ++i) s->tokens.push_back(int32_t((i * 7 + salt) % 64));
    s->n_prompt = n_prompt;
    sched.add(s.get());
    seqs.push_back(std::move(s));
    return seqs.back().get();
  }
  // "Runs" a schedule: the work is computed, full blocks published, and each sequence that
  // reached its end gets one more (generated) token.
  Schedule step() {
    Schedule sch = sched.schedule();
    for (const auto& w : sch.work) {
      w.seq->n_computed += w.n;
      bm.publish(w.seq->tokens, w.seq->n_computed, w.seq->blocks, w.seq->hashes);
      if (w.seq->n_computed == w.seq->n_tokens()) w.seq->tokens.push_back(1);
    }
    return sch;
  }
};

int64_t work_of(const Schedule& s, const Sequence* q) {
  for (const auto& w : s.work)
    if (w.seq == q) return w.n;
  return 0;
}

TEST(Scheduler, BudgetChunksPromptsAndDecodeGoesFirst) {
  Fixture f(64, {8, 10});
  Sequence* a = f.add(14);
  Schedule s1 = f.step();
  EXPECT_EQ(work_of(s1, a), 10);  // the budget caps the first chunk
  Sequence* b = f.add(6, 1);
  Schedule s2 = f.step();
  EXPECT_EQ(work_of(s2, a), 4);  // a finishes its prompt (running first)...
  EXPECT_EQ(work_of(s2, b), 6);  // ...then b is admitted with what is left
  Schedule s3 = f.step();
  EXPECT_EQ(work_of(s3, a), 1);  // both decode
  EXPECT_EQ(work_of(s3, b), 1);
  EXPECT_EQ(s3.tokens, 2);
  for (auto& q : f.seqs) f.sched.remove(q.get());
  EXPECT_EQ(f.bm.num_used(), 0);
  f.bm.check();
}

TEST(Scheduler, MaxSeqsLimitsAdmission) {
  Fixture f(64, {2, 100});
  Sequence* a = f.add(3);
  Sequence* b = f.add(3, 1);
  Sequence* c = f.add(3, 2);
  Schedule s = f.step();
  EXPECT_GT(work_of(s, a), 0);
  EXPECT_GT(work_of(s, b), 0);
  EXPECT_EQ(work_of(s, c), 0);
  EXPECT_EQ(f.sched.num_waiting(), 1u);
  f.sched.remove(a);
  Schedule s2 = f.step();
  EXPECT_EQ(work_of(s2, c), 3);
}

TEST(Scheduler, NewestIsPreemptedWhenThePoolRunsOutAndComesBackFirst) {
  Fixture f(6, {8, 64});  // 6 blocks of 4 tokens
  Sequence* a = f.add(8);
  Sequence* b = f.add(8, 3);
  f.step();  // a: 2 blocks, b: 2 blocks (+1 token each now)
  EXPECT_EQ(f.bm.num_free(), 2);
  f.step();  // both decode into a third block each: 6 used
  EXPECT_EQ(f.bm.num_free(), 0);
  for (int i = 0; i < 3; ++i) f.step();  // positions 9..11 fit
  Schedule s = f.step();                  // position 12 needs a 4th block for a: b is preempted
  ASSERT_EQ(s.preempted.size(), 1u);
  EXPECT_EQ(s.preempted[0], b);
  EXPECT_EQ(b->status, SeqStatus::Waiting);
  EXPECT_EQ(b->n_computed, 0);
  EXPECT_TRUE(b->blocks.empty());
  EXPECT_EQ(b->preemptions, 1);
  EXPECT_EQ(work_of(s, a), 1);
  EXPECT_EQ(f.sched.preemptions(), 1);
  // Nothing else is admitted in a step that preempted; b comes back when a is gone, and its
  // own published blocks (full blocks of its tokens) are found again.
  f.sched.remove(a);
  Schedule s2 = f.step();
  EXPECT_GT(work_of(s2, b), 0);
  EXPECT_EQ(b->n_computed, b->n_tokens() - 1);
  f.sched.remove(b);
  EXPECT_EQ(f.bm.num_used(), 0);
  f.bm.check();
}

TEST(Scheduler, AdmissionTakesThePrefixCacheAndRecomputesAtLeastOneToken) {
  Fixture f(16, {8, 64});
  Sequence* a = f.add(12);
  f.step();
  f.sched.remove(a);  // its 3 full blocks stay cached
  EXPECT_EQ(f.bm.num_cached(), 3);
  Sequence* b = f.add(12);  // the same prompt: everything cached, the last token recomputed
  Schedule s = f.step();
  EXPECT_EQ(b->cached_tokens, 12);
  EXPECT_EQ(work_of(s, b), 1);
  Sequence* c = f.add(10);  // a shorter prompt: 2 blocks cached
  Schedule s2 = f.step();
  EXPECT_EQ(c->cached_tokens, 8);
  EXPECT_EQ(work_of(s2, c), 2);
  Sequence* d = f.add(12, 5);  // different tokens: nothing
  f.step();
  EXPECT_EQ(d->cached_tokens, 0);
  for (auto& q : f.seqs)
    if (q->status != SeqStatus::Finished) f.sched.remove(q.get());
  EXPECT_EQ(f.bm.num_used(), 0);
  f.bm.check();
}

}  // namespace
}  // namespace qs
