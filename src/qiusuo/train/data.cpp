// Token shards (write, mmap + validate) and the shuffling DataLoader. Format and windowing rules
// are described in data.h and docs/data.md.
#include "qiusuo/train/data.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "qiusuo/core/error.h"
#include "qiusuo/core/rng.h"

namespace qs {

static_assert(std::endian::native == std::endian::little, "token shards are little-endian; add byte swapping");

namespace {

constexpr uint32_t kNone = 0xFFFFFFFFu;

struct RawHeader {                // 64 bytes, see data.h
  char magic[8];
  uint32_t version;
  uint32_t bytes_per_token;
  uint64_t n_tokens;
  uint32_t vocab_size;
  uint32_t eos_id;
  uint32_t bos_id;
  uint8_t reserved[28];
};
static_assert(sizeof(RawHeader) == kTokenShardHeaderBytes);

RawHeader make_header(const TokenShardInfo& info, uint64_t n_tokens) {
  RawHeader h{};
  std::memcpy(h.magic, kTokenShardMagic, 8);
  h.version = kTokenShardVersion;
  h.bytes_per_token = 4;
  h.n_tokens = n_tokens;
  h.vocab_size = info.vocab_size;
  h.eos_id = info.eos_id < 0 ? kNone : uint32_t(info.eos_id);
  h.bos_id = info.bos_id < 0 ? kNone : uint32_t(info.bos_id);
  return h;
}

void check_info(const std::string& path, const TokenShardInfo& info) {
  if (info.vocab_size == 0) fail(path, ": vocab_size must be positive");
  if (info.eos_id >= int64_t(info.vocab_size) || info.bos_id >= int64_t(info.vocab_size))
    fail(path, ": eos_id ", info.eos_id, " / bos_id ", info.bos_id, " outside the vocabulary [0, ", info.vocab_size, ")");
}

// Index of the first id outside [0, vocab) or n when all are inside. Branch-free inner loop.
template <typename T>
size_t find_out_of_range(const T* p, size_t n, uint32_t vocab) {
  constexpr size_t kBlock = 4096;
  for (size_t b = 0; b < n; b += kBlock) {
    const size_t e = std::min(n, b + kBlock);
    uint32_t bad = 0;
    for (size_t i = b; i < e; ++i) bad |= uint32_t(uint32_t(p[i]) >= vocab);
    if (bad)
      for (size_t i = b; i < e; ++i)
        if (uint32_t(p[i]) >= vocab) return i;
  }
  return n;
}

[[noreturn]] void fail_bad_id(const std::string& path, uint64_t pos, int64_t id, uint32_t vocab) {
  fail(ErrorKind::Format, path, ": token id ", id, " at position ", pos, " is outside the vocabulary [0, ", vocab,
       ")");
}

void fsync_parent_dir(const std::string& path) {
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (dir.empty()) dir = ".";
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

}  // namespace

// ---- writing -----------------------------------------------------------------------------------

void write_token_shard(const std::string& path, const TokenShardInfo& info,
                       std::span<const std::span<const int32_t>> pieces) {
  check_info(path, info);
  uint64_t n = 0;
  for (const auto& p : pieces) {
    const size_t bad = find_out_of_range(p.data(), p.size(), info.vocab_size);
    if (bad != p.size()) fail_bad_id(path, n + bad, p[bad], info.vocab_size);
    n += p.size();
  }
  const RawHeader h = make_header(info, n);
  write_file_atomic(path, [&](int fd) {
    write_all(fd, &h, sizeof h, path);
    for (const auto& p : pieces) write_all(fd, p.data(), p.size_bytes(), path);  // int32 >= 0 == uint32
  });
}

void write_token_shard(const std::string& path, const TokenShardInfo& info, std::span<const int32_t> tokens) {
  const std::span<const int32_t> one[1] = {tokens};
  write_token_shard(path, info, std::span<const std::span<const int32_t>>(one));
}

TokenShardWriter::TokenShardWriter(const std::string& path, const TokenShardInfo& info)
    : path_(path), tmp_(path + ".tmp." + std::to_string(::getpid())), info_(info) {
  check_info(path, info);
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) fail(ErrorKind::Io, "cannot create ", tmp_, ": ", std::strerror(errno));
  const RawHeader h = make_header(info_, 0);  // n_tokens filled in by finish()
  try {
    write_all(fd_, &h, sizeof h, tmp_);
  } catch (...) {
    ::close(fd_);
    ::unlink(tmp_.c_str());
    throw;
  }
  buf_.reserve(1 << 20);
}

TokenShardWriter::~TokenShardWriter() {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(tmp_.c_str());
  }
}

