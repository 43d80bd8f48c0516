// The KV pool's storage types (model/kv_cache.h): F32 rows are stored exactly, BF16 rows
// round to nearest even, FP8 rows keep the latent as E4M3 codes with one F32 scale per 128
// values (largest magnitude -> 448) and the rope part as BF16; per-element error bounds of each.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "qiusuo/core/error.h"
#include "qiusuo/kernels/convert.h"
#include "qiusuo/model/kv_cache.h"

namespace qs {
namespace {

ModelConfig latent_config(int64_t lora, int64_t rope) {
  ModelConfig c;
  c.num_hidden_layers = 2;
  c.kv_lora_rank = lora;
  c.qk_rope_head_dim = rope;
  return c;
}

std::vector<float> random_row(int64_t n, uint32_t seed, float spread) {
  std::mt19937 g(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = d(g) * std::exp(spread * d(g));  // a wide range of magnitudes
  return v;
}

TEST(KvCache, RowBytes) {
  // DeepSeek-V2/V3 widths: 512 latent + 64 rope.
  EXPECT_EQ(kv_row_bytes(KvDtype::F32, 512, 64), 2304u);
  EXPECT_EQ(kv_row_bytes(KvDtype::BF16, 512, 64), 1152u);
  EXPECT_EQ(kv_row_bytes(KvDtype::FP8, 512, 64), 656u);  // 512 codes + 4 scales + 64 BF16
  EXPECT_EQ(kv_row_bytes(KvDtype::FP8, 16, 8) % 16, 0u);
  EXPECT_EQ(parse_kv_dtype("fp8"), KvDtype::FP8);
  EXPECT_THROW(parse_kv_dtype("fp16"), Error);
}

TEST(KvCache, StoreLoadWithinTheTypesBounds) {
  for (auto [lora, rope] : {std::pair<int64_t, int64_t>{512, 64}, {200, 8}, {16, 8}, {20, 6}}) {
    const ModelConfig c = latent_config(lora, rope);
    const int64_t W = lora + rope;
    for (KvDtype d : {KvDtype::F32, KvDtype::BF16, KvDtype::FP8}) {
      KVPool pool(c, 3, 4, -1, d);
      EXPECT_EQ(pool.bytes_per_token(), kv_row_bytes(d, lora, rope) * 2);
      std::vector<std::vector<float>> rows;
      for (int64_t i = 0; i < 4; ++i) {
        rows.push_back(random_row(W, uint32_t(i + 10 * lora), i == 3 ? 0.0f : 1.5f));
        if (i == 2) std::fill(rows.back().begin(), rows.back().begin() + lora, 0.0f);  // an all-zero latent
        pool.store(1, 2, i, rows.back().data());
      }
      std::vector<float> got(size_t(4 * W));
      pool.load(1, 2, 0, 4, got.data());
      for (int64_t i = 0; i < 4; ++i) {
        const auto& x = rows[size_t(i)];
        for (int64_t k = 0; k < W; ++k) {
          const float want = x[size_t(k)], have = got[size_t(i * W + k)];
          float bound = 0;
          if (d == KvDtype::BF16 || (d == KvDtype::FP8 && k >= lora)) {
            bound = std::fabs(want) * 0x1p-8f;  // BF16: half a unit in the 8th bit
          } else if (d == KvDtype::FP8) {
            // E4M3 after scaling by amax/448: 3 mantissa bits (half an ulp is 2^-4 relative),
            // subnormals below 2^-6 · scale with steps of 2^-9 · scale.
            const int64_t g0 = k / 128 * 128, g1 = std::min(lora, g0 + 128);
            float amax = 0;
            for (int64_t j = g0; j < g1; ++j) amax = std::max(amax, std::fabs(x[size_t(j)]));
            const float scale = amax / 448.0f;
            bound = std::max(std::fabs(want) * 0x1p-4f, scale * 0x1p-10f) * 1.0001f;
          }
          ASSERT_LE(std::fabs(have - want), bound)
              << kv_dtype_name(d) << " lora " << lora << " row " << i << " value " << k << ": " << want << " -> " << have;
        }
      }
      // The F32 pool hands its rows out without a copy; the others do not.
      EXPECT_EQ(pool.f32_rows(1, 2, 0) != nullptr, d == KvDtype::F32);
      // Block copies move the stored bytes.
      pool.copy_block(0, 2, 4);
      std::vector<float> copied(size_t(4 * W));
      pool.load(1, 0, 0, 4, copied.data());
      EXPECT_EQ(std::memcmp(copied.data(), got.data(), got.size() * sizeof(float)), 0);
    }
  }
}

// load_bf16 (the rows BF16 attention reads, model/mla.h) is load's F32 rows rounded to BF16,
// bit for bit, for every storage type: F32 rows rounded, BF16 rows as stored (also where the
// stored rows are padded: W = 26), FP8 latents dequantized (code × scale in F32) then rounded.
TEST(KvCache, LoadBf16IsLoadRoundedToBf16) {
  for (auto [lora, rope] : {std::pair<int64_t, int64_t>{512, 64}, {200, 8}, {20, 6}}) {
    const ModelConfig c = latent_config(lora, rope);
    const int64_t W = lora + rope;
    for (KvDtype d : {KvDtype::F32, KvDtype::BF16, KvDtype::FP8}) {
      KVPool pool(c, 2, 5, -1, d);
      for (int64_t i = 0; i < 5; ++i) {
        auto row = random_row(W, uint32_t(7 * i + lora), i == 4 ? 0.0f : 2.0f);
        if (i == 1) std::fill(row.begin(), row.begin() + lora, 0.0f);
        pool.store(0, 1, i, row.data());
      }
      std::vector<float> f(size_t(4 * W));
      pool.load(0, 1, 1, 4, f.data());  // rows 1..4
      std::vector<uint16_t> want(f.size()), got(f.size() + 1, 0xabcd);
      f32_to_bf16(f.data(), want.data(), int64_t(f.size()));
      pool.load_bf16(0, 1, 1, 4, got.data());
      EXPECT_EQ(std::memcmp(got.data(), want.data(), want.size() * sizeof(uint16_t)), 0)
          << kv_dtype_name(d) << " lora " << lora;
      EXPECT_EQ(got.back(), 0xabcd) << "wrote past n rows of W values";
    }
  }
}

}  // namespace
}  // namespace qs
