// Which parts of a checkpoint a process holds (WeightPlacement, model/weights.h). With expert
// parallelism, rank r of N gets views of its own routed experts only: the others keep dtype,
// shape, group and bytes but no data, and nothing of theirs is copied or repacked; a follower
// rank (experts_only) holds its experts and nothing else. So the ranks' copies add up to one
// process's, and so do the bytes each rank holds of the files (placement_bytes: what it checks
// against the memory available). BF16, FP8 and GPTQ INT4 checkpoints alike, copied (the
// default) and mapped.
#include <gtest/gtest.h>

#include <string>

#include "qiusuo/dist/expert_parallel.h"
#include "qiusuo/io/file.h"
#include "qiusuo/io/safetensors.h"
#include "qiusuo/model/config.h"
#include "qiusuo/model/init.h"
#include "qiusuo/model/weights.h"
#include "qiusuo/quant/quantize.h"
#include "test_util.h"

namespace qs {
namespace {
using testing_util::TempDir;

void expect_same_shape(const WeightMatrix& a, const WeightMatrix& b, const std::string& what) {
  EXPECT_EQ(a.dtype, b.dtype) << what;
  EXPECT_EQ(a.rows, b.rows) << what;
  EXPECT_EQ(a.cols, b.cols) << what;
  EXPECT_EQ(a.group, b.group) << what;
  EXPECT_EQ(a.bytes(), b.bytes()) << what;
}

TEST(WeightPlacement, ExpertParallelRanksHoldOnlyTheirExperts) {
  TempDir d("placement");
  auto j = testing_util::tiny_v3_config(256);
  j["hidden_size"] = 128;
  j["moe_intermediate_size"] = 64;
  j["q_lora_rank"] = 64;  // every width a multiple of the INT4 group (32)
  const ModelConfig cfg = parse_model_config(j);
  const std::string bf16 = d / "bf16", fp8 = d / "fp8", int4 = d / "int4";
  for (const auto& [dir, dt] : {std::pair{bf16, InitDType::BF16}, std::pair{fp8, InitDType::FP8}}) {
    make_dirs(dir);
    InitOptions o;
    o.dtype = dt;
    o.seed = 5;
    write_random_checkpoint(cfg, dir, o);
  }
  QuantizeOptions q;
  q.model_dir = bf16;
  q.out_dir = int4;
  q.format = QuantFormat::Int4;
  q.group = 32;
  quantize_checkpoint(q);
  const int64_t E = cfg.n_routed_experts;
  const int ranks = 2;
  for (const std::string& dir : {bf16, fp8, int4})
    for (bool mapped : {false, true}) {
      SCOPED_TRACE(dir + (mapped ? " mapped" : " copied"));
      const ModelConfig c = load_model_config(dir);
      const TensorStore store = TensorStore::open_dir(dir);
      const ModelWeights one = load_weights(c, store, true, {nullptr, false, mapped});
      size_t copies = 0, copied = 0, held = 0;
      EXPECT_EQ(placement_bytes(store, {}), store.total_bytes());
      for (int r = 0; r < ranks; ++r) {
        ExpertParallel ep;
        ep.placement = {E, ranks, r};
        const bool follower = r > 0;
        const ModelWeights w = load_weights(c, store, true, {&ep, follower, mapped});
        copies += w.copies.bytes();
        copied += w.copied_bytes;
        held += placement_bytes(store, {&ep, follower, mapped});
        ASSERT_EQ(w.layers.size(), one.layers.size());
        int64_t owned = 0;
        for (size_t l = 0; l < w.layers.size(); ++l) {
          if (!one.layers[l].moe) continue;
          ASSERT_EQ(w.layers[l].ffn.experts.size(), size_t(E));
          for (int64_t e = 0; e < E; ++e) {
            const MlpWeights &a = w.layers[l].ffn.experts[size_t(e)], &b = one.layers[l].ffn.experts[size_t(e)];
            const std::string what = "rank " + std::to_string(r) + " layer " + std::to_string(l) + " expert " +
                                     std::to_string(e);
            const bool mine = ep.placement.owns(e);
            owned += mine;
            for (const auto& [x, y] : {std::pair{&a.gate, &b.gate}, std::pair{&a.up, &b.up}, std::pair{&a.down, &b.down}}) {
              expect_same_shape(*x, *y, what);
              EXPECT_EQ(x->data != nullptr, mine) << what;
            }
          }
          if (follower) {
            EXPECT_EQ(w.layers[l].attn.o_proj.data, nullptr) << "a follower holds only experts";
            EXPECT_FALSE(w.layers[l].ffn.has_shared);
          }
        }
        EXPECT_EQ(owned, E / ranks * (cfg.num_hidden_layers - cfg.first_k_dense_replace)) << "rank " << r;
        if (follower) {
          EXPECT_EQ(w.embed.data, nullptr);
        }
      }
      // Nothing copied or repacked twice, nothing left out: the ranks' shares make one process's.
      EXPECT_EQ(copies, one.copies.bytes());
      EXPECT_EQ(copied, one.copied_bytes);
      // What the ranks hold of the files (the figure a load compares with the memory available,
      // falling back to the mapping above 90%) adds up to the checkpoint.
      EXPECT_EQ(held, store.total_bytes());
      if (mapped && dir != int4) {
        EXPECT_EQ(copies, 0u);
      } else {
        EXPECT_GT(copies, 0u);
      }
    }
}

// The name rule every expert-parallel split uses (placement_bytes, the training step's gradient
// buckets and norm).
TEST(WeightPlacement, RoutedExpertOfANamesTensor) {
  EXPECT_EQ(routed_expert_of("model.layers.3.mlp.experts.12.gate_proj.weight"), 12);
  EXPECT_EQ(routed_expert_of("model.layers.1.mlp.experts.0.down_proj.qweight"), 0);
  EXPECT_EQ(routed_expert_of("model.layers.27.mlp.experts.63.up_proj.weight_scale_inv"), 63);
  EXPECT_EQ(routed_expert_of("model.layers.3.mlp.shared_experts.gate_proj.weight"), -1);
  EXPECT_EQ(routed_expert_of("model.layers.3.mlp.gate.weight"), -1);
  EXPECT_EQ(routed_expert_of("model.layers.3.mlp.experts.x.gate_proj.weight"), -1);
  EXPECT_EQ(routed_expert_of("model.embed_tokens.weight"), -1);
}

}  // namespace
}  // namespace qs
