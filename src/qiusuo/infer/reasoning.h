// Splits streamed model output into reasoning (between <think> and </think>, as DeepSeek-R1
// writes it) and answer content. Tags may arrive split across chunks; text that could be the
// start of a tag is held back until it is decided. R1's chat template ends the prompt with
// "<think>\n", so generation then starts inside the reasoning.
#pragma once
#include <string>

namespace qs {

class ReasoningSplitter {
 public:
  explicit ReasoningSplitter(bool starts_in_reasoning = false) : in_(starts_in_reasoning) {}
  struct Out { std::string reasoning, content; };
  Out push(const std::string& text);
  Out flush();
  bool in_reasoning() const { return in_; }

  // True when a rendered prompt leaves the model inside a reasoning block (ends with an open
  // <think> and no </think> after it).
  static bool prompt_opens_reasoning(const std::string& rendered_prompt);

 private:
  bool in_;
  bool seen_any_ = false;
  std::string buf_;
};

}  // namespace qs
