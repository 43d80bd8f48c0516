// Plots of a training run, from the trainer's metrics.jsonl: one JSON object per logged step with
//   step (number), loss, lr, tokens_per_s, optional val_loss (numbers; null = not measured) and
//   expert_load: either an array indexed by layer (null / [] for dense layers) or an object keyed by
//   layer ("3" or "layer_3"), each entry the fraction of routed tokens per expert ([n_experts]).
#pragma once
#include <string>

namespace qs {

// Writes out_dir/loss.svg (train + val loss), lr.svg, throughput.svg and expert_load.svg (rows =
// layer·expert, columns = steps averaged into <= 400 buckets), each atomically (plot/chart.h).
// qs::Error naming the file and line for invalid JSON.
void write_training_plots(const std::string& metrics_jsonl_path, const std::string& out_dir);

}  // namespace qs
