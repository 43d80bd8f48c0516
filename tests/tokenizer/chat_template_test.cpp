// Chat-template rendering (qiusuo/tokenizer/chat_template.h) against the DeepSeek-V3 / R1
// fixtures (shared/fixtures/tokenizer/chat_cases.json: rendered text and token ids), and golden
// conversations of our own.
//
// kChatGolden and kFuzzGolden were produced with Python Jinja2 3.1.6 in the environment
// transformers uses for chat templates (ImmutableSandboxedEnvironment(trim_blocks=True,
// lstrip_blocks=True, extensions=[loopcontrols]) with transformers' tojson, raise_exception and
// strftime_now), rendering template.render(messages=..., add_generation_prompt=..., tools=...,
// documents=None, bos_token=..., eos_token=..., pad_token=...) as transformers'
// apply_chat_template does, by a throwaway script that is not part of the repository. An entry
// with expected == nullptr is a conversation for which Python Jinja2 raises an error (e.g.
// `'...' + None`); ours must throw qs::Error too. Templates: "deepseek-v3" and "deepseek-r1" are
// read from the fixture configs; the others (DeepSeek-V2 and V2.5 shapes, the R1-Distill-Qwen /
// Llama shape, and Qwen2.5 / Llama-3.1 style multi-line templates with tools) are written out
// below as representative examples of those template shapes.
#include "qiusuo/tokenizer/chat_template.h"

#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "qiusuo/core/error.h"
#include "qiusuo/tokenizer/tokenizer.h"

namespace {

using nlohmann::json;

const std::string kFixtures = std::string(QS_FIXTURES) + "/tokenizer";

struct Scenario {
  const char* name;
  const char* messages;  // JSON array
};

struct ChatGolden {
  const char* tmpl;      // template id (see template_by_id)
  const char* scenario;  // kScenarios name
  bool add_generation_prompt;
  bool with_tools;       // tools = kToolsJson (else None)
  const char* expected;  // nullptr: Python Jinja2 raises an error
};

struct FuzzGolden {
  const char* tmpl;
  bool add_generation_prompt;
  const char* messages;
  const char* expected;
};

// clang-format off
const Scenario kScenarios[] = {
    {"single_user", R"json([{"content": "Hello!", "role": "user"}])json"},
    {"system_user_assistant_user", R"json([{"content": "You are a helpful assistant.", "role": "system"}, {"content": "What is 2+2?", "role": "user"}, {"content": "2+2 equals 4.", "role": "assistant"}, {"content": "And 3+3?", "role": "user"}])json"},
    {"multiple_system_messages", R"json([{"content": "Rule one.", "role": "system"}, {"content": "Hi", "role": "user"}, {"content": "Rule two,\nwith a newline.", "role": "system"}, {"content": "Hello.", "role": "assistant"}, {"content": "", "role": "system"}, {"content": "Bye", "role": "user"}])json"},
    {"only_system", R"json([{"content": "Only a system prompt.", "role": "system"}])json"},
    {"no_messages", R"json([])json"},
    {"empty_contents", R"json([{"content": "", "role": "system"}, {"content": "", "role": "user"}, {"content": "", "role": "assistant"}, {"content": " ", "role": "user"}])json"},
    {"reasoning_in_history", R"json([{"content": "Solve x+1=3.", "role": "user"}, {"content": "<think>\nSubtract 1.\n</think>\n\nx = 2.", "role": "assistant"}, {"content": "Now x+2=3?", "role": "user"}, {"content": "no open tag</think>x = 1 </think> final", "role": "assistant"}, {"content": "Thanks", "role": "user"}, {"content": "</think>", "role": "assistant"}, {"content": "<think>user think</think> ok", "role": "user"}])json"},
    {"ends_with_assistant", R"json([{"content": "Say hi", "role": "user"}, {"content": "<think>short</think>Hi!", "role": "assistant"}])json"},
    {"single_tool_call", R"json([{"content": "Use tools.", "role": "system"}, {"content": "Weather in Paris?", "role": "user"}, {"content": null, "role": "assistant", "tool_calls": [{"function": {"arguments": "{\"city\": \"Paris\", \"unit\": \"celsius\"}", "name": "get_weather"}, "id": "call_0", "type": "function"}]}, {"content": "{\"temp\": 18}", "role": "tool", "tool_call_id": "call_0"}, {"content": "It is 18\u00b0C in Paris.", "role": "assistant"}])json"},
    {"several_tool_calls", R"json([{"content": "Weather in Paris, Rome and \u6771\u4eac?", "role": "user"}, {"content": null, "role": "assistant", "tool_calls": [{"function": {"arguments": "{\"city\": \"Paris\"}", "name": "get_weather"}, "id": "call_0", "type": "function"}, {"function": {"arguments": "{\"city\": \"Rome\"}", "name": "get_weather"}, "id": "call_1", "type": "function"}, {"function": {"arguments": "{\"city\": \"\u6771\u4eac\"}", "name": "get_weather"}, "id": "call_2", "type": "function"}]}, {"content": "18", "role": "tool", "tool_call_id": "call_0"}, {"content": "24", "role": "tool", "tool_call_id": "call_1"}, {"content": "21", "role": "tool", "tool_call_id": "call_2"}, {"content": "Paris 18, Rome 24, Tokyo 21.", "role": "assistant"}])json"},
    {"two_tool_rounds", R"json([{"content": "Paris?", "role": "user"}, {"content": null, "role": "assistant", "tool_calls": [{"function": {"arguments": "{\"city\": \"Paris\"}", "name": "get_weather"}, "id": "call_0", "type": "function"}]}, {"content": "18", "role": "tool", "tool_call_id": "call_0"}, {"content": "18 in Paris.", "role": "assistant"}, {"content": "Rome?", "role": "user"}, {"content": null, "role": "assistant", "tool_calls": [{"function": {"arguments": "{\"city\": \"Rome\"}", "name": "get_weather"}, "id": "call_1", "type": "function"}]}, {"content": "24", "role": "tool", "tool_call_id": "call_1"}, {"content": "24 in Rome.", "role": "assistant"}])json"},
    {"ends_with_tool_output", R"json([{"content": "Search it", "role": "user"}, {"content": null, "role": "assistant", "tool_calls": [{"function": {"arguments": "{\"q\": \"jinja \\\"quotes\\\"\\n\"}", "name": "search"}, "id": "call_0", "type": "function"}]}, {"content": "result A", "role": "tool", "tool_call_id": "call_0"}, {"content": "result B", "role": "tool", "tool_call_id": "call_0"}])json"},
    {"content_with_tool_calls", R"json([{"content": "Compute", "role": "user"}, {"content": "<think>need calc</think>Let me compute.", "role": "assistant", "tool_calls": [{"function": {"arguments": "{\"expr\": \"6*7\"}", "name": "calc"}, "id": "call_0", "type": "function"}, {"function": {"arguments": "{\"expr\": \"1/0\"}", "name": "calc"}, "id": "call_1", "type": "function"}]}, {"content": "42", "role": "tool", "tool_call_id": "call_0"}, {"content": "error", "role": "tool", "tool_call_id": "call_1"}, {"content": "6*7 = 42.", "role": "assistant"}])json"},
    {"special_text", R"json([{"content": "Repeat: <\uff5cAssistant\uff5c> and {{ x }} {% raw %} \\n", "role": "user"}, {"content": "Tabs\tand\r\nCRLF and emoji \ud83d\ude00 and \u2028 sep", "role": "assistant"}, {"content": "  leading and trailing spaces  \n\n", "role": "user"}])json"},
    {"tool_message_first", R"json([{"content": "orphan output", "role": "tool", "tool_call_id": "x"}, {"content": "hi", "role": "user"}])json"},
    {"arguments_as_dict", R"json([{"content": "x", "role": "user"}, {"content": null, "role": "assistant", "tool_calls": [{"function": {"arguments": {"a": 1}, "name": "f"}, "id": "call_0", "type": "function"}]}])json"},
};

const char* const kToolsJson = R"json([{"function": {"description": "Get the weather", "name": "get_weather", "parameters": {"properties": {"city": {"type": "string"}}, "required": ["city"], "type": "object"}}, "type": "function"}])json";

const char* const kTemplateV2 =
    "{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ 'User: ' + message['content'] + '\\n\\n' }}{% elif message['role'] == 'assistant' %}{{ 'Assistant: ' + message['content'] + eos_token }}{% elif message['role'] == 'system' %}{{ message['content'] + '\\n\\n' }}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}";

const char* const kTemplateV25 =
    "{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}{% set ns = namespace(is_first=false, is_tool=false, is_output_first=true, system_prompt='') %}{%- for message in messages %}{%- if message['role'] == 'system' %}{% set ns.system_prompt = message['content'] %}{%- endif %}{%- endfor %}{{bos_token}}{{ns.system_prompt}}{%- for message in messages %}{%- if message['role'] == 'user' %}{%- set ns.is_tool = false -%}{{'<｜User｜>' + message['content']}}{%- endif %}{%- if message['role'] == 'assistant' and message['content'] is none %}{%- set ns.is_tool = false -%}{%- for tool in message['tool_calls']%}{%- if not ns.is_first %}{{'<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\\n' + '```json' + '\\n' + tool['function']['arguments'] + '\\n' + '```' + '<｜tool▁call▁end｜>'}}{%- set ns.is_first = true -%}{%- else %}{{'\\n' + '<｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\\n' + '```json' + '\\n' + tool['function']['arguments'] + '\\n' + '```' + '<｜tool▁call▁end｜>'}}{{'<｜tool▁calls▁end｜><｜end▁of▁sentence｜>'}}{%- endif %}{%- endfor %}{%- endif %}{%- if message['role'] == 'assistant' and message['content'] is not none %}{%- if ns.is_tool %}{{'<｜tool▁outputs▁end｜>' + message['content'] + '<｜end▁of▁sentence｜>'}}{%- set ns.is_tool = false -%}{%- else %}{{'<｜Assistant｜>' + message['content'] + '<｜end▁of▁sentence｜>'}}{%- endif %}{%- endif %}{%- if message['role'] == 'tool' %}{%- set ns.is_tool = true -%}{%- if ns.is_output_first %}{{'<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}{%- set ns.is_output_first = false %}{%- else %}{{'\\n<｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}{%- endif %}{%- endif %}{%- endfor -%}{% if ns.is_tool %}{{'<｜tool▁outputs▁end｜>'}}{% endif %}{% if add_generation_prompt and not ns.is_tool %}{{'<｜Assistant｜>'}}{% endif %}";

const char* const kTemplateR1Distill =
    "{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}{% set ns = namespace(is_first=false, is_tool=false, is_output_first=true, system_prompt='') %}{%- for message in messages %}{%- if message['role'] == 'system' %}{% set ns.system_prompt = message['content'] %}{%- endif %}{%- endfor %}{{bos_token}}{{ns.system_prompt}}{%- for message in messages %}{%- if message['role'] == 'user' %}{%- set ns.is_tool = false -%}{{'<｜User｜>' + message['content']}}{%- endif %}{%- if message['role'] == 'assistant' and message['content'] is none %}{%- set ns.is_tool = false -%}{%- for tool in message['tool_calls']%}{%- if not ns.is_first %}{{'<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\\n' + '```json' + '\\n' + tool['function']['arguments'] + '\\n' + '```' + '<｜tool▁call▁end｜>'}}{%- set ns.is_first = true -%}{%- else %}{{'\\n' + '<｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\\n' + '```json' + '\\n' + tool['function']['arguments'] + '\\n' + '```' + '<｜tool▁call▁end｜>'}}{{'<｜tool▁calls▁end｜><｜end▁of▁sentence｜>'}}{%- endif %}{%- endfor %}{%- endif %}{%- if message['role'] == 'assistant' and message['content'] is not none %}{%- if ns.is_tool %}{{'<｜tool▁outputs▁end｜>' + message['content'] + '<｜end▁of▁sentence｜>'}}{%- set ns.is_tool = false -%}{%- else %}{% set content = message['content'] %}{% if '</think>' in content %}{% set content = content.split('</think>')[-1] %}{% endif %}{{'<｜Assistant｜>' + content + '<｜end▁of▁sentence｜>'}}{%- endif %}{%- endif %}{%- if message['role'] == 'tool' %}{%- set ns.is_tool = true -%}{%- if ns.is_output_first %}{{'<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}{%- set ns.is_output_first = false %}{%- else %}{{'\\n<｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}{%- endif %}{%- endif %}{%- endfor -%}{% if ns.is_tool %}{{'<｜tool▁outputs▁end｜>'}}{% endif %}{% if add_generation_prompt and not ns.is_tool %}{{'<｜Assistant｜><think>\\n'}}{% endif %}";

const char* const kTemplateQwenTools =
    "{%- if tools %}\n"
     "    {{- '<|im_start|>system\\n' }}\n"
     "    {%- if messages[0]['role'] == 'system' %}\n"
     "        {{- messages[0]['content'] }}\n"
     "    {%- else %}\n"
     "        {{- 'You are a helpful assistant.' }}\n"
     "    {%- endif %}\n"
     "    {{- \"\\n\\n# Tools\\n\\n<tools>\" }}\n"
     "    {%- for tool in tools %}\n"
     "        {{- \"\\n\" }}\n"
     "        {{- tool | tojson }}\n"
     "    {%- endfor %}\n"
     "    {{- \"\\n</tools><|im_end|>\\n\" }}\n"
     "{%- else %}\n"
     "    {%- if messages[0]['role'] == 'system' %}\n"
     "        {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}\n"
     "    {%- else %}\n"
     "        {{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}\n"
     "    {%- endif %}\n"
     "{%- endif %}\n"
     "{%- for message in messages %}\n"
     "    {%- if (message.role == \"user\") or (message.role == \"system\" and not loop.first) or (message.role == \"assistant\" and not message.tool_calls) %}\n"
     "        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}\n"
     "    {%- elif message.role == \"assistant\" %}\n"
     "        {{- '<|im_start|>' + message.role }}\n"
     "        {%- if message.content %}\n"
     "            {{- '\\n' + message.content }}\n"
     "        {%- endif %}\n"
     "        {%- for tool_call in message.tool_calls %}\n"
     "            {%- if tool_call.function is defined %}\n"
     "                {%- set tool_call = tool_call.function %}\n"
     "            {%- endif %}\n"
     "            {{- '\\n<tool_call>\\n{\"name\": \"' }}\n"
     "            {{- tool_call.name }}\n"
     "            {{- '\", \"arguments\": ' }}\n"
     "            {{- tool_call.arguments | tojson }}\n"
     "            {{- '}\\n</tool_call>' }}\n"
     "        {%- endfor %}\n"
     "        {{- '<|im_end|>\\n' }}\n"
     "    {%- elif message.role == \"tool\" %}\n"
     "        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != \"tool\") %}\n"
     "            {{- '<|im_start|>user' }}\n"
     "        {%- endif %}\n"
     "        {{- '\\n<tool_response>\\n' }}\n"
     "        {{- message.content }}\n"
     "        {{- '\\n</tool_response>' }}\n"
     "        {%- if loop.last or (messages[loop.index0 + 1].role != \"tool\") %}\n"
     "            {{- '<|im_end|>\\n' }}\n"
     "        {%- endif %}\n"
     "    {%- endif %}\n"
     "{%- endfor %}\n"
     "{%- if add_generation_prompt %}\n"
     "    {{- '<|im_start|>assistant\\n' }}\n"
     "{%- endif %}\n";

