// Chat-template rendering on top of the Jinja interpreter, with a small compiled-template cache.
#include "qiusuo/tokenizer/chat_template.h"

#include <memory>
#include <mutex>
#include <unordered_map>

#include "qiusuo/core/error.h"
#include "qiusuo/core/json_util.h"

namespace qs {

ChatTemplate ChatTemplate::compile(const std::string& src) {
  ChatTemplate t;
  t.tmpl_ = jinja::Template::parse(src);
  return t;
}

namespace {

template <class J>
J chat_context(const J& messages, bool add_generation_prompt, const J& extra_context) {
  if (!messages.is_array()) fail("chat template: messages must be a JSON array");
  if (!extra_context.is_null() && !extra_context.is_object())
    fail("chat template: extra context must be a JSON object");
  // Checked before the copies below, which recurse as deep as the values nest.
  if (json_deeper_than(messages, kMaxJsonDepth) || json_deeper_than(extra_context, kMaxJsonDepth))
    fail("chat template: messages or context nested deeper than ", kMaxJsonDepth, " levels");
  // As transformers' render_jinja_template: render(messages=..., tools=..., documents=...,
  // add_generation_prompt=..., **special_tokens_map, **kwargs).
  J ctx = J::object();
  ctx["tools"] = nullptr;
  ctx["documents"] = nullptr;
  if (extra_context.is_object())
    for (auto it = extra_context.begin(); it != extra_context.end(); ++it) ctx[it.key()] = *it;
  ctx["messages"] = messages;
  ctx["add_generation_prompt"] = add_generation_prompt;
  return ctx;
}

}  // namespace

std::string ChatTemplate::render(const nlohmann::json& messages, bool add_generation_prompt,
                                 const nlohmann::json& extra_context) const {
  return tmpl_.render(chat_context(messages, add_generation_prompt, extra_context));
}

std::string ChatTemplate::render_ordered(const nlohmann::ordered_json& messages,
                                         bool add_generation_prompt,
                                         const nlohmann::ordered_json& extra_context) const {
  return tmpl_.render_ordered(chat_context(messages, add_generation_prompt, extra_context));
}

std::string render_chat(const std::string& template_src, const nlohmann::json& messages,
                        bool add_generation_prompt, const nlohmann::json& extra_context) {
  static std::mutex mu;
  static std::unordered_map<std::string, std::shared_ptr<const ChatTemplate>> cache;
  std::shared_ptr<const ChatTemplate> tmpl;
  {
    std::lock_guard<std::mutex> lock(mu);
    auto it = cache.find(template_src);
    if (it != cache.end()) tmpl = it->second;
  }
  if (!tmpl) {
    tmpl = std::make_shared<const ChatTemplate>(ChatTemplate::compile(template_src));
    std::lock_guard<std::mutex> lock(mu);
    if (cache.size() >= 32) cache.clear();  // a process uses a handful of templates
    cache.emplace(template_src, tmpl);
  }
  return tmpl->render(messages, add_generation_prompt, extra_context);
}

std::string special_token_content(const nlohmann::json& entry) {
  if (entry.is_string()) return entry.get<std::string>();
  if (entry.is_object()) {
    auto it = entry.find("content");
    if (it != entry.end() && it->is_string()) return it->get<std::string>();
  }
  return "";
}

}  // namespace qs
