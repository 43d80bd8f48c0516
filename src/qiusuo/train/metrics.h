// A training run's metrics.jsonl: one JSON object per logged step ({"step": n, ...}), appended
// as the run goes. A fresh run starts it empty; a run resumed at step s keeps the lines of steps
// <= s (a torn last line from a crash is dropped) so that the resumed run writes the rest again
// exactly as an uninterrupted run would have. sync() makes the lines so far durable — call it
// before committing a checkpoint that covers them, so a resume never loses lines.
#pragma once
#include <cstdint>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

namespace qs {

class MetricsLog {
 public:
  // resume_step < 0: a fresh run (the file is emptied); otherwise the run resumes after that step.
  MetricsLog(const std::string& path, int64_t resume_step);
  MetricsLog(const MetricsLog&) = delete;
  MetricsLog& operator=(const MetricsLog&) = delete;

  void append(const nlohmann::json& line);
  void sync();  // flush + fsync
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::ofstream out_;
};

}  // namespace qs