const char* const kTemplateLlamaTools =
    "{{- bos_token }}\n"
     "{%- if not date_string is defined %}\n"
     "    {%- set date_string = \"26 Jul 2024\" %}\n"
     "{%- endif %}\n"
     "{%- if messages[0]['role'] == 'system' %}\n"
     "    {%- set system_message = messages[0]['content']|trim %}\n"
     "    {%- set messages = messages[1:] %}\n"
     "{%- else %}\n"
     "    {%- set system_message = \"\" %}\n"
     "{%- endif %}\n"
     "{{- \"<|start_header_id|>system<|end_header_id|>\\n\\n\" }}\n"
     "{{- \"Cutting Knowledge Date: December 2023\\n\" }}\n"
     "{{- \"Today Date: \" + date_string + \"\\n\\n\" }}\n"
     "{%- if tools is not none %}\n"
     "    {{- \"You have access to the following functions.\\n\\n\" }}\n"
     "    {%- for t in tools %}\n"
     "        {{- t | tojson(indent=4) }}\n"
     "        {{- \"\\n\\n\" }}\n"
     "    {%- endfor %}\n"
     "{%- endif %}\n"
     "{{- system_message }}\n"
     "{{- \"<|eot_id|>\" }}\n"
     "{%- for message in messages %}\n"
     "    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}\n"
     "        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' }}\n"
     "    {%- elif 'tool_calls' in message %}\n"
     "        {%- if not message.tool_calls|length == 1 %}\n"
     "            {{- raise_exception(\"This model only supports single tool-calls at once!\") }}\n"
     "        {%- endif %}\n"
     "        {%- set tool_call = message.tool_calls[0].function %}\n"
     "        {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}\n"
     "        {{- '{\"name\": \"' + tool_call.name + '\", ' }}\n"
     "        {{- '\"parameters\": ' }}\n"
     "        {{- tool_call.arguments }}\n"
     "        {{- \"}\" }}\n"
     "        {{- \"<|eot_id|>\" }}\n"
     "    {%- elif message.role == \"tool\" or message.role == \"ipython\" %}\n"
     "        {{- \"<|start_header_id|>ipython<|end_header_id|>\\n\\n\" }}\n"
     "        {%- if message.content is mapping or message.content is iterable %}\n"
     "            {{- message.content | tojson }}\n"
     "        {%- else %}\n"
     "            {{- message.content }}\n"
     "        {%- endif %}\n"
     "        {{- \"<|eot_id|>\" }}\n"
     "    {%- endif %}\n"
     "{%- endfor %}\n"
     "{%- if add_generation_prompt %}\n"
     "    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}\n"
     "{%- endif %}\n";

