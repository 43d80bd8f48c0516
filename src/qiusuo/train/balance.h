// Auxiliary-loss-free load balancing (DeepSeek-V3 §2.1.2) and the expert-load statistics a
// training loop logs. The MoE layers report how many real tokens each expert received
// (StepResult::expert_load, per layer: decoder layers, then the MTP modules' blocks); after each
// optimizer step every MoE layer with an e_score_correction_bias moves it by
//   b_i += γ · sign(mean load − load_i)
// so that overloaded experts get selected less and underloaded ones more, with no gradient.
#pragma once
#include <cstdint>
#include <vector>

#include <nlohmann/json.hpp>

#include "qiusuo/train/train_model.h"

namespace qs {

using ExpertLoad = std::vector<std::vector<int64_t>>;  // [layer][expert] tokens; empty: dense / not run

// Adds `b` into `a` (loads of the micro-batches of one optimizer step).
void accumulate_expert_load(ExpertLoad& a, const ExpertLoad& b);

// The bias update above with speed γ (0 = off), for every layer that has a bias and a load.
void update_correction_bias(TrainModel<float>& m, const ExpertLoad& load, double speed);

struct ExpertLoadSummary {
  nlohmann::json fractions = nlohmann::json::array();  // [layer] share of each expert, null when dense
  double max_ratio = 0, min_ratio = 0;  // largest / smallest load over its layer's mean, all layers
};
ExpertLoadSummary summarize_expert_load(const ExpertLoad& load);

}  // namespace qs
