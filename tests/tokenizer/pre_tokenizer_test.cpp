// The hand-compiled DeepSeek-V3 pre-tokenizer against the general PCRE2 path: character classes
// on every code point, identical splits on every code point alone and in small contexts, on the
// fixture texts, the benchmark text and a few hundred thousand random tricky strings. Also the
// general path's Split behaviours and the other pre-tokenizer types.
#include "qiusuo/tokenizer/pre_tokenizer.h"

#include <gtest/gtest.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <fstream>
#include <random>
#include <sstream>

#include "qiusuo/core/error.h"
#include "qiusuo/tokenizer/unicode.h"

namespace {

const std::string kFixtures = std::string(QS_FIXTURES) + "/tokenizer";

nlohmann::json read_json(const std::string& path) {
  std::ifstream f(path);
  return nlohmann::json::parse(f);
}

const qs::PreTokenizer& deepseek() {
  static const qs::PreTokenizer pt =
      qs::PreTokenizer::from_json(read_json(kFixtures + "/deepseek-v3/tokenizer.json")["pre_tokenizer"]);
  return pt;
}

std::string utf8(uint32_t cp) {
  std::string s;
  qs::unicode::append_utf8(s, cp);
  return s;
}

bool is_scalar(uint32_t cp) { return cp < 0xD800 || (cp >= 0xE000 && cp < 0x110000); }

std::string show(const std::vector<std::string>& pieces) {
  std::string out;
  for (const auto& p : pieces) out += "[" + p + "]";
  return out;
}

// Compares the fast and the PCRE2 path on one text; returns false (with a message) on mismatch.
::testing::AssertionResult same_split(const std::string& text) {
  static const qs::PreTokenizer slow = deepseek().without_fast_path();
  auto a = deepseek().split(text);
  auto b = slow.split(text);
  if (a == b) return ::testing::AssertionSuccess();
  std::string hex;
  for (unsigned char c : text) {
    char buf[4];
    snprintf(buf, sizeof(buf), "%02X", c);
    hex += buf;
  }
  return ::testing::AssertionFailure() << "text bytes " << hex << "\n fast:  " << show(a) << "\n pcre2: " << show(b);
}

TEST(PreTokenizer, DeepSeekDetected) {
  EXPECT_TRUE(deepseek().fast_path());
  EXPECT_TRUE(deepseek().byte_level());
  EXPECT_FALSE(deepseek().without_fast_path().fast_path());
  EXPECT_TRUE(qs::PreTokenizer::from_json(qs::PreTokenizer::deepseek_v3_json()).fast_path());
  EXPECT_EQ(qs::PreTokenizer::deepseek_v3_json(), read_json(kFixtures + "/deepseek-v3/tokenizer.json")["pre_tokenizer"]);
  // Any change disables the fast path.
  auto j = qs::PreTokenizer::deepseek_v3_json();
  j["pretokenizers"][0]["behavior"] = "Removed";
  EXPECT_FALSE(qs::PreTokenizer::from_json(j).fast_path());
  j = qs::PreTokenizer::deepseek_v3_json();
  j["pretokenizers"][3]["add_prefix_space"] = true;
  EXPECT_FALSE(qs::PreTokenizer::from_json(j).fast_path());
}

TEST(PreTokenizer, ReadmeExamples) {
  const auto& pt = deepseek();
  EXPECT_EQ(show(pt.split("1234567")), "[123][456][7]");
  EXPECT_EQ(show(pt.split("3.14159265358979")), "[3][.][141][592][653][589][79]");
  EXPECT_EQ(show(pt.split("8080。")), "[808][0][。]");
  EXPECT_EQ(show(pt.split("word    word")), "[word][   ][ word]");
  EXPECT_EQ(show(pt.split("Don't-Ind")), "[Don]['t][-Ind]");
  EXPECT_EQ(show(pt.split("end.\n\nNext")), "[end][.\n\n][Next]");
  EXPECT_EQ(show(pt.split("a  \n\nb")), "[a][  \n\n][b]");
  EXPECT_EQ(show(pt.split("abc中文def")), "[abc][中文][def]");
  EXPECT_EQ(show(pt.split(" 中文")), "[ ][中文]");
  EXPECT_EQ(show(pt.split("trailing  ")), "[trailing][  ]");
}

// Every flag of the generated table equals what PCRE2 (with the \s rewrite) says.
TEST(UnicodeTable, AgreesWithPcre2OnEveryCodePoint) {
  using namespace qs::unicode;
  struct Prop {
    uint8_t flag;
    std::string pattern;
  };
  // The patterns as the PCRE2 path compiles them (\s rewritten, Unicode 15-16 additions added).
  std::vector<Prop> props = {{kL, "\\p{L}"},       {kM, "\\p{M}"},        {kN, "\\p{N}"},
                             {kP, "\\p{P}"},       {kS, "\\p{S}"},        {kWS, "\\s"},
                             {kCRLF, "[\\r\\n]"}, {kCJK, "[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]"}};
  for (auto& p : props) p.pattern = qs::translate_regex_for_pcre2(p.pattern);
  EXPECT_STREQ(kTableUnicodeVersion, "16.0.0");
  for (const auto& p : props) {
    int err;
    PCRE2_SIZE off;
    pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(p.pattern.data()), p.pattern.size(),
                                     PCRE2_UTF | PCRE2_UCP, &err, &off, nullptr);
    ASSERT_NE(code, nullptr) << p.pattern;
    pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
    pcre2_match_data* md = pcre2_match_data_create(1, nullptr);
    size_t mismatches = 0;
    for (uint32_t cp = 0; cp < 0x110000; ++cp) {
      if (!is_scalar(cp)) continue;
      std::string s = utf8(cp);
      bool pc = pcre2_match(code, reinterpret_cast<PCRE2_SPTR>(s.data()), s.size(), 0,
                            PCRE2_ANCHORED | PCRE2_ENDANCHORED, md, nullptr) >= 0;
      bool tb = (char_class(cp) & p.flag) != 0;
      if (pc != tb && ++mismatches <= 5) ADD_FAILURE() << p.pattern << " U+" << std::hex << cp << " pcre2=" << pc;
    }
    EXPECT_EQ(mismatches, 0u) << p.pattern;
    pcre2_match_data_free(md);
    pcre2_code_free(code);
  }
  // \s means White_Space (Oniguruma, Rust): U+180E is not in it, U+0085 is.
  EXPECT_FALSE(char_class(0x180E) & kWS);
  EXPECT_TRUE(char_class(0x85) & kWS);
}

