// Training checkpoints. A run directory OUT holds:
//   OUT/config.json, OUT/model.safetensors, OUT/tokenizer*.json   the latest weights in Hugging
//       Face layout (what generate/chat/serve and HF-layout readers load; MTP copies of the
//       embedding and head written under the MTP layer's names as the released V3 does)
//   OUT/checkpoints/step-00000500/   a complete, self-contained checkpoint: the same model files
//       plus optimizer.safetensors (AdamW moments) and state.json (step, data position, RNG,
//       run settings, sizes and checksums of every file)
//   OUT/checkpoints/latest           name of the newest complete checkpoint
// Writes are atomic: files go to a temporary directory (each fsynced), the directory is renamed
// into place and fsynced, then `latest` is replaced atomically — a crash at any point leaves the
// previous checkpoint intact and `latest` pointing at a complete one.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "qiusuo/core/rng.h"
#include "qiusuo/io/safetensors.h"
#include "qiusuo/train/data.h"
#include "qiusuo/train/optimizer.h"
#include "qiusuo/train/train_model.h"

namespace qs {

struct TrainerState {
  int64_t step = 0;  // completed optimizer steps
  int64_t tokens_seen = 0;
  DataLoader::State data;
  Rng::State rng{};
  double elapsed_s = 0;          // training time before this checkpoint
  nlohmann::json settings;       // the run's settings (batch, seq_len, precision, ...)
};

// Writes config.json + model.safetensors (F32, or BF16 when bf16) for `m` into `dir` (created),
// and copies tokenizer.json / tokenizer_config.json from tokenizer_dir when given.
void export_hf_model(const std::string& dir, const TrainModel<float>& m, const std::string& tokenizer_dir,
                     bool bf16 = false);

// Saves a checkpoint of step st.step under out_dir/checkpoints, updates `latest`, keeps the
// newest `keep_last` checkpoints. Returns the checkpoint directory.
std::string save_checkpoint(const std::string& out_dir, const TrainModel<float>& m, const AdamW& opt,
                            const TrainerState& st, const std::string& tokenizer_dir, int keep_last = 2);

// The checkpoint `latest` names (empty when there is none), and all complete ones, oldest first.
std::string latest_checkpoint(const std::string& out_dir);
std::vector<std::string> list_checkpoints(const std::string& out_dir);

// Loads a checkpoint directory into m and opt; verifies sizes and checksums of every file and
// that the model config matches. qs::Error (naming the file) on any mismatch or corruption.
TrainerState load_checkpoint(const std::string& ckpt_dir, TrainModel<float>& m, AdamW& opt);

// Copies the weights of a Hugging Face checkpoint (any stored dtype, FP8 dequantized) into m.
// MTP tensors are optional (kept as initialized when the checkpoint has none).
void load_hf_weights(const TensorStore& store, TrainModel<float>& m);

}  // namespace qs
