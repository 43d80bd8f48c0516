// `qiusuo train` as a user runs it: a run killed with SIGKILL and resumed continues with exactly
// the losses of an uninterrupted run; a corrupt checkpoint is a clear error and the previous one
// still loads; the result is a checkpoint that generate/logits load.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "qiusuo/core/rng.h"
#include "qiusuo/io/file.h"
#include "qiusuo/train/data.h"
#include "cli/cli_util.h"
#include "test_util.h"

namespace qs {
namespace {

using ::testing::HasSubstr;
using testing_util::TempDir;

using testing_util::CmdResult;
using testing_util::qiusuo;

void make_dataset(const std::string& dir) {
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

std::string make_config(const std::string& dir) {
  auto j = testing_util::tiny_v3_config(64);
  j["hidden_size"] = 32;
  j["intermediate_size"] = 64;
  j["moe_intermediate_size"] = 16;
  j["q_lora_rank"] = 24;
  j["kv_lora_rank"] = 16;
  j["qk_nope_head_dim"] = 8;
  j["v_head_dim"] = 8;
  j["train"] = {{"seq_len", 32}, {"batch_size", 4}, {"lr", 2e-3}, {"warmup", 5}};
  write_text_file_atomic(dir + "/config.json", j.dump());
  return dir + "/config.json";
}

std::vector<nlohmann::json> metrics(const std::string& out) {
  std::vector<nlohmann::json> v;
  std::ifstream in(out + "/metrics.jsonl");
  std::string line;
  while (std::getline(in, line)) v.push_back(nlohmann::json::parse(line));
  return v;
}

std::string train_args(const std::string& cfg, const std::string& data, const std::string& out, int steps) {
  return "train --config " + cfg + " --data " + data + " --out " + out + " --steps " + std::to_string(steps) +
         " --save-every 8 --eval-every 8 --eval-batches 2 --seed 7 --quiet";
}

TEST(TrainCli, KilledRunResumesWithTheSameLosses) {
  TempDir d("resume");
  make_dataset(d / "data");
  const std::string cfg = make_config(d.path);
  ASSERT_EQ(qiusuo(train_args(cfg, d / "data", d / "a", 40)).code, 0);
  // Run B in the background and SIGKILL it once a mid-run checkpoint exists.
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    setpgid(0, 0);  // its own process group: SIGKILL reaches the shell and qiusuo
    const std::string bin = std::string(QS_BINARY_DIR) + "/qiusuo";
    const std::string args = train_args(cfg, d / "data", d / "b", 40);
    execl("/bin/sh", "sh", "-c", (bin + " " + args + " >/dev/null 2>&1").c_str(), nullptr);
    _exit(127);
  }
  std::string latest;
  for (int i = 0; i < 6000; ++i) {
    if (file_exists(d / "b/checkpoints/latest")) {
      latest = read_text_file(d / "b/checkpoints/latest");
      if (latest >= "step-00000016") break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  kill(-pid, SIGKILL);
  int st;
  waitpid(pid, &st, 0);
  ASSERT_GE(latest, "step-00000016");
  ASSERT_LT(latest, "step-00000040") << "the run finished before it could be killed";
  const CmdResult r = qiusuo(train_args(cfg, d / "data", d / "b", 40) + " --resume");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto a = metrics(d / "a"), b = metrics(d / "b");
  ASSERT_EQ(a.size(), 40u);
  ASSERT_EQ(b.size(), 40u);
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i]["step"], b[i]["step"]);
    EXPECT_EQ(a[i]["loss"].get<double>(), b[i]["loss"].get<double>()) << "step " << i + 1;
    EXPECT_EQ(a[i].value("val_loss", -1.0), b[i].value("val_loss", -1.0)) << "step " << i + 1;
    EXPECT_EQ(a[i]["expert_load"], b[i]["expert_load"]) << "step " << i + 1;
  }
  // The result is a checkpoint the inference commands load.
  EXPECT_EQ(qiusuo("generate --model " + (d / "b") + " --ids 1,2,3 --max-tokens 4 --temperature 0").code, 0);
  EXPECT_EQ(qiusuo("logits --model " + (d / "b") + " --ids 1,2,3 --out " + (d / "l.safetensors")).code, 0);
}

TEST(TrainCli, CorruptCheckpointIsAClearErrorAndThePreviousOneLoads) {
  TempDir d("corrupt");
  make_dataset(d / "data");
  const std::string cfg = make_config(d.path);
  ASSERT_EQ(qiusuo(train_args(cfg, d / "data", d / "a", 16)).code, 0);
  ASSERT_TRUE(std::filesystem::exists(d / "a/checkpoints/step-00000008"));
  const std::string victim = d / "a/checkpoints/step-00000016/model.safetensors";
  std::filesystem::resize_file(victim, std::filesystem::file_size(victim) - 100);
  CmdResult r = qiusuo(train_args(cfg, d / "data", d / "a", 24) + " --resume");
  EXPECT_NE(r.code, 0);
  EXPECT_THAT(r.err, HasSubstr("corrupt"));
  EXPECT_THAT(r.err, HasSubstr("model.safetensors"));
  EXPECT_THAT(r.err, HasSubstr("--resume-from " + (d / "a/checkpoints/step-00000008")));
  r = qiusuo(train_args(cfg, d / "data", d / "a", 24) + " --resume-from " + (d / "a/checkpoints/step-00000008"));
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(metrics(d / "a").size(), 24u);
}

TEST(TrainCli, BadArgumentsAreClearErrors) {
  TempDir d("badargs");
  make_dataset(d / "data");
  const std::string cfg = make_config(d.path);
  CmdResult r = qiusuo("train --config " + cfg + " --data " + (d / "nope") + " --out " + (d / "o"));
  EXPECT_NE(r.code, 0);
  EXPECT_THAT(r.err, HasSubstr("does not exist"));
  r = qiusuo("train --config no-such-preset --data " + (d / "data") + " --out " + (d / "o"));
  EXPECT_NE(r.code, 0);
  EXPECT_THAT(r.err, HasSubstr("unknown training preset"));
  auto j = nlohmann::json::parse(read_text_file(cfg));
  j["num_experts_per_tok"] = 100;
  write_text_file_atomic(d / "bad.json", j.dump());
  r = qiusuo("train --config " + (d / "bad.json") + " --data " + (d / "data") + " --out " + (d / "o"));
  EXPECT_NE(r.code, 0);
  EXPECT_THAT(r.err, HasSubstr("num_experts_per_tok"));
  r = qiusuo("train --config " + cfg + " --data " + (d / "data") + " --out " + (d / "o") + " --precision fp4");
  EXPECT_NE(r.code, 0);
  EXPECT_THAT(r.err, HasSubstr("precision must be"));
  r = qiusuo("train --config " + cfg + " --data " + (d / "data") + " --out " + (d / "fresh") + " --resume");
  EXPECT_NE(r.code, 0);
  EXPECT_THAT(r.err, HasSubstr("no checkpoint"));
}

// `--data` may be text: a tokenizer is trained on it and it is prepared into OUT/data, which a
// resumed run reuses.
TEST(TrainCli, RawTextDataIsTokenizedAndPreparedFirst) {
  TempDir d("rawtext");
  make_dirs(d / "corpus/sub");
  Rng r(9);
  const char* words[] = {"the", "model", "routes", "tokens", "to", "experts", "and", "attends", "over", "latents"};
  for (int f = 0; f < 6; ++f) {
    std::string text;
    for (int i = 0; i < 900; ++i) text += std::string(words[r.below(10)]) + (i % 12 == 11 ? ".\n" : " ");
    write_text_file_atomic(d / ("corpus/" + std::string(f < 3 ? "" : "sub/") + "doc" + std::to_string(f) + ".txt"), text);
  }
  const std::string args = "train --config tiny --data " + (d / "corpus") + " --out " + (d / "out") +
                           " --batch 2 --seq-len 32 --save-every 1 --eval-batches 1 --threads 1";
  CmdResult res = qiusuo(args + " --steps 2");
  ASSERT_EQ(res.code, 0) << res.err;
  EXPECT_THAT(res.err, HasSubstr("is not a prepared dataset"));
  EXPECT_THAT(res.err, HasSubstr(d / "out/data"));
  EXPECT_TRUE(file_exists(d / "out/data/meta.json"));
  EXPECT_TRUE(file_exists(d / "out/data/tokenizer/tokenizer.json"));
  EXPECT_TRUE(file_exists(d / "out/tokenizer.json")) << "the checkpoint ships the trained tokenizer";
  EXPECT_EQ(metrics(d / "out").size(), 2u);
  res = qiusuo(args + " --steps 3 --resume");
  ASSERT_EQ(res.code, 0) << res.err;
  EXPECT_THAT(res.err, HasSubstr("reusing it"));
  EXPECT_EQ(metrics(d / "out").size(), 3u);
  // The result generates text with its own tokenizer.
  EXPECT_EQ(qiusuo("generate --model " + (d / "out") + " --prompt the --max-tokens 3 --temperature 0").code, 0);
}

}  // namespace
}  // namespace qs
