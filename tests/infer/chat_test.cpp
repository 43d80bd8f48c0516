// Chat assembly with the real DeepSeek-V3 and R1 templates, and the detokenizer's stop strings.
#include "qiusuo/infer/chat.h"

#include <gtest/gtest.h>

#include "qiusuo/core/error.h"
#include "qiusuo/infer/detokenizer.h"

namespace qs {
namespace {

const std::string kTok = std::string(QS_FIXTURES) + "/tokenizer";

const Tokenizer& v3() {
  static Tokenizer t = Tokenizer::load(kTok + "/deepseek-v3");
  return t;
}
const Tokenizer& r1() {
  static Tokenizer t = Tokenizer::load(kTok + "/deepseek-r1");
  return t;
}

TEST(Chat, RendersTheTemplateAndEncodesWithoutASecondBos) {
  ChatFormatter f(v3());
  const auto p = f.render({{{"role", "system"}, {"content", "Be brief."}}, {{"role", "user"}, {"content", "Hi"}}});
  EXPECT_NE(p.text.find("Be brief."), std::string::npos);
  EXPECT_NE(p.text.find("<｜User｜>Hi<｜Assistant｜>"), std::string::npos);
  EXPECT_FALSE(p.opens_reasoning);
  EXPECT_EQ(p.ids, v3().encode(p.text, false));
  ASSERT_FALSE(p.ids.empty());
  EXPECT_EQ(p.ids[0], v3().bos_id());
  EXPECT_NE(p.ids[1], v3().bos_id());
}

TEST(Chat, R1OpensReasoningAndItsHistoryKeepsOnlyTheAnswer) {
  ChatFormatter f(r1());
  nlohmann::json msgs = {{{"role", "user"}, {"content", "2+2?"}}};
  const auto p = f.render(msgs);
  EXPECT_TRUE(p.opens_reasoning);
  // The model's output starts inside <think>: the history message gets the tag back, and the
  // template drops the reasoning from later prompts.
  const auto a = ChatFormatter::assistant_message("add them.\n</think>\n\n4", p);
  EXPECT_EQ(a["content"], "<think>\nadd them.\n</think>\n\n4");
  msgs.push_back(a);
  msgs.push_back({{"role", "user"}, {"content", "and 3+3?"}});
  const auto p2 = f.render(msgs);
  EXPECT_EQ(p2.text.find("add them."), std::string::npos);
  EXPECT_NE(p2.text.find("4<｜end▁of▁sentence｜>"), std::string::npos);
  // reasoning_content sent back by an API client is dropped.
  msgs[1]["reasoning_content"] = "secret";
  EXPECT_EQ(f.render(msgs).text.find("secret"), std::string::npos);
}

TEST(Chat, PrefixCompletionContinuesTheAssistantPrefix) {
  ChatFormatter f(v3());
  const auto p = f.render({{{"role", "user"}, {"content", "Write code"}},
                           {{"role", "assistant"}, {"content", "```python\n"}, {"prefix", true}}});
  EXPECT_EQ(p.prefix, "```python\n");
  EXPECT_NE(p.text.find("<｜Assistant｜>```python\n"), std::string::npos);
  EXPECT_EQ(p.text.substr(p.text.size() - 10), "```python\n");
  EXPECT_EQ(ChatFormatter::assistant_message("print(1)", p)["content"], "```python\nprint(1)");
}

TEST(Chat, BadMessagesAreClearErrors) {
  ChatFormatter f(v3());
  auto msg = [&](const nlohmann::json& m) {
    try {
      f.render(m);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(msg(nlohmann::json::array()).find("must not be empty"), std::string::npos);
  EXPECT_NE(msg({{{"role", "wizard"}, {"content", "x"}}}).find("messages[0].role"), std::string::npos);
  EXPECT_NE(msg({{{"role", "user"}}}).find("messages[0].content"), std::string::npos);
  EXPECT_NE(msg({{{"role", "user"}, {"content", 5}}}).find("messages[0].content"), std::string::npos);
  EXPECT_NE(msg({{{"role", "assistant"}, {"content", "x"}, {"prefix", true}}, {{"role", "user"}, {"content", "y"}}})
                .find("only the last message"),
            std::string::npos);
  EXPECT_NE(msg(nlohmann::json::object()).find("must be an array"), std::string::npos);
}

TEST(Detokenizer, StopStringsAreHeldBackAndCut) {
  const Tokenizer& t = v3();
  const auto ids = t.encode("Hello world. END here", false);
  Detokenizer d(&t, {"END", "xyz"});
  std::string out;
  bool stopped = false;
  for (int32_t id : ids) {
    auto o = d.push(id);
    out += o.text;
    if (o.stopped) {
      stopped = true;
      break;
    }
  }
  EXPECT_TRUE(stopped);
  EXPECT_EQ(out, "Hello world. ");
  EXPECT_TRUE(d.push(ids.back()).text.empty());  // nothing after a stop
  // A partial stop string at the end is released by finish().
  Detokenizer e(&t, {"world!"});
  std::string all;
  for (int32_t id : t.encode("Hello world", false)) all += e.push(id).text;
  EXPECT_EQ(all, "Hello ");
  EXPECT_EQ(e.finish().text, "world");
  Detokenizer none(nullptr, {});
  EXPECT_TRUE(none.push(5).text.empty());
}

}  // namespace
}  // namespace qs
