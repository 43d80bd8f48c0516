#include "qiusuo/tokenizer/pre_tokenizer.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "qiusuo/core/error.h"
#include "qiusuo/tokenizer/unicode.h"

namespace qs {

// ---- the DeepSeek-V3 pre-tokenizer (exactly as stored in its tokenizer.json) -----------------

namespace {

const char* const kDeepSeekStage1 = "\\p{N}{1,3}";
const char* const kDeepSeekStage2 = "[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+";
const char* const kDeepSeekStage3 =
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+|"
    " ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+";
const char* const kGpt2Regex =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
const char* const kWhitespaceRegex = "\\w+|[^\\w\\s]+";

}  // namespace

nlohmann::json PreTokenizer::deepseek_v3_json() {
  auto split = [](const char* re) {
    return nlohmann::json{{"type", "Split"},
                          {"pattern", {{"Regex", re}}},
                          {"behavior", "Isolated"},
                          {"invert", false}};
  };
  return nlohmann::json{
      {"type", "Sequence"},
      {"pretokenizers",
       nlohmann::json::array({split(kDeepSeekStage1), split(kDeepSeekStage2), split(kDeepSeekStage3),
                              nlohmann::json{{"type", "ByteLevel"},
                                             {"add_prefix_space", false},
                                             {"trim_offsets", true},
                                             {"use_regex", false}}})}};
}

// ---- regex translation -----------------------------------------------------------------------

namespace {

// General category group named by a \p{..} / \pX property, or 0.
uint8_t property_group(std::string_view name) {
  if (name == "L" || name == "Letter") return unicode::kL;
  if (name == "M" || name == "Mark" || name == "Combining_Mark") return unicode::kM;
  if (name == "N" || name == "Number") return unicode::kN;
  if (name == "P" || name == "Punctuation" || name == "punct") return unicode::kP;
  if (name == "S" || name == "Symbol") return unicode::kS;
  return 0;
}

std::string addition_ranges(uint8_t group) {
  std::string out;
  char buf[48];
  for (uint32_t i = 0; i < unicode::kAdditionCount; ++i) {
    const auto& r = unicode::kAdditions[i];
    if (r.flag != group) continue;
    if (r.first == r.last)
      std::snprintf(buf, sizeof(buf), "\\x{%X}", r.first);
    else
      std::snprintf(buf, sizeof(buf), "\\x{%X}-\\x{%X}", r.first, r.last);
    out += buf;
  }
  return out;
}

}  // namespace

std::string translate_regex_for_pcre2(std::string_view p) {
  static const char kSpace[] = "\\p{White_Space}";
  static const char kWordItems[] = "\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\p{Join_Control}";
  std::string out;
  out.reserve(p.size() + 32);
  bool in_class = false;
  for (size_t i = 0; i < p.size(); ++i) {
    char c = p[i];
    if (c == '\\' && i + 1 < p.size()) {
      char e = p[i + 1];
      ++i;
      switch (e) {
        case 's':
          out += kSpace;
          continue;
        case 'S':
          out += "\\P{White_Space}";
          continue;
        case 'w':
          if (in_class) {
            out += kWordItems;
          } else {
            out += "[";
            out += kWordItems;
            out += "]";
          }
          continue;
        case 'W':
          if (in_class) fail(ErrorKind::Unsupported, "regex \\W inside a character class is not supported: ", p);
          out += "[^";
          out += kWordItems;
          out += "]";
          continue;
        case 'h':  // Oniguruma: \h is a hexadecimal digit
          out += in_class ? "0-9a-fA-F" : "[0-9a-fA-F]";
          continue;
        case 'H':
          if (in_class) fail(ErrorKind::Unsupported, "regex \\H inside a character class is not supported: ", p);
          out += "[^0-9a-fA-F]";
          continue;
        case 'p':
        case 'P': {
          // \pX or \p{Name} / \p{^Name}: general category groups get the Unicode 15.0-16.0
          // additions that PCRE2's older tables lack.
          size_t start = i + 1, end = start;
          std::string_view name;
          if (start < p.size() && p[start] == '{') {
            end = p.find('}', start);
            if (end == std::string_view::npos) {
              out += '\\';
              out += e;
              continue;
            }
            name = p.substr(start + 1, end - start - 1);
            ++end;
          } else if (start < p.size()) {
            name = p.substr(start, 1);
            end = start + 1;
          }
          bool negated = e == 'P';
          if (!name.empty() && name[0] == '^') {
            negated = !negated;
            name.remove_prefix(1);
          }
          uint8_t group = property_group(name);
          if (!group) {
            out += '\\';
            out += e;
            continue;
          }
          std::string item = std::string("\\p{") + std::string(name) + "}" + addition_ranges(group);
          if (!negated)
            out += in_class ? item : "[" + item + "]";
          else if (!in_class)
            out += "[^" + item + "]";
          else
            fail(ErrorKind::Unsupported, "regex negated property inside a character class is not supported: ", p);
          i = end - 1;
          continue;
        }
        default:
          out += '\\';
          out += e;
          continue;
      }
    }
    if (!in_class && c == '[') {
      in_class = true;
      out += c;
      // A ']' right after '[' or '[^' is a literal.
      if (i + 1 < p.size() && p[i + 1] == '^') {
        out += '^';
        ++i;
      }
      if (i + 1 < p.size() && p[i + 1] == ']') {
        out += ']';
        ++i;
      }
      continue;
    }
    if (in_class && c == ']') in_class = false;
    out += c;
  }
  return out;
}

// ---- PCRE2 wrapper ---------------------------------------------------------------------------

namespace {

struct MatchScratch {
  pcre2_match_data* md = nullptr;
  pcre2_match_context* mctx = nullptr;
  pcre2_jit_stack* jit_stack = nullptr;
  MatchScratch() {
    md = pcre2_match_data_create(1, nullptr);
    mctx = pcre2_match_context_create(nullptr);
    jit_stack = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, nullptr);
    if (jit_stack) pcre2_jit_stack_assign(mctx, nullptr, jit_stack);
  }
  ~MatchScratch() {
    pcre2_match_data_free(md);
    pcre2_match_context_free(mctx);
    if (jit_stack) pcre2_jit_stack_free(jit_stack);
  }
};

MatchScratch& scratch() {
  thread_local MatchScratch s;
  return s;
}

std::string pcre2_message(int code) {
  PCRE2_UCHAR buf[256];
  int n = pcre2_get_error_message(code, buf, sizeof(buf));
  return n > 0 ? std::string(reinterpret_cast<char*>(buf), static_cast<size_t>(n)) : "unknown error";
}

class Regex {
 public:
  Regex(const std::string& pattern, bool literal) : pattern_(pattern) {
    int err = 0;
    PCRE2_SIZE err_off = 0;
    std::string translated = literal ? pattern : translate_regex_for_pcre2(pattern);
    uint32_t opts = literal ? (PCRE2_UTF | PCRE2_LITERAL) : (PCRE2_UTF | PCRE2_UCP);
    code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()), translated.size(), opts,
                          &err, &err_off, nullptr);
    if (!code_)
      fail(ErrorKind::Format, "cannot compile pre-tokenizer regex /", pattern, "/: ", pcre2_message(err),
           " at offset ", err_off);
    pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE);  // falls back to the interpreter on failure
  }
  ~Regex() { pcre2_code_free(code_); }
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Calls f(start, end) for each match, with the iteration rules of the Rust `onig` crate that
  // Hugging Face tokenizers uses (an empty match right after the previous match is skipped).
  template <typename F>
  void find_iter(std::string_view s, F&& f) const {
    MatchScratch& sc = scratch();
    size_t pos = 0;
    bool have_last = false;
    size_t last_end = 0;
    const auto* subj = reinterpret_cast<PCRE2_SPTR>(s.data());
    while (pos <= s.size()) {
      int rc = pcre2_match(code_, subj, s.size(), pos, PCRE2_NO_UTF_CHECK, sc.md, sc.mctx);
      if (rc == PCRE2_ERROR_NOMATCH) break;
      if (rc < 0)
        fail(ErrorKind::Internal, "regex /", pattern_, "/ failed: ", pcre2_message(rc));
      PCRE2_SIZE* ov = pcre2_get_ovector_pointer(sc.md);
      size_t ms = ov[0], me = ov[1];
      if (ms == me && have_last && last_end == me) {
        if (pos >= s.size()) break;
        int len = 1;
        unsigned char b = static_cast<unsigned char>(s[pos]);
        len = b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
        pos += static_cast<size_t>(len);
        continue;
      }
      pos = me;
      have_last = true;
      last_end = me;
      f(ms, me);
    }
  }

 private:
  std::string pattern_;
  pcre2_code* code_ = nullptr;
};

