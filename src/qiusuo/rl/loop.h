// The frame the post-training loops (SFT, GRPO, distillation) share, built from the training
// loop's units (train/run_directory.h, metrics.h, progress.h, time_budget.h): a TrainModel with
// AdamW, resumed from OUT/checkpoints when asked, and after each optimizer step the metrics line,
// the progress line, the time budget, Ctrl-C, and atomic checkpoints in Hugging Face layout
// (OUT/config.json + model.safetensors + tokenizer, OUT/checkpoints/step-N with optimizer state).
//
// A loop is: while (!loop.done()) { compute gradients into model.grads() for step loop.step();
// loop.finish_step(...); }. Everything a resumed run needs to continue exactly is derived from the
// step number and the seed by the caller (batches, rollouts), or kept in TrainerState::data.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "qiusuo/train/balance.h"
#include "qiusuo/train/checkpoint.h"
#include "qiusuo/train/metrics.h"
#include "qiusuo/train/optimizer.h"
#include "qiusuo/train/progress.h"
#include "qiusuo/train/run_directory.h"
#include "qiusuo/train/time_budget.h"
#include "qiusuo/train/train_model.h"

namespace qs::rl {

struct LoopOptions {
  std::string out_dir;
  std::string tokenizer_dir;   // copied next to every exported model
  int64_t steps = 100;         // optimizer steps in total (a resumed run continues up to it)
  LrSchedule lr;               // lr.total is set to steps
  AdamWConfig adam;
  double clip = 1.0;           // max global gradient norm (0 = off)
  double bias_speed = 0.0;     // auxiliary-loss-free bias update speed (0 = routing biases frozen)
  int64_t save_every = 50;     // steps between checkpoints (the last step always saves)
  int keep_last = 2;
  bool resume = false;
  std::string resume_from;
  double time_limit_s = 0;     // fit the run into this much time (train/time_budget.h)
  bool progress = true;
  bool quiet = false;
  // The run's settings, stored in state.json. A resume fails when a key of `must_match` differs
  // from the checkpoint's value (a different batch or seed would not continue the same run).
  nlohmann::json settings = nlohmann::json::object();
  std::vector<std::string> must_match;
};

// LoopOptions from a command's options (GrpoOptions, FinetuneOptions: the same field names for
// the schedule, optimizer, checkpoints, time limit and output); min_lr_ratio is the schedule's floor.
template <typename Options>
LoopOptions loop_options_from(const Options& o, int64_t steps, double min_lr_ratio, const std::string& tokenizer_dir,
                              nlohmann::json settings, std::vector<std::string> must_match) {
  LoopOptions lo;
  lo.out_dir = o.out_dir;
  lo.tokenizer_dir = tokenizer_dir;
  lo.steps = steps;
  lo.lr.kind = parse_schedule(o.schedule);
  lo.lr.peak = o.lr;
  lo.lr.warmup = o.warmup;
  lo.lr.min_ratio = min_lr_ratio;
  lo.adam.weight_decay = o.weight_decay;
  lo.clip = o.clip;
  lo.save_every = o.save_every;
  lo.keep_last = o.keep_last;
  lo.resume = o.resume;
  lo.resume_from = o.resume_from;
  lo.time_limit_s = o.time_limit_s;
  lo.progress = o.progress;
  lo.quiet = o.quiet;
  lo.settings = std::move(settings);
  lo.must_match = std::move(must_match);
  return lo;
}

struct StepReport {
  nlohmann::json metrics = nlohmann::json::object();  // logged with step, lr, grad_norm, time_s, ...
  std::string progress;   // the middle of the progress line ("loss 0.53 | 1200 tok/s")
  int64_t tokens = 0;     // tokens trained on in this step
  ExpertLoad load;        // routed tokens per expert (for the bias update and the load statistics)
};

class TrainLoop {
 public:
  // Loads the latest checkpoint into `model` when resuming (the caller has initialised it
  // otherwise). `what` names the loop in messages ("sft", "grpo", ...).
  TrainLoop(std::string what, TrainModel<float>& model, LoopOptions options);
  ~TrainLoop();

  int64_t step() const { return st_.step; }          // completed optimizer steps
  int64_t first_step() const { return first_step_; } // of this session
  int64_t steps() const { return o_.steps; }
  bool resumed() const { return resumed_; }
  bool done() const { return st_.step >= o_.steps || stopped_; }
  bool stopped_early() const { return stopped_; }
  double lr() const { return o_.lr.at(st_.step); }
  TrainerState& state() { return st_; }              // data position etc., saved with checkpoints
  AdamW& optimizer() { return opt_; }
  ProgressLine& progress() { return progress_; }
  const std::string& out_dir() const { return o_.out_dir; }
  double elapsed() const { return st_.elapsed_s + unsaved_; }  // training time of the whole run
  int64_t tokens_seen() const { return st_.tokens_seen; }
  std::string last_checkpoint() const { return checkpoint_; }

  // Called by save() before each checkpoint (make extra logs durable) and after it (plots).
  std::function<void()> before_save, on_save;

  // After the gradients of step() are in model.grads(): clip, AdamW at lr(), bias update, then
  // the metrics line, progress, time budget, interrupt and checkpoint. `seconds` is the step's
  // wall time (rollouts included).
  void finish_step(StepReport report, double seconds);
  // The two halves, for loops that make several updates per step (GRPO's mu): update() applies
  // the gradients (returns the gradient norm before clipping), end_step() counts the step.
  double update(const ExpertLoad& load);
  void end_step(StepReport report, double seconds, double grad_norm);
  // Saves a checkpoint now (also called by finish_step when due).
  void save();

 private:
  std::string what_;
  TrainModel<float>& model_;
  LoopOptions o_;
  AdamW opt_;
  std::unique_ptr<RunDirectory> run_;
  std::unique_ptr<MetricsLog> metrics_;
  TrainerState st_;
  InterruptFlag interrupt_;
  ProgressLine progress_;
  TimeBudget budget_;
  int64_t first_step_ = 0;
  bool resumed_ = false, stopped_ = false;
  double session_time_ = 0, unsaved_ = 0;
  std::string checkpoint_;
};

// The settings every post-training loop stores (thread count, which a resume must keep for the
// same bits).
nlohmann::json loop_settings();

}  // namespace qs::rl
