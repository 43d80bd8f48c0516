// The data of `qiusuo r1` (DeepSeek-R1 in miniature): everything is generated, nothing downloaded.
//
//   tasks/pretrain.jsonl   problems whose worked solutions make the pretraining corpus
//   tasks/rl.jsonl         training-split problems for GRPO and rejection sampling
//   tasks/test.jsonl       held-out test-split problems (the reported accuracies)
//   tasks/test_b.jsonl     other problems of the same test split (the reproduction check)
//   corpus/part-NNN.txt    the pretraining text: each problem as one conversation rendered with
//                          the R1-Zero chat template (below), the assistant turn a worked solution
//                          "<think>\n...\n</think>\n<answer>...</answer>" in a style drawn per problem
//   tokenizer/             a byte-level BPE trained on the corpus (digits kept as single tokens),
//                          with the R1-Zero chat template in tokenizer_config.json
//   dataset/               the corpus as token shards (`qiusuo prepare`'s layout)
//
// Test problems come from the test split (rl/tasks.h: a hash of the canonical problem), training
// problems from the train split, so no test problem is ever trained on; the RL problems are left
// out of the corpus too (corpus_excludes_rl), so pretraining memorises none of them.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "qiusuo/rl/tasks.h"

namespace qs::rl {

// The chat template in R1-Zero's prompt style (DeepSeek-R1 paper, Table 1), without the long
// preamble (each task prompt already says how to answer): plain "User: ...\n" and "Assistant:
// ...<EOS>" turns and a generation prompt that opens the reasoning ("Assistant: <think>\n"), so
// every completion starts inside <think> (the verifier is told so).
const std::string& r1_zero_chat_template();

// The pre-tokenizer of the r1 tokenizer: DeepSeek-V3's, with every digit its own piece (as
// DeepSeek LLM splits numbers), so that arithmetic is done digit by digit.
nlohmann::json r1_pre_tokenizer();

// Problems of one kind for the corpus, with the share of each worked-solution style.
struct CorpusPart {
  std::string name;
  ArithmeticKnobs knobs;
  int64_t n = 0;
  std::vector<std::pair<std::string, double>> styles;  // (style, weight); rl/tasks.h trace_styles
};

struct R1DataRecipe {
  std::vector<CorpusPart> corpus;
  ArithmeticKnobs rl_knobs;  // the problems of GRPO, rejection sampling and the test sets
  int64_t rl_problems = 4000, test_problems = 200;
  int32_t vocab_size = 512;
  int64_t corpus_files = 32;  // documents of the dataset (one in val at least)
  // Leave the RL problems out of the corpus: GRPO then trains on problems the base has not
  // memorised, as the held-out ones (otherwise it reinforces recall of pretraining answers).
  bool corpus_excludes_rl = true;
};

struct R1Data {
  std::string dir, tokenizer, dataset;
  std::string rl_tasks, test_tasks, test_b_tasks;
  int64_t corpus_problems = 0, corpus_bytes = 0;
  int64_t train_tokens = 0, val_tokens = 0;
  int32_t vocab_size = 0;
};

nlohmann::json recipe_to_json(const R1DataRecipe& r);
void recipe_from_json(const nlohmann::json& j, R1DataRecipe& r);  // keys present override

// Writes the layout above into dir (existing complete outputs are reused).
R1Data build_r1_data(const R1DataRecipe& recipe, const std::string& dir, uint64_t seed, bool verbose);

}  // namespace qs::rl
