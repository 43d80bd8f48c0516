// Tool calls in the form DeepSeek-V3's chat template defines (and the model writes):
//
//   <｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME
//   ```json
//   ARGUMENTS
//   ```<｜tool▁call▁end｜>
//   <｜tool▁call▁begin｜>...<｜tool▁call▁end｜><｜tool▁calls▁end｜>
//
// ToolCallParser reads streamed output text: text before the calls is content (a partial
// marker is held back until decided); each call is returned once its end marker has arrived.
// Output that opens the calls but never completes one is given back as content at finish().
//
// Templates that never mention `tools` (DeepSeek-V3's does not render tool definitions) get a
// system message describing the tools and this syntax: tools_system_prompt().
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace qs::serve {

inline constexpr const char* kToolCallsBegin = "<｜tool▁calls▁begin｜>";
inline constexpr const char* kToolCallsEnd = "<｜tool▁calls▁end｜>";
inline constexpr const char* kToolCallBegin = "<｜tool▁call▁begin｜>";
inline constexpr const char* kToolCallEnd = "<｜tool▁call▁end｜>";
inline constexpr const char* kToolSep = "<｜tool▁sep｜>";

struct ToolCall {
  std::string id, type = "function", name, arguments;
  nlohmann::ordered_json to_json(int index, bool with_index) const;
};

class ToolCallParser {
 public:
  struct Out {
    std::string content;
    std::vector<ToolCall> calls;
  };
  Out push(const std::string& text);
  Out finish();
  bool in_calls() const { return in_calls_; }
  int calls_seen() const { return n_calls_; }

 private:
  void parse_calls(Out& out);
  std::string buf_;
  bool in_calls_ = false, done_ = false;
  int n_calls_ = 0;
};

// "call_" + 24 random letters and digits.
std::string new_tool_call_id();

// Validates an OpenAI `tools` array (422/400 via ApiError naming the element) and returns the
// function names.
std::vector<std::string> validate_tools(const nlohmann::json& tools);

// The system message that describes `tools` and the call syntax above.
std::string tools_system_prompt(const nlohmann::json& tools);

// The text that opens a call of `name` up to its arguments, and the text after the arguments.
std::string tool_call_head(const std::string& name, bool first);
std::string tool_call_tail();

}  // namespace qs::serve
