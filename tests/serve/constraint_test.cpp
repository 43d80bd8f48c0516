// JSON prefix machine and the constrained-output logits processor (serve/constraint.h).
// Validity is checked independently with nlohmann::json (the accepted prefixes, completed by
// the machine's closing text, must parse; random documents nlohmann writes must be accepted).
#include <gtest/gtest.h>

#include <random>

#include <nlohmann/json.hpp>

#include "qiusuo/serve/constraint.h"
#include "qiusuo/serve/tool_calls.h"

namespace qs::serve {
namespace {

bool accepts(const std::string& s, bool object_only = true) {
  JsonMachine m(object_only);
  return m.feed(s);
}
bool complete(const std::string& s, bool object_only = true) {
  JsonMachine m(object_only);
  return m.feed(s) && m.complete();
}

TEST(JsonMachine, AcceptsValidDocumentsByteByByte) {
  const char* docs[] = {
      R"({})",
      R"({"a":1})",
      R"({"a": [1, -2.5e+3, 0.25, 0, -0, 1E9], "b": {"c": null, "d": true, "e": false}})",
      R"({"s": "tab\t quote\" backslash\\ slash\/ \b\f\n\r \u00e9 \uD83D\uDE00 é 中文 😀"})",
      "{\n  \"k\": [\n    []\n  ],\n  \"\": {}\n}",
      R"({"deep": [[[[[[[[[[{"x": [1]}]]]]]]]]]]})",
  };
  for (const char* d : docs) {
    JsonMachine m;
    const std::string s = d;
    for (size_t i = 0; i < s.size(); ++i) {
      ASSERT_FALSE(m.complete()) << d << " complete early at " << i;
      ASSERT_TRUE(m.feed(uint8_t(s[i]))) << d << ": byte " << i << " rejected";
    }
    EXPECT_TRUE(m.complete()) << d;
    EXPECT_TRUE(nlohmann::json::accept(s)) << d;
  }
}

TEST(JsonMachine, RejectsInvalidText) {
  const char* bad[] = {
      " {}",           // leading whitespace (the document starts with its value)
      "[1]",           // json_object: the top level is an object
      "{}x", "{} ",    // nothing after the value
      "{,", "{\"a\" 1}", "{\"a\":}", "{\"a\":1,}", "{\"a\":[1,]}", "{\"a\":[,1]}", "{a:1}", "{'a':1}",
      "{\"a\":01}", "{\"a\":1.}", "{\"a\":-}", "{\"a\":.5}", "{\"a\":1e}", "{\"a\":+1}", "{\"a\":tru }",
      "{\"a\":nul", "{\"a\":\"\\x\"}", "{\"a\":\"\x01\"}", "{\"a\":\"\\u12g4\"}",
      "{\"a\":\"\xC0\x80\"}",       // overlong
      "{\"a\":\"\xED\xA0\x80\"}",   // a surrogate in UTF-8
      "{\"a\":\"\xF5\x80\x80\x80\"}", "{\"a\":\"\x80\"}",
      "{\"a\":\"\\udc00\"}",         // a lone low surrogate
      "{\"a\":\"\\ud800x\"}",        // a high surrogate not followed by a low one
      "{\"a\":\"\\ud800\\u0041\"}",
      "{\"a\":1}}",
  };
  for (const char* b : bad) {
    const std::string s = b;
    EXPECT_FALSE(complete(s) && nlohmann::json::accept(s)) << s;
    // Where the machine stops, nlohmann fails too: the rejected byte cannot continue a document.
    JsonMachine m;
    size_t i = 0;
    while (i < s.size() && m.feed(uint8_t(s[i]))) ++i;
    EXPECT_TRUE(i < s.size() || !m.complete()) << s;
  }
  std::string deep = "{\"a\":";
  for (int i = 0; i < JsonMachine::kMaxDepth; ++i) deep += "[";
  EXPECT_FALSE(accepts(deep));
  EXPECT_TRUE(accepts(deep.substr(0, deep.size() - 1)));
  EXPECT_FALSE(accepts("{\"a\":" + std::string(JsonMachine::kMaxWhitespace + 1, ' ')));
}

TEST(JsonMachine, ClosingCompletesEveryPrefix) {
  const std::string doc =
      R"({"s": "a\"b\u00e9\uD83D\uDE00 é😀", "n": [-1.5e-3, 0, 12], "o": {"t": true, "f": false, "z": null}, "e": []})";
  JsonMachine m;
  for (size_t i = 0; i <= doc.size(); ++i) {
    const std::string text = doc.substr(0, i) + m.closing();
    EXPECT_TRUE(nlohmann::json::accept(text)) << "prefix " << i << ": " << text;
    EXPECT_EQ(m.closing().size(), size_t(m.closing_length()));
    if (i < doc.size()) {
      ASSERT_TRUE(m.feed(uint8_t(doc[i])));
    }
  }
  // Mid-escape and mid-character states.
  for (const char* p : {"{\"a\":\"\\", "{\"a\":\"\\u00", "{\"a\":\"\\uD83D", "{\"a\":\"\\uD83D\\", "{\"a\":\"\xE4\xB8",
                        "{\"a\":\"\xF0\x9F", "{\"a\":t", "{\"a\":-", "{\"a\":1e+", "{\"a\":1.", "{\"a", "{\"a\""}) {
    JsonMachine k;
    ASSERT_TRUE(k.feed(std::string(p))) << p;
    EXPECT_TRUE(nlohmann::json::accept(std::string(p) + k.closing())) << p << k.closing();
  }
}