TEST(FastPathEquivalence, EveryCodePointAlone) {
  size_t failures = 0;
  for (uint32_t cp = 0; cp < 0x110000; ++cp) {
    if (!is_scalar(cp)) continue;
    auto r = same_split(utf8(cp));
    if (!r && ++failures <= 10) ADD_FAILURE() << "U+" << std::hex << cp << " " << r.message();
  }
  EXPECT_EQ(failures, 0u);
}

TEST(FastPathEquivalence, EveryCodePointInContexts) {
  // Contexts around X chosen to exercise each regex alternative and piece boundary.
  const std::vector<std::pair<std::string, std::string>> contexts = {
      {"a", "b"},        {" ", " "},    {" ", ""},      {"", " "},          {"'", "s"},
      {"1", "1"},        {"\n", "\n"},  {"中", "文"},   {"a", "\u0301"},    {"\u00A0", "x"},
      {" ", "\r\n"},     {"!", "?"},    {"\t", "a"},    {"x", "  y"},       {"\u0085", "\u2028"},
      {"-", "Z"},        {"", "123"},   {"ア", "ー"},   {"\u200B", "\u3000"}, {"..", "\n\n"}};
  std::vector<uint32_t> cps;
  for (uint32_t cp = 0; cp < 0x10000; ++cp)
    if (is_scalar(cp)) cps.push_back(cp);
  // Astral planes: every code point at a class boundary, its neighbours, and a sample.
  for (uint32_t i = 0; i < qs::unicode::kClassRunCount; ++i) {
    uint32_t s = qs::unicode::kClassRuns[i] >> 8;
    for (uint32_t d : {0u, 1u, 2u})
      if (s >= 0x10000 + d) cps.push_back(s - d);
    cps.push_back(s + 1);
  }
  for (uint32_t cp = 0x10000; cp < 0x110000; cp += 61) cps.push_back(cp);
  size_t failures = 0, texts = 0;
  for (const auto& [pre, post] : contexts) {
    // Each X alone in its context, and 24 contexts back to back (cross-context interactions).
    std::string batch;
    for (size_t k = 0; k < cps.size(); ++k) {
      if (cps[k] >= 0x110000) continue;
      std::string one = pre + utf8(cps[k]) + post;
      if (cps[k] < 0x3100 || k % 7 == 0) {  // alone: dense where scripts are mixed
        ++texts;
        auto r = same_split(one);
        if (!r && ++failures <= 10) ADD_FAILURE() << r.message();
      }
      batch += one;
      if (k % 24 == 23) {
        ++texts;
        auto r = same_split(batch);
        if (!r && ++failures <= 10) ADD_FAILURE() << r.message();
        batch.clear();
      }
    }
  }
  EXPECT_EQ(failures, 0u);
  EXPECT_GT(texts, 100000u);
}

