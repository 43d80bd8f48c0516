// Tokenizer against the DeepSeek-V3/R1 fixtures (shared/fixtures/tokenizer), plus input
// validation, malformed tokenizer.json, post-processors and the streaming decoder.
#include "qiusuo/tokenizer/tokenizer.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>

#include "qiusuo/core/error.h"
#include "qiusuo/tokenizer/unicode.h"

namespace {

const std::string kFixtures = std::string(QS_FIXTURES) + "/tokenizer";

nlohmann::json read_json(const std::string& path) {
  std::ifstream f(path);
  EXPECT_TRUE(f.good()) << path;
  return nlohmann::json::parse(f);
}

const qs::Tokenizer& tok(const std::string& name) {
  static std::map<std::string, qs::Tokenizer> cache;
  auto it = cache.find(name);
  if (it == cache.end()) it = cache.emplace(name, qs::Tokenizer::load(kFixtures + "/" + name)).first;
  return it->second;
}

const nlohmann::json& cases() {
  static const nlohmann::json c = read_json(kFixtures + "/cases.json");
  return c;
}

std::vector<int32_t> ids_of(const nlohmann::json& j) { return j.get<std::vector<int32_t>>(); }

std::string label(const nlohmann::json& c, size_t i) {
  return "case " + std::to_string(i) + " [" + c["group"].get<std::string>() + "] " + c["text"].dump().substr(0, 80);
}

bool valid_utf8(const std::string& s) { return qs::unicode::find_invalid_utf8(s) == std::string::npos; }

// ---- fixture cases ---------------------------------------------------------------------------

TEST(TokenizerFixtures, LoadsDeepSeekFiles) {
  const auto& v3 = tok("deepseek-v3");
  EXPECT_EQ(v3.vocab_size(), 128815);
  EXPECT_EQ(v3.bos_id(), 0);
  EXPECT_EQ(v3.eos_id(), 1);
  EXPECT_EQ(v3.pad_id(), 1);
  EXPECT_TRUE(v3.add_bos_token());
  EXPECT_FALSE(v3.add_eos_token());
  EXPECT_EQ(v3.bos_token(), "<｜begin▁of▁sentence｜>");
  EXPECT_EQ(v3.eos_token(), "<｜end▁of▁sentence｜>");
  EXPECT_EQ(v3.pad_token(), "<｜end▁of▁sentence｜>");
  EXPECT_FALSE(v3.chat_template().empty());
  EXPECT_EQ(v3.config_json()["tokenizer_class"], "LlamaTokenizerFast");
  EXPECT_TRUE(v3.pre_tokenizer().fast_path());
  EXPECT_EQ(v3.added_tokens().size(), 818u);
  EXPECT_EQ(v3.token_to_id("<｜User｜>"), 128803);
  EXPECT_EQ(v3.id_to_token(128803), "<｜User｜>");
  EXPECT_EQ(v3.token_to_id("Ġthe"), 270);
  EXPECT_EQ(v3.token_to_id("no such token"), -1);
  EXPECT_TRUE(v3.is_special(0));
  EXPECT_FALSE(v3.is_special(128803));
  EXPECT_THROW(v3.id_to_token(128815), qs::Error);
  EXPECT_THROW(v3.id_to_token(-1), qs::Error);
  const auto& r1 = tok("deepseek-r1");
  EXPECT_EQ(r1.token_to_id("<think>"), 128798);
  EXPECT_EQ(r1.vocab_size(), 128815);
}

TEST(TokenizerFixtures, AllCasesMatch) {
  const auto& cs = cases();
  ASSERT_EQ(cs.size(), 167u);
  size_t checked = 0;
  for (size_t i = 0; i < cs.size(); ++i) {
    const auto& c = cs[i];
    const auto& t = tok(c["tokenizer"].get<std::string>());
    std::string text = c["text"].get<std::string>();
    SCOPED_TRACE(label(c, i));
    auto ids = t.encode(text, false);
    ASSERT_EQ(ids, ids_of(c["ids"]));
    auto ids_sp = t.encode(text, true);
    EXPECT_EQ(ids_sp, ids_of(c["ids_with_special"]));
    std::vector<std::string> toks;
    for (int32_t id : ids) toks.push_back(t.id_to_token(id));
    EXPECT_EQ(toks, c["tokens"].get<std::vector<std::string>>());
    EXPECT_EQ(t.decode(ids, false), c["decoded"].get<std::string>());
    EXPECT_EQ(t.decode(ids_sp, true), c["decoded_skip_special"].get<std::string>());
    ++checked;
  }
  EXPECT_EQ(checked, 167u);
}

TEST(TokenizerFixtures, GenericPathMatchesToo) {
  // The same cases through the PCRE2 pre-tokenizer (fast path disabled) give the same pieces.
  const auto& cs = cases();
  for (size_t i = 0; i < cs.size(); ++i) {
    SCOPED_TRACE(label(cs[i], i));
    const auto& t = tok(cs[i]["tokenizer"].get<std::string>());
    std::string text = cs[i]["text"].get<std::string>();
    EXPECT_EQ(t.pre_tokenizer().split(text), t.pre_tokenizer().without_fast_path().split(text));
  }
}

TEST(TokenizerFixtures, ChatCasesIds) {
  auto cc = read_json(kFixtures + "/chat_cases.json");
  ASSERT_EQ(cc.size(), 21u);
  for (size_t i = 0; i < cc.size(); ++i) {
    const auto& c = cc[i];
    SCOPED_TRACE("chat case " + std::to_string(i));
    const auto& t = tok(c["tokenizer"].get<std::string>());
    std::string rendered = c["rendered"].get<std::string>();
    EXPECT_EQ(t.encode(rendered, false), ids_of(c["ids"]));
    EXPECT_EQ(t.decode(t.encode(rendered)), rendered);
  }
}

TEST(TokenizerFixtures, SaveAndReloadDeepSeek) {
  auto dir = std::filesystem::temp_directory_path() / "qs_tok_resave";
  std::filesystem::remove_all(dir);
  const auto& r1 = tok("deepseek-r1");
  r1.save(dir.string());
  auto again = qs::Tokenizer::load(dir.string());
  EXPECT_EQ(again.vocab_size(), r1.vocab_size());
  EXPECT_EQ(again.added_tokens().size(), r1.added_tokens().size());
  EXPECT_EQ(again.model().merges(), r1.model().merges());
  EXPECT_EQ(again.chat_template(), r1.chat_template());
  EXPECT_TRUE(again.pre_tokenizer().fast_path());
  for (const auto& c : cases()) {
    std::string text = c["text"].get<std::string>();
    EXPECT_EQ(again.encode(text, true), r1.encode(text, true));
  }
  // The rewritten tokenizer.json holds the same content as the original.
  auto orig = read_json(kFixtures + "/deepseek-r1/tokenizer.json");
  auto saved = read_json((dir / "tokenizer.json").string());
  EXPECT_EQ(saved["model"]["vocab"], orig["model"]["vocab"]);
  EXPECT_EQ(saved["model"]["merges"], orig["model"]["merges"]);
  EXPECT_EQ(saved["added_tokens"], orig["added_tokens"]);
  EXPECT_EQ(saved["pre_tokenizer"], orig["pre_tokenizer"]);
  EXPECT_EQ(saved["decoder"], orig["decoder"]);
  std::filesystem::remove_all(dir);
}

TEST(TokenizerFixtures, ChatTemplateFromConfig) {
  auto cfg = read_json(kFixtures + "/deepseek-r1/tokenizer_config.json");
  EXPECT_EQ(tok("deepseek-r1").chat_template(), cfg["chat_template"].get<std::string>());
}

// ---- streaming -------------------------------------------------------------------------------

std::string stream_all(const qs::Tokenizer& t, const std::vector<int32_t>& ids, bool skip, bool check_each) {
  qs::StreamDecoder sd(t, skip);
  std::string all;
  for (int32_t id : ids) {
    std::string piece = sd.push(id);
    if (check_each) {
      EXPECT_TRUE(valid_utf8(piece)) << "push(" << id << ") returned broken UTF-8";
    }
    all += piece;
  }
  std::string rest = sd.flush();
  EXPECT_TRUE(valid_utf8(rest));
  return all + rest;
}

TEST(StreamDecoder, ConcatenationEqualsDecodeForAllCases) {
  const auto& cs = cases();
  for (size_t i = 0; i < cs.size(); ++i) {
    const auto& c = cs[i];
    SCOPED_TRACE(label(c, i));
    const auto& t = tok(c["tokenizer"].get<std::string>());
    auto ids = ids_of(c["ids"]);
    EXPECT_EQ(stream_all(t, ids, false, true), t.decode(ids));
    auto ids_sp = ids_of(c["ids_with_special"]);
    EXPECT_EQ(stream_all(t, ids_sp, true, true), c["decoded_skip_special"].get<std::string>());
  }
}

TEST(StreamDecoder, BuffersEmojiSplitAcrossTokens) {
  const auto& t = tok("deepseek-v3");
  // Family ZWJ sequence (11 tokens) and other multi-token characters.
  for (std::string text : {std::string("👨‍👩‍👧‍👦 family"), std::string("a😀b🇯🇵c"), std::string("𝔘𝔫𝔦 𠀀𠀁")}) {
    auto ids = t.encode(text);
    qs::StreamDecoder sd(t);
    std::string all;
    size_t held = 0;
    for (int32_t id : ids) {
      std::string p = sd.push(id);
      EXPECT_TRUE(valid_utf8(p));
      held += sd.pending_bytes() > 0;
      all += p;
    }
    all += sd.flush();
    EXPECT_EQ(all, text);
    EXPECT_GT(held, 0u) << "expected some tokens to end inside a character";
  }
}

TEST(StreamDecoder, InvalidBytesBecomeReplacementLikeDecode) {
  const auto& t = tok("deepseek-v3");
  // Single byte tokens: find ids for raw bytes 0xF0 0x9F (truncated 4-byte sequence), 0xFF, 'a'.
  auto byte_id = [&](unsigned char b) {
    std::string s;
    qs::unicode::append_utf8(s, qs::byte_level::byte_to_char(b));
    return t.token_to_id(s);
  };
  std::vector<int32_t> ids = {byte_id('a'), byte_id(0xF0), byte_id(0x9F), byte_id('b'), byte_id(0xFF),
                              byte_id(0xE4), byte_id(0xB8)};
  for (int32_t id : ids) ASSERT_GE(id, 0);
  std::string d = t.decode(ids);
  EXPECT_EQ(d, "a\uFFFDb\uFFFD\uFFFD");
  EXPECT_EQ(stream_all(t, ids, false, true), d);
  // Random id sequences, including unknown ids (skipped) and specials.
  std::mt19937 rng(7);
  for (int iter = 0; iter < 300; ++iter) {
    std::vector<int32_t> r;
    int n = 1 + static_cast<int>(rng() % 40);
    for (int k = 0; k < n; ++k) {
      uint32_t pick = rng() % 10;
      r.push_back(pick < 6 ? static_cast<int32_t>(rng() % 256 + 0)       // low ids: many single bytes
                  : pick < 9 ? static_cast<int32_t>(rng() % 129300)     // anything, incl. holes
                             : static_cast<int32_t>(128000 + rng() % 815));
    }
    EXPECT_EQ(stream_all(t, r, false, true), t.decode(r));
    EXPECT_EQ(stream_all(t, r, true, true), t.decode(r, true));
  }
}

TEST(Decode, UnknownIdsAreSkipped) {
  const auto& t = tok("deepseek-v3");
  std::vector<int32_t> ids = {19923, 129000, -5, 14};
  EXPECT_EQ(t.decode(ids), "Hello,");
}

// ---- input validation ------------------------------------------------------------------------

TEST(Encode, InvalidUtf8NamesOffset) {
  const auto& t = tok("deepseek-v3");
  struct Bad {
    std::string text;
    size_t offset;
  };
  std::vector<Bad> bad = {{"abc\xff", 3},           {"\xc0\xaf", 0},          {"ok \xed\xa0\x80 surrogate", 3},
                          {"\xe4\xb8", 0},          {"x\xf4\x90\x80\x80", 1}, {"12345678\x80", 8},
                          {"héllo\xe2\x82", 6}};
  for (const auto& b : bad) {
    try {
      t.encode(b.text);
      ADD_FAILURE() << "no error for " << nlohmann::json(std::vector<int>(b.text.begin(), b.text.end())).dump();
    } catch (const qs::Error& e) {
      std::string msg = e.what();
      EXPECT_NE(msg.find("UTF-8"), std::string::npos) << msg;
      EXPECT_NE(msg.find("offset " + std::to_string(b.offset)), std::string::npos) << msg;
    }
  }
  EXPECT_NO_THROW(t.encode(std::string("nul\0char", 8)));
  EXPECT_TRUE(t.encode("").empty());
  EXPECT_EQ(t.encode("", true), std::vector<int32_t>{0});
}

// ---- malformed tokenizer.json ----------------------------------------------------------------

nlohmann::json tiny_tokenizer() {
  // A small byte-level BPE: the 256 byte tokens, merges for "hello" and " world".
  nlohmann::json vocab = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) vocab[qs::byte_level::encode(std::string(1, static_cast<char>(b)))] = b;
  std::vector<std::string> merges = {"h e", "l l", "he ll", "hell o", "Ġ w", "o r", "Ġw or", "l d", "Ġwor ld"};
  int next = 256;
  for (const auto& m : merges) {
    auto sp = m.find(' ');
    vocab[m.substr(0, sp) + m.substr(sp + 1)] = next++;
  }
  return {{"version", "1.0"},
          {"added_tokens",
           {{{"id", next}, {"content", "<s>"}, {"special", true}, {"normalized", false}},
            {{"id", next + 1}, {"content", "</s>"}, {"special", true}, {"normalized", false}}}},
          {"normalizer", nullptr},
          {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
          {"post_processor", nullptr},
          {"decoder", {{"type", "ByteLevel"}}},
          {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges}}}};
}

