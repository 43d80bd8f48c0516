#include "qiusuo/rl/journal.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "qiusuo/core/error.h"
#include "qiusuo/io/file.h"

namespace qs::rl {

Journal::Journal(std::string path, bool resume) : path_(std::move(path)) {
  std::string kept;
  if (resume && file_exists(path_)) {
    const std::string text = read_text_file(path_);
    size_t pos = 0;
    while (pos < text.size()) {
      const size_t nl = text.find('\n', pos);
      if (nl == std::string::npos) break;  // a torn last line
      const std::string line = text.substr(pos, nl - pos);
      pos = nl + 1;
      nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
      if (j.is_discarded() || !j.is_object() || !j.contains("i") || !j["i"].is_number_integer()) {
        if (pos >= text.size()) break;  // a damaged last line: dropped
        fail(ErrorKind::Format, path_, ": damaged journal line (delete the file to start over)");
      }
      kept += line + "\n";
      done_[j["i"].get<int64_t>()] = std::move(j);
    }
  }
  // Rewrite what is kept (drops a torn tail), then append.
  write_text_file_atomic(path_, kept);
  f_ = std::fopen(path_.c_str(), "ab");
  if (!f_) fail(ErrorKind::Io, "cannot open ", path_, ": ", std::strerror(errno));
}

Journal::~Journal() {
  if (f_) std::fclose(f_);
}

void Journal::append(int64_t i, nlohmann::json item) {
  item["i"] = i;
  const std::string line = item.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  if (std::fwrite(line.data(), 1, line.size(), f_) != line.size() || std::fflush(f_) != 0)
    fail(ErrorKind::Io, "cannot write ", path_, ": ", std::strerror(errno));
  done_[i] = std::move(item);
  if (++unsynced_ >= 64) sync();
}

void Journal::sync() {
  if (f_) {
    std::fflush(f_);
    ::fsync(fileno(f_));
  }
  unsynced_ = 0;
}

void Journal::remove() {
  if (f_) std::fclose(f_);
  f_ = nullptr;
  std::remove(path_.c_str());
}

}  // namespace qs::rl
