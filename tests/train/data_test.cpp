// Token shards, the DataLoader (determinism, coverage, resume, validation batches) and corpus
// preparation (split determinism, EOS separation, skipped files, errors); tokenizer training and
// its chat template.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include <set>

#include <nlohmann/json.hpp>

#include "qiusuo/core/error.h"
#include "qiusuo/core/parallel.h"
#include "qiusuo/io/file.h"
#include "qiusuo/jinja/jinja.h"
#include "qiusuo/tokenizer/tokenizer.h"
#include "qiusuo/train/data.h"
#include "qiusuo/train/prepare.h"
#include "test_util.h"

namespace qs {
namespace {

using testing::HasSubstr;
using testing_util::TempDir;

const std::string kTokenizerDir = std::string(QS_FIXTURES) + "/tokenizer/deepseek-v3";

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no qs::Error)";
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << bytes;
}

std::string read_bytes(const std::string& path) { return read_text_file(path); }

// A shard of ids 0, 1, ..., n-1 (each id is its own position, so windows identify themselves).
std::string iota_shard(const TempDir& dir, int64_t n, const std::string& name = "seq.bin") {
  std::vector<int32_t> t(static_cast<size_t>(n));
  std::iota(t.begin(), t.end(), 0);
  const std::string path = dir / name;
  write_token_shard(path, {uint32_t(n + 10), 1, 0}, t);
  return path;
}

// ---- shards ------------------------------------------------------------------------------------

TEST(TokenShard, RoundTrip) {
  TempDir dir("shard");
  const std::vector<int32_t> ids = {5, 0, 99, 42, 7, 1};
  write_token_shard(dir / "a.bin", {100, 1, 0}, ids);
  const std::string raw = read_bytes(dir / "a.bin");
  ASSERT_EQ(raw.size(), 64 + 4 * ids.size());
  EXPECT_EQ(raw.substr(0, 8), "QSTOKENS");
  uint32_t version, bpt, vocab;
  uint64_t n;
  std::memcpy(&version, raw.data() + 8, 4);
  std::memcpy(&bpt, raw.data() + 12, 4);
  std::memcpy(&n, raw.data() + 16, 8);
  std::memcpy(&vocab, raw.data() + 24, 4);
  EXPECT_EQ(version, 1u);
  EXPECT_EQ(bpt, 4u);
  EXPECT_EQ(n, ids.size());
  EXPECT_EQ(vocab, 100u);
  EXPECT_EQ(raw.substr(36, 28), std::string(28, '\0'));

  const TokenShard s = TokenShard::open(dir / "a.bin");
  EXPECT_EQ(s.size(), ids.size());
  EXPECT_EQ(s.info().vocab_size, 100u);
  EXPECT_EQ(s.info().eos_id, 1);
  EXPECT_EQ(s.info().bos_id, 0);
  ASSERT_EQ(s.tokens().size(), ids.size());
  for (size_t i = 0; i < ids.size(); ++i) EXPECT_EQ(s.tokens()[i], uint32_t(ids[i]));
  EXPECT_NO_THROW(s.validate());

  // The streaming writer produces the same bytes; no bos is stored as 0xFFFFFFFF.
  {
    TokenShardWriter w(dir / "b.bin", {100, 1, 0});
    w.append(std::span<const int32_t>(ids).subspan(0, 2));
    w.append(std::span<const int32_t>(ids).subspan(2));
    EXPECT_FALSE(file_exists(dir / "b.bin"));  // not visible until finish()
    w.finish();
  }
  EXPECT_EQ(read_bytes(dir / "b.bin"), raw);
  write_token_shard(dir / "c.bin", {100, 1, -1}, ids);
  EXPECT_EQ(TokenShard::open(dir / "c.bin").info().bos_id, -1);
  // An unfinished writer leaves nothing behind.
  { TokenShardWriter w(dir / "d.bin", {100, 1, 0}); w.append(ids); }
  EXPECT_FALSE(file_exists(dir / "d.bin"));
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path), {}), 3);
}

TEST(TokenShard, WriteRejectsIdsOutsideVocab) {
  TempDir dir("shard");
  const std::vector<int32_t> ids = {1, 2, 100};
  EXPECT_THAT(error_of([&] { write_token_shard(dir / "x.bin", {100, 1, 0}, ids); }),
              HasSubstr("token id 100 at position 2 is outside the vocabulary [0, 100)"));
  EXPECT_FALSE(file_exists(dir / "x.bin"));
}

