#include "qiusuo/train/trainer.h"

#include <cmath>
#include <cstdio>

#include "qiusuo/core/error.h"
#include "qiusuo/core/parallel.h"
#include "qiusuo/core/profile.h"
#include "qiusuo/core/timer.h"
#include "qiusuo/io/file.h"
#include "qiusuo/model/flops.h"
#include "qiusuo/train/balance.h"
#include "qiusuo/train/checkpoint.h"
#include "qiusuo/train/data_parallel.h"
#include "qiusuo/train/data.h"
#include "qiusuo/train/metrics.h"
#include "qiusuo/train/mfu.h"
#include "qiusuo/train/progress.h"
#include "qiusuo/train/run_directory.h"
#include "qiusuo/train/time_budget.h"
#include "qiusuo/train/train_step.h"

namespace qs {
namespace {

nlohmann::json settings_of(const TrainConfig& tc) {
  return {{"batch", tc.batch}, {"seq_len", tc.seq_len}, {"accum", tc.accum},
          {"precision", train_precision_name(tc.precision)}, {"seed", tc.seed},
          {"lr", tc.lr.peak}, {"warmup", tc.lr.warmup}, {"schedule", int(tc.lr.kind)},
          {"steps", tc.steps}, {"mtp_lambda", tc.mtp_lambda}, {"aux_alpha", tc.aux_alpha},
          {"bias_speed", tc.bias_speed}, {"clip", tc.clip}, {"weight_decay", tc.adam.weight_decay},
          {"data", tc.data_dir}, {"threads", num_threads()}};
}

// Mean next-token cross-entropy over validation windows [n][B][S+1] (with data parallelism
// each rank computes its rows of every batch).
double validation_loss(TrainStep<float>& step, const std::vector<int32_t>& windows, int64_t B, int64_t S,
                       int64_t* tokens = nullptr, DataParallel* dp = nullptr) {
  const int64_t n = int64_t(windows.size()) / (B * (S + 1));
  const DataParallel::Share sh = dp ? dp->share(B) : DataParallel::Share{0, B};
  double sum[2] = {0, 0};  // Σ CE, tokens
  for (int64_t b = 0; b < n; ++b) {
    const StepResult l = step.run_windows(windows.data() + (b * B + sh.first) * (S + 1), sh.count, S, false);
    sum[0] += l.mean_ce() * double(l.tokens);
    sum[1] += double(l.tokens);
  }
  if (dp) dp->sum(sum);
  if (tokens) *tokens = int64_t(sum[1]);
  return sum[0] / sum[1];
}

// What one optimizer step did.
struct OptimizerStep {
  StepResult losses;  // averaged over the micro-batches
  double grad_norm = 0, lr = 0;
  ExpertLoadSummary load;
};

// accum micro-batches of pretraining windows → gradients of the mean objective → clip → AdamW →
// bias update. With data parallelism each rank computes its rows of every micro-batch (scaled by
// 1/N) and the gradients, losses and expert loads are summed over the ranks.
OptimizerStep optimizer_step(const TrainConfig& tc, TrainStep<float>& step, DataParallel& dp, DataLoader& data,
                             std::vector<int32_t>& windows, int64_t step_index) {
  TrainModel<float>& model = step.model();
  OptimizerStep out;
  model.zero_grad();
  StepResult& agg = out.losses;
  const double k = 1.0 / double(tc.accum) * dp.mean_scale();
  const DataParallel::Share sh = dp.share(tc.batch);
  ExpertLoad load;
  for (int64_t a = 0; a < tc.accum; ++a) {
    data.next(windows.data());
    const StepResult l = step.run_windows(windows.data() + sh.first * (tc.seq_len + 1), sh.count, tc.seq_len, true,
                                          k, a + 1 == tc.accum ? dp.grads_ready_hook() : nullptr);
    agg.objective += l.objective * k;
    agg.main += l.main * k;
    agg.mtp += l.mtp * k;
    agg.aux += l.aux * k;
    accumulate_expert_load(load, l.expert_load);
  }
  dp.reduce_gradients();
  double losses[4] = {agg.objective, agg.main, agg.mtp, agg.aux};
  dp.sum(losses);
  agg.objective = losses[0], agg.main = losses[1], agg.mtp = losses[2], agg.aux = losses[3];
  dp.sum(load);
  if (!std::isfinite(agg.objective))
    fail(ErrorKind::Internal, "loss is not finite at step ", step_index, " (", agg.objective,
         "); lower --lr or use --precision fp32");
  out.lr = tc.lr.at(step_index);
  out.grad_norm = dp.clip_and_step(tc.clip, out.lr);
  if (model.config().topk_method == TopkMethod::NoauxTc) update_correction_bias(model, load, tc.bias_speed);
  out.load = summarize_expert_load(load);
  return out;
}

}  // namespace

void apply_train_section(const nlohmann::json& s, TrainConfig& tc) {
  if (!s.is_object()) return;
  auto num = [&](const char* k, auto& dst) {
    if (s.contains(k) && s[k].is_number()) dst = s[k].get<std::decay_t<decltype(dst)>>();
  };
  num("seq_len", tc.seq_len);
  num("batch_size", tc.batch);
  num("lr", tc.lr.peak);
  num("warmup", tc.lr.warmup);
  num("mtp_lambda", tc.mtp_lambda);
  num("bias_update_speed", tc.bias_speed);
  num("aux_alpha", tc.aux_alpha);
  num("weight_decay", tc.adam.weight_decay);
  num("grad_accum", tc.accum);
  num("clip", tc.clip);
  num("steps", tc.steps);
}

nlohmann::json train_preset(const std::string& name) {
  using json = nlohmann::json;
  json base = json::parse(R"({
    "architectures": ["DeepseekV3ForCausalLM"], "model_type": "deepseek_v3",
    "vocab_size": 8192, "first_k_dense_replace": 1, "n_shared_experts": 1,
    "topk_method": "noaux_tc", "scoring_func": "sigmoid", "norm_topk_prob": true,
    "routed_scaling_factor": 2.5, "rms_norm_eps": 1e-6, "rope_theta": 10000, "rope_scaling": null,
    "tie_word_embeddings": false, "num_nextn_predict_layers": 1, "moe_layer_freq": 1,
    "bos_token_id": 0, "eos_token_id": 1, "torch_dtype": "bfloat16"})");
  if (name == "tiny") {
    base.update(json::parse(R"({
      "hidden_size": 128, "num_hidden_layers": 4, "intermediate_size": 384, "moe_intermediate_size": 96,
      "n_routed_experts": 8, "num_experts_per_tok": 2, "n_group": 2, "topk_group": 1,
      "num_attention_heads": 4, "num_key_value_heads": 4, "q_lora_rank": 64, "kv_lora_rank": 48,
      "qk_nope_head_dim": 24, "qk_rope_head_dim": 8, "v_head_dim": 24, "max_position_embeddings": 256,
      "train": {"seq_len": 256, "batch_size": 8, "lr": 1e-3, "warmup": 50, "mtp_lambda": 0.3,
                "bias_update_speed": 0.001, "aux_alpha": 0.0001}})"));
  } else if (name == "small") {  // ../shared/bench/train-small.json
    base.update(json::parse(R"({
      "hidden_size": 384, "num_hidden_layers": 6, "intermediate_size": 1024, "moe_intermediate_size": 256,
      "n_routed_experts": 16, "num_experts_per_tok": 4, "n_group": 4, "topk_group": 2,
      "num_attention_heads": 6, "num_key_value_heads": 6, "q_lora_rank": 192, "kv_lora_rank": 128,
      "qk_nope_head_dim": 32, "qk_rope_head_dim": 16, "v_head_dim": 32, "max_position_embeddings": 512,
      "train": {"seq_len": 512, "batch_size": 16, "lr": 3e-4, "warmup": 100, "mtp_lambda": 0.3,
                "bias_update_speed": 0.001, "aux_alpha": 0.0001}})"));
  } else if (name == "medium") {
    base.update(json::parse(R"({
      "hidden_size": 768, "num_hidden_layers": 12, "intermediate_size": 2048, "moe_intermediate_size": 384,
      "n_routed_experts": 32, "num_experts_per_tok": 6, "n_group": 4, "topk_group": 2,
      "num_attention_heads": 12, "num_key_value_heads": 12, "q_lora_rank": 384, "kv_lora_rank": 256,
      "qk_nope_head_dim": 48, "qk_rope_head_dim": 16, "v_head_dim": 48, "max_position_embeddings": 1024,
      "vocab_size": 32768,
      "train": {"seq_len": 1024, "batch_size": 8, "lr": 3e-4, "warmup": 200, "mtp_lambda": 0.3,
                "bias_update_speed": 0.001, "aux_alpha": 0.0001}})"));
  } else {
    fail(ErrorKind::NotFound, "unknown training preset '", name, "' (known: tiny, small, medium)");
  }
  return base;
}

