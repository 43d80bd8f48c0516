// FLOPs per token (model/flops.h), checked against a count written out by hand for the
// train-small benchmark model (../shared/bench/train-small.json).
#include <gtest/gtest.h>

#include "qiusuo/io/file.h"
#include "qiusuo/model/flops.h"

namespace qs {
namespace {

TEST(Flops, TrainSmallByHand) {
  const ModelConfig c = load_model_config(std::string(QS_SHARED) + "/bench/train-small.json");
  // Per layer: q_a 384·192, q_b 192·6·48, kv_a 384·144, kv_b 128·6·64, o 6·32·384.
  const double attn = 384.0 * 192 + 192.0 * 288 + 384.0 * 144 + 128.0 * 384 + 192.0 * 384;
  const double dense = 3.0 * 384 * 1024;                     // layer 0 SwiGLU
  const double moe = 16.0 * 384 + 5.0 * 3 * 384 * 256;       // router + (4 routed + 1 shared) experts
  const double head = 8192.0 * 384;
  const double main = (attn + dense) + 5 * (attn + moe) + head;
  const double mtp = 2.0 * 384 * 384 + (attn + moe) + head;  // eh_proj, block, shared head again
  EXPECT_DOUBLE_EQ(matmul_params_per_token(c, false), main);
  EXPECT_DOUBLE_EQ(matmul_params_per_token(c, true), main + mtp);
  // Attention: 6 heads · (48 + 32) per key; 512-token sequences see (512 + 1) / 2 keys on average.
  const double att_fwd = 2.0 * 6 * 80 * 256.5;
  EXPECT_DOUBLE_EQ(forward_flops_per_token(c, 256.5), 2 * main + 6 * att_fwd);
  EXPECT_DOUBLE_EQ(train_flops_per_token(c, 512, true), 3 * (2 * (main + mtp) + 7 * att_fwd));
  EXPECT_NEAR(train_flops_per_token(c, 512, true), 117.97e6, 0.01e6);
}

}  // namespace
}  // namespace qs
