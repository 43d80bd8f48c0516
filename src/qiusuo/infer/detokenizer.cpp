#include "qiusuo/infer/detokenizer.h"

#include <algorithm>

namespace qs {

Detokenizer::Detokenizer(const Tokenizer* tokenizer, std::vector<std::string> stop_strings)
    : stop_(std::move(stop_strings)) {
  if (tokenizer) dec_.emplace(*tokenizer);
}

Detokenizer::Out Detokenizer::decide(std::string text, bool final) {
  Out out;
  size_t cut = std::string::npos;
  for (const auto& st : stop_) {
    const size_t at = text.find(st);
    if (at != std::string::npos && (cut == std::string::npos || at < cut)) cut = at;
  }
  if (cut != std::string::npos) {
    text.resize(cut);
    out.stopped = stopped_ = true;
  } else if (!final) {
    // Hold back the longest suffix that could begin a stop string.
    size_t hold = 0;
    for (const auto& st : stop_)
      for (size_t k = std::min(st.size() - 1, text.size()); k > hold; --k)
        if (text.compare(text.size() - k, k, st, 0, k) == 0) {
          hold = k;
          break;
        }
    held_ = text.substr(text.size() - hold);
    text.resize(text.size() - hold);
  }
  out.text = std::move(text);
  return out;
}

Detokenizer::Out Detokenizer::push(int32_t token) {
  if (!dec_ || stopped_) return {};
  std::string text = held_ + dec_->push(token);
  held_.clear();
  return decide(std::move(text), false);
}

Detokenizer::Out Detokenizer::finish() {
  if (!dec_ || stopped_) return {};
  std::string text = held_ + dec_->flush();
  held_.clear();
  return decide(std::move(text), true);
}

}  // namespace qs
