#include "qiusuo/train/train_step.h"

#include <algorithm>
#include <cmath>

#include "qiusuo/core/error.h"
#include "qiusuo/core/profile.h"

namespace qs {

void WindowBatch::fill(const int32_t* windows, int64_t B, int64_t S) {
  B_ = B;
  S_ = S;
  inputs.resize(size_t(B * S));
  targets.resize(size_t(B * S));
  weights.assign(size_t(B * S), 1.0 / double(B * S));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t s = 0; s < S; ++s) {
      inputs[size_t(b * S + s)] = windows[b * (S + 1) + s];
      targets[size_t(b * S + s)] = windows[b * (S + 1) + s + 1];
    }
}

TokenBatch WindowBatch::view() const {
  TokenBatch t;
  t.rows = B_;
  t.cols = S_;
  t.inputs = inputs;
  t.targets = targets;
  t.weights = weights;
  return t;
}

template <typename T>
size_t TrainStep<T>::plan_elems(const ModelConfig& c, const StepPlan& plan, const TrainLossOptions& opt) {
  const TrainShape sh{plan.max_rows, plan.max_cols};
  const size_t N = size_t(sh.N()), d = size_t(c.hidden_size);
  const int64_t L = c.num_hidden_layers, D = opt.mtp_lambda > 0 ? c.num_nextn_predict_layers : 0;
  ArenaPlan p;
  p.add(N * d, size_t(L + 1));  // hidden states h_0..h_L
  for (int64_t l = 0; l < L; ++l) block_train_plan(c, l, sh, opt.precision, p);
  for (int64_t k = 0; k < D; ++k) mtp_train_plan(c, k, sh, opt.precision, p);
  p.add(N * d, size_t(1 + D + 1));  // backward: d h_L, d(MTP outputs), the second layer gradient
  head_train_plan(sh.N(), c.hidden_size, c.vocab_size, p);  // shared by the heads
  return p.elems;
}

template <typename T>
TrainStep<T>::TrainStep(TrainModel<T>& model, StepPlan plan, TrainLossOptions options)
    : model_(model),
      plan_(plan),
      opt_(options),
      weight_cache_(std::make_unique<WeightCache>()),
      act_cache_(std::make_unique<ActivationCache>()) {
  QS_CHECK(plan.max_rows > 0 && plan.max_cols > 0, "a training step needs max_rows >= 1 and max_cols >= 1 (got ",
           plan.max_rows, ", ", plan.max_cols, ")");
  QS_CHECK(options.mtp_lambda >= 0 && options.aux_alpha >= 0 && std::isfinite(options.mtp_lambda) &&
               std::isfinite(options.aux_alpha),
           "mtp_lambda and aux_alpha must be finite and >= 0");
  arena_.reserve(plan_elems(model.config(), plan_, opt_));
}

template <typename T>
TrainStep<T>::~TrainStep() = default;

