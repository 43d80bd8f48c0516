// The post-training loops on a tiny model of `qiusuo r1 --quick` (pretrained for a few steps):
// SFT masks, the SFT objective, logit distillation with teacher = student, and a short seeded
// GRPO run that raises the mean reward.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <numeric>

#include <nlohmann/json.hpp>

#include "qiusuo/core/error.h"
#include "qiusuo/infer/chat.h"
#include "qiusuo/infer/engine.h"
#include "qiusuo/io/file.h"
#include "qiusuo/model/transformer.h"
#include "qiusuo/rl/distill.h"
#include "qiusuo/rl/grpo_trainer.h"
#include "qiusuo/rl/policy.h"
#include "qiusuo/rl/r1.h"
#include "qiusuo/rl/sft.h"
#include "test_util.h"

namespace qs::rl {
namespace {

using testing_util::TempDir;

// One tiny pretrained model (with tokenizer and the R1-Zero chat template) for all tests.
class Loops : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir("rl-loops");
    R1Options o;
    o.out_dir = dir_->path;
    o.recipe = r1_default_recipe(true);
    o.until = "base";
    o.quiet = true;
    run_r1(o);
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static std::string model() { return dir_->path + "/base"; }
  static std::string path(const std::string& name) { return (*dir_) / name; }
  static void write(const std::string& name, const std::vector<nlohmann::json>& lines) {
    std::string s;
    for (const auto& l : lines) s += l.dump() + "\n";
    write_text_file_atomic(path(name), s);
  }
  static TempDir* dir_;
};
TempDir* Loops::dir_ = nullptr;

nlohmann::json conversation(const std::string& user, const std::string& assistant) {
  return nlohmann::json::array({{{"role", "user"}, {"content", user}}, {{"role", "assistant"}, {"content", assistant}}});
}

TEST_F(Loops, SftMaskCoversExactlyTheAssistantTokens) {
  const auto tok = load_chat_tokenizer(model());
  const ChatFormatter chat(*tok);
  const std::string answer = "<think>\n12 + 5 = 17\n</think>\n<answer>17</answer>";
  const SftExample e = tokenize_conversation(chat, conversation("Calculate 12 + 5.", answer));
  ASSERT_EQ(e.ids.size(), e.target.size());
  std::vector<int32_t> masked, unmasked;
  for (size_t t = 0; t < e.ids.size(); ++t) (e.target[t] ? masked : unmasked).push_back(e.ids[t]);
  // The targets are one contiguous run at the end: the assistant's reply (after the template's
  // "Assistant: <think>\n" generation prompt) and EOS.
  const size_t first = size_t(std::find(e.target.begin(), e.target.end(), uint8_t(1)) - e.target.begin());
  for (size_t t = first; t < e.target.size(); ++t) EXPECT_EQ(e.target[t], 1) << t;
  EXPECT_EQ(e.ids.back(), tok->eos_id());
  const std::string text = tok->decode(masked);
  EXPECT_NE(text.find("12 + 5 = 17\n</think>\n<answer>17</answer>"), std::string::npos) << text;
  EXPECT_EQ(tok->decode(unmasked).find("</answer>"), std::string::npos);
  EXPECT_NE(tok->decode(unmasked).find("User: Calculate 12 + 5."), std::string::npos);
  EXPECT_THROW(tokenize_conversation(chat, nlohmann::json::array({{{"role", "user"}, {"content", "x"}}})), qs::Error);
}

// The SFT objective at the initial weights is the mean cross-entropy of the assistant tokens only,
// as the inference engine scores them: non-assistant tokens contribute nothing (no gradient).
TEST_F(Loops, SftObjectiveIsTheAssistantTokensMeanCrossEntropy) {
  const std::vector<nlohmann::json> convs = {
      {{"messages", conversation("Calculate 12 + 5.", "<think>\n12 + 5 = 17\n</think>\n<answer>17</answer>")}},
      {{"messages", conversation("Calculate 3 + 4. Please, a long question with many user tokens in it.",
                                 "<think>\n3 + 4 = 7\n</think>\n<answer>7</answer>")}}};
  write("sft.jsonl", convs);
  const auto tok = load_chat_tokenizer(model());
  const ChatFormatter chat(*tok);
  double nll = 0;
  int64_t n = 0;
  {
    const auto m = Model::load(model(), false);
    Engine engine(*m, nullptr, batch_engine_options(4, 256, Compute::F32));
    std::vector<ScoreRequest> reqs;
    for (const auto& c : convs) {
      const SftExample e = tokenize_conversation(chat, c["messages"]);
      const size_t first = size_t(std::find(e.target.begin(), e.target.end(), uint8_t(1)) - e.target.begin());
      reqs.push_back({std::vector<int32_t>(e.ids.begin(), e.ids.begin() + long(first)),
                      std::vector<int32_t>(e.ids.begin() + long(first), e.ids.end()), 0});
    }
    for (const ScoreResult& r : engine.score(std::move(reqs)))
      for (float lp : r.logprobs) nll -= lp, ++n;
  }
  FinetuneOptions f;
  f.out_dir = path("sft-out");
  f.batch = 2;
  f.steps = 1;
  f.lr = 1e-3;
  f.quiet = true;
  f.progress = false;
  const FinetuneSummary s = run_sft(model(), path("sft.jsonl"), f);
  EXPECT_EQ(s.steps, 1);
  EXPECT_EQ(s.train_tokens, n);
  EXPECT_NEAR(s.final_loss, nll / double(n), 2e-4 * (nll / double(n)));
  EXPECT_TRUE(file_exists(path("sft-out/model.safetensors")));
  EXPECT_TRUE(file_exists(path("sft-out/tokenizer_config.json")));
}

TEST_F(Loops, LogitDistillationWithTeacherEqualStudentHasZeroKl) {
  write("traces.jsonl",
        {{{"messages", conversation("Calculate 21 + 30.", "<think>\n21 + 30 = 51\n</think>\n<answer>51</answer>")}},
         {{"messages", conversation("Calculate 8 + 9.", "<think>\n8 + 9 = 17\n</think>\n<answer>17</answer>")}}});
  DistillOptions d;
  d.train.out_dir = path("distill-out");
  d.train.batch = 2;
  d.train.steps = 1;
  d.train.quiet = true;
  d.train.progress = false;
  d.mode = DistillMode::Logit;
  d.top_k = 8;
  const DistillSummary s = run_distill(model(), model(), path("traces.jsonl"), d);
  EXPECT_EQ(s.train.steps, 1);
  EXPECT_NEAR(s.train.final_loss, 0.0, 1e-5);
  // A different student (random weights from a config) is far from the teacher.
  d.train.out_dir = path("distill-out2");
  const nlohmann::json cfg = nlohmann::json::parse(read_text_file(model() + "/config.json"));
  write_text_file_atomic(path("student.json"), cfg.dump());
  const DistillSummary s2 = run_distill(model(), path("student.json"), path("traces.jsonl"), d);
  EXPECT_GT(s2.train.final_loss, 1e-3);
}

// GRPO on an easy task raises the mean reward within a few steps, and the same seed gives the
// same run, also when resumed from a checkpoint. The task rewards a reply whose last line contains a digit (about 1 in 4 of the nearly
// random model's samples at first); the model gets a chat
// template that does not open <think>, so the whole reply is the answer.
TEST_F(Loops, ShortSeededGrpoRunRaisesMeanReward) {
  const std::string m = path("easy-model");
  make_dirs(m);
  for (const char* f : {"config.json", "model.safetensors", "tokenizer.json"})
    std::filesystem::copy_file(model() + "/" + f, m + "/" + f);
  nlohmann::json tc = nlohmann::json::parse(read_text_file(model() + "/tokenizer_config.json"));
  tc["chat_template"] =
      "{{ bos_token }}{% for message in messages %}{{ message['role'] + ': ' + message['content'] + '\\n' }}"
      "{% endfor %}{% if add_generation_prompt %}{{ 'assistant: ' }}{% endif %}";
  write_text_file_atomic(m + "/tokenizer_config.json", tc.dump());
  std::vector<nlohmann::json> tasks;
  for (int i = 0; i < 16; ++i)
    tasks.push_back({{"prompt", "Say a number with " + std::to_string(i) + "."}, {"answer", "(?s).*[0-9].*"}, {"match", "regex"}});
  write("easy.jsonl", tasks);
  auto run = [&](const std::string& out, int64_t steps, bool resume = false) {
    GrpoOptions g;
    g.out_dir = path(out);
    g.steps = steps;
    g.resume = resume;
    g.save_every = 5;
    g.prompts = 4;
    g.group = 8;
    g.max_tokens = 8;
    g.lr = 1e-2;
    g.loss.loss = LossAggregation::Dapo;
    g.reward.format_weight = 0;
    g.log_samples_every = 0;
    g.seed = 7;
    g.quiet = true;
    g.progress = false;
    run_grpo(m, path("easy.jsonl"), g);
    std::vector<double> r;
    std::ifstream in(path(out + "/metrics.jsonl"));
    std::string line;
    while (std::getline(in, line)) r.push_back(nlohmann::json::parse(line)["reward_mean"].get<double>());
    return r;
  };
  const std::vector<double> r = run("grpo-a", 12);
  ASSERT_EQ(r.size(), 12u);
  const double first = (r[0] + r[1] + r[2]) / 3, last = (r[9] + r[10] + r[11]) / 3;
  EXPECT_GT(last, first + 0.2) << "first steps " << first << ", last steps " << last;
  // Stopped after step 5 (a checkpoint every 5 steps) and resumed: the same rollouts and losses
  // (and so the run is deterministic with the seed).
  run("grpo-c", 5);
  EXPECT_EQ(run("grpo-c", 12, true), r);
}

}  // namespace
}  // namespace qs::rl
