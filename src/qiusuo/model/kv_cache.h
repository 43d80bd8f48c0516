// The MLA latent KV cache, paged. Per token and layer it stores only what MLA needs to
// rebuild keys and values: the normalized KV latent c_kv [kv_lora_rank] and the rotated
// shared RoPE key k_pe [qk_rope_head_dim] — (kv_lora_rank + qk_rope_head_dim) floats instead
// of n_h·(qk_head_dim + v_head_dim) for standard multi-head attention.
//
// KVPool is the storage: a fixed number of blocks, each holding block_size tokens of every
// layer. It knows nothing about sequences: a sequence is a block table (block ids in position
// order) owned by whoever schedules it — the engine's BlockManager (infer/block_manager.h),
// which shares full blocks between sequences (prefix cache), or KVCache below for direct use
// of the model (tests, `qiusuo logits`). Model::forward reads and writes the pool through the
// block tables of a StepBatch (model/forward.h).
#pragma once
#include <cstdint>
#include <vector>

#include "qiusuo/core/buffer.h"
#include "qiusuo/model/config.h"

namespace qs {

struct StepBatch;

class KVPool {
 public:
  // `num_blocks` blocks of `block_size` tokens × `num_layers` layers (-1: the model's layers).
  KVPool(const ModelConfig& cfg, int64_t num_blocks, int64_t block_size = 64, int64_t num_layers = -1);

  int64_t num_blocks() const { return blocks_; }
  int64_t block_size() const { return block_; }
  int64_t num_layers() const { return layers_; }
  int64_t row_width() const { return width_; }  // kv_lora_rank + qk_rope_head_dim
  int64_t kv_lora_rank() const { return lora_; }
  int64_t capacity_tokens() const { return blocks_ * block_; }
  size_t bytes_per_token() const { return size_t(width_ * layers_) * sizeof(float); }
  size_t bytes() const { return size_t(capacity_tokens()) * bytes_per_token(); }

  // Row `offset` (< block_size) of `block` in `layer`: [c_kv (kv_lora_rank) | k_pe (rope dim)].
  // The block_size rows of one block and layer are contiguous.
  float* row(int64_t layer, int64_t block, int64_t offset) {
    return data_.data() + ((block * layers_ + layer) * block_ + offset) * width_;
  }
  const float* row(int64_t layer, int64_t block, int64_t offset) const {
    return const_cast<KVPool*>(this)->row(layer, block, offset);
  }
  // All layers of one block: [layers][block_size][width] contiguous floats.
  float* block_data(int64_t block) { return data_.data() + block * layers_ * block_ * width_; }
  const float* block_data(int64_t block) const { return data_.data() + block * layers_ * block_ * width_; }
  size_t block_floats() const { return size_t(layers_ * block_ * width_); }
  // Copies the first `rows` rows of every layer of block `src` into block `dst`.
  void copy_block(int64_t dst, int64_t src, int64_t rows);

 private:
  int64_t blocks_, block_, layers_, lora_, width_;
  Buffer<float> data_;  // [num_blocks][layers][block_size][width]
};

// Sequences with private blocks over their own pool, for direct use of the model (tests,
// `qiusuo logits`, micro-benchmarks): no sharing, no prefix cache. Sequences are small integer
// slots.
class KVCache {
 public:
  // Room for `capacity_tokens` tokens in all.
  KVCache(const ModelConfig& cfg, int64_t capacity_tokens, int64_t max_sequences = 64,
          int64_t block_size = 64, int64_t num_layers = -1);

  KVPool& pool() { return pool_; }
  const KVPool& pool() const { return pool_; }
  int64_t block_size() const { return pool_.block_size(); }
  int64_t capacity_tokens() const { return pool_.capacity_tokens(); }
  int64_t free_tokens() const { return int64_t(free_.size()) * pool_.block_size(); }
  size_t bytes_per_token() const { return pool_.bytes_per_token(); }

  int64_t add_sequence();                   // new empty sequence; returns its slot
  void remove_sequence(int64_t seq);        // frees its blocks
  int64_t length(int64_t seq) const;        // tokens cached
  void truncate(int64_t seq, int64_t len);  // forget tokens at positions >= len
  const std::vector<int32_t>& blocks(int64_t seq) const;

  // Appends tokens[0, n) of sequence `seq` to `batch` as one chunk starting at its current
  // length, reserving blocks for them (the sequence's length grows by n now; truncate() it
  // back if the forward pass fails). Throws qs::Error when the pool is exhausted.
  void append(StepBatch& batch, int64_t seq, const int32_t* tokens, int64_t n);

 private:
  struct Seq { bool live = false; int64_t len = 0; std::vector<int32_t> blocks; };
  Seq& get(int64_t seq);
  const Seq& get(int64_t seq) const;
  KVPool pool_;
  std::vector<int32_t> free_;
  std::vector<Seq> seqs_;
};

}  // namespace qs
