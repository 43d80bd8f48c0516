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
#include <string>
#include <vector>

#include "qiusuo/core/buffer.h"
#include "qiusuo/model/config.h"

namespace qs {

struct StepBatch;

// How a latent row is stored. F32 is exact; BF16 halves the cache (each value rounded to
// nearest even); FP8 stores the latent c_kv as E4M3 with one F32 scale per 128 values (the
// largest magnitude maps to 448) and k_pe as BF16 — 656 bytes per token and layer at
// DeepSeek-V2/V3 widths instead of 2304, the layout FlashMLA uses for MLA's FP8 cache.
enum class KvDtype { F32, BF16, FP8 };
const char* kv_dtype_name(KvDtype d);              // "f32", "bf16", "fp8"
KvDtype parse_kv_dtype(const std::string& name);   // qs::Error naming the choices
// Bytes of one row (one token, one layer).
size_t kv_row_bytes(KvDtype d, int64_t kv_lora_rank, int64_t rope_dim);

class KVPool {
 public:
  // `num_blocks` blocks of `block_size` tokens × `num_layers` layers (-1: the model's layers).
  KVPool(const ModelConfig& cfg, int64_t num_blocks, int64_t block_size = 64, int64_t num_layers = -1,
         KvDtype dtype = KvDtype::F32);

  int64_t num_blocks() const { return blocks_; }
  int64_t block_size() const { return block_; }
  int64_t num_layers() const { return layers_; }
  int64_t row_width() const { return width_; }  // kv_lora_rank + qk_rope_head_dim values
  int64_t kv_lora_rank() const { return lora_; }
  KvDtype dtype() const { return dtype_; }
  int64_t capacity_tokens() const { return blocks_ * block_; }
  size_t row_bytes() const { return row_bytes_; }
  size_t bytes_per_token() const { return row_bytes_ * size_t(layers_); }
  size_t bytes() const { return size_t(capacity_tokens()) * bytes_per_token(); }

  // Row `offset` (< block_size) of `block` in `layer`, as stored; the block_size rows of one
  // block and layer are contiguous.
  uint8_t* row(int64_t layer, int64_t block, int64_t offset) {
    return data_.data() + (size_t((block * layers_ + layer) * block_ + offset)) * row_bytes_;
  }
  const uint8_t* row(int64_t layer, int64_t block, int64_t offset) const {
    return const_cast<KVPool*>(this)->row(layer, block, offset);
  }
  // Writes one row from F32 values [c_kv | k_pe] (converted to the storage type).
  void store(int64_t layer, int64_t block, int64_t offset, const float* src);
  // Reads rows [offset, offset + n) of one block (n <= block_size - offset) as F32 [n, W].
  void load(int64_t layer, int64_t block, int64_t offset, int64_t n, float* dst) const;
  // The same rows as BF16 [n, W], no padding: F32 rows rounded to nearest even, BF16 rows as
  // stored, FP8 latents as fp8e4m3_to_bf16 gives them (code × its group's scale, rounded once
  // to F32 and then to BF16) and their k_pe as stored.
  void load_bf16(int64_t layer, int64_t block, int64_t offset, int64_t n, uint16_t* dst) const;
  // The F32 rows themselves (F32 pools only; nullptr otherwise): no copy needed.
  const float* f32_rows(int64_t layer, int64_t block, int64_t offset) const {
    return dtype_ == KvDtype::F32 ? reinterpret_cast<const float*>(row(layer, block, offset)) : nullptr;
  }
  // The BF16 rows themselves (BF16 pools only; nullptr otherwise), row_bytes() apart: W values
  // and, where W is not a multiple of 8, padding to 16 bytes.
  const uint16_t* bf16_rows(int64_t layer, int64_t block, int64_t offset) const {
    return dtype_ == KvDtype::BF16 ? reinterpret_cast<const uint16_t*>(row(layer, block, offset)) : nullptr;
  }

  // All layers of one block as stored ([layers][block_size] rows): block_bytes() bytes, seen as
  // block_floats() 4-byte words (raw storage, F32 values only in an F32 pool) — what a disk
  // cache saves and restores.
  float* block_data(int64_t block) { return reinterpret_cast<float*>(row(0, block, 0)); }
  const float* block_data(int64_t block) const { return reinterpret_cast<const float*>(row(0, block, 0)); }
  size_t block_bytes() const { return size_t(layers_ * block_) * row_bytes_; }
  size_t block_floats() const { return block_bytes() / 4; }
  // Copies the first `rows` rows of every layer of block `src` into block `dst`.
  void copy_block(int64_t dst, int64_t src, int64_t rows);

 private:
  int64_t blocks_, block_, layers_, lora_, width_;
  KvDtype dtype_;
  size_t row_bytes_;
  Buffer<uint8_t> data_;  // [num_blocks][layers][block_size] rows of row_bytes_
};

// Sequences with private blocks over their own pool, for direct use of the model (tests,
// `qiusuo logits`, micro-benchmarks): no sharing, no prefix cache. Sequences are small integer
// slots.
class KVCache {
 public:
  // Room for `capacity_tokens` tokens in all.
  KVCache(const ModelConfig& cfg, int64_t capacity_tokens, int64_t max_sequences = 64,
          int64_t block_size = 64, int64_t num_layers = -1, KvDtype dtype = KvDtype::F32);

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
