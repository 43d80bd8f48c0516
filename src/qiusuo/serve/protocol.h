// The OpenAI/DeepSeek request bodies, read into one validated struct. Reading is strict about
// types (a wrong type or a missing required field is 422, as DeepSeek's "Failed to deserialize
// the JSON body into the target type") and about values (400 naming the parameter). Fields the
// DeepSeek API ignores are ignored; docs/serve.md lists each field and what happens to it.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "qiusuo/infer/sampler.h"

namespace qs::serve {

// Parses a request body: 400 for malformed JSON, invalid UTF-8, nesting deeper than 128 or a
// body that is not a JSON object.
nlohmann::json parse_body(const std::string& body);

struct ApiRequest {
  enum Kind { Chat, Completion } kind = Chat;
  std::string model;
  bool stream = false;
  bool include_usage = false;        // stream_options.include_usage
  int64_t n = 1;
  bool logprobs = false;
  int top_logprobs = 0;
  SamplingParams params;             // max_tokens filled in later when not given
  bool max_tokens_given = false;
  bool seed_given = false;
  bool json_mode = false;            // response_format {"type": "json_object"}

  // Chat.
  nlohmann::json messages;           // checked and normalized (text parts joined, "" content of tool-call turns -> null)
  nlohmann::json tools;              // null when none
  std::vector<std::string> tool_names;
  std::string tool_choice = "auto";  // none | auto | required | function
  std::string tool_choice_name;      // tool_choice == "function"

  // Completion.
  struct Prompt {
    std::string text;
    std::vector<int32_t> ids;        // a prompt given as token ids
    bool is_ids = false;
  };
  std::vector<Prompt> prompts;
  std::optional<std::string> suffix;  // fill-in-the-middle
  bool echo = false;
};

ApiRequest parse_chat_request(const nlohmann::json& body);
ApiRequest parse_completion_request(const nlohmann::json& body);

// Top-level fields every route reads the same way ("model": required string).
std::string read_model(const nlohmann::json& body);

}  // namespace qs::serve