const ChatGolden kChatGolden[] = {
    {"deepseek-v3", "single_user", true, false,
     "<｜begin▁of▁sentence｜><｜User｜>Hello!<｜Assistant｜>"},
    {"deepseek-v3", "single_user", false, false,
     "<｜begin▁of▁sentence｜><｜User｜>Hello!"},
    {"deepseek-r1", "single_user", true, false,
     "<｜begin▁of▁sentence｜><｜User｜>Hello!<｜Assistant｜><think>\n"},
    {"deepseek-r1", "single_user", false, false,
     "<｜begin▁of▁sentence｜><｜User｜>Hello!"},
    {"v2", "single_user", true, false,
     "<｜begin▁of▁sentence｜>User: Hello!\n"
     "\n"
     "Assistant:"},
    {"v2.5", "single_user", true, false,
     "<｜begin▁of▁sentence｜><｜User｜>Hello!<｜Assistant｜>"},
    {"r1-distill", "single_user", true, false,
     "<｜begin▁of▁sentence｜><｜User｜>Hello!<｜Assistant｜><think>\n"},
    {"qwen-tools", "single_user", true, false,
     "<|im_start|>system\n"
     "You are a helpful assistant.<|im_end|>\n"
     "<|im_start|>user\n"
     "Hello!<|im_end|>\n"
     "<|im_start|>assistant\n"},
    {"llama-tools", "single_user", true, false,
     "<｜begin▁of▁sentence｜><|start_header_id|>system<|end_header_id|>\n"
     "\n"
     "Cutting Knowledge Date: December 2023\n"
     "Today Date: 26 Jul 2024\n"
     "\n"
     "<|eot_id|><|start_header_id|>user<|end_header_id|>\n"
     "\n"
     "Hello!<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n"
     "\n"},
    {"deepseek-v3", "system_user_assistant_user", true, false,
     "<｜begin▁of▁sentence｜>You are a helpful assistant.<｜User｜>What is 2+2?<｜Assistant｜>2+2 equals 4.<｜end▁of▁sentence｜><｜User｜>And 3+3?<｜Assistant｜>"},
    {"deepseek-v3", "system_user_assistant_user", false, false,
     "<｜begin▁of▁sentence｜>You are a helpful assistant.<｜User｜>What is 2+2?<｜Assistant｜>2+2 equals 4.<｜end▁of▁sentence｜><｜User｜>And 3+3?"},
    {"deepseek-r1", "system_user_assistant_user", true, false,
     "<｜begin▁of▁sentence｜>You are a helpful assistant.<｜User｜>What is 2+2?<｜Assistant｜>2+2 equals 4.<｜end▁of▁sentence｜><｜User｜>And 3+3?<｜Assistant｜><think>\n"},
    {"deepseek-r1", "system_user_assistant_user", false, false,
     "<｜begin▁of▁sentence｜>You are a helpful assistant.<｜User｜>What is 2+2?<｜Assistant｜>2+2 equals 4.<｜end▁of▁sentence｜><｜User｜>And 3+3?"},
    {"v2", "system_user_assistant_user", true, false,
     "<｜begin▁of▁sentence｜>You are a helpful assistant.\n"
     "\n"
     "User: What is 2+2?\n"
     "\n"
     "Assistant: 2+2 equals 4.<｜end▁of▁sentence｜>User: And 3+3?\n"
     "\n"
     "Assistant:"},
    {"v2.5", "system_user_assistant_user", true, false,
     "<｜begin▁of▁sentence｜>You are a helpful assistant.<｜User｜>What is 2+2?<｜Assistant｜>2+2 equals 4.<｜end▁of▁sentence｜><｜User｜>And 3+3?<｜Assistant｜>"},
    {"r1-distill", "system_user_assistant_user", true, false,
     "<｜begin▁of▁sentence｜>You are a helpful assistant.<｜User｜>What is 2+2?<｜Assistant｜>2+2 equals 4.<｜end▁of▁sentence｜><｜User｜>And 3+3?<｜Assistant｜><think>\n"},
    {"qwen-tools", "system_user_assistant_user", true, false,
     "<|im_start|>system\n"
     "You are a helpful assistant.<|im_end|>\n"
     "<|im_start|>user\n"
     "What is 2+2?<|im_end|>\n"
     "<|im_start|>assistant\n"
     "2+2 equals 4.<|im_end|>\n"
     "<|im_start|>user\n"
     "And 3+3?<|im_end|>\n"
     "<|im_start|>assistant\n"},
    {"llama-tools", "system_user_assistant_user", true, false,
     "<｜begin▁of▁sentence｜><|start_header_id|>system<|end_header_id|>\n"
     "\n"
     "Cutting Knowledge Date: December 2023\n"
     "Today Date: 26 Jul 2024\n"
     "\n"
     "You are a helpful assistant.<|eot_id|><|start_header_id|>user<|end_header_id|>\n"
     "\n"
     "What is 2+2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n"
     "\n"
     "2+2 equals 4.<|eot_id|><|start_header_id|>user<|end_header_id|>\n"
     "\n"
     "And 3+3?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n"
     "\n"},
    {"qwen-tools", "system_user_assistant_user", false, true,
     "<|im_start|>system\n"
     "You are a helpful assistant.\n"
     "\n"
     "# Tools\n"
     "\n"
     "<tools>\n"
     "{\"function\": {\"description\": \"Get the weather\", \"name\": \"get_weather\", \"parameters\": {\"properties\": {\"city\": {\"type\": \"string\"}}, \"required\": [\"city\"], \"type\": \"object\"}}, \"type\": \"function\"}\n"
     "</tools><|im_end|>\n"
     "<|im_start|>user\n"
     "What is 2+2?<|im_end|>\n"
     "<|im_start|>assistant\n"
     "2+2 equals 4.<|im_end|>\n"
     "<|im_start|>user\n"
     "And 3+3?<|im_end|>\n"},
    {"llama-tools", "system_user_assistant_user", false, true,
     "<｜begin▁of▁sentence｜><|start_header_id|>system<|end_header_id|>\n"
     "\n"
     "Cutting Knowledge Date: December 2023\n"
     "Today Date: 26 Jul 2024\n"
     "\n"
     "You have access to the following functions.\n"
     "\n"
     "{\n"
     "    \"function\": {\n"
     "        \"description\": \"Get the weather\",\n"
     "        \"name\": \"get_weather\",\n"
     "        \"parameters\": {\n"
     "            \"properties\": {\n"
     "                \"city\": {\n"
     "                    \"type\": \"string\"\n"
     "                }\n"
     "            },\n"
     "            \"required\": [\n"
     "                \"city\"\n"
     "            ],\n"
     "            \"type\": \"object\"\n"
     "        }\n"
     "    },\n"
     "    \"type\": \"function\"\n"
     "}\n"
     "\n"
     "You are a helpful assistant.<|eot_id|><|start_header_id|>user<|end_header_id|>\n"
     "\n"
     "What is 2+2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n"
     "\n"
     "2+2 equals 4.<|eot_id|><|start_header_id|>user<|end_header_id|>\n"
     "\n"
     "And 3+3?<|eot_id|>"},
    {"deepseek-v3", "multiple_system_messages", true, false,
     "<｜begin▁of▁sentence｜>Rule one.\n"
     "\n"
     "Rule two,\n"
     "with a newline.\n"
     "\n"
     "<｜User｜>Hi<｜Assistant｜>Hello.<｜end▁of▁sentence｜><｜User｜>Bye<｜Assistant｜>"},
    {"deepseek-v3", "multiple_system_messages", false, false,
     "<｜begin▁of▁sentence｜>Rule one.\n"
     "\n"
     "Rule two,\n"
     "with a newline.\n"
     "\n"
     "<｜User｜>Hi<｜Assistant｜>Hello.<｜end▁of▁sentence｜><｜User｜>Bye"},
    {"deepseek-r1", "multiple_system_messages", true, false,
     "<｜begin▁of▁sentence｜>Rule one.\n"
     "\n"
     "Rule two,\n"
     "with a newline.\n"
     "\n"
     "<｜User｜>Hi<｜Assistant｜>Hello.<｜end▁of▁sentence｜><｜User｜>Bye<｜Assistant｜><think>\n"},
    {"deepseek-r1", "multiple_system_messages", false, false,
     "<｜begin▁of▁sentence｜>Rule one.\n"
     "\n"
     "Rule two,\n"
     "with a newline.\n"
     "\n"
     "<｜User｜>Hi<｜Assistant｜>Hello.<｜end▁of▁sentence｜><｜User｜>Bye"},
    {"v2", "multiple_system_messages", true, false,
     "<｜begin▁of▁sentence｜>Rule one.\n"
     "\n"
     "User: Hi\n"
     "\n"
     "Rule two,\n"
     "with a newline.\n"
     "\n"
     "Assistant: Hello.<｜end▁of▁sentence｜>\n"
     "\n"
     "User: Bye\n"
     "\n"
     "Assistant:"},
    {"v2.5", "multiple_system_messages", true, false,
     "<｜begin▁of▁sentence｜><｜User｜>Hi<｜Assistant｜>Hello.<｜end▁of▁sentence｜><｜User｜>Bye<｜Assistant｜>"},
    {"r1-distill", "multiple_system_messages", true, false,
     "<｜begin▁of▁sentence｜><｜User｜>Hi<｜Assistant｜>Hello.<｜end▁of▁sentence｜><｜User｜>Bye<｜Assistant｜><think>\n"},
    {"qwen-tools", "multiple_system_messages", true, false,
     "<|im_start|>system\n"
     "Rule one.<|im_end|>\n"
     "<|im_start|>user\n"
     "Hi<|im_end|>\n"
     "<|im_start|>system\n"
     "Rule two,\n"
     "with a newline.<|im_end|>\n"
     "<|im_start|>assistant\n"
     "Hello.<|im_end|>\n"
     "<|im_start|>system\n"
     "<|im_end|>\n"
     "<|im_start|>user\n"
     "Bye<|im_end|>\n"
     "<|im_start|>assistant\n"},
    {"llama-tools", "multiple_system_messages", true, false,
     "<｜begin▁of▁sentence｜><|start_header_id|>system<|end_header_id|>\n"
     "\n"
     "Cutting Knowledge Date: December 2023\n"
     "Today Date: 26 Jul 2024\n"
     "\n"
     "Rule one.<|eot_id|><|start_header_id|>user<|end_header_id|>\n"
     "\n"
     "Hi<|eot_id|><|start_header_id|>system<|end_header_id|>\n"
     "\n"
     "Rule two,\n"
     "with a newline.<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n"
     "\n"
     "Hello.<|eot_id|><|start_header_id|>system<|end_header_id|>\n"
     "\n"
     "<|eot_id|><|start_header_id|>user<|end_header_id|>\n"
     "\n"
     "Bye<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n"
     "\n"},
    {"deepseek-v3", "only_system", true, false,
     "<｜begin▁of▁sentence｜>Only a system prompt.<｜Assistant｜>"},
    {"deepseek-v3", "only_system", false, false,
     "<｜begin▁of▁sentence｜>Only a system prompt."},
    {"deepseek-r1", "only_system", true, false,
     "<｜begin▁of▁sentence｜>Only a system prompt.<｜Assistant｜><think>\n"},
    {"deepseek-r1", "only_system", false, false,
     "<｜begin▁of▁sentence｜>Only a system prompt."},
    {"v2", "only_system", true, false,
     "<｜begin▁of▁sentence｜>Only a system prompt.\n"
     "\n"
     "Assistant:"},
    {"v2.5", "only_system", true, false,
     "<｜begin▁of▁sentence｜>Only a system prompt.<｜Assistant｜>"},
    {"r1-distill", "only_system", true, false,
     "<｜begin▁of▁sentence｜>Only a system prompt.<｜Assistant｜><think>\n"},
    {"qwen-tools", "only_system", true, false,
     "<|im_start|>system\n"
     "Only a system prompt.<|im_end|>\n"
     "<|im_start|>assistant\n"},
    {"llama-tools", "only_system", true, false,
     "<｜begin▁of▁sentence｜><|start_header_id|>system<|end_header_id|>\n"
     "\n"
     "Cutting Knowledge Date: December 2023\n"
     "Today Date: 26 Jul 2024\n"
     "\n"
     "Only a system prompt.<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n"
     "\n"},
    {"deepseek-v3", "no_messages", true, false,
     "<｜begin▁of▁sentence｜><｜Assistant｜>"},
    {"deepseek-v3", "no_messages", false, false,
     "<｜begin▁of▁sentence｜>"},
    {"deepseek-r1", "no_messages", true, false,
     "<｜begin▁of▁sentence｜><｜Assistant｜><think>\n"},
    {"deepseek-r1", "no_messages", false, false,
     "<｜begin▁of▁sentence｜>"},
    {"v2", "no_messages", true, false,
     "<｜begin▁of▁sentence｜>Assistant:"},
    {"v2.5", "no_messages", true, false,
     "<｜begin▁of▁sentence｜><｜Assistant｜>"},
    {"r1-distill", "no_messages", true, false,
     "<｜begin▁of▁sentence｜><｜Assistant｜><think>\n"},
    {"qwen-tools", "no_messages", true, false,
     nullptr},
    {"llama-tools", "no_messages", true, false,
     nullptr},
    {"deepseek-v3", "empty_contents", true, false,
     "<｜begin▁of▁sentence｜><｜User｜><｜Assistant｜><｜end▁of▁sentence｜><｜User｜> <｜Assistant｜>"},
    {"deepseek-v3", "empty_contents", false, false,
     "<｜begin▁of▁sentence｜><｜User｜><｜Assistant｜><｜end▁of▁sentence｜><｜User｜> "},
    {"deepseek-r1", "empty_contents", true, false,
     "<｜begin▁of▁sentence｜><｜User｜><｜Assistant｜><｜end▁of▁sentence｜><｜User｜> <｜Assistant｜><think>\n"},
    {"deepseek-r1", "empty_contents", false, false,
     "<｜begin▁of▁sentence｜><｜User｜><｜Assistant｜><｜end▁of▁sentence｜><｜User｜> "},
    {"v2", "empty_contents", true, false,
     "<｜begin▁of▁sentence｜>\n"
     "\n"
     "User: \n"
     "\n"
     "Assistant: <｜end▁of▁sentence｜>User:  \n"
     "\n"
     "Assistant:"},
    {"v2.5", "empty_contents", true, false,
     "<｜begin▁of▁sentence｜><｜User｜><｜Assistant｜><｜end▁of▁sentence｜><｜User｜> <｜Assistant｜>"},
    {"r1-distill", "empty_contents", true, false,
     "<｜begin▁of▁sentence｜><｜User｜><｜Assistant｜><｜end▁of▁sentence｜><｜User｜> <｜Assistant｜><think>\n"},
    {"qwen-tools", "empty_contents", true, false,
     "<|im_start|>system\n"
     "<|im_end|>\n"
     "<|im_start|>user\n"
     "<|im_end|>\n"
     "<|im_start|>assistant\n"
     "<|im_end|>\n"
     "<|im_start|>user\n"
     " <|im_end|>\n"
     "<|im_start|>assistant\n"},
    {"llama-tools", "empty_contents", true, false,
     "<｜begin▁of▁sentence｜><|start_header_id|>system<|end_header_id|>\n"
     "\n"
     "Cutting Knowledge Date: December 2023\n"
     "Today Date: 26 Jul 2024\n"
     "\n"
     "<|eot_id|><|start_header_id|>user<|end_header_id|>\n"
     "\n"
     "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n"
     "\n"
     "<|eot_id|><|start_header_id|>user<|end_header_id|>\n"
     "\n"
     "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n"
     "\n"},
    {"deepseek-v3", "reasoning_in_history", true, false,
     "<｜begin▁of▁sentence｜><｜User｜>Solve x+1=3.<｜Assistant｜><think>\n"
     "Subtract 1.\n"
     "</think>\n"
     "\n"
     "x = 2.<｜end▁of▁sentence｜><｜User｜>Now x+2=3?<｜Assistant｜>no open tag</think>x = 1 </think> final<｜end▁of▁sentence｜><｜User｜>Thanks<｜Assistant｜></think><｜end▁of▁sentence｜><｜User｜><think>user think</think> ok<｜Assistant｜>"},
    {"deepseek-v3", "reasoning_in_history", false, false,
     "<｜begin▁of▁sentence｜><｜User｜>Solve x+1=3.<｜Assistant｜><think>\n"
     "Subtract 1.\n"
     "</think>\n"
     "\n"
     "x = 2.<｜end▁of▁sentence｜><｜User｜>Now x+2=3?<｜Assistant｜>no open tag</think>x = 1 </think> final<｜end▁of▁sentence｜><｜User｜>Thanks<｜Assistant｜></think><｜end▁of▁sentence｜><｜User｜><think>user think</think> ok"},
    {"deepseek-r1", "reasoning_in_history", true, false,
     "<｜begin▁of▁sentence｜><｜User｜>Solve x+1=3.<｜Assistant｜>\n"
     "\n"
     "x = 2.<｜end▁of▁sentence｜><｜User｜>Now x+2=3?<｜Assistant｜> final<｜end▁of▁sentence｜><｜User｜>Thanks<｜Assistant｜><｜end▁of▁sentence｜><｜User｜><think>user think</think> ok<｜Assistant｜><think>\n"},
    {"deepseek-r1", "reasoning_in_history", false, false,
     "<｜begin▁of▁sentence｜><｜User｜>Solve x+1=3.<｜Assistant｜>\n"
     "\n"
     "x = 2.<｜end▁of▁sentence｜><｜User｜>Now x+2=3?<｜Assistant｜> final<｜end▁of▁sentence｜><｜User｜>Thanks<｜Assistant｜><｜end▁of▁sentence｜><｜User｜><think>user think</think> ok"},
    {"v2", "reasoning_in_history", true, false,
     "<｜begin▁of▁sentence｜>User: Solve x+1=3.\n"
     "\n"
     "Assistant: <think>\n"
     "Subtract 1.\n"
     "</think>\n"
     "\n"
     "x = 2.<｜end▁of▁sentence｜>User: Now x+2=3?\n"
     "\n"
     "Assistant: no open tag</think>x = 1 </think> final<｜end▁of▁sentence｜>User: Thanks\n"
     "\n"
     "Assistant: </think><｜end▁of▁sentence｜>User: <think>user think</think> ok\n"
     "\n"
     "Assistant:"},
    {"v2.5", "reasoning_in_history", true, false,
     "<｜begin▁of▁sentence｜><｜User｜>Solve x+1=3.<｜Assistant｜><think>\n"
     "Subtract 1.\n"
     "</think>\n"
     "\n"
     "x = 2.<｜end▁of▁sentence｜><｜User｜>Now x+2=3?<｜Assistant｜>no open tag</think>x = 1 </think> final<｜end▁of▁sentence｜><｜User｜>Thanks<｜Assistant｜></think><｜end▁of▁sentence｜><｜User｜><think>user think</think> ok<｜Assistant｜>"},
    {"r1-distill", "reasoning_in_history", true, false,
     "<｜begin▁of▁sentence｜><｜User｜>Solve x+1=3.<｜Assistant｜>\n"
     "\n"
     "x = 2.<｜end▁of▁sentence｜><｜User｜>Now x+2=3?<｜Assistant｜> final<｜end▁of▁sentence｜><｜User｜>Thanks<｜Assistant｜><｜end▁of▁sentence｜><｜User｜><think>user think</think> ok<｜Assistant｜><think>\n"},
    {"qwen-tools", "reasoning_in_history", true, false,
     "<|im_start|>system\n"
     "You are a helpful assistant.<|im_end|>\n"
     "<|im_start|>user\n"
     "Solve x+1=3.<|im_end|>\n"
     "<|im_start|>assistant\n"
     "<think>\n"
     "Subtract 1.\n"
     "</think>\n"
     "\n"
     "x = 2.<|im_end|>\n"
     "<|im_start|>user\n"
     "Now x+2=3?<|im_end|>\n"
     "<|im_start|>assistant\n"
     "no open tag</think>x = 1 </think> final<|im_end|>\n"
     "<|im_start|>user\n"
     "Thanks<|im_end|>\n"
     "<|im_start|>assistant\n"
     "</think><|im_end|>\n"
     "<|im_start|>user\n"
     "<think>user think</think> ok<|im_end|>\n"
     "<|im_start|>assistant\n"},
    {"llama-tools", "reasoning_in_history", true, false,
     "<｜begin▁of▁sentence｜><|start_header_id|>system<|end_header_id|>\n"
     "\n"
     "Cutting Knowledge Date: December 2023\n"
     "Today Date: 26 Jul 2024\n"
     "\n"
     "<|eot_id|><|start_header_id|>user<|end_header_id|>\n"
     "\n"
     "Solve x+1=3.<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n"
     "\n"
     "<think>\n"
     "Subtract 1.\n"
     "</think>\n"
     "\n"
     "x = 2.<|eot_id|><|start_header_id|>user<|end_header_id|>\n"
     "\n"
     "Now x+2=3?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n"
     "\n"
     "no open tag</think>x = 1 </think> final<|eot_id|><|start_header_id|>user<|end_header_id|>\n"
     "\n"
     "Thanks<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n"
     "\n"
     "</think><|eot_id|><|start_header_id|>user<|end_header_id|>\n"
     "\n"
     "<think>user think</think> ok<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n"
     "\n"},
    {"deepseek-v3", "ends_with_assistant", true, false,
     "<｜begin▁of▁sentence｜><｜User｜>Say hi<｜Assistant｜><think>short</think>Hi!<｜end▁of▁sentence｜><｜Assistant｜>"},
    {"deepseek-v3", "ends_with_assistant", false, false,
     "<｜begin▁of▁sentence｜><｜User｜>Say hi<｜Assistant｜><think>short</think>Hi!<｜end▁of▁sentence｜>"},
    {"deepseek-r1", "ends_with_assistant", true, false,
     "<｜begin▁of▁sentence｜><｜User｜>Say hi<｜Assistant｜>Hi!<｜end▁of▁sentence｜><｜Assistant｜><think>\n"},
    {"deepseek-r1", "ends_with_assistant", false, false,
     "<｜begin▁of▁sentence｜><｜User｜>Say hi<｜Assistant｜>Hi!<｜end▁of▁sentence｜>"},
    {"v2", "ends_with_assistant", true, false,
     "<｜begin▁of▁sentence｜>User: Say hi\n"
     "\n"
     "Assistant: <think>short</think>Hi!<｜end▁of▁sentence｜>Assistant:"},
    {"v2.5", "ends_with_assistant", true, false,
     "<｜begin▁of▁sentence｜><｜User｜>Say hi<｜Assistant｜><think>short</think>Hi!<｜end▁of▁sentence｜><｜Assistant｜>"},
    {"r1-distill", "ends_with_assistant", true, false,
     "<｜begin▁of▁sentence｜><｜User｜>Say hi<｜Assistant｜>Hi!<｜end▁of▁sentence｜><｜Assistant｜><think>\n"},
    {"qwen-tools", "ends_with_assistant", true, false,
     "<|im_start|>system\n"
     "You are a helpful assistant.<|im_end|>\n"
     "<|im_start|>user\n"
     "Say hi<|im_end|>\n"
     "<|im_start|>assistant\n"
     "<think>short</think>Hi!<|im_end|>\n"
     "<|im_start|>assistant\n"},
    {"llama-tools", "ends_with_assistant", true, false,
     "<｜begin▁of▁sentence｜><|start_header_id|>system<|end_header_id|>\n"
     "\n"
     "Cutting Knowledge Date: December 2023\n"
     "Today Date: 26 Jul 2024\n"
     "\n"
     "<|eot_id|><|start_header_id|>user<|end_header_id|>\n"
     "\n"
     "Say hi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n"
     "\n"
     "<think>short</think>Hi!<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n"
     "\n"},
    {"deepseek-v3", "single_tool_call", true, false,
     "<｜begin▁of▁sentence｜>Use tools.<｜User｜>Weather in Paris?<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n"
     "```json\n"
     "{\"city\": \"Paris\", \"unit\": \"celsius\"}\n"
     "```<｜tool▁call▁end｜><｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>{\"temp\": 18}<｜tool▁output▁end｜><｜tool▁outputs▁end｜>It is 18°C in Paris.<｜end▁of▁sentence｜><｜Assistant｜>"},
    {"deepseek-v3", "single_tool_call", false, false,
     "<｜begin▁of▁sentence｜>Use tools.<｜User｜>Weather in Paris?<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n"
     "```json\n"
     "{\"city\": \"Paris\", \"unit\": \"celsius\"}\n"
     "```<｜tool▁call▁end｜><｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>{\"temp\": 18}<｜tool▁output▁end｜><｜tool▁outputs▁end｜>It is 18°C in Paris.<｜end▁of▁sentence｜>"},
    {"deepseek-r1", "single_tool_call", true, false,
     "<｜begin▁of▁sentence｜>Use tools.<｜User｜>Weather in Paris?<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n"
     "```json\n"
     "{\"city\": \"Paris\", \"unit\": \"celsius\"}\n"
     "```<｜tool▁call▁end｜><｜tool▁calls▁end｜><｜end▁of▁sentence｜><｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>{\"temp\": 18}<｜tool▁output▁end｜><｜tool▁outputs▁end｜>It is 18°C in Paris.<｜end▁of▁sentence｜><｜Assistant｜><think>\n"},
    {"deepseek-r1", "single_tool_call", false, false,
     "<｜begin▁of▁sentence｜>Use tools.<｜User｜>Weather in Paris?<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n"
     "```json\n"
     "{\"city\": \"Paris\", \"unit\": \"celsius\"}\n"
     "```<｜tool▁call▁end｜><｜tool▁calls▁end｜><｜end▁of▁sentence｜><｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>{\"temp\": 18}<｜tool▁output▁end｜><｜tool▁outputs▁end｜>It is 18°C in Paris.<｜end▁of▁sentence｜>"},
    {"v2", "single_tool_call", true, false,
     nullptr},
    {"v2.5", "single_tool_call", true, false,
     "<｜begin▁of▁sentence｜>Use tools.<｜User｜>Weather in Paris?<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n"
     "```json\n"
     "{\"city\": \"Paris\", \"unit\": \"celsius\"}\n"
     "```<｜tool▁call▁end｜><｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>{\"temp\": 18}<｜tool▁output▁end｜><｜tool▁outputs▁end｜>It is 18°C in Paris.<｜end▁of▁sentence｜><｜Assistant｜>"},
    {"r1-distill", "single_tool_call", true, false,
     "<｜begin▁of▁sentence｜>Use tools.<｜User｜>Weather in Paris?<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n"
     "```json\n"
     "{\"city\": \"Paris\", \"unit\": \"celsius\"}\n"
     "```<｜tool▁call▁end｜><｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>{\"temp\": 18}<｜tool▁output▁end｜><｜tool▁outputs▁end｜>It is 18°C in Paris.<｜end▁of▁sentence｜><｜Assistant｜><think>\n"},
    {"qwen-tools", "single_tool_call", true, false,
     "<|im_start|>system\n"
     "Use tools.<|im_end|>\n"
     "<|im_start|>user\n"
     "Weather in Paris?<|im_end|>\n"
     "<|im_start|>assistant\n"
     "<tool_call>\n"
     "{\"name\": \"get_weather\", \"arguments\": \"{\\\"city\\\": \\\"Paris\\\", \\\"unit\\\": \\\"celsius\\\"}\"}\n"
     "</tool_call><|im_end|>\n"
     "<|im_start|>user\n"
     "<tool_response>\n"
     "{\"temp\": 18}\n"
     "</tool_response><|im_end|>\n"
     "<|im_start|>assistant\n"
     "It is 18°C in Paris.<|im_end|>\n"
     "<|im_start|>assistant\n"},
    {"llama-tools", "single_tool_call", true, false,
     "<｜begin▁of▁sentence｜><|start_header_id|>system<|end_header_id|>\n"
     "\n"
     "Cutting Knowledge Date: December 2023\n"
     "Today Date: 26 Jul 2024\n"
     "\n"
     "Use tools.<|eot_id|><|start_header_id|>user<|end_header_id|>\n"
     "\n"
     "Weather in Paris?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n"
     "\n"
     "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\", \"unit\": \"celsius\"}}<|eot_id|><|start_header_id|>ipython<|end_header_id|>\n"
     "\n"
     "\"{\\\"temp\\\": 18}\"<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n"
     "\n"
     "It is 18°C in Paris.<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n"
     "\n"},
    {"qwen-tools", "single_tool_call", false, true,
     "<|im_start|>system\n"
     "Use tools.\n"
     "\n"
     "# Tools\n"
     "\n"
     "<tools>\n"
     "{\"function\": {\"description\": \"Get the weather\", \"name\": \"get_weather\", \"parameters\": {\"properties\": {\"city\": {\"type\": \"string\"}}, \"required\": [\"city\"], \"type\": \"object\"}}, \"type\": \"function\"}\n"
     "</tools><|im_end|>\n"
     "<|im_start|>user\n"
     "Weather in Paris?<|im_end|>\n"
     "<|im_start|>assistant\n"
     "<tool_call>\n"
     "{\"name\": \"get_weather\", \"arguments\": \"{\\\"city\\\": \\\"Paris\\\", \\\"unit\\\": \\\"celsius\\\"}\"}\n"
     "</tool_call><|im_end|>\n"
     "<|im_start|>user\n"
     "<tool_response>\n"
     "{\"temp\": 18}\n"
     "</tool_response><|im_end|>\n"
     "<|im_start|>assistant\n"
     "It is 18°C in Paris.<|im_end|>\n"},
    {"llama-tools", "single_tool_call", false, true,
     "<｜begin▁of▁sentence｜><|start_header_id|>system<|end_header_id|>\n"
     "\n"
     "Cutting Knowledge Date: December 2023\n"
     "Today Date: 26 Jul 2024\n"
     "\n"
     "You have access to the following functions.\n"
     "\n"
     "{\n"
     "    \"function\": {\n"
     "        \"description\": \"Get the weather\",\n"
     "        \"name\": \"get_weather\",\n"
     "        \"parameters\": {\n"
     "            \"properties\": {\n"
     "                \"city\": {\n"
     "                    \"type\": \"string\"\n"
     "                }\n"
     "            },\n"
     "            \"required\": [\n"
     "                \"city\"\n"
     "            ],\n"
     "            \"type\": \"object\"\n"
     "        }\n"
     "    },\n"
     "    \"type\": \"function\"\n"
     "}\n"
     "\n"
     "Use tools.<|eot_id|><|start_header_id|>user<|end_header_id|>\n"
     "\n"
     "Weather in Paris?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n"
     "\n"
     "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\", \"unit\": \"celsius\"}}<|eot_id|><|start_header_id|>ipython<|end_header_id|>\n"
     "\n"
     "\"{\\\"temp\\\": 18}\"<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n"
     "\n"
     "It is 18°C in Paris.<|eot_id|>"},
    {"deepseek-v3", "several_tool_calls", true, false,
     "<｜begin▁of▁sentence｜><｜User｜>Weather in Paris, Rome and 東京?<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n"
     "```json\n"
     "{\"city\": \"Paris\"}\n"
     "```<｜tool▁call▁end｜>\n"
     "<｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n"
     "```json\n"
     "{\"city\": \"Rome\"}\n"
     "```<｜tool▁call▁end｜><｜tool▁calls▁end｜><｜end▁of▁sentence｜>\n"
     "<｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n"
     "```json\n"
     "{\"city\": \"東京\"}\n"
     "```<｜tool▁call▁end｜><｜tool▁calls▁end｜><｜end▁of▁sentence｜><｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>18<｜tool▁output▁end｜>\n"
     "<｜tool▁output▁begin｜>24<｜tool▁output▁end｜>\n"
     "<｜tool▁output▁begin｜>21<｜tool▁output▁end｜><｜tool▁outputs▁end｜>Paris 18, Rome 24, Tokyo 21.<｜end▁of▁sentence｜><｜Assistant｜>"},
    {"deepseek-v3", "several_tool_calls", false, false,
     "<｜begin▁of▁sentence｜><｜User｜>Weather in Paris, Rome and 東京?<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n"
     "```json\n"
     "{\"city\": \"Paris\"}\n"
     "```<｜tool▁call▁end｜>\n"
     "<｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n"
     "```json\n"
     "{\"city\": \"Rome\"}\n"
     "```<｜tool▁call▁end｜><｜tool▁calls▁end｜><｜end▁of▁sentence｜>\n"
     "<｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n"
     "```json\n"
     "{\"city\": \"東京\"}\n"
     "```<｜tool▁call▁end｜><｜tool▁calls▁end｜><｜end▁of▁sentence｜><｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>18<｜tool▁output▁end｜>\n"
     "<｜tool▁output▁begin｜>24<｜tool▁output▁end｜>\n"
     "<｜tool▁output▁begin｜>21<｜tool▁output▁end｜><｜tool▁outputs▁end｜>Paris 18, Rome 24, Tokyo 21.<｜end▁of▁sentence｜>"},
    {"deepseek-r1", "several_tool_calls", true, false,
     "<｜begin▁of▁sentence｜><｜User｜>Weather in Paris, Rome and 東京?<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n"
     "```json\n"
     "{\"city\": \"Paris\"}\n"
     "```<｜tool▁call▁end｜>\n"
     "<｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n"
     "```json\n"
     "{\"city\": \"Rome\"}\n"
     "```<｜tool▁call▁end｜>\n"
     "<｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n"
     "```json\n"
     "{\"city\": \"東京\"}\n"
     "```<｜tool▁call▁end｜><｜tool▁calls▁end｜><｜end▁of▁sentence｜><｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>18<｜tool▁output▁end｜><｜tool▁output▁begin｜>24<｜tool▁output▁end｜><｜tool▁output▁begin｜>21<｜tool▁output▁end｜><｜tool▁outputs▁end｜>Paris 18, Rome 24, Tokyo 21.<｜end▁of▁sentence｜><｜Assistant｜><think>\n"},
    {"deepseek-r1", "several_tool_calls", false, false,
     "<｜begin▁of▁sentence｜><｜User｜>Weather in Paris, Rome and 東京?<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n"
     "```json\n"
     "{\"city\": \"Paris\"}\n"
     "```<｜tool▁call▁end｜>\n"
     "<｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n"
     "```json\n"
     "{\"city\": \"Rome\"}\n"
     "```<｜tool▁call▁end｜>\n"
     "<｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n"
     "```json\n"
     "{\"city\": \"東京\"}\n"
     "```<｜tool▁call▁end｜><｜tool▁calls▁end｜><｜end▁of▁sentence｜><｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>18<｜tool▁output▁end｜><｜tool▁output▁begin｜>24<｜tool▁output▁end｜><｜tool▁output▁begin｜>21<｜tool▁output▁end｜><｜tool▁outputs▁end｜>Paris 18, Rome 24, Tokyo 21.<｜end▁of▁sentence｜>"},
    {"v2", "several_tool_calls", true, false,
     nullptr},
    {"v2.5", "several_tool_calls", true, false,
     "<｜begin▁of▁sentence｜><｜User｜>Weather in Paris, Rome and 東京?<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n"
     "```json\n"
     "{\"city\": \"Paris\"}\n"
     "```<｜tool▁call▁end｜>\n"
     "<｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n"
     "```json\n"
     "{\"city\": \"Rome\"}\n"
     "```<｜tool▁call▁end｜><｜tool▁calls▁end｜><｜end▁of▁sentence｜>\n"
     "<｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n"
     "```json\n"
     "{\"city\": \"東京\"}\n"
     "```<｜tool▁call▁end｜><｜tool▁calls▁end｜><｜end▁of▁sentence｜><｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>18<｜tool▁output▁end｜>\n"
     "<｜tool▁output▁begin｜>24<｜tool▁output▁end｜>\n"
     "<｜tool▁output▁begin｜>21<｜tool▁output▁end｜><｜tool▁outputs▁end｜>Paris 18, Rome 24, Tokyo 21.<｜end▁of▁sentence｜><｜Assistant｜>"},
    {"r1-distill", "several_tool_calls", true, false,
     "<｜begin▁of▁sentence｜><｜User｜>Weather in Paris, Rome and 東京?<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n"
     "```json\n"
     "{\"city\": \"Paris\"}\n"
     "```<｜tool▁call▁end｜>\n"
     "<｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n"
     "```json\n"
     "{\"city\": \"Rome\"}\n"
     "```<｜tool▁call▁end｜><｜tool▁calls▁end｜><｜end▁of▁sentence｜>\n"
     "<｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n"
     "```json\n"
     "{\"city\": \"東京\"}\n"
     "```<｜tool▁call▁end｜><｜tool▁calls▁end｜><｜end▁of▁sentence｜><｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>18<｜tool▁output▁end｜>\n"
     "<｜tool▁output▁begin｜>24<｜tool▁output▁end｜>\n"
     "<｜tool▁output▁begin｜>21<｜tool▁output▁end｜><｜tool▁outputs▁end｜>Paris 18, Rome 24, Tokyo 21.<｜end▁of▁sentence｜><｜Assistant｜><think>\n"},
    {"qwen-tools", "several_tool_calls", true, false,
     "<|im_start|>system\n"
     "You are a helpful assistant.<|im_end|>\n"
     "<|im_start|>user\n"
     "Weather in Paris, Rome and 東京?<|im_end|>\n"
     "<|im_start|>assistant\n"
     "<tool_call>\n"
     "{\"name\": \"get_weather\", \"arguments\": \"{\\\"city\\\": \\\"Paris\\\"}\"}\n"
     "</tool_call>\n"
     "<tool_call>\n"
     "{\"name\": \"get_weather\", \"arguments\": \"{\\\"city\\\": \\\"Rome\\\"}\"}\n"
     "</tool_call>\n"
     "<tool_call>\n"
     "{\"name\": \"get_weather\", \"arguments\": \"{\\\"city\\\": \\\"東京\\\"}\"}\n"
     "</tool_call><|im_end|>\n"
     "<|im_start|>user\n"
     "<tool_response>\n"
     "18\n"
     "</tool_response>\n"
     "<tool_response>\n"
     "24\n"
     "</tool_response>\n"
     "<tool_response>\n"
     "21\n"
     "</tool_response><|im_end|>\n"
     "<|im_start|>assistant\n"
     "Paris 18, Rome 24, Tokyo 21.<|im_end|>\n"
     "<|im_start|>assistant\n"},
    {"llama-tools", "several_tool_calls", true, false,
     nullptr},
    {"qwen-tools", "several_tool_calls", false, true,
     "<|im_start|>system\n"
     "You are a helpful assistant.\n"
     "\n"
     "# Tools\n"
     "\n"
     "<tools>\n"
     "{\"function\": {\"description\": \"Get the weather\", \"name\": \"get_weather\", \"parameters\": {\"properties\": {\"city\": {\"type\": \"string\"}}, \"required\": [\"city\"], \"type\": \"object\"}}, \"type\": \"function\"}\n"
     "</tools><|im_end|>\n"
     "<|im_start|>user\n"
     "Weather in Paris, Rome and 東京?<|im_end|>\n"
     "<|im_start|>assistant\n"
     "<tool_call>\n"
     "{\"name\": \"get_weather\", \"arguments\": \"{\\\"city\\\": \\\"Paris\\\"}\"}\n"
     "</tool_call>\n"
     "<tool_call>\n"
     "{\"name\": \"get_weather\", \"arguments\": \"{\\\"city\\\": \\\"Rome\\\"}\"}\n"
     "</tool_call>\n"
     "<tool_call>\n"
     "{\"name\": \"get_weather\", \"arguments\": \"{\\\"city\\\": \\\"東京\\\"}\"}\n"
     "</tool_call><|im_end|>\n"
     "<|im_start|>user\n"
     "<tool_response>\n"
     "18\n"
     "</tool_response>\n"
     "<tool_response>\n"
     "24\n"
     "</tool_response>\n"
     "<tool_response>\n"
     "21\n"
     "</tool_response><|im_end|>\n"
     "<|im_start|>assistant\n"
     "Paris 18, Rome 24, Tokyo 21.<|im_end|>\n"},
    {"llama-tools", "several_tool_calls", false, true,
     nullptr},
    {"deepseek-v3", "two_tool_rounds", true, false,
     "<｜begin▁of▁sentence｜><｜User｜>Paris?<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n"
     "```json\n"
     "{\"city\": \"Paris\"}\n"
     "```<｜tool▁call▁end｜><｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>18<｜tool▁output▁end｜><｜tool▁outputs▁end｜>18 in Paris.<｜end▁of▁sentence｜><｜User｜>Rome?\n"
     "<｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n"
     "```json\n"
     "{\"city\": \"Rome\"}\n"
     "```<｜tool▁call▁end｜><｜tool▁calls▁end｜><｜end▁of▁sentence｜>\n"
     "<｜tool▁output▁begin｜>24<｜tool▁output▁end｜><｜tool▁outputs▁end｜>24 in Rome.<｜end▁of▁sentence｜><｜Assistant｜>"},
    {"deepseek-v3", "two_tool_rounds", false, false,
     "<｜begin▁of▁sentence｜><｜User｜>Paris?<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n"
     "```json\n"
     "{\"city\": \"Paris\"}\n"
     "```<｜tool▁call▁end｜><｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>18<｜tool▁output▁end｜><｜tool▁outputs▁end｜>18 in Paris.<｜end▁of▁sentence｜><｜User｜>Rome?\n"
     "<｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n"
     "```json\n"
     "{\"city\": \"Rome\"}\n"
     "```<｜tool▁call▁end｜><｜tool▁calls▁end｜><｜end▁of▁sentence｜>\n"
     "<｜tool▁output▁begin｜>24<｜tool▁output▁end｜><｜tool▁outputs▁end｜>24 in Rome.<｜end▁of▁sentence｜>"},
    {"deepseek-r1", "two_tool_rounds", true, false,
     "<｜begin▁of▁sentence｜><｜User｜>Paris?<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n"
     "```json\n"
     "{\"city\": \"Paris\"}\n"
     "```<｜tool▁call▁end｜><｜tool▁calls▁end｜><｜end▁of▁sentence｜><｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>18<｜tool▁output▁end｜><｜tool▁outputs▁end｜>18 in Paris.<｜end▁of▁sentence｜><｜User｜>Rome?\n"
     "<｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n"
     "```json\n"
     "{\"city\": \"Rome\"}\n"
     "```<｜tool▁call▁end｜><｜tool▁calls▁end｜><｜end▁of▁sentence｜><｜tool▁output▁begin｜>24<｜tool▁output▁end｜><｜tool▁outputs▁end｜>24 in Rome.<｜end▁of▁sentence｜><｜Assistant｜><think>\n"},
    {"deepseek-r1", "two_tool_rounds", false, false,
     "<｜begin▁of▁sentence｜><｜User｜>Paris?<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n"
     "```json\n"
     "{\"city\": \"Paris\"}\n"
     "```<｜tool▁call▁end｜><｜tool▁calls▁end｜><｜end▁of▁sentence｜><｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>18<｜tool▁output▁end｜><｜tool▁outputs▁end｜>18 in Paris.<｜end▁of▁sentence｜><｜User｜>Rome?\n"
     "<｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n"
     "```json\n"
     "{\"city\": \"Rome\"}\n"
     "```<｜tool▁call▁end｜><｜tool▁calls▁end｜><｜end▁of▁sentence｜><｜tool▁output▁begin｜>24<｜tool▁output▁end｜><｜tool▁outputs▁end｜>24 in Rome.<｜end▁of▁sentence｜>"},
    {"v2", "two_tool_rounds", true, false,
     nullptr},
    {"v2.5", "two_tool_rounds", true, false,
     "<｜begin▁of▁sentence｜><｜User｜>Paris?<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n"
     "```json\n"
     "{\"city\": \"Paris\"}\n"
     "```<｜tool▁call▁end｜><｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>18<｜tool▁output▁end｜><｜tool▁outputs▁end｜>18 in Paris.<｜end▁of▁sentence｜><｜User｜>Rome?\n"
     "<｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n"
     "```json\n"
     "{\"city\": \"Rome\"}\n"
     "```<｜tool▁call▁end｜><｜tool▁calls▁end｜><｜end▁of▁sentence｜>\n"
     "<｜tool▁output▁begin｜>24<｜tool▁output▁end｜><｜tool▁outputs▁end｜>24 in Rome.<｜end▁of▁sentence｜><｜Assistant｜>"},
    {"r1-distill", "two_tool_rounds", true, false,
     "<｜begin▁of▁sentence｜><｜User｜>Paris?<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n"
     "```json\n"
     "{\"city\": \"Paris\"}\n"
     "```<｜tool▁call▁end｜><｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>18<｜tool▁output▁end｜><｜tool▁outputs▁end｜>18 in Paris.<｜end▁of▁sentence｜><｜User｜>Rome?\n"
     "<｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n"
     "```json\n"
     "{\"city\": \"Rome\"}\n"
     "```<｜tool▁call▁end｜><｜tool▁calls▁end｜><｜end▁of▁sentence｜>\n"
     "<｜tool▁output▁begin｜>24<｜tool▁output▁end｜><｜tool▁outputs▁end｜>24 in Rome.<｜end▁of▁sentence｜><｜Assistant｜><think>\n"},
    {"qwen-tools", "two_tool_rounds", true, false,
     "<|im_start|>system\n"
     "You are a helpful assistant.<|im_end|>\n"
     "<|im_start|>user\n"
     "Paris?<|im_end|>\n"
     "<|im_start|>assistant\n"
     "<tool_call>\n"
     "{\"name\": \"get_weather\", \"arguments\": \"{\\\"city\\\": \\\"Paris\\\"}\"}\n"
     "</tool_call><|im_end|>\n"
     "<|im_start|>user\n"
     "<tool_response>\n"
     "18\n"
     "</tool_response><|im_end|>\n"
     "<|im_start|>assistant\n"
     "18 in Paris.<|im_end|>\n"
     "<|im_start|>user\n"
     "Rome?<|im_end|>\n"
     "<|im_start|>assistant\n"
     "<tool_call>\n"
     "{\"name\": \"get_weather\", \"arguments\": \"{\\\"city\\\": \\\"Rome\\\"}\"}\n"
     "</tool_call><|im_end|>\n"
     "<|im_start|>user\n"
     "<tool_response>\n"
     "24\n"
     "</tool_response><|im_end|>\n"
     "<|im_start|>assistant\n"
     "24 in Rome.<|im_end|>\n"
     "<|im_start|>assistant\n"},
    {"llama-tools", "two_tool_rounds", true, false,
     "<｜begin▁of▁sentence｜><|start_header_id|>system<|end_header_id|>\n"
     "\n"
     "Cutting Knowledge Date: December 2023\n"
     "Today Date: 26 Jul 2024\n"
     "\n"
     "<|eot_id|><|start_header_id|>user<|end_header_id|>\n"
     "\n"
     "Paris?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n"
     "\n"
     "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}<|eot_id|><|start_header_id|>ipython<|end_header_id|>\n"
     "\n"
     "\"18\"<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n"
     "\n"
     "18 in Paris.<|eot_id|><|start_header_id|>user<|end_header_id|>\n"
     "\n"
     "Rome?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n"
     "\n"
     "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Rome\"}}<|eot_id|><|start_header_id|>ipython<|end_header_id|>\n"
     "\n"
     "\"24\"<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n"
     "\n"
     "24 in Rome.<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n"
     "\n"},
    {"deepseek-v3", "ends_with_tool_output", true, false,
     "<｜begin▁of▁sentence｜><｜User｜>Search it<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>search\n"
     "```json\n"
     "{\"q\": \"jinja \\\"quotes\\\"\\n\"}\n"
     "```<｜tool▁call▁end｜><｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>result A<｜tool▁output▁end｜>\n"
     "<｜tool▁output▁begin｜>result B<｜tool▁output▁end｜><｜tool▁outputs▁end｜>"},
    {"deepseek-v3", "ends_with_tool_output", false, false,
     "<｜begin▁of▁sentence｜><｜User｜>Search it<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>search\n"
     "```json\n"
     "{\"q\": \"jinja \\\"quotes\\\"\\n\"}\n"
     "```<｜tool▁call▁end｜><｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>result A<｜tool▁output▁end｜>\n"
     "<｜tool▁output▁begin｜>result B<｜tool▁output▁end｜><｜tool▁outputs▁end｜>"},
    {"deepseek-r1", "ends_with_tool_output", true, false,
     "<｜begin▁of▁sentence｜><｜User｜>Search it<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>search\n"
     "```json\n"
     "{\"q\": \"jinja \\\"quotes\\\"\\n\"}\n"
     "```<｜tool▁call▁end｜><｜tool▁calls▁end｜><｜end▁of▁sentence｜><｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>result A<｜tool▁output▁end｜><｜tool▁output▁begin｜>result B<｜tool▁output▁end｜><｜tool▁outputs▁end｜>"},
    {"deepseek-r1", "ends_with_tool_output", false, false,
     "<｜begin▁of▁sentence｜><｜User｜>Search it<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>search\n"
     "```json\n"
     "{\"q\": \"jinja \\\"quotes\\\"\\n\"}\n"
     "```<｜tool▁call▁end｜><｜tool▁calls▁end｜><｜end▁of▁sentence｜><｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>result A<｜tool▁output▁end｜><｜tool▁output▁begin｜>result B<｜tool▁output▁end｜><｜tool▁outputs▁end｜>"},
    {"v2", "ends_with_tool_output", true, false,
     nullptr},
    {"v2.5", "ends_with_tool_output", true, false,
     "<｜begin▁of▁sentence｜><｜User｜>Search it<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>search\n"
     "```json\n"
     "{\"q\": \"jinja \\\"quotes\\\"\\n\"}\n"
     "```<｜tool▁call▁end｜><｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>result A<｜tool▁output▁end｜>\n"
     "<｜tool▁output▁begin｜>result B<｜tool▁output▁end｜><｜tool▁outputs▁end｜>"},
    {"r1-distill", "ends_with_tool_output", true, false,
     "<｜begin▁of▁sentence｜><｜User｜>Search it<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>search\n"
     "```json\n"
     "{\"q\": \"jinja \\\"quotes\\\"\\n\"}\n"
     "```<｜tool▁call▁end｜><｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>result A<｜tool▁output▁end｜>\n"
     "<｜tool▁output▁begin｜>result B<｜tool▁output▁end｜><｜tool▁outputs▁end｜>"},
    {"qwen-tools", "ends_with_tool_output", true, false,
     "<|im_start|>system\n"
     "You are a helpful assistant.<|im_end|>\n"
     "<|im_start|>user\n"
     "Search it<|im_end|>\n"
     "<|im_start|>assistant\n"
     "<tool_call>\n"
     "{\"name\": \"search\", \"arguments\": \"{\\\"q\\\": \\\"jinja \\\\\\\"quotes\\\\\\\"\\\\n\\\"}\"}\n"
     "</tool_call><|im_end|>\n"
     "<|im_start|>user\n"
     "<tool_response>\n"
     "result A\n"
     "</tool_response>\n"
     "<tool_response>\n"
     "result B\n"
     "</tool_response><|im_end|>\n"
     "<|im_start|>assistant\n"},
    {"llama-tools", "ends_with_tool_output", true, false,
     "<｜begin▁of▁sentence｜><|start_header_id|>system<|end_header_id|>\n"
     "\n"
     "Cutting Knowledge Date: December 2023\n"
     "Today Date: 26 Jul 2024\n"
     "\n"
     "<|eot_id|><|start_header_id|>user<|end_header_id|>\n"
     "\n"
     "Search it<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n"
     "\n"
     "{\"name\": \"search\", \"parameters\": {\"q\": \"jinja \\\"quotes\\\"\\n\"}}<|eot_id|><|start_header_id|>ipython<|end_header_id|>\n"
     "\n"
     "\"result A\"<|eot_id|><|start_header_id|>ipython<|end_header_id|>\n"
     "\n"
     "\"result B\"<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n"
     "\n"},
    {"deepseek-v3", "content_with_tool_calls", true, false,
     "<｜begin▁of▁sentence｜><｜User｜>Compute<｜Assistant｜><think>need calc</think>Let me compute.<｜end▁of▁sentence｜><｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>42<｜tool▁output▁end｜>\n"
     "<｜tool▁output▁begin｜>error<｜tool▁output▁end｜><｜tool▁outputs▁end｜>6*7 = 42.<｜end▁of▁sentence｜><｜Assistant｜>"},
    {"deepseek-v3", "content_with_tool_calls", false, false,
     "<｜begin▁of▁sentence｜><｜User｜>Compute<｜Assistant｜><think>need calc</think>Let me compute.<｜end▁of▁sentence｜><｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>42<｜tool▁output▁end｜>\n"
     "<｜tool▁output▁begin｜>error<｜tool▁output▁end｜><｜tool▁outputs▁end｜>6*7 = 42.<｜end▁of▁sentence｜>"},
    {"deepseek-r1", "content_with_tool_calls", true, false,
     "<｜begin▁of▁sentence｜><｜User｜>Compute<｜Assistant｜><think>need calc</think>Let me compute.<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>calc\n"
     "```json\n"
     "{\"expr\": \"6*7\"}\n"
     "```<｜tool▁call▁end｜>\n"
     "<｜tool▁call▁begin｜>function<｜tool▁sep｜>calc\n"
     "```json\n"
     "{\"expr\": \"1/0\"}\n"
     "```<｜tool▁call▁end｜><｜tool▁calls▁end｜><｜end▁of▁sentence｜><｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>42<｜tool▁output▁end｜><｜tool▁output▁begin｜>error<｜tool▁output▁end｜><｜tool▁outputs▁end｜>6*7 = 42.<｜end▁of▁sentence｜><｜Assistant｜><think>\n"},
    {"deepseek-r1", "content_with_tool_calls", false, false,
     "<｜begin▁of▁sentence｜><｜User｜>Compute<｜Assistant｜><think>need calc</think>Let me compute.<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>calc\n"
     "```json\n"
     "{\"expr\": \"6*7\"}\n"
     "```<｜tool▁call▁end｜>\n"
     "<｜tool▁call▁begin｜>function<｜tool▁sep｜>calc\n"
     "```json\n"
     "{\"expr\": \"1/0\"}\n"
     "```<｜tool▁call▁end｜><｜tool▁calls▁end｜><｜end▁of▁sentence｜><｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>42<｜tool▁output▁end｜><｜tool▁output▁begin｜>error<｜tool▁output▁end｜><｜tool▁outputs▁end｜>6*7 = 42.<｜end▁of▁sentence｜>"},
    {"v2", "content_with_tool_calls", true, false,
     "<｜begin▁of▁sentence｜>User: Compute\n"
     "\n"
     "Assistant: <think>need calc</think>Let me compute.<｜end▁of▁sentence｜>Assistant: 6*7 = 42.<｜end▁of▁sentence｜>Assistant:"},
    {"v2.5", "content_with_tool_calls", true, false,
     "<｜begin▁of▁sentence｜><｜User｜>Compute<｜Assistant｜><think>need calc</think>Let me compute.<｜end▁of▁sentence｜><｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>42<｜tool▁output▁end｜>\n"
     "<｜tool▁output▁begin｜>error<｜tool▁output▁end｜><｜tool▁outputs▁end｜>6*7 = 42.<｜end▁of▁sentence｜><｜Assistant｜>"},
    {"r1-distill", "content_with_tool_calls", true, false,
     "<｜begin▁of▁sentence｜><｜User｜>Compute<｜Assistant｜>Let me compute.<｜end▁of▁sentence｜><｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>42<｜tool▁output▁end｜>\n"
     "<｜tool▁output▁begin｜>error<｜tool▁output▁end｜><｜tool▁outputs▁end｜>6*7 = 42.<｜end▁of▁sentence｜><｜Assistant｜><think>\n"},
    {"qwen-tools", "content_with_tool_calls", true, false,
     "<|im_start|>system\n"
     "You are a helpful assistant.<|im_end|>\n"
     "<|im_start|>user\n"
     "Compute<|im_end|>\n"
     "<|im_start|>assistant\n"
     "<think>need calc</think>Let me compute.\n"
     "<tool_call>\n"
     "{\"name\": \"calc\", \"arguments\": \"{\\\"expr\\\": \\\"6*7\\\"}\"}\n"
     "</tool_call>\n"
     "<tool_call>\n"
     "{\"name\": \"calc\", \"arguments\": \"{\\\"expr\\\": \\\"1/0\\\"}\"}\n"
     "</tool_call><|im_end|>\n"
     "<|im_start|>user\n"
     "<tool_response>\n"
     "42\n"
     "</tool_response>\n"
     "<tool_response>\n"
     "error\n"
     "</tool_response><|im_end|>\n"
     "<|im_start|>assistant\n"
     "6*7 = 42.<|im_end|>\n"
     "<|im_start|>assistant\n"},
    {"llama-tools", "content_with_tool_calls", true, false,
     nullptr},
    {"deepseek-v3", "special_text", true, false,
     "<｜begin▁of▁sentence｜><｜User｜>Repeat: <｜Assistant｜> and {{ x }} {% raw %} \\n<｜Assistant｜>Tabs\tand\r\n"
     "CRLF and emoji 😀 and \u2028 sep<｜end▁of▁sentence｜><｜User｜>  leading and trailing spaces  \n"
     "\n"
     "<｜Assistant｜>"},
    {"deepseek-v3", "special_text", false, false,
     "<｜begin▁of▁sentence｜><｜User｜>Repeat: <｜Assistant｜> and {{ x }} {% raw %} \\n<｜Assistant｜>Tabs\tand\r\n"
     "CRLF and emoji 😀 and \u2028 sep<｜end▁of▁sentence｜><｜User｜>  leading and trailing spaces  \n"
     "\n"},
    {"deepseek-r1", "special_text", true, false,
     "<｜begin▁of▁sentence｜><｜User｜>Repeat: <｜Assistant｜> and {{ x }} {% raw %} \\n<｜Assistant｜>Tabs\tand\r\n"
     "CRLF and emoji 😀 and \u2028 sep<｜end▁of▁sentence｜><｜User｜>  leading and trailing spaces  \n"
     "\n"
     "<｜Assistant｜><think>\n"},
    {"deepseek-r1", "special_text", false, false,
     "<｜begin▁of▁sentence｜><｜User｜>Repeat: <｜Assistant｜> and {{ x }} {% raw %} \\n<｜Assistant｜>Tabs\tand\r\n"
     "CRLF and emoji 😀 and \u2028 sep<｜end▁of▁sentence｜><｜User｜>  leading and trailing spaces  \n"
     "\n"},
    {"v2", "special_text", true, false,
     "<｜begin▁of▁sentence｜>User: Repeat: <｜Assistant｜> and {{ x }} {% raw %} \\n\n"
     "\n"
     "Assistant: Tabs\tand\r\n"
     "CRLF and emoji 😀 and \u2028 sep<｜end▁of▁sentence｜>User:   leading and trailing spaces  \n"
     "\n"
     "\n"
     "\n"
     "Assistant:"},
    {"v2.5", "special_text", true, false,
     "<｜begin▁of▁sentence｜><｜User｜>Repeat: <｜Assistant｜> and {{ x }} {% raw %} \\n<｜Assistant｜>Tabs\tand\r\n"
     "CRLF and emoji 😀 and \u2028 sep<｜end▁of▁sentence｜><｜User｜>  leading and trailing spaces  \n"
     "\n"
     "<｜Assistant｜>"},
    {"r1-distill", "special_text", true, false,
     "<｜begin▁of▁sentence｜><｜User｜>Repeat: <｜Assistant｜> and {{ x }} {% raw %} \\n<｜Assistant｜>Tabs\tand\r\n"
     "CRLF and emoji 😀 and \u2028 sep<｜end▁of▁sentence｜><｜User｜>  leading and trailing spaces  \n"
     "\n"
     "<｜Assistant｜><think>\n"},
    {"qwen-tools", "special_text", true, false,
     "<|im_start|>system\n"
     "You are a helpful assistant.<|im_end|>\n"
     "<|im_start|>user\n"
     "Repeat: <｜Assistant｜> and {{ x }} {% raw %} \\n<|im_end|>\n"
     "<|im_start|>assistant\n"
     "Tabs\tand\r\n"
     "CRLF and emoji 😀 and \u2028 sep<|im_end|>\n"
     "<|im_start|>user\n"
     "  leading and trailing spaces  \n"
     "\n"
     "<|im_end|>\n"
     "<|im_start|>assistant\n"},
    {"llama-tools", "special_text", true, false,
     "<｜begin▁of▁sentence｜><|start_header_id|>system<|end_header_id|>\n"
     "\n"
     "Cutting Knowledge Date: December 2023\n"
     "Today Date: 26 Jul 2024\n"
     "\n"
     "<|eot_id|><|start_header_id|>user<|end_header_id|>\n"
     "\n"
     "Repeat: <｜Assistant｜> and {{ x }} {% raw %} \\n<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n"
     "\n"
     "Tabs\tand\r\n"
     "CRLF and emoji 😀 and \u2028 sep<|eot_id|><|start_header_id|>user<|end_header_id|>\n"
     "\n"
     "leading and trailing spaces<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n"
     "\n"},
    {"deepseek-v3", "tool_message_first", true, false,
     "<｜begin▁of▁sentence｜><｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>orphan output<｜tool▁output▁end｜><｜User｜>hi<｜Assistant｜>"},
    {"deepseek-v3", "tool_message_first", false, false,
     "<｜begin▁of▁sentence｜><｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>orphan output<｜tool▁output▁end｜><｜User｜>hi"},
    {"deepseek-r1", "tool_message_first", true, false,
     "<｜begin▁of▁sentence｜><｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>orphan output<｜tool▁output▁end｜><｜User｜>hi<｜Assistant｜><think>\n"},
    {"deepseek-r1", "tool_message_first", false, false,
     "<｜begin▁of▁sentence｜><｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>orphan output<｜tool▁output▁end｜><｜User｜>hi"},
    {"v2", "tool_message_first", true, false,
     "<｜begin▁of▁sentence｜>User: hi\n"
     "\n"
     "Assistant:"},
    {"v2.5", "tool_message_first", true, false,
     "<｜begin▁of▁sentence｜><｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>orphan output<｜tool▁output▁end｜><｜User｜>hi<｜Assistant｜>"},
    {"r1-distill", "tool_message_first", true, false,
     "<｜begin▁of▁sentence｜><｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>orphan output<｜tool▁output▁end｜><｜User｜>hi<｜Assistant｜><think>\n"},
    {"qwen-tools", "tool_message_first", true, false,
     "<|im_start|>system\n"
     "You are a helpful assistant.<|im_end|>\n"
     "<|im_start|>user\n"
     "<tool_response>\n"
     "orphan output\n"
     "</tool_response><|im_end|>\n"
     "<|im_start|>user\n"
     "hi<|im_end|>\n"
     "<|im_start|>assistant\n"},
    {"llama-tools", "tool_message_first", true, false,
     "<｜begin▁of▁sentence｜><|start_header_id|>system<|end_header_id|>\n"
     "\n"
     "Cutting Knowledge Date: December 2023\n"
     "Today Date: 26 Jul 2024\n"
     "\n"
     "<|eot_id|><|start_header_id|>ipython<|end_header_id|>\n"
     "\n"
     "\"orphan output\"<|eot_id|><|start_header_id|>user<|end_header_id|>\n"
     "\n"
     "hi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n"
     "\n"},
    {"deepseek-v3", "arguments_as_dict", true, false,
     nullptr},
    {"deepseek-v3", "arguments_as_dict", false, false,
     nullptr},
    {"deepseek-r1", "arguments_as_dict", true, false,
     nullptr},
    {"deepseek-r1", "arguments_as_dict", false, false,
     nullptr},
    {"v2", "arguments_as_dict", true, false,
     nullptr},
    {"v2.5", "arguments_as_dict", true, false,
     nullptr},
    {"r1-distill", "arguments_as_dict", true, false,
     nullptr},
    {"qwen-tools", "arguments_as_dict", true, false,
     "<|im_start|>system\n"
     "You are a helpful assistant.<|im_end|>\n"
     "<|im_start|>user\n"
     "x<|im_end|>\n"
     "<|im_start|>assistant\n"
     "<tool_call>\n"
     "{\"name\": \"f\", \"arguments\": {\"a\": 1}}\n"
     "</tool_call><|im_end|>\n"
     "<|im_start|>assistant\n"},
    {"llama-tools", "arguments_as_dict", true, false,
     "<｜begin▁of▁sentence｜><|start_header_id|>system<|end_header_id|>\n"
     "\n"
     "Cutting Knowledge Date: December 2023\n"
     "Today Date: 26 Jul 2024\n"
     "\n"
     "<|eot_id|><|start_header_id|>user<|end_header_id|>\n"
     "\n"
     "x<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n"
     "\n"
     "{\"name\": \"f\", \"parameters\": {'a': 1}}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n"
     "\n"},
};

