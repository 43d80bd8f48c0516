// Generation with a real tokenizer: a random model sized for the DeepSeek-R1 vocabulary, the
// R1 tokenizer and chat template. Stop strings end the text before the stop string; `chat`
// renders the template and marks R1 reasoning.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <filesystem>

#include "qiusuo/infer/engine.h"
#include "qiusuo/io/file.h"
#include "qiusuo/model/init.h"
#include "test_util.h"

namespace qs {
namespace {

using ::testing::HasSubstr;

class ChatModel : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing_util::TempDir("chatmodel");
    auto j = testing_util::tiny_v3_config(129280);
    j["hidden_size"] = 32;
    j["num_hidden_layers"] = 1;
    j["first_k_dense_replace"] = 1;
    j["num_nextn_predict_layers"] = 0;
    InitOptions o;
    o.seed = 2;
    write_random_checkpoint(parse_model_config(j), dir_->path, o);
    for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
      std::filesystem::copy_file(std::string(QS_FIXTURES) + "/tokenizer/deepseek-r1/" + f, dir_->path + "/" + f);
  }
  static void TearDownTestSuite() { delete dir_; }
  static testing_util::TempDir* dir_;
};
testing_util::TempDir* ChatModel::dir_ = nullptr;

TEST_F(ChatModel, StopStringsEndTheTextBeforeThem) {
  auto model = Model::load(dir_->path);
  const Tokenizer tok = Tokenizer::load(dir_->path);
  Engine e(*model, &tok, {});
  SamplingParams sp;
  sp.temperature = 0;
  sp.max_tokens = 40;
  sp.ignore_eos = true;
  const auto prompt = tok.encode("Hello, world", true);
  GenerationRequest plain;
  plain.prompt = prompt;
  plain.params = sp;
  const GenerationResult full = e.generate({std::move(plain)})[0];
  ASSERT_GT(full.text.size(), 12u);
  // The full text decodes from the tokens, and streamed pieces add up to it.
  EXPECT_EQ(full.text, tok.decode(full.tokens));
  // Stop at a string that starts in the middle of the output.
  const std::string stop = full.text.substr(full.text.size() / 2, 3);
  sp.stop = {stop};
  std::string streamed;
  GenerationRequest req;
  req.prompt = prompt;
  req.params = sp;
  req.on_event = [&](const TokenEvent& ev) {
    streamed += ev.text;
    return true;
  };
  const GenerationResult cut = e.generate({std::move(req)})[0];
  EXPECT_EQ(cut.reason, FinishReason::Stop);
  EXPECT_EQ(cut.text, full.text.substr(0, full.text.find(stop)));
  EXPECT_EQ(streamed, cut.text);
  EXPECT_EQ(cut.text.find(stop), std::string::npos);
}

TEST_F(ChatModel, ChatRendersTheTemplateAndMarksReasoning) {
  testing_util::TempDir d("chat");
  const std::string cmd = "printf 'What is 2+2?\\n/reset\\nAnd 3+3?\\n' | " + std::string(QS_BINARY_DIR) +
                          "/qiusuo chat --model " + dir_->path + " --max-tokens 12 --seed 3 >" + (d / "out") + " 2>" +
                          (d / "err");
  const int st = std::system(cmd.c_str());
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << read_text_file(d / "err");
  const std::string out = read_text_file(d / "out");
  // R1's template opens <think> in the prompt: the reply starts as reasoning.
  EXPECT_THAT(out, HasSubstr("[think]"));
  size_t replies = 0;
  for (size_t p = 0; (p = out.find("[think]", p)) != std::string::npos; ++p) ++replies;
  EXPECT_EQ(replies, 2u);
  // generate --chat applies the same template.
  const std::string g = std::string(QS_BINARY_DIR) + "/qiusuo generate --model " + dir_->path +
                        " --chat --prompt hi --max-tokens 5 --temperature 0 --json >" + (d / "g") + " 2>&1";
  ASSERT_EQ(std::system(g.c_str()), 0) << read_text_file(d / "g");
  EXPECT_THAT(read_text_file(d / "g"), HasSubstr("\"prompt_tokens\":"));
}

}  // namespace
}  // namespace qs
