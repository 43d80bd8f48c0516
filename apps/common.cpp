#include <cstdio>

#include "commands.h"
#include "qiusuo/core/parallel.h"
#include "qiusuo/model/kv_cache.h"

namespace qs::cli {
void apply_threads(int threads) { set_num_threads(threads); }
int num_threads_for_cli() { return num_threads(); }

void add_mmap_flag(CLI::App* c, bool& value) {
  c->add_flag("--mmap", value,
              "Read the weights where the checkpoint is mapped instead of copying them into memory at\n"
              "load (the default: huge pages, decode 8-15% faster on Zen 5); --mmap starts without\n"
              "reading the files and shares their pages with the page cache and other processes");
}

void add_kv_cache_option(CLI::App* c, std::string& value) {
  c->add_option("--kv-cache-dtype", value,
                "How the latent KV cache stores tokens: auto (bf16 with --precision bf16, f32 with f32),\n"
                "f32 (exact), bf16 (half the memory), fp8 (E4M3 latent with an F32 scale per 128 values,\n"
                "BF16 rope part: 656 bytes per token and layer at DeepSeek-V2/V3 widths, 2304 in f32; with\n"
                "--precision bf16 as fast as bf16 at long contexts). Measured error vs f32: docs/benchmarks.md")
      ->check(CLI::IsMember({"auto", "f32", "bf16", "fp8"}))
      ->capture_default_str();
}

void add_speculative_option(CLI::App* c, std::string& value) {
  c->add_option("--speculative", value,
                "none; mtp: the checkpoint's multi-token-prediction module drafts the token after next and\n"
                "the model verifies both in one step (greedy output is exactly the plain output, sampled\n"
                "tokens keep their distribution: speculative sampling); auto: mtp when the checkpoint has an\n"
                "MTP module and reading its weights is expected to pay at batch 1 (>= 1.1x at 80% acceptance\n"
                "from the bytes a step reads; MoE verify steps read up to twice the experts: docs/benchmarks.md)")
      ->check(CLI::IsMember({"none", "mtp", "auto"}))
      ->capture_default_str();
}

std::optional<KvDtype> kv_cache_of(const std::string& value) {
  if (value == "auto") return std::nullopt;
  return parse_kv_dtype(value);
}

std::string human_count(double n) {
  char buf[32];
  if (n >= 1e9) std::snprintf(buf, sizeof buf, "%.2fB", n / 1e9);
  else if (n >= 1e6) std::snprintf(buf, sizeof buf, "%.2fM", n / 1e6);
  else if (n >= 1e3) std::snprintf(buf, sizeof buf, "%.1fK", n / 1e3);
  else std::snprintf(buf, sizeof buf, "%.0f", n);
  return buf;
}
std::string human_bytes(double n) {
  char buf[32];
  if (n >= 1e9) std::snprintf(buf, sizeof buf, "%.2f GB", n / 1e9);
  else if (n >= 1e6) std::snprintf(buf, sizeof buf, "%.2f MB", n / 1e6);
  else if (n >= 1e3) std::snprintf(buf, sizeof buf, "%.1f KB", n / 1e3);
  else std::snprintf(buf, sizeof buf, "%.0f B", n);
  return buf;
}
}  // namespace qs::cli
