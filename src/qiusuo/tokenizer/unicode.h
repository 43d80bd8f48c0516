// Unicode helpers for the tokenizer: UTF-8 validation/decoding, lossy decoding with the exact
// replacement rules of Rust's String::from_utf8_lossy (what Hugging Face's ByteLevel decoder
// uses), and the per-code-point character classes of the hand-compiled DeepSeek pre-tokenizer.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace qs::unicode {

// Character class flags (one byte per code point; see scripts/gen_unicode_tables.py).
enum : uint8_t {
  kL = 1,      // \p{L}
  kM = 2,      // \p{M}
  kN = 4,      // \p{N}
  kP = 8,      // \p{P}
  kS = 16,     // \p{S}
  kWS = 32,    // \s (Unicode White_Space, as Oniguruma / Rust regex define it)
  kCRLF = 64,  // \r or \n
  kCJK = 128,  // DeepSeek stage 2: U+4E00-U+9FA5, U+3040-U+309F, U+30A0-U+30FF
};

// The table follows Unicode 16.0.0, the version of the Oniguruma inside Hugging Face tokenizers
// 0.23.2 (PCRE2 10.42 has 14.0.0; the PCRE2 path adds kAdditions to its \p{L} .. \p{S}).
extern const char* const kTableUnicodeVersion;
extern const uint32_t kClassRunCount;
extern const uint32_t kClassRuns[];  // (first_code_point << 8) | flags, ascending

struct CodePointRange {
  uint32_t first, last;
  uint8_t flag;  // kL, kM, kN, kP or kS
};
// Code points assigned in Unicode 15.0-16.0 with a category in L/M/N/P/S.
extern const uint32_t kAdditionCount;
extern const CodePointRange kAdditions[];

// Flat table of 0x110000 class bytes, built once on first use (thread-safe).
const uint8_t* class_table();
inline uint8_t char_class(uint32_t cp) { return cp < 0x110000 ? class_table()[cp] : 0; }

// Byte offset of the first byte that makes `s` invalid UTF-8, or npos when it is valid.
// Surrogates (U+D800..U+DFFF), overlong forms and code points above U+10FFFF are invalid.
size_t find_invalid_utf8(std::string_view s);

// Decodes the code point starting at p (which must be valid UTF-8); sets len to its byte length.
inline uint32_t decode_utf8(const unsigned char* p, int& len) {
  unsigned char b = p[0];
  if (b < 0x80) {
    len = 1;
    return b;
  }
  if (b < 0xE0) {
    len = 2;
    return ((b & 0x1Fu) << 6) | (p[1] & 0x3Fu);
  }
  if (b < 0xF0) {
    len = 3;
    return ((b & 0x0Fu) << 12) | ((p[1] & 0x3Fu) << 6) | (p[2] & 0x3Fu);
  }
  len = 4;
  return ((b & 0x07u) << 18) | ((p[1] & 0x3Fu) << 12) | ((p[2] & 0x3Fu) << 6) | (p[3] & 0x3Fu);
}

void append_utf8(std::string& out, uint32_t cp);

// Appends `bytes` to `out` as UTF-8, replacing each maximal ill-formed subsequence by U+FFFD
// exactly like Rust's String::from_utf8_lossy. When `final` is false, a trailing incomplete
// (but so far valid) sequence is not consumed. Returns the number of bytes consumed.
size_t append_lossy(std::string& out, std::string_view bytes, bool final = true);

inline std::string utf8_lossy(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  append_lossy(out, bytes, true);
  return out;
}

}  // namespace qs::unicode
