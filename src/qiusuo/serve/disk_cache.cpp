#include "qiusuo/serve/disk_cache.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cstring>

#include "qiusuo/core/error.h"
#include "qiusuo/io/file.h"
#include "qiusuo/serve/log.h"

namespace qs::serve {
namespace {

constexpr char kMagic[8] = {'Q', 'S', 'K', 'V', 'B', 'L', 'K', '1'};
constexpr uint32_t kVersion = 1;

#pragma pack(push, 1)
struct Header {
  char magic[8];
  uint32_t version;
  uint32_t header_bytes;
  uint64_t model_id;
  uint32_t block_size, layers, width, reserved;
  uint64_t hash, parent;
};
#pragma pack(pop)

uint64_t fnv1a(uint64_t h, const void* data, size_t n) {
  const auto* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

uint32_t crc(uint32_t c, const void* data, size_t n) {
  const auto* p = static_cast<const Bytef*>(data);
  while (n > 0) {
    const uInt k = uInt(std::min<size_t>(n, 1u << 30));
    c = uint32_t(crc32(c, p, k));
    p += k;
    n -= k;
  }
  return c;
}

std::string hex16(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", (unsigned long long)v);
  return buf;
}

bool read_exact(int fd, void* dst, size_t n) {
  auto* p = static_cast<char*>(dst);
  while (n > 0) {
    const ssize_t r = ::read(fd, p, n);
    if (r <= 0) return false;
    p += r;
    n -= size_t(r);
  }
  return true;
}

}  // namespace

uint64_t model_identity(const std::string& dir, Compute compute, KvDtype kv_dtype) {
  uint64_t h = 0xcbf29ce484222325ull;
  const std::string cfg = read_text_file(path_join(dir, "config.json"));
  h = fnv1a(h, cfg.data(), cfg.size());
  std::vector<std::string> files;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      const std::string n = e->d_name;
      if (n.size() > 12 && n.compare(n.size() - 12, 12, ".safetensors") == 0) files.push_back(n);
    }
    closedir(d);
  }
  std::sort(files.begin(), files.end());
  std::vector<char> buf(1 << 16);
  for (const auto& f : files) {
    const std::string p = path_join(dir, f);
    h = fnv1a(h, f.data(), f.size());
    const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    struct stat st {};
    fstat(fd, &st);
    const int64_t size = st.st_size;
    h = fnv1a(h, &size, sizeof size);
    // The header (tensor names, shapes, offsets) and 8 samples of 64 KiB spread over the data.
    for (int k = 0; k <= 8; ++k) {
      const int64_t off = k == 0 ? 0 : std::max<int64_t>(0, size * k / 8 - int64_t(buf.size()));
      const ssize_t r = ::pread(fd, buf.data(), buf.size(), off);
      if (r > 0) h = fnv1a(h, buf.data(), size_t(r));
    }
    ::close(fd);
  }
  // The arithmetic that computed the rows: a cached block is reused only where recomputing it
  // would give the same bits. "bf16-attn": BF16 compute since decode attention over a BF16 cache
  // runs in BF16 products (model/mla.h), "bf16-attn-fp8rows" since it does so over an FP8 cache's
  // rows dequantized to BF16; blocks of the earlier BF16 arithmetic ("bf16", and "bf16-attn"
  // with an FP8 cache) are another identity's, left alone.
  const char* c = compute == Compute::F32         ? "f32"
                  : kv_dtype == KvDtype::FP8      ? "bf16-attn-fp8rows"
                                                  : "bf16-attn";
  h = fnv1a(h, c, std::strlen(c));
  const char* kv = kv_dtype_name(kv_dtype);
  h = fnv1a(h, kv, std::strlen(kv));
  return h == 0 ? 1 : h;
}

