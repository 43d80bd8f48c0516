#include "qiusuo/model/kv_cache.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "qiusuo/core/dtype.h"
#include "qiusuo/core/error.h"
#include "qiusuo/kernels/convert.h"
#include "qiusuo/kernels/vec_ops.h"
#include "qiusuo/model/forward.h"

namespace qs {

const char* kv_dtype_name(KvDtype d) {
  switch (d) {
    case KvDtype::F32: return "f32";
    case KvDtype::BF16: return "bf16";
    case KvDtype::FP8: return "fp8";
  }
  return "?";
}

KvDtype parse_kv_dtype(const std::string& name) {
  if (name == "f32") return KvDtype::F32;
  if (name == "bf16") return KvDtype::BF16;
  if (name == "fp8") return KvDtype::FP8;
  fail("KV cache type must be f32, bf16 or fp8, got '", name, "'");
}

namespace {
constexpr int64_t kFp8Group = 128;  // latent values per F32 scale
int64_t fp8_groups(int64_t lora) { return (lora + kFp8Group - 1) / kFp8Group; }
}  // namespace

size_t kv_row_bytes(KvDtype d, int64_t lora, int64_t rope) {
  size_t n = 0;
  switch (d) {
    case KvDtype::F32: n = size_t(lora + rope) * 4; break;
    case KvDtype::BF16: n = size_t(lora + rope) * 2; break;
    case KvDtype::FP8: n = size_t(lora) + size_t(fp8_groups(lora)) * 4 + size_t(rope) * 2; break;
  }
  return (n + 15) / 16 * 16;  // rows 16-byte aligned (656 and 1152 bytes at V2/V3 widths already are)
}

KVPool::KVPool(const ModelConfig& cfg, int64_t num_blocks, int64_t block_size, int64_t num_layers, KvDtype dtype)
    : blocks_(num_blocks),
      block_(block_size),
      layers_(num_layers < 0 ? cfg.num_hidden_layers : num_layers),
      lora_(cfg.kv_lora_rank),
      width_(cfg.kv_lora_rank + cfg.qk_rope_head_dim),
      dtype_(dtype),
      row_bytes_(kv_row_bytes(dtype, cfg.kv_lora_rank, cfg.qk_rope_head_dim)) {
  QS_CHECK(num_blocks > 0 && block_size > 0, "KV pool needs a positive number of blocks and block size (got ",
           num_blocks, " blocks of ", block_size, ")");
  QS_CHECK(layers_ > 0, "KV pool needs at least one layer");
  const double bytes = double(num_blocks) * double(block_size) * double(layers_) * double(row_bytes_);
  QS_CHECK(bytes < 1e12, "KV pool of ", num_blocks, " blocks x ", block_size, " tokens would take ", bytes / 1e9,
           " GB");
  data_.resize(size_t(blocks_ * layers_ * block_) * row_bytes_, false);
}

void KVPool::store(int64_t layer, int64_t block, int64_t offset, const float* src) {
  uint8_t* r = row(layer, block, offset);
  switch (dtype_) {
    case KvDtype::F32: std::memcpy(r, src, size_t(width_) * sizeof(float)); break;
    case KvDtype::BF16: f32_to_bf16(src, reinterpret_cast<uint16_t*>(r), width_); break;
    case KvDtype::FP8: {
      // [lora E4M3 codes][groups F32 scales][rope BF16]
      for (int64_t g = 0; g < fp8_groups(lora_); ++g) {
        const int64_t c0 = g * kFp8Group, c1 = std::min(lora_, c0 + kFp8Group);
        float amax = 0;
        for (int64_t c = c0; c < c1; ++c) amax = std::max(amax, std::abs(src[c]));
        const float scale = amax > 0 ? amax / 448.0f : 1.0f;
        std::memcpy(r + lora_ + g * 4, &scale, sizeof scale);
        const float inv = 1.0f / scale;
        for (int64_t c = c0; c < c1; ++c) r[c] = f32_to_fp8e4m3(src[c] * inv);
      }
      f32_to_bf16(src + lora_, reinterpret_cast<uint16_t*>(r + lora_ + fp8_groups(lora_) * 4), width_ - lora_);
      break;
    }
  }
}

void KVPool::load(int64_t layer, int64_t block, int64_t offset, int64_t n, float* dst) const {
  const uint8_t* r = row(layer, block, offset);
  const bool padded = row_bytes_ != size_t(width_) * (dtype_ == KvDtype::F32 ? 4 : 2);  // F32/BF16 rows
  switch (dtype_) {
    case KvDtype::F32:
      if (!padded) std::memcpy(dst, r, size_t(n * width_) * sizeof(float));
      else
        for (int64_t i = 0; i < n; ++i) std::memcpy(dst + i * width_, r + size_t(i) * row_bytes_, size_t(width_) * 4);
      break;
    case KvDtype::BF16:
      if (!padded) bf16_to_f32(reinterpret_cast<const uint16_t*>(r), dst, n * width_);
      else
        for (int64_t i = 0; i < n; ++i)
          bf16_to_f32(reinterpret_cast<const uint16_t*>(r + size_t(i) * row_bytes_), dst + i * width_, width_);
      break;
    case KvDtype::FP8:
      for (int64_t i = 0; i < n; ++i, r += row_bytes_, dst += width_) {
        fp8e4m3_to_f32(r, dst, lora_);
        for (int64_t g = 0; g < fp8_groups(lora_); ++g) {
          float sc;
          std::memcpy(&sc, r + lora_ + g * 4, sizeof sc);
          const int64_t c0 = g * kFp8Group;
          scale(dst + c0, sc, std::min(lora_, c0 + kFp8Group) - c0);  // SIMD (this file is built for the baseline ISA)
        }
        bf16_to_f32(reinterpret_cast<const uint16_t*>(r + lora_ + fp8_groups(lora_) * 4), dst + lora_, width_ - lora_);
      }
      break;
  }
}

void KVPool::load_bf16(int64_t layer, int64_t block, int64_t offset, int64_t n, uint16_t* dst) const {
  const uint8_t* r = row(layer, block, offset);
  const int64_t groups = fp8_groups(lora_);
  std::vector<float> scales(dtype_ == KvDtype::FP8 ? size_t(groups) : 0);
  for (int64_t i = 0; i < n; ++i, r += row_bytes_, dst += width_) {
    // The rows from memory a few ahead of their conversion (cold rows: 21 -> 12 us per 256 FP8
    // rows of V2-Lite's width, one Zen 5 thread).
    if (i + 6 < n)
      for (size_t o = 0; o < row_bytes_; o += 64) __builtin_prefetch(r + 6 * row_bytes_ + o);
    switch (dtype_) {
      case KvDtype::F32: f32_to_bf16(reinterpret_cast<const float*>(r), dst, width_); break;
      case KvDtype::BF16: std::memcpy(dst, r, size_t(width_) * sizeof(uint16_t)); break;
      case KvDtype::FP8:
        std::memcpy(scales.data(), r + lora_, scales.size() * sizeof(float));  // [lora codes][scales][rope]
        fp8e4m3_to_bf16(r, dst, lora_, scales.data(), kFp8Group);
        std::memcpy(dst + lora_, r + lora_ + groups * 4, size_t(width_ - lora_) * sizeof(uint16_t));
        break;
    }
  }
}

void KVPool::copy_block(int64_t dst, int64_t src, int64_t rows) {
  QS_CHECK(dst >= 0 && dst < blocks_ && src >= 0 && src < blocks_ && rows >= 0 && rows <= block_,
           "KV pool: bad block copy ", src, " -> ", dst, " (", rows, " rows)");
  if (dst == src || rows == 0) return;
  for (int64_t l = 0; l < layers_; ++l) std::memcpy(row(l, dst, 0), row(l, src, 0), size_t(rows) * row_bytes_);
}

// ---- KVCache ---------------------------------------------------------------------------------

KVCache::KVCache(const ModelConfig& cfg, int64_t capacity_tokens, int64_t max_sequences, int64_t block_size,
                 int64_t num_layers, KvDtype dtype)
    : pool_(cfg, (std::max<int64_t>(capacity_tokens, 1) + block_size - 1) / std::max<int64_t>(block_size, 1),
            block_size, num_layers, dtype) {
  QS_CHECK(capacity_tokens > 0, "KV cache needs a positive capacity");
  free_.reserve(size_t(pool_.num_blocks()));
  for (int64_t b = pool_.num_blocks() - 1; b >= 0; --b) free_.push_back(int32_t(b));
  seqs_.reserve(size_t(std::max<int64_t>(max_sequences, 1)));
}

KVCache::Seq& KVCache::get(int64_t seq) {
  QS_CHECK(seq >= 0 && size_t(seq) < seqs_.size() && seqs_[size_t(seq)].live, "no KV cache sequence ", seq);
  return seqs_[size_t(seq)];
}
const KVCache::Seq& KVCache::get(int64_t seq) const { return const_cast<KVCache*>(this)->get(seq); }

int64_t KVCache::add_sequence() {
  for (size_t i = 0; i < seqs_.size(); ++i)
    if (!seqs_[i].live) {
      seqs_[i] = Seq{true, 0, {}};
      return int64_t(i);
    }
  seqs_.push_back(Seq{true, 0, {}});
  return int64_t(seqs_.size() - 1);
}

void KVCache::remove_sequence(int64_t seq) {
  Seq& s = get(seq);
  for (auto b : s.blocks) free_.push_back(b);
  s = Seq{};
}

int64_t KVCache::length(int64_t seq) const { return get(seq).len; }

const std::vector<int32_t>& KVCache::blocks(int64_t seq) const { return get(seq).blocks; }

void KVCache::truncate(int64_t seq, int64_t len) {
  Seq& s = get(seq);
  QS_CHECK(len >= 0 && len <= s.len, "cannot truncate sequence ", seq, " of length ", s.len, " to ", len);
  s.len = len;
  const size_t keep = size_t((len + block_size() - 1) / block_size());
  while (s.blocks.size() > keep) {
    free_.push_back(s.blocks.back());
    s.blocks.pop_back();
  }
}

void KVCache::append(StepBatch& batch, int64_t seq, const int32_t* tokens, int64_t n) {
  Seq& s = get(seq);
  QS_CHECK(n > 0, "KV cache append: no tokens");
  const int64_t new_len = s.len + n;
  const size_t need = size_t((new_len + block_size() - 1) / block_size());
  if (need > s.blocks.size() && need - s.blocks.size() > free_.size())
    fail(ErrorKind::Invalid, "KV cache is full: sequence ", seq, " needs ", new_len, " tokens but only ",
         int64_t(s.blocks.size() + free_.size()) * block_size(), " fit (raise the context/cache size)");
  while (s.blocks.size() < need) {
    s.blocks.push_back(free_.back());
    free_.pop_back();
  }
  batch.add(s.blocks, s.len, tokens, n);
  s.len = new_len;
}

}  // namespace qs
