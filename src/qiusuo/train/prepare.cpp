// Corpus preparation (see prepare.h): list files, tokenize them in parallel blocks, stream the
// documents in sorted order into train.bin / val.bin, then write meta.json.
#include "qiusuo/train/prepare.h"

#include <fnmatch.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <set>
#include <string_view>

#include <nlohmann/json.hpp>

#include "qiusuo/core/error.h"
#include "qiusuo/core/parallel.h"
#include "qiusuo/core/timer.h"
#include "qiusuo/io/file.h"
#include "qiusuo/tokenizer/tokenizer.h"
#include "qiusuo/tokenizer/trainer.h"
#include "qiusuo/tokenizer/unicode.h"
#include "qiusuo/train/data.h"

namespace qs {
namespace fs = std::filesystem;

namespace {

bool glob_match(const std::vector<std::string>& include, const std::string& rel, const std::string& name) {
  if (include.empty()) return true;
  for (const auto& g : include) {
    const bool with_dir = g.find('/') != std::string::npos;
    if (::fnmatch(g.c_str(), with_dir ? rel.c_str() : name.c_str(), 0) == 0) return true;
  }
  return false;
}

std::string canonical_or_same(const fs::path& p) {
  std::error_code ec;
  fs::path c = fs::weakly_canonical(p, ec);
  return ec ? p.lexically_normal().string() : c.string();
}

uint64_t mix64(uint64_t z) {  // SplitMix64 finalizer
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// A tokenized (or skipped) document of one block.
struct Doc {
  std::vector<int32_t> ids;  // tokens + EOS
  std::string problem;       // non-empty: skipped, with the reason
  uint64_t bytes = 0;
};

// Why a file cannot be a document ("" when it can); never throws.
std::string file_problem(const MappedFile& m) {
  const std::string_view text(reinterpret_cast<const char*>(m.data()), m.size());
  return text.empty() ? "empty" : text_problem(text);
}

// Reads and tokenizes one file; never throws (problems are recorded in Doc::problem).
Doc tokenize_file(const Tokenizer& tok, const InputFile& f, int32_t eos) {
  Doc d;
  try {
    const MappedFile m = MappedFile::open(f.path);
    d.problem = file_problem(m);
    if (!d.problem.empty()) return d;
    // Encoded as generation encodes a prompt (BOS first when the tokenizer adds one), EOS after.
    d.ids = tok.encode(std::string_view(reinterpret_cast<const char*>(m.data()), m.size()), true);
    d.ids.push_back(eos);
    d.bytes = m.size();
  } catch (const std::exception& e) {
    d.ids.clear();
    d.problem = e.what();
  }
  return d;
}

// True when the file can be read and is a text document.
bool readable_text(const InputFile& f) {
  try {
    return file_problem(MappedFile::open(f.path)).empty();
  } catch (const std::exception&) {
    return false;
  }
}

// Moves the last k tokens of the training shard to the end of the validation shard; the
// training shard gets an EOS after the cut (its last document is split there).
void move_training_tail(const std::string& train_path, const std::string& val_path, uint64_t k,
                        const TokenShardInfo& info) {
  const TokenShard old_train = TokenShard::open(train_path), old_val = TokenShard::open(val_path);
  const uint64_t n = old_train.size();
  std::vector<int32_t> buf;
  auto copy = [&](const TokenShard& from, uint64_t begin, uint64_t count, TokenShardWriter& to) {
    constexpr uint64_t kChunk = 1 << 20;
    for (uint64_t i = begin; i < begin + count; i += kChunk) {
      const uint64_t m = std::min(kChunk, begin + count - i);
      buf.resize(size_t(m));
      from.copy(i, m, buf.data());
      to.append(buf);
    }
  };
  // Both old shards stay mapped while the new ones replace them (rename keeps the old inodes).
  TokenShardWriter val(val_path, info);
  copy(old_val, 0, old_val.size(), val);
  copy(old_train, n - k, k, val);
  TokenShardWriter train(train_path, info);
  copy(old_train, 0, n - k, train);
  const int32_t eos = info.eos_id;
  train.append(std::span<const int32_t>(&eos, 1));
  val.finish();
  train.finish();
}

}  // namespace

std::string text_problem(std::string_view contents) {
  const size_t nul = contents.find('\0');
  if (nul != std::string_view::npos) return str("binary (NUL byte at offset ", nul, ")");
  const size_t bad = unicode::find_invalid_utf8(contents);
  if (bad != std::string_view::npos) return str("invalid UTF-8 at byte ", bad);
  return "";
}

double split_hash(const std::string& rel, uint64_t seed) {
  uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a
  for (unsigned char c : rel) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  h = mix64(h ^ mix64(seed + 0x9e3779b97f4a7c15ull));
  return double(h >> 11) * 0x1.0p-53;
}

std::vector<InputFile> collect_input_files(const std::vector<std::string>& inputs,
                                           const std::vector<std::string>& include, uint64_t max_bytes,
                                           uint64_t seed, const std::string& exclude_dir) {
  if (inputs.empty()) fail("no input files or directories given");
  const std::string excl = exclude_dir.empty() ? "" : canonical_or_same(exclude_dir) + "/";
  std::vector<InputFile> files;
  auto add = [&](const fs::path& p, const std::string& rel) {
    std::error_code ec;
    const uint64_t size = fs::file_size(p, ec);
    if (ec) return;  // vanished or unreadable: not ours to list
    files.push_back({p.string(), rel, size});
  };
  for (const auto& in : inputs) {
    std::error_code ec;
    const fs::file_status st = fs::status(in, ec);
    if (ec || !fs::exists(st)) fail(ErrorKind::NotFound, "input ", in, " does not exist");
    if (fs::is_regular_file(st)) {
      const std::string name = fs::path(in).filename().string();
      if (glob_match(include, name, name)) add(in, name);
      continue;
    }
    if (!fs::is_directory(st)) fail("input ", in, " is neither a regular file nor a directory");
    const fs::path root(in);
    fs::recursive_directory_iterator it(root, fs::directory_options::skip_permission_denied, ec), end;
    if (ec) fail(ErrorKind::Io, "cannot read directory ", in, ": ", ec.message());
    for (; it != end; it.increment(ec)) {
      if (ec) fail(ErrorKind::Io, "cannot read directory ", in, ": ", ec.message());
      const fs::path& p = it->path();
      const std::string name = p.filename().string();
      if (!name.empty() && name[0] == '.') {  // .git, .cache, editor files
        if (it->is_directory(ec)) it.disable_recursion_pending();
        continue;
      }
      if (!it->is_regular_file(ec)) continue;
      const std::string rel = p.lexically_relative(root).generic_string();
      if (glob_match(include, rel, name)) add(p, rel);
    }
  }
  std::sort(files.begin(), files.end(), [](const InputFile& a, const InputFile& b) { return a.path < b.path; });
  std::vector<InputFile> out;
  std::set<std::string> seen;
  for (auto& f : files) {
    const std::string canon = canonical_or_same(f.path);
    if (!excl.empty() && canon.compare(0, excl.size(), excl) == 0) continue;
    if (!seen.insert(canon).second) continue;
    out.push_back(std::move(f));
  }
  if (max_bytes > 0) {
    std::vector<std::pair<double, size_t>> order;
    for (size_t i = 0; i < out.size(); ++i) order.push_back({split_hash(out[i].rel, seed ^ 0x5bd1e995u), i});
    std::sort(order.begin(), order.end());
    std::vector<uint8_t> keep(out.size(), 0);
    uint64_t total = 0;
    for (const auto& [h, i] : order)
      if (out[i].bytes <= max_bytes - total) {
        total += out[i].bytes;
        keep[i] = 1;
      }
    std::vector<InputFile> kept;
    for (size_t i = 0; i < out.size(); ++i)
      if (keep[i]) kept.push_back(std::move(out[i]));
    out = std::move(kept);
  }
  return out;
}

PrepareStats prepare_dataset(const PrepareOptions& o) {
  Stopwatch sw;
  if (o.out_dir.empty()) fail("prepare: no output directory given");
  if (o.tokenizer_dir.empty()) fail("prepare: no tokenizer directory given");
  if (!(o.val_fraction >= 0.0 && o.val_fraction < 1.0))
    fail("prepare: val_fraction must be in [0, 1), got ", o.val_fraction);
  if (!is_directory(o.tokenizer_dir)) fail(ErrorKind::NotFound, "prepare: tokenizer directory ", o.tokenizer_dir, " not found");
  const Tokenizer tok = Tokenizer::load(o.tokenizer_dir);
  const int32_t eos = tok.eos_id();
  if (eos < 0)
    fail("prepare: tokenizer ", o.tokenizer_dir,
         " has no eos_token in tokenizer_config.json; documents need an EOS separator");
  const std::vector<InputFile> files = collect_input_files(o.inputs, o.include, o.max_bytes, o.seed, o.out_dir);
  if (files.empty()) fail(ErrorKind::NotFound, "prepare: no input files matched (inputs and --include globs)");
  make_dirs(o.out_dir);

  // Split: hash < val_fraction, plus (when that picks no readable document and there are >= 2
  // files) the readable document with the smallest hash.
  const size_t n = files.size();
  std::vector<double> h(n);
  std::vector<uint8_t> is_val(n, 0);
  for (size_t i = 0; i < n; ++i) {
    h[i] = split_hash(files[i].rel, o.seed);
    is_val[i] = h[i] < o.val_fraction;
  }
  if (o.val_fraction > 0 && n >= 2) {
    std::vector<size_t> order(n);
    for (size_t i = 0; i < n; ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return h[a] < h[b]; });
    for (size_t i : order) {  // usually stops at the first file; a no-op when hashing picked some
      if (!readable_text(files[i])) continue;
      is_val[i] = 1;
      break;
    }
  }

