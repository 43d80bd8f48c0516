// qiusuo tokenizer-train | prepare | plot: corpus -> tokenizer -> token shards, and training plots.
#include <cctype>
#include <cmath>
#include <map>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "commands.h"
#include "qiusuo/core/error.h"
#include "qiusuo/train/data.h"
#include "qiusuo/plot/training.h"
#include "qiusuo/train/prepare.h"

namespace qs::cli {
namespace {

// "1000", "64K", "100M", "2.5G" (powers of 1000; KiB/MiB/GiB with an 'i') -> bytes; "" -> 0.
uint64_t parse_bytes(const std::string& s) {
  if (s.empty()) return 0;
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(s, &used);
  } catch (...) {
    used = 0;
  }
  if (used == 0 || !(v >= 0)) fail("--max-bytes: '", s, "' is not a size (e.g. 500000, 64K, 100M, 2G)");
  static const std::map<std::string, double> units = {
      {"", 1},      {"B", 1},     {"K", 1e3},   {"KB", 1e3},         {"KiB", 1024.0},
      {"M", 1e6},   {"MB", 1e6},  {"MiB", 1048576.0}, {"G", 1e9}, {"GB", 1e9}, {"GiB", 1073741824.0}};
  std::string unit = s.substr(used);
  if (!unit.empty()) unit[0] = char(std::toupper(static_cast<unsigned char>(unit[0])));
  const auto it = units.find(unit);
  if (it == units.end()) fail("--max-bytes: unknown unit in '", s, "' (use K, M, G or KiB, MiB, GiB)");
  const double mult = it->second;
  return uint64_t(std::llround(v * mult));
}

void print_skipped(int64_t skipped, const std::vector<std::string>& examples) {
  if (skipped == 0) return;
  std::printf("skipped      %lld file(s) (binary, not UTF-8 or empty)", (long long)skipped);
  if (!examples.empty()) std::printf(", e.g. %s", examples[0].c_str());
  std::printf("\n");
}

void add_input_options(CLI::App* c, std::vector<std::string>& inputs, std::vector<std::string>& include,
                       std::string& max_bytes) {
  c->add_option("--input,-i", inputs, "Input files or directories (directories are read recursively)")
      ->required()
      ->expected(1, -1);
  c->add_option("--include", include,
                "Only files matching these globs, e.g. '*.py' '*.md' (a glob with '/' matches the relative path)")
      ->expected(1, -1);
  c->add_option("--max-bytes", max_bytes,
                "Use a deterministic sample of at most this many input bytes (e.g. 100M; default: all)");
}

}  // namespace

void register_data_commands(CLI::App& app) {
  {
    struct Opts {
      TokenizerTrainOptions t;
      std::string max_bytes;
      int threads = 0;
    };
    auto o = std::make_shared<Opts>();
    o->t.verbose = true;
    auto* c = app.add_subcommand(
        "tokenizer-train",
        "Train a byte-level BPE tokenizer (DeepSeek-V3 pre-tokenizer) on text files.\n"
        "Special tokens: <｜begin▁of▁sentence｜> (0, bos), <｜end▁of▁sentence｜> (1, eos), <｜▁pad▁｜> (2),\n"
        "<｜User｜>, <｜Assistant｜>, <think>, </think>. Writes tokenizer.json and tokenizer_config.json\n"
        "(with a chat template). Binary and non-UTF-8 files are skipped.");
    add_input_options(c, o->t.inputs, o->t.include, o->max_bytes);
    c->add_option("--vocab-size", o->t.vocab_size, "Total vocabulary size (7 special + 256 bytes + merges)")
        ->required();
    c->add_option("--out,-o", o->t.out_dir, "Output tokenizer directory")->required();
    c->add_option("--seed", o->t.seed, "Seed of the --max-bytes sample")->capture_default_str();
    c->add_option("--threads", o->threads, "Threads (0 = all cores)");
    c->callback([o] {
      apply_threads(o->threads);
      o->t.max_bytes = parse_bytes(o->max_bytes);
      const TokenizerTrainStats st = train_tokenizer(o->t);
      std::printf("tokenizer    %s: %d ids (7 special + 256 bytes + %d merges)\n", o->t.out_dir.c_str(), st.vocab_size,
                  std::max(0, st.vocab_size - 263));
      std::printf("corpus       %lld files, %s of text, %s distinct words\n", (long long)st.documents,
                  human_bytes(double(st.bytes)).c_str(), human_count(double(st.unique_words)).c_str());
      print_skipped(st.skipped, st.skipped_examples);
      std::printf("time         %.1f s\n", st.seconds);
    });
  }
  {
    struct Opts {
      PrepareOptions p;
      std::string max_bytes;
      int threads = 0;
    };
    auto o = std::make_shared<Opts>();
    o->p.verbose = true;
    auto* c = app.add_subcommand(
        "prepare",
        "Tokenize text files into a dataset directory: train.bin, val.bin (token shards) and meta.json.\n"
        "Each file is one document followed by EOS; a file's split is a hash of its relative path and\n"
        "the seed. Binary and non-UTF-8 files are skipped. See docs/data.md.");
    c->add_option("--tokenizer,-t", o->p.tokenizer_dir, "Tokenizer directory (tokenizer.json + tokenizer_config.json)")
        ->required();
    add_input_options(c, o->p.inputs, o->p.include, o->max_bytes);
    c->add_option("--val-fraction", o->p.val_fraction,
                  "Fraction of documents for validation (at least one when there are >= 2)")
        ->capture_default_str();
    c->add_option("--out,-o", o->p.out_dir, "Output dataset directory")->required();
    c->add_option("--seed", o->p.seed, "Seed of the train/val split and the --max-bytes sample")->capture_default_str();
    c->add_option("--threads", o->threads, "Threads (0 = all cores)");
    c->callback([o] {
      apply_threads(o->threads);
      o->p.max_bytes = parse_bytes(o->max_bytes);
      const PrepareStats st = prepare_dataset(o->p);
      std::printf("dataset      %s\n", o->p.out_dir.c_str());
      std::printf("documents    %lld (train %lld, val %lld) from %s of text\n", (long long)st.documents,
                  (long long)st.train_documents, (long long)st.val_documents, human_bytes(double(st.bytes)).c_str());
      std::printf("tokens       %s (train %lld, val %lld), %.2f bytes per token\n", human_count(double(st.tokens)).c_str(),
                  (long long)st.train_tokens, (long long)st.val_tokens,
                  st.tokens ? double(st.bytes) / double(st.tokens) : 0.0);
      print_skipped(st.skipped, st.skipped_examples);
      std::printf("time         %.1f s (%.1f MB/s)\n", st.seconds, double(st.bytes) / 1e6 / std::max(1e-9, st.seconds));
    });
  }
  {
    struct Opts { std::string metrics, out; };
    auto o = std::make_shared<Opts>();
    auto* c = app.add_subcommand(
        "plot", "Draw a training run's metrics.jsonl as SVG: loss.svg, lr.svg, throughput.svg, expert_load.svg");
    c->add_option("--metrics", o->metrics, "metrics.jsonl written by training")->required();
    c->add_option("--out,-o", o->out, "Output directory for the SVG files")->required();
    c->callback([o] {
      write_training_plots(o->metrics, o->out);
      std::printf("wrote loss.svg, lr.svg, throughput.svg, expert_load.svg to %s\n", o->out.c_str());
    });
  }
}

}  // namespace qs::cli
