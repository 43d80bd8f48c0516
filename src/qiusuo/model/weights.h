// Named views of a model's weights, in the Hugging Face layout of the real DeepSeek
// checkpoints. Large matrices keep their stored form (BF16 / FP8 / F32 of the checkpoint, copied
// at load or read in the mapping, see WeightPlacement; or a flat F32 training buffer); small
// vectors (norms, router, biases) and the MLA up-projection used by absorbed decode are kept as
// F32 copies.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "qiusuo/core/buffer.h"
#include "qiusuo/core/tensor.h"
#include "qiusuo/kernels/linear.h"
#include "qiusuo/model/config.h"

namespace qs {

class TensorStore;

struct MlaWeights {
  WeightMatrix q_proj;      // [n_h*qk_head_dim, d]        (q_lora_rank == 0)
  WeightMatrix q_a_proj;    // [q_lora_rank, d]            (q_lora_rank > 0)
  const float* q_a_norm = nullptr;  // [q_lora_rank]
  WeightMatrix q_b_proj;    // [n_h*qk_head_dim, q_lora_rank]
  WeightMatrix kv_a_proj;   // [kv_lora_rank + rope_dim, d]  (kv_a_proj_with_mqa)
  const float* kv_a_norm = nullptr;  // [kv_lora_rank]
  WeightMatrix kv_b_proj;   // [n_h*(nope+v), kv_lora_rank]
  WeightMatrix o_proj;      // [d, n_h*v]
  // kv_b_proj dequantized to F32, [n_h, nope+v, kv_lora_rank]: W_UK = rows [0, nope) of each
  // head, W_UV = rows [nope, nope+v). Absorbed decode multiplies by it from both sides.
  const float* kv_b_f32 = nullptr;
};

struct MlpWeights {  // SwiGLU: down(silu(gate(x)) * up(x))
  WeightMatrix gate, up;  // [inter, d]
  WeightMatrix down;      // [d, inter]
};

struct ExpertParallel;

struct MoeWeights {
  const float* router = nullptr;       // gate.weight [n_routed, d]
  const float* score_bias = nullptr;   // gate.e_score_correction_bias [n_routed] (noaux_tc)
  std::vector<MlpWeights> experts;     // n_routed, each of width moe_intermediate_size
  bool has_shared = false;
  MlpWeights shared;                   // width n_shared * moe_intermediate_size
  // Expert parallelism (dist/expert_parallel.h; null: all experts here): the experts of other
  // ranks keep their shapes but no data (never mapped).
  const ExpertParallel* ep = nullptr;
};

struct LayerWeights {
  const float* input_norm = nullptr;     // [d]
  const float* post_attn_norm = nullptr; // [d]
  MlaWeights attn;
  bool moe = false;
  MlpWeights mlp;  // dense layers
  MoeWeights ffn;  // MoE layers
};

struct MtpWeights {  // one multi-token-prediction module (stored as layer L + k)
  const float* enorm = nullptr;   // [d] RMSNorm of the next token's embedding
  const float* hnorm = nullptr;   // [d] RMSNorm of the previous depth's hidden state
  WeightMatrix eh_proj;           // [d, 2d], input = concat(enorm(emb), hnorm(h))
  LayerWeights block;             // one transformer block
  const float* head_norm = nullptr;  // shared_head.norm [d]
  TensorView embed;               // embed_tokens copy [vocab, d] (same values as the main one)
  WeightMatrix head;              // shared_head.head [vocab, d]
};

struct ModelWeights {
  TensorView embed;        // model.embed_tokens.weight [vocab, d] (F32/BF16/F16)
  std::vector<LayerWeights> layers;
  const float* final_norm = nullptr;  // model.norm.weight [d]
  WeightMatrix lm_head;    // lm_head.weight [vocab, d] (or the embedding when tied)
  std::vector<MtpWeights> mtp;

  // Owned F32 copies backing the const float* members above.
  std::vector<Buffer<float>> owned;
  // The checkpoint's matrices copied at load (not with WeightPlacement::mmap) and GPTQ weights
  // repacked, packed into huge-page slabs.
  HugePageArena copies;
  size_t copied_bytes = 0;  // of `copies`: the checkpoint tensors copied as stored
  bool described_only = false;  // WeightPlacement::describe: GPTQ matrices have no data
  const float* keep(Buffer<float>&& b) { owned.push_back(std::move(b)); return owned.back().data(); }

