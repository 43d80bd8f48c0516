// `qiusuo r1`: DeepSeek-R1 in miniature, end to end, from generated data (rl/r1_data.h):
//
//   base             pretrain a small DeepSeek-style MoE (MLA, DeepSeekMoE, MTP) on worked solutions
//                    of arithmetic problems, most of them in the terse "brief" style (the answer
//                    right away) and some worked column by column
//   grpo             R1-Zero: GRPO with rule-based rewards (accuracy + format) straight on the base,
//                    no SFT first; held-out accuracy logged during the run
//   rejection_sft    DeepSeek-R1's stage 3: the GRPO model's verified traces on training problems
//                    (rejection sampling, rl/sample.h) and SFT of the GRPO model on them
//   distill_student  a smaller student, pretrained on the same corpus (student_base), fine-tuned on
//                    the same traces (sequence-level distillation)
//   student_grpo     the same student base trained by GRPO alone for the same compute (the wall time
//                    of the distillation route: sampling + distillation)
//
// Every stage model is evaluated greedily on the held-out test set (tasks/test.jsonl) and on
// other problems of the same split (tasks/test_b.jsonl, the reproduction check). Writes
//   DIR/results.json  {"test_set":PATH,"stages":[{"stage","model","test_accuracy","format_rate",
//                     "mean_response_tokens","train_tokens","seconds",...},...],...}
//   DIR/results.md    the table and what it means
//   DIR/plots/        reward.svg, response_length.svg ... of the GRPO run, stages.svg (bar chart)
// The run resumes: a finished stage (DIR/<stage>/stage.json) is not run again, a stage that was
// interrupted continues from its checkpoints.
#pragma once
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace qs::rl {

// The embedded default recipe (sizes and steps fitted to about 20 minutes on 2 cores), or the
// seconds-scale one of the smoke test (quick).
nlohmann::json r1_default_recipe(bool quick);

// Overrides keys of `recipe` by those of `patch`, recursively for objects (qs::Error for a key
// that the recipe does not have: a typo would be silently ignored otherwise).
void merge_recipe(nlohmann::json& recipe, const nlohmann::json& patch, const std::string& where = "recipe");

struct R1Options {
  std::string out_dir;
  nlohmann::json recipe;       // r1_default_recipe(...) with overrides
  uint64_t seed = 0;
  std::string until;           // stop after this stage ("" = all)
  bool quiet = false;
};

// Runs the stages; returns results.json's object.
nlohmann::ordered_json run_r1(const R1Options& o);

}  // namespace qs::rl
