#include "qiusuo/infer/reasoning.h"

namespace qs {
namespace {
constexpr const char* kOpen = "<think>";
constexpr const char* kClose = "</think>";

// Length of the longest suffix of s that is a proper prefix of tag.
size_t partial_suffix(const std::string& s, const std::string& tag) {
  for (size_t k = std::min(s.size(), tag.size() - 1); k > 0; --k)
    if (s.compare(s.size() - k, k, tag, 0, k) == 0) return k;
  return 0;
}
}  // namespace

bool ReasoningSplitter::prompt_opens_reasoning(const std::string& p) {
  const size_t open = p.rfind(kOpen);
  if (open == std::string::npos) return false;
  return p.find(kClose, open) == std::string::npos;
}

ReasoningSplitter::Out ReasoningSplitter::push(const std::string& text) {
  Out out;
  buf_ += text;
  while (!buf_.empty()) {
    const std::string tag = in_ ? kClose : kOpen;
    const size_t at = buf_.find(tag);
    if (at != std::string::npos) {
      // An opening tag only counts at the start of the output (R1 writes it first, if at all).
      if (!in_ && (seen_any_ || buf_.find_first_not_of(" \n", 0) != at)) {
        (in_ ? out.reasoning : out.content) += buf_.substr(0, at + tag.size());
        seen_any_ = true;
        buf_.erase(0, at + tag.size());
        continue;
      }
      (in_ ? out.reasoning : out.content) += buf_.substr(0, at);
      buf_.erase(0, at + tag.size());
      in_ = !in_;
      seen_any_ = true;
      continue;
    }
    const size_t hold = partial_suffix(buf_, tag);
    std::string emit = buf_.substr(0, buf_.size() - hold);
    if (!emit.empty() && emit.find_first_not_of(" \n") != std::string::npos) seen_any_ = true;
    (in_ ? out.reasoning : out.content) += emit;
    buf_.erase(0, buf_.size() - hold);
    break;
  }
  return out;
}

ReasoningSplitter::Out ReasoningSplitter::flush() {
  Out out;
  (in_ ? out.reasoning : out.content) = buf_;
  buf_.clear();
  return out;
}

}  // namespace qs
