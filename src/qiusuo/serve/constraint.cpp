#include "qiusuo/serve/constraint.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "qiusuo/core/error.h"

namespace qs::serve {
namespace {
constexpr const char* kLits[3] = {"true", "false", "null"};
constexpr uint8_t kLitLen[3] = {4, 5, 4};

bool is_ws(uint8_t c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
bool is_digit(uint8_t c) { return c >= '0' && c <= '9'; }
bool is_hex(uint8_t c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
}  // namespace

// ---- JsonMachine --------------------------------------------------------------------------

bool JsonMachine::try_step(uint8_t c) { return step(c); }

bool JsonMachine::feed(uint8_t c) {
  const JsonMachine saved = *this;
  if (step(c)) return true;
  *this = saved;
  return false;
}

bool JsonMachine::feed(std::string_view s) {
  for (char c : s)
    if (!feed(uint8_t(c))) return false;
  return true;
}

bool JsonMachine::whitespace() {
  if (ws_ >= kMaxWhitespace) return false;
  ++ws_;
  return true;
}

void JsonMachine::value_done() {
  ws_ = 0;
  st_ = depth_ == 0 ? Done : After;
}

bool JsonMachine::start_value(uint8_t c) {
  ws_ = 0;
  if (depth_ == 0 && object_only_ && c != '{') return false;
  switch (c) {
    case '{':
    case '[':
      if (depth_ >= kMaxDepth) return false;
      stack_[depth_++] = char(c);
      st_ = c == '{' ? KeyOrClose : ValueOrClose;
      return true;
    case '"': st_ = Str; in_key_ = false; return true;
    case '-': st_ = NumMinus; return true;
    case '0': st_ = NumZero; return true;
    case 't': st_ = Lit; lit_ = 0; lit_pos_ = 1; return true;
    case 'f': st_ = Lit; lit_ = 1; lit_pos_ = 1; return true;
    case 'n': st_ = Lit; lit_ = 2; lit_pos_ = 1; return true;
    default:
      if (c >= '1' && c <= '9') { st_ = NumInt; digits_ = 1; return true; }
      return false;
  }
}

bool JsonMachine::step(uint8_t c) {
  switch (st_) {
    case Value:
    case ValueOrClose:
      if (is_ws(c)) return depth_ > 0 && whitespace();  // the document starts with its value
      if (st_ == ValueOrClose && c == ']') {
        --depth_;
        value_done();
        return true;
      }
      return start_value(c);
    case KeyOrClose:
    case Key:
      if (is_ws(c)) return whitespace();
      ws_ = 0;
      if (st_ == KeyOrClose && c == '}') {
        --depth_;
        value_done();
        return true;
      }
      if (c != '"') return false;
      st_ = Str;
      in_key_ = true;
      return true;
    case Colon:
      if (is_ws(c)) return whitespace();
      if (c != ':') return false;
      ws_ = 0;
      st_ = Value;
      return true;
    case After: {
      if (is_ws(c)) return whitespace();
      const char top = stack_[depth_ - 1];
      if (c == ',') {
        ws_ = 0;
        st_ = top == '{' ? Key : Value;
        return true;
      }
      if ((c == '}' && top == '{') || (c == ']' && top == '[')) {
        --depth_;
        value_done();
        return true;
      }
      return false;
    }
    case Str:
      if (utf8_left_ > 0) {
        if (c < utf8_lo_ || c > utf8_hi_) return false;
        --utf8_left_;
        utf8_lo_ = 0x80;
        utf8_hi_ = 0xBF;
        return true;
      }
      if (low_pending_) {  // only "\u" of a low surrogate may follow a high surrogate
        if (c != '\\') return false;
        st_ = StrEsc;
        return true;
      }
      if (c == '"') {
        if (in_key_) {
          in_key_ = false;
          ws_ = 0;
          st_ = Colon;
        } else {
          value_done();
        }
        return true;
      }
      if (c == '\\') { st_ = StrEsc; return true; }
      if (c < 0x20) return false;
      if (c < 0x80) return true;
      // UTF-8 lead byte: the number and range of continuation bytes (RFC 3629, table 3-7).
      if (c >= 0xC2 && c <= 0xDF) { utf8_left_ = 1; return true; }
      if (c == 0xE0) { utf8_left_ = 2; utf8_lo_ = 0xA0; return true; }
      if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) { utf8_left_ = 2; return true; }
      if (c == 0xED) { utf8_left_ = 2; utf8_hi_ = 0x9F; return true; }
      if (c == 0xF0) { utf8_left_ = 3; utf8_lo_ = 0x90; return true; }
      if (c >= 0xF1 && c <= 0xF3) { utf8_left_ = 3; return true; }
      if (c == 0xF4) { utf8_left_ = 3; utf8_hi_ = 0x8F; return true; }
      return false;
    case StrEsc:
      if (c == 'u') {
        st_ = StrHex;
        hex_ = 4;
        hex_first_d_ = false;
        return true;
      }
      if (low_pending_) return false;
      if (c == '"' || c == '\\' || c == '/' || c == 'b' || c == 'f' || c == 'n' || c == 'r' || c == 't') {
        st_ = Str;
        return true;
      }
      return false;
    case StrHex: {
      if (!is_hex(c)) return false;
      const int i = 4 - hex_;  // index of this digit
      const bool d = c == 'd' || c == 'D';
      const bool c_to_f = (c >= 'c' && c <= 'f') || (c >= 'C' && c <= 'F');
      const bool eight_to_b = (c >= '8' && c <= '9') || (c >= 'a' && c <= 'b') || (c >= 'A' && c <= 'B');
      bool high = false;
      if (low_pending_) {
        if (i == 0 && !d) return false;
        if (i == 1 && !c_to_f) return false;
      } else if (i == 0) {
        hex_first_d_ = d;
      } else if (i == 1 && hex_first_d_) {
        if (c_to_f) return false;  // a lone low surrogate
        high = eight_to_b;
      }
      if (high) hex_first_d_ = true;  // remember: this escape is a high surrogate
      else if (i == 1) hex_first_d_ = false;
      if (--hex_ == 0) {
        st_ = Str;
        if (low_pending_) low_pending_ = false;
        else if (hex_first_d_) low_pending_ = true;
        hex_first_d_ = false;
      }
      return true;
    }
    case NumMinus:
      if (c == '0') { st_ = NumZero; return true; }
      if (c >= '1' && c <= '9') { st_ = NumInt; digits_ = 1; return true; }
      return false;
    case NumZero:
    case NumInt:
    case NumFrac:
    case NumExp:
      if (is_digit(c) && st_ != NumZero) {
        // Finite in every parser: at most 16 integer and 16 fraction digits, 2 exponent digits.
        if (digits_ >= (st_ == NumExp ? kMaxExponentDigits : kMaxDigits)) return false;
        ++digits_;
        return true;
      }
      if (c == '.' && (st_ == NumZero || st_ == NumInt)) { st_ = NumDot; return true; }
      if ((c == 'e' || c == 'E') && st_ != NumExp) { st_ = NumE; return true; }
      if (depth_ == 0) return false;  // a top-level number has no end: not allowed to continue
      value_done();
      return step(c);
    case NumDot:
      if (!is_digit(c)) return false;
      st_ = NumFrac;
      digits_ = 1;
      return true;
    case NumE:
      if (c == '+' || c == '-') { st_ = NumESign; return true; }
      if (!is_digit(c)) return false;
      st_ = NumExp;
      digits_ = 1;
      return true;
    case NumESign:
      if (!is_digit(c)) return false;
      st_ = NumExp;
      digits_ = 1;
      return true;
    case Lit:
      if (char(c) != kLits[lit_][lit_pos_]) return false;
      if (++lit_pos_ == kLitLen[lit_]) value_done();
      return true;
    case Done:
      return false;
  }
  return false;
}

char JsonMachine::next_closing_char() const {
  switch (st_) {
    case Value: return depth_ == 0 ? '{' : '0';
    case ValueOrClose: return ']';
    case KeyOrClose: return '}';
    case Key: return '"';
    case Str:
      if (utf8_left_ > 0) return char(utf8_lo_);
      return low_pending_ ? '\\' : '"';
    case StrEsc: return low_pending_ ? 'u' : 'n';
    case StrHex:
      if (low_pending_) return hex_ == 4 ? 'd' : hex_ == 3 ? 'c' : '0';
      return '0';
    case Colon: return ':';
    case After: return stack_[depth_ - 1] == '{' ? '}' : ']';
    case NumMinus: case NumDot: case NumE: case NumESign: return '0';
    case NumZero: case NumInt: case NumFrac: case NumExp:
      if (depth_ == 0) return 0;
      return stack_[depth_ - 1] == '{' ? '}' : ']';
    case Lit: return kLits[lit_][lit_pos_];
    case Done: return 0;
  }
  return 0;
}

std::string JsonMachine::closing() const {
  JsonMachine m = *this;
  std::string out;
  while (!m.complete()) {
    const char c = m.next_closing_char();
    if (c == 0 || !m.step(uint8_t(c))) break;  // a top-level number has no end
    out.push_back(c);
  }
  return out;
}

int JsonMachine::closing_length() const {
  JsonMachine m = *this;
  int n = 0;
  while (!m.complete()) {
    const char c = m.next_closing_char();
    if (c == 0 || !m.step(uint8_t(c))) return 1 << 20;
    ++n;
  }
  return n;
}

// ---- TokenBytes ---------------------------------------------------------------------------

TokenBytes::TokenBytes(const Tokenizer& t, int64_t v, std::vector<int32_t> eos_ids)
    : vocab(v), eos(std::move(eos_ids)), tok(t) {
  single.fill(-1);
  bytes.assign(size_t(vocab), {});
  std::vector<uint8_t> added(size_t(vocab), 0);
  for (const auto& a : tok.added_tokens())
    if (a.id >= 0 && a.id < vocab) added[size_t(a.id)] = 1;
  const int64_t n = std::min<int64_t>(vocab, tok.vocab_size());
  for (int64_t id = 0; id < n; ++id) {
    if (added[size_t(id)] || !tok.has_id(int32_t(id))) continue;
    const std::string_view b = tok.id_to_bytes(int32_t(id));
    if (b.empty()) continue;
    bytes[size_t(id)] = b;
    by_first[uint8_t(b[0])].push_back(int32_t(id));
    if (b.size() == 1 && single[uint8_t(b[0])] < 0) single[uint8_t(b[0])] = int32_t(id);
  }
  std::sort(eos.begin(), eos.end());
  eos.erase(std::unique(eos.begin(), eos.end()), eos.end());
  eos.erase(std::remove_if(eos.begin(), eos.end(), [&](int32_t e) { return e < 0 || e >= vocab; }), eos.end());
}

// ---- OutputConstraint ---------------------------------------------------------------------

OutputConstraint::OutputConstraint(std::shared_ptr<const TokenBytes> vocab, std::vector<ConstraintPhase> phases,
                                   int64_t max_tokens)
    : vocab_(std::move(vocab)), max_tokens_(max_tokens) {
  if (phases.empty() || phases.back().kind != ConstraintPhase::End) phases.push_back(ConstraintPhase::end());
  phases_ = std::make_shared<const std::vector<ConstraintPhase>>(std::move(phases));
  enter(0, {});
}

void OutputConstraint::enter(size_t phase, std::string_view carry) {
  phase_ = phase;
  tail_.clear();
  seq_.clear();
  const ConstraintPhase& p = (*phases_)[phase_];
  if (p.kind == ConstraintPhase::Json) json_ = JsonMachine(p.object_only);
  if (p.kind == ConstraintPhase::Sequences) {
    // An empty alternative is satisfied at once.
    for (const auto& s : p.seqs)
      if (s.empty()) return enter(phase_ + 1, carry);
  }
  if (carry.empty()) return;
  // Bytes of the token that completed the previous phase, past its end.
  if (p.kind == ConstraintPhase::Json) {
    for (char c : carry) {
      if (json_.complete()) break;
      if (json_.feed(uint8_t(c))) continue;
      if (is_ws(uint8_t(c))) continue;  // whitespace beyond the limit is dropped
      broken_ = true;
      return;
    }
    if (json_.complete()) enter(phase_ + 1, {});
  } else if (p.kind == ConstraintPhase::UntilText) {
    tail_.assign(carry);
    const size_t at = tail_.find(p.text);
    if (at != std::string::npos) enter(phase_ + 1, std::string(tail_.substr(at + p.text.size())));
  }
}

void OutputConstraint::advance(int32_t tok) {
  const ConstraintPhase& p = (*phases_)[phase_];
  const std::string_view b =
      tok >= 0 && tok < vocab_->vocab ? vocab_->bytes[size_t(tok)] : std::string_view{};
  switch (p.kind) {
    case ConstraintPhase::UntilText: {
      // Added tokens (e.g. "</think>" in R1's vocabulary) have no entry in `bytes`: use their text.
      std::string piece = b.empty() && tok >= 0 && vocab_->tok.has_id(tok) ? std::string(vocab_->tok.id_to_bytes(tok))
                                                                         : std::string(b);
      tail_ += piece;
      const size_t at = tail_.find(p.text);
      if (at != std::string::npos) {
        const std::string rest = tail_.substr(at + p.text.size());
        enter(phase_ + 1, rest);
      } else if (tail_.size() > p.text.size()) {
        tail_.erase(0, tail_.size() - p.text.size());
      }
      return;
    }
    case ConstraintPhase::Sequences: {
      seq_.push_back(tok);
      bool any = false;
      for (const auto& s : p.seqs) {
        if (s.size() < seq_.size() || !std::equal(seq_.begin(), seq_.end(), s.begin())) continue;
        any = true;
        if (s.size() == seq_.size()) return enter(phase_ + 1, {});
      }
      if (!any) broken_ = true;
      return;
    }
    case ConstraintPhase::Json:
      if (b.empty() || !json_.feed(b)) {
        broken_ = true;
        return;
      }
      if (json_.complete()) enter(phase_ + 1, {});
      return;
    case ConstraintPhase::End:
      return;
  }
}

void OutputConstraint::consume(std::span<const int32_t> generated) {
  if (generated.size() < consumed_) {  // a different sequence (should not happen): start over
    consumed_ = 0;
    broken_ = false;
    enter(0, {});
  }
  for (; consumed_ < generated.size(); ++consumed_)
    if (!broken_) advance(generated[consumed_]);
}

int64_t OutputConstraint::tokens_after_json() const {
  int64_t n = 1;  // the end-of-sequence token
  for (size_t i = phase_ + 1; i < phases_->size(); ++i) {
    const ConstraintPhase& p = (*phases_)[i];
    if (p.kind == ConstraintPhase::Sequences) {
      size_t longest = 0;
      for (const auto& s : p.seqs) longest = std::max(longest, s.size());
      n += int64_t(longest);
    }
  }
  return n;
}

void OutputConstraint::mask(int64_t left, std::vector<uint8_t>& allow) {
  const TokenBytes& vb = *vocab_;
  allow.assign(size_t(vb.vocab), 0);
  auto allow_eos = [&] {
    for (int32_t e : vb.eos) allow[size_t(e)] = 1;
  };
  if (broken_) return allow_eos();
  const ConstraintPhase& p = (*phases_)[phase_];
  switch (p.kind) {
    case ConstraintPhase::UntilText:
      std::fill(allow.begin(), allow.end(), 1);
      return;
    case ConstraintPhase::Sequences:
      for (const auto& s : p.seqs)
        if (s.size() > seq_.size() && std::equal(seq_.begin(), seq_.end(), s.begin()))
          if (s[seq_.size()] >= 0 && s[seq_.size()] < vb.vocab) allow[size_t(s[seq_.size()])] = 1;
      return;
    case ConstraintPhase::End:
      return allow_eos();
    case ConstraintPhase::Json: {
      const int64_t after = tokens_after_json();
      const std::string close = json_.closing();
      if (!close.empty() && left <= int64_t(close.size()) + after) {
        // Budget: only the shortest completion, by the longest token that begins it.
        int32_t best = vb.single[uint8_t(close[0])];
        size_t best_len = best >= 0 ? 1 : 0;
        for (int32_t id : vb.by_first[uint8_t(close[0])]) {
          const std::string_view b = vb.bytes[size_t(id)];
          if (b.size() > best_len && b.size() <= close.size() && close.compare(0, b.size(), b) == 0) {
            best = id;
            best_len = b.size();
          }
        }
        if (best >= 0) {
          allow[size_t(best)] = 1;
          return;
        }
      }
      // Near the budget, a token is allowed only when the value can still be closed after it.
      const bool tight = left <= int64_t(close.size()) + after + kTightMargin;
      std::array<uint8_t, 256> first{};
      for (int c = 0; c < 256; ++c) {
        JsonMachine m = json_;
        first[size_t(c)] = m.try_step(uint8_t(c));
      }
      for (int c = 0; c < 256; ++c) {
        if (!first[size_t(c)]) continue;
        for (int32_t id : vb.by_first[size_t(c)]) {
          const std::string_view b = vb.bytes[size_t(id)];
          JsonMachine m = json_;
          bool ok = true;
          // A token may complete the value only at its last byte (nothing may follow).
          for (size_t i = 0; i < b.size() && ok; ++i) ok = m.try_step(uint8_t(b[i]));
          if (ok && tight) ok = 1 + m.closing_length() + after <= left;
          allow[size_t(id)] = ok;
        }
      }
      return;
    }
  }
}

void OutputConstraint::operator()(std::span<const int32_t> generated, float* logits, int64_t vocab) {
  // Runs on the engine thread inside a step: it must not throw.
  try {
    consume(generated);
    mask(max_tokens_ - int64_t(generated.size()), allow_);
  } catch (...) {
    return;
  }
  bool any = false;
  for (int64_t i = 0; i < vocab && i < int64_t(allow_.size()) && !any; ++i) any = allow_[size_t(i)];
  if (!any) return;  // nothing allowed (a model without an end token): leave the logits alone
  for (int64_t i = 0; i < vocab; ++i)
    if (i >= int64_t(allow_.size()) || !allow_[size_t(i)]) logits[i] = -std::numeric_limits<float>::infinity();
}

std::vector<int32_t> OutputConstraint::allowed(std::span<const int32_t> generated) {
  consume(generated);
  mask(max_tokens_ - int64_t(generated.size()), allow_);
  std::vector<int32_t> out;
  for (size_t i = 0; i < allow_.size(); ++i)
    if (allow_[i]) out.push_back(int32_t(i));
  return out;
}

}  // namespace qs::serve
