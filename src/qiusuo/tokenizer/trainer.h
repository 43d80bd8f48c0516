// Byte-level BPE training (what `qiusuo tokenizer-train` runs): counts pre-tokenized words, then
// learns merges with incrementally updated pair counts and a lazy max-heap, and returns a
// Tokenizer whose save() writes a Hugging Face tokenizer.json + tokenizer_config.json.
//
// Vocabulary layout: special tokens get ids 0..k-1 (in the order given), then the 256 byte
// tokens (GPT-2 byte-level alphabet, sorted by character as tokenizers' BpeTrainer does), then one
// id per learned merge. Merges are learned most frequent pair first; ties go to the pair with the
// smaller (left id, right id), so training is deterministic.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "qiusuo/tokenizer/tokenizer.h"

namespace qs {

struct BpeTrainerOptions {
  // Total number of ids: special tokens + 256 bytes + merges. Training stops earlier when no pair
  // occurs min_frequency times.
  int32_t vocab_size = 8192;
  int64_t min_frequency = 2;
  // Added as special added tokens (never split, never learned from); ids 0..k-1.
  std::vector<std::string> special_tokens;
  // Written to tokenizer_config.json; each must be empty or one of special_tokens.
  std::string bos_token;
  std::string eos_token;
  std::string pad_token;
  bool add_bos_token = true;   // written as false when bos_token is empty
  bool add_eos_token = false;  // written as false when eos_token is empty
  int64_t model_max_length = 4096;
  // Jinja chat template stored in tokenizer_config.json (empty: none).
  std::string chat_template;
  // Pre-tokenizer of the trained tokenizer (default: DeepSeek-V3's; must end with ByteLevel).
  nlohmann::json pre_tokenizer = PreTokenizer::deepseek_v3_json();
};

class BpeTrainer {
 public:
  explicit BpeTrainer(BpeTrainerOptions options);
  ~BpeTrainer();
  BpeTrainer(const BpeTrainer&) = delete;
  BpeTrainer& operator=(const BpeTrainer&) = delete;

  // Counts the words of a text (qs::Error if it is not valid UTF-8). Special tokens in the text
  // are cut out and not counted.
  void feed(std::string_view text);
  // Streams a file through feed() in chunks cut where no piece can straddle the cut.
  void feed_file(const std::string& path);
  size_t unique_words() const;

  // Learns the merges and builds the tokenizer (tokenizer.json + tokenizer_config.json content).
  Tokenizer train();

  struct State;

 private:
  BpeTrainerOptions opts_;
  std::unique_ptr<State> state_;
};

Tokenizer train_bpe(const std::vector<std::string>& files, const BpeTrainerOptions& options);
Tokenizer train_bpe_from_texts(const std::vector<std::string>& texts, const BpeTrainerOptions& options);

}  // namespace qs