  const TokenShardInfo info{uint32_t(tok.vocab_size()), eos, tok.bos_id()};
  TokenShardWriter train(path_join(o.out_dir, "train.bin"), info);
  TokenShardWriter val(path_join(o.out_dir, "val.bin"), info);
  PrepareStats st;
  st.files = int64_t(n);
  const bool tty = ::isatty(2);
  double last_print = -1;
  constexpr uint64_t kBlockBytes = uint64_t(64) << 20;
  constexpr size_t kBlockFiles = 4096;
  for (size_t b0 = 0; b0 < n;) {
    size_t b1 = b0;
    uint64_t bytes = 0;
    while (b1 < n && b1 - b0 < kBlockFiles && (b1 == b0 || bytes + files[b1].bytes <= kBlockBytes))
      bytes += files[b1++].bytes;
    std::vector<Doc> docs(b1 - b0);
    const int64_t nb = int64_t(b1 - b0);
#pragma omp parallel for schedule(dynamic, 1) num_threads(num_threads())
    for (int64_t i = 0; i < nb; ++i) docs[size_t(i)] = tokenize_file(tok, files[b0 + size_t(i)], eos);
    for (size_t i = 0; i < docs.size(); ++i) {
      Doc& d = docs[i];
      const size_t fi = b0 + i;
      if (!d.problem.empty()) {
        ++st.skipped;
        if (st.skipped_examples.size() < 10) st.skipped_examples.push_back(files[fi].path + ": " + d.problem);
        continue;
      }
      const int64_t nt = int64_t(d.ids.size());
      if (is_val[fi]) {
        val.append(d.ids);
        ++st.val_documents;
        st.val_tokens += nt;
      } else {
        train.append(d.ids);
        ++st.train_documents;
        st.train_tokens += nt;
      }
      st.bytes += int64_t(d.bytes);
    }
    b0 = b1;
    if (o.verbose && (sw.elapsed() - last_print > 1.0 || b0 == n)) {
      last_print = sw.elapsed();
      std::fprintf(stderr, "%sprepare: %zu/%zu files, %.1f MB, %lld tokens, %.1f MB/s%s", tty ? "\r" : "", b0, n,
                   double(st.bytes) / 1e6, (long long)(st.train_tokens + st.val_tokens),
                   double(st.bytes) / 1e6 / std::max(1e-9, sw.elapsed()), tty && b0 < n ? "" : "\n");
    }
  }
  st.documents = st.train_documents + st.val_documents;
  st.tokens = st.train_tokens + st.val_tokens;
  if (st.documents == 0)
    fail("prepare: none of the ", n, " input files is a text document (all skipped; first: ",
         st.skipped_examples.empty() ? std::string("?") : st.skipped_examples[0], ")");
  train.finish();
  val.finish();
  // Validation top-up (see prepare.h): the last k training tokens move to the end of val.bin.
  uint64_t want_val = o.min_val_tokens;
  if (o.val_fraction > 0 && st.val_tokens == 0)
    want_val = std::max<uint64_t>(want_val, uint64_t(std::ceil(o.val_fraction * double(st.tokens))));
  if (o.val_fraction > 0 && uint64_t(st.val_tokens) < want_val) {
    const uint64_t k = want_val - uint64_t(st.val_tokens);
    if (k > uint64_t(st.train_tokens) / 2)
      fail("prepare: the corpus has ", st.tokens, " tokens, too few for a validation split of ", want_val,
           " tokens and at least as many to train on; give more text");
    move_training_tail(path_join(o.out_dir, "train.bin"), path_join(o.out_dir, "val.bin"), k, info);
    st.train_tokens -= int64_t(k) - 1;  // + the EOS after the cut
    st.val_tokens += int64_t(k);
    st.tokens = st.train_tokens + st.val_tokens;
    st.val_tokens_from_train = int64_t(k);
  }

