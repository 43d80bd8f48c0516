#include "qiusuo/model/weights.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "qiusuo/core/error.h"
#include "qiusuo/core/parallel.h"
#include "qiusuo/dist/expert_parallel.h"
#include "qiusuo/io/file.h"
#include "qiusuo/io/safetensors.h"
#include "qiusuo/kernels/convert.h"
#include "qiusuo/kernels/int_weights.h"

namespace qs {

int64_t routed_expert_of(const std::string& name) {
  static const std::string marker = ".mlp.experts.";
  const size_t at = name.find(marker);
  if (at == std::string::npos) return -1;
  const size_t d = at + marker.size();
  if (d >= name.size() || name[d] < '0' || name[d] > '9') return -1;
  return std::strtoll(name.c_str() + d, nullptr, 10);
}

namespace {

std::string layer_prefix(int64_t l) { return "model.layers." + std::to_string(l) + "."; }

// The tensor list of one decoder block (attention + dense MLP or MoE) under `p`.
void block_tensors(const ModelConfig& c, int64_t l, const std::string& p, bool mtp,
                   std::vector<ExpectedTensor>& out) {
  const int64_t d = c.hidden_size, h = c.num_attention_heads;
  auto mat = [&](const std::string& n, int64_t r, int64_t k) { out.push_back({p + n, {r, k}, true, false, mtp}); };
  auto vec = [&](const std::string& n, int64_t k) { out.push_back({p + n, {k}, false, false, mtp}); };
  vec("input_layernorm.weight", d);
  vec("post_attention_layernorm.weight", d);
  if (c.q_lora_rank > 0) {
    mat("self_attn.q_a_proj.weight", c.q_lora_rank, d);
    vec("self_attn.q_a_layernorm.weight", c.q_lora_rank);
    mat("self_attn.q_b_proj.weight", h * c.qk_head_dim(), c.q_lora_rank);
  } else {
    mat("self_attn.q_proj.weight", h * c.qk_head_dim(), d);
  }
  mat("self_attn.kv_a_proj_with_mqa.weight", c.kv_lora_rank + c.qk_rope_head_dim, d);
  vec("self_attn.kv_a_layernorm.weight", c.kv_lora_rank);
  mat("self_attn.kv_b_proj.weight", h * (c.qk_nope_head_dim + c.v_head_dim), c.kv_lora_rank);
  mat("self_attn.o_proj.weight", d, h * c.v_head_dim);
  auto mlp = [&](const std::string& q, int64_t inter) {
    mat(q + "gate_proj.weight", inter, d);
    mat(q + "up_proj.weight", inter, d);
    mat(q + "down_proj.weight", d, inter);
  };
  if (c.is_moe_layer(l)) {
    out.push_back({p + "mlp.gate.weight", {c.n_routed_experts, d}, false, false, mtp});
    if (c.topk_method == TopkMethod::NoauxTc)
      out.push_back({p + "mlp.gate.e_score_correction_bias", {c.n_routed_experts}, false, true, mtp});
    for (int64_t e = 0; e < c.n_routed_experts; ++e)
      mlp("mlp.experts." + std::to_string(e) + ".", c.moe_intermediate_size);
    if (c.n_shared_experts > 0) mlp("mlp.shared_experts.", c.n_shared_experts * c.moe_intermediate_size);
  } else {
    mlp("mlp.", c.intermediate_size);
  }
}

}  // namespace

std::vector<ExpectedTensor> expected_tensors(const ModelConfig& c) {
  std::vector<ExpectedTensor> out;
  const int64_t d = c.hidden_size, V = c.vocab_size;
  out.push_back({"model.embed_tokens.weight", {V, d}});
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) block_tensors(c, l, layer_prefix(l), false, out);
  out.push_back({"model.norm.weight", {d}});
  if (!c.tie_word_embeddings) out.push_back({"lm_head.weight", {V, d}, false, false, false, true});
  for (int64_t k = 0; k < c.num_nextn_predict_layers; ++k) {
    const int64_t l = c.num_hidden_layers + k;
    const std::string p = layer_prefix(l);
    out.push_back({p + "enorm.weight", {d}, false, false, true});
    out.push_back({p + "hnorm.weight", {d}, false, false, true});
    out.push_back({p + "eh_proj.weight", {d, 2 * d}, false, false, true});
    out.push_back({p + "embed_tokens.weight", {V, d}, false, false, true});
    out.push_back({p + "shared_head.norm.weight", {d}, false, false, true});
    out.push_back({p + "shared_head.head.weight", {V, d}, false, false, true, true});
    block_tensors(c, l, p, true, out);
  }
  return out;
}

