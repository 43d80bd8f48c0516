// A training run's output directory (layout: train/checkpoint.h) as a training loop uses it:
// where to resume from, loading with a hint when a checkpoint is damaged, and saving — metrics
// made durable, then the checkpoint, the exported Hugging Face model and the plots — in the
// order that keeps them consistent. Shared by pretraining and the SFT / GRPO / distillation
// loops.
#pragma once
#include <string>

#include "qiusuo/train/checkpoint.h"
#include "qiusuo/train/metrics.h"

namespace qs {

class RunDirectory {
 public:
  // Creates out_dir. Checkpoints and exports copy the tokenizer of tokenizer_dir (may be empty)
  // and keep the newest keep_last checkpoints.
  RunDirectory(std::string out_dir, std::string tokenizer_dir, int keep_last);

  const std::string& dir() const { return dir_; }
  std::string metrics_path() const;  // OUT/metrics.jsonl
  std::string plots_dir() const;     // OUT/plots

  // The checkpoint to resume from: `from` when given, else the latest one when `resume`
  // (qs::Error when there is none), else "" — a fresh run.
  std::string resume_source(bool resume, const std::string& from) const;
  // load_checkpoint(); when it fails the error names an intact earlier checkpoint to resume
  // from instead (--resume-from).
  TrainerState load(const std::string& checkpoint, TrainModel<float>& m, AdamW& opt) const;
  // Syncs `metrics`, saves the checkpoint of st.step, exports the model into OUT and redraws
  // the plots from the metrics. Returns the checkpoint directory.
  std::string save(const TrainModel<float>& m, const AdamW& opt, const TrainerState& st, MetricsLog& metrics) const;

 private:
  std::string dir_, tokenizer_;
  int keep_;
};

}  // namespace qs
