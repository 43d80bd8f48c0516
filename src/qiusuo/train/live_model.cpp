#include "qiusuo/train/live_model.h"

#include "qiusuo/core/error.h"

namespace qs {
namespace {
const float* param_data(const TrainModel<float>& tm, const std::string& name) {
  const ParamInfo* p = tm.info(name);
  QS_CHECK(p, "live model: no training parameter '", name, "'");
  return tm.params().data() + p->offset;
}
}  // namespace

std::unique_ptr<Model> live_model(const TrainModel<float>& tm) {
  const ModelConfig& c = tm.config();
  auto lookup = [&](const std::string& name) -> const float* {
    if (tm.info(name)) return param_data(tm, name);
    // The MTP modules' embed_tokens / shared_head.head are the main embedding and head.
    for (int64_t k = 0; k < c.num_nextn_predict_layers; ++k) {
      const std::string pre = "model.layers." + std::to_string(c.num_hidden_layers + k) + ".";
      if (name == pre + "embed_tokens.weight") return param_data(tm, "model.embed_tokens.weight");
      if (name == pre + "shared_head.head.weight")
        return param_data(tm, c.tie_word_embeddings ? "model.embed_tokens.weight" : "lm_head.weight");
    }
    fail(ErrorKind::Internal, "live model: no training parameter '", name, "'");
  };
  return std::make_unique<Model>(c, weights_from_f32(c, lookup, c.num_nextn_predict_layers > 0));
}

}  // namespace qs
