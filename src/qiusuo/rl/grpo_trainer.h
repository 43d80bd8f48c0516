// The GRPO loop (`qiusuo grpo`): DeepSeekMath's Group Relative Policy Optimization with the
// options of DAPO and Dr. GRPO, on the policy it samples from.
//
// One step:
//   1. rollout   B prompts of the task file (an epoch permutation seeded by (seed, epoch); step s
//                takes prompts sB .. sB+B-1), each through the model's chat template, G completions
//                each, all in one batched engine run over the policy being trained (live_model: the
//                engine reads the training parameters, no copy). The G samples of a prompt share its
//                KV blocks (the prompt is computed once). Sample i of prompt j is drawn with seed
//                derive_seed(seed, 3, sB + j) + i, so a resumed run draws the same rollouts. The
//                sampler returns each token's log-probability under the distribution it was drawn
//                from (temperature 1): the old log-probabilities.
//   2. rewards   rl/reward.h per completion; advantages per group (rl/grpo.h, --scale-rewards);
//                --drop-uniform-groups leaves out groups whose rewards are all equal (no signal);
//                completions cut by the token limit are masked out with --mask-truncated.
//   3. reference with beta > 0, the log-probabilities of the completions under a frozen copy of
//                the starting weights, scored through its own engine (Engine::score); every
//                --ref-resync N steps the reference becomes the current policy. beta = 0 keeps no
//                reference at all.
//   4. updates   mu optimizer updates on this rollout batch: the per-token coefficients of the
//                clipped objective + beta k3 (rl/grpo.h) are backpropagated by the training step
//                (Loss::LogProbCoef), in micro-batches of sequences. The first update uses the
//                sampler's log-probabilities as the current ones (the weights have not moved: the
//                ratio is exactly 1); later updates compute them with a forward pass first.
//   5. the engine forgets its cached prefixes (the weights changed).
//
// Why the loss sits near 0 with mu = 1: the ratio is exactly 1, so the loss is -mean(A) (per
// sequence), and group-normalised advantages sum to 0 within each group; the gradient
// -A_i * d log pi / d theta is not 0. Watch the reward, not the loss.
//
// Logged per step (OUT/metrics.jsonl; plots in OUT/plots): reward mean/std, accuracy, format
// rate, response length mean/max, truncated share, uniform-group share, KL (k3 mean), clip
// fractions, ratio range, entropy, loss, rollout and update tokens/s and their time split, the
// largest |sampler - trainer| log-probability difference; every --log-samples-every steps a few
// prompts with their completions and rewards in OUT/samples.jsonl. With --eval-tasks, the greedy
// accuracy on held-out problems every --eval-every steps.
#pragma once
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "qiusuo/model/train_ops.h"
#include "qiusuo/rl/grpo.h"
#include "qiusuo/rl/reward.h"

namespace qs::rl {

struct GrpoOptions {
  std::string out_dir;
  int64_t steps = 100;            // rollout steps
  int64_t prompts = 8;            // B: prompts per step
  int64_t group = 8;              // G: completions per prompt
  int64_t max_tokens = 256;       // per completion (capped by the model's context)
  ScaleRewards scale_rewards = ScaleRewards::Group;
  GrpoLossConfig loss;            // clip_low/high, beta, aggregation, mask_truncated
  int64_t mu = 1;                 // optimizer updates per rollout batch
  bool drop_uniform_groups = false;
  int64_t ref_resync = 0;         // steps between reference resyncs (0 = never)
  RewardConfig reward;
  double lr = 1e-6;
  int64_t warmup = 0;
  std::string schedule = "constant";
  double weight_decay = 0.0;
  double clip = 1.0;
  int64_t micro_batch = 16;       // sequences per forward/backward pass
  TrainPrecision precision = TrainPrecision::F32;
  int64_t max_seqs = 0;           // sequences the engine runs at once (0 = B x G)
  uint64_t seed = 0;
  int64_t log_samples_every = 10; // steps between samples.jsonl entries (0 = never)
  int64_t log_samples = 2;        // prompts per entry
  std::string eval_tasks;         // held-out task JSONL ("" = none)
  int64_t eval_every = 0;         // steps between held-out evaluations (0 = only at the end)
  int64_t eval_problems = 0;      // the first N problems of eval_tasks (0 = all)
  int64_t save_every = 20;
  int keep_last = 2;
  bool resume = false;
  std::string resume_from;
  double time_limit_s = 0;
  bool progress = true, quiet = false;
};

struct GrpoSummary {
  int64_t steps = 0, first_step = 0;
  int64_t train_tokens = 0;          // completion tokens trained on (whole run)
  double reward_mean = 0, accuracy = 0;  // of the last step's rollouts
  double eval_accuracy = -1;         // the last held-out evaluation (-1: none)
  double rollout_tokens_per_s = 0, update_tokens_per_s = 0, rollout_share = 0;  // this session
  double seconds = 0;
  bool stopped_early = false;
  std::string out_dir, checkpoint;
  nlohmann::ordered_json to_json() const;
};

// GRPO on the model in model_dir (Hugging Face layout with tokenizer and chat template) with the
// problems of the task JSONL `tasks`; writes the trained policy into o.out_dir.
GrpoSummary run_grpo(const std::string& model_dir, const std::string& tasks, const GrpoOptions& o);

}  // namespace qs::rl
