// Which KV-pool blocks belong to which sequence, and the prefix cache.
//
// A sequence's latents live in a block table (block ids in position order). Blocks carry
// reference counts: a block may be in several tables at once — sequences with a common
// prefix (a repeated system prompt, the turns of one chat, the G samples of one GRPO prompt)
// share the blocks of that prefix — and a block shared by several tables is read-only.
//
// Prefix cache: once a block is full and computed, the sequence publishes it under a chained
// hash h_i = H(h_{i-1}, tokens of block i) (so a block matches only when the whole prefix
// before it matches; the tokens and the parent hash are kept and compared too, so a hash
// collision can never return wrong latents). A later sequence whose tokens start with
// published blocks takes them instead of recomputing them. When the last reference goes, a
// published block is not freed but kept as "cached": it can be taken again until its memory
// is needed, and cached blocks are evicted least recently released first. Unpublished blocks
// are freed when their last reference goes.
//
// Capacity is counted in blocks: num_free() = never-used + evictable cached blocks.
// Not thread-safe: the engine's step owns it.
#pragma once
#include <cstdint>
#include <functional>
#include <list>
#include <span>
#include <unordered_map>
#include <vector>

#include "qiusuo/model/kv_cache.h"

namespace qs {

class BlockManager {
 public:
  BlockManager(KVPool& pool, bool prefix_caching = true);

  KVPool& pool() { return pool_; }
  int64_t block_size() const { return B_; }
  int64_t num_blocks() const { return int64_t(meta_.size()); }
  int64_t num_free() const { return int64_t(free_.size() + lru_.size()); }  // allocatable now
  int64_t num_used() const { return num_blocks() - num_free(); }            // in some table
  int64_t num_cached() const { return int64_t(lru_.size()); }               // evictable, kept
  bool prefix_caching() const { return caching_; }

  // Blocks needed to hold `n` tokens.
  int64_t blocks_for(int64_t n) const { return (n + B_ - 1) / B_; }

  // The longest run of published blocks that holds tokens[0, k·B) with k·B <= max_tokens:
  // takes a reference on each, appends them to `table` (which must be empty) and their chain
  // hashes to `hashes`. Returns the number of tokens they hold (0 without prefix caching).
  int64_t acquire_prefix(std::span<const int32_t> tokens, int64_t max_tokens, std::vector<int32_t>& table,
                         std::vector<uint64_t>& hashes);

  // Fresh blocks that writing positions [covered, n) needs: the blocks appended to cover n
  // tokens, plus one for every shared block among those holding the positions (it must be
  // copied before writing).
  int64_t blocks_needed(const std::vector<int32_t>& table, int64_t covered, int64_t n) const;
  // Makes `table` ready for writing positions [covered, n): every block holding one of them
  // becomes private (a shared one is copied: its rows before `covered`), and fresh blocks are
  // appended up to n tokens. Returns false, with nothing changed, when the pool has too few
  // free blocks (evicting cached blocks as needed otherwise).
  bool prepare_write(std::vector<int32_t>& table, int64_t covered, int64_t n);

  // Publishes the full blocks among tokens[0, n_computed) that are not yet in `hashes`
  // (hashes.size() of them are): extends `hashes` with their chain hashes. A block whose
  // contents are already published by another block stays private to this table.
  void publish(std::span<const int32_t> tokens, int64_t n_computed, const std::vector<int32_t>& table,
               std::vector<uint64_t>& hashes);

  // Takes one more reference on every block of `table` (a forked sequence shares them).
  void share(const std::vector<int32_t>& table);
  // Drops this table's references and empties it (and `hashes`).
  void release(std::vector<int32_t>& table, std::vector<uint64_t>& hashes);
  // Shrinks a table to `n` tokens (rollback of speculative tokens): blocks past it are
  // released; the hash of a block that is no longer full is dropped from `hashes`.
  void truncate(std::vector<int32_t>& table, std::vector<uint64_t>& hashes, int64_t n);

  // Forgets every cached (unreferenced) block's contents, and stops published blocks that are
  // still referenced from being matched again: after the model's weights changed.
  void clear_cache();

  // Reference count of a block (tests).
  int32_t refs(int32_t block) const { return meta_[size_t(block)].refs; }
  // Internal consistency (tests): counts add up, no block both free and referenced.
  void check() const;

  // ---- persistence hooks (disk context cache) ----
  struct CachedBlock {
    uint64_t hash = 0, parent = 0;  // parent = 0 for the first block of a sequence
    std::vector<int32_t> tokens;    // block_size tokens
    int32_t block = -1;
  };
  // Every published block (referenced or cached), parents before children.
  std::vector<CachedBlock> published() const;
  // Adds a block under (parent, tokens) and lets `fill` write its latents (all layers,
  // KVPool::block_data); it lands in the cache as evictable. Returns false when no block is
  // free or the contents are already published (nothing changed then).
  bool insert(uint64_t parent, std::span<const int32_t> tokens, const std::function<void(float*)>& fill);
  // The chain hash of a block of tokens after `parent` (0 for the first block).
  static uint64_t chain_hash(uint64_t parent, std::span<const int32_t> tokens);

 private:
  struct Meta {
    int32_t refs = 0;
    bool published = false;
    uint64_t hash = 0, parent = 0;
    std::vector<int32_t> tokens;          // contents when published
    std::list<int32_t>::iterator lru;     // position in lru_ when cached
  };
  int32_t take_block();            // a free block (evicting the least recently cached one)
  void unpublish(int32_t block);
  void drop_ref(int32_t block);
  int32_t find(uint64_t hash, uint64_t parent, std::span<const int32_t> tokens) const;

  KVPool& pool_;
  int64_t B_;
  bool caching_;
  std::vector<Meta> meta_;
  std::vector<int32_t> free_;      // never used / fully freed
  std::list<int32_t> lru_;         // cached blocks, least recently released first
  std::unordered_multimap<uint64_t, int32_t> by_hash_;
};

}  // namespace qs