void TokenShardWriter::flush_buffer() {
  if (!buf_.empty()) write_all(fd_, buf_.data(), buf_.size() * sizeof(uint32_t), tmp_);
  buf_.clear();
}

void TokenShardWriter::append(std::span<const int32_t> tokens) {
  if (fd_ < 0) fail(ErrorKind::Internal, path_, ": append after finish");
  const size_t bad = find_out_of_range(tokens.data(), tokens.size(), info_.vocab_size);
  if (bad != tokens.size()) fail_bad_id(path_, n_tokens_ + bad, tokens[bad], info_.vocab_size);
  if (buf_.size() + tokens.size() > buf_.capacity()) flush_buffer();
  if (tokens.size() > buf_.capacity()) {
    write_all(fd_, tokens.data(), tokens.size_bytes(), tmp_);
  } else {
    buf_.insert(buf_.end(), tokens.begin(), tokens.end());
  }
  n_tokens_ += tokens.size();
}

void TokenShardWriter::finish() {
  if (fd_ < 0) fail(ErrorKind::Internal, path_, ": finish called twice");
  flush_buffer();
  const RawHeader h = make_header(info_, n_tokens_);
  if (::pwrite(fd_, &h, sizeof h, 0) != ssize_t(sizeof h))
    fail(ErrorKind::Io, "cannot write the header of ", tmp_, ": ", std::strerror(errno));
  if (::fsync(fd_) != 0) fail(ErrorKind::Io, "fsync failed for ", tmp_, ": ", std::strerror(errno));
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) {
    ::unlink(tmp_.c_str());
    fail(ErrorKind::Io, "close failed for ", tmp_, ": ", std::strerror(errno));
  }
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) {
    const int e = errno;
    ::unlink(tmp_.c_str());
    fail(ErrorKind::Io, "cannot rename ", tmp_, " to ", path_, ": ", std::strerror(e));
  }
  fsync_parent_dir(path_);
}

// ---- reading -----------------------------------------------------------------------------------

TokenShard TokenShard::open(const std::string& path) {
  if (std::filesystem::is_directory(path))
    fail(ErrorKind::Invalid, path, " is a directory, expected a token shard (.bin) file");
  TokenShard s;
  s.file_ = MappedFile::open(path);
  const size_t size = s.file_.size();
  if (size < kTokenShardHeaderBytes)
    fail(ErrorKind::Format, path, ": not a token shard: ", size, " bytes, smaller than the ", kTokenShardHeaderBytes,
         "-byte header (truncated?)");
  RawHeader h;
  std::memcpy(&h, s.file_.data(), sizeof h);
  if (std::memcmp(h.magic, kTokenShardMagic, 8) != 0)
    fail(ErrorKind::Format, path, ": not a token shard (magic is not \"QSTOKENS\")");
  if (h.version != kTokenShardVersion)
    fail(ErrorKind::Format, path, ": token shard version ", h.version, " is not supported (expected ",
         kTokenShardVersion, ")");
  if (h.bytes_per_token != 4)
    fail(ErrorKind::Format, path, ": bytes_per_token ", h.bytes_per_token, " is not supported (expected 4)");
  if (h.vocab_size == 0) fail(ErrorKind::Format, path, ": vocab_size is 0");
  const bool overflow = h.n_tokens > (UINT64_MAX - kTokenShardHeaderBytes) / 4;
  const uint64_t expect = overflow ? 0 : kTokenShardHeaderBytes + h.n_tokens * 4;
  if (overflow || expect != size)
    fail(ErrorKind::Format, path, ": file is ", size, " bytes but its header says ", h.n_tokens, " tokens, which take ",
         overflow ? std::string("more than 2^64") : std::to_string(expect), " bytes (64-byte header + 4 per token)",
         expect > size || overflow ? "; the file is truncated" : "; the file has trailing bytes");
  auto id_field = [&](uint32_t v, const char* name) -> int32_t {
    if (v == kNone) return -1;
    if (v >= h.vocab_size)
      fail(ErrorKind::Format, path, ": ", name, " ", v, " is outside the vocabulary [0, ", h.vocab_size, ")");
    return int32_t(v);
  };
  s.info_.vocab_size = h.vocab_size;
  s.info_.eos_id = id_field(h.eos_id, "eos_id");
  s.info_.bos_id = id_field(h.bos_id, "bos_id");
  s.n_tokens_ = h.n_tokens;
  s.tokens_ = reinterpret_cast<const uint32_t*>(s.file_.data() + kTokenShardHeaderBytes);  // page-aligned + 64
  return s;
}

