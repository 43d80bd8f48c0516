// A journal of finished work items for commands that resume (evaluate, sample): one JSON object
// per line, {"i": index, ...}, appended and flushed as each item finishes. A run that is killed
// and started again with --resume reads it back, keeps the complete lines (a torn last line is
// dropped) and does only the items that are missing; since every item is seeded by its index,
// the final output is the same as an uninterrupted run's. The final output is written
// atomically elsewhere; the journal is removed when the work is complete.
#pragma once
#include <cstdint>
#include <cstdio>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

namespace qs::rl {

class Journal {
 public:
  // resume = false: starts empty (an old journal is discarded).
  Journal(std::string path, bool resume);
  ~Journal();
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  const std::map<int64_t, nlohmann::json>& done() const { return done_; }
  bool has(int64_t i) const { return done_.count(i) != 0; }
  // Records item i (its "i" key is set) and flushes the line.
  void append(int64_t i, nlohmann::json item);
  void sync();
  void remove();  // the work is complete: the journal is deleted
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::FILE* f_ = nullptr;
  std::map<int64_t, nlohmann::json> done_;
  int64_t unsynced_ = 0;
};

}  // namespace qs::rl