  std::vector<std::string> sources;
  for (const auto& in : o.inputs) sources.push_back(canonical_or_same(in));
  const nlohmann::ordered_json meta = {
      {"vocab_size", info.vocab_size},
      {"eos_id", eos},
      {"bos_id", info.bos_id < 0 ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(info.bos_id)},
      {"train_tokens", st.train_tokens},
      {"val_tokens", st.val_tokens},
      {"documents", {{"train", st.train_documents}, {"val", st.val_documents}}},
      {"tokenizer", canonical_or_same(o.tokenizer_dir)},
      {"sources", sources},
      {"include", o.include},
      {"max_bytes", o.max_bytes},
      {"val_fraction", o.val_fraction},
      {"seed", o.seed},
      {"bytes", st.bytes},
      {"skipped_files", st.skipped},
      {"val_tokens_from_train", st.val_tokens_from_train},
      {"format", "qiusuo token shards v1 (docs/data.md)"},
  };
  write_text_file_atomic(path_join(o.out_dir, "meta.json"), meta.dump(2) + "\n");
  st.seconds = sw.elapsed();
  if (o.verbose && st.skipped > 0) {
    std::fprintf(stderr, "prepare: skipped %lld file(s) (binary, not UTF-8 or empty), e.g.\n", (long long)st.skipped);
    for (size_t i = 0; i < std::min<size_t>(3, st.skipped_examples.size()); ++i)
      std::fprintf(stderr, "  %s\n", st.skipped_examples[i].c_str());
  }
  return st;
}

// ---- tokenizer training ------------------------------------------------------------------------

const std::vector<std::string>& default_special_tokens() {
  static const std::vector<std::string> k = {
      "<\uff5cbegin\u2581of\u2581sentence\uff5c>",  // 0 bos
      "<\uff5cend\u2581of\u2581sentence\uff5c>",    // 1 eos
      "<\uff5c\u2581pad\u2581\uff5c>",                // 2 pad
      "<\uff5cUser\uff5c>",                          // 3
      "<\uff5cAssistant\uff5c>",                     // 4
      "<think>",                                      // 5
      "</think>",                                     // 6
  };
  return k;
}

const std::string& default_chat_template() {
  // One line: whitespace outside tags would be rendered.
  static const std::string k =
      "{%- if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}"
      "{%- set ns = namespace(system='') %}"
      "{%- for message in messages if message['role'] == 'system' %}"
      "{%- set ns.system = ns.system + ('\n\n' if ns.system else '') + message['content'] %}"
      "{%- endfor %}"
      "{{- bos_token }}{{ ns.system }}"
      "{%- for message in messages %}"
      "{%- if message['role'] == 'user' %}{{ '<\uff5cUser\uff5c>' + message['content'] }}"
      "{%- elif message['role'] == 'assistant' %}"
      "{{ '<\uff5cAssistant\uff5c>' + message['content'] + '<\uff5cend\u2581of\u2581sentence\uff5c>' }}"
      "{%- endif %}"
      "{%- endfor %}"
      "{%- if add_generation_prompt %}{{ '<\uff5cAssistant\uff5c>' }}{% endif %}";
  return k;
}

TokenizerTrainStats train_tokenizer(const TokenizerTrainOptions& o) {
  Stopwatch sw;
  if (o.out_dir.empty()) fail("tokenizer-train: no output directory given");
  const auto& sp = default_special_tokens();
  BpeTrainerOptions bo;
  bo.vocab_size = o.vocab_size;
  bo.special_tokens = sp;
  bo.bos_token = sp[0];
  bo.eos_token = sp[1];
  bo.pad_token = sp[2];
  bo.add_bos_token = true;
  bo.chat_template = default_chat_template();
  BpeTrainer trainer(bo);  // validates vocab_size before the corpus is read

  const std::vector<InputFile> files = collect_input_files(o.inputs, o.include, o.max_bytes, o.seed, o.out_dir);
  if (files.empty()) fail(ErrorKind::NotFound, "tokenizer-train: no input files matched (inputs and --include globs)");
  TokenizerTrainStats st;
  st.files = int64_t(files.size());
  const bool tty = ::isatty(2);
  double last_print = -1;
  for (size_t i = 0; i < files.size(); ++i) {
    std::string problem;
    try {
      const MappedFile m = MappedFile::open(files[i].path);
      const std::string_view text(reinterpret_cast<const char*>(m.data()), m.size());
      problem = text.empty() ? "empty" : text_problem(text);
      if (problem.empty()) {
        trainer.feed(text);
        st.bytes += int64_t(text.size());
        ++st.documents;
      }
    } catch (const Error& e) {
      if (e.kind() != ErrorKind::NotFound && e.kind() != ErrorKind::Io) throw;
      problem = e.what();
    }
    if (!problem.empty()) {
      ++st.skipped;
      if (st.skipped_examples.size() < 10) st.skipped_examples.push_back(files[i].path + ": " + problem);
    }
    if (o.verbose && (sw.elapsed() - last_print > 1.0 || i + 1 == files.size())) {
      last_print = sw.elapsed();
      std::fprintf(stderr, "%stokenizer-train: counted %zu/%zu files, %.1f MB, %zu distinct words%s", tty ? "\r" : "",
                   i + 1, files.size(), double(st.bytes) / 1e6, trainer.unique_words(),
                   tty && i + 1 < files.size() ? "" : "\n");
    }
  }
  if (st.documents == 0) fail("tokenizer-train: none of the ", files.size(), " input files is UTF-8 text");
  st.unique_words = int64_t(trainer.unique_words());
  if (o.verbose) std::fprintf(stderr, "tokenizer-train: learning merges up to %d ids...\n", o.vocab_size);
  const Tokenizer tok = trainer.train();
  tok.save(o.out_dir);
  st.vocab_size = tok.vocab_size();
  st.seconds = sw.elapsed();
  return st;
}

// ---- raw text straight into training ------------------------------------------------------------

bool is_prepared_dataset(const std::string& path) {
  return is_directory(path) && file_exists(path_join(path, "meta.json")) && file_exists(path_join(path, "train.bin"));
}

TextDataset prepare_text_dataset(const TextDatasetOptions& o) {
  QS_CHECK(!o.inputs.empty(), "no text inputs given");
  QS_CHECK(!o.out_dir.empty(), "no dataset directory given");
  TextDataset out;
  out.dir = o.out_dir;
  const std::string tok_dir = path_join(o.out_dir, "tokenizer");
  if (is_prepared_dataset(o.out_dir) && file_exists(path_join(o.out_dir, "val.bin")) &&
      file_exists(path_join(tok_dir, "tokenizer.json"))) {
    const DatasetMeta meta = read_dataset_meta(o.out_dir);
    std::vector<std::string> sources;
    for (const auto& in : o.inputs) sources.push_back(canonical_or_same(in));
    if (meta.sources == sources && meta.tokenizer == canonical_or_same(tok_dir)) {
      out.reused = true;
      return out;
    }
  }
  TokenizerTrainOptions t;
  t.inputs = o.inputs;
  t.vocab_size = o.vocab_size;
  t.out_dir = tok_dir;
  t.seed = o.seed;
  t.verbose = o.verbose;
  out.tokenizer = train_tokenizer(t);
  PrepareOptions p;
  p.inputs = o.inputs;
  p.tokenizer_dir = tok_dir;
  p.out_dir = o.out_dir;
  p.min_val_tokens = o.min_val_tokens;
  p.seed = o.seed;
  p.verbose = o.verbose;
  out.prepare = prepare_dataset(p);
  return out;
}

}  // namespace qs