void TokenShard::validate() const {
  const size_t bad = find_out_of_range(tokens_, size_t(n_tokens_), info_.vocab_size);
  if (bad != size_t(n_tokens_)) fail_bad_id(path(), bad, int64_t(tokens_[bad]), info_.vocab_size);
}

void TokenShard::copy(uint64_t begin, uint64_t n, int32_t* out) const {
  QS_ASSERT(begin <= n_tokens_ && n <= n_tokens_ - begin);
  const uint32_t* src = tokens_ + begin;
  uint32_t bad = 0;
  const uint32_t V = info_.vocab_size;
  for (uint64_t i = 0; i < n; ++i) {
    const uint32_t v = src[i];
    bad |= uint32_t(v >= V);
    out[i] = int32_t(v);
  }
  if (bad) {
    const size_t at = find_out_of_range(src, size_t(n), V);
    fail_bad_id(path(), begin + at, int64_t(src[at]), V);
  }
}

// ---- dataset meta ------------------------------------------------------------------------------

DatasetMeta read_dataset_meta(const std::string& dir) {
  const std::string path = path_join(dir, "meta.json");
  if (!file_exists(path)) fail(ErrorKind::NotFound, path, " not found (not a dataset directory?)");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_text_file(path));
  } catch (const nlohmann::json::exception& e) {
    fail(ErrorKind::Format, path, ": invalid JSON (", e.what(), ")");
  }
  if (!j.is_object()) fail(ErrorKind::Format, path, ": expected a JSON object");
  DatasetMeta m;
  try {
    auto u64 = [&](const nlohmann::json& o, const char* k) -> uint64_t {
      if (!o.contains(k)) fail(ErrorKind::Format, path, ": missing \"", k, "\"");
      if (!o[k].is_number_unsigned() && !(o[k].is_number_integer() && o[k].get<int64_t>() >= 0))
        fail(ErrorKind::Format, path, ": \"", k, "\" must be a non-negative integer");
      return o[k].get<uint64_t>();
    };
    auto id = [&](const char* k) -> int32_t {
      if (!j.contains(k) || j[k].is_null()) return -1;
      if (!j[k].is_number_integer()) fail(ErrorKind::Format, path, ": \"", k, "\" must be an integer or null");
      return j[k].get<int32_t>();
    };
    m.vocab_size = uint32_t(u64(j, "vocab_size"));
    m.eos_id = id("eos_id");
    m.bos_id = id("bos_id");
    m.train_tokens = u64(j, "train_tokens");
    m.val_tokens = u64(j, "val_tokens");
    if (j.contains("documents") && j["documents"].is_object()) {
      m.train_documents = u64(j["documents"], "train");
      m.val_documents = u64(j["documents"], "val");
    }
    if (j.contains("tokenizer") && j["tokenizer"].is_string()) m.tokenizer = j["tokenizer"].get<std::string>();
    if (j.contains("sources") && j["sources"].is_array())
      for (const auto& s : j["sources"])
        if (s.is_string()) m.sources.push_back(s.get<std::string>());
  } catch (const nlohmann::json::exception& e) {
    fail(ErrorKind::Format, path, ": ", e.what());
  }
  return m;
}

// ---- loader ------------------------------------------------------------------------------------