void ModelWeights::embed_row(int64_t token, float* out) const {
  const int64_t d = embed.shape[1];
  switch (embed.dtype) {
    case DType::F32: std::copy_n(embed.as<float>() + token * d, d, out); break;
    case DType::BF16: bf16_to_f32(embed.as<uint16_t>() + token * d, out, d); break;
    case DType::F16: f16_to_f32(embed.as<uint16_t>() + token * d, out, d); break;
    default: fail(ErrorKind::Internal, "embedding dtype ", dtype_name(embed.dtype));
  }
}

namespace {

// Builds the views given a source of tensors; shared by checkpoint loading and F32 buffers.
class Builder {
 public:
  using Find = std::function<const TensorView*(const std::string&)>;
  // `find` returns the views the model keeps (a checkpoint's tensors copied at load, unless
  // mapped); `header`, if given, the tensors as stored, for what only needs their dtype and shape.
  Builder(const ModelConfig& c, ModelWeights& w, Find find, WeightPlacement place = {}, Find header = {})
      : c_(c), w_(w), find_(std::move(find)), header_(header ? std::move(header) : find_), place_(place) {}

  // GPTQ layers: the matrix `name`, if stored as GPTQ tensors (else false): repacked, or with
  // `data` false only its dtype, shape and group (from the headers; no page read).
  std::function<bool(const std::string& name, WeightMatrix* m, bool data)> gptq;

