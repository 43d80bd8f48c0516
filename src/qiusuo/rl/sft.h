// Supervised fine-tuning on chat data (`qiusuo sft`), and the data side that sequence- and
// logit-level distillation share with it.
//
// Data: JSONL, one conversation per line, {"messages":[{"role":..,"content":..},...]} (other keys
// are ignored). Each conversation is rendered with the model's own chat template; the loss is on
// the assistant tokens only. Assistant turn i's tokens are found by rendering the conversation up
// to turn i with the generation prompt (the prefix the model sees) and up to and including turn i
// (prefix + the turn, EOS included): the tokens between the two are the turn's. A turn that the
// template renders differently once later turns follow (R1's template drops earlier reasoning) is
// not trained on; the last turn always is.
//
// Objective of an optimizer step over a batch of conversations: the mean cross-entropy over all
// their assistant tokens, Σ_t m_t·CE_t / Σ_t m_t (m_t = 1 on assistant tokens, 0 elsewhere — a
// non-assistant token gets no gradient at all).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "qiusuo/infer/chat.h"
#include "qiusuo/model/train_ops.h"
#include "qiusuo/rl/loop.h"
#include "qiusuo/train/train_model.h"

namespace qs::rl {

struct SftExample {
  std::vector<int32_t> ids;     // the rendered conversation
  std::vector<uint8_t> target;  // [ids.size()] 1 where ids[t] is an assistant token to learn
  int64_t targets() const;      // number of 1s
};

// qs::Error naming the message for a conversation without an assistant turn or with bad roles.
SftExample tokenize_conversation(const ChatFormatter& chat, const nlohmann::json& messages);

struct SftData {
  std::vector<SftExample> examples;
  int64_t lines = 0, too_long = 0;  // conversations longer than max_len are skipped
  int64_t tokens = 0, targets = 0;
};
// Reads a messages JSONL file (errors name the file and line).
SftData load_sft_jsonl(const std::string& path, const ChatFormatter& chat, int64_t max_len);

// The options of a fine-tuning run on a fixed dataset (SFT and distillation).
struct FinetuneOptions {
  std::string out_dir;
  int64_t batch = 16;            // conversations per optimizer step
  int64_t micro_batch = 0;       // conversations per forward/backward (0 = batch)
  double epochs = 1;             // passes over the data, when steps == 0
  int64_t steps = 0;             // optimizer steps (0: from epochs)
  double lr = 1e-4;
  int64_t warmup = 10;
  std::string schedule = "cosine";
  double min_lr_ratio = 0.1;
  double weight_decay = 0.0;
  double clip = 1.0;
  double mtp_lambda = 0.0;       // MTP loss weight during fine-tuning (0: MTP modules not run)
  TrainPrecision precision = TrainPrecision::F32;
  int64_t max_len = 0;           // longest conversation in tokens (0: the model's context)
  uint64_t seed = 0;
  int64_t save_every = 100;
  int keep_last = 2;
  bool resume = false;
  std::string resume_from;
  double time_limit_s = 0;
  bool progress = true, quiet = false;
};

struct FinetuneSummary {
  int64_t steps = 0, first_step = 0, examples = 0, skipped_too_long = 0;
  int64_t train_tokens = 0;      // assistant tokens trained on (this session and before)
  double final_loss = 0;         // the last step's objective
  double tokens_per_s = 0;       // sequence tokens per second (all positions)
  double seconds = 0;
  bool stopped_early = false;
  std::string out_dir, checkpoint;
  nlohmann::ordered_json to_json() const;
};

// SFT of the model in model_dir (Hugging Face layout with tokenizer and chat template) on the
// messages JSONL `data`. Writes the fine-tuned model into o.out_dir.
FinetuneSummary run_sft(const std::string& model_dir, const std::string& data, const FinetuneOptions& o);

// Logit distillation's teacher: for the rows of a micro-batch (row b is examples[b] without its
// last token, S positions), writes the teacher's top-k next-token ids and log-probabilities
// [rows, S, k] at every position whose next token is a target (other positions are ignored).
using TeacherFn = std::function<void(const std::vector<const SftExample*>& rows, int64_t S, int64_t k,
                                     std::vector<int32_t>& ids, std::vector<double>& logprobs)>;

// The loop over an already loaded model and data: cross-entropy on the assistant tokens (SFT,
// sequence-level distillation), or with `teacher` the renormalised KL to the teacher's top-k
// distribution on the same tokens (logit-level distillation, train/train_step.h Loss::Distill).
// `settings` are stored with the checkpoints. The model's weights are those of a fresh run (a
// resume loads the checkpoint over them).
FinetuneSummary run_finetune(const std::string& what, TrainModel<float>& model, const std::string& tokenizer_dir,
                             const SftData& data, const FinetuneOptions& o, nlohmann::json settings,
                             const TeacherFn& teacher = {}, int64_t teacher_k = 0);

}  // namespace qs::rl