TEST(TokenShard, TruncatedAndTrailingBytesAreClearErrors) {
  TempDir dir("shard");
  const std::string p = iota_shard(dir, 100);
  std::filesystem::resize_file(p, 64 + 4 * 60 + 2);
  const std::string e = error_of([&] { TokenShard::open(p); });
  EXPECT_THAT(e, HasSubstr(p));
  EXPECT_THAT(e, HasSubstr("file is 306 bytes"));
  EXPECT_THAT(e, HasSubstr("100 tokens, which take 464 bytes"));
  EXPECT_THAT(e, HasSubstr("truncated"));

  const std::string q = iota_shard(dir, 10, "q.bin");
  std::filesystem::resize_file(q, 64 + 4 * 10 + 4);
  EXPECT_THAT(error_of([&] { TokenShard::open(q); }), HasSubstr("trailing bytes"));

  std::filesystem::resize_file(q, 20);
  EXPECT_THAT(error_of([&] { TokenShard::open(q); }), HasSubstr("smaller than the 64-byte header"));
}

TEST(TokenShard, BadMagicVersionAndMissingFile) {
  TempDir dir("shard");
  const std::string p = iota_shard(dir, 10);
  std::string raw = read_bytes(p);
  raw[0] = 'X';
  write_bytes(dir / "magic.bin", raw);
  const std::string e = error_of([&] { TokenShard::open(dir / "magic.bin"); });
  EXPECT_THAT(e, HasSubstr(dir / "magic.bin"));
  EXPECT_THAT(e, HasSubstr("not a token shard"));

  raw = read_bytes(p);
  raw[8] = 2;
  write_bytes(dir / "version.bin", raw);
  EXPECT_THAT(error_of([&] { TokenShard::open(dir / "version.bin"); }), HasSubstr("version 2 is not supported"));

  try {
    TokenShard::open(dir / "missing.bin");
    FAIL();
  } catch (const Error& err) {
    EXPECT_EQ(err.kind(), ErrorKind::NotFound);
    EXPECT_THAT(err.what(), HasSubstr("missing.bin"));
  }
}

TEST(TokenShard, OutOfRangeIdsAreFoundByValidateAndLoader) {
  TempDir dir("shard");
  const std::string p = iota_shard(dir, 50);  // vocab 60
  std::string raw = read_bytes(p);
  const uint32_t bad = 1000;
  std::memcpy(&raw[64 + 4 * 33], &bad, 4);
  write_bytes(p, raw);
  const TokenShard s = TokenShard::open(p);  // open stays O(1): no scan
  EXPECT_THAT(error_of([&] { s.validate(); }), HasSubstr("token id 1000 at position 33 is outside the vocabulary [0, 60)"));
  DataLoader dl(p, "train", 1, 49, 0);  // one window covering everything
  std::vector<int32_t> buf(50);
  EXPECT_THAT(error_of([&] { dl.next(buf.data()); }), HasSubstr("token id 1000 at position 33"));
}

// ---- loader ------------------------------------------------------------------------------------

TEST(DataLoader, WindowsTargetsAndEpochCoverage) {
  TempDir dir("loader");
  const int64_t N = 1000, T = 16, B = 5;  // W = 999 / 16 = 62 windows, not a multiple of B
  const std::string p = iota_shard(dir, N);
  DataLoader dl(p, "train", B, T, 7);
  ASSERT_EQ(dl.windows_per_epoch(), 62u);
  EXPECT_EQ(dl.tokens_per_epoch(), 62u * 16u);
  std::vector<int32_t> batch(size_t(B * (T + 1)));
  std::map<int64_t, int> seen;
  const int64_t batches = 62 * 3 / B + 1;  // a little more than 3 epochs
  std::vector<int64_t> order;
  for (int64_t k = 0; k < batches; ++k) {
    dl.next(batch.data());
    for (int64_t b = 0; b < B; ++b) {
      const int32_t* row = batch.data() + b * (T + 1);
      ASSERT_EQ(row[0] % T, 0) << "windows start at multiples of T";
      for (int64_t i = 0; i < T; ++i) ASSERT_EQ(row[i + 1], row[i] + 1) << "targets are inputs shifted by one";
      order.push_back(row[0]);
    }
  }
  // Each epoch (62 consecutive windows) covers every window exactly once.
  for (int e = 0; e < 3; ++e) {
    std::set<int64_t> s(order.begin() + e * 62, order.begin() + (e + 1) * 62);
    EXPECT_EQ(s.size(), 62u) << "epoch " << e;
    EXPECT_EQ(*s.begin(), 0);
    EXPECT_EQ(*s.rbegin(), 61 * T);
  }
  // Epochs are shuffled differently.
  EXPECT_FALSE(std::equal(order.begin(), order.begin() + 62, order.begin() + 62));
  EXPECT_EQ(dl.state().epoch, 3u);
}

