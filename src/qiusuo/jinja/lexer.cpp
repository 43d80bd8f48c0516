// Jinja2 lexer: splits a template into text and tag tokens exactly as jinja2/lexer.py does,
// including whitespace control (`-`, `+`), trim_blocks, lstrip_blocks, raw blocks, comments,
// newline normalisation and the single trailing newline that Jinja drops.
#include <algorithm>
#include <cstring>

#include "qiusuo/jinja/internal.h"

namespace qs::jinja::detail {

namespace {

constexpr const char* kOperators[] = {"//", "**", "==", "!=", ">=", "<=", "+", "-", "/",
                                      "*",  "%",  "~",  "[",  "]",  "(",  ")", "{", "}",
                                      ">",  "<",  "=",  ".",  ":",  "|",  ",", ";"};

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_name_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
         static_cast<unsigned char>(c) >= 0x80;
}
bool is_name_char(char c) { return is_name_start(c) || is_digit(c); }
int hex_val(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

class Lexer {
 public:
  Lexer(std::string_view source, const Options& opt) : opt_(opt) {
    // Newlines: \r\n, \r and \n all become \n; one trailing newline is dropped.
    src_.reserve(source.size());
    for (size_t i = 0; i < source.size(); ++i) {
      if (source[i] == '\r') {
        src_ += '\n';
        if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
      } else {
        src_ += source[i];
      }
    }
    if (!opt_.keep_trailing_newline && !src_.empty() && src_.back() == '\n') src_.pop_back();
    line_starts_.push_back(0);
    for (size_t i = 0; i < src_.size(); ++i)
      if (src_[i] == '\n') line_starts_.push_back(i + 1);
  }

  std::vector<Token> run() {
    const size_t n = src_.size();
    size_t pos = 0;
    line_starting_ = true;
    while (pos < n) {
      size_t k = find_tag_start(pos);
      if (k == std::string::npos) {
        push_data(src_.substr(pos), pos);
        break;
      }
      std::string text = src_.substr(pos, k - pos);
      char kind = src_[k + 1];
      size_t after = 0;
      char sign = 0;
      bool raw = kind == '%' && match_raw_begin(k, after, sign);
      if (!raw) {
        size_t p = k + 2;
        if (p < n && (src_[p] == '-' || src_[p] == '+')) sign = src_[p++];
        after = p;
      }
      strip_before(text, sign, kind == '{');
      push_data(std::move(text), pos);
      line_starting_ = raw && src_[after - 1] == '\n';
      if (raw)
        pos = lex_raw(k, after);
      else if (kind == '#')
        pos = lex_comment(k, after);
      else
        pos = lex_tag(k, after, kind == '{');
    }
    Token eof;
    eof.k = TK::Eof;
    eof.loc = loc_at(n);
    toks_.push_back(std::move(eof));
    return std::move(toks_);
  }

 private:
  Loc loc_at(size_t pos) const {
    auto it = std::upper_bound(line_starts_.begin(), line_starts_.end(), pos);
    size_t line = size_t(it - line_starts_.begin());
    size_t ls = line_starts_[line - 1];
    return Loc{int(line), int(cp_count(std::string_view(src_).substr(ls, pos - ls))) + 1};
  }

  [[noreturn]] void error(size_t pos, const std::string& msg) const { fail_at(loc_at(pos), msg); }

  // Length of the whitespace code point at pos, or 0.
  size_t space_len(size_t pos) const {
    if (pos >= src_.size()) return 0;
    unsigned char c = src_[pos];
    if (c < 0x80) return py_isspace(c) ? 1 : 0;
    size_t len = c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    if (pos + len > src_.size()) return 0;
    std::vector<uint32_t> cps = to_cps(std::string_view(src_).substr(pos, len));
    return (!cps.empty() && py_isspace(cps[0])) ? len : 0;
  }
  size_t skip_ws(size_t pos) const {
    while (size_t l = space_len(pos)) pos += l;
    return pos;
  }
  bool starts(size_t pos, const char* s) const {
    size_t len = std::strlen(s);
    return pos + len <= src_.size() && src_.compare(pos, len, s) == 0;
  }

  size_t find_tag_start(size_t pos) const {
    while (true) {
      size_t k = src_.find('{', pos);
      if (k == std::string::npos || k + 1 >= src_.size()) return std::string::npos;
      char c = src_[k + 1];
      if (c == '{' || c == '%' || c == '#') return k;
      pos = k + 1;
    }
  }

  void push_data(std::string text, size_t pos) {
    if (text.empty()) return;
    Token t;
    t.k = TK::Data;
    t.loc = loc_at(pos);
    t.text = std::move(text);
    toks_.push_back(std::move(t));
  }

  void push(TK k, size_t pos, std::string text = {}) {
    Token t;
    t.k = k;
    t.loc = loc_at(pos);
    t.text = std::move(text);
    toks_.push_back(std::move(t));
  }

  // Whitespace control applied to the text before a tag (Jinja's OptionalLStrip).
  void strip_before(std::string& text, char sign, bool is_variable) const {
    if (sign == '-') {
      std::vector<uint32_t> cps = to_cps(text);
      size_t e = cps.size();
      while (e > 0 && py_isspace(cps[e - 1])) --e;
      if (e != cps.size()) text = from_cps(cps.data(), e);
    } else if (sign != '+' && opt_.lstrip_blocks && !is_variable) {
      size_t nl = text.rfind('\n');
      size_t l_pos = nl == std::string::npos ? 0 : nl + 1;
      if ((l_pos > 0 || line_starting_) && l_pos < text.size()) {
        std::vector<uint32_t> cps = to_cps(std::string_view(text).substr(l_pos));
        if (std::all_of(cps.begin(), cps.end(), py_isspace)) text.resize(l_pos);
      }
    }
  }

  // `{%(-|+|)\s*raw\s*(?:-%}\s*|%})` at k.
  bool match_raw_begin(size_t k, size_t& after, char& sign) const {
    size_t p = k + 2;
    char sg = 0;
    if (p < src_.size() && (src_[p] == '-' || src_[p] == '+')) sg = src_[p++];
    p = skip_ws(p);
    if (!starts(p, "raw")) return false;
    p = skip_ws(p + 3);
    if (starts(p, "-%}")) {
      after = skip_ws(p + 3);
    } else if (starts(p, "%}")) {
      after = p + 2;
    } else {
      return false;
    }
    sign = sg;
    return true;
  }

  size_t block_end_suffix(size_t end) const {
    if (opt_.trim_blocks && end < src_.size() && src_[end] == '\n') ++end;
    return end;
  }

  size_t lex_raw(size_t k, size_t after) {
    size_t from = after;
    while (true) {
      size_t q = src_.find("{%", from);
      if (q == std::string::npos) error(k, "missing end of raw directive");
      size_t p = q + 2;
      char sign = 0;
      if (p < src_.size() && (src_[p] == '-' || src_[p] == '+')) sign = src_[p++];
      p = skip_ws(p);
      size_t end = std::string::npos;
      if (starts(p, "endraw")) {
        p = skip_ws(p + 6);
        if (starts(p, "+%}"))
          end = p + 3;
        else if (starts(p, "-%}"))
          end = skip_ws(p + 3);
        else if (starts(p, "%}"))
          end = block_end_suffix(p + 2);
      }
      if (end == std::string::npos) {
        from = q + 1;
        continue;
      }
      std::string text = src_.substr(after, q - after);
      strip_before(text, sign, false);
      push_data(std::move(text), after);
      line_starting_ = src_[end - 1] == '\n';
      return end;
    }
  }

  size_t lex_comment(size_t k, size_t after) {
    size_t q = src_.find("#}", after);
    if (q == std::string::npos) error(k, "missing end of comment tag");
    size_t end;
    if (q > after && src_[q - 1] == '-')
      end = skip_ws(q + 2);
    else if (q > after && src_[q - 1] == '+')
      end = q + 2;
    else
      end = block_end_suffix(q + 2);
    line_starting_ = src_[end - 1] == '\n';
    return end;
  }

  // `(\d+_)*\d+` at p: end position or npos.
  size_t match_digits(size_t p, int (*digit)(char) = nullptr) const {
    auto ok = [&](char c) { return digit ? digit(c) >= 0 : is_digit(c); };
    if (p >= src_.size() || !ok(src_[p])) return std::string::npos;
    while (p < src_.size()) {
      if (ok(src_[p])) {
        ++p;
      } else if (src_[p] == '_' && p + 1 < src_.size() && ok(src_[p + 1])) {
        p += 2;
      } else {
        break;
      }
    }
    return p;
  }

  size_t match_float(size_t p) const {
    if (p > 0 && src_[p - 1] == '.') return std::string::npos;
    size_t q = match_digits(p);
    if (q == std::string::npos) return q;
    // (\.digits)? e[+-]? digits
    {
      size_t r = q;
      if (r < src_.size() && src_[r] == '.') {
        size_t f = match_digits(r + 1);
        if (f != std::string::npos) r = f;
      }
      if (r < src_.size() && (src_[r] == 'e' || src_[r] == 'E')) {
        size_t e = r + 1;
        if (e < src_.size() && (src_[e] == '+' || src_[e] == '-')) ++e;
        size_t x = match_digits(e);
        if (x != std::string::npos) return x;
      }
    }
    if (q < src_.size() && src_[q] == '.') {
      size_t f = match_digits(q + 1);
      if (f != std::string::npos) return f;
    }
    return std::string::npos;
  }

  // Integer literal at p: end position (value in `value`) or npos.
  size_t match_int(size_t p, int64_t& value) const {
    auto parse = [&](size_t b, size_t e, int base) {
      int64_t v = 0;
      for (size_t i = b; i < e; ++i) {
        if (src_[i] == '_') continue;
        int d = hex_val(src_[i]);
        if (__builtin_mul_overflow(v, int64_t(base), &v) || __builtin_add_overflow(v, d, &v))
          error(p, "integer literal too large");
      }
      value = v;
    };
    if (src_[p] == '0' && p + 1 < src_.size()) {
      char x = char(src_[p + 1] | 32);
      int base = x == 'b' ? 2 : x == 'o' ? 8 : x == 'x' ? 16 : 0;
      if (base) {
        size_t q = p + 2;
        size_t last = q;
        while (q < src_.size()) {
          size_t r = q;
          if (src_[r] == '_') ++r;
          if (r < src_.size() && hex_val(src_[r]) >= 0 && hex_val(src_[r]) < base) {
            q = r + 1;
            last = q;
          } else {
            break;
          }
        }
        if (last > p + 2) {
          parse(p + 2, last, base);
          return last;
        }
      }
    }
    if (src_[p] >= '1' && src_[p] <= '9') {
      size_t q = match_digits(p);
      parse(p, q, 10);
      return q;
    }
    if (src_[p] == '0') {
      size_t q = p + 1;
      while (q < src_.size()) {
        if (src_[q] == '0')
          ++q;
        else if (src_[q] == '_' && q + 1 < src_.size() && src_[q + 1] == '0')
          q += 2;
        else
          break;
      }
      value = 0;
      return q;
    }
    return std::string::npos;
  }

  // Python's "unicode-escape" decoding of a string literal's body.
  std::string unescape(std::string_view s, size_t pos) const {
    std::string out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size(); ++i) {
      char c = s[i];
      if (c != '\\' || i + 1 >= s.size()) {
        out += c;
        continue;
      }
      char e = s[++i];
      auto hex = [&](size_t digits) -> uint32_t {
        uint32_t v = 0;
        for (size_t d = 0; d < digits; ++d) {
          if (i + 1 >= s.size() || hex_val(s[i + 1]) < 0)
            error(pos, str("truncated \\", e, " escape in string literal"));
          v = v * 16 + uint32_t(hex_val(s[++i]));
        }
        return v;
      };
      uint32_t cp;
      switch (e) {
        case '\n':
          continue;
        case '\\':
          out += '\\';
          continue;
        case '\'':
          out += '\'';
          continue;
        case '"':
          out += '"';
          continue;
        case 'a':
          out += '\a';
          continue;
        case 'b':
          out += '\b';
          continue;
        case 'f':
          out += '\f';
          continue;
        case 'n':
          out += '\n';
          continue;
        case 'r':
          out += '\r';
          continue;
        case 't':
          out += '\t';
          continue;
        case 'v':
          out += '\v';
          continue;
        case 'x':
          cp = hex(2);
          break;
        case 'u':
          cp = hex(4);
          break;
        case 'U':
          cp = hex(8);
          if (cp > 0x10FFFF) error(pos, "illegal Unicode character in string literal");
          break;
        case 'N':
          fail_unsupported(loc_at(pos), "\\N{...} escape");
        default:
          if (e >= '0' && e <= '7') {
            cp = uint32_t(e - '0');
            for (int d = 0; d < 2 && i + 1 < s.size() && s[i + 1] >= '0' && s[i + 1] <= '7'; ++d)
              cp = cp * 8 + uint32_t(s[++i] - '0');
            break;
          }
          out += '\\';
          out += e;
          continue;
      }
      out += from_cps(&cp, 1);
    }
    return out;
  }

  size_t lex_tag(size_t k, size_t pos, bool is_var) {
    push(is_var ? TK::VarBegin : TK::BlockBegin, k);
    std::vector<char> balance;
    const size_t n = src_.size();
    while (true) {
      if (pos >= n)
        error(k, is_var ? "unexpected end of template, expected '}}'"
                        : "unexpected end of template, expected '%}'");
      if (balance.empty()) {
        size_t end = std::string::npos;
        if (is_var) {
          if (starts(pos, "-}}"))
            end = skip_ws(pos + 3);
          else if (starts(pos, "}}"))
            end = pos + 2;
        } else {
          if (starts(pos, "+%}"))
            end = pos + 3;
          else if (starts(pos, "-%}"))
            end = skip_ws(pos + 3);
          else if (starts(pos, "%}"))
            end = block_end_suffix(pos + 2);
        }
        if (end != std::string::npos) {
          push(is_var ? TK::VarEnd : TK::BlockEnd, pos);
          line_starting_ = src_[end - 1] == '\n';
          return end;
        }
      }
      if (size_t l = space_len(pos)) {
        pos = skip_ws(pos + l);
        continue;
      }
      char c = src_[pos];
      if (is_digit(c)) {
        size_t q = match_float(pos);
        if (q != std::string::npos) {
          std::string digits;
          for (size_t i = pos; i < q; ++i)
            if (src_[i] != '_') digits += src_[i];
          Token t;
          t.k = TK::Float;
          t.loc = loc_at(pos);
          t.fval = std::strtod(digits.c_str(), nullptr);
          t.text = src_.substr(pos, q - pos);
          toks_.push_back(std::move(t));
          pos = q;
          continue;
        }
        int64_t v = 0;
        q = match_int(pos, v);
        if (q != std::string::npos) {
          Token t;
          t.k = TK::Int;
          t.loc = loc_at(pos);
          t.ival = v;
          t.text = src_.substr(pos, q - pos);
          toks_.push_back(std::move(t));
          pos = q;
          continue;
        }
      }
      if (is_name_start(c)) {
        size_t q = pos;
        while (q < n && is_name_char(src_[q])) ++q;
        push(TK::Name, pos, src_.substr(pos, q - pos));
        pos = q;
        continue;
      }
      if (c == '\'' || c == '"') {
        size_t q = pos + 1;
        while (q < n && src_[q] != c) q += src_[q] == '\\' ? 2 : 1;
        if (q < n) {
          Token t;
          t.k = TK::String;
          t.loc = loc_at(pos);
          t.text = unescape(std::string_view(src_).substr(pos + 1, q - pos - 1), pos);
          toks_.push_back(std::move(t));
          pos = q + 1;
          continue;
        }
      }
      const char* op = nullptr;
      for (const char* o : kOperators)
        if (starts(pos, o)) {
          op = o;
          break;
        }
      if (!op) {
        std::vector<uint32_t> cp = to_cps(std::string_view(src_).substr(pos, 4));
        error(pos, str("unexpected char '", from_cps(cp.data(), 1), "'"));
      }
      char oc = op[0];
      if (op[1] == 0 && (oc == '{' || oc == '(' || oc == '[')) {
        balance.push_back(oc == '{' ? '}' : oc == '(' ? ')' : ']');
      } else if (op[1] == 0 && (oc == '}' || oc == ')' || oc == ']')) {
        if (balance.empty()) error(pos, str("unexpected '", oc, "'"));
        if (balance.back() != oc)
          error(pos, str("unexpected '", oc, "', expected '", balance.back(), "'"));
        balance.pop_back();
      }
      push(TK::Op, pos, op);
      pos += std::strlen(op);
    }
  }

  std::string src_;
  const Options& opt_;
  std::vector<size_t> line_starts_;
  std::vector<Token> toks_;
  bool line_starting_ = true;
};

}  // namespace

std::vector<Token> lex(std::string_view source, const Options& options) {
  return Lexer(source, options).run();
}

}  // namespace qs::jinja::detail
