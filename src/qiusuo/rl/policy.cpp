#include "qiusuo/rl/policy.h"

#include <algorithm>
#include <unordered_map>

#include "qiusuo/core/error.h"
#include "qiusuo/io/file.h"

namespace qs::rl {

std::unique_ptr<Tokenizer> load_chat_tokenizer(const std::string& model_dir) {
  if (!file_exists(path_join(model_dir, "tokenizer.json")))
    fail(ErrorKind::NotFound, model_dir, " has no tokenizer.json (the RL commands apply the model's chat template ",
         "around each prompt: the model directory must carry its tokenizer)");
  auto tok = std::make_unique<Tokenizer>(Tokenizer::load(model_dir));
  if (tok->chat_template().empty())
    fail(ErrorKind::NotFound, model_dir, "/tokenizer_config.json has no chat_template (the RL commands apply the ",
         "model's chat template around each prompt)");
  return tok;
}

Compute parse_compute(const std::string& s, const char* flag) {
  if (s == "f32" || s == "fp32") return Compute::F32;
  if (s == "bf16") return Compute::BF16;
  fail(flag, " must be f32 or bf16, got '", s, "'");
}

TaskPrompt task_prompt(const ChatFormatter& chat, const Problem& p) {
  const ChatPrompt cp = chat.render(nlohmann::json::array({{{"role", "user"}, {"content", p.prompt}}}));
  return {cp.ids, cp.opens_reasoning};
}

std::vector<TaskPrompt> task_prompts(const ChatFormatter& chat, const std::vector<Problem>& problems) {
  std::vector<TaskPrompt> out;
  out.reserve(problems.size());
  for (const Problem& p : problems) out.push_back(task_prompt(chat, p));
  return out;
}

int64_t completion_budget(int64_t prompt_tokens, int64_t max_tokens, int64_t context, const std::string& what) {
  QS_CHECK(max_tokens >= 1, "max tokens must be at least 1, not ", max_tokens);
  if (prompt_tokens >= context)
    fail(what, ": the prompt has ", prompt_tokens, " tokens, which leaves no room in the model's context of ",
         context, " tokens");
  return std::min(max_tokens, context - prompt_tokens);
}

int64_t model_context(const Model& m) { return m.config().max_position_embeddings; }

EngineOptions batch_engine_options(int64_t sequences, int64_t max_len, Compute compute) {
  EngineOptions o;
  o.max_seqs = std::max<int64_t>(1, sequences);
  o.block_size = 16;
  // Every running sequence may reach max_len; a few blocks more for the shared prompts.
  const int64_t per_seq = (max_len + o.block_size - 1) / o.block_size * o.block_size + o.block_size;
  o.cache_tokens = std::max<int64_t>(per_seq * o.max_seqs, 4 * o.block_size);
  o.max_model_len = max_len;
  o.max_step_tokens = std::max<int64_t>(512, o.max_seqs);
  o.compute = compute;
  return o;
}

void run_requests(Engine& engine, std::vector<GenerationRequest> requests,
                  const std::function<void(size_t, int64_t, GenerationResult&&)>& on_result) {
  const size_t nreq = requests.size();
  std::vector<int64_t> count(nreq), first(nreq, -1);
  int64_t total = 0, submitted = 0, done = 0;
  for (size_t i = 0; i < nreq; ++i) total += count[i] = std::max<int64_t>(1, requests[i].n);
  bool aborting = false;
  std::string error;
  for (size_t i = 0; i < nreq; ++i)
    requests[i].on_finish = [&, i](GenerationResult&& r) {
      ++done;
      if (aborting) return;
      if (r.reason == FinishReason::Error) {
        if (error.empty()) error = r.error;
        return;
      }
      on_result(i, r.request - first[i], std::move(r));
    };
  try {
    for (size_t i = 0; i < nreq; ++i) {
      first[i] = engine.submit(std::move(requests[i]));
      submitted += count[i];
    }
    while (done < total)
      if (!engine.step() && done < total) fail(ErrorKind::Internal, "engine went idle with requests pending");
  } catch (...) {
    // The callbacks refer to this frame: end everything submitted before leaving it.
    aborting = true;
    for (size_t i = 0; i < nreq; ++i)
      if (first[i] >= 0)
        for (int64_t k = 0; k < count[i]; ++k) engine.cancel(first[i] + k);
    try {
      while (done < submitted && engine.step()) {
      }
    } catch (...) {
    }
    throw;
  }
  if (!error.empty()) fail("generation failed: ", error);
}

std::vector<GenerationResult> run_requests(Engine& engine, std::vector<GenerationRequest> requests,
                                           const std::function<void(int64_t, int64_t)>& on_finished) {
  std::vector<size_t> offset(requests.size() + 1, 0);
  for (size_t i = 0; i < requests.size(); ++i) offset[i + 1] = offset[i] + size_t(std::max<int64_t>(1, requests[i].n));
  const int64_t total = int64_t(offset.back());
  std::vector<GenerationResult> out(static_cast<size_t>(total));
  int64_t done = 0;
  run_requests(engine, std::move(requests), [&](size_t i, int64_t k, GenerationResult&& r) {
    out[offset[i] + size_t(k)] = std::move(r);
    ++done;
    if (on_finished) on_finished(done, total);
  });
  return out;
}

uint64_t derive_seed(uint64_t seed, uint64_t stream, uint64_t index) {
  auto mix = [](uint64_t z) {
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  };
  return mix(mix(mix(seed) ^ stream) ^ index);
}

}  // namespace qs::rl
