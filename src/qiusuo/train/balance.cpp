#include "qiusuo/train/balance.h"

#include <algorithm>

#include "qiusuo/core/error.h"

namespace qs {

void accumulate_expert_load(ExpertLoad& a, const ExpertLoad& b) {
  if (a.size() < b.size()) a.resize(b.size());
  for (size_t l = 0; l < b.size(); ++l) {
    if (b[l].empty()) continue;
    if (a[l].empty()) a[l].assign(b[l].size(), 0);
    QS_ASSERT(a[l].size() == b[l].size());
    for (size_t e = 0; e < b[l].size(); ++e) a[l][e] += b[l][e];
  }
}

void update_correction_bias(TrainModel<float>& m, const ExpertLoad& load, double speed) {
  if (speed <= 0) return;
  for (size_t l = 0; l < load.size(); ++l) {
    const auto& ld = load[l];
    if (ld.empty()) continue;
    float* bias = m.block(int64_t(l)).ffn.bias;
    if (!bias) continue;  // routing without a correction bias
    double total = 0;
    for (int64_t x : ld) total += double(x);
    const double mean = total / double(ld.size());
    for (size_t e = 0; e < ld.size(); ++e) {
      const double diff = mean - double(ld[e]);
      bias[e] += float(speed * (diff > 0 ? 1.0 : diff < 0 ? -1.0 : 0.0));
    }
  }
}

ExpertLoadSummary summarize_expert_load(const ExpertLoad& load) {
  ExpertLoadSummary s;
  double lmax = 0, lmin = 0;
  bool any = false;
  for (const auto& ld : load) {
    if (ld.empty()) {
      s.fractions.push_back(nullptr);
      continue;
    }
    double total = 0;
    for (int64_t x : ld) total += double(x);
    const double mean = total / double(ld.size());
    nlohmann::json fr = nlohmann::json::array();
    for (int64_t x : ld) {
      fr.push_back(total > 0 ? double(x) / total : 0.0);
      const double r = mean > 0 ? double(x) / mean : 0.0;
      lmax = any ? std::max(lmax, r) : r;
      lmin = any ? std::min(lmin, r) : r;
      any = true;
    }
    s.fractions.push_back(fr);
  }
  s.max_ratio = lmax;
  s.min_ratio = lmin;
  return s;
}

}  // namespace qs
