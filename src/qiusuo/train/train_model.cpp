#include "qiusuo/train/train_model.h"

#include <cmath>
#include <map>

#include "qiusuo/core/buffer.h"
#include "qiusuo/core/error.h"
#include "qiusuo/core/profile.h"
#include "qiusuo/core/rng.h"
#include "qiusuo/model/lm_head.h"
#include "qiusuo/model/weights.h"

namespace qs {
namespace {
bool ends_with(const std::string& s, const std::string& suf) {
  return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}
bool is_mtp_shared_copy(const ModelConfig& c, const std::string& name) {
  for (int64_t k = 0; k < c.num_nextn_predict_layers; ++k) {
    const std::string p = "model.layers." + std::to_string(c.num_hidden_layers + k) + ".";
    if (name == p + "embed_tokens.weight" || name == p + "shared_head.head.weight") return true;
  }
  return false;
}
}  // namespace

std::vector<ParamInfo> training_param_layout(const ModelConfig& cfg, size_t* total) {
  std::vector<ParamInfo> out;
  size_t off = 0;
  for (const auto& e : expected_tensors(cfg)) {
    if (is_mtp_shared_copy(cfg, e.name)) continue;
    ParamInfo p;
    p.name = e.name;
    p.shape = e.shape;
    p.numel = size_t(shape_numel(e.shape));
    p.offset = off;
    off += (p.numel + 15) / 16 * 16;  // 64-byte aligned tensors
    p.decay = e.shape.size() == 2;  // matrices only: no decay on norms and biases
    p.optimize = !ends_with(e.name, "e_score_correction_bias");
    if (!p.optimize) p.decay = false;
    out.push_back(std::move(p));
  }
  if (total) *total = off;
  return out;
}

template <typename T>
TrainModel<T>::TrainModel(const ModelConfig& cfg, int64_t batch, int64_t seq_len, TrainLossOptions opt)
    : cfg_(cfg), B_(batch), S_(seq_len), opt_(opt), rope_(cfg) {
  QS_CHECK(batch > 0 && seq_len > 1, "training needs batch >= 1 and seq_len >= 2 (got ", batch, ", ", seq_len, ")");
  size_t total = 0;
  layout_ = training_param_layout(cfg_, &total);
  for (auto* v : {&params_, &grads_}) {
    v->reserve(total);
    advise_huge_pages(v->data(), total * sizeof(T));
    v->assign(total, T(0));
  }
  std::map<std::string, size_t> off;
  for (const auto& p : layout_) off[p.name] = p.offset;
  auto view = [&](std::vector<T>& buf) {
    return make_param_views<T>(cfg_, [&](const std::string& n) -> T* {
      auto it = off.find(n);
      if (it == off.end()) fail(ErrorKind::Internal, "no training parameter '", n, "'");
      return buf.data() + it->second;
    });
  };
  P_ = view(params_);
  G_ = view(grads_);
  // Plan the activation arena.
  const int64_t N = B_ * S_, d = cfg_.hidden_size;
  size_t plan = size_t(cfg_.num_hidden_layers + 1 + 3) * size_t((N * d + 15) / 16 * 16);
  for (int64_t l = 0; l < cfg_.num_hidden_layers; ++l) plan += block_train_arena_elems(cfg_, l, B_, S_);
  for (int64_t k = 0; k < cfg_.num_nextn_predict_layers; ++k)
    plan += mtp_train_arena_elems(cfg_, k, B_, S_) + 2 * size_t((N * d + 15) / 16 * 16);
  arena_.reserve(plan);
}

template <typename T>
const ParamInfo* TrainModel<T>::info(const std::string& name) const {
  for (const auto& p : layout_)
    if (p.name == name) return &p;
  return nullptr;
}

template <typename T>
T* TrainModel<T>::param(const std::string& name) {
  const ParamInfo* p = info(name);
  if (!p) fail(ErrorKind::NotFound, "model has no parameter '", name, "'");
  return params_.data() + p->offset;
}

template <typename T>
void TrainModel<T>::init_random(uint64_t seed, double std) {
  const double out_std = std / std::sqrt(2.0 * double(cfg_.num_hidden_layers + cfg_.num_nextn_predict_layers));
  for (size_t i = 0; i < layout_.size(); ++i) {
    const ParamInfo& p = layout_[i];
    T* w = params_.data() + p.offset;
    if (ends_with(p.name, "norm.weight")) {
      std::fill(w, w + p.numel, T(1));
    } else if (!p.optimize) {
      std::fill(w, w + p.numel, T(0));
    } else {
      Rng rng(seed * 0x9e3779b97f4a7c15ull + i);
      const double s = (ends_with(p.name, "o_proj.weight") || ends_with(p.name, "down_proj.weight")) ? out_std : std;
      for (size_t j = 0; j < p.numel; ++j) w[j] = T(rng.normal() * s);
    }
  }
}

template <typename T>
void TrainModel<T>::zero_grad() {
  std::fill(grads_.begin(), grads_.end(), T(0));
}

template <typename T>
double TrainModel<T>::flops_per_token() const {
  const ModelConfig& c = cfg_;
  const double d = double(c.hidden_size);
  // Active matmul parameters per token (head included, embedding lookup not).
  double p = double(c.active_params()) - d * double(c.vocab_size) - d - 2 * d * double(c.num_hidden_layers);
  // MTP block + eh_proj + head per depth.
  ModelConfig one = c;
  for (int64_t k = 0; k < c.num_nextn_predict_layers; ++k) {
    one.num_hidden_layers = 1;
    one.first_k_dense_replace = c.is_moe_layer(c.num_hidden_layers + k) ? 0 : 1;
    p += double(one.active_params()) - d * double(c.vocab_size) - 4 * d + 2 * d * d;
  }
  const double layers = double(c.num_hidden_layers + c.num_nextn_predict_layers);
  // Causal attention: scores and values over S/2 keys on average.
  const double attn = layers * double(c.num_attention_heads) * double(S_) / 2.0 * double(c.qk_head_dim() + c.v_head_dim);
  return 6.0 * (p + attn);  // forward 2, backward 4
}

template <typename T>
StepLosses TrainModel<T>::forward_backward(const int32_t* tokens, bool backward, double grad_scale) {
  QS_PROFILE("model.forward_backward");
  const ModelConfig& c = cfg_;
  const int64_t B = B_, S = S_, N = B * S, d = c.hidden_size, V = c.vocab_size, L = c.num_hidden_layers;
  const int64_t D = c.num_nextn_predict_layers;
  weight_cache_->invalidate();  // the optimizer may have moved the weights since the last call
  const MatmulPolicy pol{opt_.precision, weight_cache_.get()};
  const T eps = T(c.rms_norm_eps);
  arena_.reset();
  std::vector<int32_t> in(N), tgt(N);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t s = 0; s < S; ++s) {
      in[b * S + s] = tokens[b * (S + 1) + s];
      tgt[b * S + s] = tokens[b * (S + 1) + s + 1];
    }
  for (int64_t i = 0; i < N; ++i) {
    QS_CHECK(in[i] >= 0 && in[i] < V && tgt[i] >= 0 && tgt[i] < V, "training token id ",
             (in[i] < 0 || in[i] >= V) ? in[i] : tgt[i], " is outside the model vocabulary [0, ", V, ")");
  }
  // Forward.
  std::vector<T*> hs(L + 1);
  for (auto& h : hs) h = arena_.alloc(size_t(N * d), false);
  embed_forward<T>(P_.embed, d, in.data(), N, hs[0]);
  std::vector<BlockActs<T>> acts(L);
  for (int64_t l = 0; l < L; ++l)
    block_train_forward<T>(c, P_.layers[l], rope_, B, S, hs[l], hs[l + 1], acts[l], opt_.aux_alpha, arena_, pol);
  StepLosses out;
  out.expert_load.resize(L + D);
  for (int64_t l = 0; l < L; ++l) {
    if (acts[l].moe) {
      out.expert_load[l] = acts[l].ffn.load;
      out.aux += double(acts[l].ffn.aux_loss);
    }
  }
  // MTP forward: depth k embeds token t+k and predicts token t+k+1 (rows without one ignored).
  std::vector<MtpActs<T>> mtp(D);
  std::vector<std::vector<int32_t>> mtp_tgt(D);
  for (int64_t k = 0; k < D; ++k) {
    std::vector<int32_t> next(N);
    mtp_tgt[k].assign(N, -1);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t s = 0; s < S; ++s) {
        const int64_t pe = s + k + 1, pt = s + k + 2;  // window positions (window has S+1 tokens)
        next[b * S + s] = pe <= S ? tokens[b * (S + 1) + pe] : 0;
        if (pt <= S) mtp_tgt[k][b * S + s] = tokens[b * (S + 1) + pt];
      }
    const T* hprev = k == 0 ? hs[L] : mtp[k - 1].out;
    mtp_train_forward<T>(c, P_.mtp[k], P_.embed, rope_, k, B, S, hprev, next.data(), mtp[k], opt_.aux_alpha, arena_, pol);
    if (mtp[k].block.moe) {
      out.expert_load[L + k] = mtp[k].block.ffn.load;
      out.aux += double(mtp[k].block.ffn.aux_loss);
    }
  }
  // Losses (and the gradient of the heads).
  T* dh = backward ? arena_.alloc(size_t(N * d)) : nullptr;
  const HeadLoss main = head_loss<T>(hs[L], N, d, P_.final_norm, eps, P_.head, V, tgt.data(), T(grad_scale / double(N)),
                                     dh, backward ? G_.final_norm : nullptr, backward ? G_.head : nullptr, pol);
  out.main = main.loss_sum / double(main.count);
  out.tokens = main.count;
  std::vector<T*> dmtp(D, nullptr);
  double mtp_sum = 0;
  for (int64_t k = 0; k < D; ++k) {
    int64_t cnt = 0;
    for (int32_t t : mtp_tgt[k]) cnt += t >= 0;
    if (backward) dmtp[k] = arena_.alloc(size_t(N * d));
    const double w = cnt > 0 ? grad_scale * opt_.mtp_lambda / double(D) / double(cnt) : 0.0;
    const HeadLoss ml = head_loss<T>(mtp[k].out, N, d, P_.mtp[k].head_norm, eps, P_.head, V, mtp_tgt[k].data(), T(w),
                                     dmtp[k], backward ? G_.mtp[k].head_norm : nullptr, backward ? G_.head : nullptr, pol);
    mtp_sum += cnt > 0 ? ml.loss_sum / double(cnt) : 0.0;
  }
  out.mtp = D > 0 ? mtp_sum / double(D) : 0.0;
  out.objective = out.main + opt_.mtp_lambda * out.mtp + out.aux;
  if (!backward) return out;

  // Backward: MTP modules from the deepest, each adding into the previous depth's hidden.
  const double aux = opt_.aux_alpha * grad_scale;
  for (int64_t k = D - 1; k >= 0; --k) {
    T* dprev = k == 0 ? dh : dmtp[k - 1];
    mtp_train_backward<T>(c, P_.mtp[k], G_.mtp[k], P_.embed, G_.embed, rope_, k, B, S, mtp[k], dmtp[k], dprev, aux,
                          arena_, pol);
  }
  T* dnext = arena_.alloc(size_t(N * d), false);
  for (int64_t l = L - 1; l >= 0; --l) {
    block_train_backward<T>(c, P_.layers[l], G_.layers[l], rope_, B, S, acts[l], dh, dnext, aux, arena_, pol);
    std::swap(dh, dnext);
  }
  embed_backward<T>(in.data(), N, d, dh, G_.embed);
  return out;
}

template class TrainModel<float>;
template class TrainModel<double>;

}  // namespace qs