// Random walks: at every step a random byte the machine accepts; the text so far plus the
// closing is always a document nlohmann accepts, and a complete text is one.
TEST(JsonMachine, RandomWalksStayCompletable) {
  std::mt19937 rng(7);
  const std::string alphabet = "{}[]\":,0123456789-+.eEtrufalsn \n\\/bu\xC3\xA9\xE4\xB8\xAD\xF0\x9F\x98\x80\x01\x7F";
  for (int walk = 0; walk < 300; ++walk) {
    JsonMachine m;
    std::string text;
    for (int step = 0; step < 200 && !m.complete(); ++step) {
      std::vector<uint8_t> ok;
      for (int c = 0; c < 256; ++c) {
        JsonMachine t = m;
        if (t.feed(uint8_t(c))) ok.push_back(uint8_t(c));
      }
      ASSERT_FALSE(ok.empty()) << text;
      // Prefer bytes of the alphabet so walks reach structure, strings and escapes.
      std::vector<uint8_t> pref;
      for (uint8_t c : ok)
        if (alphabet.find(char(c)) != std::string::npos) pref.push_back(c);
      const auto& pick = pref.empty() || rng() % 8 == 0 ? ok : pref;
      const uint8_t c = pick[rng() % pick.size()];
      ASSERT_TRUE(m.feed(c));
      text.push_back(char(c));
      ASSERT_TRUE(nlohmann::json::accept(text + m.closing())) << "walk " << walk << ": " << text << m.closing();
    }
    if (m.complete()) {
      EXPECT_TRUE(nlohmann::json::accept(text));
    }
  }
}

nlohmann::json random_value(std::mt19937& rng, int depth) {
  const int k = int(rng() % (depth > 4 ? 5 : 7));
  switch (k) {
    case 0: return nullptr;
    case 1: return bool(rng() % 2);
    case 2: return (int64_t(rng()) - int64_t(1)) << 20;  // multiples of 2^20 up to 2^52
    case 3: return double(int32_t(rng())) / 977.0;
    case 4: {
      std::string s;
      const char* pieces[] = {"a", "\"", "\\", "\n", "\x01", "é", "中", "😀", " ", "/"};
      for (int i = int(rng() % 6); i > 0; --i) s += pieces[rng() % 10];
      return s;
    }
    case 5: {
      nlohmann::json a = nlohmann::json::array();
      for (int i = int(rng() % 4); i > 0; --i) a.push_back(random_value(rng, depth + 1));
      return a;
    }
    default: {
      nlohmann::json o = nlohmann::json::object();
      for (int i = int(rng() % 4); i > 0; --i) o["k" + std::to_string(rng() % 100)] = random_value(rng, depth + 1);
      return o;
    }
  }
}

TEST(JsonMachine, AcceptsWhatNlohmannWrites) {
  std::mt19937 rng(11);
  for (int i = 0; i < 500; ++i) {
    nlohmann::json o = nlohmann::json::object();
    o["v"] = random_value(rng, 0);
    for (int indent : {-1, 2}) {
      const std::string s = o.dump(indent, ' ', i % 2 == 0);
      EXPECT_TRUE(complete(s)) << s;
    }
  }
}

// ---- OutputConstraint over the DeepSeek-V3 tokenizer ------------------------------------------

class ConstraintTokens : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    tok_ = new Tokenizer(Tokenizer::load(std::string(QS_FIXTURES) + "/tokenizer/deepseek-v3"));
    vocab_ = std::make_shared<TokenBytes>(*tok_, 129280, std::vector<int32_t>{1});
  }
  static void TearDownTestSuite() {
    vocab_.reset();
    delete tok_;
  }
  // Samples uniformly among the allowed tokens until the end token or max_tokens.
  std::vector<int32_t> run(OutputConstraint& c, int64_t max_tokens, std::mt19937& rng) {
    std::vector<int32_t> gen;
    while (int64_t(gen.size()) < max_tokens) {
      const auto allowed = c.allowed(gen);
      EXPECT_FALSE(allowed.empty());
      if (allowed.empty()) break;
      const int32_t t = allowed[rng() % allowed.size()];
      gen.push_back(t);
      if (t == 1) break;
    }
    return gen;
  }
  std::string text(const std::vector<int32_t>& ids) {
    std::string s;
    for (int32_t t : ids)
      if (t != 1) s += std::string(tok_->id_to_bytes(t));
    return s;
  }
  static Tokenizer* tok_;
  static std::shared_ptr<TokenBytes> vocab_;
};
Tokenizer* ConstraintTokens::tok_ = nullptr;
std::shared_ptr<TokenBytes> ConstraintTokens::vocab_;