TEST(DataLoader, SameSeedSameBatchesDifferentSeedDifferentOrder) {
  TempDir dir("loader");
  const std::string p = iota_shard(dir, 5000);
  const int64_t B = 4, T = 32;
  auto run = [&](uint64_t seed) {
    DataLoader dl(p, "train", B, T, seed);
    std::vector<int32_t> all, batch(size_t(B * (T + 1)));
    for (int k = 0; k < 10; ++k) {
      dl.next(batch.data());
      all.insert(all.end(), batch.begin(), batch.end());
    }
    return all;
  };
  EXPECT_EQ(run(1), run(1));
  EXPECT_NE(run(1), run(2));
}

TEST(DataLoader, ResumeReproducesTheNextBatches) {
  TempDir dir("loader");
  const std::string p = iota_shard(dir, 3000);
  const int64_t B = 3, T = 20;  // W = 149: the state crosses an epoch boundary below
  DataLoader a(p, "train", B, T, 11);
  std::vector<int32_t> batch(size_t(B * (T + 1)));
  for (int k = 0; k < 60; ++k) a.next(batch.data());
  const DataLoader::State st = a.state();
  EXPECT_EQ(st.seed, 11u);
  std::vector<std::vector<int32_t>> expect;
  for (int k = 0; k < 70; ++k) {
    a.next(batch.data());
    expect.push_back(batch);
  }
  DataLoader b(p, "train", B, T, 999);  // the state carries the seed
  b.set_state(st);
  for (int k = 0; k < 70; ++k) {
    b.next(batch.data());
    ASSERT_EQ(batch, expect[size_t(k)]) << "batch " << k;
  }
  EXPECT_EQ(a.state(), b.state());
  DataLoader::State bad = st;
  bad.index = 10000;
  EXPECT_THAT(error_of([&] { b.set_state(bad); }), HasSubstr("beyond the 149 windows per epoch"));
}

TEST(DataLoader, ValBatchesAreFixedAndUnshuffled) {
  TempDir dir("loader");
  const std::string p = iota_shard(dir, 400);
  const int64_t B = 2, T = 10;  // W = 39
  DataLoader a(p, "val", B, T, 1), b(p, "val", B, T, 2);
  std::vector<int32_t> batch(size_t(B * (T + 1)));
  for (int k = 0; k < 5; ++k) b.next(batch.data());  // the state does not matter
  const auto va = a.val_batches(3), vb = b.val_batches(3);
  EXPECT_EQ(va, vb);
  ASSERT_EQ(va.size(), size_t(3 * B * (T + 1)));
  for (int64_t k = 0; k < 3 * B; ++k) EXPECT_EQ(va[size_t(k * (T + 1))], k * T);
  // More batches than windows wrap around.
  const auto all = a.val_batches(20);
  EXPECT_EQ(all[size_t(39 * (T + 1))], 0);
}

TEST(DataLoader, ClearErrors) {
  TempDir dir("loader");
  const std::string p = iota_shard(dir, 8);
  EXPECT_THAT(error_of([&] { DataLoader(p, "train", 1, 8); }),
              HasSubstr("dataset has 8 tokens, fewer than seq_len+1 = 9"));
  EXPECT_NO_THROW(DataLoader(p, "train", 1, 7));
  EXPECT_THAT(error_of([&] { DataLoader(dir / "nope", "train", 1, 4); }), HasSubstr("nope not found"));
  EXPECT_THAT(error_of([&] { DataLoader(dir.path, "train", 1, 4); }), HasSubstr("train.bin not found"));
  EXPECT_THAT(error_of([&] { DataLoader(dir.path, "test", 1, 4); }), HasSubstr("split must be"));
  EXPECT_THAT(error_of([&] { DataLoader(p, "train", 0, 4); }), HasSubstr("batch size must be >= 1"));
}

