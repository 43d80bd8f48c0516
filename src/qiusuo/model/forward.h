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
  int64_t seq = 0;        // KV cache slot
  int64_t start_pos = 0;  // tokens already cached for this sequence
  int64_t n_tokens = 0;
};

struct StepBatch {
  std::vector<int32_t> tokens;   // [T], chunk after chunk
  std::vector<SeqChunk> chunks;
  std::vector<int64_t> positions;  // [T], filled by finalize()
  std::vector<int64_t> offsets;    // [chunks + 1], first token of each chunk

  int64_t size() const { return int64_t(tokens.size()); }
  void add(int64_t seq, int64_t start_pos, const int32_t* toks, int64_t n);
  void clear() { tokens.clear(); chunks.clear(); positions.clear(); offsets.clear(); }
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
};

// Scratch and positions shared by the modules of one step.
struct StepContext {
  const StepBatch& batch;
  const ForwardOptions& opt;
  Arena& arena;
};

}  // namespace qs
