// Training-run plots from metrics.jsonl (see training.h), drawn with the charts of chart.h.
#include "qiusuo/plot/training.h"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cmath>
#include <fstream>
#include <map>
#include <memory>

#include <nlohmann/json.hpp>

#include "qiusuo/core/error.h"
#include "qiusuo/core/json_util.h"
#include "qiusuo/io/file.h"
#include "qiusuo/plot/chart.h"

namespace qs {

namespace {

// Averages a stream of row vectors into at most kMaxColumns columns of (nearly) equal width:
// buckets of `width` entries; at 2 * kMaxColumns buckets, neighbours merge and the width doubles.
class ColumnBuckets {
 public:
  static constexpr size_t kMaxColumns = 400;
  explicit ColumnBuckets(size_t rows) : rows_(rows) {}

  void add(double step, const std::vector<double>& values) {  // values: [rows], NaN = missing
    if (b_.empty() || b_.back().n == width_) {
      if (b_.size() == 2 * kMaxColumns) {
        halve();
        width_ *= 2;
      }
      b_.push_back(Bucket{std::vector<double>(rows_, 0.0), std::vector<uint32_t>(rows_, 0), 0.0, 0});
    }
    Bucket& k = b_.back();
    for (size_t r = 0; r < rows_; ++r)
      if (std::isfinite(values[r])) { k.sum[r] += values[r]; ++k.cnt[r]; }
    k.step_sum += step;
    ++k.n;
  }

  // matrix[rows][columns] of means and the mean step of every column.
  void finish(std::vector<std::vector<double>>& matrix, std::vector<double>& steps) {
    while (b_.size() > kMaxColumns) halve();
    matrix.assign(rows_, std::vector<double>(b_.size(), NAN));
    steps.resize(b_.size());
    for (size_t c = 0; c < b_.size(); ++c) {
      steps[c] = b_[c].step_sum / double(b_[c].n);
      for (size_t r = 0; r < rows_; ++r)
        if (b_[c].cnt[r]) matrix[r][c] = b_[c].sum[r] / double(b_[c].cnt[r]);
    }
  }

 private:
  struct Bucket {
    std::vector<double> sum;
    std::vector<uint32_t> cnt;
    double step_sum;
    uint64_t n;
  };
  void halve() {
    std::vector<Bucket> m;
    for (size_t i = 0; i < b_.size(); i += 2) {
      Bucket k = std::move(b_[i]);
      if (i + 1 < b_.size()) {
        for (size_t r = 0; r < rows_; ++r) { k.sum[r] += b_[i + 1].sum[r]; k.cnt[r] += b_[i + 1].cnt[r]; }
        k.step_sum += b_[i + 1].step_sum;
        k.n += b_[i + 1].n;
      }
      m.push_back(std::move(k));
    }
    b_ = std::move(m);
  }
  size_t rows_;
  uint64_t width_ = 1;
  std::vector<Bucket> b_;
};

// Layer number from a key like "3", "layer_3", "layers.3"; -1 when it has no digits.
long layer_number(const std::string& key) {
  const size_t p = key.find_last_of("0123456789");
  if (p == std::string::npos) return -1;
  size_t s = p;
  while (s > 0 && std::isdigit(static_cast<unsigned char>(key[s - 1]))) --s;
  long n = 0;
  for (size_t i = s; i <= p; ++i) {
    if (n > 100000000) return -1;  // not a layer number
    n = n * 10 + (key[i] - '0');
  }
  return n;
}

// expert_load -> [(layer label, per-expert values)] in layer order.
std::vector<std::pair<std::string, std::vector<double>>> parse_expert_load(const nlohmann::json& j) {
  std::vector<std::pair<std::string, std::vector<double>>> out;
  auto values = [](const nlohmann::json& a, const std::string& where) {
    if (!a.is_array()) fail("expert_load[", where, "] must be an array of numbers");
    std::vector<double> v;
    for (const auto& x : a) v.push_back(x.is_number() ? x.get<double>() : NAN);
    return v;
  };
  if (j.is_array()) {
    for (size_t i = 0; i < j.size(); ++i)
      if (!j[i].is_null() && !(j[i].is_array() && j[i].empty())) out.push_back({std::to_string(i), values(j[i], std::to_string(i))});
  } else if (j.is_object()) {
    for (const auto& [k, v] : j.items())
      if (!v.is_null() && !(v.is_array() && v.empty())) {
        const long n = layer_number(k);
        out.push_back({n >= 0 ? std::to_string(n) : k, values(v, k)});
      }
    std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
      const long x = layer_number(a.first), y = layer_number(b.first);
      return x != y ? x < y : a.first < b.first;
    });
  } else if (!j.is_null()) {
    fail("expert_load must be an array (by layer) or an object (layer -> array)");
  }
  return out;
}

}  // namespace