TEST(DataLoader, DatasetDirectoryChecksMeta) {
  TempDir dir("loader");
  iota_shard(dir, 100, "train.bin");
  iota_shard(dir, 30, "val.bin");
  write_bytes(dir / "meta.json", R"({"vocab_size": 110, "eos_id": 1, "bos_id": 0, "train_tokens": 100,
                                     "val_tokens": 31, "documents": {"train": 1, "val": 1}})");
  EXPECT_EQ(DataLoader(dir.path, "train", 2, 8).shard().size(), 100u);
  EXPECT_THAT(error_of([&] { DataLoader(dir.path, "val", 2, 8); }),
              HasSubstr("has 30 tokens but " + (dir / "meta.json") + " says val_tokens = 31"));
}

// ---- prepare -----------------------------------------------------------------------------------

struct Corpus {
  TempDir dir{"corpus"};
  std::map<std::string, std::string> texts;  // rel -> contents (valid documents only)
  Corpus() {
    std::filesystem::create_directories(dir / "src/pkg");
    for (int i = 0; i < 24; ++i) {
      const std::string rel = (i % 3 == 0 ? "src/pkg/" : i % 3 == 1 ? "src/" : "") + ("file_" + std::to_string(i) + ".py");
      add(rel, "def f" + std::to_string(i) + "(x):\n    return x * " + std::to_string(i) + "  # 求索 é\n");
    }
    write_bytes(dir / "src/blob.bin", std::string("\x7f" "ELF\0\0\x01\x02", 8));  // binary
    write_bytes(dir / "latin1.txt", "caf\xe9 cr\xe8me\n");                      // not UTF-8
    write_bytes(dir / ".hidden.py", "secret = 1\n");                          // hidden: not listed
  }
  void add(const std::string& rel, const std::string& text) {
    write_bytes(dir / rel, text);
    texts[rel] = text;
  }
};

// Splits a shard into documents at EOS and decodes them.
std::vector<std::string> documents(const Tokenizer& tok, const std::string& path) {
  const TokenShard s = TokenShard::open(path);
  std::vector<std::string> docs;
  std::vector<int32_t> cur;
  for (uint32_t id : s.tokens()) {
    if (int32_t(id) == tok.eos_id()) {
      // Each document starts with BOS when the tokenizer adds one (the fixture's does).
      EXPECT_TRUE(!tok.add_bos_token() || (!cur.empty() && cur[0] == tok.bos_id()));
      if (tok.add_bos_token() && !cur.empty()) cur.erase(cur.begin());
      docs.push_back(tok.decode(cur));
      cur.clear();
    } else {
      cur.push_back(int32_t(id));
    }
  }
  EXPECT_TRUE(cur.empty()) << "a shard ends with EOS";
  return docs;
}

