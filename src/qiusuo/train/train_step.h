// The training step: one forward and backward pass of a TrainModel over a batch of token
// sequences — the unit pretraining, SFT, GRPO and distillation all run thousands of times.
//
// A batch is B rows of S positions (B <= max_rows, S <= max_cols of the plan); each row is an
// independent causal sequence starting at position 0. Per position t:
//   inputs[t]   the token at t (every id in [0, vocab))
//   targets[t]  the token to predict at t (usually inputs[t+1]); < 0 = no target
//   weights[t]  w_t, the position's weight (empty = 1 where a target exists); positions without
//               a target contribute nothing whatever their weight
//   lengths[b]  real tokens of row b (empty = S); the rest of the row is padding, which must have
//               no target and is left out of the MoE expert load and the balance loss
//
// The objective (the gradients are of scale · objective; nothing is normalised behind the
// caller's back — pass w_t = 1/Σ(tokens) for a mean):
//   objective = main + λ_mtp · mtp + aux
//   main, by Loss kind (the sums run over the positions with a target):
//     CrossEntropy  Σ_t w_t · CE_t,  CE_t = −log p_θ(target_t)
//     LogProbCoef   Σ_t c_t · log p_θ(target_t), c_t given by the caller: GRPO's clipped
//                   surrogate and KL terms become per-token coefficients ∂J/∂log p_t; with
//                   c = −w it is exactly the CrossEntropy gradient
//     Distill       Σ_t w_t · KL(q_t ‖ p̃_t): q_t the teacher's distribution renormalised over
//                   its top-K ids S_t (or the whole vocabulary), p̃_t the student's distribution
//                   renormalised over the same S_t; with the full vocabulary the plain KL(q ‖ p).
//                   A teacher that is the student (its own top_logprobs fed back) gives exactly
//                   zero loss and gradient. Exact definitions: model/lm_head.h.
//   mtp  (D = num_nextn_predict_layers modules, only when λ_mtp > 0; λ_mtp = 0 skips them):
//        1/D · Σ_k Σ_s ŵ_{k,s} · CE_{k,s}, where depth k (0-based) at position s predicts the
//        target of position s+k+1 and carries that position's weight, rescaled so that each
//        depth's weights sum to the main weights' sum: ŵ_{k,s} = w_{s+k+1} · Σ_t w_t / Σ_s w_{s+k+1}
//        (with w = 1/N it is the mean MTP cross-entropy). Always cross-entropy on the targets.
//   aux  the sequence-wise balance loss of every MoE layer, α included (model/moe.h)
//
// Gradients accumulate into the model's gradient buffer (zero_grad() is the caller's); clipping,
// AdamW and the auxiliary-loss-free bias update are separate (train/optimizer.h,
// train/balance.h). The activation arena is sized once, for (max_rows, max_cols), from the
// modules' planning functions; a batch beyond the plan is a qs::Error.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "qiusuo/model/block.h"
#include "qiusuo/model/lm_head.h"
#include "qiusuo/model/mtp.h"
#include "qiusuo/train/train_model.h"

