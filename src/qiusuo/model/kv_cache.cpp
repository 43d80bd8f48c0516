#include "qiusuo/model/kv_cache.h"

#include <algorithm>

#include "qiusuo/core/error.h"

namespace qs {

KVCache::KVCache(const ModelConfig& cfg, int64_t capacity_tokens, int64_t max_sequences, int64_t block_size,
                 int64_t num_layers)
    : layers_(num_layers < 0 ? cfg.num_hidden_layers : num_layers),
      lora_(cfg.kv_lora_rank),
      width_(cfg.kv_lora_rank + cfg.qk_rope_head_dim),
      block_(block_size) {
  QS_CHECK(block_size > 0 && capacity_tokens > 0, "KV cache needs positive capacity and block size");
  const int64_t blocks = (capacity_tokens + block_ - 1) / block_;
  data_.resize(size_t(blocks * layers_ * block_ * width_), false);
  free_blocks_.reserve(size_t(blocks));
  for (int64_t b = blocks - 1; b >= 0; --b) free_blocks_.push_back(b);
  seqs_.resize(size_t(max_sequences));
}

int64_t KVCache::used_blocks() const {
  int64_t n = 0;
  for (const auto& s : seqs_) n += int64_t(s.blocks.size());
  return n;
}

int64_t KVCache::add_sequence() {
  for (size_t i = 0; i < seqs_.size(); ++i)
    if (!seqs_[i].live) {
      seqs_[i] = Seq{true, 0, {}};
      return int64_t(i);
    }
  seqs_.push_back(Seq{true, 0, {}});
  return int64_t(seqs_.size() - 1);
}

void KVCache::remove_sequence(int64_t seq) {
  QS_CHECK(seq >= 0 && size_t(seq) < seqs_.size() && seqs_[size_t(seq)].live, "no KV cache sequence ", seq);
  auto& s = seqs_[size_t(seq)];
  for (auto b : s.blocks) free_blocks_.push_back(b);
  s = Seq{};
}

int64_t KVCache::length(int64_t seq) const {
  QS_CHECK(seq >= 0 && size_t(seq) < seqs_.size() && seqs_[size_t(seq)].live, "no KV cache sequence ", seq);
  return seqs_[size_t(seq)].len;
}

void KVCache::truncate(int64_t seq, int64_t len) {
  auto& s = seqs_[size_t(seq)];
  QS_CHECK(len >= 0 && len <= s.len, "cannot truncate sequence ", seq, " of length ", s.len, " to ", len);
  s.len = len;
  const size_t keep = size_t((len + block_ - 1) / block_);
  while (s.blocks.size() > keep) {
    free_blocks_.push_back(s.blocks.back());
    s.blocks.pop_back();
  }
}

void KVCache::extend(int64_t seq, int64_t new_len) {
  QS_CHECK(seq >= 0 && size_t(seq) < seqs_.size() && seqs_[size_t(seq)].live, "no KV cache sequence ", seq);
  auto& s = seqs_[size_t(seq)];
  QS_CHECK(new_len >= s.len, "KV cache extend must not shrink");
  const size_t need = size_t((new_len + block_ - 1) / block_);
  if (need > s.blocks.size() && need - s.blocks.size() > free_blocks_.size())
    fail(ErrorKind::Invalid, "KV cache is full: sequence ", seq, " needs ", new_len, " tokens but only ",
         int64_t(s.blocks.size() + free_blocks_.size()) * block_, " fit (raise the context/cache size)");
  while (s.blocks.size() < need) {
    s.blocks.push_back(free_blocks_.back());
    free_blocks_.pop_back();
  }
  s.len = new_len;
}

}  // namespace qs
