#include "qiusuo/tokenizer/trainer.h"

#include <algorithm>
#include <fstream>
#include <queue>
#include <unordered_map>

#include "qiusuo/core/error.h"
#include "qiusuo/tokenizer/flat_map.h"
#include "qiusuo/tokenizer/unicode.h"

namespace qs {

struct BpeTrainer::State {
  PreTokenizer pre;
  AddedVocabulary specials;
  detail::StringIdMap word_index;  // word bytes -> index into words/counts
  std::vector<std::string> words;
  std::vector<int64_t> counts;
};

BpeTrainer::BpeTrainer(BpeTrainerOptions options) : opts_(std::move(options)), state_(std::make_unique<State>()) {
  const auto& o = opts_;
  std::vector<AddedToken> specials;
  for (size_t i = 0; i < o.special_tokens.size(); ++i) {
    const std::string& s = o.special_tokens[i];
    if (s.empty()) fail("tokenizer training: special token ", i, " is empty");
    if (unicode::find_invalid_utf8(s) != std::string::npos)
      fail("tokenizer training: special token ", i, " is not valid UTF-8");
    for (size_t j = 0; j < i; ++j)
      if (o.special_tokens[j] == s) fail("tokenizer training: special token \"", s, "\" is listed twice");
    AddedToken t;
    t.id = static_cast<int32_t>(i);
    t.content = s;
    t.normalized = false;
    t.special = true;
    specials.push_back(std::move(t));
  }
  for (const auto* name : {&o.bos_token, &o.eos_token, &o.pad_token})
    if (!name->empty() && std::find(o.special_tokens.begin(), o.special_tokens.end(), *name) == o.special_tokens.end())
      fail("tokenizer training: \"", *name, "\" (bos/eos/pad token) must be one of the special tokens");
  int64_t min_size = static_cast<int64_t>(o.special_tokens.size()) + 256;
  if (o.vocab_size < min_size)
    fail("tokenizer training: vocab_size ", o.vocab_size, " is smaller than the ", o.special_tokens.size(),
         " special tokens + 256 byte tokens");
  state_->pre = PreTokenizer::from_json(o.pre_tokenizer);
  if (!state_->pre.byte_level()) fail("tokenizer training: the pre-tokenizer must end with ByteLevel");
  state_->specials = AddedVocabulary(std::move(specials));
}

BpeTrainer::~BpeTrainer() = default;

size_t BpeTrainer::unique_words() const { return state_->words.size(); }

void BpeTrainer::feed(std::string_view text) {
  size_t bad = unicode::find_invalid_utf8(text);
  if (bad != std::string_view::npos)
    fail("tokenizer training: text is not valid UTF-8 at byte offset ", bad);
  struct Counter final : PieceSink {
    State& st;
    explicit Counter(State& s) : st(s) {}
    void piece(std::string_view p) override {
      int32_t idx = st.word_index.find(p);
      if (idx < 0) {
        idx = static_cast<int32_t>(st.words.size());
        st.word_index.insert(p, idx);
        st.words.emplace_back(p);
        st.counts.push_back(0);
      }
      ++st.counts[idx];
    }
  } counter(*state_);
  state_->specials.split(text, [&](std::string_view piece, int32_t id) {
    if (id < 0) state_->pre.pre_tokenize(piece, counter);
  });
}

void BpeTrainer::feed_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail(ErrorKind::NotFound, "tokenizer training: cannot open ", path);
  constexpr size_t kBlock = 4 << 20;
  std::string buf;
  std::vector<char> block(kBlock);
  size_t fed = 0;  // bytes of the file already fed (for error offsets)
  auto feed_part = [&](size_t n) {
    try {
      feed(std::string_view(buf).substr(0, n));
    } catch (const Error& e) {
      throw Error(e.kind(), path + " (chunk at byte " + std::to_string(fed) + "): " + e.what());
    }
    fed += n;
    buf.erase(0, n);
  };
  while (f) {
    f.read(block.data(), static_cast<std::streamsize>(block.size()));
    buf.append(block.data(), static_cast<size_t>(f.gcount()));
    if (buf.size() < kBlock) continue;
    // Cut after a '\n' followed by an ASCII letter or digit: no piece of the DeepSeek (or GPT-2)
    // pre-tokenizer spans such a boundary, so counting is the same as on the whole file.
    size_t cut = 0;
    for (size_t i = buf.size() - 1; i > 0; --i) {
      unsigned char c = static_cast<unsigned char>(buf[i]);
      if (buf[i - 1] == '\n' && (((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || (c >= '0' && c <= '9'))) {
        cut = i;
        break;
      }
    }
    if (cut == 0 && buf.size() >= 4 * kBlock) {  // no such place: cut after any newline / char
      cut = buf.rfind('\n');
      cut = cut == std::string::npos ? buf.size() : cut + 1;
      while (cut < buf.size() && (static_cast<unsigned char>(buf[cut]) & 0xC0) == 0x80) --cut;
    }
    if (cut > 0) feed_part(cut);
  }
  if (f.bad()) fail(ErrorKind::Io, "tokenizer training: cannot read ", path);
  if (!buf.empty()) feed_part(buf.size());
}

namespace {

struct PairInfo {
  int64_t count = 0;
  std::vector<uint32_t> where;  // words that contain (or once contained) the pair
};

struct HeapEntry {
  int64_t count;
  uint64_t pair;
};
struct HeapLess {
  // Max count first; on ties the smaller (left, right) pair first.
  bool operator()(const HeapEntry& x, const HeapEntry& y) const {
    return x.count != y.count ? x.count < y.count : x.pair > y.pair;
  }
};

inline uint64_t pkey(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

}  // namespace

Tokenizer BpeTrainer::train() {
  const auto& o = opts_;
  State& st = *state_;
  // Initial vocabulary: special tokens, then the byte alphabet sorted by character.
  std::vector<std::string> id_str;
  std::unordered_map<std::string, int32_t> str_id;
  for (const auto& s : o.special_tokens) {
    str_id.emplace(s, static_cast<int32_t>(id_str.size()));
    id_str.push_back(s);
  }
  std::vector<std::pair<uint32_t, int>> alphabet;
  for (int b = 0; b < 256; ++b) alphabet.emplace_back(byte_level::byte_to_char(static_cast<uint8_t>(b)), b);
  std::sort(alphabet.begin(), alphabet.end());
  int32_t byte_tok[256];
  for (const auto& [cp, b] : alphabet) {
    std::string s;
    unicode::append_utf8(s, cp);
    int32_t id = static_cast<int32_t>(id_str.size());
    auto [it, inserted] = str_id.emplace(s, id);
    if (inserted) id_str.push_back(s);
    byte_tok[b] = it->second;
  }

  // Words as symbol sequences.
  const size_t nw = st.words.size();
  std::vector<std::vector<int32_t>> syms(nw);
  for (size_t w = 0; w < nw; ++w) {
    syms[w].reserve(st.words[w].size());
    for (unsigned char c : st.words[w]) syms[w].push_back(byte_tok[c]);
  }

  std::unordered_map<uint64_t, PairInfo> pairs;
  pairs.reserve(1 << 16);
  for (size_t w = 0; w < nw; ++w) {
    const auto& s = syms[w];
    for (size_t i = 0; i + 1 < s.size(); ++i) {
      PairInfo& p = pairs[pkey(s[i], s[i + 1])];
      p.count += st.counts[w];
      if (p.where.empty() || p.where.back() != w) p.where.push_back(static_cast<uint32_t>(w));
    }
  }
  std::priority_queue<HeapEntry, std::vector<HeapEntry>, HeapLess> heap;
  for (const auto& [k, p] : pairs)
    if (p.count > 0) heap.push({p.count, k});

  std::vector<std::pair<int32_t, int32_t>> merges;
  std::vector<uint32_t> stamp(nw, UINT32_MAX);
  std::vector<uint64_t> before, after, increased;
  const size_t target = static_cast<size_t>(o.vocab_size);
  uint32_t merge_no = 0;
  while (id_str.size() < target && !heap.empty()) {
    HeapEntry top = heap.top();
    heap.pop();
    auto it = pairs.find(top.pair);
    if (it == pairs.end() || it->second.count <= 0) continue;
    if (it->second.count != top.count) {  // stale entry: requeue with the current count
      heap.push({it->second.count, top.pair});
      continue;
    }
    if (top.count < std::max<int64_t>(o.min_frequency, 1)) break;
    const int32_t a = static_cast<int32_t>(top.pair >> 32), b = static_cast<int32_t>(top.pair & 0xFFFFFFFFu);
    std::string merged = id_str[a] + id_str[b];
    int32_t nid;
    auto sit = str_id.find(merged);
    if (sit != str_id.end()) {
      nid = sit->second;  // the same string from another pair: reuse its id (as tokenizers does)
    } else {
      nid = static_cast<int32_t>(id_str.size());
      str_id.emplace(merged, nid);
      id_str.push_back(std::move(merged));
    }
    merges.emplace_back(a, b);

    std::vector<uint32_t> where = std::move(it->second.where);
    increased.clear();
    for (uint32_t w : where) {
      if (stamp[w] == merge_no) continue;
      stamp[w] = merge_no;
      auto& s = syms[w];
      bool found = false;
      for (size_t i = 0; i + 1 < s.size(); ++i)
        if (s[i] == a && s[i + 1] == b) {
          found = true;
          break;
        }
      if (!found) continue;
      before.clear();
      for (size_t i = 0; i + 1 < s.size(); ++i) before.push_back(pkey(s[i], s[i + 1]));
      size_t k = 0;
      for (size_t i = 0; i < s.size(); ++i) {
        if (i + 1 < s.size() && s[i] == a && s[i + 1] == b) {
          s[k++] = nid;
          ++i;
        } else {
          s[k++] = s[i];
        }
      }
      s.resize(k);
      after.clear();
      for (size_t i = 0; i + 1 < s.size(); ++i) after.push_back(pkey(s[i], s[i + 1]));
      std::sort(before.begin(), before.end());
      std::sort(after.begin(), after.end());
      const int64_t c = st.counts[w];
      size_t x = 0, y = 0;
      while (x < before.size() || y < after.size()) {
        uint64_t key;
        if (y >= after.size() || (x < before.size() && before[x] < after[y]))
          key = before[x];
        else
          key = after[y];
        int64_t nb = 0, na = 0;
        while (x < before.size() && before[x] == key) ++x, ++nb;
        while (y < after.size() && after[y] == key) ++y, ++na;
        if (na == nb) continue;
        PairInfo& p = pairs[key];
        p.count += (na - nb) * c;
        if (nb == 0) p.where.push_back(w);
        if (na > nb) increased.push_back(key);
      }
    }
    pairs.erase(top.pair);
    std::sort(increased.begin(), increased.end());
    increased.erase(std::unique(increased.begin(), increased.end()), increased.end());
    for (uint64_t key : increased) {
      auto pit = pairs.find(key);
      if (pit != pairs.end() && pit->second.count > 0) heap.push({pit->second.count, key});
    }
    ++merge_no;
  }

  // tokenizer.json
  using json = nlohmann::json;
  json vocab = json::object();
  for (size_t i = 0; i < id_str.size(); ++i) vocab[id_str[i]] = static_cast<int32_t>(i);
  json merges_j = json::array();
  for (const auto& [a, b] : merges) merges_j.push_back(id_str[a] + " " + id_str[b]);
  json added = json::array();
  for (size_t i = 0; i < o.special_tokens.size(); ++i)
    added.push_back({{"id", static_cast<int32_t>(i)},
                     {"content", o.special_tokens[i]},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", false},
                     {"special", true}});
  json tj = {{"version", "1.0"},
             {"truncation", nullptr},
             {"padding", nullptr},
             {"added_tokens", added},
             {"normalizer", {{"type", "Sequence"}, {"normalizers", json::array()}}},
             {"pre_tokenizer", o.pre_tokenizer},
             {"post_processor", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", false}, {"use_regex", true}}},
             {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}}},
             {"model",
              {{"type", "BPE"},
               {"dropout", nullptr},
               {"unk_token", nullptr},
               {"continuing_subword_prefix", nullptr},
               {"end_of_word_suffix", nullptr},
               {"fuse_unk", false},
               {"byte_fallback", false},
               {"vocab", std::move(vocab)},
               {"merges", std::move(merges_j)}}}};

  // tokenizer_config.json (transformers, LlamaTokenizerFast semantics for add_bos/eos_token).
  auto tok_or_null = [](const std::string& s) { return s.empty() ? json(nullptr) : json(s); };
  json decoder = json::object();
  for (size_t i = 0; i < o.special_tokens.size(); ++i)
    decoder[std::to_string(i)] = {{"content", o.special_tokens[i]}, {"lstrip", false}, {"normalized", false},
                                  {"rstrip", false},                {"single_word", false}, {"special", true}};
  json cfg = {{"add_bos_token", o.add_bos_token && !o.bos_token.empty()},
              {"add_eos_token", o.add_eos_token && !o.eos_token.empty()},
              {"added_tokens_decoder", decoder},
              {"bos_token", tok_or_null(o.bos_token)},
              {"eos_token", tok_or_null(o.eos_token)},
              {"pad_token", tok_or_null(o.pad_token)},
              {"unk_token", nullptr},
              {"clean_up_tokenization_spaces", false},
              {"legacy", true},
              {"model_max_length", o.model_max_length},
              {"sp_model_kwargs", json::object()},
              {"tokenizer_class", "LlamaTokenizerFast"}};
  if (!o.chat_template.empty()) cfg["chat_template"] = o.chat_template;
  return Tokenizer::from_json(tj, cfg);
}

Tokenizer train_bpe(const std::vector<std::string>& files, const BpeTrainerOptions& options) {
  BpeTrainer t(options);
  for (const auto& f : files) t.feed_file(f);
  return t.train();
}

Tokenizer train_bpe_from_texts(const std::vector<std::string>& texts, const BpeTrainerOptions& options) {
  BpeTrainer t(options);
  for (const auto& s : texts) t.feed(s);
  return t.train();
}

}  // namespace qs
