#include "qiusuo/train/metrics.h"

#include "qiusuo/core/error.h"
#include "qiusuo/io/file.h"

namespace qs {

MetricsLog::MetricsLog(const std::string& path, int64_t resume_step) : path_(path) {
  std::string kept;
  if (resume_step >= 0 && file_exists(path)) {
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line)) {
      try {
        const auto j = nlohmann::json::parse(line);
        if (j.value("step", int64_t(0)) <= resume_step) kept += line + "\n";
      } catch (const nlohmann::json::exception&) {
        break;  // a torn last line from a crash
      }
    }
  }
  write_text_file_atomic(path, kept);
  out_.open(path, std::ios::app);
  if (!out_) fail(ErrorKind::Io, "cannot open ", path, " for appending");
}

void MetricsLog::append(const nlohmann::json& line) { out_ << line.dump() << "\n"; }

void MetricsLog::sync() {
  out_.flush();
  if (!out_) fail(ErrorKind::Io, "cannot write ", path_);
  sync_file(path_);
}

}  // namespace qs
