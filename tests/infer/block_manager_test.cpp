// BlockManager: paging, copy-on-write, the prefix cache (hits, misses, chaining), LRU
// eviction, reference counts, rollback, and persistence hooks.
#include "qiusuo/infer/block_manager.h"

#include <gtest/gtest.h>

#include <numeric>

#include "qiusuo/core/error.h"
#include "qiusuo/model/config.h"
#include "test_util.h"

namespace qs {
namespace {

constexpr int64_t kB = 4;  // tokens per block

struct Fixture {
  ModelConfig cfg = parse_model_config(testing_util::tiny_v3_config(64));
  KVPool pool{cfg, 8, kB};
  BlockManager bm{pool};
};

std::vector<int32_t> seq(int n, int start = 0) {
  std::vector<int32_t> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), start);
  return v;
}

// A sequence's state as the scheduler keeps it.
struct Seq {
  std::vector<int32_t> tokens, table = {};
  std::vector<uint64_t> hashes = {};
  int64_t computed = 0;
};

// Computes (pretends to) the whole sequence: blocks for it, then publishes.
void compute(BlockManager& bm, Seq& s) {
  ASSERT_TRUE(bm.prepare_write(s.table, s.computed, int64_t(s.tokens.size())));
  s.computed = int64_t(s.tokens.size());
  bm.publish(s.tokens, s.computed, s.table, s.hashes);
}

TEST(BlockManager, PagingAndFullPool) {
  Fixture f;
  EXPECT_EQ(f.bm.num_blocks(), 8);
  EXPECT_EQ(f.bm.num_free(), 8);
  std::vector<int32_t> t;
  ASSERT_TRUE(f.bm.prepare_write(t, 0, 9));  // 9 tokens: 3 blocks
  EXPECT_EQ(t.size(), 3u);
  EXPECT_EQ(f.bm.num_used(), 3);
  ASSERT_TRUE(f.bm.prepare_write(t, 9, 12));  // fits in the third block
  EXPECT_EQ(t.size(), 3u);
  std::vector<int32_t> u;
  ASSERT_TRUE(f.bm.prepare_write(u, 0, 20));  // 5 more: pool full
  EXPECT_EQ(f.bm.num_free(), 0);
  const auto before = t;
  EXPECT_FALSE(f.bm.prepare_write(t, 12, 13));  // needs a 4th block: refused, nothing changed
  EXPECT_EQ(t, before);
  EXPECT_EQ(f.bm.blocks_needed(t, 12, 13), 1);
  std::vector<uint64_t> h;
  f.bm.release(u, h);
  EXPECT_TRUE(u.empty());
  EXPECT_EQ(f.bm.num_free(), 5);
  f.bm.release(t, h);
  EXPECT_EQ(f.bm.num_free(), 8);
  f.bm.check();
}

TEST(BlockManager, PrefixHitsMissesAndChaining) {
  Fixture f;
  Seq a{seq(10)};  // 2 full blocks + 2 tokens
  compute(f.bm, a);
  EXPECT_EQ(a.hashes.size(), 2u);  // only full blocks are published

  // Same first 8 tokens: two blocks hit.
  Seq b{seq(11)};
  EXPECT_EQ(f.bm.acquire_prefix(b.tokens, int64_t(b.tokens.size()), b.table, b.hashes), 8);
  EXPECT_EQ(b.table[0], a.table[0]);
  EXPECT_EQ(b.table[1], a.table[1]);
  EXPECT_EQ(f.bm.refs(a.table[0]), 2);

  // A different token in the second block: only the first hits.
  Seq c{seq(8)};
  c.tokens[5] = 60;
  EXPECT_EQ(f.bm.acquire_prefix(c.tokens, 8, c.table, c.hashes), 4);

  // The second block's tokens after a different first block: no hit (hashes chain).
  Seq d{seq(8)};
  d.tokens[0] = 61;
  EXPECT_EQ(f.bm.acquire_prefix(d.tokens, 8, d.table, d.hashes), 0);

  // max_tokens limits the match to whole blocks below it.
  Seq e{seq(8)};
  EXPECT_EQ(f.bm.acquire_prefix(e.tokens, 7, e.table, e.hashes), 4);

  // Without prefix caching nothing is ever shared.
  ModelConfig cfg = parse_model_config(testing_util::tiny_v3_config(64));
  KVPool pool(cfg, 8, kB);
  BlockManager off(pool, false);
  Seq g{seq(8)};
  compute(off, g);
  Seq h{seq(8)};
  EXPECT_EQ(off.acquire_prefix(h.tokens, 8, h.table, h.hashes), 0);
  for (Seq* s : {&a, &b, &c, &d, &e}) f.bm.release(s->table, s->hashes);
  f.bm.check();
  EXPECT_EQ(f.bm.num_used(), 0);
}

