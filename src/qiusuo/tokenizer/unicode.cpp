#include "qiusuo/tokenizer/unicode.h"

#include <cstring>
#include <memory>

namespace qs::unicode {

const uint8_t* class_table() {
  static const std::unique_ptr<uint8_t[]> table = [] {
    std::unique_ptr<uint8_t[]> t(new uint8_t[0x110000]);
    for (uint32_t i = 0; i < kClassRunCount; ++i) {
      uint32_t start = kClassRuns[i] >> 8;
      uint32_t end = i + 1 < kClassRunCount ? (kClassRuns[i + 1] >> 8) : 0x110000;
      std::memset(t.get() + start, static_cast<int>(kClassRuns[i] & 0xFF), end - start);
    }
    return t;
  }();
  return table.get();
}

namespace {

// Length of the valid UTF-8 sequence at s[i..n), 0 if the bytes there are ill-formed, or
// -k if the input ends after k bytes of a sequence that was valid so far.
// `bad` receives the length of the maximal ill-formed subpart (>= 1) when 0 is returned.
inline int sequence_at(const unsigned char* s, size_t i, size_t n, int& bad) {
  unsigned char b = s[i];
  if (b < 0x80) return 1;
  int width;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (b >= 0xC2 && b <= 0xDF) {
    width = 2;
  } else if (b >= 0xE0 && b <= 0xEF) {
    width = 3;
    if (b == 0xE0) lo = 0xA0;
    if (b == 0xED) hi = 0x9F;
  } else if (b >= 0xF0 && b <= 0xF4) {
    width = 4;
    if (b == 0xF0) lo = 0x90;
    if (b == 0xF4) hi = 0x8F;
  } else {
    bad = 1;
    return 0;
  }
  for (int k = 1; k < width; ++k) {
    if (i + k >= n) return -k;
    unsigned char c = s[i + k];
    bool ok = k == 1 ? (c >= lo && c <= hi) : (c >= 0x80 && c <= 0xBF);
    if (!ok) {
      bad = k;
      return 0;
    }
  }
  return width;
}

}  // namespace

size_t find_invalid_utf8(std::string_view sv) {
  const unsigned char* s = reinterpret_cast<const unsigned char*>(sv.data());
  size_t n = sv.size();
  size_t i = 0;
  while (i < n) {
    // ASCII fast path, 8 bytes at a time.
    while (i + 8 <= n) {
      uint64_t w;
      std::memcpy(&w, s + i, 8);
      if (w & 0x8080808080808080ull) break;
      i += 8;
    }
    if (i >= n) break;
    if (s[i] < 0x80) {
      ++i;
      continue;
    }
    int bad = 0;
    int len = sequence_at(s, i, n, bad);
    if (len <= 0) return i;
    i += static_cast<size_t>(len);
  }
  return std::string_view::npos;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

size_t append_lossy(std::string& out, std::string_view sv, bool final) {
  static const char kReplacement[] = "\xEF\xBF\xBD";
  const unsigned char* s = reinterpret_cast<const unsigned char*>(sv.data());
  size_t n = sv.size();
  size_t i = 0, run = 0;  // [run, i) is valid and not yet copied
  while (i < n) {
    if (s[i] < 0x80) {
      ++i;
      continue;
    }
    int bad = 0;
    int len = sequence_at(s, i, n, bad);
    if (len > 0) {
      i += static_cast<size_t>(len);
      continue;
    }
    out.append(sv.data() + run, i - run);
    if (len < 0) {  // truncated at the end of the input
      if (!final) return i;
      out.append(kReplacement, 3);
      return n;
    }
    out.append(kReplacement, 3);
    i += static_cast<size_t>(bad);
    run = i;
  }
  out.append(sv.data() + run, n - run);
  return n;
}

}  // namespace qs::unicode
