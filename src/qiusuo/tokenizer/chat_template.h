// Chat templates: renders a conversation with a Hugging Face `chat_template` (from
// tokenizer_config.json) the way Python transformers' apply_chat_template(tokenize=False) does:
// the Jinja2 environment ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
// extensions=[loopcontrols]) with the `tojson` filter and the `raise_exception` and
// `strftime_now` globals (see jinja.h for the interpreter).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "qiusuo/jinja/jinja.h"

namespace qs {

// A compiled chat template: parse once, render many times (from several threads at once).
class ChatTemplate {
 public:
  ChatTemplate() = default;  // renders ""

  // Parses `src`; throws qs::Error on a syntax error or an unsupported Jinja construct.
  static ChatTemplate compile(const std::string& src);

  // Renders `messages` (a JSON array of OpenAI-style messages). The template sees the variables
  // `messages`, `add_generation_prompt`, `tools` and `documents` (None unless given in
  // `extra_context`), plus every key of `extra_context` (a JSON object, or null): normally
  // bos_token, eos_token, pad_token, ... as strings, and any template kwargs. Throws qs::Error
  // on a rendering error; `raise_exception(msg)` in the template throws qs::Error whose message
  // is exactly msg.
  std::string render(const nlohmann::json& messages, bool add_generation_prompt,
                     const nlohmann::json& extra_context) const;

  // The same with insertion-ordered JSON: dict key order (what `tojson`, `items()` and
  // printing show, e.g. for tool schemas) stays as given, as in Python. nlohmann::json sorts
  // object keys, so render() shows them sorted.
  std::string render_ordered(const nlohmann::ordered_json& messages, bool add_generation_prompt,
                             const nlohmann::ordered_json& extra_context) const;

 private:
  jinja::Template tmpl_;
};

// ChatTemplate::compile(template_src).render(...), with compiled templates cached by source
// (thread-safe).
std::string render_chat(const std::string& template_src, const nlohmann::json& messages,
                        bool add_generation_prompt, const nlohmann::json& extra_context);

// The value of a special token entry of tokenizer_config.json ("bos_token", ...), which is
// stored either as a string or as an AddedToken object {"__type": "AddedToken", "content": ...}.
// Returns "" for null or a missing entry.
std::string special_token_content(const nlohmann::json& entry);

}  // namespace qs