DiskCache::DiskCache(DiskCacheOptions opt) : opt_(std::move(opt)) {
  QS_CHECK(opt_.block_size > 0 && opt_.layers > 0 && opt_.width > 0, "disk cache: bad block geometry");
  floats_ = size_t(opt_.layers * opt_.block_size * opt_.width);
  header_bytes_ = sizeof(Header);
  file_bytes_ = header_bytes_ + size_t(opt_.block_size) * 4 + floats_ * 4 + 4;
  make_dirs(opt_.dir);
  // Index the entries: headers only, oldest modification first (the LRU order on start).
  struct Found { std::string path; uint64_t hash, parent; int64_t size; int64_t mtime; };
  std::vector<Found> found;
  DIR* d = opendir(opt_.dir.c_str());
  if (!d) fail(ErrorKind::Io, "disk cache: cannot open directory ", opt_.dir);
  while (dirent* e = readdir(d)) {
    const std::string n = e->d_name;
    if (n.find(".kvb.tmp.") != std::string::npos) {  // a write cut short by a crash
      ::unlink(path_join(opt_.dir, n).c_str());
      log_line("disk cache: removed the partial write " + n);
      continue;
    }
    if (n.size() != 20 || n.compare(16, 4, ".kvb") != 0) continue;
    const std::string p = path_join(opt_.dir, n);
    const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    struct stat st {};
    fstat(fd, &st);
    Header h{};
    const bool ok = read_exact(fd, &h, sizeof h);
    ::close(fd);
    if (!ok || std::memcmp(h.magic, kMagic, 8) != 0 || h.version != kVersion || h.header_bytes != sizeof(Header)) {
      ignore(p, "not a qiusuo cache entry of this version");
      continue;
    }
    if (h.model_id != opt_.model_id) {
      ignore(p, "written for another model (identity " + hex16(h.model_id) + ", this model " + hex16(opt_.model_id) + ")");
      continue;
    }
    if (h.block_size != opt_.block_size || h.layers != opt_.layers || h.width != opt_.width) {
      ignore(p, "block geometry " + std::to_string(h.block_size) + "x" + std::to_string(h.layers) + "x" +
                    std::to_string(h.width) + " differs from this server's " + std::to_string(opt_.block_size) + "x" +
                    std::to_string(opt_.layers) + "x" + std::to_string(opt_.width));
      continue;
    }
    if (size_t(st.st_size) != file_bytes_) {
      ignore(p, "truncated (" + std::to_string(st.st_size) + " bytes, expected " + std::to_string(file_bytes_) + ")");
      continue;
    }
    if (n.substr(0, 16) != hex16(h.hash)) {
      ignore(p, "file name does not match the block hash");
      continue;
    }
    found.push_back({p, h.hash, h.parent, int64_t(st.st_size), int64_t(st.st_mtime)});
  }
  closedir(d);
  std::sort(found.begin(), found.end(), [](const Found& a, const Found& b) { return a.mtime < b.mtime; });
  for (const auto& f : found) {
    index_[f.hash] = {f.parent, f.size, ++clock_};
    bytes_ += f.size;
  }
  {
    std::lock_guard<std::mutex> lk(mu_);
    evict_locked();
  }
  log_line("disk cache " + opt_.dir + ": " + std::to_string(index_.size()) + " entries, " +
           std::to_string(bytes_ >> 20) + " MiB (limit " + std::to_string(opt_.max_bytes >> 20) + " MiB), model " +
           hex16(opt_.model_id));
  writer_ = std::thread([this] { writer_loop(); });
}

DiskCache::~DiskCache() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (writer_.joinable()) writer_.join();
}

std::string DiskCache::path_of(uint64_t hash) const { return path_join(opt_.dir, hex16(hash) + ".kvb"); }

void DiskCache::ignore(const std::string& path, const std::string& why) {
  log_line("disk cache: ignoring " + path + ": " + why);
  std::lock_guard<std::mutex> lk(mu_);
  counters_.ignored++;
}

DiskCache::Stats DiskCache::stats() const {
  std::lock_guard<std::mutex> lk(mu_);
  Stats s = counters_;
  s.entries = int64_t(index_.size());
  s.bytes = bytes_;
  return s;
}