void expect_error(const nlohmann::json& j, const std::string& needle) {
  try {
    qs::Tokenizer::from_json(j);
    ADD_FAILURE() << "expected an error mentioning \"" << needle << "\"";
  } catch (const qs::Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(BadTokenizerJson, IdsAreBounded) {
  // Per-id tables are sized by the largest id: an id of 2^31 - 1 would mean gigabytes.
  auto base = tiny_tokenizer();
  {
    auto j = base;
    j["model"]["vocab"]["zz"] = 2147483647;
    expect_error(j, "vocab entry \"zz\" has id 2147483647; ids are bounded by 16777215");
  }
  {
    auto j = base;
    j["added_tokens"][0]["id"] = 1 << 30;
    expect_error(j, "added token id 1073741824 is above the bound 16777215");
  }
  {
    auto j = base;
    j["added_tokens"][0]["id"] = UINT64_MAX;
    expect_error(j, "added token id must be a non-negative integer id");
  }
  {
    auto j = base;
    j["added_tokens"][0]["id"] = 3.0;
    expect_error(j, "added token id must be a non-negative integer id, got 3.0");
  }
}

TEST(BadTokenizerJson, ClearErrors) {
  auto base = tiny_tokenizer();
  ASSERT_NO_THROW(qs::Tokenizer::from_json(base));
  {
    auto j = base;
    j.erase("model");
    expect_error(j, "missing \"model\"");
  }
  {
    auto j = base;
    j["model"]["type"] = "Unigram";
    expect_error(j, "unsupported model type \"Unigram\"");
  }
  {
    auto j = base;
    j["model"]["type"] = "WordPiece";
    expect_error(j, "WordPiece");
  }
  {
    auto j = base;
    j["normalizer"] = {{"type", "NFC"}};
    expect_error(j, "unsupported normalizer type \"NFC\"");
  }
  {
    auto j = base;
    j["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "▁"}};
    expect_error(j, "unsupported pre_tokenizer type \"Metaspace\"");
  }
  {
    auto j = base;
    j["model"]["byte_fallback"] = true;
    expect_error(j, "byte_fallback");
  }
  {
    auto j = base;
    j["model"]["merges"].push_back("q zz");
    expect_error(j, "\"zz\" is not in the vocabulary");
  }
  {
    auto j = base;
    j["model"]["merges"].push_back("abc");
    expect_error(j, "two tokens separated by one space");
  }
  {
    auto j = base;
    j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}};
    expect_error(j, "cannot compile pre-tokenizer regex");
  }
  {
    auto j = base;
    j["decoder"] = {{"type", "WordPiece"}};
    expect_error(j, "unsupported decoder type \"WordPiece\"");
  }
  {
    auto j = base;
    j["post_processor"] = {{"type", "Foo"}};
    expect_error(j, "unsupported post_processor type \"Foo\"");
  }
  {
    auto j = base;
    j["model"]["vocab"]["x"] = "seven";
    expect_error(j, "non-negative integer id");
  }
  // The streaming file reader (Tokenizer::load) reports the same problems.
  auto dir0 = std::filesystem::temp_directory_path() / "qs_tok_bad_model";
  std::filesystem::create_directories(dir0);
  auto load_error = [&](const nlohmann::json& j) -> std::string {
    std::ofstream(dir0 / "tokenizer.json") << j.dump();
    try {
      qs::Tokenizer::load(dir0.string());
    } catch (const qs::Error& e) {
      return e.what();
    }
    return "";
  };
  {
    auto j = base;
    j["model"] = {{"type", "Unigram"}, {"unk_id", 0}, {"vocab", {{"<unk>", 0.0}, {"a", -1.5}}}};
    EXPECT_NE(load_error(j).find("unsupported model type \"Unigram\""), std::string::npos);
    j["model"]["vocab"] = nlohmann::json::array({nlohmann::json::array({"<unk>", 0.0}), nlohmann::json::array({"a", -1.5})});
    EXPECT_NE(load_error(j).find("unsupported model type \"Unigram\""), std::string::npos);
    j = base;
    j["model"]["vocab"]["x"] = {1, 2};
    EXPECT_NE(load_error(j).find("vocab entry \"x\""), std::string::npos);
    j = base;
    j["model"]["merges"].push_back("q zz");
    EXPECT_NE(load_error(j).find("\"zz\" is not in the vocabulary"), std::string::npos);
    j = base;
    j["model"]["merges"].push_back({"a", "b", "c"});
    EXPECT_NE(load_error(j).find("[a, b] pair"), std::string::npos);
    j = base;
    j["model"]["vocab"]["x"] = "seven";
    EXPECT_NE(load_error(j).find("non-negative integer id"), std::string::npos);
    j = base;
    EXPECT_EQ(load_error(j), "");
    EXPECT_EQ(qs::Tokenizer::load(dir0.string()).encode("hello world"), qs::Tokenizer::from_json(base).encode("hello world"));
  }
  std::filesystem::remove_all(dir0);
  // Files on disk: missing directory, invalid JSON.
  EXPECT_THROW(qs::Tokenizer::load("/nonexistent/dir"), qs::Error);
  auto dir = std::filesystem::temp_directory_path() / "qs_tok_bad_json";
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "tokenizer.json") << "{\"model\": [1, 2";
  try {
    qs::Tokenizer::load(dir.string());
    ADD_FAILURE();
  } catch (const qs::Error& e) {
    EXPECT_NE(std::string(e.what()).find("invalid JSON"), std::string::npos) << e.what();
  }
  std::filesystem::remove_all(dir);
}

