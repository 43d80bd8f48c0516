#include "qiusuo/model/init.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <span>

#include "qiusuo/core/buffer.h"
#include "qiusuo/core/error.h"
#include "qiusuo/core/parallel.h"
#include "qiusuo/core/rng.h"
#include "qiusuo/io/file.h"
#include "qiusuo/io/safetensors.h"
#include "qiusuo/model/weights.h"

namespace qs {
namespace {

bool ends_with(const std::string& s, const std::string& suf) {
  return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}

uint64_t name_hash(const std::string& s) {  // FNV-1a
  uint64_t h = 1469598103934665603ull;
  for (unsigned char ch : s) h = (h ^ ch) * 1099511628211ull;
  return h;
}

// Fills out[n] with U(-a, a) values, a = std·√3, from (seed, name); chunked streams so that
// the result does not depend on the thread count.
void fill_uniform(float* out, int64_t n, double std, uint64_t seed, const std::string& name) {
  constexpr int64_t kChunk = 1 << 16;
  const uint64_t base = seed * 0x9e3779b97f4a7c15ull ^ name_hash(name);
  const double a = std * std::sqrt(3.0);
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  parallel_for(chunks, 1, [&](int64_t b, int64_t e) {
    for (int64_t c = b; c < e; ++c) {
      Rng rng(base + uint64_t(c) * 0xbf58476d1ce4e5b9ull);
      const int64_t end = std::min(n, (c + 1) * kChunk);
      for (int64_t i = c * kChunk; i < end; ++i) out[i] = float((2.0 * rng.uniform() - 1.0) * a);
    }
  });
}

struct Planned {
  ExpectedTensor t;
  DType dtype;
  bool with_scale;
  size_t bytes;
};

}  // namespace

double init_std(const ModelConfig& cfg, const std::string& name, int64_t fan_in) {
  const double d = double(cfg.hidden_size);
  if (ends_with(name, "embed_tokens.weight")) return cfg.tie_word_embeddings ? 1.0 / std::sqrt(d) : 1.0;
  if (ends_with(name, "lm_head.weight") || ends_with(name, "shared_head.head.weight")) return 1.0 / std::sqrt(d);
  if (ends_with(name, "e_score_correction_bias")) return 0.01;
  double s = 1.0 / std::sqrt(double(fan_in));
  if (ends_with(name, "o_proj.weight") || ends_with(name, "down_proj.weight"))
    s /= std::sqrt(2.0 * double(cfg.num_hidden_layers + cfg.num_nextn_predict_layers));
  return s;
}

void quantize_fp8_blocks(const float* w, int64_t rows, int64_t cols, uint8_t* codes, float* scale_inv) {
  const int64_t br = (rows + 127) / 128, bc = (cols + 127) / 128;
  parallel_for(br, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t bi = b0; bi < b1; ++bi)
      for (int64_t bj = 0; bj < bc; ++bj) {
        const int64_t r1 = std::min(rows, (bi + 1) * 128), c1 = std::min(cols, (bj + 1) * 128);
        float amax = 0;
        for (int64_t r = bi * 128; r < r1; ++r)
          for (int64_t c = bj * 128; c < c1; ++c) amax = std::max(amax, std::fabs(w[r * cols + c]));
        const float scale = amax > 0 ? amax / 448.0f : 1.0f;
        scale_inv[bi * bc + bj] = scale;
        for (int64_t r = bi * 128; r < r1; ++r)
          for (int64_t c = bj * 128; c < c1; ++c) codes[r * cols + c] = f32_to_fp8e4m3(w[r * cols + c] / scale);
      }
  });
}