  WeightMatrix matrix(const std::string& name) {
    if (WeightMatrix g; gptq && gptq(name, &g, true)) return g;
    const TensorView& t = *find_(name);
    WeightMatrix m;
    m.dtype = t.dtype;
    m.rows = t.shape[0];
    m.cols = t.shape[1];
    m.data = t.data;
    if (t.dtype == DType::F8_E4M3) m.scale_inv = find_(scale_name(name))->as<float>();
    return m;
  }
  TensorView tensor(const std::string& name) { return *find_(name); }
  // F32 vectors are used in place (a training buffer's norms, router and bias stay live);
  // others get an F32 copy.
  const float* vec(const std::string& name) {
    const TensorView& t = *find_(name);
    if (t.dtype == DType::F32 && reinterpret_cast<uintptr_t>(t.data) % alignof(float) == 0)
      return static_cast<const float*>(t.data);
    Buffer<float> b(size_t(t.numel()), false);
    to_f32(t, b.data());
    return w_.keep(std::move(b));
  }
  const float* kv_b_f32(const WeightMatrix& m) {
    if (place_.describe) return nullptr;  // only a step reads it
    Buffer<float> b(size_t(m.rows * m.cols), false);
    if (m.rows > 0) m.dequant_rows(0, m.rows, b.data());
    return w_.keep(std::move(b));
  }
  MlpWeights mlp(const std::string& p) {
    return {matrix(p + "gate_proj.weight"), matrix(p + "up_proj.weight"), matrix(p + "down_proj.weight")};
  }
  // Shapes and dtype only (an expert of another rank: its pages are never touched, nothing is
  // copied).
  WeightMatrix shape_only(const std::string& name) {
    if (WeightMatrix g; gptq && gptq(name, &g, false)) return g;
    const TensorView& t = *header_(name);
    return WeightMatrix{t.dtype, t.shape[0], t.shape[1], nullptr, nullptr};
  }
  MlpWeights expert(const std::string& p, int64_t e) {
    if (!place_.ep || place_.ep->placement.owns(e)) return mlp(p);
    return {shape_only(p + "gate_proj.weight"), shape_only(p + "up_proj.weight"), shape_only(p + "down_proj.weight")};
  }
  LayerWeights block(int64_t l, const std::string& p) {
    if (place_.experts_only) return experts_of_block(l, p);
    LayerWeights lw;
    lw.input_norm = vec(p + "input_layernorm.weight");
    lw.post_attn_norm = vec(p + "post_attention_layernorm.weight");
    auto& a = lw.attn;
    const std::string s = p + "self_attn.";
    if (c_.q_lora_rank > 0) {
      a.q_a_proj = matrix(s + "q_a_proj.weight");
      a.q_a_norm = vec(s + "q_a_layernorm.weight");
      a.q_b_proj = matrix(s + "q_b_proj.weight");
    } else {
      a.q_proj = matrix(s + "q_proj.weight");
    }
    a.kv_a_proj = matrix(s + "kv_a_proj_with_mqa.weight");
    a.kv_a_norm = vec(s + "kv_a_layernorm.weight");
    a.kv_b_proj = matrix(s + "kv_b_proj.weight");
    a.kv_b_f32 = a.kv_b_proj.dtype == DType::F32 ? static_cast<const float*>(a.kv_b_proj.data)
                                                  : kv_b_f32(a.kv_b_proj);
    a.o_proj = matrix(s + "o_proj.weight");
    lw.moe = c_.is_moe_layer(l);
    if (lw.moe) {
      lw.ffn.router = vec(p + "mlp.gate.weight");
      if (c_.topk_method == TopkMethod::NoauxTc) lw.ffn.score_bias = vec(p + "mlp.gate.e_score_correction_bias");
      for (int64_t e = 0; e < c_.n_routed_experts; ++e)
        lw.ffn.experts.push_back(expert(p + "mlp.experts." + std::to_string(e) + ".", e));
      if (c_.n_shared_experts > 0) {
        lw.ffn.has_shared = true;
        lw.ffn.shared = mlp(p + "mlp.shared_experts.");
      }
      lw.ffn.ep = place_.ep;
    } else {
      lw.mlp = mlp(p + "mlp.");
    }
    return lw;
  }
  // A follower rank's view of a block: its routed experts, nothing else.
  LayerWeights experts_of_block(int64_t l, const std::string& p) {
    LayerWeights lw;
    lw.moe = c_.is_moe_layer(l);
    if (!lw.moe) return lw;
    for (int64_t e = 0; e < c_.n_routed_experts; ++e)
      lw.ffn.experts.push_back(expert(p + "mlp.experts." + std::to_string(e) + ".", e));
    lw.ffn.ep = place_.ep;
    return lw;
  }
  void build(bool with_mtp) {
    if (place_.experts_only) {
      const int64_t L = c_.num_hidden_layers, D = with_mtp ? c_.num_nextn_predict_layers : 0;
      for (int64_t l = 0; l < L; ++l) w_.layers.push_back(block(l, layer_prefix(l)));
      for (int64_t k = 0; k < D; ++k) {
        MtpWeights m;
        m.block = block(L + k, layer_prefix(L + k));
        w_.mtp.push_back(std::move(m));
      }
      return;
    }
    w_.embed = tensor("model.embed_tokens.weight");
    for (int64_t l = 0; l < c_.num_hidden_layers; ++l) w_.layers.push_back(block(l, layer_prefix(l)));
    w_.final_norm = vec("model.norm.weight");
    if (c_.tie_word_embeddings) {
      const TensorView& e = w_.embed;
      w_.lm_head = WeightMatrix{e.dtype, e.shape[0], e.shape[1], e.data, nullptr};
    } else {
      w_.lm_head = matrix("lm_head.weight");
    }
    if (!with_mtp) return;
    for (int64_t k = 0; k < c_.num_nextn_predict_layers; ++k) {
      const int64_t l = c_.num_hidden_layers + k;
      const std::string p = layer_prefix(l);
      MtpWeights m;
      m.enorm = vec(p + "enorm.weight");
      m.hnorm = vec(p + "hnorm.weight");
      m.eh_proj = matrix(p + "eh_proj.weight");
      m.block = block(l, p);
      m.head_norm = vec(p + "shared_head.norm.weight");
      m.embed = tensor(p + "embed_tokens.weight");
      m.head = matrix(p + "shared_head.head.weight");
      w_.mtp.push_back(std::move(m));
    }
  }

