// Incremental text of a generated sequence: token ids in, UTF-8 text out (never a split
// character), with stop strings cut off. Text that could be the beginning of a stop string is
// held back until it is decided, so a stop string never reaches the caller, not even in part.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "qiusuo/tokenizer/tokenizer.h"

namespace qs {

class Detokenizer {
 public:
  // `tokenizer` may be null (no text: push() returns nothing); it must outlive the detokenizer.
  Detokenizer(const Tokenizer* tokenizer, std::vector<std::string> stop_strings);

  struct Out {
    std::string text;       // newly decided text
    bool stopped = false;   // a stop string completed: text ends right before it
  };
  Out push(int32_t token);
  // End of generation: the held-back text (cut at a stop string if one completes in it).
  Out finish();
  bool active() const { return dec_.has_value(); }

 private:
  Out decide(std::string text, bool final);
  std::optional<StreamDecoder> dec_;
  std::vector<std::string> stop_;
  std::string held_;
  bool stopped_ = false;
};

}  // namespace qs
