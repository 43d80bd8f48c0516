#include "qiusuo/rl/plots.h"

#include <cmath>
#include <fstream>
#include <map>

#include <nlohmann/json.hpp>

#include "qiusuo/core/error.h"
#include "qiusuo/io/file.h"
#include "qiusuo/plot/chart.h"

namespace qs::rl {

void write_grpo_plots(const std::string& metrics_jsonl, const std::string& out_dir) {
  std::ifstream in(metrics_jsonl, std::ios::binary);
  if (!in) fail(ErrorKind::NotFound, "cannot open ", metrics_jsonl);
  std::map<std::string, std::vector<std::pair<double, double>>> s;
  std::string line;
  int64_t lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object())
      fail(ErrorKind::Format, metrics_jsonl, ":", lineno, ": expected a JSON object");
    const double step = j.value("step", double(lineno));
    for (const auto& [k, v] : j.items())
      if (v.is_number()) s[k].push_back({k.rfind("eval_", 0) == 0 && j.contains("eval_at") ? j["eval_at"].get<double>() : step,
                                         v.get<double>()});
  }
  auto ser = [&](const char* key, const char* name) { return plot::Series{name, s[key]}; };
  make_dirs(out_dir);
  plot::LineChart reward{"GRPO: reward and accuracy", "step", "",
                         {ser("reward_mean", "reward (mean)"), ser("accuracy", "rollout accuracy"),
                          ser("format_rate", "format rate")}};
  if (!s["eval_accuracy"].empty()) reward.series.push_back(ser("eval_accuracy", "held-out accuracy (greedy)"));
  plot::write_svg(path_join(out_dir, "reward.svg"), reward);
  plot::LineChart len{"GRPO: response length", "step", "tokens",
                      {ser("response_length_mean", "mean"), ser("response_length_max", "max")}};
  if (!s["eval_response_tokens"].empty()) len.series.push_back(ser("eval_response_tokens", "held-out mean (greedy)"));
  plot::write_svg(path_join(out_dir, "response_length.svg"), len);
  plot::write_svg(path_join(out_dir, "kl_entropy.svg"),
                  plot::LineChart{"GRPO: KL to the reference and entropy", "step", "nats",
                                  {ser("kl", "KL (k3 mean)"), ser("entropy", "entropy")}});
  plot::write_svg(path_join(out_dir, "clip.svg"),
                  plot::LineChart{"GRPO: clipped tokens", "step", "fraction",
                                  {ser("clip_low_fraction", "low (A < 0)"), ser("clip_high_fraction", "high (A > 0)")}});
  plot::write_svg(path_join(out_dir, "throughput.svg"),
                  plot::LineChart{"GRPO: throughput", "step", "tokens / s",
                                  {ser("rollout_tokens_per_s", "rollout (generated)"),
                                   ser("update_tokens_per_s", "update (forward + backward)")}});
  plot::write_svg(path_join(out_dir, "time_split.svg"),
                  plot::LineChart{"GRPO: time per step", "step", "seconds",
                                  {ser("rollout_s", "rollout"), ser("reference_s", "reference"), ser("update_s", "update")}});
}

}  // namespace qs::rl
