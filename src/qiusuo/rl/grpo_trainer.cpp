#include "qiusuo/rl/grpo_trainer.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <numeric>

#include "qiusuo/core/error.h"
#include "qiusuo/core/rng.h"
#include "qiusuo/core/timer.h"
#include "qiusuo/io/file.h"
#include "qiusuo/io/safetensors.h"
#include "qiusuo/rl/evaluate.h"
#include "qiusuo/rl/loop.h"
#include "qiusuo/rl/plots.h"
#include "qiusuo/rl/policy.h"
#include "qiusuo/train/live_model.h"
#include "qiusuo/train/train_step.h"

namespace qs::rl {

nlohmann::ordered_json GrpoSummary::to_json() const {
  return {{"steps", steps},
          {"first_step", first_step},
          {"train_tokens", train_tokens},
          {"reward_mean", reward_mean},
          {"accuracy", accuracy},
          {"eval_accuracy", eval_accuracy < 0 ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(eval_accuracy)},
          {"rollout_tokens_per_s", rollout_tokens_per_s},
          {"update_tokens_per_s", update_tokens_per_s},
          {"rollout_share", rollout_share},
          {"seconds", seconds},
          {"stopped_early", stopped_early},
          {"out", out_dir},
          {"checkpoint", checkpoint}};
}

namespace {

void validate(const GrpoOptions& o) {
  QS_CHECK(o.prompts >= 1, "--prompts must be at least 1, not ", o.prompts);
  QS_CHECK(o.group >= 2, "--group must be at least 2 (advantages compare the completions of a prompt), not ", o.group);
  QS_CHECK(o.mu >= 1, "--mu must be at least 1, not ", o.mu);
  QS_CHECK(o.ref_resync >= 0, "--ref-resync must be >= 0");
  QS_CHECK(o.micro_batch >= 1, "--micro-batch must be at least 1");
  QS_CHECK(o.max_tokens >= 1, "--max-tokens must be at least 1");
  QS_CHECK(o.loss.clip_low >= 0 && o.loss.clip_low < 1, "--clip-low must be in [0, 1), not ", o.loss.clip_low);
  QS_CHECK(o.loss.clip_high >= 0 && std::isfinite(o.loss.clip_high), "--clip-high must be >= 0, not ", o.loss.clip_high);
  QS_CHECK(o.loss.beta >= 0 && std::isfinite(o.loss.beta), "--beta must be >= 0, not ", o.loss.beta);
  QS_CHECK(o.log_samples_every >= 0 && o.log_samples >= 0, "--log-samples-every and --log-samples must be >= 0");
  QS_CHECK(o.eval_every >= 0 && o.eval_problems >= 0, "--eval-every and --eval-problems must be >= 0");
  QS_CHECK(o.ref_resync == 0 || o.loss.beta > 0, "--ref-resync needs --beta > 0 (without a KL term there is no reference)");
  rl::validate(o.reward);
}

std::string reference_dir(const std::string& out, int64_t step) {
  char name[40];
  std::snprintf(name, sizeof name, "step-%08lld", (long long)step);
  return path_join(path_join(out, "reference"), name);
}

// One rollout sequence that takes part in the update.
struct Seq {
  int64_t result = 0;  // index into the rollout results
  int64_t prompt = 0;  // index into the problems
};

}  // namespace

GrpoSummary run_grpo(const std::string& model_dir, const std::string& tasks, const GrpoOptions& o) {
  validate(o);
  const std::vector<Problem> problems = load_task_jsonl(tasks);
  QS_CHECK(!problems.empty(), tasks, " holds no problems");
  const std::unique_ptr<Tokenizer> tok = load_chat_tokenizer(model_dir);
  const ChatFormatter chat(*tok);
  const std::vector<TaskPrompt> prompts = task_prompts(chat, problems);
  const ModelConfig cfg = load_model_config(model_dir);
  const int64_t context = cfg.max_position_embeddings;
  std::vector<int64_t> budget(problems.size());
  int64_t max_len = 0;
  for (size_t i = 0; i < problems.size(); ++i) {
    budget[i] = completion_budget(int64_t(prompts[i].ids.size()), o.max_tokens, context,
                                  str(tasks, ": problem ", i + 1));
    max_len = std::max<int64_t>(max_len, int64_t(prompts[i].ids.size()) + budget[i]);
  }
  std::vector<Problem> eval_problems;
  if (!o.eval_tasks.empty()) {
    eval_problems = load_task_jsonl(o.eval_tasks);
    if (o.eval_problems > 0 && int64_t(eval_problems.size()) > o.eval_problems) eval_problems.resize(size_t(o.eval_problems));
    QS_CHECK(!eval_problems.empty(), o.eval_tasks, " holds no problems");
  }

  TrainModel<float> model(cfg);
  load_hf_weights(TensorStore::open_dir(model_dir), model);
  // The frozen reference starts as the initial weights (copied before a resume overwrites them).
  std::unique_ptr<TrainModel<float>> ref;
  if (o.loss.beta > 0) {
    ref = std::make_unique<TrainModel<float>>(cfg);
    ref->params() = model.params();
  }

  const int64_t B = o.prompts, G = o.group, N = int64_t(problems.size());
  nlohmann::json settings = {{"model", model_dir},
                              {"tasks", tasks},
                              {"problems", N},
                              {"prompts", B},
                              {"group", G},
                              {"max_tokens", o.max_tokens},
                              {"mu", o.mu},
                              {"beta", o.loss.beta},
                              {"clip_low", o.loss.clip_low},
                              {"clip_high", o.loss.clip_high},
                              {"loss", loss_aggregation_name(o.loss.loss)},
                              {"scale_rewards", scale_rewards_name(o.scale_rewards)},
                              {"drop_uniform_groups", o.drop_uniform_groups},
                              {"mask_truncated", o.loss.mask_truncated},
                              {"ref_resync", o.ref_resync},
                              {"micro_batch", o.micro_batch},
                              {"lr", o.lr},
                              {"precision", train_precision_name(o.precision)},
                              {"seed", o.seed}};
  TrainLoop loop("grpo", model,
                 loop_options_from(o, o.steps, 0.1, model_dir, std::move(settings),
                                   {"problems", "prompts", "group", "mu", "beta", "ref_resync", "micro_batch", "seed",
                                    "threads", "precision", "max_tokens"}));
  if (ref && loop.resumed() && o.ref_resync > 0) {
    const int64_t r = loop.step() / o.ref_resync * o.ref_resync;
    if (r > 0) {
      const std::string dir = reference_dir(o.out_dir, r);
      if (!file_exists(path_join(dir, "model.safetensors")))
        fail(ErrorKind::NotFound, "cannot resume: the reference of step ", r, " (", dir, ") is missing");
      load_hf_weights(TensorStore::open_dir(dir), *ref);
    }
  }

  const Compute compute = o.precision == TrainPrecision::F32 ? Compute::F32 : Compute::BF16;
  const int64_t max_seqs = o.max_seqs > 0 ? o.max_seqs : B * G;
  const std::unique_ptr<Model> policy = live_model(model);
  Engine engine(*policy, tok.get(), batch_engine_options(max_seqs, max_len, compute));
  std::unique_ptr<Model> ref_model;
  std::unique_ptr<Engine> ref_engine;
  if (ref) {
    ref_model = live_model(*ref);
    ref_engine = std::make_unique<Engine>(*ref_model, nullptr, batch_engine_options(max_seqs, max_len, compute));
  }
  TrainLossOptions tlo;
  tlo.precision = o.precision;
  tlo.mtp_lambda = 0;  // RL trains the main head only
  tlo.aux_alpha = 0;
  const int64_t micro = std::min(o.micro_batch, B * G);
  TrainStep<float> step(model, {micro, max_len - 1}, tlo);
  MetricsLog samples(path_join(o.out_dir, "samples.jsonl"), loop.resumed() ? loop.step() : -1);
  const std::string metrics_path = path_join(o.out_dir, "metrics.jsonl");
  loop.before_save = [&] { samples.sync(); };
  loop.on_save = [&] { write_grpo_plots(metrics_path, path_join(o.out_dir, "plots")); };

  // The prompt order: epoch e is a permutation seeded by (seed, e).
  int64_t perm_epoch = -1;
  std::vector<int64_t> perm(static_cast<size_t>(N));
  auto problem_at = [&](int64_t g) {
    const int64_t e = g / N;
    if (e != perm_epoch) {
      std::iota(perm.begin(), perm.end(), 0);
      Rng rng(derive_seed(o.seed, 4, uint64_t(e)));
      for (int64_t i = N - 1; i > 0; --i) std::swap(perm[size_t(i)], perm[size_t(rng.below(uint64_t(i + 1)))]);
      perm_epoch = e;
    }
    return perm[size_t(g % N)];
  };

  GrpoSummary sum;
  sum.first_step = loop.step();
  sum.out_dir = o.out_dir;
  double sess_rollout_s = 0, sess_update_s = 0, sess_gen_tokens = 0, sess_update_tokens = 0;
  int64_t last_eval_step = -1;
  auto run_eval = [&](nlohmann::json& m) {
    EvalOptions eo;
    eo.max_tokens = o.max_tokens;
    eo.reward = o.reward;
    const EvalResult er = evaluate(engine, chat, eval_problems, eo);
    m["eval_accuracy"] = er.accuracy;
    m["eval_format_rate"] = er.format_rate;
    m["eval_response_tokens"] = er.mean_response_tokens;
    m["eval_at"] = loop.step();
    last_eval_step = loop.step();
    sum.eval_accuracy = er.accuracy;
    return er.accuracy;
  };

  std::vector<int32_t> inputs, targets, lengths;
  std::vector<double> coef_rows;
  Stopwatch total;
  while (!loop.done()) {
    const int64_t s = loop.step();
    Stopwatch sw;
    StepReport rep;
    nlohmann::json& m = rep.metrics;
    double eval_s = 0;
    if (!eval_problems.empty() && o.eval_every > 0 && s % o.eval_every == 0) {
      Stopwatch ew;
      run_eval(m);
      eval_s = ew.elapsed();
    }

    // ---- 1. rollout --------------------------------------------------------------------------
    Stopwatch rw;
    engine.clear_prefix_cache();
    std::vector<int64_t> pj(static_cast<size_t>(B));
    std::vector<GenerationRequest> reqs;
    for (int64_t j = 0; j < B; ++j) {
      pj[size_t(j)] = problem_at(s * B + j);
      GenerationRequest r;
      r.prompt = prompts[size_t(pj[size_t(j)])].ids;
      r.n = G;
      r.params.temperature = 1.0f;
      r.params.max_tokens = budget[size_t(pj[size_t(j)])];
      r.params.seed = derive_seed(o.seed, 3, uint64_t(s * B + j));
      reqs.push_back(std::move(r));
    }
    const std::vector<GenerationResult> res = run_requests(engine, std::move(reqs));

    // ---- 2. rewards, advantages ---------------------------------------------------------------
    const int64_t n = B * G;
    std::vector<double> rewards(static_cast<size_t>(n)), acc(static_cast<size_t>(n));
    std::vector<uint8_t> truncated(static_cast<size_t>(n)), fmt(static_cast<size_t>(n));
    std::vector<Reward> rws(static_cast<size_t>(n));
    int64_t gen_tokens = 0, max_resp = 0;
    for (int64_t i = 0; i < n; ++i) {
      const int64_t p = pj[size_t(i / G)];
      RewardConfig rc = o.reward;
      rc.verify.starts_in_think = prompts[size_t(p)].opens_reasoning;
      const GenerationResult& g = res[size_t(i)];
      rws[size_t(i)] = compute_reward(problems[size_t(p)], g.text, int64_t(g.tokens.size()), rc);
      rewards[size_t(i)] = rws[size_t(i)].total;
      acc[size_t(i)] = rws[size_t(i)].accuracy;
      fmt[size_t(i)] = rws[size_t(i)].format_ok;
      truncated[size_t(i)] = g.reason == FinishReason::Length;
      gen_tokens += int64_t(g.tokens.size());
      max_resp = std::max<int64_t>(max_resp, int64_t(g.tokens.size()));
    }
    const std::vector<double> adv = group_advantages(rewards, G, o.scale_rewards);
    const std::vector<uint8_t> uniform = uniform_groups(rewards, G);
    const double rollout_s = rw.elapsed();

    // Sequences that take part in the update.
    std::vector<Seq> seqs;
    for (int64_t i = 0; i < n; ++i)
      if (!(o.drop_uniform_groups && uniform[size_t(i / G)])) seqs.push_back({i, pj[size_t(i / G)]});
    const int64_t K = int64_t(seqs.size());
    std::vector<int64_t> offsets(size_t(K) + 1, 0);
    std::vector<float> old_lp, ref_lp, new_lp;
    std::vector<double> adv_k(static_cast<size_t>(K));
    std::vector<uint8_t> trunc_k(static_cast<size_t>(K));
    for (int64_t k = 0; k < K; ++k) {
      const GenerationResult& g = res[size_t(seqs[size_t(k)].result)];
      offsets[size_t(k) + 1] = offsets[size_t(k)] + int64_t(g.tokens.size());
      old_lp.insert(old_lp.end(), g.logprobs.begin(), g.logprobs.end());
      adv_k[size_t(k)] = adv[size_t(seqs[size_t(k)].result)];
      trunc_k[size_t(k)] = truncated[size_t(seqs[size_t(k)].result)];
    }
    const int64_t T = offsets.back();

    // ---- 3. reference ----------------------------------------------------------------------------
    Stopwatch fw;
    if (ref && K > 0) {
      std::vector<ScoreRequest> sr;
      for (const Seq& q : seqs) sr.push_back({prompts[size_t(q.prompt)].ids, res[size_t(q.result)].tokens, 0});
      for (const ScoreResult& r : ref_engine->score(std::move(sr))) ref_lp.insert(ref_lp.end(), r.logprobs.begin(), r.logprobs.end());
      QS_ASSERT(int64_t(ref_lp.size()) == T);
    }
    const double ref_s = fw.elapsed();

    // ---- 4. updates ------------------------------------------------------------------------------
    Stopwatch uw;
    GrpoStats stats;
    double entropy_sum = 0, mismatch = 0, grad_norm = NAN, update_tokens = 0;
    int64_t entropy_n = 0;
    // Runs the sequences through the training step in micro-batches: with `coef` a backward pass
    // of Σ coef·log p (accumulating gradients), else forward only; log-probs into `lp` when given.
    auto pass = [&](const std::vector<float>* coef, std::vector<float>* lp, bool entropy) {
      for (int64_t k0 = 0; k0 < K; k0 += micro) {
        const int64_t rows = std::min(micro, K - k0);
        int64_t S = 1;
        for (int64_t k = k0; k < k0 + rows; ++k) {
          const Seq& q = seqs[size_t(k)];
          S = std::max<int64_t>(S, int64_t(prompts[size_t(q.prompt)].ids.size() + res[size_t(q.result)].tokens.size()) - 1);
        }
        inputs.assign(size_t(rows * S), 0);
        targets.assign(size_t(rows * S), -1);
        lengths.assign(size_t(rows), 0);
        coef_rows.assign(size_t(rows * S), 0.0);
        for (int64_t b = 0; b < rows; ++b) {
          const Seq& q = seqs[size_t(k0 + b)];
          const auto& P = prompts[size_t(q.prompt)].ids;
          const auto& C = res[size_t(q.result)].tokens;
          const int64_t np = int64_t(P.size()), nc = int64_t(C.size()), L = np + nc - 1;
          lengths[size_t(b)] = int32_t(L);
          update_tokens += double(L);
          for (int64_t t = 0; t < L; ++t) inputs[size_t(b * S + t)] = t < np ? P[size_t(t)] : C[size_t(t - np)];
          for (int64_t j = 0; j < nc; ++j) {
            const size_t at = size_t(b * S + np - 1 + j);
            targets[at] = C[size_t(j)];
            if (coef) coef_rows[at] = double((*coef)[size_t(offsets[size_t(k0 + b)] + j)]);
          }
        }
        TokenBatch tb{rows, S, inputs, targets, {}, lengths};
        StepRequest req;
        req.loss = Loss::LogProbCoef;
        req.coef = coef_rows;
        req.backward = coef != nullptr;
        req.logprobs = lp != nullptr;
        req.entropy = entropy;
        const StepResult r = step.run(tb, req);
        accumulate_expert_load(rep.load, r.expert_load);
        for (int64_t b = 0; b < rows; ++b) {
          const Seq& q = seqs[size_t(k0 + b)];
          const int64_t np = int64_t(prompts[size_t(q.prompt)].ids.size());
          const int64_t nc = int64_t(res[size_t(q.result)].tokens.size());
          for (int64_t j = 0; j < nc; ++j) {
            const size_t at = size_t(b * S + np - 1 + j);
            if (lp) (*lp)[size_t(offsets[size_t(k0 + b)] + j)] = float(r.logprobs[at]);
            if (entropy) {
              entropy_sum += r.entropy[at];
              ++entropy_n;
            }
          }
        }
      }
    };
    if (K > 0) {
      GrpoLossConfig lc = o.loss;
      lc.max_completion_length = o.max_tokens;
      std::vector<float> coef(static_cast<size_t>(T)), trainer_lp(static_cast<size_t>(T));
      for (int64_t it = 0; it < o.mu; ++it) {
        if (it > 0) {
          new_lp.assign(size_t(T), 0.f);
          pass(nullptr, &new_lp, false);
        }
        GrpoBatch<float> gb;
        gb.offsets = offsets;
        gb.new_logp = it == 0 ? std::span<const float>(old_lp) : std::span<const float>(new_lp);
        if (it > 0) gb.old_logp = old_lp;  // the first update: exactly the sampling policy (ratio 1)
        if (ref) gb.ref_logp = ref_lp;
        gb.advantages = adv_k;
        gb.truncated = trunc_k;
        const GrpoStats st = grpo_loss(gb, lc, std::span<float>(coef));
        if (it == 0) stats = st;
        else {  // clipping happens from the second update on: report its statistics
          stats.clip_low_fraction = std::max(stats.clip_low_fraction, st.clip_low_fraction);
          stats.clip_high_fraction = std::max(stats.clip_high_fraction, st.clip_high_fraction);
          stats.clip_fraction = std::max(stats.clip_fraction, st.clip_fraction);
          stats.ratio_min = std::min(stats.ratio_min, st.ratio_min);
          stats.ratio_max = std::max(stats.ratio_max, st.ratio_max);
        }
        model.zero_grad();
        pass(&coef, it == 0 ? &trainer_lp : nullptr, it == 0);
        if (it == 0)
          for (int64_t t = 0; t < T; ++t) mismatch = std::max(mismatch, double(std::fabs(trainer_lp[size_t(t)] - old_lp[size_t(t)])));
        grad_norm = loop.update(rep.load);
      }
    }
    const double update_s = uw.elapsed();

    // ---- 5. reference resync ---------------------------------------------------------------------
    if (ref && o.ref_resync > 0 && (s + 1) % o.ref_resync == 0) {
      ref->params() = model.params();
      ref_engine->clear_prefix_cache();
      export_hf_model(reference_dir(o.out_dir, s + 1), *ref, model_dir);
      if (s + 1 - 3 * o.ref_resync > 0) std::filesystem::remove_all(reference_dir(o.out_dir, s + 1 - 3 * o.ref_resync));
    }

    // ---- log ---------------------------------------------------------------------------------------
    auto mean = [](const std::vector<double>& v) { return std::accumulate(v.begin(), v.end(), 0.0) / double(v.size()); };
    const double rmean = mean(rewards);
    double rvar = 0;
    for (double r : rewards) rvar += (r - rmean) * (r - rmean);
    int64_t n_uniform = 0, n_trunc = 0, n_fmt = 0;
    for (uint8_t u : uniform) n_uniform += u;
    for (uint8_t t : truncated) n_trunc += t;
    for (uint8_t f : fmt) n_fmt += f;
    m["reward_mean"] = rmean;
    m["reward_std"] = std::sqrt(rvar / double(std::max<int64_t>(1, n - 1)));
    m["accuracy"] = mean(acc);
    m["format_rate"] = double(n_fmt) / double(n);
    m["response_length_mean"] = double(gen_tokens) / double(n);
    m["response_length_max"] = max_resp;
    m["truncated_fraction"] = double(n_trunc) / double(n);
    m["uniform_group_fraction"] = double(n_uniform) / double(B);
    m["sequences_trained"] = K;
    m["loss"] = stats.loss;
    m["policy_loss"] = stats.policy_loss;
    m["kl"] = stats.kl_mean;
    m["clip_fraction"] = stats.clip_fraction;
    m["clip_low_fraction"] = stats.clip_low_fraction;
    m["clip_high_fraction"] = stats.clip_high_fraction;
    m["ratio_min"] = stats.ratio_min;
    m["ratio_max"] = stats.ratio_max;
    m["entropy"] = entropy_n ? entropy_sum / double(entropy_n) : 0.0;
    m["logprob_mismatch"] = mismatch;
    m["rollout_s"] = rollout_s;
    m["reference_s"] = ref_s;
    m["update_s"] = update_s;
    m["eval_s"] = eval_s;
    m["rollout_tokens_per_s"] = double(gen_tokens) / rollout_s;
    m["update_tokens_per_s"] = update_s > 0 ? update_tokens / update_s : 0.0;
    m["rollout_share"] = rollout_s / (rollout_s + ref_s + update_s);
    if (!std::isfinite(grad_norm)) m["skipped_update"] = true;
    sess_rollout_s += rollout_s;
    sess_update_s += update_s + ref_s;
    sess_gen_tokens += double(gen_tokens);
    sess_update_tokens += update_tokens;
    sum.reward_mean = rmean;
    sum.accuracy = mean(acc);
    rep.tokens = T;
    char line[200];
    std::snprintf(line, sizeof line, "reward %.3f | acc %.3f | len %.0f | kl %.4f | %.0f+%.0f tok/s (rollout %.0f%%)",
                  rmean, sum.accuracy, double(gen_tokens) / double(n), stats.kl_mean, sess_gen_tokens / sess_rollout_s,
                  sess_update_s > 0 ? sess_update_tokens / sess_update_s : 0.0,
                  100 * sess_rollout_s / (sess_rollout_s + sess_update_s));
    rep.progress = line;
    if (o.log_samples_every > 0 && o.log_samples > 0 && (s % o.log_samples_every == 0)) {
      for (int64_t j = 0; j < std::min(B, o.log_samples); ++j) {
        nlohmann::json e = {{"step", s + 1}, {"prompt", problems[size_t(pj[size_t(j)])].prompt},
                            {"answer", problems[size_t(pj[size_t(j)])].answer}};
        nlohmann::json cs = nlohmann::json::array();
        for (int64_t i = j * G; i < (j + 1) * G; ++i)
          cs.push_back({{"text", res[size_t(i)].text}, {"tokens", res[size_t(i)].tokens.size()},
                        {"reward", rewards[size_t(i)]}, {"correct", acc[size_t(i)] > 0}, {"advantage", adv[size_t(i)]},
                        {"answer", rws[size_t(i)].answer}});
        e["completions"] = cs;
        samples.append(e);
      }
    }
    loop.end_step(std::move(rep), sw.elapsed(), grad_norm);
  }
  loop.progress().finish();
  if (!eval_problems.empty() && last_eval_step != loop.step()) {
    nlohmann::json m;
    run_eval(m);
  }
  sum.steps = loop.step();
  sum.train_tokens = loop.tokens_seen();
  sum.rollout_tokens_per_s = sess_rollout_s > 0 ? sess_gen_tokens / sess_rollout_s : 0;
  sum.update_tokens_per_s = sess_update_s > 0 ? sess_update_tokens / sess_update_s : 0;
  sum.rollout_share = sess_rollout_s + sess_update_s > 0 ? sess_rollout_s / (sess_rollout_s + sess_update_s) : 0;
  sum.seconds = total.elapsed();
  sum.stopped_early = loop.stopped_early();
  sum.checkpoint = loop.last_checkpoint();
  return sum;
}

}  // namespace qs::rl
