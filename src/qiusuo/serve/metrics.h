// Server metrics in the Prometheus text format (GET /metrics). Counters and histograms are
// kept here; gauges of the engine (queue, batch, KV blocks) are read from EngineStats when
// rendering. Thread-safe.
#pragma once
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "qiusuo/infer/engine.h"

namespace qs::serve {

class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double v);
  // Appends "<name>_bucket{le=...}", "_sum" and "_count" lines.
  void render(std::string& out, const std::string& name, const std::string& help) const;

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;  // per bucket (not cumulative); last = +Inf
  double sum_ = 0;
  uint64_t count_ = 0;
  mutable std::mutex mu_;
};

struct ServerGauges {
  int64_t in_flight = 0;       // sequences admitted by the HTTP layer and not finished
  int64_t queue_limit = 0;     // in_flight above this is refused with 429
  bool ready = false;
  int64_t disk_entries = 0, disk_bytes = 0, disk_loaded = 0, disk_written = 0, disk_ignored = 0;
};

class Metrics {
 public:
  Metrics();
  void count_request(const std::string& route, int status);
  void count_tokens(int64_t prompt, int64_t cached, int64_t generated);
  void observe_ttft(double s) { ttft_.observe(s); }
  void observe_itl(double s) { itl_.observe(s); }
  void observe_e2e(double s) { e2e_.observe(s); }
  std::string render(const EngineStats* engine, const ServerGauges& g) const;

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;
  int64_t prompt_ = 0, cached_ = 0, generated_ = 0;
  Histogram ttft_, itl_, e2e_;
};

}  // namespace qs::serve
