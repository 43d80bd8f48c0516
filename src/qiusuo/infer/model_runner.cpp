#include "qiusuo/infer/model_runner.h"

namespace qs {

ModelRunner::ModelRunner(const Model& model, KVPool& pool, Compute compute)
    : model_(model), pool_(pool), compute_(compute) {}

const float* ModelRunner::run(std::span<const StepWork> work, std::span<const int64_t> rows) {
  batch_.clear();
  for (const StepWork& w : work) {
    const Sequence& s = *w.seq;
    batch_.add(s.blocks, s.n_computed, s.tokens.data() + s.n_computed, w.n);
  }
  logits_.resize(rows.size() * size_t(model_.config().vocab_size));
  ForwardOptions fo;
  fo.compute = compute_;
  fo.attn = AttnImpl::Absorb;  // batch-invariant attention (mla.h)
  model_.forward(batch_, pool_, rows, logits_.data(), fo, arena_);
  return logits_.data();
}

}  // namespace qs
