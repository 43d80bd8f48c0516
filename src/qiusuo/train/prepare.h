// Corpus preparation: text files -> tokenized dataset directory (train.bin, val.bin, meta.json).
//
// Each input file is one document: it is encoded as a generation prompt is (with BOS first when
// the tokenizer's config adds one, as the trained tokenizers do) and followed by EOS.
// Files are read in sorted path order and tokenized in parallel (OpenMP, dynamic schedule);
// the output does not depend on the thread count. A document goes to the validation split when
// hash(relative path, seed) < val_fraction, so the split never leaks a document into both sets
// and a document keeps its split when other files are added. Binary files (containing NUL bytes)
// and files that are not valid UTF-8 are skipped and counted, not fatal.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace qs {

// One input file. `rel` is the path relative to the input directory it was found in (or the file
// name for a file given directly), with '/' separators; it names the document for the split hash.
struct InputFile {
  std::string path;
  std::string rel;
  uint64_t bytes = 0;
};

// Lists the files of `inputs` (files, or directories walked recursively; hidden entries like .git
// are skipped inside directories), sorted by path, without duplicates. `include`: fnmatch globs
// ("*.py"); a glob without '/' matches the file name, one with '/' the relative path; empty = all
// files. max_bytes > 0 samples files up to that many bytes: files are taken in the order of
// split_hash(rel, seed), a file that does not fit in what is left is passed over, and the chosen
// ones are returned sorted by path. Paths under `exclude_dir` (e.g. the output directory) are left
// out. qs::Error (NotFound) for an input that does not exist.
std::vector<InputFile> collect_input_files(const std::vector<std::string>& inputs,
                                           const std::vector<std::string>& include, uint64_t max_bytes = 0,
                                           uint64_t seed = 0, const std::string& exclude_dir = "");

// Why a file's contents cannot be a text document: "" when it can, else a short reason
// ("binary (NUL byte at offset 12)", "invalid UTF-8 at byte 40").
std::string text_problem(std::string_view contents);

// Deterministic value in [0, 1) from a document's relative path and the seed: the document is in
// the validation split when it is < val_fraction.
double split_hash(const std::string& rel, uint64_t seed);

struct PrepareOptions {
  std::vector<std::string> inputs;   // files and/or directories
  std::vector<std::string> include;  // globs, see collect_input_files(); empty = all files
  uint64_t max_bytes = 0;            // cap on input bytes (0 = none), see collect_input_files()
  std::string tokenizer_dir;         // tokenizer.json (+ tokenizer_config.json with eos_token)
  std::string out_dir;               // created if missing
  double val_fraction = 0.005;       // in [0, 1); with >= 2 documents and > 0, at least one is val
  uint64_t min_val_tokens = 0;       // validation top-up, see prepare_dataset()
  uint64_t seed = 0;
  bool verbose = false;              // progress and summary on stderr
};

struct PrepareStats {
  int64_t files = 0;                     // files listed (after include / max_bytes)
  int64_t documents = 0;                 // files tokenized (files - skipped)
  int64_t train_documents = 0, val_documents = 0;
  int64_t tokens = 0;                    // including one EOS per document
  int64_t train_tokens = 0, val_tokens = 0;
  int64_t bytes = 0;                     // bytes of the tokenized documents
  int64_t skipped = 0;                   // binary, invalid UTF-8 or unreadable files
  int64_t val_tokens_from_train = 0;     // tokens the validation top-up moved
  std::vector<std::string> skipped_examples;  // "path: reason", the first few
  double seconds = 0;
};

// Tokenizes the inputs and writes out_dir/{train.bin, val.bin, meta.json}, each atomically.
// Memory stays bounded (documents are processed in blocks and streamed to the shards).
// Validation top-up (val_fraction > 0): when no document went to validation (a single input
// file) the split wants ceil(val_fraction · tokens) tokens, and always at least min_val_tokens;
// if the validation documents hold fewer, the last tokens of the training stream move to the end
// of val.bin (the training shard then ends with an EOS after the cut). qs::Error when that would
// take more than half of the training tokens.
PrepareStats prepare_dataset(const PrepareOptions& options);



// ---- tokenizer training ------------------------------------------------------------------------

// The special tokens of a qiusuo-trained tokenizer, ids 0..6: <｜begin▁of▁sentence｜> (bos),
// <｜end▁of▁sentence｜> (eos), <｜▁pad▁｜> (pad), <｜User｜>, <｜Assistant｜>, <think>, </think>
// (DeepSeek-V3 chat turns and R1-style reasoning).
const std::vector<std::string>& default_special_tokens();
// The chat template written to tokenizer_config.json: bos, then all system messages (joined by
// a blank line), then `<｜User｜>content` and `<｜Assistant｜>content<｜end▁of▁sentence｜>` turns,
// and `<｜Assistant｜>` when add_generation_prompt is true.
const std::string& default_chat_template();

struct TokenizerTrainOptions {
  std::vector<std::string> inputs;   // files and/or directories
  std::vector<std::string> include;  // globs, see collect_input_files()
  uint64_t max_bytes = 0;            // sample of the inputs (0 = all), see collect_input_files()
  int32_t vocab_size = 8192;         // total ids: 7 special + 256 bytes + merges
  std::string out_dir;               // tokenizer.json + tokenizer_config.json
  uint64_t seed = 0;                 // picks the max_bytes sample
  bool verbose = false;
};

struct TokenizerTrainStats {
  int64_t files = 0, documents = 0, skipped = 0;
  int64_t bytes = 0;                    // bytes of text counted
  int64_t unique_words = 0;             // distinct pre-tokenized pieces
  int32_t vocab_size = 0;               // of the trained tokenizer
  std::vector<std::string> skipped_examples;
  double seconds = 0;
};

// Trains a byte-level BPE (DeepSeek-V3 pre-tokenizer, default_special_tokens(), bos/eos/pad,
// add_bos_token, default_chat_template()) on the text files of the inputs (binary / invalid UTF-8
// files skipped) and saves it to out_dir.
TokenizerTrainStats train_tokenizer(const TokenizerTrainOptions& options);

// ---- raw text straight into training (`qiusuo train --data TEXT`) -----------------------------

// Whether `path` is a dataset directory written by prepare_dataset() (meta.json and train.bin).
bool is_prepared_dataset(const std::string& path);

struct TextDatasetOptions {
  std::vector<std::string> inputs;  // text files and/or directories
  std::string out_dir;              // receives tokenizer/ and the dataset (train.bin, val.bin, meta.json)
  int32_t vocab_size = 8192;        // of the tokenizer trained on the inputs
  uint64_t min_val_tokens = 0;      // see prepare_dataset()
  uint64_t seed = 0;
  bool verbose = false;
};

struct TextDataset {
  std::string dir;        // the dataset directory (= out_dir)
  bool reused = false;    // out_dir already held a dataset of the same inputs
  TokenizerTrainStats tokenizer;
  PrepareStats prepare;
};

// Trains a tokenizer on the inputs into out_dir/tokenizer and prepares the inputs with it into
// out_dir — unless out_dir already holds a complete dataset prepared from the same inputs with
// that tokenizer (a resumed run), which is reused as it is.
TextDataset prepare_text_dataset(const TextDatasetOptions& options);

}  // namespace qs
