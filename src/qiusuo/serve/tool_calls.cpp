#include "qiusuo/serve/tool_calls.h"

#include <cctype>
#include <cstring>
#include <random>

#include "qiusuo/serve/api_error.h"

namespace qs::serve {
namespace {

size_t partial_suffix(const std::string& s, const std::string& tag) {
  for (size_t k = std::min(s.size(), tag.size() - 1); k > 0; --k)
    if (s.compare(s.size() - k, k, tag, 0, k) == 0) return k;
  return 0;
}

std::string trim(std::string s) {
  const char* ws = " \t\r\n";
  const size_t b = s.find_first_not_of(ws);
  if (b == std::string::npos) return {};
  const size_t e = s.find_last_not_of(ws);
  return s.substr(b, e - b + 1);
}

// TYPE<｜tool▁sep｜>NAME\n```json\nARGS\n```  →  a call (false when the body has no separator).
bool parse_call(const std::string& body, ToolCall& call) {
  const size_t sep = body.find(kToolSep);
  if (sep == std::string::npos) return false;
  call.type = trim(body.substr(0, sep));
  if (call.type.empty()) call.type = "function";
  std::string rest = body.substr(sep + std::strlen(kToolSep));
  const size_t nl = rest.find('\n');
  call.name = trim(rest.substr(0, nl));
  std::string args = nl == std::string::npos ? std::string() : rest.substr(nl + 1);
  args = trim(args);
  if (args.rfind("```", 0) == 0) {
    const size_t eol = args.find('\n');
    args = eol == std::string::npos ? std::string() : args.substr(eol + 1);
    const size_t fence = args.rfind("```");
    if (fence != std::string::npos) args.resize(fence);
    args = trim(args);
  }
  call.arguments = args;
  call.id = new_tool_call_id();
  return !call.name.empty();
}

}  // namespace

nlohmann::ordered_json ToolCall::to_json(int index, bool with_index) const {
  nlohmann::ordered_json j;
  if (with_index) j["index"] = index;
  j["id"] = id;
  j["type"] = type;
  j["function"] = {{"name", name}, {"arguments", arguments}};
  return j;
}

std::string new_tool_call_id() {
  static const char* alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::string id = "call_";
  for (int i = 0; i < 24; ++i) id.push_back(alnum[rng() % 62]);
  return id;
}

ToolCallParser::Out ToolCallParser::push(const std::string& text) {
  Out out;
  buf_ += text;
  if (!in_calls_) {
    const size_t at = buf_.find(kToolCallsBegin);
    if (at == std::string::npos) {
      const size_t hold = partial_suffix(buf_, kToolCallsBegin);
      out.content = buf_.substr(0, buf_.size() - hold);
      buf_.erase(0, buf_.size() - hold);
      return out;
    }
    out.content = buf_.substr(0, at);
    buf_.erase(0, at + std::strlen(kToolCallsBegin));
    in_calls_ = true;
  }
  parse_calls(out);
  return out;
}

void ToolCallParser::parse_calls(Out& out) {
  while (!done_) {
    const size_t b = buf_.find(kToolCallBegin);
    const size_t end_all = buf_.find(kToolCallsEnd);
    if (end_all != std::string::npos && (b == std::string::npos || end_all < b)) {
      done_ = true;
      buf_.clear();
      return;
    }
    if (b == std::string::npos) return;
    const size_t e = buf_.find(kToolCallEnd, b);
    if (e == std::string::npos) return;
    const size_t body0 = b + std::strlen(kToolCallBegin);
    ToolCall call;
    if (parse_call(buf_.substr(body0, e - body0), call)) {
      out.calls.push_back(std::move(call));
      ++n_calls_;
    }
    buf_.erase(0, e + std::strlen(kToolCallEnd));
  }
}

ToolCallParser::Out ToolCallParser::finish() {
  Out out;
  if (!in_calls_) {
    out.content = std::move(buf_);
  } else if (n_calls_ == 0 && !done_) {
    out.content = std::string(kToolCallsBegin) + buf_;  // never completed a call: plain text
  }
  buf_.clear();
  return out;
}

std::vector<std::string> validate_tools(const nlohmann::json& tools) {
  std::vector<std::string> names;
  if (tools.is_null()) return names;
  if (!tools.is_array()) bad_type("tools", "tools: invalid type: expected a sequence");
  if (tools.size() > 128) bad_value("tools", "tools: at most 128 functions are supported");
  for (size_t i = 0; i < tools.size(); ++i) {
    const auto& t = tools[i];
    const std::string where = "tools[" + std::to_string(i) + "]";
    if (!t.is_object()) bad_type(where, where + ": invalid type: expected a map");
    if (!t.contains("type") || !t["type"].is_string()) bad_type(where + ".type", where + ": missing field `type`");
    if (t["type"] != "function") bad_type(where + ".type", where + ".type: unknown variant `" + t["type"].get<std::string>() + "`, expected `function`");
    if (!t.contains("function") || !t["function"].is_object()) bad_type(where + ".function", where + ": missing field `function`");
    const auto& f = t["function"];
    if (!f.contains("name") || !f["name"].is_string()) bad_type(where + ".function.name", where + ".function: missing field `name`");
    const std::string name = f["name"];
    if (name.empty() || name.size() > 64) bad_value(where + ".function.name", where + ".function.name must be 1 to 64 characters");
    for (char c : name)
      if (!(std::isalnum(uint8_t(c)) || c == '_' || c == '-'))
        bad_value(where + ".function.name", where + ".function.name may contain only a-z, A-Z, 0-9, underscores and dashes");
    if (f.contains("description") && !f["description"].is_string() && !f["description"].is_null())
      bad_type(where + ".function.description", where + ".function.description: invalid type: expected a string");
    if (f.contains("parameters") && !f["parameters"].is_object() && !f["parameters"].is_null())
      bad_type(where + ".function.parameters", where + ".function.parameters: invalid type: expected a map");
    names.push_back(name);
  }
  return names;
}

std::string tools_system_prompt(const nlohmann::json& tools) {
  nlohmann::json fns = nlohmann::json::array();
  for (const auto& t : tools) {
    const auto& f = t["function"];
    nlohmann::json d = {{"name", f["name"]}};
    if (f.contains("description") && f["description"].is_string()) d["description"] = f["description"];
    if (f.contains("parameters") && f["parameters"].is_object()) d["parameters"] = f["parameters"];
    fns.push_back(d);
  }
  std::string s = "## Tools\nYou may call these functions (their parameters are JSON Schemas):\n";
  s += fns.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  s += "\n\nTo call functions, reply with exactly this form (one <｜tool▁call▁begin｜> block per call):\n";
  s += std::string(kToolCallsBegin) + tool_call_head("FUNCTION_NAME", true) + "ARGUMENTS_AS_JSON" + tool_call_tail();
  s += kToolCallsEnd;
  s += "\nThe results come back as tool messages.";
  return s;
}

std::string tool_call_head(const std::string& name, bool first) {
  return std::string(first ? "" : "\n") + kToolCallBegin + "function" + kToolSep + name + "\n```json\n";
}

std::string tool_call_tail() { return std::string("\n```") + kToolCallEnd; }

}  // namespace qs::serve