TEST(TinyTokenizer, MergesMapsAndGpt2Regex) {
  auto t = qs::Tokenizer::from_json(tiny_tokenizer());
  EXPECT_FALSE(t.pre_tokenizer().fast_path());
  auto ids = t.encode("hello world<s>hello");
  std::vector<std::string> toks;
  for (int32_t id : ids) toks.push_back(t.id_to_token(id));
  EXPECT_EQ(toks, (std::vector<std::string>{"hello", "Ġworld", "<s>", "hello"}));
  EXPECT_EQ(t.decode(ids), "hello world<s>hello");
  EXPECT_EQ(t.decode(ids, true), "hello worldhello");
  // No tokenizer_config and a null post_processor: add_special_tokens adds nothing.
  EXPECT_EQ(t.encode("hello", true), t.encode("hello", false));
  EXPECT_EQ(t.bos_id(), -1);
  EXPECT_TRUE(t.chat_template().empty());
  // Merges given as [a, b] pairs load the same.
  auto j = tiny_tokenizer();
  nlohmann::json pairs = nlohmann::json::array();
  for (const auto& m : j["model"]["merges"]) {
    std::string s = m.get<std::string>();
    auto sp = s.find(' ');
    pairs.push_back({s.substr(0, sp), s.substr(sp + 1)});
  }
  j["model"]["merges"] = pairs;
  EXPECT_EQ(qs::Tokenizer::from_json(j).encode("hello world"), t.encode("hello world"));
}