double evaluate_loss(const std::string& model_dir, const std::string& data_dir, int64_t batch, int64_t seq_len,
                     int64_t batches, TrainPrecision precision, int64_t* tokens) {
  const ModelConfig cfg = load_model_config(model_dir);
  TrainLossOptions lo;
  lo.precision = precision;
  lo.mtp_lambda = 0;  // the main head's cross-entropy only
  TrainModel<float> m(cfg);
  load_hf_weights(TensorStore::open_dir(model_dir), m);
  TrainStep<float> step(m, {batch, seq_len}, lo);
  DataLoader val(data_dir, "val", batch, seq_len, 0);
  QS_CHECK(val.info().vocab_size <= uint32_t(cfg.vocab_size), "dataset vocabulary (", val.info().vocab_size,
           ") is larger than the model's (", cfg.vocab_size, ")");
  batches = std::max<int64_t>(1, std::min<int64_t>(batches, int64_t(val.windows_per_epoch()) / batch));
  return validation_loss(step, val.val_batches(batches), batch, seq_len, tokens);
}

TrainSummary run_training(const ModelConfig& cfg, TrainConfig tc) {
  QS_CHECK(tc.steps > 0 && tc.batch > 0 && tc.seq_len > 1 && tc.accum > 0,
           "steps, batch, accum must be positive and seq_len >= 2");
  QS_CHECK(!tc.out_dir.empty(), "no output directory");
  tc.lr.total = tc.steps;
  // Data.
  DataLoader train(tc.data_dir, "train", tc.batch, tc.seq_len, tc.seed);
  DataLoader val(tc.data_dir, "val", tc.batch, tc.seq_len, 0);
  QS_CHECK(train.info().vocab_size <= uint32_t(cfg.vocab_size), "dataset vocabulary (", train.info().vocab_size,
           ") is larger than the model's vocab_size (", cfg.vocab_size, ")");
  if (tc.tokenizer_dir.empty() && file_exists(path_join(tc.data_dir, "meta.json")))
    tc.tokenizer_dir = read_dataset_meta(tc.data_dir).tokenizer;
  const int64_t val_n = std::max<int64_t>(1, std::min<int64_t>(tc.eval_batches, int64_t(val.windows_per_epoch()) / tc.batch));
  const std::vector<int32_t> val_windows = val.val_batches(val_n);
  // Model, optimizer, data parallelism (one process: a world of one), step, run directory (rank 0).
  TrainModel<float> model(cfg);
  AdamW opt(model.layout(), model.params().size(), tc.adam);
  DataParallel dp(world(), model, opt, {tc.shard_optimizer, tc.expert_parallel, tc.overlap_reduce});
  TrainStep<float> step(model, {dp.share(tc.batch).count, tc.seq_len}, {tc.precision, tc.mtp_lambda, tc.aux_alpha});
  std::unique_ptr<RunDirectory> run;
  if (dp.leader()) run = std::make_unique<RunDirectory>(tc.out_dir, tc.tokenizer_dir, tc.keep_last);
  TrainerState st;
  std::string from = dp.leader() ? run->resume_source(tc.resume, tc.resume_from) : "";
  dp.comm().broadcast_string(from, 0);
  if (!from.empty()) {
    if (dp.leader()) st = run->load(from, model, opt);
    dp.broadcast_checkpoint(st);
    const auto& s = st.settings;
    if (s.contains("batch") && (s["batch"] != tc.batch || s["seq_len"] != tc.seq_len || s["accum"] != tc.accum))
      fail("cannot resume: the checkpoint was trained with batch ", s["batch"].dump(), ", seq_len ", s["seq_len"].dump(),
           ", accum ", s["accum"].dump(), "; pass the same values");
    train.set_state(st.data);
    if (!tc.quiet && dp.leader()) std::fprintf(stderr, "resumed from %s at step %lld\n", from.c_str(), (long long)st.step);
  } else {
    if (!tc.init_from.empty()) {
      if (dp.leader()) load_hf_weights(TensorStore::open_dir(tc.init_from), model);
    } else {
      model.init_random(tc.seed);
    }
    dp.broadcast_parameters();
    st.data = train.state();
  }
  std::unique_ptr<MetricsLog> metrics;
  if (dp.leader()) metrics = std::make_unique<MetricsLog>(run->metrics_path(), from.empty() ? -1 : st.step);
  st.settings = settings_of(tc);
  st.settings["world_size"] = dp.size();
  st.settings["expert_parallel"] = dp.expert_parallel();
  const MfuMeter mfu(train_flops_per_token(cfg, tc.seq_len, tc.mtp_lambda > 0));
  TrainSummary sum;
  sum.first_step = st.step;
  sum.gemm_peak_bf16 = mfu.peak_bf16_gflops;
  sum.gemm_peak_f32 = mfu.peak_f32_gflops;
  sum.flops_per_token = mfu.flops_per_token;
  const int64_t tokens_per_step = tc.batch * tc.seq_len * tc.accum;
  std::vector<int32_t> windows(size_t(tc.batch * (tc.seq_len + 1)));
  InterruptFlag interrupt;
  ProgressLine progress(tc.progress && !tc.quiet && dp.leader());
  TimeBudget budget(tc.time_limit_s);
  double session_time = 0, unsaved_time = 0, last_val = NAN;
  auto save = [&] {
    st.data = train.state();
    st.elapsed_s += unsaved_time;
    unsaved_time = 0;
    dp.gather_optimizer();  // sharded: the full moments for the checkpoint
    if (dp.leader()) sum.checkpoint = run->save(model, opt, st, *metrics);
    dp.release_optimizer();
  };
  while (st.step < tc.steps) {
    Stopwatch sw;
    const OptimizerStep os = optimizer_step(tc, step, dp, train, windows, st.step);
    ++st.step;
    st.tokens_seen += tokens_per_step;
    const double dt = sw.elapsed();
    session_time += dt;
    unsaved_time += dt;
    const int64_t session_steps = st.step - sum.first_step;
    const bool do_eval = (tc.eval_every > 0 && st.step % tc.eval_every == 0) || st.step == tc.steps;
    if (do_eval) {
      QS_PROFILE("trainer.eval");
      last_val = validation_loss(step, val_windows, tc.batch, tc.seq_len, nullptr, &dp);
    }
    const double tps = double(tokens_per_step) / dt;
    nlohmann::json m = {{"step", st.step}, {"loss", os.losses.main}, {"objective", os.losses.objective},
                        {"mtp_loss", os.losses.mtp}, {"aux_loss", os.losses.aux}, {"lr", os.lr},
                        {"grad_norm", os.grad_norm}, {"tokens_per_s", tps}, {"tokens", st.tokens_seen},
                        {"mfu_bf16_peak", mfu.bf16(tps)}, {"mfu_f32_peak", mfu.f32(tps)},
                        {"expert_load", os.load.fractions}, {"expert_load_max", os.load.max_ratio},
                        {"expert_load_min", os.load.min_ratio}, {"time_s", st.elapsed_s + unsaved_time},
                        {"world_size", dp.size()}, {"expert_parallel", dp.expert_parallel()}};
    if (do_eval) m["val_loss"] = last_val;
    sum.final_loss = os.losses.main;
    if (progress.enabled()) {
      const double avg_tps = double(session_steps * tokens_per_step) / session_time;
      const double eta = double(tc.steps - st.step) * session_time / double(session_steps);
      char line[512];
      std::snprintf(line, sizeof line,
                    "step %lld/%lld | loss %.4f | val %s | %.0f tok/s | MFU %.1f%% of %s peak | load %.2fx/%.2fx | "
                    "lr %.2e | ETA %s",
                    (long long)st.step, (long long)tc.steps, os.losses.main,
                    std::isnan(last_val) ? "-" : std::to_string(last_val).substr(0, 6).c_str(), avg_tps,
                    100 * mfu.of(tc.precision, avg_tps), tc.precision == TrainPrecision::F32 ? "F32" : "BF16",
                    os.load.max_ratio, os.load.min_ratio, os.lr, format_duration(eta).c_str());
      progress.update(line, st.step % std::max<int64_t>(1, tc.steps / 20) == 0 || st.step == tc.steps || do_eval);
    }
    // Time budget: plan the step count from the speed of the first steps (once); rank 0 decides.
    const int64_t fit =
        dp.from_leader(budget.replan(st.step, session_steps, session_time, st.elapsed_s + unsaved_time, tc.steps));
    if (fit >= 0) {
      tc.steps = fit;
      tc.lr.total = fit;
      st.settings["steps"] = fit;
      if (!tc.quiet && dp.leader()) {
        char note[160];
        std::snprintf(note, sizeof note, "%.2f s per step: planning %lld steps to fit the %.1f-minute budget",
                      budget.seconds_per_step(), (long long)fit, tc.time_limit_s / 60);
        progress.note(note);
      }
    }
    const bool out_of_time = dp.from_leader(budget.out_of_time(st.elapsed_s + unsaved_time));
    const bool stop = dp.from_leader(interrupt.raised()) || out_of_time;
    if (out_of_time && !do_eval) {  // the run ends here: its last line gets a validation loss
      last_val = validation_loss(step, val_windows, tc.batch, tc.seq_len, nullptr, &dp);
      m["val_loss"] = last_val;
    }
    if (metrics) metrics->append(m);
    if (st.step % tc.save_every == 0 || st.step == tc.steps || stop) save();
    if (stop) {
      sum.stopped_early = true;
      break;
    }
  }
  progress.finish();
  sum.steps_done = st.step;
  sum.final_val_loss = last_val;
  const int64_t session_steps = st.step - sum.first_step;
  sum.tokens_per_s = session_time > 0 ? double(session_steps * tokens_per_step) / session_time : 0;
  sum.mfu_amx = mfu.bf16(sum.tokens_per_s);
  sum.mfu_fma = mfu.f32(sum.tokens_per_s);
  sum.arena_planned_bytes = step.arena_planned_bytes();
  sum.arena_peak_bytes = step.arena_peak_bytes();
  sum.world_size = dp.size();
  sum.expert_parallel = dp.expert_parallel();
  const DistTimes dt = dp.times();
  sum.step_s = session_time;
  sum.allreduce_s = dt.allreduce_s;
  sum.allreduce_busy_s = dt.allreduce_busy_s;
  sum.overlap = dp.overlapped();
  sum.alltoall_s = dt.alltoall_s;
  sum.optimizer_s = dt.optimizer_s;
  if (interrupt.raised() && !tc.quiet && dp.leader())
    std::fprintf(stderr, "interrupted: checkpoint saved at step %lld\n", (long long)st.step);
  return sum;
}

}  // namespace qs
