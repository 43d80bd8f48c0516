// Constrained generation: logits masks that keep the output inside a language while it is being
// generated (not checked afterwards).
//
// JsonMachine is a prefix recogniser of JSON (RFC 8259) over bytes: feed() accepts a byte only
// when the bytes so far can still be completed into a valid document. Strings must be valid
// UTF-8 (no overlongs, no surrogates encoded in UTF-8) with no raw control characters, and a
// \u escape of a high surrogate must be followed by one of a low surrogate (so strict parsers
// accept the result). Limits keep a weak model from wandering and every parser reading the
// result: the document starts with its value (no leading whitespace), nesting depth is at most
// 32, runs of whitespace at most 32 bytes, numbers have at most 16 integer and 16 fraction
// digits and 2 exponent digits (always a finite double).
//
// OutputConstraint is a LogitsProcessor (infer/sequence.h) that walks a list of phases:
//   UntilText   free text until a marker has appeared (e.g. "</think>": reasoning stays free)
//   Sequences   exactly one of a few token sequences (forced tool-call syntax, function names)
//   Json        a JSON value (object_only: an object, as response_format json_object)
//   End         only an end-of-sequence token
// Each step it consumes the tokens generated since its last call, then sets every token the
// current phase forbids to -inf. A token is allowed in a Json phase when all of its bytes
// (Tokenizer::id_to_bytes) are accepted from the current state; added tokens (special or
// not) never are. When the tokens left (max_tokens minus generated) get down to what closing
// the value and the later phases needs, only the shortest closing text is allowed, byte by
// byte, so a JSON value is always complete when the token budget ends.
//
// The processor keeps its state by value: the engine copies it for each of n forked samples,
// and each copy follows its own sample.
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "qiusuo/tokenizer/tokenizer.h"

namespace qs::serve {

class JsonMachine {
 public:
  static constexpr int kMaxDepth = 32;
  static constexpr int kMaxWhitespace = 32;
  static constexpr int kMaxDigits = 16;          // integer or fraction digits of a number
  static constexpr int kMaxExponentDigits = 2;

  explicit JsonMachine(bool object_only = true) : object_only_(object_only) {}
  // Accepts byte c if the text stays a valid prefix (state unchanged otherwise).
  bool feed(uint8_t c);
  bool feed(std::string_view s);
  // As feed(), but the state is unspecified after a rejected byte (for throwaway copies).
  bool try_step(uint8_t c);
  // A complete top-level value has been read (nothing may follow).
  bool complete() const { return st_ == Done; }
  // The shortest text that completes the value from here ("" when complete).
  std::string closing() const;
  int closing_length() const;  // closing().size() without building it
  int depth() const { return depth_; }

 private:
  enum State : uint8_t {
    Value, ValueOrClose, KeyOrClose, Key, Str, StrEsc, StrHex, Colon, After,
    NumMinus, NumZero, NumInt, NumDot, NumFrac, NumE, NumESign, NumExp, Lit, Done
  };
  bool step(uint8_t c);
  bool start_value(uint8_t c);
  bool whitespace();
  void value_done();
  char next_closing_char() const;

  State st_ = Value;
  bool object_only_ = true;
  bool in_key_ = false;
  bool low_pending_ = false;  // a \u high surrogate was read: "\uDC00-DFFF" must follow
  bool hex_first_d_ = false;  // first hex digit of the current \u escape is d/D
  uint8_t hex_ = 0;           // hex digits still to read in \uXXXX
  uint8_t utf8_left_ = 0;     // continuation bytes still to read
  uint8_t utf8_lo_ = 0x80, utf8_hi_ = 0xBF;  // range of the next continuation byte
  uint8_t lit_ = 0, lit_pos_ = 0;
  uint8_t ws_ = 0;
  uint8_t digits_ = 0;  // digits in the current part of a number
  uint8_t depth_ = 0;
  std::array<char, kMaxDepth> stack_{};
};

// The bytes of every token id, grouped by first byte, and the tokens that may end a sequence.
struct TokenBytes {
  // `vocab`: the model's vocabulary size (ids >= the tokenizer's size have no bytes).
  TokenBytes(const Tokenizer& tok, int64_t vocab, std::vector<int32_t> eos);
  int64_t vocab = 0;
  std::vector<std::string_view> bytes;           // [vocab]; empty for added tokens and unknown ids
  std::array<std::vector<int32_t>, 256> by_first;
  std::array<int32_t, 256> single{};             // the token of exactly one byte (-1: none)
  std::vector<int32_t> eos;
  Tokenizer tok;                                 // keeps the byte storage alive
};

struct ConstraintPhase {
  enum Kind { UntilText, Sequences, Json, End } kind = End;
  std::string text;                          // UntilText
  std::vector<std::vector<int32_t>> seqs;    // Sequences
  bool object_only = true;                   // Json

  static ConstraintPhase until(std::string t) { ConstraintPhase p; p.kind = UntilText; p.text = std::move(t); return p; }
  static ConstraintPhase sequences(std::vector<std::vector<int32_t>> s) {
    ConstraintPhase p; p.kind = Sequences; p.seqs = std::move(s); return p;
  }
  static ConstraintPhase json(bool object_only = true) { ConstraintPhase p; p.kind = Json; p.object_only = object_only; return p; }
  static ConstraintPhase end() { return ConstraintPhase{}; }
};

class OutputConstraint {
 public:
  OutputConstraint(std::shared_ptr<const TokenBytes> vocab, std::vector<ConstraintPhase> phases, int64_t max_tokens);
  // The LogitsProcessor.
  void operator()(std::span<const int32_t> generated, float* logits, int64_t vocab);
  // Tokens allowed next (after consuming `generated`); for tests.
  std::vector<int32_t> allowed(std::span<const int32_t> generated);
  size_t phase() const { return phase_; }

 private:
  static constexpr int64_t kTightMargin = 48;
  void consume(std::span<const int32_t> generated);
  void advance(int32_t tok);
  void enter(size_t phase, std::string_view carry);
  void mask(int64_t left, std::vector<uint8_t>& allow);
  int64_t tokens_after_json() const;

  std::shared_ptr<const TokenBytes> vocab_;
  std::shared_ptr<const std::vector<ConstraintPhase>> phases_;
  int64_t max_tokens_;
  size_t phase_ = 0;
  size_t consumed_ = 0;
  bool broken_ = false;
  std::string tail_;             // UntilText: recent bytes
  std::vector<int32_t> seq_;     // Sequences: tokens of this phase so far
  JsonMachine json_;
  std::vector<uint8_t> allow_;
};

}  // namespace qs::serve