TEST(TinyTokenizer, IgnoreMerges) {
  auto j = tiny_tokenizer();
  int32_t hel = j["added_tokens"][1]["id"].get<int32_t>() + 1;
  j["model"]["vocab"]["hel"] = hel;  // in the vocabulary but not reachable through merges
  auto t = qs::Tokenizer::from_json(j);
  EXPECT_EQ(t.encode("hel").size(), 2u);  // "he" "l"
  j["model"]["ignore_merges"] = true;
  auto ti = qs::Tokenizer::from_json(j);
  EXPECT_EQ(ti.encode("hel"), std::vector<int32_t>{hel});
  EXPECT_EQ(ti.encode("hello world"), t.encode("hello world"));
}

TEST(TinyTokenizer, CharacterLevelBpeWithoutByteLevel) {
  nlohmann::json j = {{"added_tokens", nlohmann::json::array()},
                      {"pre_tokenizer", {{"type", "WhitespaceSplit"}}},
                      {"decoder", nullptr},
                      {"model",
                       {{"type", "BPE"},
                        {"unk_token", "<unk>"},
                        {"vocab", {{"<unk>", 0}, {"a", 1}, {"b", 2}, {"ab", 3}, {"c", 4}, {"é", 5}}},
                        {"merges", {"a b"}}}}};
  auto t = qs::Tokenizer::from_json(j);
  EXPECT_FALSE(t.pre_tokenizer().byte_level());
  EXPECT_EQ(t.encode("ab c abé x"), (std::vector<int32_t>{3, 4, 3, 5, 0}));
  EXPECT_EQ(t.decode(std::vector<int32_t>{3, 4, 3}), "ab c ab");  // no decoder: joined by spaces
}

