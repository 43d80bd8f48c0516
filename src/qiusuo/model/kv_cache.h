// The MLA latent KV cache, paged. Per token and layer it stores only what MLA needs to
// rebuild keys and values: the normalized KV latent c_kv [kv_lora_rank] and the rotated
// shared RoPE key k_pe [qk_rope_head_dim] — (kv_lora_rank + qk_rope_head_dim) floats instead
// of n_h·(qk_head_dim + v_head_dim) for standard multi-head attention.
//
// Memory is a pool of fixed-size blocks (block_size tokens × all layers); each sequence owns a
// block table, so sequences of any lengths share one pool without fragmentation (the server
// and GRPO rollouts batch ragged sequences). Sequences are identified by small integer slots.
#pragma once
#include <cstdint>
#include <vector>

#include "qiusuo/core/buffer.h"
#include "qiusuo/model/config.h"

namespace qs {

class KVCache {
 public:
  // Room for `capacity_tokens` tokens in all (`num_sequences` at most).
  KVCache(const ModelConfig& cfg, int64_t capacity_tokens, int64_t max_sequences = 64,
          int64_t block_size = 64, int64_t num_layers = -1);

  int64_t row_width() const { return width_; }  // kv_lora_rank + qk_rope_head_dim
  int64_t kv_lora_rank() const { return lora_; }
  int64_t block_size() const { return block_; }
  int64_t num_layers() const { return layers_; }
  int64_t capacity_tokens() const { return int64_t(free_blocks_.size() + used_blocks()) * block_; }
  int64_t free_tokens() const { return int64_t(free_blocks_.size()) * block_; }
  size_t bytes_per_token() const { return size_t(width_ * layers_) * sizeof(float); }

  int64_t add_sequence();                 // new empty sequence; returns its slot
  void remove_sequence(int64_t seq);      // frees its blocks
  void truncate(int64_t seq, int64_t len);  // forget tokens at positions >= len
  int64_t length(int64_t seq) const;      // tokens cached
  // Makes room for positions [length, new_len) and sets length = new_len. Throws qs::Error
  // when the pool is exhausted.
  void extend(int64_t seq, int64_t new_len);

  // The row of `layer` at `pos` (< length): [c_kv (kv_lora_rank) | k_pe (rope dim)].
  float* row(int64_t layer, int64_t seq, int64_t pos) {
    const auto& bt = seqs_[size_t(seq)].blocks;
    return data_.data() + ((bt[size_t(pos / block_)] * layers_ + layer) * block_ + pos % block_) * width_;
  }
  const float* row(int64_t layer, int64_t seq, int64_t pos) const {
    return const_cast<KVCache*>(this)->row(layer, seq, pos);
  }
  // Rows of one block are contiguous: the block holding `pos` and how many rows follow it.
  int64_t contiguous_rows(int64_t seq, int64_t pos) const {
    return std::min(block_ - pos % block_, length(seq) - pos);
  }

 private:
  int64_t used_blocks() const;
  struct Seq { bool live = false; int64_t len = 0; std::vector<int64_t> blocks; };
  int64_t layers_, lora_, width_, block_;
  Buffer<float> data_;  // [num_blocks][layers][block_size][width]
  std::vector<int64_t> free_blocks_;
  std::vector<Seq> seqs_;
};

}  // namespace qs