enum class Behavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

Behavior parse_behavior(const nlohmann::json& j, const char* where) {
  if (!j.is_string()) fail(ErrorKind::Format, where, ": \"behavior\" must be a string");
  std::string b = j.get<std::string>();
  if (b == "Removed") return Behavior::Removed;
  if (b == "Isolated") return Behavior::Isolated;
  if (b == "MergedWithPrevious") return Behavior::MergedWithPrevious;
  if (b == "MergedWithNext") return Behavior::MergedWithNext;
  if (b == "Contiguous") return Behavior::Contiguous;
  fail(ErrorKind::Unsupported, where, ": unsupported split behavior \"", b, "\"");
}

enum class CharPred { Numeric, WhiteSpace, Punctuation };

struct Span {
  size_t start, end;
  bool flag;  // is_match before behavior, "remove" after
};

// SplitDelimiterBehavior, exactly as tokenizers' NormalizedString::split applies it.
std::vector<Span> apply_behavior(std::vector<Span> matches, Behavior behavior) {
  std::vector<Span> out;
  switch (behavior) {
    case Behavior::Isolated:
      for (auto& m : matches) out.push_back({m.start, m.end, false});
      return out;
    case Behavior::Removed:
      return matches;
    case Behavior::Contiguous: {
      bool prev = false;
      for (auto& m : matches) {
        if (m.flag == prev && !out.empty())
          out.back().end = m.end;
        else
          out.push_back({m.start, m.end, false});
        prev = m.flag;
      }
      return out;
    }
    case Behavior::MergedWithPrevious: {
      bool prev = false;
      for (auto& m : matches) {
        if (m.flag && !prev && !out.empty())
          out.back().end = m.end;
        else
          out.push_back({m.start, m.end, false});
        prev = m.flag;
      }
      return out;
    }
    case Behavior::MergedWithNext: {
      bool prev = false;
      for (size_t k = matches.size(); k-- > 0;) {
        auto& m = matches[k];
        if (m.flag && !prev && !out.empty())
          out.back().start = m.start;
        else
          out.push_back({m.start, m.end, false});
        prev = m.flag;
      }
      std::reverse(out.begin(), out.end());
      return out;
    }
  }
  return out;
}

