// Views of a model's parameters (or of their gradients) in flat training buffers, by module.
// T is float for training, double for gradient checks. Same structure as weights.h, but plain
// T* into one buffer; a gradient set has exactly the same layout.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "qiusuo/model/config.h"

namespace qs {

template <typename T>
struct MlaParamsT {
  T* q_a = nullptr;      // [q_lora, d]
  T* q_a_norm = nullptr; // [q_lora]
  T* q_b = nullptr;      // [H*dq, q_lora]
  T* q_proj = nullptr;   // [H*dq, d]   (no query compression)
  T* kv_a = nullptr;     // [R + dr, d]
  T* kv_a_norm = nullptr;// [R]
  T* kv_b = nullptr;     // [H*(dn+dv), R]
  T* o = nullptr;        // [d, H*dv]
};

template <typename T>
struct MlpParamsT {
  T* gate = nullptr;  // [I, d]
  T* up = nullptr;    // [I, d]
  T* down = nullptr;  // [d, I]
};

struct ExpertParallel;

template <typename T>
struct MoeParamsT {
  T* router = nullptr;  // [E, d]
  T* bias = nullptr;    // [E] e_score_correction_bias (noaux_tc; selection only, not trained by the optimizer)
  std::vector<MlpParamsT<T>> experts;
  bool has_shared = false;
  MlpParamsT<T> shared;
  // Expert parallelism (dist/expert_parallel.h; null: every expert is computed here): this
  // rank computes only the experts ep->placement gives it.
  const ExpertParallel* ep = nullptr;
};

template <typename T>
struct BlockParamsT {
  T* input_norm = nullptr;
  T* post_norm = nullptr;
  MlaParamsT<T> attn;
  bool moe = false;
  MlpParamsT<T> mlp;
  MoeParamsT<T> ffn;
};

template <typename T>
struct MtpParamsT {
  T* enorm = nullptr;
  T* hnorm = nullptr;
  T* eh_proj = nullptr;   // [d, 2d]
  T* head_norm = nullptr; // shared_head.norm
  BlockParamsT<T> block;
};

template <typename T>
struct ModelParamsT {
  T* embed = nullptr;       // [V, d] (shared by the MTP modules)
  std::vector<BlockParamsT<T>> layers;
  T* final_norm = nullptr;  // [d]
  T* head = nullptr;        // [V, d] (the embedding when tied; shared by the MTP modules)
  std::vector<MtpParamsT<T>> mtp;
};

// Builds the views from `at(name)` (Hugging Face tensor names). The MTP modules' embed_tokens
// and shared_head.head are not separate parameters: they are the main embedding and head.
template <typename T>
ModelParamsT<T> make_param_views(const ModelConfig& c, const std::function<T*(const std::string&)>& at);

}  // namespace qs
