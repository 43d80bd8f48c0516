// Plots of the RL loops from their metrics.jsonl (SVG, plot/chart.h), and of the stage table of
// `qiusuo r1`.
#pragma once
#include <string>
#include <utility>
#include <vector>

namespace qs::rl {

// From a GRPO run's metrics.jsonl: reward.svg (reward mean, rollout accuracy, format rate and the
// held-out accuracy where measured), response_length.svg (mean and max), kl_entropy.svg (k3 KL,
// entropy), clip.svg (clip fractions), throughput.svg (rollout and update tokens/s) and
// time_split.svg (rollout / reference / update seconds per step), written into out_dir.
void write_grpo_plots(const std::string& metrics_jsonl, const std::string& out_dir);

}  // namespace qs::rl