const FuzzGolden kFuzzGolden[] = {
    {"deepseek-r1", true,
     R"json([{"content": "\r\nCRLF\r\n ", "role": "system"}])json",
     "<｜begin▁of▁sentence｜>\r\n"
     "CRLF\r\n"
     " <｜Assistant｜><think>\n"},
    {"deepseek-r1", false,
     R"json([{"content": "\u4f60\u597d\uff0c\u4e16\u754c", "role": "system"}, {"content": null, "role": "assistant", "tool_calls": [{"function": {"arguments": "{\"q\": \"  padded  \", \"n\": 0}", "name": "get_weather"}, "id": "call_0", "type": "function"}]}, {"content": " ", "role": "system"}, {"content": "  padded  <think>only", "role": "system"}, {"content": "emoji \ud83d\ude00\ud83d\udc68\u200d\ud83d\udc69\u200d\ud83d\udc67<think>\nreason\n</think>\n\nanswer", "role": "assistant"}, {"content": "back\\slash", "role": "assistant"}, {"content": " a\nb", "role": "tool", "tool_call_id": "call_0"}])json",
     "<｜begin▁of▁sentence｜>你好，世界\n"
     "\n"
     " \n"
     "\n"
     "  padded  <think>only<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n"
     "```json\n"
     "{\"q\": \"  padded  \", \"n\": 0}\n"
     "```<｜tool▁call▁end｜><｜tool▁calls▁end｜><｜end▁of▁sentence｜><｜Assistant｜>\n"
     "\n"
     "answer<｜end▁of▁sentence｜><｜Assistant｜>back\\slash<｜end▁of▁sentence｜><｜tool▁outputs▁begin｜><｜tool▁output▁begin｜> a\n"
     "b<｜tool▁output▁end｜><｜tool▁outputs▁end｜>"},
    {"deepseek-v3", true,
     R"json([])json",
     "<｜begin▁of▁sentence｜><｜Assistant｜>"},
    {"deepseek-v3", true,
     R"json([{"content": "emoji \ud83d\ude00\ud83d\udc68\u200d\ud83d\udc69\u200d\ud83d\udc67", "role": "system"}, {"content": "a\nb", "role": "tool", "tool_call_id": "call_0"}, {"content": "{{ not jinja }}", "role": "assistant"}])json",
     "<｜begin▁of▁sentence｜>emoji 😀👨\u200d👩\u200d👧<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>a\n"
     "b<｜tool▁output▁end｜><｜tool▁outputs▁end｜>{{ not jinja }}<｜end▁of▁sentence｜><｜Assistant｜>"},
    {"deepseek-v3", true,
     R"json([{"content": "<\uff5cUser\uff5c>", "role": "system"}, {"content": "\r\nCRLF\r\n", "role": "assistant"}, {"content": "'quotes' \"dq\"", "role": "assistant"}, {"content": "\u4f60\u597d\uff0c\u4e16\u754c", "role": "assistant"}, {"content": "<think>only\u4f60\u597d\uff0c\u4e16\u754c", "role": "assistant", "tool_calls": [{"function": {"arguments": "{\"q\": \"\\n\", \"n\": 0}", "name": "search"}, "id": "call_0", "type": "function"}, {"function": {"arguments": "{\"q\": \"'quotes' \\\"dq\\\"\", \"n\": 1}", "name": "get_weather"}, "id": "call_1", "type": "function"}]}, {"content": null, "role": "assistant", "tool_calls": [{"function": {"arguments": "{\"q\": \"\\n\", \"n\": 0}", "name": "search"}, "id": "call_0", "type": "function"}]}, {"content": null, "role": "assistant", "tool_calls": [{"function": {"arguments": "{\"q\": \"Tab\\there\", \"n\": 0}", "name": "get_weather"}, "id": "call_0", "type": "function"}, {"function": {"arguments": "{\"q\": \" <think>\\nreason\\n</think>\\n\\nanswer\", \"n\": 1}", "name": "search"}, "id": "call_1", "type": "function"}]}])json",
     "<｜begin▁of▁sentence｜><｜User｜><｜Assistant｜>\r\n"
     "CRLF\r\n"
     "<｜end▁of▁sentence｜><｜Assistant｜>'quotes' \"dq\"<｜end▁of▁sentence｜><｜Assistant｜>你好，世界<｜end▁of▁sentence｜><｜Assistant｜><think>only你好，世界<｜end▁of▁sentence｜><｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>search\n"
     "```json\n"
     "{\"q\": \"\\n\", \"n\": 0}\n"
     "```<｜tool▁call▁end｜>\n"
     "<｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n"
     "```json\n"
     "{\"q\": \"Tab\\there\", \"n\": 0}\n"
     "```<｜tool▁call▁end｜><｜tool▁calls▁end｜><｜end▁of▁sentence｜>\n"
     "<｜tool▁call▁begin｜>function<｜tool▁sep｜>search\n"
     "```json\n"
     "{\"q\": \" <think>\\nreason\\n</think>\\n\\nanswer\", \"n\": 1}\n"
     "```<｜tool▁call▁end｜><｜tool▁calls▁end｜><｜end▁of▁sentence｜><｜Assistant｜>"},
    {"deepseek-v3", false,
     R"json([{"content": " ", "role": "assistant"}, {"content": "Tab\there", "role": "tool", "tool_call_id": "call_0"}, {"content": "\r\nCRLF\r\n ", "role": "assistant"}])json",
     "<｜begin▁of▁sentence｜><｜Assistant｜> <｜end▁of▁sentence｜><｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>Tab\there<｜tool▁output▁end｜><｜tool▁outputs▁end｜>\r\n"
     "CRLF\r\n"
     " <｜end▁of▁sentence｜>"},
    {"deepseek-r1", true,
     R"json([{"content": "", "role": "system"}, {"content": null, "role": "assistant", "tool_calls": [{"function": {"arguments": "{\"q\": \"{{ not jinja }}\", \"n\": 0}", "name": "get_weather"}, "id": "call_0", "type": "function"}]}])json",
     "<｜begin▁of▁sentence｜><｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n"
     "```json\n"
     "{\"q\": \"{{ not jinja }}\", \"n\": 0}\n"
     "```<｜tool▁call▁end｜><｜tool▁calls▁end｜><｜end▁of▁sentence｜><｜Assistant｜><think>\n"},
    {"deepseek-r1", false,
     R"json([{"content": "<think>only", "role": "assistant"}, {"content": "a\nb", "role": "assistant"}, {"content": "</think><\uff5cUser\uff5c>", "role": "system"}, {"content": null, "role": "assistant", "tool_calls": [{"function": {"arguments": "{\"q\": \"<\uff5cUser\uff5c><think>only\", \"n\": 0}", "name": "calc"}, "id": "call_0", "type": "function"}]}])json",
     "<｜begin▁of▁sentence｜></think><｜User｜><｜Assistant｜><think>only<｜end▁of▁sentence｜><｜Assistant｜>a\n"
     "b<｜end▁of▁sentence｜><｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>calc\n"
     "```json\n"
     "{\"q\": \"<｜User｜><think>only\", \"n\": 0}\n"
     "```<｜tool▁call▁end｜><｜tool▁calls▁end｜><｜end▁of▁sentence｜>"},
    {"deepseek-v3", false,
     R"json([{"content": null, "role": "assistant", "tool_calls": [{"function": {"arguments": "{\"q\": \"<\uff5cUser\uff5c>\", \"n\": 0}", "name": "get_weather"}, "id": "call_0", "type": "function"}, {"function": {"arguments": "{\"q\": \"'quotes' \\\"dq\\\"\", \"n\": 1}", "name": "get_weather"}, "id": "call_1", "type": "function"}]}, {"content": "'quotes' \"dq\"'quotes' \"dq\"", "role": "user"}, {"content": "\r\nCRLF\r\n", "role": "user"}, {"content": "<think>\nreason\n</think>\n\nanswer\r\nCRLF\r\n", "role": "assistant"}, {"content": "'quotes' \"dq\"", "role": "assistant"}])json",
     "<｜begin▁of▁sentence｜><｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n"
     "```json\n"
     "{\"q\": \"<｜User｜>\", \"n\": 0}\n"
     "```<｜tool▁call▁end｜>\n"
     "<｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n"
     "```json\n"
     "{\"q\": \"'quotes' \\\"dq\\\"\", \"n\": 1}\n"
     "```<｜tool▁call▁end｜><｜tool▁calls▁end｜><｜end▁of▁sentence｜><｜User｜>'quotes' \"dq\"'quotes' \"dq\"<｜User｜>\r\n"
     "CRLF\r\n"
     "<｜Assistant｜><think>\n"
     "reason\n"
     "</think>\n"
     "\n"
     "answer\r\n"
     "CRLF\r\n"
     "<｜end▁of▁sentence｜><｜Assistant｜>'quotes' \"dq\"<｜end▁of▁sentence｜>"},
    {"deepseek-v3", true,
     R"json([])json",
     "<｜begin▁of▁sentence｜><｜Assistant｜>"},
    {"deepseek-v3", true,
     R"json([{"content": "\r\nCRLF\r\n", "role": "tool", "tool_call_id": "call_0"}, {"content": "<think>only\r\nCRLF\r\n", "role": "user"}])json",
     "<｜begin▁of▁sentence｜><｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>\r\n"
     "CRLF\r\n"
     "<｜tool▁output▁end｜><｜User｜><think>only\r\n"
     "CRLF\r\n"
     "<｜Assistant｜>"},
    {"deepseek-r1", false,
     R"json([{"content": "</think>\u2028sep", "role": "assistant"}, {"content": "back\\slash", "role": "user"}, {"content": "</think>back\\slash", "role": "user"}])json",
     "<｜begin▁of▁sentence｜><｜Assistant｜>\u2028sep<｜end▁of▁sentence｜><｜User｜>back\\slash<｜User｜></think>back\\slash"},
    {"deepseek-v3", false,
     R"json([{"content": "Hello!", "role": "user"}, {"content": "", "role": "assistant"}, {"content": "Tab\there", "role": "assistant"}, {"content": "back\\slash", "role": "user"}])json",
     "<｜begin▁of▁sentence｜><｜User｜>Hello!<｜Assistant｜><｜end▁of▁sentence｜><｜Assistant｜>Tab\there<｜end▁of▁sentence｜><｜User｜>back\\slash"},
    {"deepseek-r1", true,
     R"json([{"content": "x</think>y</think>z", "role": "tool", "tool_call_id": "call_0"}, {"content": "Hello!", "role": "system"}, {"content": "\r\nCRLF\r\n'quotes' \"dq\"", "role": "user"}, {"content": "a\nb", "role": "assistant"}, {"content": " x</think>y</think>z", "role": "assistant"}, {"content": "back\\slash", "role": "assistant"}, {"content": "<\uff5cUser\uff5c>", "role": "assistant"}])json",
     "<｜begin▁of▁sentence｜>Hello!<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>x</think>y</think>z<｜tool▁output▁end｜><｜User｜>\r\n"
     "CRLF\r\n"
     "'quotes' \"dq\"<｜Assistant｜>a\n"
     "b<｜end▁of▁sentence｜><｜Assistant｜>z<｜end▁of▁sentence｜><｜Assistant｜>back\\slash<｜end▁of▁sentence｜><｜Assistant｜><｜User｜><｜end▁of▁sentence｜><｜Assistant｜><think>\n"},
    {"deepseek-r1", true,
     R"json([])json",
     "<｜begin▁of▁sentence｜><｜Assistant｜><think>\n"},
    {"deepseek-v3", true,
     R"json([{"content": "back\\slash", "role": "user"}, {"content": "'quotes' \"dq\"", "role": "user"}, {"content": " ", "role": "system"}])json",
     "<｜begin▁of▁sentence｜> <｜User｜>back\\slash<｜User｜>'quotes' \"dq\"<｜Assistant｜>"},
    {"deepseek-r1", false,
     R"json([{"content": "Hello!", "role": "assistant"}, {"content": "emoji \ud83d\ude00\ud83d\udc68\u200d\ud83d\udc69\u200d\ud83d\udc67", "role": "user"}, {"content": "Hello!<think>\nreason\n</think>\n\nanswer", "role": "system"}])json",
     "<｜begin▁of▁sentence｜>Hello!<think>\n"
     "reason\n"
     "</think>\n"
     "\n"
     "answer<｜Assistant｜>Hello!<｜end▁of▁sentence｜><｜User｜>emoji 😀👨\u200d👩\u200d👧"},
    {"deepseek-v3", false,
     R"json([{"content": "</think>", "role": "assistant"}, {"content": "\u2028sep", "role": "system"}])json",
     "<｜begin▁of▁sentence｜>\u2028sep<｜Assistant｜></think><｜end▁of▁sentence｜>"},
    {"deepseek-r1", false,
     R"json([{"content": null, "role": "assistant", "tool_calls": [{"function": {"arguments": "{\"q\": \"\\r\\nCRLF\\r\\n\", \"n\": 0}", "name": "search"}, "id": "call_0", "type": "function"}]}, {"content": "\u2028sep<think>\nreason\n</think>\n\nanswer", "role": "system"}, {"content": "\r\nCRLF\r\n", "role": "assistant"}, {"content": "<think>only", "role": "user"}, {"content": "\u4f60\u597d\uff0c\u4e16\u754c", "role": "tool", "tool_call_id": "call_0"}, {"content": "Hello!", "role": "tool", "tool_call_id": "call_0"}])json",
     "<｜begin▁of▁sentence｜>\u2028sep<think>\n"
     "reason\n"
     "</think>\n"
     "\n"
     "answer<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>search\n"
     "```json\n"
     "{\"q\": \"\\r\\nCRLF\\r\\n\", \"n\": 0}\n"
     "```<｜tool▁call▁end｜><｜tool▁calls▁end｜><｜end▁of▁sentence｜><｜Assistant｜>\r\n"
     "CRLF\r\n"
     "<｜end▁of▁sentence｜><｜User｜><think>only<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>你好，世界<｜tool▁output▁end｜><｜tool▁output▁begin｜>Hello!<｜tool▁output▁end｜><｜tool▁outputs▁end｜>"},
    {"deepseek-v3", false,
     R"json([{"content": "\u4f60\u597d\uff0c\u4e16\u754c", "role": "user"}, {"content": "{{ not jinja }}", "role": "assistant"}, {"content": null, "role": "assistant", "tool_calls": [{"function": {"arguments": "{\"q\": \"{% raw %}\", \"n\": 0}", "name": "calc"}, "id": "call_0", "type": "function"}, {"function": {"arguments": "{\"q\": \"emoji \ud83d\ude00\ud83d\udc68\u200d\ud83d\udc69\u200d\ud83d\udc67\", \"n\": 1}", "name": "calc"}, "id": "call_1", "type": "function"}]}, {"content": "back\\slash", "role": "assistant"}, {"content": null, "role": "assistant", "tool_calls": [{"function": {"arguments": "{\"q\": \"\\n\", \"n\": 0}", "name": "search"}, "id": "call_0", "type": "function"}, {"function": {"arguments": "{\"q\": \"</think> \", \"n\": 1}", "name": "get_weather"}, "id": "call_1", "type": "function"}]}, {"content": "<think>only", "role": "user"}, {"content": "  padded  ", "role": "user"}])json",
     "<｜begin▁of▁sentence｜><｜User｜>你好，世界<｜Assistant｜>{{ not jinja }}<｜end▁of▁sentence｜><｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>calc\n"
     "```json\n"
     "{\"q\": \"{% raw %}\", \"n\": 0}\n"
     "```<｜tool▁call▁end｜>\n"
     "<｜tool▁call▁begin｜>function<｜tool▁sep｜>calc\n"
     "```json\n"
     "{\"q\": \"emoji 😀👨\u200d👩\u200d👧\", \"n\": 1}\n"
     "```<｜tool▁call▁end｜><｜tool▁calls▁end｜><｜end▁of▁sentence｜><｜Assistant｜>back\\slash<｜end▁of▁sentence｜>\n"
     "<｜tool▁call▁begin｜>function<｜tool▁sep｜>search\n"
     "```json\n"
     "{\"q\": \"\\n\", \"n\": 0}\n"
     "```<｜tool▁call▁end｜><｜tool▁calls▁end｜><｜end▁of▁sentence｜>\n"
     "<｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n"
     "```json\n"
     "{\"q\": \"</think> \", \"n\": 1}\n"
     "```<｜tool▁call▁end｜><｜tool▁calls▁end｜><｜end▁of▁sentence｜><｜User｜><think>only<｜User｜>  padded  "},
    {"deepseek-r1", true,
     R"json([{"content": "back\\slash{% raw %}", "role": "tool", "tool_call_id": "call_0"}, {"content": "<think>\nreason\n</think>\n\nanswerTab\there", "role": "system"}, {"content": "</think>", "role": "user"}, {"content": "Hello!Tab\there", "role": "user"}, {"content": "</think>", "role": "assistant"}])json",
     "<｜begin▁of▁sentence｜><think>\n"
     "reason\n"
     "</think>\n"
     "\n"
     "answerTab\there<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>back\\slash{% raw %}<｜tool▁output▁end｜><｜User｜></think><｜User｜>Hello!Tab\there<｜Assistant｜><｜end▁of▁sentence｜><｜Assistant｜><think>\n"},
    {"deepseek-r1", false,
     R"json([{"content": "<\uff5cUser\uff5c>\u2028sep", "role": "user"}, {"content": "<think>only", "role": "assistant"}])json",
     "<｜begin▁of▁sentence｜><｜User｜><｜User｜>\u2028sep<｜Assistant｜><think>only<｜end▁of▁sentence｜>"},
    {"deepseek-v3", true,
     R"json([{"content": "\u2028sep", "role": "assistant", "tool_calls": [{"function": {"arguments": "{\"q\": \"back\\\\slash\", \"n\": 0}", "name": "search"}, "id": "call_0", "type": "function"}, {"function": {"arguments": "{\"q\": \"</think>\", \"n\": 1}", "name": "calc"}, "id": "call_1", "type": "function"}]}, {"content": "</think>", "role": "user"}])json",
     "<｜begin▁of▁sentence｜><｜Assistant｜>\u2028sep<｜end▁of▁sentence｜><｜User｜></think><｜Assistant｜>"},
    {"deepseek-r1", true,
     R"json([{"content": "{{ not jinja }}x</think>y</think>z", "role": "tool", "tool_call_id": "call_0"}, {"content": "  padded  ", "role": "assistant"}])json",
     "<｜begin▁of▁sentence｜><｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>{{ not jinja }}x</think>y</think>z<｜tool▁output▁end｜><｜tool▁outputs▁end｜>  padded  <｜end▁of▁sentence｜><｜Assistant｜><think>\n"},
    {"deepseek-r1", true,
     R"json([{"content": "{{ not jinja }}", "role": "user"}, {"content": "Tab\there{% raw %}", "role": "assistant"}])json",
     "<｜begin▁of▁sentence｜><｜User｜>{{ not jinja }}<｜Assistant｜>Tab\there{% raw %}<｜end▁of▁sentence｜><｜Assistant｜><think>\n"},
};
// clang-format on