TEST(BlockManager, CopyOnWriteOfASharedPartialBlock) {
  Fixture f;
  Seq a{seq(6)};
  compute(f.bm, a);
  // Fill a's latents with a recognisable pattern.
  auto first_value = [&](int64_t l, int32_t block, int64_t r) {
    std::vector<float> row(size_t(f.pool.row_width()));
    f.pool.load(l, block, r, 1, row.data());
    return row[0];
  };
  for (int64_t l = 0; l < f.pool.num_layers(); ++l)
    for (int64_t r = 0; r < kB; ++r) {
      std::vector<float> row(size_t(f.pool.row_width()), float(100 * l + r));
      f.pool.store(l, a.table[1], r, row.data());
    }
  Seq b = a;  // a fork: shares every block
  f.bm.share(b.table);
  EXPECT_EQ(f.bm.refs(a.table[1]), 2);
  EXPECT_EQ(f.bm.blocks_needed(b.table, 6, 7), 1);  // the shared partial block must be copied
  ASSERT_TRUE(f.bm.prepare_write(b.table, 6, 7));
  EXPECT_NE(b.table[1], a.table[1]);
  EXPECT_EQ(b.table[0], a.table[0]);  // the full block stays shared
  EXPECT_EQ(f.bm.refs(a.table[1]), 1);
  for (int64_t l = 0; l < f.pool.num_layers(); ++l)
    for (int64_t r = 0; r < 2; ++r)  // 6 % 4 = 2 rows copied
      EXPECT_EQ(first_value(l, b.table[1], r), float(100 * l + r));
  f.bm.release(a.table, a.hashes);
  f.bm.release(b.table, b.hashes);
  f.bm.check();
}

TEST(BlockManager, CachedBlocksAreEvictedLeastRecentlyReleasedFirst) {
  Fixture f;
  Seq a{seq(8, 0)}, b{seq(8, 20)};
  compute(f.bm, a);
  compute(f.bm, b);
  const auto a_blocks = a.table, b_blocks = b.table;
  f.bm.release(a.table, a.hashes);  // a first: evicted first, its last block first
  f.bm.release(b.table, b.hashes);
  EXPECT_EQ(f.bm.num_cached(), 4);
  EXPECT_EQ(f.bm.num_free(), 8);
  // Take the 4 never-used blocks, then one more: evicts a's last block.
  std::vector<int32_t> t;
  ASSERT_TRUE(f.bm.prepare_write(t, 0, 5 * kB));
  EXPECT_EQ(f.bm.num_cached(), 3);
  Seq a2{seq(8, 0)};
  EXPECT_EQ(f.bm.acquire_prefix(a2.tokens, 8, a2.table, a2.hashes), 4);  // a's first block survived
  EXPECT_EQ(a2.table[0], a_blocks[0]);
  Seq b2{seq(8, 20)};
  EXPECT_EQ(f.bm.acquire_prefix(b2.tokens, 8, b2.table, b2.hashes), 8);  // b untouched
  EXPECT_EQ(b2.table, b_blocks);
  std::vector<uint64_t> h;
  f.bm.release(t, h);
  f.bm.release(a2.table, a2.hashes);
  f.bm.release(b2.table, b2.hashes);
  f.bm.check();
}

