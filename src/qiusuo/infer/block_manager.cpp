#include "qiusuo/infer/block_manager.h"

#include <algorithm>
#include <cstring>

#include "qiusuo/core/error.h"

namespace qs {

namespace {
uint64_t mix(uint64_t x) {  // splitmix64 finalizer
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}
}  // namespace

uint64_t BlockManager::chain_hash(uint64_t parent, std::span<const int32_t> tokens) {
  uint64_t h = mix(parent ^ 0x51ed270b27e6d0a1ull);
  for (int32_t t : tokens) h = mix(h ^ uint64_t(uint32_t(t)));
  return h == 0 ? 1 : h;  // 0 means "no parent"
}

BlockManager::BlockManager(KVPool& pool, bool prefix_caching)
    : pool_(pool), B_(pool.block_size()), caching_(prefix_caching) {
  meta_.resize(size_t(pool.num_blocks()));
  free_.reserve(meta_.size());
  for (int64_t b = pool.num_blocks() - 1; b >= 0; --b) free_.push_back(int32_t(b));
}

int32_t BlockManager::find(uint64_t hash, uint64_t parent, std::span<const int32_t> tokens) const {
  auto [lo, hi] = by_hash_.equal_range(hash);
  for (auto it = lo; it != hi; ++it) {
    const Meta& m = meta_[size_t(it->second)];
    if (m.parent == parent && std::equal(tokens.begin(), tokens.end(), m.tokens.begin(), m.tokens.end()))
      return it->second;
  }
  return -1;
}

void BlockManager::unpublish(int32_t b) {
  Meta& m = meta_[size_t(b)];
  if (!m.published) return;
  auto [lo, hi] = by_hash_.equal_range(m.hash);
  for (auto it = lo; it != hi; ++it)
    if (it->second == b) {
      by_hash_.erase(it);
      break;
    }
  m.published = false;
  m.tokens.clear();
  m.tokens.shrink_to_fit();
}

int32_t BlockManager::take_block() {
  int32_t b;
  if (!free_.empty()) {
    b = free_.back();
    free_.pop_back();
  } else {
    QS_CHECK(!lru_.empty(), "KV pool exhausted");  // callers check num_free() first
    b = lru_.front();
    lru_.pop_front();
    unpublish(b);
  }
  meta_[size_t(b)].refs = 1;
  return b;
}

void BlockManager::drop_ref(int32_t b) {
  Meta& m = meta_[size_t(b)];
  QS_ASSERT(m.refs > 0);
  if (--m.refs > 0) return;
  if (m.published && caching_) {
    lru_.push_back(b);
    m.lru = std::prev(lru_.end());
  } else {
    unpublish(b);
    free_.push_back(b);
  }
}

int64_t BlockManager::acquire_prefix(std::span<const int32_t> tokens, int64_t max_tokens, std::vector<int32_t>& table,
                                     std::vector<uint64_t>& hashes) {
  QS_ASSERT(table.empty() && hashes.empty());
  if (!caching_) return 0;
  const int64_t full = std::min<int64_t>(max_tokens, int64_t(tokens.size())) / B_;
  uint64_t parent = 0;
  for (int64_t i = 0; i < full; ++i) {
    const auto blk = tokens.subspan(size_t(i * B_), size_t(B_));
    const uint64_t h = chain_hash(parent, blk);
    const int32_t b = find(h, parent, blk);
    if (b < 0) break;
    Meta& m = meta_[size_t(b)];
    if (m.refs == 0) lru_.erase(m.lru);
    m.refs++;
    table.push_back(b);
    hashes.push_back(h);
    parent = h;
  }
  return int64_t(table.size()) * B_;
}

int64_t BlockManager::blocks_needed(const std::vector<int32_t>& table, int64_t covered, int64_t n) const {
  if (n <= covered) return 0;
  int64_t need = std::max<int64_t>(0, blocks_for(n) - int64_t(table.size()));
  const int64_t last = std::min<int64_t>(int64_t(table.size()), blocks_for(n));
  for (int64_t b = covered / B_; b < last; ++b) need += meta_[size_t(table[size_t(b)])].refs > 1;
  return need;
}

bool BlockManager::prepare_write(std::vector<int32_t>& table, int64_t covered, int64_t n) {
  if (n <= covered) return true;
  if (blocks_needed(table, covered, n) > num_free()) return false;
  const int64_t last = std::min<int64_t>(int64_t(table.size()), blocks_for(n));
  for (int64_t i = covered / B_; i < last; ++i) {
    int32_t& b = table[size_t(i)];
    if (meta_[size_t(b)].refs > 1) {  // copy on write: the rows before `covered` in this block
      const int32_t fresh = take_block();
      pool_.copy_block(fresh, b, std::clamp<int64_t>(covered - i * B_, 0, B_));
      drop_ref(b);
      b = fresh;
    }
  }
  while (int64_t(table.size()) < blocks_for(n)) table.push_back(take_block());
  return true;
}

void BlockManager::publish(std::span<const int32_t> tokens, int64_t n_computed, const std::vector<int32_t>& table,
                           std::vector<uint64_t>& hashes) {
  const int64_t full = std::min<int64_t>(n_computed, int64_t(tokens.size())) / B_;
  for (int64_t i = int64_t(hashes.size()); i < full && i < int64_t(table.size()); ++i) {
    const uint64_t parent = i > 0 ? hashes[size_t(i - 1)] : 0;
    const auto blk = tokens.subspan(size_t(i * B_), size_t(B_));
    const uint64_t h = chain_hash(parent, blk);
    hashes.push_back(h);
    if (!caching_) continue;
    Meta& m = meta_[size_t(table[size_t(i)])];
    if (m.published || find(h, parent, blk) >= 0) continue;
    m.published = true;
    m.hash = h;
    m.parent = parent;
    m.tokens.assign(blk.begin(), blk.end());
    by_hash_.emplace(h, table[size_t(i)]);
  }
}

void BlockManager::share(const std::vector<int32_t>& table) {
  for (int32_t b : table) {
    Meta& m = meta_[size_t(b)];
    QS_ASSERT(m.refs > 0);
    m.refs++;
  }
}

void BlockManager::release(std::vector<int32_t>& table, std::vector<uint64_t>& hashes) {
  // Later blocks first: the cache evicts a chain from its end.
  for (auto it = table.rbegin(); it != table.rend(); ++it) drop_ref(*it);
  table.clear();
  hashes.clear();
}

void BlockManager::truncate(std::vector<int32_t>& table, std::vector<uint64_t>& hashes, int64_t n) {
  const size_t keep = size_t(blocks_for(n));
  while (table.size() > keep) {
    drop_ref(table.back());
    table.pop_back();
  }
  hashes.resize(std::min<size_t>(hashes.size(), size_t(n / B_)));
  // A kept partial block that was published is about to be rewritten: it must not be matched
  // any more (it stays in this table; it is private because full blocks are never shared
  // while another sequence writes after them... unless they are: then it must be copied
  // before writing, which prepare_write does for shared blocks).
  if (n % B_ != 0 && !table.empty()) {
    const int32_t b = table.back();
    if (meta_[size_t(b)].refs == 1) unpublish(b);
  }
}

void BlockManager::clear_cache() {
  for (int32_t b : lru_) {
    unpublish(b);
    free_.push_back(b);
  }
  lru_.clear();
  for (size_t b = 0; b < meta_.size(); ++b) unpublish(int32_t(b));
}

void BlockManager::check() const {
  int64_t referenced = 0, cached = 0;
  std::vector<char> in_free(meta_.size(), 0);
  for (int32_t b : free_) {
    QS_CHECK(!in_free[size_t(b)], "block ", b, " is free twice");
    in_free[size_t(b)] = 1;
    QS_CHECK(meta_[size_t(b)].refs == 0 && !meta_[size_t(b)].published, "free block ", b, " is in use");
  }
  for (int32_t b : lru_) {
    QS_CHECK(!in_free[size_t(b)], "block ", b, " is both free and cached");
    QS_CHECK(meta_[size_t(b)].refs == 0 && meta_[size_t(b)].published, "cached block ", b, " is referenced");
    cached++;
  }
  for (const auto& m : meta_) referenced += m.refs > 0;
  QS_CHECK(referenced + cached + int64_t(free_.size()) == num_blocks(), "block accounting: ", referenced,
           " referenced + ", cached, " cached + ", free_.size(), " free != ", num_blocks());
  size_t published = 0;
  for (const auto& m : meta_) published += m.published;
  QS_CHECK(published == by_hash_.size(), "published blocks ", published, " != hash entries ", by_hash_.size());
}

std::vector<BlockManager::CachedBlock> BlockManager::published() const {
  std::vector<CachedBlock> out;
  std::unordered_map<uint64_t, int> depth;  // chain depth of a hash, to order parents first
  for (size_t b = 0; b < meta_.size(); ++b) {
    const Meta& m = meta_[b];
    if (m.published) out.push_back({m.hash, m.parent, m.tokens, int32_t(b)});
  }
  std::unordered_map<uint64_t, uint64_t> parent_of;
  for (const auto& c : out) parent_of[c.hash] = c.parent;
  auto depth_of = [&](uint64_t h) {
    int d = 0;
    for (auto it = parent_of.find(h); it != parent_of.end() && it->second != 0 && d < 1 << 20;
         it = parent_of.find(it->second))
      ++d;
    return d;
  };
  for (const auto& c : out) depth[c.hash] = depth_of(c.hash);
  std::stable_sort(out.begin(), out.end(),
                   [&](const CachedBlock& a, const CachedBlock& b) { return depth[a.hash] < depth[b.hash]; });
  return out;
}

bool BlockManager::insert(uint64_t parent, std::span<const int32_t> tokens, const std::function<void(float*)>& fill) {
  if (!caching_ || int64_t(tokens.size()) != B_ || num_free() == 0) return false;
  const uint64_t h = chain_hash(parent, tokens);
  if (find(h, parent, tokens) >= 0) return false;
  const int32_t b = take_block();
  fill(pool_.block_data(b));
  Meta& m = meta_[size_t(b)];
  m.published = true;
  m.hash = h;
  m.parent = parent;
  m.tokens.assign(tokens.begin(), tokens.end());
  by_hash_.emplace(h, b);
  drop_ref(b);  // refs 1 -> 0: into the cache
  return true;
}

}  // namespace qs