std::vector<uint32_t> tricky_alphabet() {
  std::vector<uint32_t> a;
  for (char c : std::string("azAZ09 !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")) a.push_back(static_cast<unsigned char>(c));
  for (uint32_t c : {0x09u, 0x0Au, 0x0Bu, 0x0Cu, 0x0Du, 0x00u, 0x07u, 0x1Fu, 0x7Fu}) a.push_back(c);
  // Digits and numbers of many scripts.
  for (uint32_t c : {0x0660u, 0x0669u, 0x06F0u, 0x0966u, 0x09E6u, 0x0E50u, 0xFF10u, 0xFF19u, 0x00B2u, 0x00BDu,
                     0x2160u, 0x216Bu, 0x3007u, 0x3021u, 0x1D7CEu, 0x1D7FFu, 0x2460u, 0x10107u})
    a.push_back(c);
  // CJK boundaries, kana, Hangul, CJK ext B, compatibility ideographs.
  for (uint32_t c : {0x4E00u, 0x4E2Du, 0x9FA5u, 0x9FA6u, 0x9FFFu, 0x4DFFu, 0x3040u, 0x3041u, 0x3099u, 0x309Bu, 0x309Fu,
                     0x30A0u, 0x30A2u, 0x30FBu, 0x30FCu, 0x30FFu, 0x3100u, 0x31F0u, 0xFF66u, 0xFF9Eu, 0xAC00u, 0xD7A3u,
                     0x1100u, 0x20000u, 0x2A6DFu, 0xF900u, 0x3001u, 0x3002u, 0xFF0Cu})
    a.push_back(c);
  // Letters of other scripts, combining marks, ZWJ/ZWNJ, variation selectors.
  for (uint32_t c : {0x00E9u, 0x00DFu, 0x0391u, 0x0416u, 0x05D0u, 0x0627u, 0x0E01u, 0x0E31u, 0x0301u, 0x0308u,
                     0x034Fu, 0x0E48u, 0x093Fu, 0x200Cu, 0x200Du, 0xFE0Fu, 0xE0100u, 0x1D518u, 0x02B0u})
    a.push_back(c);
  // Punctuation and symbols.
  for (uint32_t c : {0x00A1u, 0x00ABu, 0x00BFu, 0x2014u, 0x2018u, 0x201Cu, 0x2026u, 0x00A9u, 0x00B0u, 0x20ACu,
                     0x2192u, 0x221Eu, 0x2605u, 0xFF01u, 0xFF1Fu, 0x300Cu, 0x00ACu, 0x02C6u, 0x0060u})
    a.push_back(c);
  // Emoji, ZWJ sequences' parts, regional indicators, skin tones.
  for (uint32_t c : {0x1F600u, 0x1F468u, 0x1F469u, 0x1F467u, 0x1F1EFu, 0x1F1F5u, 0x1F3FBu, 0x2764u, 0x1F44Du})
    a.push_back(c);
  // Whitespace and format characters.
  for (uint32_t c : {0x0085u, 0x00A0u, 0x1680u, 0x180Eu, 0x2000u, 0x2003u, 0x2009u, 0x200Au, 0x200Bu, 0x2028u,
                     0x2029u, 0x202Fu, 0x205Fu, 0x3000u, 0xFEFFu, 0x200Eu, 0x200Fu, 0x00ADu})
    a.push_back(c);
  // Assigned in Unicode 15.0-16.0 (PCRE2 10.42 knows Unicode 14.0 only).
  for (uint32_t c : {0x1C89u, 0x0897u, 0x1FAE8u, 0x1FA77u, 0x11F50u, 0x31350u, 0x2EBF0u, 0x134F7u, 0x10D40u})
    a.push_back(c);
  // Private use, unassigned, noncharacters.
  for (uint32_t c : {0xE000u, 0xF8FFu, 0x0378u, 0xFFFEu, 0x10FFFFu, 0x1FFFEu, 0xFFFDu}) a.push_back(c);
  return a;
}