namespace qs {

struct TrainLossOptions {
  TrainPrecision precision = TrainPrecision::F32;
  double mtp_lambda = 0.3;  // λ_mtp (0: the MTP modules are not run)
  double aux_alpha = 0.0;   // α of the sequence-wise balance loss (DeepSeek-V3: 1e-4; 0 = off)
};

struct StepPlan {
  int64_t max_rows = 1;  // B
  int64_t max_cols = 1;  // S
};

struct TokenBatch {
  int64_t rows = 0, cols = 0;         // B, S
  std::span<const int32_t> inputs;    // [B, S]
  std::span<const int32_t> targets;   // [B, S], < 0 = none
  std::span<const double> weights;    // [B, S] or empty (1 where a target exists)
  std::span<const int32_t> lengths;   // [B] or empty (S each)
};

enum class Loss { CrossEntropy, LogProbCoef, Distill };

// A teacher's next-token distribution per position (Loss::Distill).
struct TeacherDist {
  int64_t k = 0;                     // entries per position; 0 = the whole vocabulary
  std::span<const int32_t> ids;      // [B, S, k] token ids, distinct within a position (k > 0)
  std::span<const double> logprobs;  // [B, S, k], or [B, S, V] when k = 0; −inf allowed, not NaN
};

struct StepRequest {
  Loss loss = Loss::CrossEntropy;
  std::span<const double> coef;  // [B, S] c_t (Loss::LogProbCoef)
  TeacherDist teacher;           // Loss::Distill
  bool backward = true;          // accumulate gradients (false: forward only)
  double scale = 1.0;            // gradients += scale · ∂objective/∂θ
  // Outputs, filled for the positions with a target (0 elsewhere):
  bool logprobs = false;         // log p_θ(target_t)
  bool entropy = false;          // −Σ_v p_v log p_v of the predicted distribution
  int64_t top_k = 0;             // the top_k most likely ids and their log-probabilities
  // Called during the backward pass as parameter gradients become final, so that data
  // parallelism can reduce them while the pass goes on (train/data_parallel.h): with
  // num_hidden_layers once the final norm, head and MTP modules are done, with l after decoder
  // layer l (from the last down), with -1 after the embedding (the end).
  std::function<void(int64_t)> on_grads_ready;
};

struct StepResult {
  double objective = 0;   // main + λ_mtp·mtp + aux (what the gradients are of, before scale)
  double main = 0;        // the main term of the Loss kind
  double ce = 0;          // Σ w_t·CE_t (every kind; with w = 1/N the mean cross-entropy)
  double weight_sum = 0;  // Σ w_t over the positions with a target
  int64_t tokens = 0;     // positions with a target
  double mtp = 0;         // the MTP term (0 when λ_mtp = 0)
  double aux = 0;         // balance loss, summed over the MoE layers (MTP blocks included)
  std::vector<std::vector<int64_t>> expert_load;  // [layer][expert] real tokens routed (L + D layers;
                                                  // empty for dense layers and skipped MTP blocks)
  std::vector<double> logprobs, entropy;          // [B, S] when requested
  std::vector<int32_t> top_ids;                   // [B, S, top_k] when requested
  std::vector<double> top_logprobs;               // [B, S, top_k]
  double mean_ce() const { return weight_sum != 0 ? ce / weight_sum : 0.0; }
};

// Pretraining's batch from windows of S+1 tokens: inputs [:, :S], targets [:, 1:], every weight
// 1/(B·S) — the objective is then the mean cross-entropy (+ λ·mean MTP CE + aux).
struct WindowBatch {
  std::vector<int32_t> inputs, targets;
  std::vector<double> weights;
  void fill(const int32_t* windows, int64_t B, int64_t S);  // windows [B, S+1]
  TokenBatch view() const;

 private:
  int64_t B_ = 0, S_ = 0;
};

template <typename T>
class TrainStep {
 public:
  TrainStep(TrainModel<T>& model, StepPlan plan, TrainLossOptions options);
  ~TrainStep();

  StepResult run(const TokenBatch& batch, const StepRequest& request = {});
  // Forward + backward of WindowBatch windows [B, S+1] (backward = false: losses only).
  StepResult run_windows(const int32_t* windows, int64_t B, int64_t S, bool backward, double scale = 1.0,
                         std::function<void(int64_t)> on_grads_ready = {});

  TrainModel<T>& model() { return model_; }
  const StepPlan& plan() const { return plan_; }
  const TrainLossOptions& options() const { return opt_; }
  size_t arena_planned_bytes() const { return arena_.capacity() * sizeof(T); }
  size_t arena_peak_bytes() const { return arena_.peak() * sizeof(T); }

  // Elements of the arena a step of up to (max_rows, max_cols) needs (the planning table).
  static size_t plan_elems(const ModelConfig& c, const StepPlan& plan, const TrainLossOptions& options);

 private:
  void check(const TokenBatch& b, const StepRequest& r) const;

  TrainModel<T>& model_;
  StepPlan plan_;
  TrainLossOptions opt_;
  TrainArena<T> arena_;
  std::unique_ptr<WeightCache> weight_cache_;  // BF16 / FP8 weight copies of one step
  std::unique_ptr<ActivationCache> act_cache_; // BF16 copies of the saved activations of one step
  // Kept between steps so that their vectors are not reallocated.
  std::vector<BlockActs<T>> acts_;
  std::vector<MtpActs<T>> mtp_acts_;
  std::vector<int32_t> next_, mtp_targets_;
  std::vector<double> mtp_weights_;
  WindowBatch windows_;
};

}  // namespace qs
