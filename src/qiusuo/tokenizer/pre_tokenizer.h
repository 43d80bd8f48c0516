// Pre-tokenizers of Hugging Face tokenizer.json ("pre_tokenizer" field): cut a text into the
// pieces the BPE model encodes one by one.
//
// General path: Sequence / Split (Regex or String pattern, every SplitDelimiterBehavior, invert)
// / Digits / Whitespace / WhitespaceSplit / Punctuation, then an optional final ByteLevel
// (add_prefix_space, use_regex with the GPT-2 regex). Regexes run on PCRE2 (UTF + UCP, JIT) with
// \s \w rewritten to the Unicode meanings Oniguruma and Rust regex give them.
//
// Fast path: the exact DeepSeek-V3 pre-tokenizer (three Split/Isolated stages + ByteLevel without
// regex) is recognised and run by a hand-compiled matcher over precomputed character classes
// (unicode.h). tests/tokenizer/pre_tokenizer_test.cpp proves it splits exactly as the PCRE2 path.
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace qs {

// Receives the pieces of a pre-tokenized text, in order. A piece is valid only during the call.
class PieceSink {
 public:
  virtual ~PieceSink() = default;
  virtual void piece(std::string_view piece) = 0;
};

class PreTokenizer {
 public:
  PreTokenizer();  // no pre-tokenizer: the whole text is one piece
  // Builds from the "pre_tokenizer" value of tokenizer.json (null allowed). Throws qs::Error
  // naming the unsupported type or the malformed field.
  static PreTokenizer from_json(const nlohmann::json& j);
  // The DeepSeek-V3 pre-tokenizer as stored in its tokenizer.json.
  static nlohmann::json deepseek_v3_json();

  // True when the last stage is ByteLevel: pieces are raw UTF-8 bytes that the model maps
  // through the GPT-2 byte-to-unicode alphabet.
  bool byte_level() const;
  // True when the DeepSeek fast path was recognised and is in use.
  bool fast_path() const;
  // Returns a copy that never uses the fast path (for tests and benchmarks).
  PreTokenizer without_fast_path() const;

  void pre_tokenize(std::string_view text, PieceSink& sink) const;
  std::vector<std::string> split(std::string_view text) const;

  struct Impl;

 private:
  std::shared_ptr<const Impl> impl_;
  bool use_fast_ = false;
};

// Rewrites an Oniguruma / Rust-regex pattern for PCRE2 (UTF + UCP) so that \s \S \w \W \h keep
// their Unicode meanings there (PCRE2's UCP \s also matches U+180E; its \w differs).
std::string translate_regex_for_pcre2(std::string_view pattern);

// Runs the DeepSeek-V3 pre-tokenizer's hand-compiled matcher directly (tests, benchmarks).
void deepseek_v3_pre_tokenize(std::string_view text, PieceSink& sink);

}  // namespace qs
