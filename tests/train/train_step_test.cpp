// The training step (train/train_step.h): finite-difference gradient checks in double of the
// weighted cross-entropy on ragged batches, of the log-probability-coefficient backward and of
// top-K / full-vocabulary distillation; exact properties in float (masked positions contribute
// nothing, c = −w reproduces the cross-entropy gradient, a teacher equal to the student gives
// zero loss and gradient, a ragged batch equals its rows run alone); the float MLA attention
// path against finite differences; the arena plan; a reused BF16 / FP8 step equals a fresh one,
// the activation cache rounds like an ordinary operand; clear errors for bad batches.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "qiusuo/core/error.h"
#include "qiusuo/core/rng.h"
#include "qiusuo/model/train_ops.h"
#include "qiusuo/train/train_step.h"
#include "train/gradcheck_util.h"

namespace qs {
namespace {

using namespace gradcheck;
using ::testing::HasSubstr;

// A ragged batch of B rows of S columns with the given real lengths: random inputs, targets
// at every real position except every fifth, −1 in the padding; weights in [0, 1) with every
// seventh position exactly 0.
struct RandomBatch {
  int64_t B, S;
  std::vector<int32_t> inputs, targets, lengths;
  std::vector<double> weights;
  RandomBatch(int64_t B_, int64_t S_, std::vector<int32_t> len, int64_t V, uint64_t seed)
      : B(B_), S(S_), lengths(std::move(len)) {
    Rng r(seed);
    inputs.resize(size_t(B * S));
    targets.resize(size_t(B * S));
    weights.resize(size_t(B * S));
    for (int64_t i = 0; i < B * S; ++i) {
      const bool real = i % S < lengths[size_t(i / S)];
      inputs[i] = int32_t(r.below(uint64_t(V)));
      targets[i] = real && i % 5 != 3 ? int32_t(r.below(uint64_t(V))) : -1;
      weights[i] = i % 7 == 2 ? 0.0 : r.uniform();
    }
  }
  TokenBatch view() const {
    TokenBatch t;
    t.rows = B;
    t.cols = S;
    t.inputs = inputs;
    t.targets = targets;
    t.weights = weights;
    t.lengths = lengths;
    return t;
  }
};

TrainLossOptions losses(double mtp, double alpha) { return {TrainPrecision::F32, mtp, alpha}; }

// A float model with the double model's parameters.
TrainModel<float> float_copy(const TrainModel<double>& m) {
  TrainModel<float> f(m.config());
  for (size_t i = 0; i < f.params().size(); ++i) f.params()[i] = float(m.params()[i]);
  return f;
}

double max_abs(const std::vector<float>& v) {
  double m = 0;
  for (float x : v) m = std::max(m, double(std::fabs(x)));
  return m;
}

TEST(TrainStep, WeightedCrossEntropyOnARaggedBatchMatchesFiniteDifferences) {
  TrainModel<double> m = make_model(small_config());
  TrainStep<double> step(m, {4, 8}, losses(0.3, 0.01));
  const RandomBatch b(3, 6, {6, 4, 0}, 40, 1);  // smaller than the plan; a padding row
  m.zero_grad();
  const StepResult r = step.run(b.view());
  EXPECT_NEAR(r.objective, r.main + 0.3 * r.mtp + r.aux, 1e-12);
  EXPECT_EQ(r.main, r.ce);
  EXPECT_GT(r.mtp, 0);
  EXPECT_GT(r.aux, 0);
  EXPECT_EQ(r.tokens, 8);  // 6 + 4 real positions, those at index 3 and 8 without a target
  StepRequest fwd;
  fwd.backward = false;
  auto loss = [&] { return step.run(b.view(), fwd).objective; };
  Checked st;
  check_params(m, "", loss, st, 3);
  EXPECT_EQ(st.bad, 0);
  EXPECT_GT(st.n, 100);
  EXPECT_LE(step.arena_peak_bytes(), step.arena_planned_bytes());
}

TEST(TrainStep, LogProbCoefficientsMatchFiniteDifferences) {
  TrainModel<double> m = make_model(small_config());
  TrainStep<double> step(m, {2, 6}, losses(0.0, 0.0));
  const RandomBatch b(2, 6, {6, 5}, 40, 2);
  std::vector<double> coef(b.inputs.size());
  Rng r(3);
  for (auto& c : coef) c = r.normal();  // signed, as GRPO's advantages make them
  StepRequest req;
  req.loss = Loss::LogProbCoef;
  req.coef = coef;
  req.logprobs = true;
  m.zero_grad();
  const StepResult res = step.run(b.view(), req);
  double expect = 0;
  for (size_t i = 0; i < coef.size(); ++i)
    if (b.targets[i] >= 0) expect += coef[i] * res.logprobs[i];
  EXPECT_NEAR(res.main, expect, 1e-12);
  StepRequest fwd = req;
  fwd.backward = false;
  auto loss = [&] { return step.run(b.view(), fwd).objective; };
  Checked st;
  check_params(m, "", loss, st, 3);
  EXPECT_EQ(st.bad, 0);
}

// c = −w gives the cross-entropy gradient (float, the training precision).
TEST(TrainStep, CoefficientsMinusWeightsReproduceTheCrossEntropyGradient) {
  TrainModel<double> md = make_model(small_config());
  TrainModel<float> m = float_copy(md);
  TrainStep<float> step(m, {3, 8}, losses(0.3, 0.01));
  const RandomBatch b(3, 8, {8, 7, 3}, 40, 4);
  m.zero_grad();
  const StepResult ce = step.run(b.view());
  const std::vector<float> g_ce = m.grads();
  std::vector<double> coef(b.weights.size());
  for (size_t i = 0; i < coef.size(); ++i) coef[i] = -b.weights[i];
  StepRequest req;
  req.loss = Loss::LogProbCoef;
  req.coef = coef;
  m.zero_grad();
  const StepResult co = step.run(b.view(), req);
  double diff = 0;
  for (size_t i = 0; i < g_ce.size(); ++i) diff = std::max(diff, double(std::fabs(g_ce[i] - m.grads()[i])));
  EXPECT_LE(diff, 1e-6 * max_abs(g_ce)) << "max |g_ce − g_coef| = " << diff;
  EXPECT_NEAR(co.main, ce.main, 1e-6 * std::fabs(ce.main));  // Σ (−w)·log p = Σ w·CE
  EXPECT_EQ(co.ce, ce.ce);
}

// Positions with weight 0 contribute exactly nothing: their targets can be anything.
TEST(TrainStep, ZeroWeightPositionsGetExactlyZeroGradient) {
  TrainModel<double> md = make_model(small_config());
  TrainModel<float> m = float_copy(md);
  TrainStep<float> step(m, {3, 8}, losses(0.3, 0.0));
  RandomBatch b(3, 8, {8, 8, 5}, 40, 5);
  m.zero_grad();
  const StepResult r1 = step.run(b.view());
  const std::vector<float> g1 = m.grads();
  int changed = 0;
  for (size_t i = 0; i < b.targets.size(); ++i)
    if (b.weights[i] == 0 && b.targets[i] >= 0) b.targets[i] = (b.targets[i] + 11) % 40, ++changed;
  ASSERT_GT(changed, 1);
  m.zero_grad();
  const StepResult r2 = step.run(b.view());
  EXPECT_EQ(r1.main, r2.main);
  EXPECT_EQ(r1.mtp, r2.mtp);
  EXPECT_TRUE(g1 == m.grads()) << "a zero-weight position changed the gradients";
  // All weights zero (and no balance loss): every gradient is exactly zero.
  std::fill(b.weights.begin(), b.weights.end(), 0.0);
  m.zero_grad();
  const StepResult r3 = step.run(b.view());
  EXPECT_EQ(r3.objective, 0.0);
  EXPECT_EQ(max_abs(m.grads()), 0.0);
}

// A ragged batch (rows of different lengths, a padding row, smaller than the plan) gives the
// losses, expert loads and gradients of its rows run one by one.
TEST(TrainStep, RaggedBatchEqualsItsRowsAlone) {
  const double alpha = 0.02;
  TrainModel<double> m = make_model(small_config());
  const RandomBatch b(4, 7, {7, 3, 0, 5}, 40, 6);
  TrainStep<double> step(m, {5, 9}, losses(0.0, alpha));
  m.zero_grad();
  const StepResult all = step.run(b.view());
  const std::vector<double> g_all = m.grads();
  m.zero_grad();
  // The balance loss is a mean over the 3 non-empty rows: each row alone carries a third of it.
  TrainStep<double> one(m, {1, 7}, losses(0.0, alpha / 3));
  double main = 0, aux = 0;
  std::vector<std::vector<int64_t>> load(all.expert_load.size());
  for (int64_t row = 0; row < b.B; ++row) {
    const int64_t len = b.lengths[row];
    if (len == 0) continue;
    TokenBatch t;
    t.rows = 1;
    t.cols = len;
    t.inputs = std::span(b.inputs).subspan(size_t(row * b.S), size_t(len));
    t.targets = std::span(b.targets).subspan(size_t(row * b.S), size_t(len));
    t.weights = std::span(b.weights).subspan(size_t(row * b.S), size_t(len));
    const StepResult r = one.run(t);
    main += r.main;
    aux += r.aux;
    for (size_t l = 0; l < load.size(); ++l) {
      if (r.expert_load[l].empty()) continue;
      load[l].resize(r.expert_load[l].size());
      for (size_t e = 0; e < load[l].size(); ++e) load[l][e] += r.expert_load[l][e];
    }
  }
  EXPECT_NEAR(all.main, main, 1e-12);
  EXPECT_NEAR(all.aux, aux, 1e-12);
  EXPECT_EQ(all.expert_load, load);
  double worst = 0, gmax = 0;
  for (size_t i = 0; i < g_all.size(); ++i) {
    worst = std::max(worst, std::fabs(g_all[i] - m.grads()[i]));
    gmax = std::max(gmax, std::fabs(g_all[i]));
  }
  EXPECT_LE(worst, 1e-12 * gmax);
}

// Top-K distillation (and the full vocabulary) against finite differences.
TEST(TrainStep, DistillationMatchesFiniteDifferences) {
  TrainModel<double> m = make_model(small_config());
  const int64_t V = m.config().vocab_size;
  TrainStep<double> step(m, {2, 6}, losses(0.0, 0.0));
  const RandomBatch b(2, 6, {6, 4}, V, 7);
  for (int64_t K : {int64_t(5), int64_t(0)}) {
    const int64_t per = K > 0 ? K : V;
    std::vector<int32_t> ids;
    std::vector<double> lp(b.inputs.size() * size_t(per));
    Rng r(8);
    for (auto& x : lp) x = -3.0 + r.normal();
    if (K > 0) {
      for (size_t t = 0; t < b.inputs.size(); ++t) {  // K distinct ids per position
        std::vector<int32_t> all(static_cast<size_t>(V));
        for (int32_t v = 0; v < V; ++v) all[v] = v;
        for (int64_t k = 0; k < K; ++k) std::swap(all[size_t(k)], all[size_t(k + int64_t(r.below(uint64_t(V - k))))]);
        ids.insert(ids.end(), all.begin(), all.begin() + K);
      }
      lp[1] = -std::numeric_limits<double>::infinity();  // a zero-probability teacher entry
    }
    StepRequest req;
    req.loss = Loss::Distill;
    req.teacher = {K, ids, lp};
    m.zero_grad();
    const StepResult res = step.run(b.view(), req);
    EXPECT_GT(res.main, 0) << "K = " << K;
    StepRequest fwd = req;
    fwd.backward = false;
    auto loss = [&] { return step.run(b.view(), fwd).objective; };
    Checked st;
    check_params(m, "", loss, st, 3);
    EXPECT_EQ(st.bad, 0) << "K = " << K;
  }
}

// With the whole vocabulary the loss is the plain KL(q ‖ p), p from the step's own log-probs.
TEST(TrainStep, FullVocabularyDistillationIsThePlainKl) {
  TrainModel<double> m = make_model(small_config());
  const int64_t V = m.config().vocab_size;
  TrainStep<double> step(m, {1, 5}, losses(0.0, 0.0));
  const RandomBatch b(1, 5, {5}, V, 9);
  StepRequest probe;
  probe.backward = false;
  probe.top_k = V;
  const StepResult student = step.run(b.view(), probe);
  std::vector<double> q(size_t(5 * V));
  Rng r(10);
  for (int64_t t = 0; t < 5; ++t) {  // a normalized teacher distribution
    double z = 0;
    for (int64_t v = 0; v < V; ++v) z += (q[size_t(t * V + v)] = std::exp(2 * r.normal()));
    for (int64_t v = 0; v < V; ++v) q[size_t(t * V + v)] = std::log(q[size_t(t * V + v)] / z);
  }
  StepRequest req;
  req.loss = Loss::Distill;
  req.teacher = {0, {}, q};
  req.backward = false;
  const StepResult res = step.run(b.view(), req);
  double expect = 0;
  for (int64_t t = 0; t < 5; ++t) {
    if (b.targets[t] < 0) continue;
    std::vector<double> logp(static_cast<size_t>(V));
    for (int64_t k = 0; k < V; ++k) logp[size_t(student.top_ids[t * V + k])] = student.top_logprobs[t * V + k];
    for (int64_t v = 0; v < V; ++v) {
      const double lq = q[size_t(t * V + v)];
      expect += b.weights[t] * std::exp(lq) * (lq - logp[size_t(v)]);
    }
  }
  EXPECT_NEAR(res.main, expect, 1e-12 * expect);
}

// A teacher that is the student — its own top-K, or its whole distribution — gives exactly zero
// loss and zero gradient (float).
TEST(TrainStep, TeacherEqualToStudentGivesExactlyZero) {
  TrainModel<double> md = make_model(small_config());
  TrainModel<float> m = float_copy(md);
  const int64_t V = m.config().vocab_size;
  TrainStep<float> step(m, {2, 8}, losses(0.0, 0.0));
  const RandomBatch b(2, 8, {8, 6}, V, 11);
  for (int64_t K : {int64_t(4), int64_t(0)}) {
    StepRequest probe;
    probe.backward = false;
    probe.top_k = K > 0 ? K : V;
    const StepResult s = step.run(b.view(), probe);
    std::vector<double> full;
    if (K == 0) {
      full.assign(b.inputs.size() * size_t(V), 0.0);
      for (size_t t = 0; t < b.inputs.size(); ++t)
        for (int64_t k = 0; k < V; ++k)
          full[t * size_t(V) + size_t(s.top_ids[t * size_t(V) + size_t(k)])] = s.top_logprobs[t * size_t(V) + size_t(k)];
    }
    StepRequest req;
    req.loss = Loss::Distill;
    req.teacher = K > 0 ? TeacherDist{K, s.top_ids, s.top_logprobs} : TeacherDist{0, {}, full};
    m.zero_grad();
    const StepResult r = step.run(b.view(), req);
    EXPECT_EQ(r.main, 0.0) << "K = " << K;
    EXPECT_EQ(max_abs(m.grads()), 0.0) << "K = " << K;
    EXPECT_GT(r.ce, 0.0);
  }
}

// The optional outputs agree with each other: log p(target) and the entropy from the full
// ranked distribution.
TEST(TrainStep, LogProbsEntropyAndTopK) {
  TrainModel<double> m = make_model(small_config());
  const int64_t V = m.config().vocab_size;
  TrainStep<double> step(m, {2, 6}, losses(0.3, 0.0));
  const RandomBatch b(2, 6, {6, 6}, V, 12);
  StepRequest req;
  req.backward = false;
  req.logprobs = req.entropy = true;
  req.top_k = V;
  const StepResult r = step.run(b.view(), req);
  double ce = 0;
  for (size_t t = 0; t < b.inputs.size(); ++t) {
    if (b.targets[t] < 0) {
      EXPECT_EQ(r.logprobs[t], 0.0);
      continue;
    }
    double h = 0, z = 0, lp_target = NAN;
    for (int64_t k = 0; k < V; ++k) {
      const double lp = r.top_logprobs[t * size_t(V) + size_t(k)];
      if (k > 0) {
        EXPECT_LE(lp, r.top_logprobs[t * size_t(V) + size_t(k) - 1]);
      }
      if (r.top_ids[t * size_t(V) + size_t(k)] == b.targets[t]) lp_target = lp;
      h -= std::exp(lp) * lp;
      z += std::exp(lp);
    }
    EXPECT_NEAR(z, 1.0, 1e-12);
    EXPECT_EQ(r.logprobs[t], lp_target);
    EXPECT_NEAR(r.entropy[t], h, 1e-12);
    ce -= b.weights[t] * lp_target;
  }
  EXPECT_NEAR(r.ce, ce, 1e-12);
}

// The float MLA path that trains (F32 GEMMs, the causal attention kernels in 128-row blocks)
// against central differences of the same function in double. Float bound: each gradient
// entry comes out of at most four chained products of length <= K (here K = S = 150 keys),
// each with the classic worst-case relative error γ_K ≈ K·ε_f of a K-term float dot product,
// so |g_float − g| <= 4·K·ε_f · max|g| over the tensor.
TEST(TrainStep, FloatMlaAttentionPathMatchesFiniteDifferences) {
  const auto j = small_config();
  TrainModel<double> md = make_model(j);
  TrainModel<float> mf = float_copy(md);
  const ModelConfig& c = md.config();
  const int64_t B = 2, S = 150, N = B * S, d = c.hidden_size;  // two 128-row attention blocks
  std::vector<double> x(size_t(N * d)), R(size_t(N * d));
  randomize(x, 21, 1.0);
  randomize(R, 22, 1.0);
  ArenaPlan plan;
  mla_train_plan(c, B, S, plan);
  // Float analytic gradients.
  TrainArena<float> fa;
  fa.reserve(plan.elems);
  std::vector<float> xf(x.begin(), x.end()), Rf(R.begin(), R.end()), outf(size_t(N * d)), dxf(size_t(N * d), 0.f);
  MlaActs<float> af;
  const MatmulPolicy pol;
  mf.zero_grad();
  mla_train_forward<float>(c, mf.views().layers[0].attn, mf.rope(), B, S, xf.data(), outf.data(), af, fa, pol);
  mla_train_backward<float>(c, mf.views().layers[0].attn, mf.grad_views().layers[0].attn, mf.rope(), B, S, af,
                            Rf.data(), dxf.data(), fa, pol);
  // The function in double.
  TrainArena<double> da;
  da.reserve(plan.elems);
  auto f = [&] {
    da.reset();
    MlaActs<double> a;
    std::vector<double> out(size_t(N * d));
    mla_train_forward<double>(c, md.views().layers[0].attn, md.rope(), B, S, x.data(), out.data(), a, da, pol);
    double s = 0;
    for (int64_t i = 0; i < N * d; ++i) s += out[i] * R[i];
    return s;
  };
  const double eps_f = std::numeric_limits<float>::epsilon(), bound = 4.0 * double(S) * eps_f;
  int checked = 0;
  double worst = 0;
  auto check_tensor = [&](const std::string& what, double* xs, const float* gf, size_t n, int entries) {
    double gmax = 0;
    for (size_t i = 0; i < n; ++i) gmax = std::max(gmax, double(std::fabs(gf[i])));
    Rng r(std::hash<std::string>()(what));
    for (int e = 0; e < entries; ++e) {
      const size_t i = size_t(r.below(n));
      const double x0 = xs[i], h = 1e-6;
      xs[i] = x0 + h;
      const double fp = f();
      xs[i] = x0 - h;
      const double fm = f();
      xs[i] = x0;
      const double num = (fp - fm) / (2 * h), err = std::fabs(num - double(gf[i]));
      worst = std::max(worst, err / (bound * gmax));
      ++checked;
      EXPECT_LE(err, bound * gmax) << what << "[" << i << "]: numeric " << num << ", float " << gf[i];
    }
  };
  check_tensor("x", x.data(), dxf.data(), x.size(), 40);
  for (const auto& p : md.layout()) {
    if (p.name.find("layers.0.self_attn.") == std::string::npos) continue;
    check_tensor(p.name, md.params().data() + p.offset, mf.grads().data() + p.offset, p.numel, 12);
  }
  EXPECT_GT(checked, 100);
  std::printf("float MLA: %d entries, worst error / (4·S·eps_f·max|g|) = %.3g\n", checked, worst);
}

// The plan covers every batch up to its maximum and, in F32 (no data-dependent MoE padding), is
// exactly what the largest batch uses.
TEST(TrainStep, ArenaPlanIsExactForTheLargestBatch) {
  const ModelConfig c = parse_model_config(small_config());
  for (TrainPrecision p : {TrainPrecision::F32, TrainPrecision::BF16}) {
    for (double mtp : {0.0, 0.3}) {
      TrainModel<float> m(c);
      m.init_random(1, 0.1);
      TrainStep<float> step(m, {3, 9}, {p, mtp, 0.01});
      step.run(RandomBatch(2, 5, {5, 4}, 40, 13).view());
      step.run(RandomBatch(3, 9, {9, 9, 9}, 40, 14).view());
      if (p == TrainPrecision::F32) {
        EXPECT_EQ(step.arena_peak_bytes(), step.arena_planned_bytes()) << mtp;
      } else {
        EXPECT_LE(step.arena_peak_bytes(), step.arena_planned_bytes()) << mtp;
      }
    }
  }
}

// A BF16 / FP8 step object reused for a second batch (its arena, weight and activation caches
// kept) gives bitwise what a fresh step gives for that batch: nothing cached for the first
// batch's activations (at the same arena addresses) survives into the second.
TEST(TrainStep, ReusedLowPrecisionStepEqualsAFreshOne) {
  const ModelConfig c = parse_model_config(small_config());
  for (TrainPrecision p : {TrainPrecision::BF16, TrainPrecision::FP8}) {
    TrainModel<float> m(c);
    m.init_random(1, 0.1);
    const RandomBatch a(3, 9, {9, 9, 9}, 40, 21), b(3, 9, {9, 6, 9}, 40, 22);
    TrainStep<float> reused(m, {3, 9}, {p, 0.3, 0.01});
    reused.run(a.view());
    m.zero_grad();
    const StepResult r1 = reused.run(b.view());
    const std::vector<float> g1 = m.grads();
    m.zero_grad();
    TrainStep<float> fresh(m, {3, 9}, {p, 0.3, 0.01});
    const StepResult r2 = fresh.run(b.view());
    EXPECT_EQ(r1.main, r2.main) << train_precision_name(p);
    EXPECT_EQ(r1.mtp, r2.mtp) << train_precision_name(p);
    size_t differ = 0;
    for (size_t i = 0; i < g1.size(); ++i) differ += g1[i] != m.grads()[i];
    EXPECT_EQ(differ, 0u) << train_precision_name(p);
    EXPECT_GT(max_abs(g1), 0.0);
  }
}

// A saved activation's BF16 copy (ActivationCache, Operand::Saved) is exactly the rounding an
// ordinary operand gets, and invalidate() drops it when the activation changes.
TEST(TrainStep, ActivationCacheRoundsExactlyLikeAnOrdinaryOperand) {
  const int64_t M = 37, N = 29, K = 70, lda = 75;
  Rng r(5);
  std::vector<float> A(size_t(M * lda)), W(size_t(N * K));
  for (auto& x : A) x = float(r.normal());
  for (auto& x : W) x = float(r.normal());
  ActivationCache acts;
  const MatmulPolicy plain{TrainPrecision::BF16}, cached{TrainPrecision::BF16, nullptr, &acts};
  auto product = [&](const MatmulPolicy& pol, Operand ka) {
    std::vector<float> C(size_t(M * N));
    mm<float>(pol, false, true, M, N, K, 1.0f, A.data(), lda, ka, W.data(), K, Operand::Weight, 0.0f, C.data(), N);
    return C;
  };
  const std::vector<float> want = product(plain, Operand::Act);
  EXPECT_EQ(product(cached, Operand::Saved), want);
  EXPECT_EQ(product(cached, Operand::Saved), want);  // from the cache
  for (auto& x : A) x *= -1.5f;
  acts.invalidate();
  const std::vector<float> want2 = product(plain, Operand::Act);
  EXPECT_NE(want2, want);
  EXPECT_EQ(product(cached, Operand::Saved), want2);
}

TEST(TrainStep, BadBatchesAreClearErrors) {
  TrainModel<float> m(parse_model_config(small_config()));
  TrainStep<float> step(m, {2, 6}, {});
  auto expect_error = [&](const RandomBatch& b, const StepRequest& r, const std::string& what) {
    try {
      step.run(b.view(), r);
      ADD_FAILURE() << "no error for: " << what;
    } catch (const Error& e) {
      EXPECT_THAT(e.what(), HasSubstr(what));
    }
  };
  expect_error(RandomBatch(3, 6, {6, 6, 6}, 40, 1), {}, "beyond the step's plan of 2 x 6");
  expect_error(RandomBatch(2, 7, {7, 7}, 40, 1), {}, "beyond the step's plan");
  RandomBatch b(2, 6, {6, 3}, 40, 2);
  b.inputs[3] = 40;
  expect_error(b, {}, "outside the model vocabulary");
  b = RandomBatch(2, 6, {6, 3}, 40, 2);
  b.targets[6 + 4] = 1;
  expect_error(b, {}, "in its padding");
  b = RandomBatch(2, 6, {6, 3}, 40, 2);
  b.weights[0] = NAN;
  expect_error(b, {}, "not finite");
  b = RandomBatch(2, 6, {6, 6}, 40, 2);
  StepRequest r;
  r.loss = Loss::LogProbCoef;
  expect_error(b, r, "coefficients must hold");
  std::vector<int32_t> ids(12 * 2, 5);
  std::vector<double> lp(12 * 2, -1.0);
  r.loss = Loss::Distill;
  r.teacher = {2, ids, lp};
  expect_error(b, r, "repeat a token");
}

}  // namespace
}  // namespace qs