TEST(Prepare, SplitsDocumentsDeterministicallyWithEos) {
  Corpus c;
  TempDir out("prepared");
  PrepareOptions o;
  o.inputs = {c.dir.path};
  o.tokenizer_dir = kTokenizerDir;
  o.out_dir = out / "ds";
  o.val_fraction = 0.3;
  o.seed = 5;
  const PrepareStats st = prepare_dataset(o);
  EXPECT_EQ(st.files, 26);  // 24 .py + blob.bin + latin1.txt; .hidden.py is not listed
  EXPECT_EQ(st.documents, 24);
  EXPECT_EQ(st.skipped, 2);
  ASSERT_EQ(st.skipped_examples.size(), 2u);
  EXPECT_THAT(st.skipped_examples[0] + st.skipped_examples[1], HasSubstr("invalid UTF-8"));
  EXPECT_THAT(st.skipped_examples[0] + st.skipped_examples[1], HasSubstr("binary"));

  // Expected split: hash(rel, seed) < val_fraction; documents in sorted path order.
  const Tokenizer tok = Tokenizer::load(kTokenizerDir);
  std::vector<std::string> want_train, want_val;
  std::vector<std::pair<std::string, std::string>> by_path;
  for (const auto& [rel, text] : c.texts) by_path.push_back({c.dir / rel, rel});
  std::sort(by_path.begin(), by_path.end());
  for (const auto& [path, rel] : by_path)
    (split_hash(rel, 5) < 0.3 ? want_val : want_train).push_back(c.texts[rel]);
  ASSERT_FALSE(want_val.empty());
  ASSERT_FALSE(want_train.empty());
  EXPECT_EQ(documents(tok, o.out_dir + "/train.bin"), want_train);
  EXPECT_EQ(documents(tok, o.out_dir + "/val.bin"), want_val);
  EXPECT_EQ(st.val_documents, int64_t(want_val.size()));

  // Tokens: encoded as a prompt (BOS first) + one EOS per document.
  int64_t tokens = 0;
  for (const auto& [rel, text] : c.texts) tokens += int64_t(tok.encode(text, true).size()) + 1;
  EXPECT_EQ(st.tokens, tokens);

  const auto meta = nlohmann::json::parse(read_text_file(o.out_dir + "/meta.json"));
  EXPECT_EQ(meta["vocab_size"], tok.vocab_size());
  EXPECT_EQ(meta["eos_id"], tok.eos_id());
  EXPECT_EQ(meta["bos_id"], tok.bos_id());
  EXPECT_EQ(meta["train_tokens"], st.train_tokens);
  EXPECT_EQ(meta["val_tokens"], st.val_tokens);
  EXPECT_EQ(meta["documents"]["val"], st.val_documents);
  EXPECT_EQ(meta["tokenizer"], std::filesystem::canonical(kTokenizerDir).string());
  const DatasetMeta dm = read_dataset_meta(o.out_dir);
  EXPECT_EQ(dm.train_documents, uint64_t(st.train_documents));
  EXPECT_EQ(TokenShard::open(o.out_dir + "/train.bin").info().eos_id, tok.eos_id());

  // Same output with one thread; a new file does not move the others between splits.
  const std::string train_bytes = read_bytes(o.out_dir + "/train.bin");
  const std::string val_bytes = read_bytes(o.out_dir + "/val.bin");
  const int threads = num_threads();
  set_num_threads(1);
  prepare_dataset(o);
  set_num_threads(threads);
  EXPECT_EQ(read_bytes(o.out_dir + "/train.bin"), train_bytes);
  EXPECT_EQ(read_bytes(o.out_dir + "/val.bin"), val_bytes);

  c.add("src/zz_new.py", "print('new')\n");
  const PrepareStats st2 = prepare_dataset(o);
  EXPECT_EQ(st2.documents, 25);
  std::vector<std::string> val2 = documents(tok, o.out_dir + "/val.bin");
  std::erase(val2, c.texts["src/zz_new.py"]);
  EXPECT_EQ(val2, want_val);

  // The dataset loads.
  DataLoader dl(o.out_dir, "train", 2, 8, 0);
  std::vector<int32_t> batch(2 * 9);
  dl.next(batch.data());
}

// One input file has no document to spare for validation: the last val_fraction of its tokens
// move to val.bin; min_val_tokens raises the floor for any corpus; too little text is an error.
TEST(Prepare, ValidationTopUpFromTheTrainingStream) {
  Corpus c;
  TempDir out("topup");
  std::string text;
  for (int i = 0; i < 400; ++i) text += "line " + std::to_string(i) + " of one long document\n";
  c.add("one.txt", text);
  PrepareOptions o;
  o.inputs = {c.dir / "one.txt"};
  o.tokenizer_dir = kTokenizerDir;
  o.out_dir = out / "one";
  o.val_fraction = 0.01;
  const PrepareStats st = prepare_dataset(o);
  const Tokenizer tok = Tokenizer::load(kTokenizerDir);
  std::vector<int32_t> all = tok.encode(text, true);
  all.push_back(tok.eos_id());
  const int64_t k = int64_t(std::ceil(0.01 * double(all.size())));
  EXPECT_EQ(st.val_documents, 0);
  EXPECT_EQ(st.val_tokens, k);
  EXPECT_EQ(st.val_tokens_from_train, k);
  const TokenShard tr = TokenShard::open(o.out_dir + "/train.bin"), va = TokenShard::open(o.out_dir + "/val.bin");
  ASSERT_EQ(int64_t(tr.size()), int64_t(all.size()) - k + 1);
  ASSERT_EQ(int64_t(va.size()), k);
  for (int64_t i = 0; i + 1 < int64_t(tr.size()); ++i) ASSERT_EQ(int32_t(tr.tokens()[i]), all[i]);
  EXPECT_EQ(int32_t(tr.tokens().back()), tok.eos_id()) << "the training shard ends with EOS after the cut";
  for (int64_t i = 0; i < k; ++i) ASSERT_EQ(int32_t(va.tokens()[i]), all[all.size() - k + i]);
  EXPECT_EQ(nlohmann::json::parse(read_text_file(o.out_dir + "/meta.json"))["val_tokens_from_train"], k);
  DataLoader(o.out_dir, "val", 1, 8, 0);  // meta.json agrees with the shards
  // A corpus of documents: validation documents first, then the top-up to min_val_tokens.
  o.inputs = {c.dir / "src"};
  o.include = {"*.py"};
  o.out_dir = out / "docs";
  o.val_fraction = 0.3;
  const PrepareStats plain = prepare_dataset(o);
  o.min_val_tokens = uint64_t(plain.val_tokens) + 25;
  const PrepareStats topped = prepare_dataset(o);
  EXPECT_EQ(topped.val_documents, plain.val_documents);
  EXPECT_EQ(topped.val_tokens, plain.val_tokens + 25);
  EXPECT_EQ(topped.train_tokens, plain.train_tokens - 25 + 1);
  o.min_val_tokens = 100000;
  EXPECT_THAT(error_of([&] { prepare_dataset(o); }), HasSubstr("too few for a validation split"));
}