TEST_F(ConstraintTokens, JsonObjectIsCompleteWithinTheBudget) {
  std::mt19937 rng(3);
  for (int64_t budget : {2, 3, 5, 12, 40}) {
    for (int rep = 0; rep < 2; ++rep) {
      OutputConstraint c(vocab_, {ConstraintPhase::json(true)}, budget);
      const auto gen = run(c, budget, rng);
      ASSERT_LE(int64_t(gen.size()), budget);
      ASSERT_FALSE(gen.empty());
      EXPECT_EQ(gen.back(), 1) << "budget " << budget << ": ended without the end token: " << text(gen);
      const std::string s = text(gen);
      EXPECT_TRUE(nlohmann::json::accept(s)) << "budget " << budget << ": " << s;
      EXPECT_EQ(s.front(), '{') << s;
    }
  }
}

TEST_F(ConstraintTokens, NoAddedTokensInJsonAndOnlyTheEndAfterIt) {
  OutputConstraint c(vocab_, {ConstraintPhase::json(true)}, 100);
  const auto first = c.allowed({});
  for (int32_t t : first) {
    const std::string_view b = tok_->id_to_bytes(t);
    ASSERT_FALSE(b.empty());
    EXPECT_EQ(b[0], '{') << "token " << t;
    EXPECT_LT(t, 128000) << "an added token is allowed";
  }
  const int32_t open = tok_->encode("{")[0], close = tok_->encode("}")[0];
  OutputConstraint d(vocab_, {ConstraintPhase::json(true)}, 100);
  EXPECT_EQ(d.allowed(std::vector<int32_t>{open, close}), std::vector<int32_t>{1});
}

TEST_F(ConstraintTokens, ForcedSequencesThenJsonThenSequence) {
  const auto head_a = tok_->encode(std::string(kToolCallsBegin) + tool_call_head("get_weather", true));
  const auto head_b = tok_->encode(std::string(kToolCallsBegin) + tool_call_head("get_time", true));
  const auto tail = tok_->encode(tool_call_tail() + kToolCallsEnd);
  std::mt19937 rng(5);
  for (int rep = 0; rep < 2; ++rep) {
    OutputConstraint c(vocab_,
                       {ConstraintPhase::sequences({head_a, head_b}), ConstraintPhase::json(true),
                        ConstraintPhase::sequences({tail})},
                       64);
    const auto gen = run(c, 64, rng);
    ASSERT_EQ(gen.back(), 1);
    // The text parses back into one call of one of the two functions with JSON arguments.
    ToolCallParser p;
    std::string all;
    for (int32_t t : gen)
      if (t != 1) all += std::string(tok_->id_to_bytes(t));
    auto out = p.push(all);
    auto fin = p.finish();
    ASSERT_EQ(out.calls.size(), 1u) << all;
    EXPECT_TRUE(out.calls[0].name == "get_weather" || out.calls[0].name == "get_time");
    EXPECT_TRUE(nlohmann::json::parse(out.calls[0].arguments).is_object()) << out.calls[0].arguments;
    EXPECT_EQ(out.content + fin.content, "");
  }
}

TEST_F(ConstraintTokens, ReasoningIsFreeUntilTheMarker) {
  const auto think = tok_->encode("Let me think.</think>\n\n");
  OutputConstraint c(vocab_, {ConstraintPhase::until("</think>"), ConstraintPhase::json(true)}, 200);
  EXPECT_EQ(c.allowed({}).size(), 129280u);  // free text
  const auto allowed = c.allowed(think);
  ASSERT_FALSE(allowed.empty());
  for (int32_t t : allowed) EXPECT_EQ(tok_->id_to_bytes(t)[0], '{');
}

TEST_F(ConstraintTokens, ProcessorMasksLogitsAndKeepsStatePerCopy) {
  OutputConstraint c(vocab_, {ConstraintPhase::json(true)}, 50);
  std::vector<float> logits(129280, 0.5f);
  c({}, logits.data(), int64_t(logits.size()));
  size_t finite = 0;
  for (float x : logits) finite += std::isfinite(x);
  EXPECT_EQ(finite, c.allowed({}).size());
  // A copy (the engine forks n samples) follows its own tokens.
  OutputConstraint a = c, b = c;
  const int32_t open = tok_->encode("{")[0];
  const int32_t open_str = tok_->encode("{\"")[0];
  EXPECT_NE(a.allowed(std::vector<int32_t>{open}), b.allowed(std::vector<int32_t>{open_str}));
}

}  // namespace
}  // namespace qs::serve