bool char_pred(CharPred pred, uint32_t cp) {
  uint8_t k = unicode::char_class(cp);
  switch (pred) {
    case CharPred::Numeric:
      return k & unicode::kN;
    case CharPred::WhiteSpace:
      return k & unicode::kWS;
    case CharPred::Punctuation:
      return (cp < 0x80 && (k & (unicode::kP | unicode::kS))) || (k & unicode::kP);
  }
  return false;
}

}  // namespace

struct PreTokenizer::Impl {
  struct Stage {
    enum Kind { kRegexSplit, kCharSplit, kByteLevel } kind = kRegexSplit;
    std::shared_ptr<Regex> regex;
    std::string pattern;  // as written in the JSON (for fast-path detection)
    bool literal = false;
    CharPred pred = CharPred::Numeric;
    Behavior behavior = Behavior::Isolated;
    bool invert = false;
    bool add_prefix_space = false;
    bool use_regex = false;
  };
  std::vector<Stage> stages;
  bool byte_level = false;
  bool deepseek = false;
  std::shared_ptr<Regex> gpt2;  // for ByteLevel(use_regex)

  void add(const nlohmann::json& j);
  void run_generic(std::string_view text, PieceSink& sink) const;
};

void PreTokenizer::Impl::add(const nlohmann::json& j) {
  if (j.is_null()) return;
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string())
    fail(ErrorKind::Format, "tokenizer.json: pre_tokenizer must be an object with a \"type\" string");
  std::string type = j["type"].get<std::string>();
  auto get_bool = [&](const char* key, bool def) {
    if (!j.contains(key) || j[key].is_null()) return def;
    if (!j[key].is_boolean())
      fail(ErrorKind::Format, "tokenizer.json: pre_tokenizer ", type, ".", key, " must be a boolean");
    return j[key].get<bool>();
  };
  if (!stages.empty() && stages.back().kind == Stage::kByteLevel)
    fail(ErrorKind::Unsupported,
         "tokenizer.json: pre-tokenizers after ByteLevel in a Sequence are not supported (", type, ")");
  if (type == "Sequence") {
    if (!j.contains("pretokenizers") || !j["pretokenizers"].is_array())
      fail(ErrorKind::Format, "tokenizer.json: pre_tokenizer Sequence needs a \"pretokenizers\" array");
    for (const auto& sub : j["pretokenizers"]) add(sub);
    return;
  }
  Stage st;
  if (type == "Split") {
    if (!j.contains("pattern") || !j["pattern"].is_object())
      fail(ErrorKind::Format, "tokenizer.json: pre_tokenizer Split needs a \"pattern\" object");
    const auto& pat = j["pattern"];
    if (pat.contains("Regex") && pat["Regex"].is_string()) {
      st.pattern = pat["Regex"].get<std::string>();
    } else if (pat.contains("String") && pat["String"].is_string()) {
      st.pattern = pat["String"].get<std::string>();
      st.literal = true;
    } else {
      fail(ErrorKind::Format, "tokenizer.json: Split pattern must be {\"Regex\": ...} or {\"String\": ...}");
    }
    st.kind = Stage::kRegexSplit;
    if (!(st.literal && st.pattern.empty())) st.regex = std::make_shared<Regex>(st.pattern, st.literal);
    if (!j.contains("behavior")) fail(ErrorKind::Format, "tokenizer.json: Split needs \"behavior\"");
    st.behavior = parse_behavior(j["behavior"], "tokenizer.json: Split");
    st.invert = get_bool("invert", false);
  } else if (type == "ByteLevel") {
    st.kind = Stage::kByteLevel;
    st.add_prefix_space = get_bool("add_prefix_space", true);
    st.use_regex = get_bool("use_regex", true);
    if (st.use_regex && !gpt2) gpt2 = std::make_shared<Regex>(kGpt2Regex, false);
    byte_level = true;
  } else if (type == "Digits") {
    st.kind = Stage::kCharSplit;
    st.pred = CharPred::Numeric;
    st.behavior = get_bool("individual_digits", false) ? Behavior::Isolated : Behavior::Contiguous;
  } else if (type == "WhitespaceSplit") {
    st.kind = Stage::kCharSplit;
    st.pred = CharPred::WhiteSpace;
    st.behavior = Behavior::Removed;
  } else if (type == "Whitespace") {
    st.kind = Stage::kRegexSplit;
    st.pattern = kWhitespaceRegex;
    st.regex = std::make_shared<Regex>(st.pattern, false);
    st.behavior = Behavior::Removed;
    st.invert = true;
  } else if (type == "Punctuation") {
    st.kind = Stage::kCharSplit;
    st.pred = CharPred::Punctuation;
    st.behavior = j.contains("behavior") ? parse_behavior(j["behavior"], "tokenizer.json: Punctuation")
                                         : Behavior::Isolated;
  } else {
    fail(ErrorKind::Unsupported, "tokenizer.json: unsupported pre_tokenizer type \"", type,
         "\" (supported: Sequence, Split, ByteLevel, Digits, Whitespace, WhitespaceSplit, Punctuation)");
  }
  stages.push_back(std::move(st));
}

