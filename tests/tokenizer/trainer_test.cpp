// BPE trainer: merge order on a hand-checkable corpus, vocab size, save/reload round trip.
#include "qiusuo/tokenizer/trainer.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "qiusuo/core/error.h"
#include "qiusuo/core/timer.h"

namespace {

const std::string kFixtures = std::string(QS_FIXTURES) + "/tokenizer";

std::string read(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::vector<std::string> merge_strings(const qs::Tokenizer& t) {
  std::vector<std::string> out;
  for (const auto& [a, b] : t.model().merges())
    out.push_back(std::string(t.model().id_to_token(a)) + " " + std::string(t.model().id_to_token(b)));
  return out;
}

std::filesystem::path temp_dir(const std::string& name) {
  auto d = std::filesystem::temp_directory_path() / (name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(d);
  return d;
}

TEST(BpeTrainer, ToyCorpusMergesInFrequencyOrder) {
  // The classic example: hug x10, pug x5, pun x12, bun x4, hugs x5 (one word per line, so no
  // word gets a leading space). Pair counts: u g 20, p u 17, u n 16, h u 15, ...
  std::string corpus;
  auto add = [&](const char* w, int n) {
    for (int i = 0; i < n; ++i) corpus += std::string(w) + "\n";
  };
  add("hug", 10);
  add("pug", 5);
  add("pun", 12);
  add("bun", 4);
  add("hugs", 5);
  qs::BpeTrainerOptions o;
  o.vocab_size = 1000;  // more than the corpus can fill
  o.special_tokens = {"<s>", "</s>"};
  o.bos_token = "<s>";
  o.eos_token = "</s>";
  auto t = qs::train_bpe_from_texts({corpus}, o);
  // After "u g": h ug 15, p u 12, u n 16 -> "u n"; then "h ug" 15, "p un" 12; then the 5-5 tie
  // (p ug) vs (hug s) goes to the smaller left id ("p" is a byte token); then "b un" 4.
  EXPECT_EQ(merge_strings(t), (std::vector<std::string>{"u g", "u n", "h ug", "p un", "p ug", "hug s", "b un"}));
  EXPECT_EQ(t.vocab_size(), 2 + 256 + 7);
  EXPECT_EQ(t.token_to_id("<s>"), 0);
  EXPECT_EQ(t.token_to_id("</s>"), 1);
  EXPECT_EQ(t.token_to_id("!"), 2);  // byte alphabet sorted by character: '!' first
  EXPECT_EQ(t.token_to_id("ug"), 258);
  auto ids = t.encode("hugs pun\n");
  std::vector<std::string> toks;
  for (int32_t id : ids) toks.push_back(t.id_to_token(id));
  EXPECT_EQ(toks, (std::vector<std::string>{"hugs", "Ġ", "pun", "Ċ"}));
  // min_frequency: "b un" (4) is not learned with min_frequency 5.
  o.min_frequency = 5;
  EXPECT_EQ(merge_strings(qs::train_bpe_from_texts({corpus}, o)).size(), 6u);
}

TEST(BpeTrainer, TrainSaveReloadRoundTrip) {
  std::vector<std::string> texts;
  auto cases = nlohmann::json::parse(read(kFixtures + "/cases.json"));
  for (const auto& c : cases) texts.push_back(c["text"].get<std::string>());
  std::string bench = read(kFixtures + "/bench/mixed_1mib.txt");
  ASSERT_FALSE(bench.empty());
  auto dir = temp_dir("qs_trained_tok");
  std::filesystem::create_directories(dir);
  auto corpus = dir / "corpus.txt";
  std::ofstream(corpus, std::ios::binary) << bench;

  qs::BpeTrainerOptions o;
  o.vocab_size = 2000;
  o.special_tokens = {"<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜▁pad▁｜>", "<｜User｜>", "<｜Assistant｜>"};
  o.bos_token = o.special_tokens[0];
  o.eos_token = o.special_tokens[1];
  o.pad_token = o.special_tokens[2];
  o.model_max_length = 8192;
  o.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}";
  qs::Stopwatch sw;
  auto t = qs::train_bpe({corpus.string()}, o);
  double secs = sw.elapsed();
  EXPECT_LT(secs, 20.0);
  EXPECT_EQ(t.vocab_size(), 2000);
  EXPECT_TRUE(t.pre_tokenizer().fast_path());
  EXPECT_EQ(t.bos_id(), 0);
  EXPECT_EQ(t.eos_id(), 1);
  EXPECT_EQ(t.pad_id(), 2);
  EXPECT_TRUE(t.add_bos_token());
  EXPECT_EQ(t.chat_template(), o.chat_template);

  auto out = dir / "tok";
  t.save(out.string());
  ASSERT_TRUE(std::filesystem::exists(out / "tokenizer.json"));
  ASSERT_TRUE(std::filesystem::exists(out / "tokenizer_config.json"));
  auto r = qs::Tokenizer::load(out.string());
  EXPECT_EQ(r.vocab_size(), 2000);
  EXPECT_EQ(r.bos_id(), 0);
  EXPECT_EQ(r.chat_template(), o.chat_template);
  EXPECT_EQ(r.config_json()["tokenizer_class"], "LlamaTokenizerFast");
  EXPECT_EQ(r.config_json()["model_max_length"], 8192);
  EXPECT_EQ(r.model().merges(), t.model().merges());
  EXPECT_TRUE(r.pre_tokenizer().fast_path());
  // The saved tokenizer.json has the HF layout.
  auto tj = nlohmann::json::parse(read((out / "tokenizer.json").string()));
  EXPECT_EQ(tj["model"]["type"], "BPE");
  EXPECT_TRUE(tj["model"]["merges"][0].is_string());
  EXPECT_EQ(tj["decoder"]["type"], "ByteLevel");
  EXPECT_EQ(tj["pre_tokenizer"], qs::PreTokenizer::deepseek_v3_json());
  EXPECT_EQ(tj["added_tokens"].size(), 5u);
  for (const char* k : {"id", "content", "single_word", "lstrip", "rstrip", "normalized", "special"})
    EXPECT_TRUE(tj["added_tokens"][3].contains(k)) << k;
  // Saving the reloaded tokenizer reproduces the file byte for byte.
  EXPECT_EQ(r.to_json_string(), read((out / "tokenizer.json").string()));

  texts.push_back(bench.substr(0, 20000));
  texts.push_back("<｜User｜>hi<｜Assistant｜>hello<｜end▁of▁sentence｜>");
  for (const auto& s : texts) {
    auto ids = t.encode(s);
    EXPECT_EQ(r.encode(s), ids);
    EXPECT_EQ(t.decode(ids), s);
    auto with = r.encode(s, true);
    ASSERT_FALSE(with.empty());
    EXPECT_EQ(with[0], 0);
  }
  auto chat = t.encode("<｜User｜>hi<｜Assistant｜>");
  EXPECT_EQ(chat.front(), 3);
  // Trained merges compress the training text well below one token per byte.
  EXPECT_LT(t.encode(bench).size(), bench.size() / 2);
  std::filesystem::remove_all(dir);
}

TEST(BpeTrainer, FileChunkingMatchesWholeText) {
  // feed_file cuts large files into chunks; the counts (hence merges) must equal feeding the text
  // in one piece.
  std::string bench = read(kFixtures + "/bench/mixed_1mib.txt");
  std::string big;
  for (int i = 0; i < 5; ++i) big += bench;  // > 4 MiB: at least one cut
  auto dir = temp_dir("qs_trained_chunks");
  std::filesystem::create_directories(dir);
  auto corpus = dir / "big.txt";
  std::ofstream(corpus, std::ios::binary) << big;
  qs::BpeTrainerOptions o;
  o.vocab_size = 600;
  qs::BpeTrainer a(o), b(o);
  a.feed_file(corpus.string());
  b.feed(big);
  EXPECT_EQ(a.unique_words(), b.unique_words());
  EXPECT_EQ(a.train().model().merges(), b.train().model().merges());
  std::filesystem::remove_all(dir);
}

TEST(BpeTrainer, BadOptions) {
  qs::BpeTrainerOptions o;
  o.vocab_size = 100;
  EXPECT_THROW(qs::BpeTrainer{o}, qs::Error);
  o.vocab_size = 1000;
  o.special_tokens = {"<a>", "<a>"};
  EXPECT_THROW(qs::BpeTrainer{o}, qs::Error);
  o.special_tokens = {"<a>"};
  o.bos_token = "<b>";
  EXPECT_THROW(qs::BpeTrainer{o}, qs::Error);
  o.bos_token = "<a>";
  qs::BpeTrainer t(o);
  EXPECT_THROW(t.feed("bad \xff utf8"), qs::Error);
}

}  // namespace
