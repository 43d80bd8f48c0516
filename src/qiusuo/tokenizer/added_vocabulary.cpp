#include "qiusuo/tokenizer/added_vocabulary.h"

#include <algorithm>
#include <cstring>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "qiusuo/tokenizer/flat_map.h"
#include "qiusuo/tokenizer/unicode.h"

namespace qs {

struct AddedVocabulary::Trie {
  struct Node {
    int32_t token = -1;  // index into tokens_, or -1
  };
  std::vector<Node> nodes{Node{}};
  detail::PairMap edges;  // (node, byte) -> child node in .id
  bool first[256] = {};
  int single_first = -1;  // the only first byte of all tokens, or -1 (then memchr finds candidates)
  bool empty = true;

  void finish() {
    int n = 0, b = -1;
    for (int k = 0; k < 256; ++k)
      if (first[k]) ++n, b = k;
    single_first = n == 1 ? b : -1;
  }

  void add(const std::string& s, int32_t token_index) {
    if (s.empty()) return;
    empty = false;
    first[static_cast<unsigned char>(s[0])] = true;
    int32_t node = 0;
    for (unsigned char b : s) {
      const auto* e = edges.find(node, b);
      if (e) {
        node = e->id;
      } else {
        int32_t child = static_cast<int32_t>(nodes.size());
        nodes.push_back(Node{});
        edges.insert(node, b, {0, child});
        node = child;
      }
    }
    if (nodes[node].token < 0) nodes[node].token = token_index;  // first pattern wins
  }

  // Longest token starting at i: returns its length (0 if none) and sets token index.
  size_t longest_at(std::string_view s, size_t i, int32_t& token) const {
    int32_t node = 0;
    size_t best = 0;
    for (size_t k = i; k < s.size(); ++k) {
      const auto* e = edges.find(node, static_cast<unsigned char>(s[k]));
      if (!e) break;
      node = e->id;
      if (nodes[node].token >= 0) {
        best = k + 1 - i;
        token = nodes[node].token;
      }
    }
    return best;
  }
};

AddedVocabulary::AddedVocabulary(std::vector<AddedToken> tokens) : tokens_(std::move(tokens)) {
  auto raw = std::make_shared<Trie>();
  auto norm = std::make_shared<Trie>();
  // tokenizers builds its automata from the special tokens first, then the others.
  for (int pass = 0; pass < 2; ++pass)
    for (size_t i = 0; i < tokens_.size(); ++i) {
      const AddedToken& t = tokens_[i];
      if (t.special != (pass == 0)) continue;
      (t.normalized ? norm : raw)->add(t.content, static_cast<int32_t>(i));
    }
  raw->finish();
  norm->finish();
  raw_ = raw;
  normalized_ = norm;
}

namespace {

// Rust regex \w: Alphabetic, Mark, Decimal_Number, Connector_Punctuation, Join_Control.
bool is_word_char(uint32_t cp) {
  struct Re {
    pcre2_code* code = nullptr;
    Re() {
      int err;
      PCRE2_SIZE off;
      const char* pat = "[\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\p{Join_Control}]";
      code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pat), PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP,
                           &err, &off, nullptr);
    }
  };
  static const Re re;
  if (!re.code) return false;
  std::string s;
  unicode::append_utf8(s, cp);
  pcre2_match_data* md = pcre2_match_data_create(1, nullptr);
  int rc = pcre2_match(re.code, reinterpret_cast<PCRE2_SPTR>(s.data()), s.size(), 0, PCRE2_ANCHORED, md, nullptr);
  pcre2_match_data_free(md);
  return rc >= 0;
}

uint32_t last_char(std::string_view s, size_t& start) {
  size_t i = s.size();
  do {
    --i;
  } while (i > 0 && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80);
  int len = 1;
  start = i;
  return unicode::decode_utf8(reinterpret_cast<const unsigned char*>(s.data()) + i, len);
}

bool is_space(uint32_t cp) { return unicode::char_class(cp) & unicode::kWS; }

struct Split {
  size_t start, end;
  int32_t id;
};

// tokenizers' AddedVocabulary::find_matches over one sentence.
void find_matches(const std::vector<AddedToken>& tokens, const AddedVocabulary::Trie& trie, std::string_view s,
                  std::vector<Split>& out) {
  out.clear();
  size_t start_offset = 0;
  size_t i = 0;
  const unsigned char* u = reinterpret_cast<const unsigned char*>(s.data());
  while (i < s.size()) {
    if (trie.single_first >= 0) {
      const void* hit = std::memchr(s.data() + i, trie.single_first, s.size() - i);
      if (!hit) break;
      i = static_cast<size_t>(static_cast<const char*>(hit) - s.data());
    } else if (!trie.first[u[i]]) {
      ++i;
      continue;
    }
    int32_t ti = -1;
    size_t len = trie.longest_at(s, i, ti);
    if (!len) {
      ++i;
      continue;
    }
    size_t start = i, stop = i + len;
    i = stop;  // non-overlapping matches, as aho-corasick's find_iter
    const AddedToken& t = tokens[ti];
    if (t.single_word) {
      bool start_space = true, stop_space = true;
      if (start > 0) {
        size_t p;
        start_space = !is_word_char(last_char(s.substr(0, start), p));
      }
      if (stop < s.size()) {
        int l = 1;
        stop_space = !is_word_char(unicode::decode_utf8(u + stop, l));
      }
      if (!start_space || !stop_space) continue;
    }
    if (t.lstrip) {
      size_t newstart = start;
      while (newstart > 0) {
        size_t p;
        uint32_t cp = last_char(s.substr(0, newstart), p);
        if (!is_space(cp)) break;
        newstart = p;
      }
      start = std::max(newstart, start_offset);
    }
    if (t.rstrip) {
      while (stop < s.size()) {
        int l = 1;
        uint32_t cp = unicode::decode_utf8(u + stop, l);
        if (!is_space(cp)) break;
        stop += static_cast<size_t>(l);
      }
    }
    if (start_offset < start) out.push_back({start_offset, start, -1});
    out.push_back({start, stop, t.id});
    start_offset = stop;
  }
  if (start_offset < s.size()) out.push_back({start_offset, s.size(), -1});
}

}  // namespace

void AddedVocabulary::split(std::string_view text,
                            const std::function<void(std::string_view, int32_t)>& emit) const {
  if (text.empty()) return;
  if (tokens_.empty()) {
    emit(text, -1);
    return;
  }
  std::vector<Split> first, second;
  if (raw_->empty)
    first.push_back({0, text.size(), -1});
  else
    find_matches(tokens_, *raw_, text, first);
  for (const Split& sp : first) {
    if (sp.end <= sp.start) continue;
    std::string_view piece = text.substr(sp.start, sp.end - sp.start);
    if (sp.id >= 0 || normalized_->empty) {
      emit(piece, sp.id);
      continue;
    }
    find_matches(tokens_, *normalized_, piece, second);
    for (const Split& s2 : second)
      if (s2.end > s2.start) emit(piece.substr(s2.start, s2.end - s2.start), s2.id);
  }
}

}  // namespace qs