json read_json(const std::string& path) {
  std::ifstream f(path);
  EXPECT_TRUE(f.good()) << path;
  return json::parse(f);
}

const json& config(const std::string& tokenizer) {
  static std::map<std::string, json> cache;
  auto it = cache.find(tokenizer);
  if (it == cache.end())
    it = cache.emplace(tokenizer, read_json(kFixtures + "/" + tokenizer + "/tokenizer_config.json")).first;
  return it->second;
}

// bos/eos/pad as transformers' special_tokens_map passes them to the template (strings).
json special_tokens(const std::string& tokenizer) {
  const json& cfg = config(tokenizer);
  json extra = json::object();
  for (const char* key : {"bos_token", "eos_token", "pad_token"})
    extra[key] = qs::special_token_content(cfg.value(key, json()));
  return extra;
}

std::string template_by_id(const std::string& id) {
  if (id == "deepseek-v3" || id == "deepseek-r1") return config(id)["chat_template"].get<std::string>();
  if (id == "v2") return kTemplateV2;
  if (id == "v2.5") return kTemplateV25;
  if (id == "r1-distill") return kTemplateR1Distill;
  if (id == "qwen-tools") return kTemplateQwenTools;
  if (id == "llama-tools") return kTemplateLlamaTools;
  ADD_FAILURE() << "unknown template id " << id;
  return "";
}

