// Finite-difference gradient checks in double precision for every module's backward pass and
// for the whole model (MoE + MTP + balance loss): central differences with h = 1e-6 against
// the analytic gradients, |numeric − analytic| <= 1e-7 + 1e-5·|analytic| for every checked entry.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include "qiusuo/core/rng.h"
#include "qiusuo/model/block.h"
#include "qiusuo/model/lm_head.h"
#include "qiusuo/model/mtp.h"
#include "qiusuo/train/train_step.h"
#include "train/gradcheck_util.h"

namespace qs {
namespace {

using namespace gradcheck;

struct ModuleHarness {
  int64_t B = 2, S = 5;
  TrainModel<double> m;
  ModelConfig c;
  MatmulPolicy pol;
  explicit ModuleHarness(const nlohmann::json& j) : m(make_model(j)), c(m.config()) {}
  TrainShape shape() const { return {B, S}; }
  TrainArena<double> arenas[2];
  int next_arena = 0;
  // A reset arena (two alternate so that a backward pass can keep one alive while the loss
  // closure uses the other).
  TrainArena<double>& arena() {
    TrainArena<double>& a = arenas[next_arena ^= 1];
    if (a.capacity() == 0) a.reserve(1 << 20);
    a.reset();
    return a;
  }
};

TEST(GradCheck, RmsNormAndSwiGlu) {
  const int64_t n = 3, dim = 7;
  Vec x(n * dim), w(dim), R(n * dim);
  randomize(x, 1, 1.0);
  randomize(w, 2, 1.0);
  randomize(R, 3, 1.0);
  auto f = [&] {
    Vec y(n * dim), r(n);
    rmsnorm_fwd<double>(x.data(), w.data(), 1e-6, n, dim, y.data(), r.data());
    double s = 0;
    for (int64_t i = 0; i < n * dim; ++i) s += y[i] * R[i];
    return s;
  };
  Vec y(n * dim), r(n), dx(n * dim), dw(dim);
  rmsnorm_fwd<double>(x.data(), w.data(), 1e-6, n, dim, y.data(), r.data());
  rmsnorm_bwd<double>(x.data(), w.data(), r.data(), R.data(), n, dim, dx.data(), dw.data(), false);
  Checked st;
  check("rmsnorm.x", x.data(), dx.data(), x.size(), f, st, 100);
  check("rmsnorm.w", w.data(), dw.data(), w.size(), f, st, 100);
  Vec g(n * dim), u(n * dim), h(n * dim), dg(n * dim), du(n * dim);
  randomize(g, 4, 2.0);
  randomize(u, 5, 1.0);
  auto fs = [&] {
    swiglu_fwd<double>(g.data(), u.data(), n * dim, h.data());
    double s = 0;
    for (int64_t i = 0; i < n * dim; ++i) s += h[i] * R[i];
    return s;
  };
  swiglu_bwd<double>(g.data(), u.data(), R.data(), n * dim, dg.data(), du.data());
  check("swiglu.g", g.data(), dg.data(), g.size(), fs, st, 100);
  check("swiglu.u", u.data(), du.data(), u.size(), fs, st, 100);
  EXPECT_EQ(st.bad, 0);
}

// SwiGLU MLP with gate/up as one fused [2I, d] product (adjacent in memory) and as two.
TEST(GradCheck, MlpFusedAndSeparate) {
  const int64_t N = 6, d = 8, I = 5;
  for (bool fused : {true, false}) {
    Vec w(size_t((2 * I + (fused ? 0 : 3)) * d + I * d)), gw(w.size(), 0.0), x(N * d), R(N * d), dx(N * d, 0.0);
    randomize(w, 51, 0.5);
    randomize(x, 52, 1.0);
    randomize(R, 53, 1.0);
    MlpParamsT<double> p{w.data(), w.data() + I * d + (fused ? 0 : 3 * d), w.data() + 2 * I * d + (fused ? 0 : 3 * d)};
    MlpParamsT<double> g{gw.data(), gw.data() + (p.up - w.data()), gw.data() + (p.down - w.data())};
    TrainArena<double> arena;
    arena.reserve(1 << 16);
    MatmulPolicy pol;
    auto loss = [&] {
      arena.reset();
      MlpActs<double> a = mlp_alloc_acts(arena, N, I);
      Vec out(N * d);
      mlp_train_forward<double>(p, N, d, I, x.data(), out.data(), a, pol);
      double s = 0;
      for (int64_t i = 0; i < N * d; ++i) s += out[i] * R[i];
      return s;
    };
    arena.reset();
    MlpActs<double> a = mlp_alloc_acts(arena, N, I);
    Vec out(N * d);
    mlp_train_forward<double>(p, N, d, I, x.data(), out.data(), a, pol);
    mlp_train_backward<double>(p, g, N, d, I, a, R.data(), dx.data(), mlp_alloc_scratch(arena, N, I), pol);
    ArenaPlan plan;
    mlp_train_plan(N, I, plan);
    EXPECT_EQ(arena.peak(), plan.elems);
    Checked st;
    check("mlp.x", x.data(), dx.data(), x.size(), loss, st, 100);
    check("mlp.w", w.data(), gw.data(), w.size(), loss, st, 400);
    EXPECT_EQ(st.bad, 0) << (fused ? "fused" : "separate");
  }
}

// MLA with and without query compression, YaRN RoPE, against Σ out·R.
void mla_case(const nlohmann::json& j) {
  ModuleHarness H(j);
  const int64_t N = H.B * H.S, d = H.c.hidden_size;
  Vec x(N * d), R(N * d), dx(N * d, 0.0);
  randomize(x, 7, 1.0);
  randomize(R, 8, 1.0);
  const auto& P = H.m.views().layers[0].attn;
  const auto& G = H.m.grad_views().layers[0].attn;
  auto loss = [&] {
    auto& arena = H.arena();
    MlaActs<double> a;
    Vec out(N * d);
    mla_train_forward<double>(H.c, P, H.m.rope(), H.B, H.S, x.data(), out.data(), a, arena, H.pol);
    double s = 0;
    for (int64_t i = 0; i < N * d; ++i) s += out[i] * R[i];
    return s;
  };
  {
    auto& arena = H.arena();
    MlaActs<double> a;
    Vec out(N * d);
    H.m.zero_grad();
    mla_train_forward<double>(H.c, P, H.m.rope(), H.B, H.S, x.data(), out.data(), a, arena, H.pol);
    mla_train_backward<double>(H.c, P, G, H.m.rope(), H.B, H.S, a, R.data(), dx.data(), arena, H.pol);
    ArenaPlan plan;
    mla_train_plan(H.c, H.B, H.S, plan);
    EXPECT_EQ(arena.peak(), plan.elems);
  }
  Checked st;
  check("mla.x", x.data(), dx.data(), x.size(), loss, st, 80);
  check_params(H.m, "layers.0.self_attn.", loss, st, 40);
  EXPECT_EQ(st.bad, 0);
  EXPECT_GT(st.n, 200);
}

TEST(GradCheck, MlaWithQueryCompression) { mla_case(small_config()); }

TEST(GradCheck, MlaWithoutQueryCompression) {
  auto j = small_config();
  j["q_lora_rank"] = nullptr;
  mla_case(j);
}

// MoE layer (router through selected weights, dispatch/combine, shared experts, balance loss).
void moe_case(const nlohmann::json& j, double alpha, int64_t expect_zero_experts_at_least = 0) {
  ModuleHarness H(j);
  const int64_t N = H.B * H.S, d = H.c.hidden_size;
  Vec x(N * d), R(N * d), dx(N * d, 0.0);
  randomize(x, 17, 1.0);
  randomize(R, 18, 1.0);
  const auto& P = H.m.views().layers[1].ffn;
  const auto& G = H.m.grad_views().layers[1].ffn;
  std::vector<int32_t> ref_idx;
  int flips = 0;
  auto loss = [&] {
    auto& arena = H.arena();
    MoeActs<double> a;
    Vec out(N * d);
    moe_train_forward<double>(H.c, P, H.shape(), x.data(), out.data(), a, alpha, arena, H.pol);
    if (a.idx != ref_idx) flips++;
    double s = a.aux_loss;
    for (int64_t i = 0; i < N * d; ++i) s += out[i] * R[i];
    return s;
  };
  {
    auto& arena = H.arena();
    MoeActs<double> a;
    Vec out(N * d);
    H.m.zero_grad();
    moe_train_forward<double>(H.c, P, H.shape(), x.data(), out.data(), a, alpha, arena, H.pol);
    ref_idx = a.idx;
    int64_t zero = 0;
    for (auto l : a.load) zero += l == 0;
    EXPECT_GE(zero, expect_zero_experts_at_least);
    moe_train_backward<double>(H.c, P, G, H.shape(), a, R.data(), dx.data(), alpha, arena, H.pol);
    ArenaPlan plan;
    moe_train_plan(H.c, H.shape(), H.pol.precision, plan);
    EXPECT_EQ(arena.peak(), plan.elems);
  }
  Checked st;
  check("moe.x", x.data(), dx.data(), x.size(), loss, st, 80);
  check_params(H.m, "layers.1.mlp.", loss, st, 20);
  EXPECT_EQ(flips, 0) << "routing changed under the finite-difference step";
  EXPECT_EQ(st.bad, 0);
}

TEST(GradCheck, MoeSigmoidNoauxTcNormalizedWithBalanceLoss) { moe_case(small_config(), 0.01); }

TEST(GradCheck, MoeSoftmaxGreedyUnnormalized) {
  auto j = small_config();
  j["scoring_func"] = "softmax";
  j["topk_method"] = "greedy";
  j["norm_topk_prob"] = false;
  j["routed_scaling_factor"] = 1.0;
  moe_case(j, 0.0);
}

TEST(GradCheck, MoeGroupLimitedGreedyWithBalanceLoss) {
  auto j = small_config();
  j["scoring_func"] = "softmax";
  j["topk_method"] = "group_limited_greedy";
  j["norm_topk_prob"] = false;
  j["routed_scaling_factor"] = 16.0;
  moe_case(j, 0.003);
}

// Many experts, few tokens: capacity-free dispatch leaves some experts with no tokens at all.
TEST(GradCheck, MoeExpertsWithNoTokens) {
  auto j = small_config();
  j["n_routed_experts"] = 32;
  j["n_group"] = 1;
  j["topk_group"] = 1;
  j["n_shared_experts"] = 0;
  moe_case(j, 0.01, /*expect_zero_experts_at_least=*/8);
}

// Exact ties in the router (all logits equal): selection is by lowest index, deterministically,
// and gradients of everything but the (non-differentiable at a tie) router are exact.
TEST(GradCheck, MoeRoutingTies) {
  ModuleHarness H(small_config());
  const auto& P = H.m.views().layers[1].ffn;
  const int64_t E = H.c.n_routed_experts, d = H.c.hidden_size, N = H.B * H.S;
  std::fill(P.router, P.router + E * d, 0.0);
  std::fill(P.bias, P.bias + E, 0.0);
  Vec x(N * d), R(N * d), dx(N * d, 0.0);
  randomize(x, 27, 1.0);
  randomize(R, 28, 1.0);
  auto& arena = H.arena();
  MoeActs<double> a;
  Vec out(N * d);
  moe_train_forward<double>(H.c, P, H.shape(), x.data(), out.data(), a, 0.0, arena, H.pol);
  for (int64_t t = 0; t < N; ++t) {  // groups 0, 1 win the tie; experts 0 and 1 inside
    EXPECT_EQ(a.idx[t * 2], 0);
    EXPECT_EQ(a.idx[t * 2 + 1], 1);
  }
  H.m.zero_grad();
  moe_train_backward<double>(H.c, P, H.m.grad_views().layers[1].ffn, H.shape(), a, R.data(), dx.data(), 0.0, arena,
                             H.pol);
  auto loss = [&] {
    auto& ar = H.arena();
    MoeActs<double> b;
    Vec o(N * d);
    moe_train_forward<double>(H.c, P, H.shape(), x.data(), o.data(), b, 0.0, ar, H.pol);
    double s = 0;
    for (int64_t i = 0; i < N * d; ++i) s += o[i] * R[i];
    return s;
  };
  Checked st;
  check_params(H.m, "layers.1.mlp.experts.", loss, st, 10);
  check_params(H.m, "layers.1.mlp.shared_experts.", loss, st, 20);
  EXPECT_EQ(st.bad, 0);
}

TEST(GradCheck, HeadCrossEntropy) {
  const int64_t N = 6, d = 5, V = 9;
  Vec h(N * d), w(d), head(V * d), dh(N * d, 0.0), dw(d, 0.0), dhead(V * d, 0.0);
  randomize(h, 31, 1.0);
  randomize(w, 32, 1.0);
  randomize(head, 33, 1.0);
  std::vector<int32_t> tgt{1, 4, -1, 8, 0, 4};
  MatmulPolicy pol;
  TrainArena<double> arena;
  ArenaPlan plan;
  head_train_plan(N, d, V, plan);
  arena.reserve(plan.elems);
  const HeadScratch<double> scratch = head_alloc_scratch(arena, N, d, V);
  HeadRequest r;
  r.targets = tgt.data();
  auto f = [&] {
    return head_forward_backward<double>(h.data(), N, d, w.data(), 1e-6, head.data(), V, r, nullptr, nullptr, nullptr,
                                         scratch, pol).objective;
  };
  const auto l = head_forward_backward<double>(h.data(), N, d, w.data(), 1e-6, head.data(), V, r, dh.data(), dw.data(),
                                               dhead.data(), scratch, pol);
  EXPECT_EQ(l.count, 5);
  EXPECT_EQ(arena.peak(), plan.elems);
  EXPECT_DOUBLE_EQ(l.objective, l.ce);
  for (int64_t j = 0; j < d; ++j) EXPECT_EQ(dh[2 * d + j], 0.0) << "the position without a target";
  Checked st;
  check("head.h", h.data(), dh.data(), h.size(), f, st, 100);
  check("head.norm", w.data(), dw.data(), w.size(), f, st, 100);
  check("head.W", head.data(), dhead.data(), head.size(), f, st, 100);
  EXPECT_EQ(st.bad, 0);
}

// One whole block (MoE layer) and the MTP module through their own backward passes.
TEST(GradCheck, BlockAndMtp) {
  ModuleHarness H(small_config());
  const int64_t N = H.B * H.S, d = H.c.hidden_size;
  Vec x(N * d), R(N * d), dx(N * d, 0.0);
  randomize(x, 41, 1.0);
  randomize(R, 42, 1.0);
  std::vector<int32_t> next(N);
  for (int64_t i = 0; i < N; ++i) next[i] = int32_t((i * 7 + 3) % 40);
  const auto& mp = H.m.views().mtp[0];
  const auto& mg = H.m.grad_views().mtp[0];
  auto run = [&](bool back) {
    auto& arena = H.arena();
    MtpActs<double> a;
    mtp_train_forward<double>(H.c, mp, H.m.views().embed, H.m.rope(), 0, H.shape(), x.data(), next.data(), a, 0.01,
                              arena, H.pol);
    double s = 0;
    for (int64_t i = 0; i < N * d; ++i) s += a.out[i] * R[i];
    s += a.block.ffn.aux_loss;
    if (back) {
      H.m.zero_grad();
      mtp_train_backward<double>(H.c, mp, mg, H.m.grad_views().embed, H.m.rope(), 0, H.shape(), a, R.data(),
                                 dx.data(), 0.01, arena, H.pol);
      ArenaPlan plan;
      mtp_train_plan(H.c, 0, H.shape(), H.pol.precision, plan);
      EXPECT_EQ(arena.peak(), plan.elems);
    }
    return s;
  };
  run(true);
  Checked st;
  auto loss = [&] { return run(false); };
  check("mtp.h_prev", x.data(), dx.data(), x.size(), loss, st, 60);
  check_params(H.m, "layers.2.", loss, st, 8);  // MTP module (layer L = 2)
  check_params(H.m, "embed_tokens", loss, st, 40);
  EXPECT_EQ(st.bad, 0);
}

// The whole model: embedding, dense + MoE layers, final norm, head, MTP, balance loss.
TEST(GradCheck, WholeModelWithMoeAndMtp) {
  auto j = small_config();
  TrainModel<double> m = make_model(j);
  TrainStep<double> step(m, {2, 5}, {TrainPrecision::F32, 0.3, 0.01});
  std::vector<int32_t> tok(2 * 6);
  for (size_t i = 0; i < tok.size(); ++i) tok[i] = int32_t((i * 13 + 5) % 40);
  m.zero_grad();
  const StepResult l = step.run_windows(tok.data(), 2, 5, true);
  EXPECT_GT(l.mtp, 0);
  EXPECT_GT(l.aux, 0);
  EXPECT_LE(step.arena_peak_bytes(), step.arena_planned_bytes());
  auto loss = [&] { return step.run_windows(tok.data(), 2, 5, false).objective; };
  Checked st;
  check_params(m, "", loss, st, 4);
  EXPECT_EQ(st.bad, 0);
  EXPECT_GT(st.n, 150);
  std::printf("whole model: %d entries checked, worst error/bound %.3g\n", st.n, st.worst);
}

}  // namespace
}  // namespace qs
