#include "qiusuo/train/trainer.h"

#include <unistd.h>

#include <csignal>
#include <cmath>
#include <cstdio>
#include <fstream>

#include "qiusuo/core/error.h"
#include "qiusuo/core/parallel.h"
#include "qiusuo/core/profile.h"
#include "qiusuo/core/timer.h"
#include "qiusuo/io/file.h"
#include "qiusuo/kernels/probe.h"
#include "qiusuo/plot/training.h"
#include "qiusuo/train/checkpoint.h"
#include "qiusuo/train/data.h"
#include "qiusuo/train/train_step.h"
#include "qiusuo/model/flops.h"

namespace qs {
namespace {

volatile std::sig_atomic_t g_interrupted = 0;
void on_sigint(int) { g_interrupted = 1; }

std::string fmt_duration(double s) {
  char buf[32];
  if (s >= 3600) std::snprintf(buf, sizeof buf, "%dh%02dm", int(s / 3600), int(std::fmod(s, 3600) / 60));
  else if (s >= 60) std::snprintf(buf, sizeof buf, "%dm%02ds", int(s / 60), int(std::fmod(s, 60)));
  else std::snprintf(buf, sizeof buf, "%.0fs", s);
  return buf;
}

// Keeps the metrics lines of steps <= `step` (after a resume the rest is rewritten).
void truncate_metrics(const std::string& path, int64_t step) {
  if (!file_exists(path)) return;
  std::ifstream in(path);
  std::string line, kept;
  while (std::getline(in, line)) {
    try {
      auto j = nlohmann::json::parse(line);
      if (j.value("step", int64_t(0)) <= step) kept += line + "\n";
    } catch (...) {
      break;  // a torn last line from a crash
    }
  }
  write_text_file_atomic(path, kept);
}

nlohmann::json settings_of(const TrainConfig& tc) {
  return {{"batch", tc.batch}, {"seq_len", tc.seq_len}, {"accum", tc.accum},
          {"precision", train_precision_name(tc.precision)}, {"seed", tc.seed},
          {"lr", tc.lr.peak}, {"warmup", tc.lr.warmup}, {"schedule", int(tc.lr.kind)},
          {"steps", tc.steps}, {"mtp_lambda", tc.mtp_lambda}, {"aux_alpha", tc.aux_alpha},
          {"bias_speed", tc.bias_speed}, {"clip", tc.clip}, {"weight_decay", tc.adam.weight_decay},
          {"data", tc.data_dir}, {"threads", num_threads()}};
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
  TrainModel<float> m(cfg);
  load_hf_weights(TensorStore::open_dir(model_dir), m);
  TrainStep<float> step(m, {batch, seq_len}, lo);
  DataLoader val(data_dir, "val", batch, seq_len, 0);
  QS_CHECK(val.info().vocab_size <= uint32_t(cfg.vocab_size), "dataset vocabulary (", val.info().vocab_size,
           ") is larger than the model's (", cfg.vocab_size, ")");
  batches = std::max<int64_t>(1, std::min<int64_t>(batches, int64_t(val.windows_per_epoch()) / batch));
  const auto data = val.val_batches(batches);
  double sum = 0;
  int64_t n = 0;
  for (int64_t b = 0; b < batches; ++b) {
    const StepResult l = step.run_windows(data.data() + b * batch * (seq_len + 1), batch, seq_len, false);
    sum += l.mean_ce() * double(l.tokens);
    n += l.tokens;
  }
  if (tokens) *tokens = n;
  return sum / double(n);
}

TrainSummary run_training(const ModelConfig& cfg, TrainConfig tc) {
  QS_CHECK(tc.steps > 0 && tc.batch > 0 && tc.seq_len > 1 && tc.accum > 0, "steps, batch, accum must be positive and seq_len >= 2");
  QS_CHECK(!tc.out_dir.empty(), "no output directory");
  make_dirs(tc.out_dir);
  tc.lr.total = tc.steps;
  // Data.
  DataLoader train(tc.data_dir, "train", tc.batch, tc.seq_len, tc.seed);
  DataLoader val(tc.data_dir, "val", tc.batch, tc.seq_len, 0);
  QS_CHECK(train.info().vocab_size <= uint32_t(cfg.vocab_size), "dataset vocabulary (", train.info().vocab_size,
           ") is larger than the model's vocab_size (", cfg.vocab_size, ")");
  if (tc.tokenizer_dir.empty() && file_exists(path_join(tc.data_dir, "meta.json")))
    tc.tokenizer_dir = read_dataset_meta(tc.data_dir).tokenizer;
  // Model and optimizer.
  TrainLossOptions lo;
  lo.precision = tc.precision;
  lo.mtp_lambda = tc.mtp_lambda;
  lo.aux_alpha = tc.aux_alpha;
  TrainModel<float> model(cfg);
  TrainStep<float> step(model, {tc.batch, tc.seq_len}, lo);
  AdamW opt(model.layout(), model.params().size(), tc.adam);
  TrainerState st;
  const std::string metrics_path = path_join(tc.out_dir, "metrics.jsonl");
  std::string from = tc.resume_from;
  if (tc.resume && from.empty()) {
    from = latest_checkpoint(tc.out_dir);
    if (from.empty()) fail(ErrorKind::NotFound, "--resume: no checkpoint in ", tc.out_dir, "/checkpoints");
  }
  if (!from.empty()) {
    try {
      st = load_checkpoint(from, model, opt);
    } catch (const Error& e) {
      std::string hint;
      for (const auto& c : list_checkpoints(tc.out_dir))
        if (c != from) hint = c;
      fail(e.kind(), "cannot resume from ", from, ": ", e.what(),
           hint.empty() ? std::string() : "\n  an earlier checkpoint is intact: resume from it with --resume-from " + hint);
    }
    const auto& s = st.settings;
    if (s.contains("batch") && (s["batch"] != tc.batch || s["seq_len"] != tc.seq_len || s["accum"] != tc.accum))
      fail("cannot resume: the checkpoint was trained with batch ", s["batch"].dump(), ", seq_len ", s["seq_len"].dump(),
           ", accum ", s["accum"].dump(), "; pass the same values");
    train.set_state(st.data);
    truncate_metrics(metrics_path, st.step);
    if (!tc.quiet) std::fprintf(stderr, "resumed from %s at step %lld\n", from.c_str(), (long long)st.step);
  } else {
    if (!tc.init_from.empty()) load_hf_weights(TensorStore::open_dir(tc.init_from), model);
    else model.init_random(tc.seed);
    write_text_file_atomic(metrics_path, "");
    st.data = train.state();
  }
  st.settings = settings_of(tc);
  // Peaks for MFU, measured now on this machine.
  const double peak_bf16 = measure_gemm_peak_gflops(Compute::BF16, num_threads(), 0.5);
  const double peak_f32 = measure_gemm_peak_gflops(Compute::F32, num_threads(), 0.5);
  TrainSummary sum;
  sum.first_step = st.step;
  sum.gemm_peak_bf16 = peak_bf16;
  sum.gemm_peak_f32 = peak_f32;
  const double flops_tok = train_flops_per_token(cfg, tc.seq_len, tc.mtp_lambda > 0);
  const int64_t tokens_per_step = tc.batch * tc.seq_len * tc.accum;
  const int64_t L = cfg.num_hidden_layers + cfg.num_nextn_predict_layers;
  std::vector<int32_t> tokens(size_t(tc.batch * (tc.seq_len + 1)));
  const auto val_data = val.val_batches(std::max<int64_t>(1, std::min<int64_t>(tc.eval_batches, int64_t(val.windows_per_epoch()) / tc.batch)));
  const int64_t val_n = int64_t(val_data.size()) / (tc.batch * (tc.seq_len + 1));
  auto eval = [&]() {
    double s = 0;
    int64_t n = 0;
    for (int64_t b = 0; b < val_n; ++b) {
      const StepResult l = step.run_windows(val_data.data() + b * tc.batch * (tc.seq_len + 1), tc.batch, tc.seq_len, false);
      s += l.mean_ce() * double(l.tokens);
      n += l.tokens;
    }
    return s / double(n);
  };
  g_interrupted = 0;
  auto prev = std::signal(SIGINT, on_sigint);
  const bool tty = isatty(2);
  Stopwatch wall;
  double train_time = 0, last_val = NAN;
  bool planned = false;
  double window_tokens = 0, window_time = 0;
  std::ofstream metrics(metrics_path, std::ios::app);
  auto save = [&]() {
    // The metrics up to this step reach the disk before the checkpoint that covers them, so a
    // resume from it (which keeps the lines of steps <= its step) never loses lines.
    metrics.flush();
    sync_file(metrics_path);
    st.data = train.state();
    st.elapsed_s += train_time;
    train_time = 0;
    sum.checkpoint = save_checkpoint(tc.out_dir, model, opt, st, tc.tokenizer_dir, tc.keep_last);
    export_hf_model(tc.out_dir, model, tc.tokenizer_dir);
    write_training_plots(metrics_path, path_join(tc.out_dir, "plots"));
  };
  while (st.step < tc.steps) {
    Stopwatch sw;
    model.zero_grad();
    StepResult agg;
    agg.expert_load.assign(size_t(L), {});
    for (int64_t a = 0; a < tc.accum; ++a) {
      train.next(tokens.data());
      const StepResult l = step.run_windows(tokens.data(), tc.batch, tc.seq_len, true, 1.0 / double(tc.accum));
      agg.objective += l.objective / double(tc.accum);
      agg.main += l.main / double(tc.accum);
      agg.mtp += l.mtp / double(tc.accum);
      agg.aux += l.aux / double(tc.accum);
      for (int64_t i = 0; i < L; ++i) {
        if (l.expert_load[i].empty()) continue;
        if (agg.expert_load[i].empty()) agg.expert_load[i].assign(l.expert_load[i].size(), 0);
        for (size_t e = 0; e < l.expert_load[i].size(); ++e) agg.expert_load[i][e] += l.expert_load[i][e];
      }
    }
    if (!std::isfinite(agg.objective))
      fail(ErrorKind::Internal, "loss is not finite at step ", st.step, " (", agg.objective,
           "); lower --lr or use --precision fp32");
    double gnorm = 0;
    const double lr = tc.lr.at(st.step);
    {
      QS_PROFILE("trainer.optimizer");
      gnorm = clip_grad_norm(model.layout(), model.grads().data(), tc.clip);
      opt.step(model.params().data(), model.grads().data(), lr);
    }
    // Auxiliary-loss-free balancing: bias_i += γ·sign(mean load − load_i), per MoE layer.
    nlohmann::json load_json = nlohmann::json::array();
    double lmax = 0, lmin = 1e30;
    for (int64_t i = 0; i < L; ++i) {
      const auto& ld = agg.expert_load[i];
      if (ld.empty()) { load_json.push_back(nullptr); continue; }
      const int64_t E = int64_t(ld.size());
      double total = 0;
      for (auto x : ld) total += double(x);
      const double mean = total / double(E);
      nlohmann::json fr = nlohmann::json::array();
      for (auto x : ld) {
        fr.push_back(double(x) / total);
        lmax = std::max(lmax, double(x) / mean);
        lmin = std::min(lmin, double(x) / mean);
      }
      load_json.push_back(fr);
      if (tc.bias_speed > 0 && cfg.topk_method == TopkMethod::NoauxTc) {
        float* bias = model.block(i).ffn.bias;
        for (int64_t e = 0; e < E; ++e) {
          const double diff = mean - double(ld[e]);
          bias[e] += float(tc.bias_speed * (diff > 0 ? 1.0 : diff < 0 ? -1.0 : 0.0));
        }
      }
    }
    ++st.step;
    st.tokens_seen += tokens_per_step;
    const double dt = sw.elapsed();
    train_time += dt;
    window_tokens += double(tokens_per_step);
    window_time += dt;
    const double tps = double(tokens_per_step) / dt;
    const bool do_eval = (tc.eval_every > 0 && st.step % tc.eval_every == 0) || st.step == tc.steps;
    if (do_eval) {
      QS_PROFILE("trainer.eval");
      last_val = eval();
    }
    nlohmann::json m = {{"step", st.step}, {"loss", agg.main}, {"objective", agg.objective}, {"mtp_loss", agg.mtp},
                        {"aux_loss", agg.aux}, {"lr", lr}, {"grad_norm", gnorm}, {"tokens_per_s", tps},
                        {"tokens", st.tokens_seen}, {"mfu_bf16_peak", tps * flops_tok / (peak_bf16 * 1e9)},
                        {"mfu_f32_peak", tps * flops_tok / (peak_f32 * 1e9)}, {"expert_load", load_json},
                        {"expert_load_max", lmax}, {"expert_load_min", lmin == 1e30 ? 0.0 : lmin},
                        {"time_s", st.elapsed_s + train_time}};
    if (do_eval) m["val_loss"] = last_val;
    metrics << m.dump() << "\n";
    sum.final_loss = agg.main;
    if (tc.progress && !tc.quiet) {
      const double avg_tps = window_tokens / window_time;
      const double eta = double(tc.steps - st.step) * (window_time / double(std::max<int64_t>(1, st.step - sum.first_step)));
      char line[512];
      std::snprintf(line, sizeof line,
                    "step %lld/%lld | loss %.4f | val %s | %.0f tok/s | MFU %.1f%% of %s peak | load %.2fx/%.2fx | lr %.2e | ETA %s",
                    (long long)st.step, (long long)tc.steps, agg.main,
                    std::isnan(last_val) ? "-" : (std::to_string(last_val).substr(0, 6)).c_str(), avg_tps,
                    100 * avg_tps * flops_tok / ((tc.precision == TrainPrecision::F32 ? peak_f32 : peak_bf16) * 1e9),
                    tc.precision == TrainPrecision::F32 ? "F32" : "BF16", lmax, lmin == 1e30 ? 0.0 : lmin, lr,
                    fmt_duration(eta).c_str());
      if (tty) std::fprintf(stderr, "\r\033[K%s", line);
      else if (st.step % std::max<int64_t>(1, tc.steps / 20) == 0 || st.step == tc.steps || do_eval)
        std::fprintf(stderr, "%s\n", line);
    }
    // Time budget: plan the step count from the speed of the first steps (once).
    if (tc.time_limit_s > 0 && !planned && st.step - sum.first_step == 5) {
      planned = true;
      const double per_step = window_time / double(st.step - sum.first_step);
      const double left = tc.time_limit_s - (st.elapsed_s + train_time) - 2.0 * per_step;
      const int64_t fit = st.step + std::max<int64_t>(0, int64_t(left / per_step));
      if (fit < tc.steps) {
        tc.steps = fit;
        tc.lr.total = fit;
        st.settings["steps"] = fit;
        if (!tc.quiet)
          std::fprintf(stderr, "%s%.2f s per step: planning %lld steps to fit the %.1f-minute budget\n",
                       tty && tc.progress ? "\n" : "", per_step, (long long)fit, tc.time_limit_s / 60);
      }
    }
    const bool out_of_time = tc.time_limit_s > 0 && st.elapsed_s + train_time >= tc.time_limit_s * 1.05;
    if (st.step % tc.save_every == 0 || st.step == tc.steps || g_interrupted || out_of_time) {
      if (out_of_time && !do_eval) {
        last_val = eval();
        m["val_loss"] = last_val;
      }
      save();
      if (g_interrupted || out_of_time) {
        sum.stopped_early = true;
        break;
      }
    }
  }
  std::signal(SIGINT, prev);
  if (tc.progress && !tc.quiet && tty) std::fprintf(stderr, "\n");
  sum.steps_done = st.step;
  sum.final_val_loss = last_val;
  sum.tokens_per_s = window_time > 0 ? window_tokens / window_time : 0;
  sum.mfu_amx = sum.tokens_per_s * flops_tok / (peak_bf16 * 1e9);
  sum.mfu_fma = sum.tokens_per_s * flops_tok / (peak_f32 * 1e9);
  sum.arena_planned_bytes = step.arena_planned_bytes();
  sum.arena_peak_bytes = step.arena_peak_bytes();
  if (g_interrupted && !tc.quiet) std::fprintf(stderr, "interrupted: checkpoint saved at step %lld\n", (long long)st.step);
  return sum;
}

}  // namespace qs