namespace {

// Finds the matches of a stage in `s` as a list covering it: (start, end, is_match).
void stage_matches(const PreTokenizer::Impl::Stage& st, std::string_view s, std::vector<Span>& out) {
  out.clear();
  using Stage = PreTokenizer::Impl::Stage;
  if (st.kind == Stage::kRegexSplit) {
    if (!st.regex) {  // empty literal: tokenizers matches nothing
      out.push_back({0, s.size(), false});
    } else {
      size_t prev = 0;
      st.regex->find_iter(s, [&](size_t ms, size_t me) {
        if (prev != ms) out.push_back({prev, ms, false});
        out.push_back({ms, me, true});
        prev = me;
      });
      if (prev != s.size()) out.push_back({prev, s.size(), false});
    }
  } else {  // kCharSplit: every matching char is its own match
    const auto* u = reinterpret_cast<const unsigned char*>(s.data());
    size_t last = 0, i = 0;
    while (i < s.size()) {
      int len = 1;
      uint32_t cp = unicode::decode_utf8(u + i, len);
      if (char_pred(st.pred, cp)) {
        if (last < i) out.push_back({last, i, false});
        out.push_back({i, i + len, true});
        last = i + len;
      }
      i += len;
    }
    if (i > last) out.push_back({last, i, false});
  }
  if (st.invert)
    for (auto& m : out) m.flag = !m.flag;
}

}  // namespace

