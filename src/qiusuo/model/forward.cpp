#include "qiusuo/model/forward.h"

namespace qs {
void StepBatch::add(const int32_t* blocks, int64_t n_blocks, int64_t start_pos, const int32_t* toks, int64_t n) {
  if (offsets.empty()) offsets.push_back(0);
  SeqChunk ch;
  ch.start_pos = start_pos;
  ch.n_tokens = n;
  ch.block_begin = int64_t(block_ids.size());
  block_ids.insert(block_ids.end(), blocks, blocks + n_blocks);
  ch.block_end = int64_t(block_ids.size());
  chunks.push_back(ch);
  for (int64_t i = 0; i < n; ++i) {
    tokens.push_back(toks[i]);
    positions.push_back(start_pos + i);
  }
  offsets.push_back(int64_t(tokens.size()));
}
}  // namespace qs