DataLoader::DataLoader(const std::string& path, const std::string& split, int64_t batch_size, int64_t seq_len,
                       uint64_t seed)
    : B_(batch_size), T_(seq_len) {
  if (batch_size < 1) fail("data loader: batch size must be >= 1, got ", batch_size);
  if (seq_len < 1) fail("data loader: seq_len must be >= 1, got ", seq_len);
  std::string file = path;
  if (is_directory(path)) {
    if (split != "train" && split != "val") fail("data loader: split must be \"train\" or \"val\", got \"", split, "\"");
    file = path_join(path, split + ".bin");
    if (!file_exists(file)) fail(ErrorKind::NotFound, "data loader: ", file, " not found (dataset directory ", path, ")");
  } else if (!file_exists(path)) {
    fail(ErrorKind::NotFound, "data loader: ", path, " not found (expected a dataset directory or a .bin shard)");
  }
  shard_ = TokenShard::open(file);
  if (is_directory(path) && file_exists(path_join(path, "meta.json"))) {
    const DatasetMeta meta = read_dataset_meta(path);
    const uint64_t expect = split == "train" ? meta.train_tokens : meta.val_tokens;
    if (expect != shard_.size())
      fail(ErrorKind::Format, file, " has ", shard_.size(), " tokens but ", path_join(path, "meta.json"), " says ",
           split, "_tokens = ", expect, " (an interrupted prepare? run it again)");
    if (meta.vocab_size != shard_.info().vocab_size)
      fail(ErrorKind::Format, file, ": vocab_size ", shard_.info().vocab_size, " differs from meta.json's ",
           meta.vocab_size);
  }
  const uint64_t N = shard_.size();
  if (N < uint64_t(T_) + 1)
    fail("data loader: ", file, ": dataset has ", N, " tokens, fewer than seq_len+1 = ", T_ + 1);
  W_ = (N - 1) / uint64_t(T_);
  if (W_ > uint64_t(UINT32_MAX))
    fail("data loader: ", file, ": ", W_, " windows of seq_len ", T_, " is more than 2^32; use a longer seq_len");
  state_.seed = seed;
}

void DataLoader::ensure_perm(uint64_t epoch) {
  if (perm_epoch_ == epoch) return;
  perm_.resize(size_t(W_));
  for (uint64_t i = 0; i < W_; ++i) perm_[size_t(i)] = uint32_t(i);
  // Seed mixes (seed, epoch) so nearby seeds and epochs give unrelated orders; Rng runs SplitMix.
  Rng rng(state_.seed * 0x9E3779B97F4A7C15ull ^ (epoch + 1) * 0xD1B54A32D192ED03ull);
  for (uint64_t i = W_ - 1; i > 0; --i) std::swap(perm_[size_t(i)], perm_[size_t(rng.below(i + 1))]);  // Fisher-Yates
  perm_epoch_ = epoch;
}

uint64_t DataLoader::window_at(uint64_t epoch, uint64_t index) {
  QS_CHECK(index < W_, "data loader: window index ", index, " >= windows per epoch ", W_);
  ensure_perm(epoch);
  return perm_[size_t(index)];
}

void DataLoader::next(int32_t* tokens) {
  const uint64_t T = uint64_t(T_);
  for (int64_t b = 0; b < B_; ++b) {
    if (state_.index >= W_) {
      state_.index = 0;
      ++state_.epoch;
    }
    ensure_perm(state_.epoch);
    const uint64_t w = perm_[size_t(state_.index)];
    shard_.copy(w * T, T + 1, tokens + b * (T_ + 1));
    ++state_.index;
  }
}

std::vector<int32_t> DataLoader::val_batches(int64_t n) const {
  QS_CHECK(n >= 0, "data loader: number of validation batches must be >= 0, got ", n);
  const uint64_t T = uint64_t(T_);
  std::vector<int32_t> out(size_t(n * B_) * size_t(T + 1));
  for (int64_t k = 0; k < n * B_; ++k) {
    const uint64_t w = uint64_t(k) % W_;
    shard_.copy(w * T, T + 1, out.data() + size_t(k) * size_t(T + 1));
  }
  return out;
}

void DataLoader::set_state(const State& s) {
  if (s.index > W_)
    fail("data loader: state index ", s.index, " is beyond the ", W_, " windows per epoch of ", shard_.path(),
         " (a state from another dataset or seq_len?)");
  if (s.seed != state_.seed) perm_epoch_ = ~uint64_t(0);
  state_ = s;
}

}  // namespace qs
