#include "qiusuo/infer/model_runner.h"

namespace qs {

ModelRunner::ModelRunner(const Model& model, KVPool& pool, Compute compute)
    : model_(model), pool_(pool), compute_(compute) {}

const float* ModelRunner::run(std::span<const StepWork> work, std::span<const int64_t> rows, bool keep_hidden) {
  batch_.clear();
  for (const StepWork& w : work) {
    const Sequence& s = *w.seq;
    batch_.add(s.blocks, s.n_computed, s.tokens.data() + s.n_computed, w.n);
  }
  logits_.resize(rows.size() * size_t(model_.config().vocab_size));
  ForwardOptions fo;
  fo.compute = compute_;
  fo.attn = AttnImpl::Absorb;  // batch-invariant attention (mla.h)
  fo.last_hidden = keep_hidden ? &hidden_ : nullptr;
  model_.forward(batch_, pool_, rows, logits_.data(), fo, arena_);
  return logits_.data();
}

const float* ModelRunner::run_mtp(std::span<const MtpWork> work, std::span<const int64_t> rows) {
  const int64_t d = model_.config().hidden_size;
  mtp_batch_.clear();
  mtp_hidden_.clear();
  for (const MtpWork& w : work) {
    const Sequence& s = *w.seq;
    mtp_batch_.add(s.blocks, w.p0, s.tokens.data() + w.p0 + 1, w.n);
    mtp_hidden_.insert(mtp_hidden_.end(), hidden_.begin() + w.hidden_row * d, hidden_.begin() + (w.hidden_row + w.n) * d);
  }
  mtp_logits_.resize(rows.size() * size_t(model_.config().vocab_size));
  ForwardOptions fo;
  fo.compute = compute_;
  fo.attn = AttnImpl::Absorb;
  model_.forward_mtp(mtp_batch_, mtp_hidden_.data(), pool_, rows, mtp_logits_.data(), fo, arena_);
  return mtp_logits_.data();
}

}  // namespace qs
