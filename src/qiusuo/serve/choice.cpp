#include "qiusuo/serve/choice.h"

#include <algorithm>

namespace qs::serve {
using json = nlohmann::ordered_json;

ChoiceOutput::ChoiceOutput(const ChoiceSetup& s) : setup_(s) {
  if (s.reasoning) split_.emplace(s.starts_in_reasoning);
  if (s.tools) tools_.emplace();
  if (s.logprobs) {
    if (s.chat) logprobs = {{"content", json::array()}};
    else logprobs = {{"tokens", json::array()}, {"token_logprobs", json::array()}, {"top_logprobs", json::array()},
                     {"text_offset", json::array()}};
  }
}

ChoiceDelta ChoiceOutput::route(const ReasoningSplitter::Out& part) {
  ChoiceDelta d;
  d.reasoning = part.reasoning;
  if (tools_) {
    auto t = tools_->push(part.content);
    d.content = std::move(t.content);
    d.calls = std::move(t.calls);
  } else {
    d.content = part.content;
  }
  reasoning += d.reasoning;
  content += d.content;
  calls.insert(calls.end(), d.calls.begin(), d.calls.end());
  return d;
}

std::string token_text(const Tokenizer* tok, int32_t id) {
  if (!tok || !tok->has_id(id)) return "token_id:" + std::to_string(id);
  const std::string_view b = tok->id_to_bytes(id);
  // Keep valid UTF-8; bytes of a split character become U+FFFD (the bytes field has them all).
  json j = std::string(b);
  const std::string dumped = j.dump(-1, ' ', false, json::error_handler_t::replace);
  return json::parse(dumped).get<std::string>();
}

json token_bytes_json(const Tokenizer* tok, int32_t id) {
  json a = json::array();
  if (tok && tok->has_id(id))
    for (char c : tok->id_to_bytes(id)) a.push_back(int(uint8_t(c)));
  return a;
}

void ChoiceOutput::add_logprob(const TokenEvent& ev, ChoiceDelta& d) {
  if (!setup_.logprobs || ev.token < 0) return;
  if (std::find(setup_.eos.begin(), setup_.eos.end(), ev.token) != setup_.eos.end()) return;
  const Tokenizer* tok = setup_.tokenizer;
  const std::string text = token_text(tok, ev.token);
  if (setup_.chat) {
    json top = json::array();
    for (const auto& t : ev.top)
      top.push_back({{"token", token_text(tok, t.id)}, {"logprob", t.logprob}, {"bytes", token_bytes_json(tok, t.id)}});
    json e = {{"token", text}, {"logprob", ev.logprob}, {"bytes", token_bytes_json(tok, ev.token)}, {"top_logprobs", top}};
    logprobs["content"].push_back(e);
    d.logprobs = json::array({e});
  } else {
    json top = json::object();
    for (const auto& t : ev.top) top[token_text(tok, t.id)] = t.logprob;
    logprobs["tokens"].push_back(text);
    logprobs["token_logprobs"].push_back(ev.logprob);
    logprobs["top_logprobs"].push_back(top);
    logprobs["text_offset"].push_back(text_bytes);
    d.logprobs = {{"tokens", {text}}, {"token_logprobs", {ev.logprob}}, {"top_logprobs", {top}},
                  {"text_offset", {text_bytes}}};
  }
}

ChoiceDelta ChoiceOutput::push(const TokenEvent& ev) {
  if (ev.token >= 0 && split_ && split_->in_reasoning()) ++reasoning_tokens;
  ReasoningSplitter::Out part;
  if (split_) part = split_->push(ev.text);
  else part.content = ev.text;
  ChoiceDelta d = route(part);
  add_logprob(ev, d);
  text_bytes += int64_t(ev.text.size());
  return d;
}

ChoiceDelta ChoiceOutput::finish(const GenerationResult& r) {
  ReasoningSplitter::Out part;
  if (split_) part = split_->flush();
  ChoiceDelta d = route(part);
  if (tools_) {
    auto t = tools_->finish();
    d.content += t.content;
    content += t.content;
  }
  finished = true;
  result = r;
  switch (r.reason) {
    case FinishReason::Length: finish_reason = "length"; break;
    case FinishReason::Error: finish_reason = "error"; break;
    case FinishReason::Cancelled: finish_reason = "cancelled"; break;
    default: finish_reason = "stop";
  }
  if (!calls.empty()) finish_reason = "tool_calls";
  return d;
}

json usage_json(int64_t prompt, int64_t cached, int64_t completion, int64_t reasoning) {
  return {{"prompt_tokens", prompt},
          {"completion_tokens", completion},
          {"total_tokens", prompt + completion},
          {"prompt_cache_hit_tokens", cached},
          {"prompt_cache_miss_tokens", prompt - cached},
          {"prompt_tokens_details", {{"cached_tokens", cached}}},
          {"completion_tokens_details", {{"reasoning_tokens", reasoning}}}};
}

}  // namespace qs::serve