  static std::string scale_name(const std::string& name) { return name + "_scale_inv"; }

 private:
  static void to_f32(const TensorView& t, float* out) {
    const int64_t n = t.numel();
    switch (t.dtype) {
      case DType::F32: std::copy_n(t.as<float>(), n, out); break;
      case DType::BF16: bf16_to_f32(t.as<uint16_t>(), out, n); break;
      case DType::F16: f16_to_f32(t.as<uint16_t>(), out, n); break;
      default: fail(ErrorKind::Internal, "vector dtype ", dtype_name(t.dtype));
    }
  }
  const ModelConfig& c_;
  ModelWeights& w_;
  Find find_, header_;
  WeightPlacement place_;
};

}  // namespace

namespace {
// "<base>.weight" -> "<base>": a GPTQ layer's tensors are <base>.qweight, .scales, .qzeros, .g_idx.
std::string gptq_base(const std::string& name) {
  const std::string suffix = ".weight";
  return name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0
             ? name.substr(0, name.size() - suffix.size())
             : name;
}

// `bytes` bytes at `src` (a mapped tensor) copied into the model's huge-page arena; the two
// threads of a laptop copy halves (the page cache is read at ~5 GB/s per core).
const void* copy_to_huge_pages(HugePageArena& arena, const void* src, size_t bytes) {
  const auto* s = static_cast<const uint8_t*>(src);
  auto* d = static_cast<uint8_t*>(arena.alloc(bytes));
  populate_pages(src, bytes);
  constexpr int64_t kChunk = int64_t(1) << 21;
  parallel_for(int64_t(bytes), kChunk, [&](int64_t b0, int64_t e0) { std::memcpy(d + b0, s + b0, size_t(e0 - b0)); });
  return d;
}

// What a GPTQ layer's matrix becomes at load (kernels/int_weights.h).
enum class GptqLoad {
  Repack,    // the kernels' tiles, in storage the model keeps
  Describe,  // checked (the small tensors' values too), not repacked: WeightPlacement::describe
  Layout,    // from the headers alone: an expert another rank holds
};

// The GPTQ layer `name` as `how` says (false: `name` is not stored as GPTQ tensors).
bool gptq_matrix(const TensorStore& store, const std::map<std::string, Shape>& shapes, ModelWeights& w,
                 const std::string& name, WeightMatrix* m, GptqLoad how) {
  if (store.find(name)) return false;
  const std::string base = gptq_base(name);
  const TensorView* qweight = store.find(base + ".qweight");
  if (!qweight) return false;
  const auto it = shapes.find(name);
  QS_CHECK(it != shapes.end() && it->second.size() == 2, "GPTQ tensors for '", name, "', which is not a matrix");
  const GptqTensors t{qweight, store.find(base + ".scales"), store.find(base + ".qzeros"), store.find(base + ".g_idx")};
  const int64_t rows = it->second[0], cols = it->second[1];
  if (how == GptqLoad::Layout) {
    *m = gptq_layout(base, t, rows, cols);
    return true;
  }
  if (how == GptqLoad::Describe) {
    *m = gptq_described(base, t, rows, cols);
    for (const char* part : {".qzeros", ".g_idx"}) store.release_pages(base + part);
    return true;
  }
  populate_pages(qweight->data, qweight->nbytes);
  *m = int_weights_from_gptq(base, t, rows, cols, w.copies);
  // The GPTQ tensors were read once: their mapped pages leave the resident set (a full-depth
  // V2-Lite INT4 checkpoint otherwise held 15 GB resident: the 8.4 GB repacked copy + the file).
  for (const char* part : {".qweight", ".scales", ".qzeros", ".g_idx"}) store.release_pages(base + part);
  return true;
}
}  // namespace

