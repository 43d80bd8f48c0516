// One choice of a response as its tokens arrive: the text is split into reasoning (R1's
// <think>...</think>), content and tool calls (DeepSeek-V3 syntax), and log-probabilities are
// collected in the shape of the route (chat: logprobs.content[]; completions: tokens /
// token_logprobs / top_logprobs / text_offset). Streaming sends each push()'s delta; a
// non-streaming response sends what has accumulated.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "qiusuo/infer/engine.h"
#include "qiusuo/infer/reasoning.h"
#include "qiusuo/serve/tool_calls.h"

namespace qs::serve {

struct ChoiceDelta {
  std::string reasoning, content;
  std::vector<ToolCall> calls;
  nlohmann::ordered_json logprobs;  // chat: array of entries; completions: object of arrays (null when none)
  bool empty() const { return reasoning.empty() && content.empty() && calls.empty() && logprobs.is_null(); }
};

struct ChoiceSetup {
  bool chat = true;
  bool reasoning = false;            // split <think>...</think> into reasoning_content
  bool starts_in_reasoning = false;  // the prompt opened <think>
  bool tools = false;                // parse tool calls out of the content
  bool logprobs = false;
  std::vector<int32_t> eos;          // end tokens (not reported as log-probabilities)
  const Tokenizer* tokenizer = nullptr;
};

class ChoiceOutput {
 public:
  explicit ChoiceOutput(const ChoiceSetup& s);
  ChoiceDelta push(const TokenEvent& ev);
  ChoiceDelta finish(const GenerationResult& r);  // the held-back rest

  std::string content, reasoning;  // all so far
  std::vector<ToolCall> calls;
  nlohmann::ordered_json logprobs;         // all so far (same shape as the deltas')
  int64_t reasoning_tokens = 0;
  int64_t text_bytes = 0;          // completions text_offset
  bool finished = false;
  std::string finish_reason;
  GenerationResult result;

 private:
  ChoiceDelta route(const ReasoningSplitter::Out& part);
  void add_logprob(const TokenEvent& ev, ChoiceDelta& d);
  const ChoiceSetup& setup_;
  std::optional<ReasoningSplitter> split_;
  std::optional<ToolCallParser> tools_;
};

// Log-probability entries.
nlohmann::ordered_json token_bytes_json(const Tokenizer* tok, int32_t id);
std::string token_text(const Tokenizer* tok, int32_t id);

// usage{...} of a response: prompt tokens counted once per prompt, completion tokens over all
// choices; the cache fields as DeepSeek (prompt_cache_hit/miss_tokens) and OpenAI
// (prompt_tokens_details.cached_tokens).
nlohmann::ordered_json usage_json(int64_t prompt, int64_t cached, int64_t completion, int64_t reasoning);

}  // namespace qs::serve
