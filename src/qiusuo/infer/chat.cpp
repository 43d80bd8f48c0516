#include "qiusuo/infer/chat.h"

#include "qiusuo/core/error.h"
#include "qiusuo/infer/reasoning.h"
#include "qiusuo/tokenizer/chat_template.h"

namespace qs {

ChatFormatter::ChatFormatter(const Tokenizer& tokenizer) : tok_(tokenizer) {
  if (tok_.chat_template().empty()) fail(ErrorKind::NotFound, "the tokenizer has no chat_template");
  ctx_ = {{"bos_token", tok_.bos_token()}, {"eos_token", tok_.eos_token()}, {"pad_token", tok_.pad_token()}};
}

ChatPrompt ChatFormatter::render(const nlohmann::json& messages, const ChatOptions& opt) const {
  QS_CHECK(messages.is_array(), "messages must be an array");
  QS_CHECK(!messages.empty(), "messages must not be empty");
  nlohmann::json msgs = nlohmann::json::array();
  std::string prefix;
  for (size_t i = 0; i < messages.size(); ++i) {
    const auto& m = messages[i];
    QS_CHECK(m.is_object(), "messages[", i, "] must be an object");
    QS_CHECK(m.contains("role") && m["role"].is_string(), "messages[", i, "].role must be a string");
    const std::string role = m["role"];
    QS_CHECK(role == "system" || role == "user" || role == "assistant" || role == "tool", "messages[", i,
             "].role must be system, user, assistant or tool, got '", role, "'");
    nlohmann::json c = m;
    c.erase("reasoning_content");
    if (c.contains("content")) {
      QS_CHECK(c["content"].is_string() || c["content"].is_null(), "messages[", i, "].content must be a string");
    }
    const bool tool_calls = role == "assistant" && c.contains("tool_calls") && !c["tool_calls"].is_null();
    if (!c.contains("content") || c["content"].is_null()) {
      QS_CHECK(tool_calls, "messages[", i, "].content is missing");
      c["content"] = nullptr;
    }
    if (c.value("prefix", false)) {
      QS_CHECK(role == "assistant" && i + 1 == messages.size(), "messages[", i,
               "]: only the last message may be an assistant prefix");
      prefix = c["content"].is_string() ? c["content"].get<std::string>() : "";
      continue;
    }
    c.erase("prefix");
    msgs.push_back(std::move(c));
  }
  nlohmann::json ctx = ctx_;
  if (opt.template_args.is_object())
    for (const auto& [k, v] : opt.template_args.items()) ctx[k] = v;
  if (!opt.tools.is_null()) ctx["tools"] = opt.tools;
  ChatPrompt out;
  out.text = render_chat(tok_.chat_template(), msgs, opt.add_generation_prompt || !prefix.empty(), ctx);
  out.opens_reasoning = ReasoningSplitter::prompt_opens_reasoning(out.text);
  out.prefix = prefix;
  out.text += prefix;
  if (!prefix.empty()) out.opens_reasoning = ReasoningSplitter::prompt_opens_reasoning(out.text);
  out.ids = tok_.encode(out.text, false);
  return out;
}

nlohmann::json ChatFormatter::assistant_message(const std::string& generated, const ChatPrompt& prompt) {
  std::string content = prompt.prefix + generated;
  if (prompt.opens_reasoning && prompt.prefix.empty()) content = "<think>\n" + content;
  return {{"role", "assistant"}, {"content", content}};
}

}  // namespace qs
