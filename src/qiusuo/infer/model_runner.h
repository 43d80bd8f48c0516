// Runs one step of the model: the scheduled chunks of several sequences as one ragged batch
// (model/forward.h), through their block tables, returning the logits of the rows asked for.
// The model is shared and const; the runner owns the step's scratch (activations arena and
// logits buffer), so one runner serves one engine thread.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "qiusuo/core/arena.h"
#include "qiusuo/infer/scheduler.h"
#include "qiusuo/model/transformer.h"

namespace qs {

class ModelRunner {
 public:
  ModelRunner(const Model& model, KVPool& pool, Compute compute);

  const Model& model() const { return model_; }
  Compute compute() const { return compute_; }

  // Computes `work` (each sequence's tokens [n_computed, n_computed + n)) and returns the
  // logits [rows.size(), vocab] of the flat token rows `rows` (indices into the step's tokens,
  // in work order). Sequence state is not changed. With keep_hidden, the last hidden states
  // of every token ([T, d]) stay available for an MTP pass.
  const float* run(std::span<const StepWork> work, std::span<const int64_t> rows, bool keep_hidden = false);
  const StepBatch& batch() const { return batch_; }

  // The MTP pass of speculative decoding (Model::forward_mtp): for each item, positions
  // [p0, p0 + n) of its sequence, whose embedding inputs are the tokens after them and whose
  // hidden inputs are rows [hidden_row, hidden_row + n) of the last run()'s hidden states.
  // Returns the draft logits [rows.size(), vocab] of flat rows of this pass.
  struct MtpWork {
    const Sequence* seq;
    int64_t p0, n, hidden_row;
  };
  const float* run_mtp(std::span<const MtpWork> work, std::span<const int64_t> rows);

 private:
  const Model& model_;
  KVPool& pool_;
  Compute compute_;
  Arena arena_;
  StepBatch batch_, mtp_batch_;
  std::vector<float> logits_, mtp_logits_, hidden_, mtp_hidden_;
};

}  // namespace qs
