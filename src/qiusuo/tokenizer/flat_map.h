// Small open-addressing hash maps used by the tokenizer's hot paths (internal header).
#pragma once
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace qs::detail {

inline uint64_t mix64(uint64_t x) {
  x ^= x >> 32;
  x *= 0xd6e8feb86659fd93ull;
  x ^= x >> 32;
  return x;
}

// Fast hash of a short byte string (8-byte chunks, multiply-xorshift mixing).
inline uint64_t hash_bytes(const char* p, size_t n) {
  uint64_t h = 0x9E3779B97F4A7C15ull ^ (static_cast<uint64_t>(n) * 0xff51afd7ed558ccdull);
  while (n >= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    h = (h ^ w) * 0x9E3779B97F4A7C15ull;
    h ^= h >> 29;
    p += 8;
    n -= 8;
  }
  if (n) {
    uint64_t w = 0;
    std::memcpy(&w, p, n);
    h = (h ^ w) * 0x9E3779B97F4A7C15ull;
  }
  return mix64(h);
}
inline uint64_t hash_bytes(std::string_view s) { return hash_bytes(s.data(), s.size()); }

// string -> int32 id; keys live in one arena. Insert overwrites an existing key's id.
class StringIdMap {
 public:
  void reserve(size_t n) {
    size_t cap = 16;
    while (cap < n * 2) cap <<= 1;
    rehash(cap);
  }
  size_t size() const { return count_; }

  int32_t find(std::string_view key) const {
    if (slots_.empty()) return -1;
    uint64_t h = hash_bytes(key);
    uint32_t tag = static_cast<uint32_t>(h >> 32) | 1u;
    size_t mask = slots_.size() - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
      const Slot& s = slots_[i];
      if (s.tag == 0) return -1;
      if (s.tag == tag && s.len == key.size() && std::memcmp(arena_.data() + s.off, key.data(), key.size()) == 0)
        return s.id;
    }
  }
  // Returns the previous id of the key, or -1 when it is new.
  int32_t insert(std::string_view key, int32_t id) {
    if ((count_ + 1) * 2 > slots_.size()) rehash(slots_.empty() ? 16 : slots_.size() * 2);
    uint64_t h = hash_bytes(key);
    uint32_t tag = static_cast<uint32_t>(h >> 32) | 1u;
    size_t mask = slots_.size() - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
      Slot& s = slots_[i];
      if (s.tag == 0) {
        s.tag = tag;
        s.off = static_cast<uint32_t>(arena_.size());
        s.len = static_cast<uint32_t>(key.size());
        s.id = id;
        arena_.append(key);
        ++count_;
        return -1;
      }
      if (s.tag == tag && s.len == key.size() && std::memcmp(arena_.data() + s.off, key.data(), key.size()) == 0) {
        int32_t old = s.id;
        s.id = id;
        return old;
      }
    }
  }

 private:
  struct Slot {
    uint32_t tag = 0;  // high hash bits | 1; 0 = empty
    uint32_t off = 0, len = 0;
    int32_t id = -1;
  };
  void rehash(size_t cap) {
    std::vector<Slot> old;
    old.swap(slots_);
    slots_.assign(cap, Slot{});
    size_t mask = cap - 1;
    for (const Slot& s : old) {
      if (!s.tag) continue;
      uint64_t full = hash_bytes(arena_.data() + s.off, s.len);
      for (size_t i = full & mask;; i = (i + 1) & mask) {
        if (!slots_[i].tag) {
          slots_[i] = s;
          break;
        }
      }
    }
  }
  std::vector<Slot> slots_;
  std::string arena_;
  size_t count_ = 0;
};

// (uint32 a, uint32 b) -> (uint32 rank, int32 new_id). Insert overwrites.
class PairMap {
 public:
  static constexpr uint64_t kEmpty = ~0ull;
  struct Value {
    uint32_t rank;
    int32_t id;
  };
  void reserve(size_t n) {
    size_t cap = 16;
    while (cap < n * 2) cap <<= 1;
    keys_.assign(cap, kEmpty);
    vals_.assign(cap, Value{0, -1});
    count_ = 0;
    shift_ = 64;
    for (size_t c = cap; c > 1; c >>= 1) --shift_;
  }
  static uint64_t key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  // Returns nullptr when the pair has no merge.
  const Value* find(int32_t a, int32_t b) const {
    if (keys_.empty()) return nullptr;
    uint64_t k = key(a, b);
    size_t mask = keys_.size() - 1;
    for (size_t i = slot(k);; i = (i + 1) & mask) {
      if (keys_[i] == k) return &vals_[i];
      if (keys_[i] == kEmpty) return nullptr;
    }
  }
  void insert(int32_t a, int32_t b, Value v) {
    if ((count_ + 1) * 2 > keys_.size()) grow();
    uint64_t k = key(a, b);
    size_t mask = keys_.size() - 1;
    for (size_t i = slot(k);; i = (i + 1) & mask) {
      if (keys_[i] == k) {
        vals_[i] = v;
        return;
      }
      if (keys_[i] == kEmpty) {
        keys_[i] = k;
        vals_[i] = v;
        ++count_;
        return;
      }
    }
  }
  size_t size() const { return count_; }

 private:
  size_t slot(uint64_t k) const { return static_cast<size_t>((k * 0x9E3779B97F4A7C15ull) >> shift_); }
  void grow() {
    std::vector<uint64_t> ok;
    std::vector<Value> ov;
    ok.swap(keys_);
    ov.swap(vals_);
    reserve(ok.empty() ? 8 : ok.size());
    for (size_t i = 0; i < ok.size(); ++i)
      if (ok[i] != kEmpty) insert(static_cast<int32_t>(ok[i] >> 32), static_cast<int32_t>(ok[i] & 0xFFFFFFFFu), ov[i]);
  }
  std::vector<uint64_t> keys_;
  std::vector<Value> vals_;
  size_t count_ = 0;
  int shift_ = 64;
};

}  // namespace qs::detail