void PreTokenizer::Impl::run_generic(std::string_view text, PieceSink& sink) const {
  if (text.empty()) return;
  // All stages before ByteLevel produce substrings of `text`.
  std::vector<std::string_view> cur{text}, next;
  std::vector<Span> matches;
  const Stage* bl = nullptr;
  for (const auto& st : stages) {
    if (st.kind == Stage::kByteLevel) {
      bl = &st;
      break;
    }
    next.clear();
    for (std::string_view piece : cur) {
      stage_matches(st, piece, matches);
      for (const auto& sp : apply_behavior(matches, st.behavior)) {
        if (sp.flag || sp.end <= sp.start) continue;
        next.push_back(piece.substr(sp.start, sp.end - sp.start));
      }
    }
    cur.swap(next);
  }
  if (!bl) {
    for (auto p : cur) sink.piece(p);
    return;
  }
  std::string tmp;
  for (std::string_view piece : cur) {
    std::string_view s = piece;
    if (bl->add_prefix_space && (s.empty() || s[0] != ' ')) {
      tmp.assign(" ");
      tmp.append(piece);
      s = tmp;
    }
    if (!bl->use_regex) {
      sink.piece(s);
      continue;
    }
    size_t prev = 0;
    gpt2->find_iter(s, [&](size_t ms, size_t me) {
      if (prev < ms) sink.piece(s.substr(prev, ms - prev));
      if (ms < me) sink.piece(s.substr(ms, me - ms));
      prev = me;
    });
    if (prev < s.size()) sink.piece(s.substr(prev));
  }
}

// ---- the hand-compiled DeepSeek-V3 pre-tokenizer ---------------------------------------------
//
// Stage 1 `\p{N}{1,3}`, stage 2 `[一-龥぀-ゟ゠-ヿ]+` and stage 3 (the main regex) are each applied,
// Isolated, to every piece the previous stage left. Each stage keeps the unmatched gaps as pieces,
// and each regex sees only its piece (so `(?!\S)` and the end of input are piece-relative).
// Characters are classified once into `kind` (unicode.h flags); `off` holds their byte offsets.

namespace {

using namespace unicode;

struct DeepSeekSplitter {
  const unsigned char* text;
  const uint8_t* kind;
  const uint32_t* off;
  PieceSink& sink;

  static bool ascii_punct(unsigned char b) {
    return (b >= 0x21 && b <= 0x2F) || (b >= 0x3A && b <= 0x40) || (b >= 0x5B && b <= 0x60) ||
           (b >= 0x7B && b <= 0x7E);
  }
  static bool ascii_alpha(unsigned char b) { return ((b | 0x20) >= 'a') && ((b | 0x20) <= 'z'); }

  void emit(size_t a, size_t b) {
    sink.piece(std::string_view(reinterpret_cast<const char*>(text) + off[a], off[b] - off[a]));
  }

  // End (char index) of the stage-3 match starting at p within a piece ending at e, or 0.
  size_t match3(size_t p, size_t e) const {
    const uint8_t c = kind[p];
    const unsigned char b0 = text[off[p]];
    // [!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+
    if (b0 < 0x80 && ascii_punct(b0) && p + 1 < e && ascii_alpha(text[off[p + 1]])) {
      size_t q = p + 2;
      while (q < e && ascii_alpha(text[off[q]])) ++q;
      return q;
    }
    // [^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+
    if (!(c & (kCRLF | kL | kP | kS)) && p + 1 < e && (kind[p + 1] & (kL | kM))) {
      size_t q = p + 2;
      while (q < e && (kind[q] & (kL | kM))) ++q;
      return q;
    }
    if (c & (kL | kM)) {
      size_t q = p + 1;
      while (q < e && (kind[q] & (kL | kM))) ++q;
      return q;
    }
    //  ?[\p{P}\p{S}]+[\r\n]*
    size_t q = 0;
    if (b0 == ' ' && p + 1 < e && (kind[p + 1] & (kP | kS)))
      q = p + 2;
    else if (c & (kP | kS))
      q = p + 1;
    if (q) {
      while (q < e && (kind[q] & (kP | kS))) ++q;
      while (q < e && (kind[q] & kCRLF)) ++q;
      return q;
    }
    if (c & kWS) {
      size_t r = p + 1, last_nl = (c & kCRLF) ? p + 1 : 0;
      while (r < e && (kind[r] & kWS)) {
        if (kind[r] & kCRLF) last_nl = r + 1;
        ++r;
      }
      if (last_nl) return last_nl;      // \s*[\r\n]+
      if (r == e || r - p < 2) return r;  // \s+(?!\S) at the end, or \s+
      return r - 1;                      // \s+(?!\S) leaves the last space
    }
    return 0;
  }

  void stage3(size_t a, size_t e) {
    size_t p = a, gap = a;
    while (p < e) {
      size_t q = match3(p, e);
      if (q) {
        if (gap < p) emit(gap, p);
        emit(p, q);
        p = gap = q;
      } else {
        ++p;
      }
    }
    if (gap < e) emit(gap, e);
  }

