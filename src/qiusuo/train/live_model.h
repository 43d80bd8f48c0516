// One model for training and inference: an inference Model (model/transformer.h) whose weights
// are views into a TrainModel's flat F32 parameter buffer — no copies, so it sees every
// optimizer update at once (matrices, norms, router weights, e_score_correction_bias). GRPO
// samples from the policy it trains through this view; after each update, the engine that
// generates with it must forget its cached prefixes (Engine::clear_prefix_cache), which were
// computed with the old weights.
//
// With Compute::BF16 the products round the F32 weights to BF16 as they stream them (nothing
// to refresh); Compute::F32 is exact.
#pragma once
#include <memory>

#include "qiusuo/model/transformer.h"
#include "qiusuo/train/train_model.h"

namespace qs {

// The model over `tm`'s parameters (MTP modules included); `tm` must outlive it.
std::unique_ptr<Model> live_model(const TrainModel<float>& tm);

}  // namespace qs
