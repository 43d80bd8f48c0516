#include "qiusuo/tokenizer/bpe.h"

#include <algorithm>
#include <atomic>
#include <climits>
#include <queue>

#include "qiusuo/core/error.h"
#include "qiusuo/tokenizer/flat_map.h"
#include "qiusuo/tokenizer/unicode.h"

namespace qs {

// ---- byte-level alphabet ---------------------------------------------------------------------

namespace byte_level {
namespace {
struct Alphabet {
  uint32_t to_char[256];
  int16_t to_byte[512];  // every alphabet character is below U+0200
  Alphabet() {
    std::fill(std::begin(to_byte), std::end(to_byte), int16_t{-1});
    bool direct[256] = {};
    for (int b = '!'; b <= '~'; ++b) direct[b] = true;
    for (int b = 0xA1; b <= 0xAC; ++b) direct[b] = true;
    for (int b = 0xAE; b <= 0xFF; ++b) direct[b] = true;
    uint32_t n = 0;
    for (int b = 0; b < 256; ++b) {
      to_char[b] = direct[b] ? static_cast<uint32_t>(b) : 256 + n++;
      to_byte[to_char[b]] = static_cast<int16_t>(b);
    }
  }
};
const Alphabet& alphabet() {
  static const Alphabet a;
  return a;
}
}  // namespace

uint32_t byte_to_char(uint8_t b) { return alphabet().to_char[b]; }
int char_to_byte(uint32_t cp) { return cp < 512 ? alphabet().to_byte[cp] : -1; }

std::string encode(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char b : bytes) unicode::append_utf8(out, alphabet().to_char[b]);
  return out;
}

bool decode(std::string_view token, std::string& out) {
  out.clear();
  const auto* u = reinterpret_cast<const unsigned char*>(token.data());
  size_t i = 0;
  while (i < token.size()) {
    int len = 1;
    uint32_t cp = unicode::decode_utf8(u + i, len);
    int b = char_to_byte(cp);
    if (b < 0) return false;
    out.push_back(static_cast<char>(b));
    i += static_cast<size_t>(len);
  }
  return true;
}
}  // namespace byte_level

// ---- model -----------------------------------------------------------------------------------

struct BpeModel::Impl {
  uint64_t serial = 0;  // identifies the model for the thread-local word cache
  bool byte_level = false;
  bool ignore_merges = false;
  bool fuse_unk = false;
  std::string unk_token;
  int32_t unk_id = -1;
  detail::StringIdMap vocab;        // model-alphabet string -> id
  detail::StringIdMap bytes_vocab;  // raw bytes -> id (byte-level + ignore_merges only)
  std::vector<uint32_t> str_off;    // id -> [str_off[id], str_off[id+1]) in strs
  std::string strs;
  int32_t max_id = -1;
  size_t entries = 0;
  int32_t byte_id[256];
  detail::PairMap merge_map;
  std::vector<std::pair<int32_t, int32_t>> merges;
};

namespace {

std::atomic<uint64_t> g_serial{1};

std::string short_token(std::string_view s) {
  return s.size() > 60 ? std::string(s.substr(0, 60)) + "..." : std::string(s);
}

}  // namespace

BpeModel BpeModel::from_json(const nlohmann::json& m, bool byte_level) {
  if (!m.is_object()) fail(ErrorKind::Format, "tokenizer.json: \"model\" must be an object");
  Parts parts;
  if (m.contains("vocab")) {
    const auto& vocab = m["vocab"];
    if (!vocab.is_object()) fail(ErrorKind::Format, "tokenizer.json: BPE model needs a \"vocab\" object");
    parts.has_vocab = true;
    parts.vocab.reserve(vocab.size());
    for (auto it = vocab.begin(); it != vocab.end(); ++it) {
      const auto& v = it.value();
      if (!v.is_number_integer())
        fail(ErrorKind::Format, "tokenizer.json: vocab entry \"", short_token(it.key()),
             "\" must have a non-negative integer id");
      parts.vocab.emplace_back(it.key(), v.get<int64_t>());
    }
  }
  if (m.contains("merges") && !m["merges"].is_null()) {
    const auto& merges = m["merges"];
    if (!merges.is_array()) fail(ErrorKind::Format, "tokenizer.json: model.merges must be an array");
    parts.merges.reserve(merges.size());
    for (const auto& e : merges) {
      if (e.is_string())
        add_merge_string(parts, e.get_ref<const std::string&>());
      else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string())
        parts.merges.emplace_back(e[0].get<std::string>(), e[1].get<std::string>());
      else
        fail(ErrorKind::Format, "tokenizer.json: merge ", parts.merges.size(),
             " must be a \"a b\" string or an [a, b] pair");
    }
  }
  nlohmann::json options = nlohmann::json::object();
  for (auto it = m.begin(); it != m.end(); ++it)
    if (it.key() != "vocab" && it.key() != "merges") options[it.key()] = it.value();
  return build(options, std::move(parts), byte_level);
}

