#pragma once
#include <CLI/CLI.hpp>

#include <optional>
#include <string>
#include <vector>

namespace qs {
enum class KvDtype;  // model/kv_cache.h
}

namespace qs::cli {
void register_model_commands(CLI::App& app);     // info, logits, init
void register_text_commands(CLI::App& app);      // tokenize, render
void register_generate_commands(CLI::App& app);  // generate, chat
void register_bench_command(CLI::App& app);      // bench
void register_train_commands(CLI::App& app);     // train, eval
void register_data_commands(CLI::App& app);      // tokenizer-train, prepare
void register_serve_command(CLI::App& app);      // serve
void register_rl_commands(CLI::App& app);        // task-gen
void register_quantize_command(CLI::App& app);   // quantize

int num_threads_for_cli();
// Shared helpers.
void apply_threads(int threads);  // 0 = all cores
std::string human_count(double n);  // 1.23B, 45.6M
std::string human_bytes(double n);  // 1.2 GB
// --kv-cache-dtype auto|f32|bf16|fp8 into `value`; kv_cache_of(value): "auto" is unset (the
// engine's default for its precision).
void add_kv_cache_option(CLI::App* c, std::string& value);
// --mmap (WeightPlacement::mmap): the kernels read the weights in the checkpoint's mapping.
void add_mmap_flag(CLI::App* c, bool& value);
std::optional<KvDtype> kv_cache_of(const std::string& value);
// --speculative none|mtp|auto into `value` (infer/engine.h: speculative_mode_of, resolve_speculation).
void add_speculative_option(CLI::App* c, std::string& value);
}  // namespace qs::cli