TEST(BlockManager, DuplicatePublishKeepsOneCopyAndFreesTheOther) {
  Fixture f;
  Seq a{seq(4)}, b{seq(4)};
  compute(f.bm, a);
  compute(f.bm, b);  // computed concurrently, same contents: b's block stays private
  f.bm.release(a.table, a.hashes);
  f.bm.release(b.table, b.hashes);
  EXPECT_EQ(f.bm.num_cached(), 1);
  f.bm.check();
}

TEST(BlockManager, TruncateRollsBackAndUnpublishesARewrittenBlock) {
  Fixture f;
  Seq a{seq(10)};
  compute(f.bm, a);
  f.bm.truncate(a.table, a.hashes, 6);  // back into the second (published) block
  EXPECT_EQ(a.table.size(), 2u);
  EXPECT_EQ(a.hashes.size(), 1u);
  Seq b{seq(8)};
  EXPECT_EQ(f.bm.acquire_prefix(b.tokens, 8, b.table, b.hashes), 4);  // the second no longer matches
  f.bm.release(a.table, a.hashes);
  f.bm.release(b.table, b.hashes);
  f.bm.check();
  EXPECT_EQ(f.bm.num_used(), 0);
}

TEST(BlockManager, ClearCacheForgetsEverything) {
  Fixture f;
  Seq a{seq(8)};
  compute(f.bm, a);
  Seq keep{seq(8, 30)};
  compute(f.bm, keep);
  f.bm.release(a.table, a.hashes);
  f.bm.clear_cache();
  EXPECT_EQ(f.bm.num_cached(), 0);
  Seq b{seq(8)}, c{seq(8, 30)};
  EXPECT_EQ(f.bm.acquire_prefix(b.tokens, 8, b.table, b.hashes), 0);
  EXPECT_EQ(f.bm.acquire_prefix(c.tokens, 8, c.table, c.hashes), 0);  // still referenced, yet stale
  f.bm.release(keep.table, keep.hashes);
  f.bm.check();
  EXPECT_EQ(f.bm.num_free(), 8);
}

TEST(BlockManager, PublishedBlocksRoundTripThroughInsert) {
  Fixture f;
  Seq a{seq(8)};
  compute(f.bm, a);
  std::vector<float> row(size_t(f.pool.row_width()), 7.5f);
  for (int64_t l = 0; l < f.pool.num_layers(); ++l) f.pool.store(l, a.table[1], 3, row.data());
  f.bm.release(a.table, a.hashes);
  const auto blocks = f.bm.published();
  ASSERT_EQ(blocks.size(), 2u);
  EXPECT_EQ(blocks[0].parent, 0u);  // parents first
  EXPECT_EQ(blocks[1].parent, blocks[0].hash);
  // Into a fresh manager (a restart): the chain is found again with its contents.
  ModelConfig cfg = parse_model_config(testing_util::tiny_v3_config(64));
  KVPool pool(cfg, 8, kB);
  BlockManager bm(pool);
  for (const auto& b : blocks) {
    const float* src = f.pool.block_data(b.block);
    ASSERT_TRUE(bm.insert(b.parent, b.tokens, [&](float* dst) { std::copy_n(src, pool.block_floats(), dst); }));
  }
  EXPECT_FALSE(bm.insert(blocks[0].parent, blocks[0].tokens, [](float*) {}));  // already there
  Seq b{seq(9)};
  EXPECT_EQ(bm.acquire_prefix(b.tokens, 9, b.table, b.hashes), 8);
  pool.load(0, b.table[1], 3, 1, row.data());
  EXPECT_EQ(row[1], 7.5f);
  bm.release(b.table, b.hashes);
  bm.check();
}

}  // namespace
}  // namespace qs
