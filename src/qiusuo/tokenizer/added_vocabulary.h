// Added tokens of a tokenizer.json ("added_tokens"): matched on the raw text before
// pre-tokenization, leftmost-longest, like tokenizers' AddedVocabulary (aho-corasick,
// MatchKind::LeftmostLongest), honouring single_word / lstrip / rstrip. Tokens with
// normalized=false are extracted first from the whole text, then tokens with normalized=true
// from the remaining pieces (there is no normalizer, so both match the raw text).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace qs {

struct AddedToken {
  int32_t id = -1;
  std::string content;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = true;
  bool special = false;
};

class AddedVocabulary {
 public:
  AddedVocabulary() = default;
  explicit AddedVocabulary(std::vector<AddedToken> tokens);

  const std::vector<AddedToken>& tokens() const { return tokens_; }
  bool empty() const { return tokens_.empty(); }

  // Splits `text` into pieces that are added tokens (id >= 0) and plain text (id = -1), in order.
  // Calls emit(piece, id) for each non-empty piece.
  void split(std::string_view text, const std::function<void(std::string_view, int32_t)>& emit) const;

  struct Trie;

 private:
  std::vector<AddedToken> tokens_;
  std::shared_ptr<const Trie> raw_;         // normalized == false
  std::shared_ptr<const Trie> normalized_;  // normalized == true
};

}  // namespace qs