DecodeReadBytes checkpoint_decode_bytes(const ModelConfig& cfg, const TensorStore& store) {
  DecodeReadBytes b;
  const double k_of_e = cfg.n_routed_experts > 0 ? double(cfg.num_experts_per_tok) / double(cfg.n_routed_experts) : 0;
  const std::string mtp_prefix = layer_prefix(cfg.num_hidden_layers);  // module 1 only
  const bool has_mtp = cfg.num_nextn_predict_layers > 0 && store.find(mtp_prefix + "eh_proj.weight") != nullptr;
  for (const auto& e : expected_tensors(cfg)) {
    if (e.mtp && (!has_mtp || e.name.compare(0, mtp_prefix.size(), mtp_prefix) != 0)) continue;
    double bytes = 0;
    if (const TensorView* t = store.find(e.name)) {
      bytes = double(t->nbytes);
      if (const TensorView* s = store.find(Builder::scale_name(e.name))) bytes += double(s->nbytes);
    } else {
      for (const char* part : {".qweight", ".scales", ".qzeros"})
        if (const TensorView* t = store.find(gptq_base(e.name) + part)) bytes += double(t->nbytes);
    }
    if (e.name.find("embed_tokens") != std::string::npos) bytes /= double(cfg.vocab_size);  // one row
    const bool routed = routed_expert_of(e.name) >= 0;
    if (routed) bytes *= k_of_e;
    (e.mtp ? b.mtp : b.main) += bytes;
    if (routed && !e.mtp) b.routed += bytes;
  }
  return b;
}

size_t placement_bytes(const TensorStore& store, const WeightPlacement& place) {
  if (!place.ep) return store.total_bytes();
  size_t n = 0;
  for (const std::string& name : store.names()) {
    const int64_t e = routed_expert_of(name);
    if (e < 0 ? !place.experts_only : place.ep->placement.owns(e)) n += store.get(name).nbytes;
  }
  return n;
}