void BpeModel::add_merge_string(Parts& parts, std::string_view s) {
  size_t sp = s.find(' ');
  if (sp == std::string_view::npos || s.find(' ', sp + 1) != std::string_view::npos)
    fail(ErrorKind::Format, "tokenizer.json: merge ", parts.merges.size(), " \"", short_token(s),
         "\" must be two tokens separated by one space");
  parts.merges.emplace_back(std::string(s.substr(0, sp)), std::string(s.substr(sp + 1)));
}

BpeModel BpeModel::build(const nlohmann::json& m, Parts parts, bool byte_level) {
  std::string type = m.contains("type") && m["type"].is_string() ? m["type"].get<std::string>() : "";
  if (type.empty() && !parts.merges.empty()) type = "BPE";  // old files omit the type
  if (type != "BPE")
    fail(ErrorKind::Unsupported, "tokenizer.json: unsupported model type \"", type.empty() ? "(none)" : type,
         "\" (only BPE is supported)");
  auto impl = std::make_shared<Impl>();
  impl->serial = g_serial.fetch_add(1);
  impl->byte_level = byte_level;
  auto is_set = [&](const char* k) { return m.contains(k) && !m[k].is_null(); };
  auto get_bool = [&](const char* k) {
    if (!is_set(k)) return false;
    if (!m[k].is_boolean()) fail(ErrorKind::Format, "tokenizer.json: model.", k, " must be a boolean");
    return m[k].get<bool>();
  };
  if (get_bool("byte_fallback"))
    fail(ErrorKind::Unsupported, "tokenizer.json: BPE byte_fallback=true is not supported");
  if (is_set("dropout") && !(m["dropout"].is_number() && m["dropout"].get<double>() == 0.0))
    fail(ErrorKind::Unsupported, "tokenizer.json: BPE dropout is not supported");
  for (const char* k : {"continuing_subword_prefix", "end_of_word_suffix"})
    if (is_set(k) && !(m[k].is_string() && m[k].get<std::string>().empty()))
      fail(ErrorKind::Unsupported, "tokenizer.json: BPE ", k, " is not supported");
  impl->ignore_merges = get_bool("ignore_merges");
  impl->fuse_unk = get_bool("fuse_unk");
  if (is_set("unk_token")) {
    if (!m["unk_token"].is_string()) fail(ErrorKind::Format, "tokenizer.json: model.unk_token must be a string");
    impl->unk_token = m["unk_token"].get<std::string>();
  }

  // Vocabulary.
  if (!parts.has_vocab) fail(ErrorKind::Format, "tokenizer.json: BPE model needs a \"vocab\" object");
  if (!parts.vocab_error.empty()) fail(ErrorKind::Format, parts.vocab_error);
  auto& vocab = parts.vocab;
  impl->vocab.reserve(vocab.size());
  for (const auto& [tok, id] : vocab) {
    if (id < 0 || id > kMaxTokenId)
      fail(ErrorKind::Format, "tokenizer.json: vocab entry \"", short_token(tok), "\" has id ", id,
           id < 0 ? "; ids must be non-negative integers" : str("; ids are bounded by ", kMaxTokenId));
    impl->vocab.insert(tok, static_cast<int32_t>(id));
    impl->max_id = std::max(impl->max_id, static_cast<int32_t>(id));
  }
  impl->entries = vocab.size();
  // id -> string table; with several strings for one id the last one in file order wins.
  std::vector<int32_t> order(vocab.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int32_t>(i);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return vocab[a].second < vocab[b].second; });
  impl->str_off.assign(static_cast<size_t>(impl->max_id) + 2, 0);
  {
    size_t k = 0;
    for (int32_t id = 0; id <= impl->max_id; ++id) {
      impl->str_off[id] = static_cast<uint32_t>(impl->strs.size());
      const std::string* s = nullptr;
      while (k < order.size() && vocab[order[k]].second == id) s = &vocab[order[k++]].first;
      if (s) impl->strs += *s;
    }
    impl->str_off[impl->max_id + 1] = static_cast<uint32_t>(impl->strs.size());
  }
  if (!impl->unk_token.empty()) impl->unk_id = impl->vocab.find(impl->unk_token);
  for (int b = 0; b < 256; ++b) {
    std::string ch;
    unicode::append_utf8(ch, byte_level::byte_to_char(static_cast<uint8_t>(b)));
    impl->byte_id[b] = impl->vocab.find(ch);
  }
  if (impl->byte_level && impl->ignore_merges) {
    std::string raw;
    impl->bytes_vocab.reserve(vocab.size());
    for (const auto& [tok, id] : vocab)
      if (byte_level::decode(tok, raw)) impl->bytes_vocab.insert(raw, static_cast<int32_t>(id));
  }

  // Merges: rank = position; a later duplicate of a pair overrides the earlier one (as a HashMap
  // collected from the list does in tokenizers).
  impl->merge_map.reserve(parts.merges.size());
  impl->merges.reserve(parts.merges.size());
  std::string ab;
  uint32_t rank = 0;
  for (const auto& [a, b] : parts.merges) {
    int32_t ia = impl->vocab.find(a), ib = impl->vocab.find(b);
    ab.assign(a).append(b);
    int32_t iab = impl->vocab.find(ab);
    if (ia < 0 || ib < 0 || iab < 0)
      fail(ErrorKind::Format, "tokenizer.json: merge ", rank, " (\"", short_token(a), "\", \"", short_token(b),
           "\"): token \"", short_token(ia < 0 ? a : ib < 0 ? b : ab), "\" is not in the vocabulary");
    impl->merge_map.insert(ia, ib, {rank, iab});
    impl->merges.emplace_back(ia, ib);
    ++rank;
  }
  BpeModel bm;
  bm.impl_ = impl;
  return bm;
}

