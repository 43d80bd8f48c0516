// Shared by the fixture tests (BF16 / FP8 kv_b) and the quantization tests (INT8 / INT4 kv_b).
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "qiusuo/model/transformer.h"

namespace qs::test {

// Absorbed decode steps of few tokens read a kv_b stored in BF16, FP8, INT8 or INT4 as stored
// (16 rows at a time; mla.h kv_b_read_as_stored); with kv_b given as its F32 copy instead, every
// logit must be the same bit for bit, in both compute modes: B sequences of P tokens decoded one
// step at a time (the stored run with the F32 copy replaced by NaNs, so that it cannot pass by
// reading the copy).
inline void expect_stored_kv_b_equals_f32_copy(Model& model, const std::vector<int32_t>& input, int64_t B, int64_t P) {
  auto& w = const_cast<ModelWeights&>(model.weights());
  const int64_t V = model.config().vocab_size;
  auto decode = [&](Compute cm) {
    KVCache cache(model.config(), B * P + 64, B, 8);
    for (int64_t s = 0; s < B; ++s) cache.add_sequence();
    ForwardOptions opt;
    opt.compute = cm;
    opt.attn = AttnImpl::Absorb;
    std::vector<float> all;
    for (int64_t p = 0; p < P; ++p) {
      StepBatch d;
      for (int64_t s = 0; s < B; ++s) cache.append(d, s, &input[size_t(s * P + p)], 1);
      std::vector<int64_t> r;
      for (int64_t s = 0; s < B; ++s) r.push_back(s);
      std::vector<float> out(size_t(B * V));
      model.forward(d, cache.pool(), r, out.data(), opt);
      all.insert(all.end(), out.begin(), out.end());
    }
    return all;
  };
  for (Compute cm : {Compute::F32, Compute::BF16}) {
    // The stored run must not read the F32 copy at all: it points at NaNs meanwhile.
    std::vector<const float*> copies;
    std::vector<std::vector<float>> poison;
    for (auto& l : w.layers) {
      copies.push_back(l.attn.kv_b_f32);
      poison.emplace_back(size_t(l.attn.kv_b_proj.rows * l.attn.kv_b_proj.cols), std::nanf(""));
      l.attn.kv_b_f32 = poison.back().data();
    }
    const auto stored = decode(cm);
    for (size_t i = 0; i < w.layers.size(); ++i) w.layers[i].attn.kv_b_f32 = copies[i];
    std::vector<WeightMatrix> saved;
    for (auto& l : w.layers) {
      saved.push_back(l.attn.kv_b_proj);
      l.attn.kv_b_proj = WeightMatrix{DType::F32, saved.back().rows, saved.back().cols, l.attn.kv_b_f32};
    }
    const auto f32 = decode(cm);
    for (size_t i = 0; i < w.layers.size(); ++i) w.layers[i].attn.kv_b_proj = saved[i];
    ASSERT_EQ(stored.size(), f32.size());
    EXPECT_EQ(0, std::memcmp(stored.data(), f32.data(), stored.size() * sizeof(float))) << "compute " << int(cm);
  }
}

}  // namespace qs::test
