// The training loop: data → micro-batches → forward/backward → clip → AdamW → auxiliary-loss-
// free bias update → metrics, evaluation, checkpoints, plots. Resumes exactly: a run killed at
// any point and resumed from its last checkpoint continues with the same losses as a run that
// was never interrupted (same thread count).
#pragma once
#include <cstdint>
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "qiusuo/model/config.h"
#include "qiusuo/model/train_ops.h"
#include "qiusuo/train/optimizer.h"

namespace qs {

struct TrainConfig {
  std::string out_dir;
  std::string data_dir;        // dataset from `qiusuo prepare` (train.bin, val.bin, meta.json)
  std::string tokenizer_dir;   // copied into the checkpoints (default: the dataset's tokenizer)
  int64_t steps = 1000;        // optimizer steps in total (a resumed run continues up to it)
  int64_t batch = 16;          // sequences per micro-batch
  int64_t seq_len = 512;
  int64_t accum = 1;           // micro-batches per optimizer step
  TrainPrecision precision = TrainPrecision::F32;
  LrSchedule lr;
  AdamWConfig adam;
  double clip = 1.0;           // max global gradient norm (0 = off)
  double mtp_lambda = 0.3;
  double aux_alpha = 1e-4;     // sequence-wise balance loss weight (0 = off)
  double bias_speed = 1e-3;    // γ of the auxiliary-loss-free bias update (0 = off)
  int64_t eval_every = 100;    // steps between validation evaluations (0 = only at the end)
  int64_t eval_batches = 8;
  int64_t save_every = 250;    // steps between checkpoints (the last step always saves)
  int keep_last = 2;
  uint64_t seed = 0;
  bool resume = false;         // continue from out_dir/checkpoints/latest
  std::string resume_from;     // or from this checkpoint directory
  // Fit the run into this much training time (0 = none): after a few steps the step count (and
  // with it the learning-rate schedule) is cut to what the measured speed allows; the run still
  // stops and saves if it overruns.
  double time_limit_s = 0;
  bool progress = true;        // live progress line on stderr
  bool quiet = false;
  std::string init_from;       // start from these weights (HF checkpoint dir) instead of random
  // Under mpirun (train/data_parallel.h; one process: no effect): ZeRO-1 optimizer sharding,
  // routed experts divided among the ranks, gradient reduction overlapped with the backward.
  bool shard_optimizer = false;
  bool expert_parallel = false;
  bool overlap_reduce = true;
};

struct TrainSummary {
  int64_t steps_done = 0, first_step = 0;
  double final_loss = 0, final_val_loss = 0;
  double tokens_per_s = 0;
  double mfu_amx = 0, mfu_fma = 0;  // vs the BF16 (AMX where present) and F32 GEMM peaks
  double flops_per_token = 0;       // training FLOPs per token the MFU counts (model/flops.h)
  double gemm_peak_bf16 = 0, gemm_peak_f32 = 0;
  size_t arena_planned_bytes = 0, arena_peak_bytes = 0;
  bool stopped_early = false;
  std::string checkpoint;
  int world_size = 1;               // ranks (mpirun), 1 for one process
  bool expert_parallel = false;
  double step_s = 0;                // this session's optimizer steps, rank 0's wall time, and of it:
  double allreduce_s = 0;           //   waiting for the gradient reduction
  double allreduce_busy_s = 0;      //   (the reduction's own time; with overlap on the communication thread)
  bool overlap = false;             //   gradient reduction overlapped with the backward pass
  double alltoall_s = 0;            //   in expert-parallel all-to-all exchanges
  double optimizer_s = 0;           //   clip + AdamW (+ parameter all-gather)
};

// Reads the "train" section of a config.json (seq_len, batch_size, lr, mtp_lambda,
// bias_update_speed, aux_alpha, warmup, ...) into defaults of tc, for the keys present.
void apply_train_section(const nlohmann::json& section, TrainConfig& tc);

TrainSummary run_training(const ModelConfig& cfg, TrainConfig tc);

// Mean next-token cross-entropy over the first `batches` validation batches.
double evaluate_loss(const std::string& model_dir, const std::string& data_dir, int64_t batch, int64_t seq_len,
                     int64_t batches, TrainPrecision precision, int64_t* tokens = nullptr);

// Training presets: "tiny" (seconds on a laptop), "small" (the train-small benchmark shape),
// "medium". A config.json object with a "train" section.
nlohmann::json train_preset(const std::string& name);

}  // namespace qs
