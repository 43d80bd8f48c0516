// What one forward step processes: a flat list of tokens made of chunks, one chunk per
// sequence. A chunk appends n_tokens tokens at positions [start_pos, start_pos + n_tokens) to
// its sequence in the KV cache. Prefill (one long chunk), decode (many one-token chunks),
// chunked prefill and any mix of them are the same step — the one generation path that the
// CLI, the server and RL rollouts share.
#pragma once
#include <cstdint>
#include <vector>

#include "qiusuo/core/arena.h"
#include "qiusuo/kernels/linear.h"

namespace qs {

struct SeqChunk {
  int64_t start_pos = 0;    // tokens of the sequence already in the cache
  int64_t n_tokens = 0;     // appended by this step at positions [start_pos, start_pos + n_tokens)
  int64_t block_begin = 0;  // the sequence's block table: StepBatch::block_ids[block_begin, block_end)
  int64_t block_end = 0;
};

// The block tables are copied into the batch, so the caller may change its own tables while
// the batch lives. A chunk's table must cover positions [0, start_pos + n_tokens); the rows of
// positions < start_pos must hold that sequence's latents (they are read), the rows of the new
// positions are written. Blocks written by a step must not be shared with another sequence.
struct StepBatch {
  std::vector<int32_t> tokens;     // [T], chunk after chunk
  std::vector<SeqChunk> chunks;
  std::vector<int64_t> positions;  // [T]
  std::vector<int64_t> offsets;    // [chunks + 1], first token of each chunk
  std::vector<int32_t> block_ids;  // block tables of the chunks, concatenated

  int64_t size() const { return int64_t(tokens.size()); }
  // Appends a chunk: tokens toks[0, n) at positions [start_pos, start_pos + n) of the sequence
  // whose block table is blocks[0, n_blocks).
  void add(const int32_t* blocks, int64_t n_blocks, int64_t start_pos, const int32_t* toks, int64_t n);
  void add(const std::vector<int32_t>& blocks, int64_t start_pos, const int32_t* toks, int64_t n) {
    add(blocks.data(), int64_t(blocks.size()), start_pos, toks, n);
  }
  const int32_t* blocks(size_t chunk) const { return block_ids.data() + chunks[chunk].block_begin; }
  void clear() { tokens.clear(); chunks.clear(); positions.clear(); offsets.clear(); block_ids.clear(); }
};

enum class AttnImpl { Auto, Absorb, Naive };

struct RouterRecord {  // one MoE layer's routing of every token in the step
  int64_t layer = 0;
  std::vector<int32_t> indices;  // [T, k]
  std::vector<float> weights;    // [T, k]
};

struct ForwardOptions {
  Compute compute = Compute::F32;
  AttnImpl attn = AttnImpl::Auto;
  // Test/debug captures: the residual stream after the embedding and after every layer
  // ([L+1, T, d]), and the router's choices per MoE layer.
  std::vector<float>* hidden_states = nullptr;
  std::vector<RouterRecord>* router = nullptr;
  // The residual stream after the last layer, before the final norm ([T, d]): the MTP module's
  // input (speculative decoding).
  std::vector<float>* last_hidden = nullptr;
};

// What the modules of one step share: the batch, the options and the caller's scratch.
struct StepContext {
  const StepBatch& batch;
  const ForwardOptions& opt;
  Arena& arena;
};

}  // namespace qs