TEST(TinyTokenizer, PostProcessors) {
  auto j = tiny_tokenizer();
  int32_t s = j["added_tokens"][0]["id"], e = j["added_tokens"][1]["id"];
  j["post_processor"] = {
      {"type", "TemplateProcessing"},
      {"single", {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                  {{"SpecialToken", {{"id", "</s>"}, {"type_id", 0}}}}}},
      {"pair", nlohmann::json::array()},
      {"special_tokens",
       {{"<s>", {{"id", "<s>"}, {"ids", {s}}, {"tokens", {"<s>"}}}},
        {"</s>", {{"id", "</s>"}, {"ids", {e}}, {"tokens", {"</s>"}}}}}}};
  auto t = qs::Tokenizer::from_json(j);
  auto plain = t.encode("hello");
  auto with = t.encode("hello", true);
  ASSERT_EQ(with.size(), plain.size() + 2);
  EXPECT_EQ(with.front(), s);
  EXPECT_EQ(with.back(), e);
  j["post_processor"] = {{"type", "RobertaProcessing"}, {"sep", {"</s>", e}}, {"cls", {"<s>", s}}};
  EXPECT_EQ(qs::Tokenizer::from_json(j).encode("hello", true), with);
  j["post_processor"] = {{"type", "Sequence"},
                         {"processors", {{{"type", "ByteLevel"}}, {{"type", "BertProcessing"}, {"sep", {"</s>", e}}, {"cls", {"<s>", s}}}}}};
  EXPECT_EQ(qs::Tokenizer::from_json(j).encode("hello", true), with);
  // tokenizer_config with add_bos_token overrides the post-processor (LlamaTokenizerFast).
  nlohmann::json cfg = {{"add_bos_token", true}, {"add_eos_token", true}, {"bos_token", "<s>"},
                        {"eos_token", {{"__type", "AddedToken"}, {"content", "</s>"}}}};
  auto tc = qs::Tokenizer::from_json(j, cfg);
  EXPECT_EQ(tc.encode("hello", true), with);
  cfg["add_eos_token"] = false;
  auto tc2 = qs::Tokenizer::from_json(j, cfg);
  auto w2 = tc2.encode("hello", true);
  EXPECT_EQ(w2.front(), s);
  EXPECT_EQ(w2.size(), plain.size() + 1);
  EXPECT_EQ(tc2.eos_token(), "</s>");
  EXPECT_EQ(tc2.eos_id(), e);
}

