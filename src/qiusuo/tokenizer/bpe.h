// The BPE model of a Hugging Face tokenizer.json ("model": {"type": "BPE", ...}): vocabulary,
// ranked merges, and the merge loop that turns one pre-tokenized piece into ids.
//
// Byte-level models (GPT-2 style, what DeepSeek uses) take the raw UTF-8 bytes of a piece; each
// byte starts as the vocabulary entry of its byte_level::byte_to_char() character. Other models
// start from the piece's Unicode characters. Merging always applies the lowest-ranked adjacent
// pair first, leftmost first on ties, exactly as tokenizers' Word::merge_all.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace qs {

// GPT-2's reversible byte <-> printable-character mapping (bytes_to_unicode).
namespace byte_level {
uint32_t byte_to_char(uint8_t b);
int char_to_byte(uint32_t cp);  // -1 when cp is not in the alphabet
// Raw bytes -> alphabet string (e.g. " hi" -> "Ġhi").
std::string encode(std::string_view bytes);
// Alphabet string -> raw bytes; returns false (leaving `out` unspecified) if any character of
// `token` is outside the alphabet.
bool decode(std::string_view token, std::string& out);
}  // namespace byte_level

// Largest token id a tokenizer.json may use (vocabulary or added token): per-id tables are sized
// by the largest id, so a corrupt id of 2^31 would mean gigabytes. Far above any real vocabulary
// (DeepSeek-V3: 128815 ids; the largest Hugging Face vocabularies have about 10^6).
inline constexpr int64_t kMaxTokenId = (int64_t(1) << 24) - 1;

class BpeModel {
 public:
  enum class MergeAlgorithm { Auto, Quadratic, Heap };

  // Parses the "model" object. byte_level: whether the pre-tokenizer ends with ByteLevel.
  // Throws qs::Error for a non-BPE model, a merge whose tokens are not in the vocab, and options
  // that are not supported (byte_fallback, dropout, continuing_subword_prefix, end_of_word_suffix).
  static BpeModel from_json(const nlohmann::json& model, bool byte_level);

  // The same from parts: `options` is the model object without "vocab" and "merges" (the
  // streaming tokenizer.json reader fills the two big tables directly).
  struct Parts {
    bool has_vocab = false;
    std::vector<std::pair<std::string, int64_t>> vocab;
    std::vector<std::pair<std::string, std::string>> merges;
    std::string vocab_error;  // first malformed vocab entry (reported after the model type check)
  };
  static BpeModel build(const nlohmann::json& options, Parts parts, bool byte_level);
  // Appends a merge given as "a b" (qs::Error unless exactly one space separates two tokens).
  static void add_merge_string(Parts& parts, std::string_view merge);

  // Appends the ids of one pre-tokenized piece (raw bytes for byte-level models).
  void encode_piece(std::string_view piece, std::vector<int32_t>& out) const;
  // Runs the merge loop on initial symbols in place (tests compare the two algorithms).
  void merge(std::vector<int32_t>& symbols, MergeAlgorithm algo = MergeAlgorithm::Auto) const;
  // Initial symbols of a piece, before any merge.
  void initial_symbols(std::string_view piece, std::vector<int32_t>& out) const;

  int32_t token_to_id(std::string_view token) const;  // -1 if absent
  // Vocabulary string of an id (model alphabet), or empty view if the id has none.
  std::string_view id_to_token(int32_t id) const;
  int32_t max_id() const;  // largest id in the vocabulary (-1 if empty)
  size_t vocab_entries() const;
  bool byte_level() const;
  bool ignore_merges() const;
  const std::vector<std::pair<int32_t, int32_t>>& merges() const;  // in rank order
  const std::string& unk_token() const;

  // Empties this thread's word cache (encode results are cached per thread; benchmarks use this to
  // measure cold-cache speed).
  static void clear_thread_cache();

  struct Impl;

 private:
  std::shared_ptr<const Impl> impl_;
};

}  // namespace qs
