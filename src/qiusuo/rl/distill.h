// Distillation (`qiusuo distill`): a student learns from a teacher that uses the same tokenizer.
//   sequence  SFT of the student on the teacher's verified traces (DeepSeek-R1's distilled models:
//             the teacher's reasoning as chat data, cross-entropy on the assistant tokens)
//   logit     on the same tokens, the renormalised KL from the teacher's top-k next-token
//             distribution to the student's (train/train_step.h Loss::Distill); the teacher's
//             distributions come from Engine::score (teacher forcing, batched, top_logprobs)
// The data (--data) is either chat JSONL ({"messages":[...]}: the traces, e.g. from
// `qiusuo sample --keep-correct`), or task JSONL ({"prompt","answer","match"}): then the teacher
// is rejection-sampled on the problems first (rl/sample.h) and its correct, well-formed
// completions are the traces (written to OUT/teacher_traces.jsonl).
// The student is a model directory (its weights; its tokenizer must equal the teacher's) or a
// config — a preset name (tiny, small, medium) or a config.json — built with random weights, the
// teacher's vocabulary and special ids, and the teacher's tokenizer; it may be smaller, dense or
// MoE.
#pragma once
#include <cstdint>
#include <string>

#include "qiusuo/rl/sample.h"
#include "qiusuo/rl/sft.h"

namespace qs::rl {

enum class DistillMode { Sequence, Logit };
DistillMode parse_distill_mode(const std::string& s);  // "sequence" | "logit"

struct DistillOptions {
  FinetuneOptions train;       // out_dir, batch, lr, steps/epochs, resume, ...
  DistillMode mode = DistillMode::Sequence;
  int64_t top_k = 20;          // logit: teacher entries per position
  SampleOptions sampling;      // task data: how the teacher is sampled (keep_correct is forced)
  Compute teacher_compute = Compute::F32;
  int64_t max_seqs = 64;       // teacher engine
  uint64_t init_seed = 0;      // a student built from a config
};

struct DistillSummary {
  FinetuneSummary train;
  std::string traces;          // the chat data trained on
  int64_t traces_sampled = -1; // kept traces when the teacher was sampled (-1: given)
  nlohmann::ordered_json to_json() const;
};

DistillSummary run_distill(const std::string& teacher_dir, const std::string& student, const std::string& data,
                           const DistillOptions& o);

// Builds the TrainModel of a student given as a directory (weights loaded) or a config (random
// init), checked against the teacher's vocabulary. `tokenizer_dir` receives where the student's
// tokenizer comes from.
std::unique_ptr<TrainModel<float>> build_student(const std::string& student, const std::string& teacher_dir,
                                                 uint64_t seed, std::string* tokenizer_dir);

}  // namespace qs::rl