TEST(Prepare, AtLeastOneValidationDocumentAndGlobs) {
  Corpus c;
  TempDir out("prepared");
  PrepareOptions o;
  o.inputs = {c.dir / "src"};
  o.include = {"*.py"};
  o.tokenizer_dir = kTokenizerDir;
  o.out_dir = out.path;
  o.val_fraction = 1e-9;  // no document hashes this low
  const PrepareStats st = prepare_dataset(o);
  EXPECT_EQ(st.files, 16);  // the .py files under src/ (blob.bin excluded by the glob)
  EXPECT_EQ(st.skipped, 0);
  EXPECT_EQ(st.val_documents, 1);
  EXPECT_EQ(st.train_documents, 15);

  // A glob with '/' matches the relative path.
  EXPECT_EQ(collect_input_files({c.dir.path}, {"src/pkg/*"}).size(), 8u);
  // A single file input.
  const auto one = collect_input_files({c.dir / "src/file_1.py"}, {});
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0].rel, "file_1.py");
  // The same directory twice is listed once.
  EXPECT_EQ(collect_input_files({c.dir / "src", c.dir / "src/"}, {"*.py"}).size(), 16u);
}

TEST(Prepare, MaxBytesTakesADeterministicSample) {
  Corpus c;
  const auto all = collect_input_files({c.dir.path}, {"*.py"});
  uint64_t total = 0;
  for (const auto& f : all) total += f.bytes;
  const auto half = collect_input_files({c.dir.path}, {"*.py"}, total / 2, 3);
  uint64_t got = 0;
  for (const auto& f : half) got += f.bytes;
  EXPECT_LE(got, total / 2);
  EXPECT_GT(got, total / 2 - 40);  // files are ~35 bytes: the sample fills the budget
  EXPECT_TRUE(std::is_sorted(half.begin(), half.end(), [](auto& a, auto& b) { return a.path < b.path; }));
  const auto again = collect_input_files({c.dir.path}, {"*.py"}, total / 2, 3);
  ASSERT_EQ(again.size(), half.size());
  for (size_t i = 0; i < half.size(); ++i) EXPECT_EQ(again[i].path, half[i].path);
}

TEST(Prepare, Errors) {
  Corpus c;
  TempDir out("prepared");
  PrepareOptions o;
  o.inputs = {c.dir / "does-not-exist"};
  o.tokenizer_dir = kTokenizerDir;
  o.out_dir = out.path;
  try {
    prepare_dataset(o);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::NotFound);
    EXPECT_THAT(e.what(), HasSubstr("does-not-exist does not exist"));
  }
  o.inputs = {c.dir.path};
  o.include = {"*.nothing"};
  EXPECT_THAT(error_of([&] { prepare_dataset(o); }), HasSubstr("no input files matched"));
  o.include = {"*.bin", "*.txt"};
  EXPECT_THAT(error_of([&] { prepare_dataset(o); }), HasSubstr("all skipped"));
  o.include = {};
  o.tokenizer_dir = c.dir / "no-tokenizer";
  EXPECT_THAT(error_of([&] { prepare_dataset(o); }), HasSubstr("tokenizer directory"));
  o.tokenizer_dir = kTokenizerDir;
  o.val_fraction = 1.5;
  EXPECT_THAT(error_of([&] { prepare_dataset(o); }), HasSubstr("val_fraction must be in [0, 1)"));
  EXPECT_FALSE(file_exists(out / "train.bin"));
}

