// Running the `qiusuo` command from the CLI tests.
#pragma once
#include <fcntl.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "qiusuo/core/rng.h"
#include "qiusuo/io/file.h"
#include "qiusuo/model/presets.h"
#include "qiusuo/train/data.h"
#include "test_util.h"

namespace qs::testing_util {

struct CmdResult {
  int code = -1;
  std::string out, err;
};

// Runs `qiusuo <args>` (args go through the shell) capturing its exit code, stdout and stderr.
inline CmdResult qiusuo(const std::string& args) {
  TempDir d("cli");
  const std::string cmd = std::string(QS_BINARY_DIR) + "/qiusuo " + args + " >" + (d / "out") + " 2>" + (d / "err");
  const int st = std::system(cmd.c_str());
  CmdResult r;
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  r.out = read_text_file(d / "out");
  r.err = read_text_file(d / "err");
  return r;
}

// V2-Lite's widths with 2 layers, 16 experts and a 16000-token vocabulary (~0.6 GB in BF16).
inline void write_small_v2_lite_config(const std::string& path) {
  nlohmann::json c = preset_config("v2-lite");
  c["num_hidden_layers"] = 2;
  c["n_routed_experts"] = 16;
  c["vocab_size"] = 16000;
  c["bos_token_id"] = 0;
  c["eos_token_id"] = 1;
  write_text_file_atomic(path, c.dump(2));
}

// Peak RSS in MB of `qiusuo args...` run directly (no shell: wait4 reports that process's own
// peak), its output discarded; `code` gets the exit status.
inline double peak_rss_mb(const std::vector<std::string>& args, int& code) {
  const std::string bin = std::string(QS_BINARY_DIR) + "/qiusuo";
  std::vector<char*> argv{const_cast<char*>(bin.c_str())};
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, bin.c_str(), &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  code = -1;
  if (rc != 0) return 0;
  int st = 0;
  rusage ru{};
  if (wait4(pid, &st, 0, &ru) != pid) return 0;
  code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return double(ru.ru_maxrss) / 1024.0;
}

// The training commands' tests: a prepared dataset of 40000 tokens over a 64-token vocabulary
// (EOS every 7th token, a learnable pattern), 4000 of them also as the validation split.
inline void write_tiny_dataset(const std::string& dir) {
  make_dirs(dir);
  Rng r(4);
  std::vector<int32_t> t;
  for (int i = 0; i < 40000; ++i) t.push_back(i % 7 == 0 ? 1 : int32_t(2 + (i * 5 + r.below(3)) % 60));
  write_token_shard(dir + "/train.bin", {64, 1, 0}, t);
  write_token_shard(dir + "/val.bin", {64, 1, 0}, std::vector<int32_t>(t.begin(), t.begin() + 4000));
  write_text_file_atomic(dir + "/meta.json",
                         nlohmann::json{{"vocab_size", 64}, {"eos_id", 1}, {"bos_id", 0}, {"train_tokens", t.size()},
                                        {"val_tokens", 4000}, {"tokenizer", ""}}
                             .dump());
}

// A tiny V3-style config for that dataset (seq_len 32, batch 4) in dir/config.json; its path.
inline std::string write_tiny_train_config(const std::string& dir, int warmup) {
  auto j = tiny_v3_config(64);
  j["hidden_size"] = 32;
  j["intermediate_size"] = 64;
  j["moe_intermediate_size"] = 16;
  j["q_lora_rank"] = 24;
  j["kv_lora_rank"] = 16;
  j["qk_nope_head_dim"] = 8;
  j["v_head_dim"] = 8;
  j["train"] = {{"seq_len", 32}, {"batch_size", 4}, {"lr", 2e-3}, {"warmup", warmup}};
  write_text_file_atomic(dir + "/config.json", j.dump());
  return dir + "/config.json";
}

// The lines of a run directory's metrics.jsonl.
inline std::vector<nlohmann::json> read_metrics(const std::string& out) {
  std::vector<nlohmann::json> v;
  std::ifstream in(out + "/metrics.jsonl");
  std::string line;
  while (std::getline(in, line)) v.push_back(nlohmann::json::parse(line));
  return v;
}

}  // namespace qs::testing_util