template <typename T>
void TrainStep<T>::check(const TokenBatch& b, const StepRequest& r) const {
  const ModelConfig& c = model_.config();
  const int64_t B = b.rows, S = b.cols, N = B * S, V = c.vocab_size;
  QS_CHECK(B >= 1 && S >= 1, "a training batch needs at least one row and one column (got ", B, " x ", S, ")");
  QS_CHECK(B <= plan_.max_rows && S <= plan_.max_cols, "training batch of ", B, " x ", S,
           " is beyond the step's plan of ", plan_.max_rows, " x ", plan_.max_cols, " (rows x columns)");
  QS_CHECK(int64_t(b.inputs.size()) == N && int64_t(b.targets.size()) == N, "training batch: inputs and targets must",
           " hold rows x cols = ", N, " ids (got ", b.inputs.size(), " and ", b.targets.size(), ")");
  QS_CHECK(b.weights.empty() || int64_t(b.weights.size()) == N, "training batch: weights must be empty or hold ", N,
           " values (got ", b.weights.size(), ")");
  QS_CHECK(b.lengths.empty() || int64_t(b.lengths.size()) == B, "training batch: lengths must be empty or hold ", B,
           " values (got ", b.lengths.size(), ")");
  for (int64_t i = 0; i < N; ++i) {
    QS_CHECK(b.inputs[i] >= 0 && b.inputs[i] < V, "training token id ", b.inputs[i], " at row ", i / S, ", column ",
             i % S, " is outside the model vocabulary [0, ", V, ")");
    QS_CHECK(b.targets[i] < V, "training target id ", b.targets[i], " at row ", i / S, ", column ", i % S,
             " is outside the model vocabulary [0, ", V, ")");
    QS_CHECK(b.weights.empty() || std::isfinite(b.weights[i]), "training weight at row ", i / S, ", column ", i % S,
             " is not finite (", b.weights[i], ")");
  }
  for (int64_t row = 0; row < B && !b.lengths.empty(); ++row) {
    const int32_t len = b.lengths[row];
    QS_CHECK(len >= 0 && len <= S, "training batch: length ", len, " of row ", row, " is outside [0, ", S, "]");
    for (int64_t s = len; s < S; ++s)
      QS_CHECK(b.targets[row * S + s] < 0, "training batch: row ", row, " has a target at column ", s,
               ", in its padding (length ", len, ")");
  }
  QS_CHECK(r.top_k >= 0 && r.top_k <= V, "top_k ", r.top_k, " is outside [0, vocab_size = ", V, "]");
  QS_CHECK(std::isfinite(r.scale), "gradient scale is not finite");
  if (r.loss == Loss::LogProbCoef) {
    QS_CHECK(int64_t(r.coef.size()) == N, "log-probability coefficients must hold rows x cols = ", N,
             " values (got ", r.coef.size(), ")");
    for (int64_t i = 0; i < N; ++i)
      QS_CHECK(std::isfinite(r.coef[i]), "coefficient at row ", i / S, ", column ", i % S, " is not finite");
  }
  if (r.loss == Loss::Distill) {
    const TeacherDist& t = r.teacher;
    QS_CHECK(t.k >= 0 && t.k <= V, "teacher top-K ", t.k, " is outside [0, vocab_size = ", V, "] (0 = full)");
    const int64_t per = t.k > 0 ? t.k : V;
    QS_CHECK(int64_t(t.logprobs.size()) == N * per, "teacher log-probabilities must hold ", N, " x ", per,
             " values (got ", t.logprobs.size(), ")");
    QS_CHECK(t.k == 0 || int64_t(t.ids.size()) == N * t.k, "teacher ids must hold ", N, " x ", t.k,
             " values (got ", t.ids.size(), ")");
    std::vector<int32_t> ids;
    for (int64_t i = 0; i < N; ++i) {
      if (b.targets[i] < 0) continue;
      bool mass = false;
      for (int64_t j = 0; j < per; ++j) {
        const double lp = t.logprobs[i * per + j];
        QS_CHECK(!std::isnan(lp) && lp != HUGE_VAL, "teacher log-probability ", lp, " at row ", i / S, ", column ",
                 i % S, " (entry ", j, ") is NaN or +inf");
        mass |= lp > -HUGE_VAL;
      }
      QS_CHECK(mass, "the teacher gives no probability to any token at row ", i / S, ", column ", i % S);
      if (t.k == 0) continue;
      ids.assign(t.ids.begin() + i * t.k, t.ids.begin() + (i + 1) * t.k);
      for (int32_t id : ids)
        QS_CHECK(id >= 0 && id < V, "teacher token id ", id, " at row ", i / S, ", column ", i % S,
                 " is outside the model vocabulary [0, ", V, ")");
      std::sort(ids.begin(), ids.end());
      QS_CHECK(std::adjacent_find(ids.begin(), ids.end()) == ids.end(), "teacher ids at row ", i / S, ", column ",
               i % S, " repeat a token");
    }
  }
}

