#include "qiusuo/serve/protocol.h"

#include <cmath>
#include <random>

#include "qiusuo/serve/api_error.h"
#include "qiusuo/serve/tool_calls.h"

namespace qs::serve {
namespace {
using json = nlohmann::json;

constexpr int kMaxNesting = 128;

std::string type_name(const json& v) {
  switch (v.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return std::string("boolean `") + (v.get<bool>() ? "true" : "false") + "`";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned: return "integer `" + v.dump() + "`";
    case json::value_t::number_float: return "floating point `" + v.dump() + "`";
    case json::value_t::string: return "string";
    case json::value_t::array: return "sequence";
    case json::value_t::object: return "map";
    default: return "value";
  }
}

[[noreturn]] void wrong_type(const std::string& path, const json& v, const std::string& expected) {
  bad_type(path, path + ": invalid type: " + type_name(v) + ", expected " + expected);
}

// Typed access to the fields of one object; null counts as absent (OpenAI clients send nulls).
struct Fields {
  const json& j;
  std::string prefix;  // "" at the top level, "messages[2]." inside

  const json* get(const char* key) const {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return nullptr;
    return &*it;
  }
  std::string path(const char* key) const { return prefix + key; }

  std::optional<bool> boolean(const char* key) const {
    const json* v = get(key);
    if (!v) return std::nullopt;
    if (!v->is_boolean()) wrong_type(path(key), *v, "a boolean");
    return v->get<bool>();
  }
  std::optional<std::string> string(const char* key) const {
    const json* v = get(key);
    if (!v) return std::nullopt;
    if (!v->is_string()) wrong_type(path(key), *v, "a string");
    return v->get<std::string>();
  }
  std::optional<double> number(const char* key, double lo, double hi) const {
    const json* v = get(key);
    if (!v) return std::nullopt;
    if (!v->is_number()) wrong_type(path(key), *v, "a number");
    const double x = v->get<double>();
    if (!std::isfinite(x) || x < lo || x > hi)
      bad_value(path(key), "Invalid " + path(key) + " value " + v->dump() + ": it must be in [" + fmt(lo) + ", " +
                               fmt(hi) + "]");
    return x;
  }
  std::optional<int64_t> integer(const char* key, int64_t lo, int64_t hi) const {
    const json* v = get(key);
    if (!v) return std::nullopt;
    if (!v->is_number_integer()) wrong_type(path(key), *v, "an integer");
    const bool ok = v->is_number_unsigned() ? v->get<uint64_t>() <= uint64_t(hi) && int64_t(v->get<uint64_t>()) >= lo
                                            : v->get<int64_t>() >= lo && v->get<int64_t>() <= hi;
    if (!ok)
      bad_value(path(key), "Invalid " + path(key) + " value " + v->dump() + ": it must be an integer in [" +
                               std::to_string(lo) + ", " + std::to_string(hi) + "]");
    return v->is_number_unsigned() ? int64_t(v->get<uint64_t>()) : v->get<int64_t>();
  }
  static std::string fmt(double x) {
    std::string s = std::to_string(x);
    s.erase(s.find_last_not_of('0') + 1);
    if (!s.empty() && s.back() == '.') s.pop_back();
    return s;
  }
};

// Sampling fields shared by chat and completions.
void read_sampling(const Fields& f, ApiRequest& r) {
  SamplingParams& p = r.params;
  if (auto v = f.number("temperature", 0, 2)) p.temperature = float(*v);
  if (auto v = f.number("top_p", 0, 1)) {
    if (*v <= 0) bad_value("top_p", "Invalid top_p value 0: it must be in (0, 1]");
    p.top_p = float(*v);
  }
  if (auto v = f.number("presence_penalty", -2, 2)) p.presence_penalty = float(*v);
  if (auto v = f.number("frequency_penalty", -2, 2)) p.frequency_penalty = float(*v);
  // Extensions (vLLM / llama.cpp server names).
  if (auto v = f.integer("top_k", 0, 1 << 20)) p.top_k = int(*v);
  if (auto v = f.number("min_p", 0, 1)) p.min_p = float(*v);
  if (auto v = f.number("repetition_penalty", 1e-3, 100)) p.repetition_penalty = float(*v);
  if (auto v = f.boolean("ignore_eos")) p.ignore_eos = *v;
  std::optional<int64_t> mt = f.integer("max_tokens", 1, int64_t(1) << 40);
  if (!mt) mt = f.integer("max_completion_tokens", 1, int64_t(1) << 40);
  if (mt) {
    p.max_tokens = *mt;
    r.max_tokens_given = true;
  }
  if (const json* s = f.get("seed")) {
    if (!s->is_number_integer()) wrong_type("seed", *s, "an integer");
    p.seed = s->is_number_unsigned() ? s->get<uint64_t>() : uint64_t(s->get<int64_t>());
    r.seed_given = true;
  } else {
    thread_local std::mt19937_64 rng{std::random_device{}()};
    p.seed = rng();
  }
  if (const json* s = f.get("stop")) {
    if (s->is_string()) {
      p.stop = {s->get<std::string>()};
    } else if (s->is_array()) {
      if (s->size() > 16) bad_value("stop", "stop: at most 16 stop sequences are supported");
      for (size_t i = 0; i < s->size(); ++i) {
        if (!(*s)[i].is_string()) wrong_type("stop[" + std::to_string(i) + "]", (*s)[i], "a string");
        p.stop.push_back((*s)[i].get<std::string>());
      }
    } else {
      wrong_type("stop", *s, "a string or a sequence of strings");
    }
    std::erase_if(p.stop, [](const std::string& x) { return x.empty(); });
  }
  if (auto v = f.boolean("stream")) r.stream = *v;
  if (const json* so = f.get("stream_options")) {
    if (!so->is_object()) wrong_type("stream_options", *so, "a map");
    if (auto v = Fields{*so, "stream_options."}.boolean("include_usage")) r.include_usage = *v;
  }
  if (auto v = f.integer("n", 1, 64)) r.n = *v;
}

// content: string | null | [{"type": "text", "text": ...}] -> string or null.
json read_content(const json& m, const std::string& where) {
  auto it = m.find("content");
  if (it == m.end() || it->is_null()) return nullptr;
  if (it->is_string()) return *it;
  if (!it->is_array()) wrong_type(where + ".content", *it, "a string or a sequence of content parts");
  std::string text;
  for (size_t k = 0; k < it->size(); ++k) {
    const json& part = (*it)[k];
    const std::string pw = where + ".content[" + std::to_string(k) + "]";
    if (!part.is_object()) wrong_type(pw, part, "a map");
    auto ty = part.find("type");
    if (ty == part.end() || !ty->is_string()) bad_type(pw, pw + ": missing field `type`");
    if (*ty != "text")
      bad_type(pw + ".type", pw + ".type: unknown variant `" + ty->get<std::string>() + "`, expected `text`");
    auto tx = part.find("text");
    if (tx == part.end() || !tx->is_string()) bad_type(pw + ".text", pw + ": missing field `text`");
    if (!text.empty()) text += "\n";
    text += tx->get<std::string>();
  }
  return text;
}

json read_messages(const json& body) {
  auto it = body.find("messages");
  if (it == body.end() || it->is_null()) bad_type("messages", "missing field `messages`");
  if (!it->is_array()) wrong_type("messages", *it, "a sequence");
  if (it->empty()) bad_value("messages", "messages must not be empty");
  json out = json::array();
  for (size_t i = 0; i < it->size(); ++i) {
    const json& m = (*it)[i];
    const std::string where = "messages[" + std::to_string(i) + "]";
    if (!m.is_object()) wrong_type(where, m, "a map");
    Fields f{m, where + "."};
    const auto role = f.string("role");
    if (!role) bad_type(where + ".role", where + ": missing field `role`");
    if (*role != "system" && *role != "user" && *role != "assistant" && *role != "tool")
      bad_type(where + ".role", where + ".role: unknown variant `" + *role +
                                    "`, expected one of `system`, `user`, `assistant`, `tool`");
    json c = {{"role", *role}};
    c["content"] = read_content(m, where);
    if (auto name = f.string("name")) c["name"] = *name;
    if (*role == "assistant") {
      if (auto p = f.boolean("prefix"); p && *p) {
        if (i + 1 != it->size()) bad_value(where + ".prefix", where + ": only the last message may be an assistant prefix");
        c["prefix"] = true;
      }
      if (const json* rc = f.get("reasoning_content"))
        if (!rc->is_string()) wrong_type(where + ".reasoning_content", *rc, "a string");
      if (const json* tc = f.get("tool_calls")) {
        if (!tc->is_array()) wrong_type(where + ".tool_calls", *tc, "a sequence");
        json calls = json::array();
        for (size_t k = 0; k < tc->size(); ++k) {
          const json& call = (*tc)[k];
          const std::string cw = where + ".tool_calls[" + std::to_string(k) + "]";
          if (!call.is_object()) wrong_type(cw, call, "a map");
          Fields cf{call, cw + "."};
          const auto type = cf.string("type").value_or("function");
          if (type != "function") bad_type(cw + ".type", cw + ".type: unknown variant `" + type + "`, expected `function`");
          const json* fn = cf.get("function");
          if (!fn) bad_type(cw + ".function", cw + ": missing field `function`");
          if (!fn->is_object()) wrong_type(cw + ".function", *fn, "a map");
          Fields ff{*fn, cw + ".function."};
          const auto name = ff.string("name");
          if (!name) bad_type(cw + ".function.name", cw + ".function: missing field `name`");
          const auto args = ff.string("arguments");
          if (!args) bad_type(cw + ".function.arguments", cw + ".function: missing field `arguments`");
          calls.push_back({{"id", cf.string("id").value_or("")}, {"type", type},
                           {"function", {{"name", *name}, {"arguments", *args}}}});
        }
        if (!calls.empty()) {
          c["tool_calls"] = calls;
          // DeepSeek-V3's template renders the calls of a turn whose content is none.
          if (c["content"].is_string() && c["content"].get<std::string>().empty()) c["content"] = nullptr;
        }
      }
      if (c["content"].is_null() && !c.contains("tool_calls"))
        bad_type(where + ".content", where + ": missing field `content`");
    } else {
      if (c["content"].is_null()) bad_type(where + ".content", where + ": missing field `content`");
      if (*role == "tool") {
        const auto id = f.string("tool_call_id");
        if (!id) bad_type(where + ".tool_call_id", where + ": missing field `tool_call_id`");
        c["tool_call_id"] = *id;
      }
    }
    out.push_back(std::move(c));
  }
  return out;
}

int nesting_depth(const std::string& s) {
  int depth = 0, max_depth = 0;
  bool in_str = false, esc = false;
  for (char ch : s) {
    if (in_str) {
      if (esc) esc = false;
      else if (ch == '\\') esc = true;
      else if (ch == '"') in_str = false;
      continue;
    }
    if (ch == '"') in_str = true;
    else if (ch == '[' || ch == '{') max_depth = std::max(max_depth, ++depth);
    else if (ch == ']' || ch == '}') --depth;
  }
  return max_depth;
}

}  // namespace

json parse_body(const std::string& body) {
  if (nesting_depth(body) > kMaxNesting)
    throw ApiError(400, "Failed to parse the request body as JSON: nesting deeper than " + std::to_string(kMaxNesting) +
                            " levels");
  json j;
  try {
    j = json::parse(body);
  } catch (const json::exception& e) {
    std::string what = e.what();
    if (auto p = what.find("] "); p != std::string::npos) what = what.substr(p + 2);
    throw ApiError(400, "Failed to parse the request body as JSON: " + what);
  }
  if (!j.is_object()) bad_type("", "invalid type: " + type_name(j) + ", expected a map");
  return j;
}

std::string read_model(const json& body) {
  Fields f{body, ""};
  const auto m = f.string("model");
  if (!m) bad_type("model", "missing field `model`");
  return *m;
}

ApiRequest parse_chat_request(const json& body) {
  ApiRequest r;
  r.kind = ApiRequest::Chat;
  Fields f{body, ""};
  r.model = read_model(body);
  r.messages = read_messages(body);
  read_sampling(f, r);
  if (auto lp = f.boolean("logprobs")) r.logprobs = *lp;
  if (auto tl = f.integer("top_logprobs", 0, 20)) {
    if (!r.logprobs && *tl > 0) bad_value("top_logprobs", "top_logprobs requires logprobs to be true");
    r.top_logprobs = int(*tl);
  }
  if (const json* rf = f.get("response_format")) {
    if (!rf->is_object()) wrong_type("response_format", *rf, "a map");
    const auto t = Fields{*rf, "response_format."}.string("type");
    if (!t) bad_type("response_format.type", "response_format: missing field `type`");
    if (*t == "json_object") r.json_mode = true;
    else if (*t != "text")
      bad_type("response_format.type", "response_format.type: unknown variant `" + *t + "`, expected `text` or `json_object`");
  }
  if (const json* t = f.get("tools")) {
    r.tool_names = validate_tools(*t);
    if (!r.tool_names.empty()) r.tools = *t;
  }
  if (const json* tc = f.get("tool_choice")) {
    if (tc->is_string()) {
      r.tool_choice = tc->get<std::string>();
      if (r.tool_choice != "none" && r.tool_choice != "auto" && r.tool_choice != "required")
        bad_type("tool_choice", "tool_choice: unknown variant `" + r.tool_choice + "`, expected one of `none`, `auto`, `required`");
    } else if (tc->is_object()) {
      Fields cf{*tc, "tool_choice."};
      if (cf.string("type").value_or("function") != "function")
        bad_type("tool_choice.type", "tool_choice.type: unknown variant, expected `function`");
      const json* fn = cf.get("function");
      if (!fn || !fn->is_object()) bad_type("tool_choice.function", "tool_choice: missing field `function`");
      const auto name = Fields{*fn, "tool_choice.function."}.string("name");
      if (!name) bad_type("tool_choice.function.name", "tool_choice.function: missing field `name`");
      r.tool_choice = "function";
      r.tool_choice_name = *name;
    } else {
      wrong_type("tool_choice", *tc, "a string or a map");
    }
    if ((r.tool_choice == "required" || r.tool_choice == "function") && r.tool_names.empty())
      bad_value("tool_choice", "tool_choice '" + r.tool_choice + "' needs tools");
    if (r.tool_choice == "function" &&
        std::find(r.tool_names.begin(), r.tool_names.end(), r.tool_choice_name) == r.tool_names.end())
      bad_value("tool_choice", "tool_choice names the function '" + r.tool_choice_name + "', which is not in tools");
    if (r.json_mode && (r.tool_choice == "required" || r.tool_choice == "function"))
      bad_value("response_format", "response_format json_object cannot be combined with a forced tool_choice");
  }
  return r;
}

ApiRequest parse_completion_request(const json& body) {
  ApiRequest r;
  r.kind = ApiRequest::Completion;
  Fields f{body, ""};
  r.model = read_model(body);
  auto it = body.find("prompt");
  if (it == body.end() || it->is_null()) bad_type("prompt", "missing field `prompt`");
  const json& p = *it;
  auto ids_of = [](const json& a, const std::string& where) {
    ApiRequest::Prompt pr;
    pr.is_ids = true;
    for (size_t i = 0; i < a.size(); ++i) {
      if (!a[i].is_number_integer()) wrong_type(where + "[" + std::to_string(i) + "]", a[i], "a token id");
      const int64_t v = a[i].is_number_unsigned() ? int64_t(std::min<uint64_t>(a[i].get<uint64_t>(), 1ull << 40))
                                                  : a[i].get<int64_t>();
      if (v < 0 || v > INT32_MAX) bad_value(where, where + ": token id " + a[i].dump() + " is out of range");
      pr.ids.push_back(int32_t(v));
    }
    if (pr.ids.empty()) bad_value(where, where + " is empty");
    return pr;
  };
  if (p.is_string()) {
    r.prompts.push_back({p.get<std::string>(), {}, false});
  } else if (p.is_array()) {
    if (p.empty()) bad_value("prompt", "prompt must not be empty");
    if (p[0].is_number_integer()) {
      r.prompts.push_back(ids_of(p, "prompt"));
    } else {
      if (p.size() > 64) bad_value("prompt", "at most 64 prompts per request");
      for (size_t i = 0; i < p.size(); ++i) {
        const std::string w = "prompt[" + std::to_string(i) + "]";
        if (p[i].is_string()) r.prompts.push_back({p[i].get<std::string>(), {}, false});
        else if (p[i].is_array()) r.prompts.push_back(ids_of(p[i], w));
        else wrong_type(w, p[i], "a string or a sequence of token ids");
      }
    }
  } else {
    wrong_type("prompt", p, "a string, a sequence of strings or token ids");
  }
  read_sampling(f, r);
  if (auto s = f.string("suffix")) r.suffix = *s;
  if (auto e = f.boolean("echo")) r.echo = *e;
  if (auto lp = f.integer("logprobs", 0, 20)) {
    r.logprobs = true;
    r.top_logprobs = int(*lp);
  }
  if (r.echo && r.logprobs) bad_value("echo", "echo together with logprobs (prompt log-probabilities) is not supported");
  if (r.suffix && r.prompts.size() != 1) bad_value("suffix", "suffix (fill in the middle) needs exactly one prompt");
  if (r.suffix && r.prompts[0].is_ids) bad_value("suffix", "suffix (fill in the middle) needs a text prompt");
  if (r.n * int64_t(r.prompts.size()) > 64) bad_value("n", "n times the number of prompts must be at most 64");
  return r;
}

}  // namespace qs::serve
