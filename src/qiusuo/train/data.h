// Training data: token shards on disk and the data loader that cuts them into batches.
//
// Shard file (`train.bin`, `val.bin`; see docs/data.md), little-endian:
//   offset  0  char[8]  magic "QSTOKENS"
//           8  uint32   version = 1
//          12  uint32   bytes_per_token = 4
//          16  uint64   n_tokens
//          24  uint32   vocab_size        (every id is < vocab_size)
//          28  uint32   eos_id            (0xFFFFFFFF: none)
//          32  uint32   bos_id            (0xFFFFFFFF: none)
//          36  uint8[28] zero
//          64  uint32[n_tokens] token ids; documents are separated by eos_id.
//
// A dataset directory holds train.bin, val.bin and meta.json (written by prepare_dataset()).
//
// DataLoader windows: the token stream t[0..N) is cut into W = (N - 1) / T windows
// w_i = t[i*T, i*T + T + 1): consecutive windows overlap by one token, so inputs w_i[0..T) and
// targets w_i[1..T+1) cover every token of t[1, W*T] exactly once per epoch (the last < T tokens
// are not predicted). Windows may cross document boundaries (EOS separates documents), as in
// nanoGPT / llm.c. Each epoch visits all W windows in an order permuted by an Rng seeded from
// (seed, epoch); a batch is the next B windows of that order (a batch may straddle two epochs).
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "qiusuo/io/file.h"

namespace qs {

inline constexpr char kTokenShardMagic[8] = {'Q', 'S', 'T', 'O', 'K', 'E', 'N', 'S'};
inline constexpr uint32_t kTokenShardVersion = 1;
inline constexpr size_t kTokenShardHeaderBytes = 64;

// What a shard header says besides its size.
struct TokenShardInfo {
  uint32_t vocab_size = 0;
  int32_t eos_id = -1;  // -1: none (stored as 0xFFFFFFFF)
  int32_t bos_id = -1;
};

// Writes a shard atomically: the concatenation of `pieces` (each a span of ids) after the header.
// Every id must be in [0, info.vocab_size) (qs::Error naming the path otherwise).
void write_token_shard(const std::string& path, const TokenShardInfo& info,
                       std::span<const std::span<const int32_t>> pieces);
void write_token_shard(const std::string& path, const TokenShardInfo& info, std::span<const int32_t> tokens);

// Incremental shard writer for data that does not fit in memory: tokens are appended to
// "<path>.tmp.<pid>" and finish() fills in the header, fsyncs and renames over `path`. Destroying
// a writer that was not finished removes the temporary file and leaves `path` untouched.
class TokenShardWriter {
 public:
  TokenShardWriter(const std::string& path, const TokenShardInfo& info);
  TokenShardWriter(const TokenShardWriter&) = delete;
  TokenShardWriter& operator=(const TokenShardWriter&) = delete;
  ~TokenShardWriter();
  void append(std::span<const int32_t> tokens);  // ids checked against info.vocab_size
  uint64_t size() const { return n_tokens_; }    // tokens appended so far
  void finish();

 private:
  std::string path_, tmp_;
  TokenShardInfo info_;
  int fd_ = -1;
  uint64_t n_tokens_ = 0;
  std::vector<uint32_t> buf_;
  void flush_buffer();
};

// A memory-mapped, read-only shard. open() validates magic, version, bytes_per_token and that the
// file size is exactly 64 + 4 * n_tokens. Token ids are checked against vocab_size lazily (by
// DataLoader, on every window it copies) or all at once by validate().
class TokenShard {
 public:
  static TokenShard open(const std::string& path);  // qs::Error (NotFound / Format) naming the file

  const std::string& path() const { return file_.path(); }
  uint64_t size() const { return n_tokens_; }  // number of tokens
  const TokenShardInfo& info() const { return info_; }
  std::span<const uint32_t> tokens() const { return {tokens_, size_t(n_tokens_)}; }  // [n_tokens]

  // Full scan: qs::Error naming the file, position and id of the first id >= vocab_size.
  void validate() const;
  // Copies tokens [begin, begin + n) to out as int32, checking every id against vocab_size.
  void copy(uint64_t begin, uint64_t n, int32_t* out) const;

 private:
  MappedFile file_;
  const uint32_t* tokens_ = nullptr;
  uint64_t n_tokens_ = 0;
  TokenShardInfo info_;
};

// Reads <dir>/meta.json (qs::Error if missing or invalid JSON).
struct DatasetMeta {
  uint32_t vocab_size = 0;
  int32_t eos_id = -1, bos_id = -1;
  uint64_t train_tokens = 0, val_tokens = 0;
  uint64_t train_documents = 0, val_documents = 0;
  std::string tokenizer;  // absolute path of the tokenizer directory used
  std::vector<std::string> sources;
};
DatasetMeta read_dataset_meta(const std::string& dir);

class DataLoader {
 public:
  // Exact position in the stream of batches: the next window is number `index` of epoch `epoch`'s
  // permutation (index in [0, windows_per_epoch())). Saving state() and later calling set_state()
  // on a loader over the same data reproduces the following batches exactly.
  struct State {
    uint64_t epoch = 0;
    uint64_t index = 0;
    uint64_t seed = 0;
    bool operator==(const State&) const = default;
  };

  // `path`: a dataset directory (reads <path>/<split>.bin; split is "train" or "val"; when
  // meta.json is present its token counts must match the shard) or a single .bin shard (split is
  // then only a label). batch_size B >= 1, seq_len T >= 1. The shard must hold at least T + 1
  // tokens.
  DataLoader(const std::string& path, const std::string& split, int64_t batch_size, int64_t seq_len,
             uint64_t seed = 0);

  // Fills tokens[B][T + 1] with the next batch: row b holds one window; inputs are
  // tokens[b][0..T), targets tokens[b][1..T+1). Advances the state by B windows.
  void next(int32_t* tokens);
  // The first n batches in stream order, unshuffled and independent of the state: batch k row b is
  // window (k*B + b) mod W. Returns [n][B][T + 1] ids. Use n <= windows_per_epoch() / B to see
  // every window at most once.
  std::vector<int32_t> val_batches(int64_t n) const;

  State state() const { return state_; }
  void set_state(const State& s);  // qs::Error if s.index > windows_per_epoch()

  int64_t batch_size() const { return B_; }
  int64_t seq_len() const { return T_; }
  uint64_t windows_per_epoch() const { return W_; }
  uint64_t tokens_per_epoch() const { return W_ * uint64_t(T_); }  // predicted tokens per epoch
  // Window number `index` of epoch `epoch` (the permutation; for tests and tools).
  uint64_t window_at(uint64_t epoch, uint64_t index);
  const TokenShard& shard() const { return shard_; }
  const TokenShardInfo& info() const { return shard_.info(); }

 private:
  TokenShard shard_;
  int64_t B_ = 0, T_ = 0;
  uint64_t W_ = 0;
  State state_;
  uint64_t perm_epoch_ = ~uint64_t(0);  // epoch whose permutation perm_ holds
  std::vector<uint32_t> perm_;          // [W] window order of perm_epoch_
  void ensure_perm(uint64_t epoch);
};

}  // namespace qs
