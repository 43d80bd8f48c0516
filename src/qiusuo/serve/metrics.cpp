#include "qiusuo/serve/metrics.h"

#include <cstdio>

namespace qs::serve {
namespace {
std::string num(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}
void header(std::string& out, const std::string& name, const char* type, const std::string& help) {
  out += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
}
void gauge(std::string& out, const std::string& name, double v, const std::string& help) {
  header(out, name, "gauge", help);
  out += name + " " + num(v) + "\n";
}
void counter(std::string& out, const std::string& name, double v, const std::string& help) {
  header(out, name, "counter", help);
  out += name + " " + num(v) + "\n";
}
}  // namespace

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe(double v) {
  size_t i = 0;
  while (i < bounds_.size() && v > bounds_[i]) ++i;
  std::lock_guard<std::mutex> lk(mu_);
  counts_[i]++;
  sum_ += v;
  count_++;
}

void Histogram::render(std::string& out, const std::string& name, const std::string& help) const {
  std::lock_guard<std::mutex> lk(mu_);
  header(out, name, "histogram", help);
  uint64_t cum = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cum += counts_[i];
    out += name + "_bucket{le=\"" + num(bounds_[i]) + "\"} " + std::to_string(cum) + "\n";
  }
  cum += counts_.back();
  out += name + "_bucket{le=\"+Inf\"} " + std::to_string(cum) + "\n";
  out += name + "_sum " + num(sum_) + "\n";
  out += name + "_count " + std::to_string(count_) + "\n";
}

Metrics::Metrics()
    : ttft_({0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}),
      itl_({0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}),
      e2e_({0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300}) {}

void Metrics::count_request(const std::string& route, int status) {
  std::lock_guard<std::mutex> lk(mu_);
  requests_[{route, status}]++;
}

void Metrics::count_tokens(int64_t prompt, int64_t cached, int64_t generated) {
  std::lock_guard<std::mutex> lk(mu_);
  prompt_ += prompt;
  cached_ += cached;
  generated_ += generated;
}

std::string Metrics::render(const EngineStats* e, const ServerGauges& g) const {
  std::string out;
  {
    std::lock_guard<std::mutex> lk(mu_);
    header(out, "qiusuo_requests_total", "counter", "HTTP requests by route and status code");
    for (const auto& [k, v] : requests_)
      out += "qiusuo_requests_total{route=\"" + k.first + "\",status=\"" + std::to_string(k.second) + "\"} " +
             std::to_string(v) + "\n";
    counter(out, "qiusuo_prompt_tokens_total", double(prompt_), "Prompt tokens of finished requests");
    counter(out, "qiusuo_prompt_cached_tokens_total", double(cached_),
            "Prompt tokens taken from the prefix cache (full blocks)");
    counter(out, "qiusuo_generation_tokens_total", double(generated_), "Generated tokens");
  }
  gauge(out, "qiusuo_ready", g.ready ? 1 : 0, "1 once the model is loaded");
  gauge(out, "qiusuo_requests_in_flight", double(g.in_flight), "Sequences admitted and not finished");
  gauge(out, "qiusuo_queue_limit", double(g.queue_limit), "Sequences admitted at most (more get 429)");
  if (e) {
    gauge(out, "qiusuo_queue_depth", double(e->waiting), "Sequences waiting for the engine (queue depth)");
    gauge(out, "qiusuo_batch_size", double(e->running), "Sequences in the running batch");
    gauge(out, "qiusuo_kv_blocks_total", double(e->blocks_total), "KV cache blocks");
    gauge(out, "qiusuo_kv_blocks_used", double(e->blocks_used), "KV cache blocks held by sequences");
    gauge(out, "qiusuo_kv_blocks_cached", double(e->blocks_cached), "KV cache blocks kept for prefix reuse (evictable)");
    gauge(out, "qiusuo_kv_blocks_free", double(e->blocks_free), "KV cache blocks allocatable now (free + cached)");
    gauge(out, "qiusuo_kv_block_size", double(e->block_size), "Tokens per KV cache block");
    counter(out, "qiusuo_engine_steps_total", double(e->steps), "Engine steps");
    counter(out, "qiusuo_engine_step_tokens_total", double(e->step_tokens), "Tokens computed by engine steps");
    counter(out, "qiusuo_preemptions_total", double(e->preemptions), "Sequences preempted (recomputed later)");
    counter(out, "qiusuo_spec_decode_draft_tokens_total", double(e->draft_tokens),
            "MTP draft tokens verified (speculative decoding)");
    counter(out, "qiusuo_spec_decode_accepted_tokens_total", double(e->accepted_draft_tokens),
            "MTP draft tokens accepted");
  }
  gauge(out, "qiusuo_disk_cache_entries", double(g.disk_entries), "Prefix blocks in the disk cache");
  gauge(out, "qiusuo_disk_cache_bytes", double(g.disk_bytes), "Bytes of the disk cache");
  counter(out, "qiusuo_disk_cache_loaded_blocks_total", double(g.disk_loaded), "Blocks loaded from the disk cache");
  counter(out, "qiusuo_disk_cache_written_blocks_total", double(g.disk_written), "Blocks written to the disk cache");
  counter(out, "qiusuo_disk_cache_ignored_entries_total", double(g.disk_ignored),
          "Disk cache entries ignored (corrupt, truncated or foreign)");
  ttft_.render(out, "qiusuo_time_to_first_token_seconds", "Request arrival to first token");
  itl_.render(out, "qiusuo_inter_token_latency_seconds", "Time between consecutive tokens of a sequence");
  e2e_.render(out, "qiusuo_request_duration_seconds", "Request arrival to last token");
  return out;
}

}  // namespace qs::serve