TEST(Prepare, TextProblem) {
  EXPECT_EQ(text_problem("hello 世界\n"), "");
  EXPECT_EQ(text_problem(std::string("a\0b", 3)), "binary (NUL byte at offset 1)");
  EXPECT_EQ(text_problem("ab\xff"), "invalid UTF-8 at byte 2");
}

// ---- tokenizer training ------------------------------------------------------------------------

TEST(TrainTokenizer, SpecialTokensChatTemplateAndRoundTrip) {
  Corpus c;
  TempDir out("tok");
  TokenizerTrainOptions o;
  o.inputs = {c.dir.path};
  o.vocab_size = 300;
  o.out_dir = out / "tok";
  const TokenizerTrainStats st = train_tokenizer(o);
  EXPECT_EQ(st.documents, 24);
  EXPECT_EQ(st.skipped, 2);
  EXPECT_LE(st.vocab_size, 300);
  EXPECT_GT(st.vocab_size, 263);
  const Tokenizer tok = Tokenizer::load(o.out_dir);
  const auto& sp = default_special_tokens();
  ASSERT_EQ(sp.size(), 7u);
  for (size_t i = 0; i < sp.size(); ++i) {
    EXPECT_EQ(tok.token_to_id(sp[i]), int32_t(i)) << sp[i];
    EXPECT_TRUE(tok.is_special(int32_t(i)));
  }
  EXPECT_EQ(tok.bos_id(), 0);
  EXPECT_EQ(tok.eos_id(), 1);
  EXPECT_EQ(tok.pad_id(), 2);
  EXPECT_TRUE(tok.add_bos_token());
  const std::string text = "def f3(x):\n    return x * 3  # 求索 é\n<think>why</think>";
  const auto ids = tok.encode(text, true);
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids[0], 0);
  EXPECT_EQ(tok.decode(ids, true), "def f3(x):\n    return x * 3  # 求索 é\nwhy");
  EXPECT_EQ(tok.chat_template(), default_chat_template());

  // A prepared dataset from the trained tokenizer.
  PrepareOptions p;
  p.inputs = {c.dir.path};
  p.tokenizer_dir = o.out_dir;
  p.out_dir = out / "ds";
  const PrepareStats ps = prepare_dataset(p);
  EXPECT_EQ(TokenShard::open(p.out_dir + "/train.bin").info().vocab_size, uint32_t(st.vocab_size));
  EXPECT_EQ(ps.documents, 24);
}

TEST(TrainTokenizer, ChatTemplateRendering) {
  const nlohmann::json ctx = {
      {"bos_token", "<｜begin▁of▁sentence｜>"},
      {"messages",
       {{{"role", "system"}, {"content", "Be brief."}},
        {{"role", "system"}, {"content", "Use English."}},
        {{"role", "user"}, {"content", "Hi"}},
        {{"role", "assistant"}, {"content", "Hello!"}},
        {{"role", "user"}, {"content", "2+2?"}}}},
      {"add_generation_prompt", true}};
  EXPECT_EQ(jinja::render(default_chat_template(), ctx),
            "<｜begin▁of▁sentence｜>Be brief.\n\nUse English.<｜User｜>Hi<｜Assistant｜>Hello!<｜end▁of▁sentence｜>"
            "<｜User｜>2+2?<｜Assistant｜>");
  nlohmann::json no_prompt = ctx;
  no_prompt.erase("add_generation_prompt");
  no_prompt["messages"] = {{{"role", "user"}, {"content", "Hi"}}};
  EXPECT_EQ(jinja::render(default_chat_template(), no_prompt), "<｜begin▁of▁sentence｜><｜User｜>Hi");
}

TEST(TrainTokenizer, Errors) {
  Corpus c;
  TempDir out("tok");
  TokenizerTrainOptions o;
  o.inputs = {c.dir.path};
  o.out_dir = out.path;
  o.vocab_size = 100;
  EXPECT_THAT(error_of([&] { train_tokenizer(o); }), HasSubstr("vocab_size 100 is smaller"));
  o.vocab_size = 300;
  o.inputs = {c.dir / "missing"};
  EXPECT_THAT(error_of([&] { train_tokenizer(o); }), HasSubstr("missing does not exist"));
}

}  // namespace
}  // namespace qs