TEST(TinyTokenizer, AddedTokenFlags) {
  auto j = tiny_tokenizer();
  int32_t next = j["added_tokens"][1]["id"].get<int32_t>() + 1;
  j["added_tokens"].push_back({{"id", next}, {"content", "<mask>"}, {"lstrip", true}, {"rstrip", true},
                               {"single_word", true}, {"normalized", false}, {"special", false}});
  j["added_tokens"].push_back({{"id", next + 1}, {"content", "ell"}, {"normalized", true}});
  j["added_tokens"].push_back({{"id", next + 2}, {"content", "hell"}, {"normalized", false}});
  auto t = qs::Tokenizer::from_json(j);
  auto show = [&](const std::string& text) {
    std::string out;
    for (int32_t id : t.encode(text)) out += "[" + t.id_to_token(id) + "]";
    return out;
  };
  // lstrip/rstrip swallow the surrounding spaces; single_word blocks matches inside words.
  EXPECT_EQ(show("a <mask> b"), "[a][<mask>][b]");
  EXPECT_EQ(show("a<mask> b"), "[a][<][m][a][s][k][>][Ġ][b]");
  // Non-normalized "hell" is extracted first; normalized "ell" only from the rest.
  EXPECT_EQ(show("hello shell"), "[hell][o][Ġ][s][hell]");
  EXPECT_EQ(show("bell"), "[b][ell]");
  // Leftmost-longest: "hell" beats "ell" regardless of pass order at the same start.
  EXPECT_EQ(show("<s></s>"), "[<s>][</s>]");
}

}  // namespace