TEST(FastPathEquivalence, RandomTrickyStrings) {
  auto alpha = tricky_alphabet();
  std::mt19937_64 rng(20250101);
  // Bias towards runs: repeat the previous character with some probability.
  size_t failures = 0;
  const int kStrings = 300000;
  for (int i = 0; i < kStrings; ++i) {
    size_t len = 1 + rng() % (i % 10 == 0 ? 64 : 16);
    std::string s;
    uint32_t prev = 'a';
    for (size_t k = 0; k < len; ++k) {
      uint32_t c = (rng() % 4 == 0) ? prev : alpha[rng() % alpha.size()];
      s += utf8(c);
      prev = c;
    }
    auto r = same_split(s);
    if (!r && ++failures <= 10) ADD_FAILURE() << r.message();
  }
  EXPECT_EQ(failures, 0u);
}

TEST(FastPathEquivalence, LongRandomStringsAndBenchText) {
  auto alpha = tricky_alphabet();
  std::mt19937_64 rng(99);
  for (int i = 0; i < 200; ++i) {
    std::string s;
    for (int k = 0; k < 3000; ++k) s += utf8(alpha[rng() % alpha.size()]);
    EXPECT_TRUE(same_split(s));
  }
  std::ifstream f(kFixtures + "/bench/mixed_1mib.txt", std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  std::string text = ss.str();
  ASSERT_EQ(text.size(), 1048576u);
  EXPECT_TRUE(same_split(text));
  // Line by line as well (different piece boundaries at the ends).
  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    size_t end = nl == std::string::npos ? text.size() : nl + 1;
    ASSERT_TRUE(same_split(text.substr(start, end - start)));
    start = end;
  }
}

// ---- general path ----------------------------------------------------------------------------

std::vector<std::string> run(const nlohmann::json& j, const std::string& text) {
  return qs::PreTokenizer::from_json(j).split(text);
}

TEST(GeneralPreTokenizer, SplitBehaviours) {
  // The examples of tokenizers' SplitDelimiterBehavior documentation.
  auto split = [](const char* behavior) {
    return nlohmann::json{{"type", "Split"}, {"pattern", {{"String", "-"}}}, {"behavior", behavior}, {"invert", false}};
  };
  const std::string t = "the-final--countdown";
  EXPECT_EQ(show(run(split("Removed"), t)), "[the][final][countdown]");
  EXPECT_EQ(show(run(split("Isolated"), t)), "[the][-][final][-][-][countdown]");
  EXPECT_EQ(show(run(split("MergedWithPrevious"), t)), "[the-][final-][-][countdown]");
  EXPECT_EQ(show(run(split("MergedWithNext"), t)), "[the][-final][-][-countdown]");
  EXPECT_EQ(show(run(split("Contiguous"), t)), "[the][-][final][--][countdown]");
  auto inv = split("Removed");
  inv["invert"] = true;
  EXPECT_EQ(show(run(inv, t)), "[-][-][-]");
  // Literal patterns are not regexes.
  auto dot = nlohmann::json{{"type", "Split"}, {"pattern", {{"String", "."}}}, {"behavior", "Removed"}};
  EXPECT_EQ(show(run(dot, "a.b+c")), "[a][b+c]");
  auto re = nlohmann::json{{"type", "Split"}, {"pattern", {{"Regex", "\\s+"}}}, {"behavior", "Removed"}};
  EXPECT_EQ(show(run(re, "a \u00a0b\u2003c\u180Ed")), "[a][b][c\u180Ed]");
}

