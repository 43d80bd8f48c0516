#include "qiusuo/train/run_directory.h"

#include "qiusuo/core/error.h"
#include "qiusuo/io/file.h"
#include "qiusuo/plot/training.h"

namespace qs {

RunDirectory::RunDirectory(std::string out_dir, std::string tokenizer_dir, int keep_last)
    : dir_(std::move(out_dir)), tokenizer_(std::move(tokenizer_dir)), keep_(keep_last) {
  QS_CHECK(!dir_.empty(), "no output directory");
  make_dirs(dir_);
}

std::string RunDirectory::metrics_path() const { return path_join(dir_, "metrics.jsonl"); }
std::string RunDirectory::plots_dir() const { return path_join(dir_, "plots"); }

std::string RunDirectory::resume_source(bool resume, const std::string& from) const {
  if (!from.empty()) return from;
  if (!resume) return {};
  const std::string latest = latest_checkpoint(dir_);
  if (latest.empty()) fail(ErrorKind::NotFound, "--resume: no checkpoint in ", dir_, "/checkpoints");
  return latest;
}

TrainerState RunDirectory::load(const std::string& checkpoint, TrainModel<float>& m, AdamW& opt) const {
  try {
    return load_checkpoint(checkpoint, m, opt);
  } catch (const Error& e) {
    std::string hint;
    for (const auto& c : list_checkpoints(dir_))
      if (c != checkpoint) hint = c;
    fail(e.kind(), "cannot resume from ", checkpoint, ": ", e.what(),
         hint.empty() ? std::string() : "\n  an earlier checkpoint is intact: resume from it with --resume-from " + hint);
  }
}

std::string RunDirectory::save(const TrainModel<float>& m, const AdamW& opt, const TrainerState& st,
                               MetricsLog& metrics) const {
  // The metrics up to this step reach the disk before the checkpoint that covers them, so a
  // resume from it (which keeps the lines of steps <= its step) never loses lines.
  metrics.sync();
  const std::string ckpt = save_checkpoint(dir_, m, opt, st, tokenizer_, keep_);
  export_hf_model(dir_, m, tokenizer_);
  write_training_plots(metrics.path(), plots_dir());
  return ckpt;
}

}  // namespace qs