  void stage2(size_t a, size_t e) {
    size_t p = a, gap = a;
    while (p < e) {
      if (kind[p] & kCJK) {
        size_t q = p + 1;
        while (q < e && (kind[q] & kCJK)) ++q;
        if (gap < p) stage3(gap, p);
        stage3(p, q);
        p = gap = q;
      } else {
        ++p;
      }
    }
    if (gap < e) stage3(gap, e);
  }

  void stage1(size_t n) {
    size_t p = 0, gap = 0;
    while (p < n) {
      if (kind[p] & kN) {
        size_t q = p + 1;
        while (q < n && q - p < 3 && (kind[q] & kN)) ++q;
        if (gap < p) stage2(gap, p);
        stage2(p, q);
        p = gap = q;
      } else {
        ++p;
      }
    }
    if (gap < n) stage2(gap, n);
  }
};

}  // namespace

void deepseek_v3_pre_tokenize(std::string_view text, PieceSink& sink) {
  if (text.empty()) return;
  QS_CHECK(text.size() < 0xFFFFFFFFu, "pre-tokenizer: text of ", text.size(), " bytes is too long");
  thread_local std::vector<uint8_t> kind;
  thread_local std::vector<uint32_t> off;
  if (kind.size() < text.size() + 1) {
    kind.resize(text.size() + 1);
    off.resize(text.size() + 1);
  }
  const uint8_t* table = class_table();
  const auto* u = reinterpret_cast<const unsigned char*>(text.data());
  size_t n = 0, i = 0, len = text.size();
  uint8_t* kd = kind.data();
  uint32_t* of = off.data();
  while (i < len) {
    unsigned char b = u[i];
    if (b < 0x80) {
      kd[n] = table[b];
      of[n++] = static_cast<uint32_t>(i++);
    } else {
      int l = 1;
      uint32_t cp = decode_utf8(u + i, l);
      kd[n] = table[cp];
      of[n++] = static_cast<uint32_t>(i);
      i += static_cast<size_t>(l);
    }
  }
  of[n] = static_cast<uint32_t>(len);
  DeepSeekSplitter sp{u, kd, of, sink};
  sp.stage1(n);
  if (kind.size() > (size_t{1} << 22)) {  // do not keep 5 bytes per input byte after a huge text
    std::vector<uint8_t>().swap(kind);
    std::vector<uint32_t>().swap(off);
  }
}

// ---- PreTokenizer ----------------------------------------------------------------------------

PreTokenizer::PreTokenizer() : impl_(std::make_shared<Impl>()) {}

PreTokenizer PreTokenizer::from_json(const nlohmann::json& j) {
  auto impl = std::make_shared<Impl>();
  impl->add(j);
  // Recognise the DeepSeek-V3 pre-tokenizer exactly.
  const auto& s = impl->stages;
  impl->deepseek = s.size() == 4;
  const char* pats[3] = {kDeepSeekStage1, kDeepSeekStage2, kDeepSeekStage3};
  for (size_t k = 0; impl->deepseek && k < 3; ++k) {
    impl->deepseek = s[k].kind == Impl::Stage::kRegexSplit && !s[k].literal && s[k].pattern == pats[k] &&
                     s[k].behavior == Behavior::Isolated && !s[k].invert;
  }
  if (impl->deepseek)
    impl->deepseek = s[3].kind == Impl::Stage::kByteLevel && !s[3].add_prefix_space && !s[3].use_regex;
  PreTokenizer pt;
  pt.impl_ = impl;
  pt.use_fast_ = impl->deepseek;
  return pt;
}

bool PreTokenizer::byte_level() const { return impl_->byte_level; }
bool PreTokenizer::fast_path() const { return use_fast_; }

PreTokenizer PreTokenizer::without_fast_path() const {
  PreTokenizer pt = *this;
  pt.use_fast_ = false;
  return pt;
}

void PreTokenizer::pre_tokenize(std::string_view text, PieceSink& sink) const {
  if (use_fast_)
    deepseek_v3_pre_tokenize(text, sink);
  else
    impl_->run_generic(text, sink);
}

std::vector<std::string> PreTokenizer::split(std::string_view text) const {
  struct Collect : PieceSink {
    std::vector<std::string> out;
    void piece(std::string_view p) override { out.emplace_back(p); }
  } c;
  pre_tokenize(text, c);
  return std::move(c.out);
}

}  // namespace qs