int32_t BpeModel::token_to_id(std::string_view token) const { return impl_->vocab.find(token); }

std::string_view BpeModel::id_to_token(int32_t id) const {
  if (id < 0 || id > impl_->max_id) return {};
  return std::string_view(impl_->strs).substr(impl_->str_off[id], impl_->str_off[id + 1] - impl_->str_off[id]);
}

int32_t BpeModel::max_id() const { return impl_->max_id; }
size_t BpeModel::vocab_entries() const { return impl_->entries; }
bool BpeModel::byte_level() const { return impl_->byte_level; }
bool BpeModel::ignore_merges() const { return impl_->ignore_merges; }
const std::vector<std::pair<int32_t, int32_t>>& BpeModel::merges() const { return impl_->merges; }
const std::string& BpeModel::unk_token() const { return impl_->unk_token; }

void BpeModel::initial_symbols(std::string_view piece, std::vector<int32_t>& out) const {
  const Impl& m = *impl_;
  out.clear();
  // tokenizers' BPE::merge_word: unknown characters become unk (fused when fuse_unk) or vanish.
  int32_t pending_unk = -1;
  auto add = [&](int32_t id) {
    if (id >= 0) {
      if (pending_unk >= 0) out.push_back(pending_unk);
      pending_unk = -1;
      out.push_back(id);
    } else if (m.unk_id >= 0) {
      if (pending_unk >= 0 && !m.fuse_unk) out.push_back(pending_unk);
      pending_unk = m.unk_id;
    } else if (!m.unk_token.empty()) {
      fail(ErrorKind::Format, "tokenizer.json: unk_token \"", m.unk_token, "\" is not in the vocabulary");
    }
  };
  if (m.byte_level) {
    for (unsigned char b : piece) add(m.byte_id[b]);
  } else {
    const auto* u = reinterpret_cast<const unsigned char*>(piece.data());
    size_t i = 0;
    while (i < piece.size()) {
      int len = 1;
      unicode::decode_utf8(u + i, len);
      add(m.vocab.find(piece.substr(i, static_cast<size_t>(len))));
      i += static_cast<size_t>(len);
    }
  }
  if (pending_unk >= 0) out.push_back(pending_unk);
}

