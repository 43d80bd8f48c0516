// Request reading (serve/protocol.h), tool-call parsing (serve/tool_calls.h) and the per-choice
// output split (serve/choice.h).
#include <gtest/gtest.h>

#include <random>

#include "qiusuo/serve/api_error.h"
#include "qiusuo/serve/choice.h"
#include "qiusuo/serve/protocol.h"
#include "qiusuo/serve/tool_calls.h"

namespace qs::serve {
namespace {
using json = nlohmann::json;

int status_of(const std::string& body, bool chat = true) {
  try {
    const json j = parse_body(body);
    if (chat) parse_chat_request(j);
    else parse_completion_request(j);
  } catch (const ApiError& e) {
    return e.status;
  }
  return 200;
}

TEST(Protocol, StatusOfBadRequests) {
  const std::string msgs = R"("messages":[{"role":"user","content":"hi"}])";
  EXPECT_EQ(status_of(R"({"model":"m",)" + msgs + "}"), 200);
  EXPECT_EQ(status_of("{"), 400);                                  // malformed JSON
  EXPECT_EQ(status_of("[1,2]"), 422);                              // not an object
  EXPECT_EQ(status_of("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"\xff\"}]}"), 400);  // invalid UTF-8
  EXPECT_EQ(status_of(std::string(200, '[') + std::string(200, ']')), 400);  // deep nesting
  EXPECT_EQ(status_of("{" + msgs + "}"), 422);                     // no model
  EXPECT_EQ(status_of(R"({"model":"m"})"), 422);                   // no messages
  EXPECT_EQ(status_of(R"({"model":"m","messages":[]})"), 400);     // empty messages
  EXPECT_EQ(status_of(R"({"model":"m","messages":"hi"})"), 422);
  EXPECT_EQ(status_of(R"({"model":"m","messages":[{"content":"x"}]})"), 422);
  EXPECT_EQ(status_of(R"({"model":"m","messages":[{"role":"bot","content":"x"}]})"), 422);
  EXPECT_EQ(status_of(R"({"model":"m","messages":[{"role":"user","content":5}]})"), 422);
  EXPECT_EQ(status_of(R"({"model":"m","messages":[{"role":"user","content":[{"type":"image_url"}]}]})"), 422);
  EXPECT_EQ(status_of(R"({"model":"m","messages":[{"role":"user"}]})"), 422);
  EXPECT_EQ(status_of(R"({"model":"m","messages":[{"role":"tool","content":"x"}]})"), 422);  // no tool_call_id
  EXPECT_EQ(status_of(R"({"model":"m",)" + msgs + R"(,"temperature":"hot"})"), 422);
  EXPECT_EQ(status_of(R"({"model":"m",)" + msgs + R"(,"temperature":2.5})"), 400);
  EXPECT_EQ(status_of(R"({"model":"m",)" + msgs + R"(,"top_p":0})"), 400);
  EXPECT_EQ(status_of(R"({"model":"m",)" + msgs + R"(,"max_tokens":0})"), 400);
  EXPECT_EQ(status_of(R"({"model":"m",)" + msgs + R"(,"max_tokens":1.5})"), 422);
  EXPECT_EQ(status_of(R"({"model":"m",)" + msgs + R"(,"max_tokens":1e300})"), 422);
  EXPECT_EQ(status_of(R"({"model":"m",)" + msgs + R"(,"max_tokens":99999999999999999999})"), 422);
  EXPECT_EQ(status_of(R"({"model":"m",)" + msgs + R"(,"max_tokens":18446744073709551615})"), 400);
  EXPECT_EQ(status_of(R"({"model":"m",)" + msgs + R"(,"n":0})"), 400);
  EXPECT_EQ(status_of(R"({"model":"m",)" + msgs + R"(,"top_logprobs":3})"), 400);  // without logprobs
  EXPECT_EQ(status_of(R"({"model":"m",)" + msgs + R"(,"logprobs":true,"top_logprobs":21})"), 400);
  EXPECT_EQ(status_of(R"({"model":"m",)" + msgs + R"(,"stop":[1]})"), 422);
  EXPECT_EQ(status_of(R"({"model":"m",)" + msgs + R"(,"response_format":{"type":"json_schema"}})"), 422);
  EXPECT_EQ(status_of(R"({"model":"m",)" + msgs + R"(,"tool_choice":"required"})"), 400);  // no tools
  EXPECT_EQ(status_of(R"({"model":"m",)" + msgs + R"(,"tools":[{"type":"function"}]})"), 422);
  EXPECT_EQ(status_of(R"({"model":"m",)" + msgs +
                      R"(,"tools":[{"type":"function","function":{"name":"a b"}}]})"), 400);
  EXPECT_EQ(status_of(R"({"model":"m",)" + msgs +
                      R"(,"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":{"type":"function","function":{"name":"g"}}})"), 400);
  // Ignored as DeepSeek ignores them.
  EXPECT_EQ(status_of(R"({"model":"m",)" + msgs + R"(,"user":"u","logit_bias":{"1":2},"parallel_tool_calls":true,"temperature":null})"), 200);
  // Completions.
  EXPECT_EQ(status_of(R"({"model":"m","prompt":"x"})", false), 200);
  EXPECT_EQ(status_of(R"({"model":"m","prompt":[1,2,3]})", false), 200);
  EXPECT_EQ(status_of(R"({"model":"m","prompt":[[1,2],[3]]})", false), 200);
  EXPECT_EQ(status_of(R"({"model":"m","prompt":[-1]})", false), 400);
  EXPECT_EQ(status_of(R"({"model":"m","prompt":[]})", false), 400);
  EXPECT_EQ(status_of(R"({"model":"m","prompt":{}})", false), 422);
  EXPECT_EQ(status_of(R"({"model":"m","prompt":"x","suffix":"y","echo":true,"logprobs":2})", false), 400);
}

TEST(Protocol, ReadsFields) {
  const json j = json::parse(R"({
    "model": "m", "temperature": 0, "top_p": 0.5, "max_tokens": 7, "stop": "END", "seed": 42, "n": 3,
    "presence_penalty": 0.5, "frequency_penalty": -0.5, "stream": true, "stream_options": {"include_usage": true},
    "logprobs": true, "top_logprobs": 2, "response_format": {"type": "json_object"},
    "messages": [
      {"role": "system", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
      {"role": "user", "content": "q"},
      {"role": "assistant", "content": "", "reasoning_content": "r",
       "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
      {"role": "tool", "tool_call_id": "c1", "content": "42"},
      {"role": "assistant", "content": "The", "prefix": true}]})");
  const ApiRequest r = parse_chat_request(j);
  EXPECT_EQ(r.params.temperature, 0);
  EXPECT_FLOAT_EQ(r.params.top_p, 0.5f);
  EXPECT_EQ(r.params.max_tokens, 7);
  EXPECT_TRUE(r.max_tokens_given);
  EXPECT_EQ(r.params.stop, std::vector<std::string>{"END"});
  EXPECT_EQ(r.params.seed, 42u);
  EXPECT_EQ(r.n, 3);
  EXPECT_TRUE(r.stream && r.include_usage && r.logprobs && r.json_mode);
  EXPECT_EQ(r.top_logprobs, 2);
  EXPECT_EQ(r.messages[0]["content"], "a\nb");
  EXPECT_TRUE(r.messages[2]["content"].is_null());  // "" content of a tool-call turn
  EXPECT_FALSE(r.messages[2].contains("reasoning_content"));
  EXPECT_EQ(r.messages[4]["prefix"], true);
  EXPECT_THROW(parse_chat_request(json::parse(R"({"model":"m","messages":[{"role":"assistant","content":"x","prefix":true},{"role":"user","content":"y"}]})")),
               ApiError);
}

TEST(ToolCalls, ParsesCallsAcrossAnyChunking) {
  const std::string text = std::string("Let me check.") + kToolCallsBegin + kToolCallBegin + "function" + kToolSep +
                           "get_weather\n```json\n{\"city\": \"Paris\"}\n```" + kToolCallEnd + "\n" + kToolCallBegin +
                           "function" + kToolSep + "get_time\n```json\n{}\n```" + kToolCallEnd + kToolCallsEnd;
  std::mt19937 rng(1);
  for (int rep = 0; rep < 50; ++rep) {
    ToolCallParser p;
    std::string content;
    std::vector<ToolCall> calls;
    size_t i = 0;
    while (i < text.size()) {
      const size_t n = std::min(text.size() - i, size_t(1 + rng() % 9));
      auto o = p.push(text.substr(i, n));
      content += o.content;
      calls.insert(calls.end(), o.calls.begin(), o.calls.end());
      i += n;
    }
    content += p.finish().content;
    EXPECT_EQ(content, "Let me check.");
    ASSERT_EQ(calls.size(), 2u);
    EXPECT_EQ(calls[0].name, "get_weather");
    EXPECT_EQ(calls[0].arguments, "{\"city\": \"Paris\"}");
    EXPECT_EQ(calls[1].name, "get_time");
    EXPECT_EQ(calls[1].arguments, "{}");
    EXPECT_EQ(calls[0].id.rfind("call_", 0), 0u);
    EXPECT_NE(calls[0].id, calls[1].id);
  }
}

TEST(ToolCalls, UnfinishedCallsStayText) {
  ToolCallParser p;
  const std::string t = std::string("x") + kToolCallsBegin + kToolCallBegin + "function" + kToolSep + "f\n```json\n{\"a";
  auto o = p.push(t);
  EXPECT_EQ(o.content, "x");
  EXPECT_TRUE(o.calls.empty());
  EXPECT_EQ(p.finish().content, t.substr(1));
  ToolCallParser q;
  EXPECT_EQ(q.push("a <｜tool").content, "a ");  // a possible marker is held back
  EXPECT_EQ(q.push("bar").content, "<｜toolbar");
}

TEST(ToolCalls, SystemPromptNamesTheToolsAndTheSyntax) {
  const json tools = json::parse(R"([{"type":"function","function":{"name":"get_weather","description":"Weather of a city",
    "parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}])");
  EXPECT_EQ(validate_tools(tools), std::vector<std::string>{"get_weather"});
  const std::string s = tools_system_prompt(tools);
  EXPECT_NE(s.find("get_weather"), std::string::npos);
  EXPECT_NE(s.find("Weather of a city"), std::string::npos);
  EXPECT_NE(s.find(kToolCallsBegin), std::string::npos);
  EXPECT_NE(s.find(kToolSep), std::string::npos);
}

TEST(Choice, SplitsReasoningContentAndToolCalls) {
  ChoiceSetup s;
  s.reasoning = true;
  s.starts_in_reasoning = true;
  s.tools = true;
  ChoiceOutput o(s);
  std::string reasoning_stream, content_stream;
  const std::string pieces[] = {"I sh", "ould call.</th", "ink>\n\nOK", std::string(kToolCallsBegin) + kToolCallBegin,
                                std::string("function") + kToolSep + "f\n```json\n{}\n```" + kToolCallEnd + kToolCallsEnd};
  for (const auto& p : pieces) {
    TokenEvent ev;
    ev.token = 5;
    ev.text = p;
    const ChoiceDelta d = o.push(ev);
    reasoning_stream += d.reasoning;
    content_stream += d.content;
  }
  GenerationResult r;
  r.reason = FinishReason::Stop;
  const ChoiceDelta d = o.finish(r);
  reasoning_stream += d.reasoning;
  content_stream += d.content;
  EXPECT_EQ(reasoning_stream, "I should call.");
  EXPECT_EQ(o.reasoning, "I should call.");
  EXPECT_EQ(content_stream, "\n\nOK");
  ASSERT_EQ(o.calls.size(), 1u);
  EXPECT_EQ(o.calls[0].name, "f");
  EXPECT_EQ(o.finish_reason, "tool_calls");
  EXPECT_EQ(o.reasoning_tokens, 3);  // the tokens pushed while inside <think> (its closing tag included)
}

}  // namespace
}  // namespace qs::serve