const qs::Tokenizer& tokenizer(const std::string& name) {
  static std::map<std::string, qs::Tokenizer> cache;
  auto it = cache.find(name);
  if (it == cache.end()) it = cache.emplace(name, qs::Tokenizer::load(kFixtures + "/" + name)).first;
  return it->second;
}

TEST(ChatTemplate, SpecialTokenContent) {
  EXPECT_EQ(qs::special_token_content(config("deepseek-v3")["bos_token"]), "<｜begin▁of▁sentence｜>");
  EXPECT_EQ(qs::special_token_content(config("deepseek-r1")["eos_token"]), "<｜end▁of▁sentence｜>");
  EXPECT_EQ(qs::special_token_content(json()), "");
  EXPECT_EQ(qs::special_token_content(json{{"content", "<s>"}, {"lstrip", false}}), "<s>");
}

TEST(ChatTemplate, FixtureCasesRenderByteForByteAndTokenize) {
  const json cases = read_json(kFixtures + "/chat_cases.json");
  ASSERT_EQ(cases.size(), 21u);
  std::map<std::string, qs::ChatTemplate> compiled;
  for (size_t i = 0; i < cases.size(); ++i) {
    const json& c = cases[i];
    const std::string tok = c["tokenizer"];
    SCOPED_TRACE("chat case " + std::to_string(i) + " (" + tok + ") " + c["messages"].dump().substr(0, 120));
    const std::string src = config(tok)["chat_template"];
    const bool gen = c["add_generation_prompt"];
    const std::string expected = c["rendered"];
    std::string rendered = qs::render_chat(src, c["messages"], gen, special_tokens(tok));
    EXPECT_EQ(rendered, expected);
    if (!compiled.count(tok)) compiled.emplace(tok, qs::ChatTemplate::compile(src));
    EXPECT_EQ(compiled.at(tok).render(c["messages"], gen, special_tokens(tok)), expected);
    EXPECT_EQ(tokenizer(tok).encode(rendered, false), c["ids"].get<std::vector<int32_t>>());
  }
}

