#include "qiusuo/model/forward.h"

namespace qs {
void StepBatch::add(int64_t seq, int64_t start_pos, const int32_t* toks, int64_t n) {
  if (offsets.empty()) offsets.push_back(0);
  chunks.push_back({seq, start_pos, n});
  for (int64_t i = 0; i < n; ++i) {
    tokens.push_back(toks[i]);
    positions.push_back(start_pos + i);
  }
  offsets.push_back(int64_t(tokens.size()));
}
}  // namespace qs
