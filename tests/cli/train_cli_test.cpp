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
using testing_util::read_metrics;
using testing_util::TempDir;
using testing_util::write_tiny_dataset;
using testing_util::write_tiny_train_config;

using testing_util::CmdResult;
using testing_util::qiusuo;


std::string train_args(const std::string& cfg, const std::string& data, const std::string& out, int steps) {
  return "train --config " + cfg + " --data " + data + " --out " + out + " --steps " + std::to_string(steps) +
         " --save-every 8 --eval-every 8 --eval-batches 2 --seed 7 --quiet";
}

TEST(TrainCli, KilledRunResumesWithTheSameLosses) {
  TempDir d("resume");
  write_tiny_dataset(d / "data");
  const std::string cfg = write_tiny_train_config(d.path, 5);
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
  const auto a = read_metrics(d / "a"), b = read_metrics(d / "b");
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
  write_tiny_dataset(d / "data");
  const std::string cfg = write_tiny_train_config(d.path, 5);
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
  EXPECT_EQ(read_metrics(d / "a").size(), 24u);
}

TEST(TrainCli, BadArgumentsAreClearErrors) {
  TempDir d("badargs");
  write_tiny_dataset(d / "data");
  const std::string cfg = write_tiny_train_config(d.path, 5);
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
  EXPECT_EQ(read_metrics(d / "out").size(), 2u);
  res = qiusuo(args + " --steps 3 --resume");
  ASSERT_EQ(res.code, 0) << res.err;
  EXPECT_THAT(res.err, HasSubstr("reusing it"));
  EXPECT_EQ(read_metrics(d / "out").size(), 3u);
  // The result generates text with its own tokenizer.
  EXPECT_EQ(qiusuo("generate --model " + (d / "out") + " --prompt the --max-tokens 3 --temperature 0").code, 0);
}

}  // namespace
}  // namespace qs
