// Context caching on disk: prefix-cache blocks (infer/block_manager.h) saved as files so that
// a prompt prefix computed once is not computed again, across restarts (llama.cpp's
// --slot-save-path and SGLang's radix cache are the peers; DeepSeek calls it context caching).
//
// An entry is one full block of the prompt of a finished request: its chain hash, its parent's
// hash, its block_size tokens and its latents for every layer. File "<hash>.kvb":
//   "QSKVBLK1" | u32 version | u32 header bytes | u64 model identity | u32 block_size |
//   u32 layers | u32 row width | u32 reserved | u64 hash | u64 parent |
//   i32 tokens[block_size] | f32 latents[layers][block_size][width] | u32 crc32 of all before
// Each file is written atomically (io/file.h: temp file, fsync, rename), so a crash while
// writing loses at most that entry. Entries of another model (identity: a hash of config.json,
// the weight files' sizes and samples of their bytes, and the compute precision), another
// block size or geometry, truncated files and bad checksums are ignored with a log line.
//
// Flow: prefetch() (HTTP thread, before submitting a request) reads the entries that extend the
// prompt's prefix beyond what the engine holds and returns a task that inserts them into the
// engine's prefix cache (run it with Engine::post before submit: posted tasks run before new
// requests are admitted). persist() (engine thread, after requests finish) copies the prompt
// blocks not yet on disk and hands them to a writer thread. The directory is kept under
// max_bytes by deleting the least recently used entries of this model.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "qiusuo/infer/engine.h"

namespace qs::serve {

// A 64-bit identity of a checkpoint directory as computed (config.json, the weight files'
// names, sizes and sampled bytes, the compute precision and the KV cache's storage type).
uint64_t model_identity(const std::string& model_dir, Compute compute, KvDtype kv_dtype);

struct DiskCacheOptions {
  std::string dir;
  int64_t max_bytes = int64_t(1) << 30;
  uint64_t model_id = 0;
  int64_t block_size = 64, layers = 0, width = 0;
};

class DiskCache {
 public:
  // Creates the directory if needed and indexes the entries there (headers only; checksums are
  // verified when an entry is read).
  explicit DiskCache(DiskCacheOptions opt);
  ~DiskCache();  // writes what is queued, then stops the writer
  DiskCache(const DiskCache&) = delete;
  DiskCache& operator=(const DiskCache&) = delete;

  // HTTP thread. A task for the engine thread inserting the on-disk blocks that extend the
  // prompt's cached prefix (empty function when there is nothing to load).
  std::function<void(Engine&)> prefetch(std::span<const int32_t> prompt);
  // Engine thread: queue the full blocks of each prompt that are published and not on disk.
  void persist(Engine& engine, const std::vector<std::vector<int32_t>>& prompts);
  // Blocks until the writer has written everything queued.
  void flush();

  struct Stats {
    int64_t entries = 0, bytes = 0, loaded = 0, written = 0, ignored = 0;
  };
  Stats stats() const;
  size_t entry_bytes() const { return file_bytes_; }

 private:
  struct Entry {
    uint64_t parent = 0;
    int64_t size = 0;
    uint64_t used = 0;  // LRU clock
  };
  struct Pending {
    uint64_t hash = 0, parent = 0;
    std::vector<int32_t> tokens;
    std::vector<float> data;
  };
  std::string path_of(uint64_t hash) const;
  bool read_entry(uint64_t hash, uint64_t parent, std::span<const int32_t> tokens, std::vector<float>& data);
  void ignore(const std::string& path, const std::string& why);
  void writer_loop();
  void write_entry(const Pending& p);
  void evict_locked();

  DiskCacheOptions opt_;
  size_t header_bytes_ = 0, file_bytes_ = 0, floats_ = 0;
  mutable std::mutex mu_;
  std::unordered_map<uint64_t, Entry> index_;
  std::unordered_set<uint64_t> resident_;   // published in the engine at the last look
  std::unordered_set<uint64_t> queued_;     // being written
  uint64_t clock_ = 0;
  int64_t bytes_ = 0;
  Stats counters_;
  std::deque<Pending> queue_;
  std::condition_variable cv_, idle_cv_;
  bool stop_ = false, writing_ = false;
  std::thread writer_;
};

}  // namespace qs::serve