template <typename T>
StepResult TrainStep<T>::run(const TokenBatch& batch, const StepRequest& req) {
  QS_PROFILE("train_step");
  check(batch, req);
  const ModelConfig& c = model_.config();
  const ModelParamsT<T>& P = model_.views();
  const ModelParamsT<T>& G = model_.grad_views();
  const Rope& rope = model_.rope();
  const int64_t B = batch.rows, S = batch.cols, N = B * S, d = c.hidden_size, V = c.vocab_size;
  const int64_t L = c.num_hidden_layers, D = opt_.mtp_lambda > 0 ? c.num_nextn_predict_layers : 0;
  const int32_t* inputs = batch.inputs.data();
  weight_cache_->invalidate();  // the optimizer may have moved the weights since the last call
  act_cache_->invalidate();     // a new step's activations
  const MatmulPolicy pol{opt_.precision, weight_cache_.get(), act_cache_.get()};
  const T eps = T(c.rms_norm_eps);
  const bool backward = req.backward;
  arena_.reset();
  const TrainShape sh{B, S, batch.lengths.empty() ? nullptr : batch.lengths.data()};

  // Forward through the decoder layers.
  std::vector<T*> hs(size_t(L + 1));
  for (auto& h : hs) h = arena_.alloc(size_t(N * d), false);
  embed_forward<T>(P.embed, d, inputs, N, hs[0]);
  acts_.resize(size_t(L));
  for (int64_t l = 0; l < L; ++l)
    block_train_forward<T>(c, P.layers[l], rope, sh, hs[l], hs[l + 1], acts_[l], opt_.aux_alpha, arena_, pol);
  StepResult out;
  out.expert_load.assign(size_t(L + c.num_nextn_predict_layers), {});
  for (int64_t l = 0; l < L; ++l)
    if (acts_[l].moe) {
      out.expert_load[l] = acts_[l].ffn.load;
      out.aux += double(acts_[l].ffn.aux_loss);
    }

  // MTP forward: depth k at position s embeds the token at s+k+1 and predicts the target of
  // position s+k+1 (with its weight); the positions of a row from length−k−1 on have no such
  // token and are padding to the module's block.
  mtp_acts_.resize(size_t(D));
  next_.resize(size_t(D * N));
  mtp_targets_.resize(size_t(D * N));
  mtp_weights_.resize(size_t(D * N));
  std::vector<int32_t> mtp_len(size_t(D * B));
  std::vector<double> mtp_scale(size_t(D), 0.0);
  double w_main = 0;
  for (int64_t i = 0; i < N; ++i)
    if (batch.targets[i] >= 0) w_main += batch.weights.empty() ? 1.0 : batch.weights[i];
  for (int64_t k = 0; k < D; ++k) {
    int32_t* next = next_.data() + k * N;
    int32_t* tgt = mtp_targets_.data() + k * N;
    double* w = mtp_weights_.data() + k * N;
    double w_k = 0;
    for (int64_t b = 0; b < B; ++b) {
      const int64_t len = sh.length(b);
      mtp_len[size_t(k * B + b)] = int32_t(std::max<int64_t>(0, len - k - 1));
      for (int64_t s = 0; s < S; ++s) {
        const int64_t src = s + k + 1, i = b * S + s;
        const bool has = src < len;
        next[i] = has ? inputs[b * S + src] : 0;
        tgt[i] = has ? batch.targets[b * S + src] : -1;
        w[i] = has ? (batch.weights.empty() ? 1.0 : batch.weights[b * S + src]) : 0.0;
        if (tgt[i] >= 0) w_k += w[i];
      }
    }
    mtp_scale[k] = w_k != 0 ? w_main / w_k : 0.0;
    for (int64_t i = 0; i < N; ++i) w[i] *= mtp_scale[k];
    const TrainShape msh{B, S, mtp_len.data() + k * B};
    const T* hprev = k == 0 ? hs[L] : mtp_acts_[k - 1].out;
    mtp_train_forward<T>(c, P.mtp[k], P.embed, rope, k, msh, hprev, next, mtp_acts_[k], opt_.aux_alpha, arena_, pol);
    if (mtp_acts_[k].block.moe) {
      out.expert_load[L + k] = mtp_acts_[k].block.ffn.load;
      out.aux += double(mtp_acts_[k].block.ffn.aux_loss);
    }
  }

  // Heads: the main objective (and the gradient of its head), then the MTP cross-entropies.
  const HeadScratch<T> hscratch = head_alloc_scratch<T>(arena_, N, d, V);
  T* dh = backward ? arena_.alloc(size_t(N * d)) : nullptr;
  HeadRequest hr;
  hr.targets = batch.targets.data();
  hr.weights = batch.weights.empty() ? nullptr : batch.weights.data();
  hr.objective = req.loss == Loss::CrossEntropy   ? HeadObjective::CrossEntropy
                 : req.loss == Loss::LogProbCoef ? HeadObjective::LogProbCoef
                                                 : HeadObjective::Distill;
  hr.coef = req.coef.empty() ? nullptr : req.coef.data();
  hr.teacher = {req.teacher.k, req.teacher.ids.empty() ? nullptr : req.teacher.ids.data(),
                req.teacher.logprobs.empty() ? nullptr : req.teacher.logprobs.data()};
  hr.scale = req.scale;
  if (req.logprobs) out.logprobs.assign(size_t(N), 0.0), hr.logprobs = out.logprobs.data();
  if (req.entropy) out.entropy.assign(size_t(N), 0.0), hr.entropy = out.entropy.data();
  if (req.top_k > 0) {
    out.top_ids.assign(size_t(N * req.top_k), 0);
    out.top_logprobs.assign(size_t(N * req.top_k), 0.0);
    hr.top_k = req.top_k;
    hr.top_ids = out.top_ids.data();
    hr.top_logprobs = out.top_logprobs.data();
  }
  const HeadLoss main = head_forward_backward<T>(hs[L], N, d, P.final_norm, eps, P.head, V, hr, dh,
                                                 backward ? G.final_norm : nullptr, backward ? G.head : nullptr,
                                                 hscratch, pol);
  out.main = main.objective;
  out.ce = main.ce;
  out.weight_sum = main.weight_sum;
  out.tokens = main.count;
  std::vector<T*> dmtp(size_t(D), nullptr);
  for (int64_t k = 0; k < D; ++k) {
    if (backward) dmtp[k] = arena_.alloc(size_t(N * d));
    HeadRequest mr;
    mr.targets = mtp_targets_.data() + k * N;
    mr.weights = mtp_weights_.data() + k * N;
    mr.scale = req.scale * opt_.mtp_lambda / double(D);
    const HeadLoss ml =
        head_forward_backward<T>(mtp_acts_[k].out, N, d, P.mtp[k].head_norm, eps, P.head, V, mr, dmtp[k],
                                 backward ? G.mtp[k].head_norm : nullptr, backward ? G.head : nullptr, hscratch,
                                 pol);
    out.mtp += ml.objective / double(D);
  }
  out.objective = out.main + opt_.mtp_lambda * out.mtp + out.aux;
  if (!backward) return out;

  // Backward: MTP modules from the deepest, each adding into the previous depth's hidden state.
  const double aux = opt_.aux_alpha * req.scale;
  for (int64_t k = D - 1; k >= 0; --k) {
    T* dprev = k == 0 ? dh : dmtp[k - 1];
    const TrainShape msh{B, S, mtp_len.data() + k * B};
    mtp_train_backward<T>(c, P.mtp[k], G.mtp[k], G.embed, rope, k, msh, mtp_acts_[k], dmtp[k], dprev, aux, arena_,
                          pol);
  }
  const auto& ready = req.on_grads_ready;
  if (ready) ready(L);
  T* dnext = arena_.alloc(size_t(N * d), false);
  for (int64_t l = L - 1; l >= 0; --l) {
    block_train_backward<T>(c, P.layers[l], G.layers[l], rope, sh, acts_[l], dh, dnext, aux, arena_, pol);
    std::swap(dh, dnext);
    if (ready) ready(l);
  }
  embed_backward<T>(inputs, N, d, dh, G.embed);
  if (ready) ready(-1);
  return out;
}

template <typename T>
StepResult TrainStep<T>::run_windows(const int32_t* windows, int64_t B, int64_t S, bool backward, double scale,
                                     std::function<void(int64_t)> on_grads_ready) {
  windows_.fill(windows, B, S);
  StepRequest r;
  r.backward = backward;
  r.scale = scale;
  r.on_grads_ready = std::move(on_grads_ready);
  return run(windows_.view(), r);
}

template class TrainStep<float>;
template class TrainStep<double>;

}  // namespace qs