namespace {

constexpr uint32_t kNoRank = UINT32_MAX;

// Lowest-rank-first merging over a small array: O(n^2) compares, O(n) map lookups.
void merge_quadratic(const detail::PairMap& mm, int32_t* sym, size_t& n) {
  if (n < 2) return;
  constexpr size_t kMax = 128;
  uint32_t rank[kMax];
  int32_t nid[kMax];
  auto look = [&](size_t i) {
    const auto* v = mm.find(sym[i], sym[i + 1]);
    rank[i] = v ? v->rank : kNoRank;
    nid[i] = v ? v->id : -1;
  };
  for (size_t i = 0; i + 1 < n; ++i) look(i);
  while (n > 1) {
    size_t best = 0;
    uint32_t br = rank[0];
    for (size_t i = 1; i + 1 < n; ++i)
      if (rank[i] < br) {
        br = rank[i];
        best = i;
      }
    if (br == kNoRank) break;
    sym[best] = nid[best];
    // Remove symbol best+1 and pair best (the pair best+1 shifts into its place).
    for (size_t i = best + 1; i + 1 < n; ++i) sym[i] = sym[i + 1];
    for (size_t i = best; i + 2 < n; ++i) {
      rank[i] = rank[i + 1];
      nid[i] = nid[i + 1];
    }
    --n;
    if (best > 0) look(best - 1);
    if (best + 1 < n) look(best);
  }
}

// tokenizers' Word::merge_all: linked symbols and a min-heap of (rank, position).
void merge_heap(const detail::PairMap& mm, std::vector<int32_t>& syms) {
  size_t n = syms.size();
  if (n < 2) return;
  struct Sym {
    int32_t c;
    int32_t prev, next;
    bool alive;
  };
  std::vector<Sym> s(n);
  for (size_t i = 0; i < n; ++i)
    s[i] = {syms[i], static_cast<int32_t>(i) - 1, i + 1 < n ? static_cast<int32_t>(i + 1) : -1, true};
  struct Entry {
    uint32_t rank;
    uint32_t pos;
    int32_t id;
    bool operator>(const Entry& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> q;
  for (size_t i = 0; i + 1 < n; ++i)
    if (const auto* v = mm.find(s[i].c, s[i + 1].c)) q.push({v->rank, static_cast<uint32_t>(i), v->id});
  while (!q.empty()) {
    Entry top = q.top();
    q.pop();
    Sym& cur = s[top.pos];
    if (!cur.alive || cur.next < 0) continue;
    Sym& right = s[cur.next];
    const auto* v = mm.find(cur.c, right.c);
    if (!v || v->id != top.id) continue;  // stale entry
    cur.c = top.id;
    right.alive = false;
    cur.next = right.next;
    if (right.next >= 0) s[right.next].prev = static_cast<int32_t>(top.pos);
    if (cur.prev >= 0)
      if (const auto* pv = mm.find(s[cur.prev].c, cur.c))
        q.push({pv->rank, static_cast<uint32_t>(cur.prev), pv->id});
    if (cur.next >= 0)
      if (const auto* nv = mm.find(cur.c, s[cur.next].c)) q.push({nv->rank, top.pos, nv->id});
  }
  size_t k = 0;
  for (size_t i = 0; i < n; ++i)
    if (s[i].alive) syms[k++] = s[i].c;
  syms.resize(k);
}

// ---- thread-local word cache -----------------------------------------------------------------

struct WordCache {
  static constexpr size_t kSlots = 1 << 15;
  static constexpr size_t kMaxEntries = kSlots / 2;
  static constexpr size_t kMaxKeyBytes = 1024;
  struct Slot {
    uint64_t hash = 0;
    uint32_t key_off = 0, key_len = 0;  // key_len == 0: empty
    uint32_t ids_off = 0, n_ids = 0;
  };
  uint64_t owner = 0;
  std::vector<Slot> slots;
  std::string keys;
  std::vector<int32_t> ids;
  size_t count = 0;

  void reset(uint64_t new_owner) {
    owner = new_owner;
    if (slots.empty()) slots.resize(kSlots);
    if (count) std::fill(slots.begin(), slots.end(), Slot{});
    keys.clear();
    ids.clear();
    count = 0;
  }
};

thread_local WordCache t_caches[2];

WordCache& cache_for(uint64_t serial) {
  WordCache* caches = t_caches;
  thread_local unsigned victim = 0;
  for (int k = 0; k < 2; ++k)
    if (caches[k].owner == serial) return caches[k];
  WordCache& c = caches[victim];
  victim ^= 1;
  c.reset(serial);
  return c;
}

}  // namespace

void BpeModel::clear_thread_cache() {
  for (auto& c : t_caches) {
    if (!c.slots.empty()) c.reset(0);
  }
}

void BpeModel::merge(std::vector<int32_t>& symbols, MergeAlgorithm algo) const {
  if (algo == MergeAlgorithm::Auto) algo = symbols.size() <= 64 ? MergeAlgorithm::Quadratic : MergeAlgorithm::Heap;
  if (algo == MergeAlgorithm::Quadratic && symbols.size() <= 128) {
    size_t n = symbols.size();
    merge_quadratic(impl_->merge_map, symbols.data(), n);
    symbols.resize(n);
  } else {
    merge_heap(impl_->merge_map, symbols);
  }
}

void BpeModel::encode_piece(std::string_view piece, std::vector<int32_t>& out) const {
  const Impl& m = *impl_;
  if (piece.empty()) return;
  if (m.byte_level && piece.size() == 1) {
    int32_t id = m.byte_id[static_cast<unsigned char>(piece[0])];
    if (id >= 0) {
      out.push_back(id);
      return;
    }
  }
  if (m.ignore_merges) {
    int32_t id = m.byte_level ? m.bytes_vocab.find(piece) : m.vocab.find(piece);
    if (id >= 0) {
      out.push_back(id);
      return;
    }
  }
  const bool cacheable = piece.size() <= WordCache::kMaxKeyBytes;
  WordCache* cache = nullptr;
  uint64_t h = 0;
  size_t slot = 0;
  if (cacheable) {
    cache = &cache_for(m.serial);
    h = detail::hash_bytes(piece);
    const size_t mask = WordCache::kSlots - 1;
    for (slot = h & mask;; slot = (slot + 1) & mask) {
      const auto& s = cache->slots[slot];
      if (s.key_len == 0) break;
      if (s.hash == h && s.key_len == piece.size() &&
          std::memcmp(cache->keys.data() + s.key_off, piece.data(), piece.size()) == 0) {
        out.insert(out.end(), cache->ids.begin() + s.ids_off, cache->ids.begin() + s.ids_off + s.n_ids);
        return;
      }
    }
  }
  size_t start = out.size();
  if (m.byte_level && piece.size() <= 128 && m.unk_id < 0) {
    int32_t sym[128];
    size_t n = 0;
    for (unsigned char b : piece)
      if (m.byte_id[b] >= 0) sym[n++] = m.byte_id[b];
    if (n <= 64) {
      merge_quadratic(m.merge_map, sym, n);
      out.insert(out.end(), sym, sym + n);
    } else {
      std::vector<int32_t> v(sym, sym + n);
      merge_heap(m.merge_map, v);
      out.insert(out.end(), v.begin(), v.end());
    }
  } else {
    thread_local std::vector<int32_t> syms;
    initial_symbols(piece, syms);
    merge(syms);
    out.insert(out.end(), syms.begin(), syms.end());
  }
  if (cache) {
    if (cache->count >= WordCache::kMaxEntries || cache->keys.size() > (8u << 20)) {
      cache->reset(m.serial);
      const size_t mask = WordCache::kSlots - 1;
      for (slot = h & mask; cache->slots[slot].key_len != 0; slot = (slot + 1) & mask) {
      }
    }
    auto& s = cache->slots[slot];
    s.hash = h;
    s.key_off = static_cast<uint32_t>(cache->keys.size());
    s.key_len = static_cast<uint32_t>(piece.size());
    s.ids_off = static_cast<uint32_t>(cache->ids.size());
    s.n_ids = static_cast<uint32_t>(out.size() - start);
    cache->keys.append(piece);
    cache->ids.insert(cache->ids.end(), out.begin() + start, out.end());
    ++cache->count;
  }
}

}  // namespace qs
