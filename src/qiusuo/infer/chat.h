// Chat assembly: a list of OpenAI-style messages → the prompt the model's own chat template
// (tokenizer_config.json) renders → token ids. Shared by `qiusuo generate --chat`, `qiusuo
// chat`, the server and RL (which applies the template around each task prompt).
//
// Reasoning (DeepSeek-R1): the model's output goes back into the history whole — reasoning
// included — as the assistant message's content; R1's template keeps only what follows
// `</think>`. A `reasoning_content` field on a message (the DeepSeek API's response field, which
// clients may send back) is dropped before rendering, as DeepSeek's template would ignore it.
// When the rendered prompt leaves the model inside `<think>` (R1's generation prompt ends with
// "<think>\n"), the generated text starts inside the reasoning: assistant_message() puts the
// opening tag back when the output goes into the history.
//
// Chat prefix completion (DeepSeek API beta): a last message {"role": "assistant", "content":
// P, "prefix": true} renders the conversation before it with the generation prompt, then P:
// the model continues P.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "qiusuo/tokenizer/tokenizer.h"

namespace qs {

struct ChatOptions {
  bool add_generation_prompt = true;
  nlohmann::json tools;          // OpenAI tool definitions (null: none); passed to the template as `tools`
  nlohmann::json template_args;  // extra template variables (object or null)
};

struct ChatPrompt {
  std::string text;            // the rendered prompt (prefix included)
  std::vector<int32_t> ids;
  bool opens_reasoning = false;  // generation starts inside <think>
  std::string prefix;          // assistant prefix being continued ("" when none)
};

class ChatFormatter {
 public:
  // Throws qs::Error when the tokenizer has no chat template.
  explicit ChatFormatter(const Tokenizer& tokenizer);

  // Validates `messages` (an array of {role, content, ...}; roles system/user/assistant/tool)
  // and renders them. Errors name the message index and field.
  ChatPrompt render(const nlohmann::json& messages, const ChatOptions& opt = {}) const;

  // The assistant message to append to the history after a reply whose generated text is
  // `generated` (for a prompt with opens_reasoning, "<think>\n" + generated).
  static nlohmann::json assistant_message(const std::string& generated, const ChatPrompt& prompt);

  const Tokenizer& tokenizer() const { return tok_; }

 private:
  const Tokenizer& tok_;
  nlohmann::json ctx_;  // bos_token, eos_token, pad_token
};

}  // namespace qs