TEST(ChatTemplate, GoldenConversationsMatchPythonJinja2) {
  std::map<std::string, json> scenarios;
  for (const Scenario& s : kScenarios) scenarios[s.name] = json::parse(s.messages);
  int rendered = 0, errors = 0;
  for (const ChatGolden& g : kChatGolden) {
    SCOPED_TRACE(std::string(g.tmpl) + " / " + g.scenario + (g.add_generation_prompt ? " +gen" : "") +
                 (g.with_tools ? " +tools" : ""));
    json extra = special_tokens("deepseek-v3");
    if (g.with_tools) extra["tools"] = json::parse(kToolsJson);
    const std::string src = template_by_id(g.tmpl);
    const json& messages = scenarios.at(g.scenario);
    if (g.expected) {
      try {
        EXPECT_EQ(qs::render_chat(src, messages, g.add_generation_prompt, extra), g.expected);
      } catch (const qs::Error& e) {
        ADD_FAILURE() << "threw: " << e.what();
      }
      ++rendered;
    } else {
      EXPECT_THROW(qs::render_chat(src, messages, g.add_generation_prompt, extra), qs::Error);
      ++errors;
    }
  }
  EXPECT_GT(rendered, 100);
  EXPECT_GT(errors, 5);
}

TEST(ChatTemplate, RandomConversationsMatchPythonJinja2) {
  for (const FuzzGolden& g : kFuzzGolden) {
    SCOPED_TRACE(std::string(g.tmpl) + " " + g.messages);
    EXPECT_EQ(qs::render_chat(template_by_id(g.tmpl), json::parse(g.messages), g.add_generation_prompt,
                              special_tokens(g.tmpl)),
              g.expected);
  }
}