bool DiskCache::read_entry(uint64_t hash, uint64_t parent, std::span<const int32_t> tokens, std::vector<float>& data) {
  const std::string p = path_of(hash);
  const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  std::vector<char> buf(file_bytes_);
  struct stat st {};
  fstat(fd, &st);
  const bool ok = size_t(st.st_size) == file_bytes_ && read_exact(fd, buf.data(), buf.size());
  ::close(fd);
  if (!ok) {
    ignore(p, "truncated or unreadable");
    return false;
  }
  uint32_t stored;
  std::memcpy(&stored, buf.data() + file_bytes_ - 4, 4);
  if (crc(0, buf.data(), file_bytes_ - 4) != stored) {
    ignore(p, "bad checksum");
    return false;
  }
  Header h;
  std::memcpy(&h, buf.data(), sizeof h);
  if (h.model_id != opt_.model_id || h.hash != hash || h.parent != parent ||
      std::memcmp(buf.data() + header_bytes_, tokens.data(), tokens.size() * 4) != 0) {
    ignore(p, "holds other tokens than its hash says");
    return false;
  }
  data.resize(floats_);
  std::memcpy(data.data(), buf.data() + header_bytes_ + tokens.size() * 4, floats_ * 4);
  return true;
}

std::function<void(Engine&)> DiskCache::prefetch(std::span<const int32_t> prompt) {
  struct Load {
    uint64_t hash, parent;
    std::vector<int32_t> tokens;
    std::vector<float> data;
  };
  const int64_t B = opt_.block_size;
  const int64_t blocks = int64_t(prompt.size()) / B;
  std::vector<std::pair<uint64_t, uint64_t>> want;  // (hash, parent) to read, in chain order
  std::vector<int64_t> want_block;
  {
    std::lock_guard<std::mutex> lk(mu_);
    uint64_t parent = 0;
    for (int64_t k = 0; k < blocks; ++k) {
      const auto blk = prompt.subspan(size_t(k * B), size_t(B));
      const uint64_t h = BlockManager::chain_hash(parent, blk);
      if (!resident_.count(h)) {
        auto it = index_.find(h);
        if (it == index_.end() || it->second.parent != parent) break;
        it->second.used = ++clock_;
        want.push_back({h, parent});
        want_block.push_back(k);
      }
      parent = h;
    }
  }
  if (want.empty()) return {};
  auto loads = std::make_shared<std::vector<Load>>();
  for (size_t i = 0; i < want.size(); ++i) {
    const auto blk = prompt.subspan(size_t(want_block[i] * B), size_t(B));
    Load l{want[i].first, want[i].second, std::vector<int32_t>(blk.begin(), blk.end()), {}};
    if (!read_entry(l.hash, l.parent, blk, l.data)) {
      std::lock_guard<std::mutex> lk(mu_);
      if (auto it = index_.find(l.hash); it != index_.end()) {
        bytes_ -= it->second.size;
        index_.erase(it);
      }
      break;
    }
    loads->push_back(std::move(l));
  }
  if (loads->empty()) return {};
  return [this, loads](Engine& engine) {
    BlockManager& bm = engine.blocks();
    int64_t n = 0;
    for (const Load& l : *loads) {
      const bool added = bm.insert(l.parent, l.tokens, [&](float* dst) {
        std::memcpy(dst, l.data.data(), l.data.size() * sizeof(float));
      });
      n += added;
    }
    std::lock_guard<std::mutex> lk(mu_);
    for (const Load& l : *loads) resident_.insert(l.hash);
    counters_.loaded += n;
  };
}