ModelWeights load_weights(const ModelConfig& cfg_in, const TensorStore& store, bool with_mtp,
                          const WeightPlacement& place) {
  // MTP modules are optional in a checkpoint (some conversions drop them): a module with none
  // of its tensors is skipped; one with some of them must have all.
  ModelConfig cfg = cfg_in;
  int64_t present = 0;
  while (present < cfg.num_nextn_predict_layers &&
         store.find(layer_prefix(cfg.num_hidden_layers + present) + "eh_proj.weight"))
    ++present;
  if (!with_mtp) present = 0;
  // Validate everything first so that a bad checkpoint fails before any work.
  for (const auto& e : expected_tensors(cfg)) {
    if (e.mtp) {
      const int64_t k = std::stoll(e.name.substr(13)) - cfg.num_hidden_layers;  // "model.layers.N."
      if (k >= present) {
        if (with_mtp && store.find(e.name))
          fail(ErrorKind::Format, "checkpoint ", store.dir(), " has MTP tensor '", e.name,
               "' but not the module's eh_proj.weight");
        continue;
      }
    }
    if (e.f32_only) {
      store.require(e.name, e.shape);
      continue;
    }
    if (!e.quantizable && !e.head) {
      store.require(e.name, e.shape, {DType::F32, DType::BF16, DType::F16});
      continue;
    }
    if (!store.find(e.name) && store.find(gptq_base(e.name) + ".qweight")) continue;  // checked when repacked
    const TensorView& t = store.require(e.name, e.shape, {DType::F32, DType::BF16, DType::F16, DType::F8_E4M3});
    if (t.dtype == DType::F8_E4M3) {
      const Shape s{(e.shape[0] + 127) / 128, (e.shape[1] + 127) / 128};
      store.require(Builder::scale_name(e.name), s, {DType::F32});
    }
  }
  ModelWeights w;
  w.described_only = place.describe;
  cfg.num_nextn_predict_layers = present;
  if (place.ep)
    QS_CHECK(cfg.n_routed_experts >= place.ep->placement.ranks, "expert parallelism over ",
             place.ep->placement.ranks, " ranks needs at least as many routed experts (the model has ",
             cfg.n_routed_experts, ")");
  // Copies need the memory: when what this process holds of the checkpoint (all of it, or an
  // expert-parallel rank's share) is more than 90% of what the machine has available, the
  // weights are read in the mapping instead (paged from disk as needed, slowly).
  bool mapped = place.mmap || place.describe;
  if (!mapped) {
    const size_t need = placement_bytes(store, place), avail = available_memory_bytes();
    if (avail > 0 && double(need) > 0.9 * double(avail)) {
      std::fprintf(stderr,
                   "qiusuo: the %.2f GB of weights this process holds exceed 90%% of the %.2f GB of memory "
                   "available: they are read where the files are mapped (as --mmap), not copied\n",
                   double(need) / 1e9, double(avail) / 1e9);
      mapped = true;
    }
  }
  std::map<std::string, TensorView> copies;  // !mapped: the copies the views point into
  auto tensor = [&](const std::string& n) -> const TensorView* {
    const TensorView& t = store.get(n);
    // Embedding tables stay mapped: a step reads a few of their rows, not the whole table.
    if (mapped || n.ends_with("embed_tokens.weight")) return &t;
    auto it = copies.find(n);
    if (it == copies.end()) {
      TensorView c = t;
      c.data = copy_to_huge_pages(w.copies, t.data, t.nbytes);
      w.copied_bytes += t.nbytes;
      store.release_pages(n);
      it = copies.emplace(n, std::move(c)).first;
    }
    return &it->second;
  };
  Builder b(cfg, w, tensor, place, [&](const std::string& n) { return &store.get(n); });
  std::map<std::string, Shape> shapes;
  for (const auto& e : expected_tensors(cfg)) shapes.emplace(e.name, e.shape);
  b.gptq = [&](const std::string& n, WeightMatrix* m, bool data) {
    const GptqLoad how = !data ? GptqLoad::Layout : place.describe ? GptqLoad::Describe : GptqLoad::Repack;
    return gptq_matrix(store, shapes, w, n, m, how);
  };
  b.build(present > 0);
  return w;
}

ModelWeights weights_from_f32(const ModelConfig& cfg,
                              const std::function<const float*(const std::string&)>& lookup,
                              bool with_mtp) {
  std::map<std::string, TensorView> views;
  for (const auto& e : expected_tensors(cfg)) {
    if (e.mtp && !with_mtp) continue;
    TensorView t;
    t.dtype = DType::F32;
    t.shape = e.shape;
    t.data = lookup(e.name);
    QS_CHECK(t.data, "no data for tensor '", e.name, "'");
    t.nbytes = size_t(t.numel()) * 4;
    views.emplace(e.name, t);
  }
  ModelWeights w;
  Builder b(cfg, w, [&](const std::string& n) {
    auto it = views.find(n);
    if (it == views.end()) fail(ErrorKind::Internal, "no tensor '", n, "'");
    return &it->second;
  });
  b.build(with_mtp);
  return w;
}

}  // namespace qs