TEST(ChatTemplate, RaiseExceptionBecomesQsErrorWithTheMessage) {
  const std::string src =
      "{% for m in messages %}{% if (m['role'] == 'user') != (loop.index0 % 2 == 0) %}"
      "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
      "{% endif %}{{ m['content'] }}{% endfor %}";
  json ok = json::array({{{"role", "user"}, {"content", "a"}}, {{"role", "assistant"}, {"content", "b"}}});
  EXPECT_EQ(qs::render_chat(src, ok, false, json::object()), "ab");
  json bad = json::array({{{"role", "assistant"}, {"content", "a"}}});
  try {
    qs::render_chat(src, bad, false, json::object());
    ADD_FAILURE() << "no exception";
  } catch (const qs::Error& e) {
    EXPECT_STREQ(e.what(), "Conversation roles must alternate user/assistant/user/assistant/...");
  }
}

TEST(ChatTemplate, ContextVariables) {
  const std::string src =
      "{{ add_generation_prompt }}|{{ tools is none }}|{{ documents is none }}|{{ bos_token }}|"
      "{{ custom|default('-') }}|{{ messages|length }}";
  json msgs = json::array({{{"role", "user"}, {"content", "x"}}});
  EXPECT_EQ(qs::render_chat(src, msgs, true, {{"bos_token", "<s>"}}), "True|True|True|<s>|-|1");
  EXPECT_EQ(qs::render_chat(src, msgs, false, {{"custom", 7}, {"tools", json::array()}}), "False|False|True||7|1");
  EXPECT_EQ(qs::render_chat(src, msgs, false, nullptr), "False|True|True||-|1");
  EXPECT_THROW(qs::render_chat(src, json::object(), false, nullptr), qs::Error);
  EXPECT_EQ(qs::ChatTemplate().render(msgs, true, nullptr), "");
}

TEST(ChatTemplate, RenderOrderedKeepsKeyOrder) {
  auto t = qs::ChatTemplate::compile("{{ tools[0]|tojson }}|{% for k in messages[0] %}{{ k }},{% endfor %}");
  auto msgs = nlohmann::ordered_json::parse(R"([{"role": "user", "content": "x"}])");
  auto extra = nlohmann::ordered_json::parse(
      R"({"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]})");
  EXPECT_EQ(t.render_ordered(msgs, false, extra),
            "{\"type\": \"function\", \"function\": {\"name\": \"f\", \"parameters\": {}}}|role,content,");
  EXPECT_EQ(t.render(json::parse(msgs.dump()), false, json::parse(extra.dump())),
            "{\"function\": {\"name\": \"f\", \"parameters\": {}}, \"type\": \"function\"}|content,role,");
}

TEST(ChatTemplate, CompileErrorsAreQsErrors) {
  try {
    qs::ChatTemplate::compile("{% for m in messages %}{{ m.content }}");
    ADD_FAILURE() << "no exception";
  } catch (const qs::Error& e) {
    EXPECT_NE(std::string(e.what()).find("line 1"), std::string::npos) << e.what();
  }
  EXPECT_THROW(qs::render_chat("{% extends 'x' %}", json::array(), false, nullptr), qs::Error);
}

TEST(ChatTemplate, DeeplyNestedMessagesAreAnError) {
  json deep = "x";
  for (int k = 0; k < 100000; ++k) {  // built in place: nothing here recurses
    json o = json::array();
    o.push_back(std::move(deep));
    deep = std::move(o);
  }
  json msgs = json::array({{{"role", "user"}, {"content", "hi"}}});
  msgs[0]["content"] = std::move(deep);
  try {
    qs::render_chat(template_by_id("deepseek-v3"), msgs, true, special_tokens("deepseek-v3"));
    ADD_FAILURE() << "no exception";
  } catch (const qs::Error& e) {
    EXPECT_NE(std::string(e.what()).find("nested deeper than 200 levels"), std::string::npos) << e.what();
  }
}

TEST(ChatTemplate, RenderChatIsThreadSafe) {
  const std::string v3 = template_by_id("deepseek-v3");
  const std::string r1 = template_by_id("deepseek-r1");
  json msgs = json::array({{{"role", "system"}, {"content", "S"}},
                           {{"role", "user"}, {"content", "Q"}},
                           {{"role", "assistant"}, {"content", "<think>t</think>A"}}});
  const std::string want_v3 = qs::render_chat(v3, msgs, true, special_tokens("deepseek-v3"));
  const std::string want_r1 = qs::render_chat(r1, msgs, true, special_tokens("deepseek-r1"));
  EXPECT_EQ(want_v3, "<｜begin▁of▁sentence｜>S<｜User｜>Q<｜Assistant｜><think>t</think>A<｜end▁of▁sentence｜><｜Assistant｜>");
  EXPECT_EQ(want_r1, "<｜begin▁of▁sentence｜>S<｜User｜>Q<｜Assistant｜>A<｜end▁of▁sentence｜><｜Assistant｜><think>\n");
  const json extra_v3 = special_tokens("deepseek-v3"), extra_r1 = special_tokens("deepseek-r1");
  std::vector<std::thread> threads;
  std::vector<int> failures(4, 0);
  for (int k = 0; k < 4; ++k)
    threads.emplace_back([&, k] {
      for (int rep = 0; rep < 50; ++rep) {
        bool use_r1 = (k + rep) % 2;
        std::string got = qs::render_chat(use_r1 ? r1 : v3, msgs, true, use_r1 ? extra_r1 : extra_v3);
        failures[size_t(k)] += got != (use_r1 ? want_r1 : want_v3);
      }
    });
  for (auto& t : threads) t.join();
  for (int f : failures) EXPECT_EQ(f, 0);
}

}  // namespace