void DiskCache::persist(Engine& engine, const std::vector<std::vector<int32_t>>& prompts) {
  BlockManager& bm = engine.blocks();
  KVPool& pool = engine.pool();
  if (size_t(pool.block_floats()) != floats_) return;
  const auto pub = bm.published();
  std::unordered_map<uint64_t, const BlockManager::CachedBlock*> by_hash;
  for (const auto& c : pub) by_hash.emplace(c.hash, &c);
  std::vector<Pending> out;
  {
    std::lock_guard<std::mutex> lk(mu_);
    resident_.clear();
    for (const auto& c : pub) resident_.insert(c.hash);
    const int64_t B = opt_.block_size;
    for (const auto& prompt : prompts) {
      uint64_t parent = 0;
      for (int64_t k = 0; k < int64_t(prompt.size()) / B; ++k) {
        const std::span<const int32_t> blk(prompt.data() + k * B, size_t(B));
        const uint64_t h = BlockManager::chain_hash(parent, blk);
        auto it = by_hash.find(h);
        if (it == by_hash.end() || it->second->parent != parent ||
            !std::equal(blk.begin(), blk.end(), it->second->tokens.begin()))
          break;  // not in memory (evicted or never computed): the rest of the chain cannot be either
        if (auto e = index_.find(h); e != index_.end()) {
          e->second.used = ++clock_;
        } else if (!queued_.count(h)) {
          queued_.insert(h);
          const float* src = pool.block_data(it->second->block);
          out.push_back({h, parent, std::vector<int32_t>(blk.begin(), blk.end()), std::vector<float>(src, src + floats_)});
        }
        parent = h;
      }
    }
    for (auto& p : out) queue_.push_back(std::move(p));
  }
  if (!out.empty()) cv_.notify_all();
}

void DiskCache::flush() {
  std::unique_lock<std::mutex> lk(mu_);
  idle_cv_.wait(lk, [&] { return queue_.empty() && !writing_; });
}

void DiskCache::writer_loop() {
  std::unique_lock<std::mutex> lk(mu_);
  while (true) {
    cv_.wait(lk, [&] { return stop_ || !queue_.empty(); });
    if (queue_.empty()) {
      if (stop_) break;
      continue;
    }
    Pending p = std::move(queue_.front());
    queue_.pop_front();
    writing_ = true;
    lk.unlock();
    bool ok = true;
    try {
      write_entry(p);
    } catch (const std::exception& e) {
      ok = false;
      log_line(std::string("disk cache: cannot write an entry: ") + e.what());
    }
    lk.lock();
    writing_ = false;
    queued_.erase(p.hash);
    if (ok) {
      index_[p.hash] = {p.parent, int64_t(file_bytes_), ++clock_};
      bytes_ += int64_t(file_bytes_);
      counters_.written++;
      evict_locked();
    }
    if (queue_.empty()) idle_cv_.notify_all();
  }
  idle_cv_.notify_all();
}

void DiskCache::write_entry(const Pending& p) {
  Header h{};
  std::memcpy(h.magic, kMagic, 8);
  h.version = kVersion;
  h.header_bytes = sizeof(Header);
  h.model_id = opt_.model_id;
  h.block_size = uint32_t(opt_.block_size);
  h.layers = uint32_t(opt_.layers);
  h.width = uint32_t(opt_.width);
  h.hash = p.hash;
  h.parent = p.parent;
  uint32_t c = crc(0, &h, sizeof h);
  c = crc(c, p.tokens.data(), p.tokens.size() * 4);
  c = crc(c, p.data.data(), p.data.size() * 4);
  write_file_atomic(path_of(p.hash), [&](int fd) {
    write_all(fd, &h, sizeof h, "cache entry header");
    write_all(fd, p.tokens.data(), p.tokens.size() * 4, "cache entry tokens");
    write_all(fd, p.data.data(), p.data.size() * 4, "cache entry latents");
    write_all(fd, &c, 4, "cache entry checksum");
  });
}

void DiskCache::evict_locked() {
  while (bytes_ > opt_.max_bytes && !index_.empty()) {
    auto victim = index_.begin();
    for (auto it = index_.begin(); it != index_.end(); ++it)
      if (it->second.used < victim->second.used) victim = it;
    ::unlink(path_of(victim->first).c_str());
    bytes_ -= victim->second.size;
    index_.erase(victim);
  }
}

}  // namespace qs::serve
