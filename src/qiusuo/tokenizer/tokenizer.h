// Hugging Face-compatible byte-level BPE tokenizer: loads tokenizer.json (+ tokenizer_config.json)
// and encodes/decodes exactly as the `tokenizers` library does (see
// shared/fixtures/tokenizer/README.md for the DeepSeek-V3/R1 semantics this is tested against).
//
// Pipeline of encode(): validate UTF-8 -> split out added tokens (raw text, leftmost-longest)
// -> pre-tokenize each remaining piece (pre_tokenizer.h; DeepSeek has a hand-compiled fast path)
// -> BPE each piece (bpe.h; cached per thread) -> special tokens (add_special_tokens).
//
// A Tokenizer is an immutable value (copies share state) and is safe to use from many threads.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "qiusuo/tokenizer/added_vocabulary.h"
#include "qiusuo/tokenizer/bpe.h"
#include "qiusuo/tokenizer/pre_tokenizer.h"

namespace qs {

class Tokenizer {
 public:
  // Reads dir/tokenizer.json and, when present, dir/tokenizer_config.json.
  static Tokenizer load(const std::string& dir);
  // Builds from parsed JSON; `config` is the tokenizer_config.json object or null.
  static Tokenizer from_json(const nlohmann::json& tokenizer_json, const nlohmann::json& config = nullptr);

  // Encodes text (must be valid UTF-8; otherwise qs::Error naming the byte offset).
  // add_special_tokens: when tokenizer_config.json sets add_bos_token / add_eos_token (or names a
  // Llama tokenizer class, whose default is add_bos_token=true), BOS/EOS are added as transformers'
  // LlamaTokenizerFast does; otherwise tokenizer.json's post_processor decides (ByteLevel adds
  // nothing; TemplateProcessing / BertProcessing / RobertaProcessing add their tokens).
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens = false) const;

  // Decodes ids to UTF-8 (invalid byte sequences become U+FFFD as in from_utf8_lossy). Ids with
  // no token are skipped, as tokenizers does; skip_special_tokens drops added tokens marked special.
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens = false) const;

  // Token string of an id (byte-level alphabet for vocabulary tokens, verbatim for added tokens).
  // Throws qs::Error for an id that has no token.
  std::string id_to_token(int32_t id) const;
  // Id of a token string (added tokens first, then the vocabulary), or -1.
  int32_t token_to_id(std::string_view token) const;
  // Largest id (vocabulary or added token) + 1.
  int32_t vocab_size() const;
  bool has_id(int32_t id) const;
  bool is_special(int32_t id) const;  // an added token with special: true
  // Bytes one id contributes to decode() before UTF-8 repair (empty for unknown ids).
  std::string_view id_to_bytes(int32_t id) const;
  // True for a ByteLevel decoder; false when tokenizer.json has none (tokens joined by spaces).
  bool byte_level_decoder() const;

  // From tokenizer_config.json (empty / -1 when absent).
  int32_t bos_id() const;
  int32_t eos_id() const;
  int32_t pad_id() const;
  bool add_bos_token() const;
  bool add_eos_token() const;
  const std::string& bos_token() const;
  const std::string& eos_token() const;
  const std::string& pad_token() const;
  const std::string& chat_template() const;
  const nlohmann::json& config_json() const;  // raw tokenizer_config.json (null when absent)

  const std::vector<AddedToken>& added_tokens() const;
  const PreTokenizer& pre_tokenizer() const;
  const BpeModel& model() const;
  // A copy that pre-tokenizes with the general PCRE2 path even where the DeepSeek fast path
  // applies (tests and benchmarks compare the two).
  Tokenizer without_fast_path() const;

  // Serialises tokenizer.json (HF format; vocab in id order, merges as "a b" strings).
  std::string to_json_string() const;
  // Writes dir/tokenizer.json and, when config_json() is not null, dir/tokenizer_config.json.
  // Creates dir if needed.
  void save(const std::string& dir) const;

  struct Impl;

 private:
  static Tokenizer build(const nlohmann::json& tokenizer_json, PreTokenizer pre, BpeModel model,
                         const nlohmann::json& config);
  std::shared_ptr<const Impl> impl_;
};

// Incremental detokenizer for generation: push() returns the text completed by one more id and
// never returns a broken UTF-8 sequence (incomplete sequences wait for the next ids); flush()
// returns the rest with invalid bytes replaced by U+FFFD. The concatenation of all push() results
// and flush() equals Tokenizer::decode() of the same ids.
class StreamDecoder {
 public:
  // Keeps a reference to `tokenizer`, which must outlive the decoder.
  explicit StreamDecoder(const Tokenizer& tokenizer, bool skip_special_tokens = false);
  std::string push(int32_t id);
  std::string flush();
  void reset();
  // Bytes held back waiting for the rest of a UTF-8 sequence.
  size_t pending_bytes() const { return pending_.size(); }

 private:
  const Tokenizer* tok_;
  bool skip_special_;
  bool first_ = true;
  std::string pending_;
};

}  // namespace qs
