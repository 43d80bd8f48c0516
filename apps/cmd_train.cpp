// qiusuo train | eval
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <thread>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "qiusuo/dist/comm.h"
#include "qiusuo/core/error.h"
#include "qiusuo/io/file.h"
#include "qiusuo/train/data.h"
#include "qiusuo/train/prepare.h"
#include "qiusuo/infer/bench.h"
#include "qiusuo/train/trainer.h"

namespace qs::cli {
namespace {

struct TrainOpts {
  std::string config, data, out, precision = "fp32", schedule = "cosine", resume_from, init_from, tokenizer;
  int64_t steps = 1000, batch = 0, seq_len = 0, accum = 0, warmup = -1, eval_every = 100, eval_batches = 8,
          save_every = 250;
  double lr = 0, min_lr_ratio = 0.1, weight_decay = -1, clip = -1, mtp_lambda = -1, aux_alpha = -1, bias_speed = -1,
         time_limit_min = 0;
  int keep = 2, threads = 0;
  uint64_t seed = 0;
  bool resume = false, quiet = false, json = false;
  bool shard_optimizer = false, expert_parallel = false, no_overlap = false;
};

nlohmann::json load_config_arg(const std::string& arg) {
  if (file_exists(arg) || is_directory(arg)) {
    const std::string p = is_directory(arg) ? path_join(arg, "config.json") : arg;
    try {
      return nlohmann::json::parse(read_text_file(p));
    } catch (const nlohmann::json::exception& e) {
      fail(ErrorKind::Format, p, ": invalid JSON (", e.what(), ")");
    }
  }
  return train_preset(arg);
}

// --data: a dataset directory from `qiusuo prepare`, or text files / folders, which are then
// tokenized into OUT/data first (a tokenizer trained on them, then prepare).
std::string dataset_for(const TrainOpts& o, int64_t vocab_size, int64_t seq_len, uint64_t seed) {
  if (is_prepared_dataset(o.data)) return o.data;
  if (!file_exists(o.data) && !is_directory(o.data))
    fail(ErrorKind::NotFound, "--data ", o.data, " does not exist (give a dataset directory from `qiusuo prepare`, ",
         "or text files / folders to train on)");
  TextDatasetOptions t;
  t.inputs = {o.data};
  t.out_dir = path_join(o.out, "data");
  t.vocab_size = int32_t(std::min<int64_t>(vocab_size, 1 << 20));
  t.min_val_tokens = uint64_t(seq_len + 1);
  t.seed = seed;
  t.verbose = !o.quiet;
  if (!o.quiet)
    std::fprintf(stderr,
                 "--data %s is not a prepared dataset (no meta.json / train.bin): treating it as text, training a "
                 "%d-id tokenizer on it and preparing it into %s\n",
                 o.data.c_str(), t.vocab_size, t.out_dir.c_str());
  const TextDataset d = prepare_text_dataset(t);
  if (!o.quiet && d.reused) std::fprintf(stderr, "%s already holds that dataset: reusing it\n", t.out_dir.c_str());
  return d.dir;
}

void run_train(TrainOpts& o) {
  Comm& w = world();
  if (o.threads == 0 && w.size() > 1) {
    // Under mpirun the ranks on one host share its cores (Open MPI names how many ranks it put here).
    const char* local = std::getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
    const int n = local ? std::atoi(local) : 1;
    if (n > 1) o.threads = std::max(1, int(std::thread::hardware_concurrency()) / n);
  }
  apply_threads(o.threads);
  const bool leader = w.rank() == 0;
  if (!leader) o.quiet = true;  // rank 0 speaks for the run
  nlohmann::json cj = load_config_arg(o.config);
  const bool preset = !(file_exists(o.config) || is_directory(o.config));
  TrainConfig tc;
  if (cj.contains("train")) apply_train_section(cj["train"], tc);
  if (o.seq_len > 0) tc.seq_len = o.seq_len;
  const int64_t vocab = cj.contains("vocab_size") && cj["vocab_size"].is_number_integer() ? cj["vocab_size"].get<int64_t>()
                                                                                         : 8192;
  // Text is prepared once, by rank 0, before the others look at it.
  std::string data = leader ? dataset_for(o, vocab, tc.seq_len, o.seed) : "";
  w.broadcast_string(data, 0);
  const DatasetMeta meta = read_dataset_meta(data);
  if (preset) {
    // A preset takes the dataset's vocabulary (rounded up to a multiple of 64) and special ids.
    cj["vocab_size"] = (int64_t(meta.vocab_size) + 63) / 64 * 64;
    if (meta.eos_id >= 0) cj["eos_token_id"] = meta.eos_id;
    if (meta.bos_id >= 0) cj["bos_token_id"] = meta.bos_id;
  }
  nlohmann::json model_json = cj;
  model_json.erase("train");
  const ModelConfig cfg = parse_model_config(model_json, o.config);
  tc.out_dir = o.out;
  tc.data_dir = data;
  tc.tokenizer_dir = o.tokenizer;
  tc.steps = o.steps;
  if (o.batch > 0) tc.batch = o.batch;
  if (o.accum > 0) tc.accum = o.accum;
  if (o.lr > 0) tc.lr.peak = o.lr;
  if (o.warmup >= 0) tc.lr.warmup = o.warmup;
  tc.lr.kind = parse_schedule(o.schedule);
  tc.lr.min_ratio = o.min_lr_ratio;
  if (o.weight_decay >= 0) tc.adam.weight_decay = o.weight_decay;
  if (o.clip >= 0) tc.clip = o.clip;
  if (o.mtp_lambda >= 0) tc.mtp_lambda = o.mtp_lambda;
  if (o.aux_alpha >= 0) tc.aux_alpha = o.aux_alpha;
  if (o.bias_speed >= 0) tc.bias_speed = o.bias_speed;
  tc.precision = parse_train_precision(o.precision);
  tc.eval_every = o.eval_every;
  tc.eval_batches = o.eval_batches;
  tc.save_every = std::max<int64_t>(1, o.save_every);
  tc.keep_last = o.keep;
  tc.seed = o.seed;
  tc.resume = o.resume;
  tc.resume_from = o.resume_from;
  tc.time_limit_s = o.time_limit_min * 60.0;
  tc.quiet = o.quiet;
  tc.init_from = o.init_from;
  tc.shard_optimizer = o.shard_optimizer;
  tc.expert_parallel = o.expert_parallel;
  tc.overlap_reduce = !o.no_overlap;
  if (tc.seq_len > cfg.max_position_embeddings)
    std::fprintf(stderr, "note: seq_len %lld exceeds max_position_embeddings %lld\n", (long long)tc.seq_len,
                 (long long)cfg.max_position_embeddings);
  if (!o.quiet)
    std::fprintf(stderr,
                 "training %s: %s params (%s active), %lld layers + %lld MTP; batch %lld x %lld tokens x %lld accum; "
                 "%s; %d threads%s\n",
                 o.config.c_str(), human_count(double(cfg.total_params() + cfg.mtp_params())).c_str(),
                 human_count(double(cfg.active_params())).c_str(), (long long)cfg.num_hidden_layers,
                 (long long)cfg.num_nextn_predict_layers, (long long)tc.batch, (long long)tc.seq_len,
                 (long long)tc.accum, o.precision.c_str(), num_threads_for_cli(),
                 w.size() == 1 ? ""
                               : (" x " + std::to_string(w.size()) + " ranks (data parallel" +
                                  (o.expert_parallel ? ", expert parallel" : "") +
                                  (o.shard_optimizer ? ", sharded optimizer" : "") + ")")
                                     .c_str());
  const TrainSummary s = run_training(cfg, tc);
  nlohmann::json j = {{"steps", s.steps_done}, {"loss", s.final_loss}, {"val_loss", s.final_val_loss},
                      {"tokens_per_s", s.tokens_per_s}, {"mfu_bf16_peak", s.mfu_amx}, {"mfu_f32_peak", s.mfu_fma},
                      {"gemm_peak_bf16_gflops", s.gemm_peak_bf16}, {"gemm_peak_f32_gflops", s.gemm_peak_f32},
                      {"flops_per_token", s.flops_per_token},
                      {"arena_planned_mb", double(s.arena_planned_bytes) / 1e6},
                      {"arena_peak_mb", double(s.arena_peak_bytes) / 1e6}, {"peak_rss_mb", peak_rss_mb()},
                      {"checkpoint", s.checkpoint},
                      {"stopped_early", s.stopped_early}, {"precision", o.precision},
                      {"world_size", s.world_size}, {"expert_parallel", s.expert_parallel},
                      {"step_s", s.step_s}, {"allreduce_s", s.allreduce_s}, {"allreduce_busy_s", s.allreduce_busy_s},
                      {"overlap", s.overlap}, {"alltoall_s", s.alltoall_s},
                      {"optimizer_s", s.optimizer_s}};
  if (!leader) return;
  if (o.json) {
    std::printf("%s\n", j.dump().c_str());
  } else if (!o.quiet) {
    std::fprintf(stderr,
                 "done: step %lld, loss %.4f, val loss %.4f (ppl %.1f); %.0f tokens/s = %.1f%% of the BF16 GEMM peak "
                 "(%.0f GFLOP/s), %.1f%% of the F32 peak (%.0f); activation arena %.0f MB planned, %.0f MB used;"
                 " peak RSS %.0f MB\n"
                 "model: %s (load it with `qiusuo generate --model %s`)\n",
                 (long long)s.steps_done, s.final_loss, s.final_val_loss, std::exp(s.final_val_loss), s.tokens_per_s,
                 100 * s.mfu_amx, s.gemm_peak_bf16, 100 * s.mfu_fma, s.gemm_peak_f32,
                 double(s.arena_planned_bytes) / 1e6, double(s.arena_peak_bytes) / 1e6, peak_rss_mb(), o.out.c_str(),
                 o.out.c_str());
  }
}

}  // namespace

void register_train_commands(CLI::App& app) {
  {
    auto o = std::make_shared<TrainOpts>();
    auto* c = app.add_subcommand(
        "train",
        "Train a DeepSeek-style model (MLA, DeepSeekMoE with auxiliary-loss-free balancing, MTP) from a\n"
        "prepared dataset, or straight from text files or folders (a tokenizer is trained on them and they\n"
        "are prepared into OUT/data first). Writes OUT/config.json + model.safetensors (Hugging Face\n"
        "layout), resumable checkpoints in OUT/checkpoints/, OUT/metrics.jsonl and OUT/plots/*.svg");
    c->add_option("--config,-c", o->config, "Model config.json (optionally with a \"train\" section) or preset: tiny, small, medium")
        ->required();
    c->add_option("--data,-d", o->data,
                  "Dataset directory from `qiusuo prepare`, or a text file or folder: then a tokenizer of the\n"
                  "config's vocab_size is trained on it and it is prepared into OUT/data (reused on --resume)")
        ->required();
    c->add_option("--out,-o", o->out, "Output directory")->required();
    c->add_option("--steps", o->steps, "Optimizer steps in total")->capture_default_str();
    c->add_option("--precision", o->precision,
                  "fp32, bf16 (BF16 GEMM inputs, F32 master weights) or fp8 (DeepSeek-V3 FP8 recipe, emulated)")
        ->capture_default_str();
    c->add_flag("--resume", o->resume, "Continue from OUT/checkpoints/latest");
    c->add_option("--resume-from", o->resume_from, "Continue from this checkpoint directory");
    c->add_option("--init-from", o->init_from, "Start from the weights of this checkpoint (fine-tuning)");
    c->add_option("--seed", o->seed, "Seed of initialization and data order")->capture_default_str();
    c->add_option("--batch", o->batch,
                  "Sequences per micro-batch (default: config / 16); under mpirun the global micro-batch,\n"
                  "each of the N ranks computing batch/N of its sequences");
    c->add_option("--seq-len", o->seq_len, "Tokens per sequence (default: config / 512)");
    c->add_option("--accum", o->accum, "Micro-batches per optimizer step (gradient accumulation)");
    c->add_option("--lr", o->lr, "Peak learning rate (default: config / 3e-4)");
    c->add_option("--warmup", o->warmup, "Warmup steps (default: config / 100)");
    c->add_option("--schedule", o->schedule, "cosine, wsd (warmup-stable-decay) or constant")->capture_default_str();
    c->add_option("--min-lr-ratio", o->min_lr_ratio, "Final learning rate as a fraction of the peak")->capture_default_str();
    c->add_option("--weight-decay", o->weight_decay, "AdamW decoupled weight decay (default 0.1; not on norms/biases)");
    c->add_option("--clip", o->clip, "Max global gradient norm (default 1.0; 0 = off)");
    c->add_option("--mtp-lambda", o->mtp_lambda, "Weight of the multi-token-prediction loss (default: config / 0.3)");
    c->add_option("--aux-alpha", o->aux_alpha, "Sequence-wise balance loss weight (default: config / 1e-4; 0 = off)");
    c->add_option("--bias-speed", o->bias_speed, "Auxiliary-loss-free bias update speed gamma (default: config / 1e-3)");
    c->add_option("--eval-every", o->eval_every, "Steps between validation evaluations")->capture_default_str();
    c->add_option("--eval-batches", o->eval_batches, "Validation batches per evaluation")->capture_default_str();
    c->add_option("--save-every", o->save_every, "Steps between checkpoints")->capture_default_str();
    c->add_option("--keep", o->keep, "Checkpoints to keep")->capture_default_str();
    c->add_option("--time-limit", o->time_limit_min, "Fit the run into this many minutes: the step count (and the learning-rate\nschedule) is cut to what the speed of the first steps allows");
    c->add_option("--tokenizer", o->tokenizer, "Tokenizer to ship with the checkpoints (default: the dataset's)");
    c->add_option("--threads", o->threads,
                  "Threads (0 = all cores; under mpirun: per rank, 0 = the host's cores divided among its ranks)");
    c->add_flag("--quiet,-q", o->quiet, "No progress output");
    c->add_flag("--json", o->json, "Print a JSON summary on stdout at the end");
    c->add_flag("--shard-optimizer", o->shard_optimizer,
                "Under mpirun: ZeRO-1, each rank keeps the AdamW moments of 1/N of the parameters\n"
                "(gradients reduce-scattered, parameters all-gathered; docs/dist.md)");
    c->add_flag("--expert-parallel", o->expert_parallel,
                "Under mpirun: the routed experts of each MoE layer divided among the ranks, tokens sent\n"
                "to them by all-to-all; attention, embeddings and shared experts stay data parallel");
    c->add_flag("--no-overlap", o->no_overlap,
                "Under mpirun: reduce the gradients after the backward pass instead of during it");
    c->callback([o] { run_train(*o); });
  }
  {
    struct Opts { std::string model, data, precision = "fp32"; int64_t batch = 8, seq_len = 512, batches = 16; int threads = 0; };
    auto o = std::make_shared<Opts>();
    auto* c = app.add_subcommand("eval", "Perplexity of a checkpoint on the validation split of a dataset");
    c->add_option("--model,-m", o->model, "Checkpoint directory")->required();
    c->add_option("--data,-d", o->data,
                  "Dataset directory from `qiusuo prepare`, or a text file or folder: then a tokenizer of the\n"
                  "config's vocab_size is trained on it and it is prepared into OUT/data (reused on --resume)")
        ->required();
    c->add_option("--batch", o->batch, "Sequences per batch")->capture_default_str();
    c->add_option("--seq-len", o->seq_len, "Tokens per sequence")->capture_default_str();
    c->add_option("--batches", o->batches, "Batches to evaluate (fixed, unshuffled)")->capture_default_str();
    c->add_option("--precision", o->precision, "fp32, bf16 or fp8")->capture_default_str();
    c->add_option("--threads", o->threads, "Threads (0 = all cores)");
    c->callback([o] {
      apply_threads(o->threads);
      int64_t tokens = 0;
      const double loss = evaluate_loss(o->model, o->data, o->batch, o->seq_len, o->batches,
                                        parse_train_precision(o->precision), &tokens);
      std::printf("%s\n", nlohmann::json{{"val_loss", loss}, {"perplexity", std::exp(loss)}, {"tokens", tokens}}.dump().c_str());
    });
  }
}

}  // namespace qs::cli
