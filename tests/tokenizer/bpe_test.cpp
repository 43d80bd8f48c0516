// BPE merge loop (array vs heap algorithm, cache), byte-level alphabet, UTF-8 helpers, and
// concurrent use of one tokenizer.
#include "qiusuo/tokenizer/bpe.h"

#include <gtest/gtest.h>

#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "qiusuo/tokenizer/tokenizer.h"
#include "qiusuo/tokenizer/unicode.h"

namespace {

const std::string kFixtures = std::string(QS_FIXTURES) + "/tokenizer";

const qs::Tokenizer& v3() {
  static const qs::Tokenizer t = qs::Tokenizer::load(kFixtures + "/deepseek-v3");
  return t;
}

std::string bench_text() {
  std::ifstream f(kFixtures + "/bench/mixed_1mib.txt", std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

TEST(ByteLevel, AlphabetIsABijection) {
  std::set<uint32_t> chars;
  for (int b = 0; b < 256; ++b) {
    uint32_t c = qs::byte_level::byte_to_char(static_cast<uint8_t>(b));
    EXPECT_EQ(qs::byte_level::char_to_byte(c), b);
    chars.insert(c);
  }
  EXPECT_EQ(chars.size(), 256u);
  EXPECT_EQ(qs::byte_level::byte_to_char(' '), 0x120u);   // Ġ
  EXPECT_EQ(qs::byte_level::byte_to_char('\n'), 0x10Au);  // Ċ
  EXPECT_EQ(qs::byte_level::byte_to_char('a'), static_cast<uint32_t>('a'));
  EXPECT_EQ(qs::byte_level::encode(" hi\n"), "ĠhiĊ");
  std::string raw;
  EXPECT_TRUE(qs::byte_level::decode("ĠhiĊ", raw));
  EXPECT_EQ(raw, " hi\n");
  EXPECT_FALSE(qs::byte_level::decode("<｜User｜>", raw));  // '｜' is not in the alphabet
}

TEST(Unicode, LossyDecodingMatchesRust) {
  // String::from_utf8_lossy replaces each maximal ill-formed subpart with one U+FFFD.
  const std::string R = "\xEF\xBF\xBD";
  struct Case {
    std::string in, out;
  };
  std::vector<Case> cases = {
      {"abc", "abc"},
      {"\xF0\x9F\x98", R},                      // truncated 4-byte sequence: one replacement
      {"\xF0\x9F\x98" "a", R + "a"},
      {"\xE0\x80", R + R},                      // E0 needs A0..BF next
      {"\xC0\xAF", R + R},                      // overlong lead
      {"\xED\xA0\x80", R + R + R},              // surrogate
      {"\xF4\x90\x80\x80", R + R + R + R},      // above U+10FFFF
      {"\xE4\xB8\xAD\xE4\xB8", "\xE4\xB8\xAD" + R},
      {"\x80\x80", R + R},
      {"\xFF", R},
      {"a\xC3", "a" + R},
  };
  for (const auto& c : cases) EXPECT_EQ(qs::unicode::utf8_lossy(c.in), c.out);
  // Non-final mode keeps an incomplete tail for later.
  std::string out;
  EXPECT_EQ(qs::unicode::append_lossy(out, "ab\xF0\x9F", false), 2u);
  EXPECT_EQ(out, "ab");
  EXPECT_EQ(qs::unicode::append_lossy(out, "\xF0\x9F\x98\x80", false), 4u);
  EXPECT_EQ(out, "ab\xF0\x9F\x98\x80");
  EXPECT_EQ(qs::unicode::find_invalid_utf8("ok"), std::string::npos);
  EXPECT_EQ(qs::unicode::find_invalid_utf8("0123456789\xC3\x28"), 10u);
}

TEST(Bpe, ArrayAndHeapMergeAgree) {
  const auto& m = v3().model();
  std::string text = bench_text();
  std::mt19937 rng(3);
  std::vector<int32_t> a, b;
  for (int i = 0; i < 20000; ++i) {
    size_t len = 1 + rng() % 120;
    std::string piece;
    if (i % 3 == 0) {
      for (size_t k = 0; k < len; ++k) piece.push_back(static_cast<char>(rng() % 256));
    } else if (i % 3 == 1) {
      piece = text.substr(rng() % (text.size() - len), len);
    } else {
      char c = "ab *x0\n"[rng() % 7];
      piece.assign(len, c);
      if (rng() % 2) piece[rng() % len] = 'b';
    }
    m.initial_symbols(piece, a);
    b = a;
    m.merge(a, qs::BpeModel::MergeAlgorithm::Quadratic);
    m.merge(b, qs::BpeModel::MergeAlgorithm::Heap);
    ASSERT_EQ(a, b) << "piece of " << len << " bytes";
  }
}

TEST(Bpe, CachedAndUncachedAgree) {
  const auto& m = v3().model();
  std::string text = bench_text();
  auto pieces = v3().pre_tokenizer().split(text.substr(0, 200000));
  std::vector<int32_t> first, second, direct;
  qs::BpeModel::clear_thread_cache();
  for (const auto& p : pieces) m.encode_piece(p, first);
  for (const auto& p : pieces) m.encode_piece(p, second);  // now from the cache
  EXPECT_EQ(first, second);
  std::vector<int32_t> syms;
  for (const auto& p : pieces) {
    m.initial_symbols(p, syms);
    m.merge(syms);
    direct.insert(direct.end(), syms.begin(), syms.end());
  }
  EXPECT_EQ(first, direct);
}

TEST(Tokenizer, ConcurrentEncodeIsDeterministic) {
  const auto& t = v3();
  std::string text = bench_text().substr(0, 300000);
  auto want = t.encode(text);
  std::vector<std::vector<int32_t>> got(4);
  std::vector<std::thread> threads;
  for (int k = 0; k < 4; ++k)
    threads.emplace_back([&, k] {
      for (int rep = 0; rep < 2; ++rep) got[k] = t.encode(text);
    });
  for (auto& th : threads) th.join();
  for (const auto& g : got) EXPECT_EQ(g, want);
  EXPECT_EQ(t.decode(want), text);
}

}  // namespace
