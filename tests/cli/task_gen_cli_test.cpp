// `qiusuo task-gen` as a user runs it: the task JSONL contract, disjoint splits across seeds,
// SFT output whose worked solutions verify, and clear errors that leave no file behind.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>

#include "cli/cli_util.h"
#include "qiusuo/io/file.h"
#include "qiusuo/rl/tasks.h"
#include "qiusuo/rl/verifier.h"
#include "test_util.h"

namespace qs {
namespace {

using ::testing::HasSubstr;
using testing_util::CmdResult;
using testing_util::qiusuo;
using testing_util::TempDir;

TEST(TaskGenCli, ContractAndDisjointSplits) {
  TempDir d("taskgen");
  for (const char* task : {"countdown", "arithmetic"}) {
    std::set<std::string> train, test;
    for (int seed : {1, 2}) {
      for (const char* split : {"train", "test"}) {
        const std::string out = d / (std::string(task) + split + std::to_string(seed) + ".jsonl");
        const CmdResult r = qiusuo(std::string("task-gen --task ") + task + " --split " + split + " --n 60 --seed " +
                                   std::to_string(seed) + " --difficulty 2 --out " + out);
        ASSERT_EQ(r.code, 0) << r.err;
        EXPECT_THAT(r.out, HasSubstr("wrote 60"));
        const std::string text = read_text_file(out);
        EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 60);
        for (const rl::Problem& p : rl::load_task_jsonl(out)) {
          (std::string(split) == "train" ? train : test).insert(rl::canonical_form(p));
          EXPECT_EQ(p.match, std::string(task) == "countdown" ? rl::MatchKind::Countdown : rl::MatchKind::Numeric);
        }
        // The raw lines carry the contract's fields with their JSON types.
        const auto j = nlohmann::json::parse(text.substr(0, text.find('\n')));
        EXPECT_TRUE(j["prompt"].is_string() && j["answer"].is_string() && j["match"].is_string());
        if (std::string(task) == "countdown") {
          EXPECT_TRUE(j["numbers"].is_array() && j["target"].is_number_integer());
        }
      }
    }
    for (const std::string& c : test) EXPECT_EQ(train.count(c), 0u) << c;
  }
  // Same seed, same file.
  ASSERT_EQ(qiusuo("task-gen --task countdown --split train --n 60 --seed 1 --difficulty 2 --out " + (d / "again")).code, 0);
  EXPECT_EQ(read_text_file(d / "again"), read_text_file(d / "countdowntrain1.jsonl"));
}

TEST(TaskGenCli, SftOutputAndKnobs) {
  TempDir d("taskgen");
  const CmdResult r = qiusuo("task-gen --task arithmetic --split train --n 20 --digits 3-4 --ops '*' --format sft "
                             "--trace-style columns --json --out " + (d / "sft.jsonl"));
  ASSERT_EQ(r.code, 0) << r.err;
  const auto summary = nlohmann::json::parse(r.out);
  EXPECT_EQ(summary["n"], 20);
  EXPECT_EQ(summary["knobs"]["ops"], "*");
  const std::string text = read_text_file(d / "sft.jsonl");
  size_t lines = 0;
  for (size_t pos = 0, end; (end = text.find('\n', pos)) != std::string::npos; pos = end + 1, ++lines) {
    const auto j = nlohmann::json::parse(text.substr(pos, end - pos));
    const std::string user = j["messages"][0]["content"], assistant = j["messages"][1]["content"];
    EXPECT_THAT(user, HasSubstr(" * "));
    EXPECT_THAT(assistant, HasSubstr("Multiply"));
    EXPECT_TRUE(rl::format_ok(assistant));
  }
  EXPECT_EQ(lines, 20u);
}

TEST(TaskGenCli, ClearErrorsAndNoPartialFile) {
  TempDir d("taskgen");
  const std::string out = d / "x.jsonl";
  CmdResult r = qiusuo("task-gen --task countdown --split test --n 5000 --difficulty 1 --out " + out);
  EXPECT_NE(r.code, 0);
  EXPECT_THAT(r.err, HasSubstr("distinct test countdown problems"));
  EXPECT_FALSE(file_exists(out));
  r = qiusuo("task-gen --task countdown --split test --n 5 --digits 3 --out " + out);
  EXPECT_NE(r.code, 0);
  EXPECT_THAT(r.err, HasSubstr("--digits applies to --task arithmetic only"));
  r = qiusuo("task-gen --task arithmetic --split test --n 5 --difficulty 9 --out " + out);
  EXPECT_NE(r.code, 0);
  EXPECT_THAT(r.err, HasSubstr("difficulty '9'"));
  r = qiusuo("task-gen --task arithmetic --split dev --n 5 --out " + out);
  EXPECT_NE(r.code, 0);
  r = qiusuo("task-gen --task arithmetic --split test --n 5 --ops '+/' --out " + out);
  EXPECT_NE(r.code, 0);
  EXPECT_THAT(r.err, HasSubstr("subset of \"+-*\""));
  EXPECT_FALSE(file_exists(out));
  r = qiusuo("task-gen --help");
  EXPECT_EQ(r.code, 0);
  EXPECT_THAT(r.out, HasSubstr("task JSONL"));
  EXPECT_THAT(r.out, HasSubstr("--difficulty"));
}

}  // namespace
}  // namespace qs