void write_training_plots(const std::string& metrics_jsonl_path, const std::string& out_dir) {
  std::ifstream in(metrics_jsonl_path, std::ios::binary);
  if (!in) fail(ErrorKind::NotFound, "cannot open ", metrics_jsonl_path);
  std::vector<std::pair<double, double>> loss, val_loss, lr, tps;
  // Expert-load rows are fixed by the first record that has any: (layer label, number of experts).
  std::vector<std::pair<std::string, size_t>> layers;
  std::map<std::string, std::pair<size_t, size_t>> layer_row;  // label -> (first row, experts)
  size_t rows = 0;
  std::unique_ptr<ColumnBuckets> buckets;
  std::string line;
  int64_t lineno = 0, records = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    const nlohmann::json j = parse_json_file_text<nlohmann::json>(line, str(metrics_jsonl_path, ":", lineno));
    if (!j.is_object()) fail(ErrorKind::Format, metrics_jsonl_path, ":", lineno, ": expected a JSON object");
    const double step = j.contains("step") && j["step"].is_number() ? j["step"].get<double>() : double(records);
    ++records;
    auto take = [&](const char* k, std::vector<std::pair<double, double>>& dst) {
      if (j.contains(k) && j[k].is_number()) dst.push_back({step, j[k].get<double>()});
    };
    take("loss", loss);
    take("val_loss", val_loss);
    take("lr", lr);
    take("tokens_per_s", tps);
    if (!j.contains("expert_load")) continue;
    std::vector<std::pair<std::string, std::vector<double>>> el;
    try {
      el = parse_expert_load(j["expert_load"]);
    } catch (const Error& e) {
      fail(ErrorKind::Format, metrics_jsonl_path, ":", lineno, ": ", e.what());
    }
    if (el.empty()) continue;
    if (!buckets) {
      for (const auto& [name, v] : el) {
        layer_row[name] = {rows, v.size()};
        layers.push_back({name, v.size()});
        rows += v.size();
      }
      buckets = std::make_unique<ColumnBuckets>(rows);
    }
    std::vector<double> row(rows, NAN);
    for (const auto& [name, v] : el) {
      auto it = layer_row.find(name);
      if (it == layer_row.end()) continue;  // a layer not in the first record: ignored
      const size_t n = std::min(v.size(), it->second.second);
      for (size_t e = 0; e < n; ++e) row[it->second.first + e] = v[e];
    }
    buckets->add(step, row);
  }
  if (in.bad()) fail(ErrorKind::Io, "error reading ", metrics_jsonl_path);

  make_dirs(out_dir);
  plot::LineChart lc{"Loss", "step", "cross-entropy (nats)", {{"train", std::move(loss)}}};
  if (!val_loss.empty()) lc.series.push_back({"val", std::move(val_loss)});
  plot::write_svg(path_join(out_dir, "loss.svg"), lc);
  plot::write_svg(path_join(out_dir, "lr.svg"), plot::LineChart{"Learning rate", "step", "lr", {{"lr", std::move(lr)}}});
  plot::write_svg(path_join(out_dir, "throughput.svg"),
                  plot::LineChart{"Throughput", "step", "tokens / s", {{"tokens/s", std::move(tps)}}});

  plot::Heatmap hm;
  hm.title = "Expert load (layer\u00b7expert)";
  hm.value_label = "fraction of routed tokens";
  hm.vmin = 0;
  if (buckets) {
    buckets->finish(hm.cells, hm.x_values);
    for (const auto& [name, n] : layers) {
      if (!hm.row_labels.empty()) hm.row_separators.push_back(hm.row_labels.size());
      for (size_t e = 0; e < n; ++e) hm.row_labels.push_back(str("L", name, "\u00b7E", e));
    }
  }
  plot::write_svg(path_join(out_dir, "expert_load.svg"), hm);
}

}  // namespace qs