size_t write_random_checkpoint(const ModelConfig& cfg_in, const std::string& dir, const InitOptions& opt) {
  ModelConfig cfg = cfg_in;
  cfg.fp8 = opt.dtype == InitDType::FP8;
  cfg.torch_dtype = opt.dtype == InitDType::F32 ? "float32" : "bfloat16";
  make_dirs(dir);
  // Plan dtypes and shards.
  std::vector<Planned> plan;
  for (const auto& t : expected_tensors(cfg)) {
    Planned p{t, DType::BF16, false, 0};
    if (opt.dtype == InitDType::F32 || t.f32_only) p.dtype = DType::F32;
    else if (opt.dtype == InitDType::FP8 && t.quantizable) { p.dtype = DType::F8_E4M3; p.with_scale = true; }
    p.bytes = size_t(shape_numel(t.shape)) * dtype_size(p.dtype);
    if (p.with_scale) p.bytes += size_t(((t.shape[0] + 127) / 128) * ((t.shape[1] + 127) / 128)) * 4;
    plan.push_back(p);
  }
  std::vector<std::vector<size_t>> shards(1);
  size_t cur = 0, total = 0;
  for (size_t i = 0; i < plan.size(); ++i) {
    if (cur > 0 && cur + plan[i].bytes > opt.shard_bytes) { shards.emplace_back(); cur = 0; }
    shards.back().push_back(i);
    cur += plan[i].bytes;
    total += plan[i].bytes;
  }
  nlohmann::json weight_map = nlohmann::json::object();
  char fname[64];
  for (size_t s = 0; s < shards.size(); ++s) {
    if (shards.size() == 1) std::snprintf(fname, sizeof fname, "model.safetensors");
    else std::snprintf(fname, sizeof fname, "model-%05zu-of-%05zu.safetensors", s + 1, shards.size());
    SafetensorsWriter w;
    w.set_metadata("format", "pt");
    // The shard's entries in order (each tensor, an FP8 one followed by its scale_inv), each
    // produced when the writer asks for it (SafetensorsWriter::write with data_of) into buffers
    // reused across the shard: one tensor in memory at a time. Holding a 4 GB shard's tensors
    // until it was written grew the heap by ~2.5 GB a shard (freed buffers the next shard did
    // not reuse), and a 27-layer V2-Lite init was killed at 19.5 GB on a 24 GB machine.
    struct Entry { size_t plan; bool scale; };
    std::vector<Entry> entries;
    size_t most = 0, most_bytes = 0, most_scales = 0;
    for (size_t i : shards[s]) {
      const Planned& p = plan[i];
      const int64_t n = shape_numel(p.t.shape);
      most = std::max(most, size_t(n));
      most_bytes = std::max(most_bytes, size_t(n) * dtype_size(p.dtype));
      w.add(p.t.name, p.dtype, p.t.shape, nullptr);
      weight_map[p.t.name] = fname;
      entries.push_back({i, false});
      if (p.dtype == DType::F8_E4M3) {
        const int64_t br = (p.t.shape[0] + 127) / 128, bc = (p.t.shape[1] + 127) / 128;
        most_scales = std::max(most_scales, size_t(br * bc));
        w.add(p.t.name + "_scale_inv", DType::F32, {br, bc}, nullptr);
        weight_map[p.t.name + "_scale_inv"] = fname;
        entries.push_back({i, true});
      }
    }
    // One F32 scratch for the shard's tensors, sized for its largest, instead of one allocation
    // per tensor (freed per-tensor buffers fragment the heap: see above).
    Buffer<float> scratch(most, false);
    Buffer<uint8_t> bytes(most_bytes, false);
    Buffer<float> scales(most_scales, false);
    auto produce = [&](size_t k) -> const void* {
      if (entries[k].scale) return scales.data();  // computed with its weight, the entry before
      const Planned& p = plan[entries[k].plan];
      const int64_t n = shape_numel(p.t.shape);
      const std::span<float> f(scratch.data(), size_t(n));
      const bool is_norm = ends_with(p.t.name, "norm.weight");
      if (is_norm) std::fill(f.begin(), f.end(), 1.0f);
      else fill_uniform(f.data(), n, init_std(cfg, p.t.name, p.t.shape.size() > 1 ? p.t.shape[1] : 1), opt.seed, p.t.name);
      if (p.dtype == DType::F32) return f.data();
      if (p.dtype == DType::BF16) {
        auto* o = reinterpret_cast<uint16_t*>(bytes.data());
        parallel_for(n, 1 << 16, [&](int64_t b, int64_t e) {
          for (int64_t i = b; i < e; ++i) o[i] = f32_to_bf16(f[i]);
        });
        return bytes.data();
      }
      quantize_fp8_blocks(f.data(), p.t.shape[0], p.t.shape[1], bytes.data(), scales.data());
      return bytes.data();
    };
    if (opt.verbose) std::fprintf(stderr, "writing %s (%.1f MB)\n", fname, double(w.data_bytes()) / 1e6);
    w.write(path_join(dir, fname), produce);
  }
  std::error_code ec;
  if (shards.size() > 1) {
    nlohmann::json idx = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
    write_text_file_atomic(path_join(dir, "model.safetensors.index.json"), idx.dump(2) + "\n");
  } else if (file_exists(path_join(dir, "model.safetensors.index.json"))) {
    std::remove(path_join(dir, "model.safetensors.index.json").c_str());
  }
  write_text_file_atomic(path_join(dir, "config.json"), model_config_to_json(cfg).dump(2) + "\n");
  return total;
}

}  // namespace qs