  // Embedding row `token` as F32 into out[d].
  void embed_row(int64_t token, float* out) const;
};

// Every tensor name the checkpoint for `cfg` must contain (main model + MTP), with its shape
// and whether it is a projection that FP8 checkpoints quantize (then a weight_scale_inv of
// [ceil(rows/128), ceil(cols/128)] sits beside it).
struct ExpectedTensor {
  std::string name;
  Shape shape;
  bool quantizable = false;  // projection weight (FP8 in FP8 checkpoints)
  bool f32_only = false;     // e_score_correction_bias
  bool mtp = false;
  bool head = false;         // an LM head (lm_head, an MTP module's shared_head.head): kept wide
                             // by default, quantized on request (qiusuo quantize --quantize-head,
                             // --head-to), so any of the forms loads
};
std::vector<ExpectedTensor> expected_tensors(const ModelConfig& cfg);

// The routed expert a tensor belongs to ("model.layers.L.mlp.experts.E.<...>" -> E, GPTQ parts
// included), or -1 for any other tensor (shared experts among them).
int64_t routed_expert_of(const std::string& name);

// Which parts of a checkpoint this process maps (expert parallelism, dist/expert_parallel.h):
// with `ep`, only this rank's routed experts of every MoE layer get views (the others keep
// their shapes, no data: their pages are never touched); `experts_only` (a follower rank of
// expert-parallel inference) maps nothing but those experts.
//
// `mmap`: whether the kernels read the weights where the checkpoint's files are mapped. By
// default (false) every tensor a view needs is copied once, at load, into anonymous memory
// advised for transparent huge pages, and its mapped pages leave the resident set: the decode
// kernels stream that memory faster than the page cache's 4 KB pages (Zen 5, one process
// alternating: the 6-layer BF16 model decoded 1.56x, FP8 1.21x faster; docs/benchmarks.md), as
// llama.cpp's --no-mmap. Embedding tables stay mapped (a step reads a few rows), and so does
// everything when what this process holds (placement_bytes) is more than 90% of the memory
// available (said on stderr).
// true (`--mmap`): nothing is copied — start-up touches no page, pages are shared with the page
// cache and other processes mapping the same files.
//
// `describe` (`qiusuo info`): as `mmap`, and INT8 / INT4 matrices in the GPTQ layout are checked
// but not repacked into the kernels' tiles — each keeps its dtype, shape and group (so bytes()
// and every count are those of a loaded model) and no data. Such weights cannot run a step.
struct WeightPlacement {
  const ExpertParallel* ep = nullptr;
  bool experts_only = false;
  bool mmap = false;
  bool describe = false;
};

// Bytes of the checkpoint's tensors this placement holds: all of them, or with `ep` every tensor
// but the other ranks' routed experts (`experts_only`: this rank's routed experts alone). What
// a load may copy — the figure load_weights compares with the memory available.
size_t placement_bytes(const TensorStore& store, const WeightPlacement& place);

// Validates every expected tensor (presence, dtype, shape, FP8 scales) and builds the views.
// `with_mtp`: also load the MTP modules (validated whenever present in the config).
ModelWeights load_weights(const ModelConfig& cfg, const TensorStore& store, bool with_mtp = true,
                          const WeightPlacement& place = {});

// What one decode token reads, from a checkpoint's tensor headers (no weight is loaded): bytes
// of the main model (an embedding row, every block with k of its E routed experts, norms, the
// head; FP8 scales and GPTQ scales included), the routed experts' part of that, and the same
// for MTP module 1 (0 when the checkpoint has none). The `--speculative auto` rule reads it.
struct DecodeReadBytes {
  double main = 0, routed = 0, mtp = 0;
};
DecodeReadBytes checkpoint_decode_bytes(const ModelConfig& cfg, const TensorStore& store);

// Views of F32 tensors held elsewhere — a training run's flat parameter buffer: `lookup(name)`
// returns the data of each expected name. Nothing is copied (kv_b_proj, norms, router and
// correction bias included), so a Model over these views sees every later update of the buffer.
ModelWeights weights_from_f32(const ModelConfig& cfg,
                              const std::function<const float*(const std::string&)>& lookup,
                              bool with_mtp);

}  // namespace qs
