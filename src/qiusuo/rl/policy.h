// What the RL commands (evaluate, sample, sft, grpo, distill, r1) share: a model directory's
// tokenizer and chat template, the chat prompt of a task problem, engines sized for a batch of
// rollouts, and running a batch of generation requests to completion with progress.
//
// A task's `prompt` is the user message: the model's own chat template is applied around it with
// the generation prompt (tokenizer_config.json), exactly as `qiusuo chat` would send it. When
// the rendered prompt leaves the model inside <think> (R1's template, and the R1-Zero template of
// `qiusuo r1`), the verifier is told so (VerifyOptions::starts_in_think) and the assistant message
// written for SFT gets the opening tag back (ChatFormatter::assistant_message).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "qiusuo/infer/chat.h"
#include "qiusuo/infer/engine.h"
#include "qiusuo/kernels/linear.h"
#include "qiusuo/rl/tasks.h"
#include "qiusuo/tokenizer/tokenizer.h"

namespace qs::rl {

// The tokenizer of a model directory (tokenizer.json + tokenizer_config.json with a chat
// template); qs::Error naming the directory when either is missing.
std::unique_ptr<Tokenizer> load_chat_tokenizer(const std::string& model_dir);

// "f32" / "fp32" -> F32, "bf16" -> BF16 (qs::Error otherwise, naming `flag`).
Compute parse_compute(const std::string& s, const char* flag = "--precision");

struct TaskPrompt {
  std::vector<int32_t> ids;
  bool opens_reasoning = false;  // generation starts inside <think>
};
// The problem's prompt as one user message through the chat template, with the generation prompt.
TaskPrompt task_prompt(const ChatFormatter& chat, const Problem& p);
std::vector<TaskPrompt> task_prompts(const ChatFormatter& chat, const std::vector<Problem>& problems);

// Tokens a completion of a prompt of `prompt_tokens` may have in a context of `context` tokens:
// min(max_tokens, context - prompt_tokens). qs::Error naming `what` when the prompt leaves no room.
int64_t completion_budget(int64_t prompt_tokens, int64_t max_tokens, int64_t context, const std::string& what);

// The context a model gives (max_position_embeddings).
int64_t model_context(const Model& m);

// Engine options for up to `sequences` sequences of up to `max_len` tokens each at once.
EngineOptions batch_engine_options(int64_t sequences, int64_t max_len, Compute compute);

// Submits every request and steps the engine until all have finished, handing each finished
// sample to on_result(request index, sample index, result) on this thread. A sample that ends
// with an error is a qs::Error. When anything throws (on_result included), the requests still
// running are cancelled and drained before the exception leaves, so the engine can be reused.
void run_requests(Engine& engine, std::vector<GenerationRequest> requests,
                  const std::function<void(size_t, int64_t, GenerationResult&&)>& on_result);
// The results in request order (request i's n samples consecutively); on_finished(done, total)
// after each finished sample.
std::vector<GenerationResult> run_requests(Engine& engine, std::vector<GenerationRequest> requests,
                                           const std::function<void(int64_t, int64_t)>& on_finished = {});

// A 64-bit seed for item `index` of stream `stream` of a run seeded with `seed` (SplitMix64 of the
// three): rollouts and samples are seeded from (seed, step, prompt) so that a resumed run draws
// exactly what an uninterrupted one would.
uint64_t derive_seed(uint64_t seed, uint64_t stream, uint64_t index);

}  // namespace qs::rl