TEST(GeneralPreTokenizer, OtherTypes) {
  EXPECT_EQ(show(run({{"type", "Digits"}, {"individual_digits", true}}, "Call 123 please")),
            "[Call ][1][2][3][ please]");
  EXPECT_EQ(show(run({{"type", "Digits"}, {"individual_digits", false}}, "Call 123 please")), "[Call ][123][ please]");
  EXPECT_EQ(show(run({{"type", "Whitespace"}}, "Hey friend!  How's it?")), "[Hey][friend][!][How]['][s][it][?]");
  EXPECT_EQ(show(run({{"type", "WhitespaceSplit"}}, "Hey friend!\u2003x")), "[Hey][friend!][x]");
  EXPECT_EQ(show(run({{"type", "Punctuation"}}, "Hey friend!$")), "[Hey friend][!][$]");
  // ByteLevel with the GPT-2 regex and a prefix space (pieces are raw bytes).
  EXPECT_EQ(show(run({{"type", "ByteLevel"}, {"add_prefix_space", true}}, "Hello my friend, 42")),
            "[ Hello][ my][ friend][,][ 42]");
  EXPECT_EQ(show(run({{"type", "ByteLevel"}, {"add_prefix_space", false}}, "it's  ok\n")), "[it]['s][ ][ ok][\n]");
  EXPECT_EQ(show(run({{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}, "a b")), "[a b]");
  EXPECT_EQ(show(run(nullptr, "a b")), "[a b]");
  EXPECT_THROW(run({{"type", "Sequence"}, {"pretokenizers", {{{"type", "ByteLevel"}}, {{"type", "Digits"}}}}}, "x"),
               qs::Error);
}

TEST(GeneralPreTokenizer, RegexTranslation) {
  EXPECT_EQ(qs::translate_regex_for_pcre2("\\s+(?!\\S)"), "\\p{White_Space}+(?!\\P{White_Space})");
  EXPECT_EQ(qs::translate_regex_for_pcre2("[^\\s\\p{L}]").substr(0, 30), "[^\\p{White_Space}\\p{L}\\x{1C89}");
  EXPECT_EQ(qs::translate_regex_for_pcre2("a\\\\s"), "a\\\\s");  // escaped backslash, then 's'
  EXPECT_EQ(qs::translate_regex_for_pcre2("\\w+"), "[\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\p{Join_Control}]+");
  // General categories get the code points Unicode 15.0-16.0 assigned (PCRE2 10.42 has 14.0).
  std::string n = qs::translate_regex_for_pcre2("\\p{N}{1,3}");
  EXPECT_EQ(n.substr(0, 8), "[\\p{N}\\x");
  EXPECT_EQ(n.substr(n.size() - 7), "}]{1,3}");
  EXPECT_EQ(qs::translate_regex_for_pcre2("\\p{Lu}"), "\\p{Lu}");
  EXPECT_EQ(qs::translate_regex_for_pcre2("\\P{L}").substr(0, 7), "[^\\p{L}");
  EXPECT_THROW(qs::translate_regex_for_pcre2("[\\P{L}]"), qs::Error);
}

TEST(PreTokenizer, Unicode16Letters) {
  // Code points assigned after Unicode 14.0 are classified as tokenizers 0.23.2 (Unicode 16.0)
  // does: U+1C89 CYRILLIC CAPITAL LETTER TJE (16.0) is a letter, U+1FAE8 SHAKING FACE (15.0) a
  // symbol, U+11F50 KAWI DIGIT ZERO (15.0) a number.
  const auto& pt = deepseek();
  EXPECT_EQ(show(pt.split("a \u1C89x")), "[a][ \u1C89x]");
  EXPECT_EQ(show(pt.split("a \U0001FAE8\U0001FAE8")), "[a][ \U0001FAE8\U0001FAE8]");
  EXPECT_EQ(show(pt.split("x\U00011F50\U00011F51\U00011F52\U00011F53")), "[x][\U00011F50\U00011F51\U00011F52][\U00011F53]");
}

}  // namespace
