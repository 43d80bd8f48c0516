// qiusuo sft | grpo | distill | r1: the training commands of reinforcement learning (docs/rl.md).
// Thin clients of src/qiusuo/rl/{sft,grpo_trainer,distill,r1}.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <memory>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "qiusuo/core/error.h"
#include "qiusuo/io/file.h"
#include "qiusuo/rl/distill.h"
#include "qiusuo/rl/grpo_trainer.h"
#include "qiusuo/rl/policy.h"
#include "qiusuo/rl/r1.h"
#include "qiusuo/rl/r1_data.h"
#include "qiusuo/rl/sft.h"
#include "qiusuo/train/optimizer.h"

namespace qs::cli {
namespace {

// Flags of the fine-tuning loops (sft, distill).
struct FinetuneFlags {
  rl::FinetuneOptions f;
  std::string precision = "fp32";
  int threads = 0;
  bool json = false;
};

void add_finetune_flags(CLI::App* c, FinetuneFlags& o) {
  c->add_option("--out,-o", o.f.out_dir, "Output directory: the model in Hugging Face layout, checkpoints/, metrics.jsonl, plots/")
      ->required();
  c->add_option("--batch", o.f.batch, "Conversations per optimizer step")->capture_default_str();
  c->add_option("--micro-batch", o.f.micro_batch, "Conversations per forward/backward pass (0 = --batch)")
      ->capture_default_str();
  c->add_option("--epochs", o.f.epochs, "Passes over the data (when --steps is 0)")->capture_default_str();
  c->add_option("--steps", o.f.steps, "Optimizer steps (0: from --epochs)")->capture_default_str();
  c->add_option("--lr", o.f.lr, "Peak learning rate")->capture_default_str();
  c->add_option("--warmup", o.f.warmup, "Warmup steps")->capture_default_str();
  c->add_option("--schedule", o.f.schedule, "cosine, wsd or constant")->capture_default_str();
  c->add_option("--min-lr-ratio", o.f.min_lr_ratio, "Final learning rate as a fraction of the peak")->capture_default_str();
  c->add_option("--weight-decay", o.f.weight_decay, "AdamW decoupled weight decay")->capture_default_str();
  c->add_option("--clip", o.f.clip, "Max global gradient norm (0 = off)")->capture_default_str();
  c->add_option("--mtp-lambda", o.f.mtp_lambda, "Weight of the multi-token-prediction loss (0: MTP modules not run)")
      ->capture_default_str();
  c->add_option("--precision", o.precision, "fp32, bf16 or fp8 (training products)")->capture_default_str();
  c->add_option("--max-len", o.f.max_len, "Longest conversation in tokens; longer ones are skipped (0: the model's context)")
      ->capture_default_str();
  c->add_option("--seed", o.f.seed, "Seed of the data order")->capture_default_str();
  c->add_option("--save-every", o.f.save_every, "Steps between checkpoints")->capture_default_str();
  c->add_option("--keep", o.f.keep_last, "Checkpoints to keep")->capture_default_str();
  c->add_flag("--resume", o.f.resume, "Continue from OUT/checkpoints/latest (same data, batch and seed)");
  c->add_option("--resume-from", o.f.resume_from, "Continue from this checkpoint directory");
  c->add_option("--time-limit", o.f.time_limit_s, "Fit the run into this many minutes (0 = no limit)")
      ->transform([](std::string s) { return std::to_string(std::stod(s) * 60.0); });
  c->add_option("--threads", o.threads, "Threads (0 = all cores)");
  c->add_flag("--quiet,-q", o.f.quiet, "No progress output");
  c->add_flag("--json", o.json, "Print a JSON summary on stdout at the end");
}

void print_finetune_summary(const char* what, const rl::FinetuneSummary& s, bool json, bool quiet) {
  if (json) {
    std::printf("%s\n", s.to_json().dump().c_str());
  } else if (!quiet) {
    std::fprintf(stderr, "%s done: step %lld, loss %.4f, %lld target tokens, %.0f tokens/s; model: %s\n", what,
                 (long long)s.steps, s.final_loss, (long long)s.train_tokens, s.tokens_per_s, s.out_dir.c_str());
  }
}

}  // namespace

void register_rl_training_commands(CLI::App& app) {
  {
    struct Opts : FinetuneFlags {
      std::string model, data;
    };
    auto o = std::make_shared<Opts>();
    auto* c = app.add_subcommand(
        "sft",
        "Supervised fine-tuning on chat data: {\"messages\":[{\"role\":..,\"content\":..},...]} per line (e.g.\n"
        "from `qiusuo sample --keep-correct` or `qiusuo task-gen --format sft`). Each conversation is rendered\n"
        "with the model's chat template; the loss is the mean cross-entropy over the assistant tokens only\n"
        "(the prompt, the template's text and the user turns get no gradient). Writes the model into OUT in\n"
        "Hugging Face layout, resumable checkpoints in OUT/checkpoints, OUT/metrics.jsonl and OUT/plots.");
    c->add_option("--model,-m", o->model, "Model directory (Hugging Face layout, with tokenizer and chat template)")
        ->required();
    c->add_option("--data,-d", o->data, "Chat JSONL: one {\"messages\":[...]} per line")->required();
    add_finetune_flags(c, *o);
    c->callback([o] {
      apply_threads(o->threads);
      o->f.precision = parse_train_precision(o->precision);
      const rl::FinetuneSummary s = rl::run_sft(o->model, o->data, o->f);
      print_finetune_summary("sft", s, o->json, o->f.quiet);
    });
  }
  {
    struct Opts {
      rl::GrpoOptions g;
      std::string model, tasks, scale_rewards = "group", loss = "grpo", precision = "fp32", format_mode = "additive";
      int threads = 0;
      bool json = false;
    };
    auto o = std::make_shared<Opts>();
    auto* c = app.add_subcommand(
        "grpo",
        "Group Relative Policy Optimization with rule-based rewards (DeepSeekMath, DeepSeek-R1-Zero), with\n"
        "DAPO's and Dr. GRPO's options. Per step: B prompts (--prompts) of the task file, G completions each\n"
        "(--group) sampled at temperature 1 in one batched engine run over the policy being trained (the G\n"
        "samples share the prompt's KV blocks); rewards from the verifier (accuracy + format, docs/rl.md);\n"
        "advantages A = (r - mean_group) / (std_group + 1e-4) (--scale-rewards none: r - mean_group); then\n"
        "--mu updates of the clipped objective\n"
        "  l_t = -min(rho_t A, clip(rho_t, 1 - clip_low, 1 + clip_high) A) + beta k3_t,\n"
        "  rho_t = pi(o_t) / pi_old(o_t),  k3_t = pi_ref/pi - log(pi_ref/pi) - 1 (KL to the frozen start),\n"
        "aggregated per --loss: grpo = mean over sequences of each one's token mean; dapo = token mean over the\n"
        "batch; dr_grpo = token sum / (B*G x --max-tokens).\n"
        "Why the loss sits near 0 when mu = 1: the policy that sampled is the one being updated, so rho = 1\n"
        "exactly and the loss is -mean(A) (+ beta KL), and the advantages of each group sum to 0. The gradient,\n"
        "-A d(log pi)/d(theta) per token, is not 0: watch the reward and the accuracy, not the loss.\n"
        "Writes the policy into OUT (Hugging Face layout), checkpoints (--resume continues with the same\n"
        "rollouts and losses), OUT/metrics.jsonl (reward mean/std, accuracy, format rate, response length, KL,\n"
        "clip fraction, entropy, rollout/update tokens/s and time split), OUT/samples.jsonl (prompts with\n"
        "their completions and rewards) and OUT/plots/*.svg.");
    c->add_option("--model,-m", o->model, "Starting model directory (Hugging Face layout, tokenizer, chat template)")
        ->required();
    c->add_option("--tasks", o->tasks, "Task JSONL of training problems (`qiusuo task-gen`, docs/rl.md)")->required();
    c->add_option("--out,-o", o->g.out_dir, "Output directory")->required();
    c->add_option("--steps", o->g.steps, "Rollout steps")->capture_default_str();
    c->add_option("--prompts", o->g.prompts, "Prompts per step (B)")->capture_default_str();
    c->add_option("--group", o->g.group, "Completions per prompt (G)")->capture_default_str();
    c->add_option("--max-tokens", o->g.max_tokens, "Tokens per completion at most (capped by the context)")
        ->capture_default_str();
    c->add_option("--scale-rewards", o->scale_rewards, "group (GRPO), batch, or none (Dr. GRPO: no std division)")
        ->capture_default_str();
    c->add_option("--clip-low", o->g.loss.clip_low, "epsilon_low: ratio floor 1 - E for A < 0")->capture_default_str();
    c->add_option("--clip-high", o->g.loss.clip_high, "epsilon_high: ratio ceiling 1 + E for A > 0 (DAPO: 0.28)")
        ->capture_default_str();
    c->add_option("--mu", o->g.mu, "Policy updates per rollout batch (old log-probs kept from the sampler)")
        ->capture_default_str();
    c->add_option("--beta", o->g.loss.beta, "Weight of the k3 KL to the frozen reference (0: no reference loaded)")
        ->capture_default_str();
    c->add_option("--loss", o->loss, "Aggregation: grpo, dapo or dr_grpo")->capture_default_str();
    c->add_flag("--drop-uniform-groups", o->g.drop_uniform_groups,
                "Leave out groups whose rewards are all equal (they carry no signal; DAPO's dynamic sampling)");
    c->add_flag("--mask-truncated", o->g.loss.mask_truncated,
                "Completions cut by --max-tokens get no loss (DAPO's overlong filtering)");
    c->add_option("--ref-resync", o->g.ref_resync, "Reset the reference to the current policy every N steps (0 = never)")
        ->capture_default_str();
    c->add_option("--lr", o->g.lr, "Learning rate")->capture_default_str();
    c->add_option("--warmup", o->g.warmup, "Warmup steps")->capture_default_str();
    c->add_option("--schedule", o->g.schedule, "constant, cosine or wsd")->capture_default_str();
    c->add_option("--weight-decay", o->g.weight_decay, "AdamW weight decay")->capture_default_str();
    c->add_option("--clip", o->g.clip, "Max global gradient norm (0 = off)")->capture_default_str();
    c->add_option("--micro-batch", o->g.micro_batch, "Sequences per forward/backward pass")->capture_default_str();
    c->add_option("--accuracy-weight", o->g.reward.accuracy_weight, "Reward for a correct answer")->capture_default_str();
    c->add_option("--format-weight", o->g.reward.format_weight, "Reward for the <think>/<answer> layout")
        ->capture_default_str();
    c->add_option("--format-mode", o->format_mode,
                  "additive (accuracy + format) or tinyzero (1 if correct, else format weight if well-formed)")
        ->capture_default_str();
    c->add_option("--length-soft", o->g.reward.length_soft_limit, "Overlong penalty from this many tokens (0 = off)")
        ->capture_default_str();
    c->add_option("--length-hard", o->g.reward.length_hard_limit, "Overlong penalty reaches --length-weight here")
        ->capture_default_str();
    c->add_option("--length-weight", o->g.reward.length_weight, "Overlong penalty at the hard limit")->capture_default_str();
    c->add_option("--precision", o->precision, "fp32 or bf16: training products, and the engine's (f32 / bf16)")
        ->capture_default_str();
    c->add_option("--max-seqs", o->g.max_seqs, "Sequences the engine generates at once (0 = prompts x group)")
        ->capture_default_str();
    c->add_option("--seed", o->g.seed, "Seed of the prompt order and the rollouts")->capture_default_str();
    c->add_option("--log-samples-every", o->g.log_samples_every, "Steps between samples.jsonl entries (0 = never)")
        ->capture_default_str();
    c->add_option("--log-samples", o->g.log_samples, "Prompts per samples.jsonl entry")->capture_default_str();
    c->add_option("--eval-tasks", o->g.eval_tasks, "Held-out task JSONL: greedy accuracy logged as eval_accuracy");
    c->add_option("--eval-every", o->g.eval_every, "Steps between held-out evaluations (0 = at the end only)")
        ->capture_default_str();
    c->add_option("--eval-problems", o->g.eval_problems, "Evaluate on the first N held-out problems (0 = all)")
        ->capture_default_str();
    c->add_option("--save-every", o->g.save_every, "Steps between checkpoints")->capture_default_str();
    c->add_option("--keep", o->g.keep_last, "Checkpoints to keep")->capture_default_str();
    c->add_flag("--resume", o->g.resume, "Continue from OUT/checkpoints/latest (same rollouts and losses as an uninterrupted run)");
    c->add_option("--resume-from", o->g.resume_from, "Continue from this checkpoint directory");
    c->add_option("--time-limit", o->g.time_limit_s, "Fit the run into this many minutes (0 = no limit)")
        ->transform([](std::string s) { return std::to_string(std::stod(s) * 60.0); });
    c->add_option("--threads", o->threads, "Threads (0 = all cores)");
    c->add_flag("--quiet,-q", o->g.quiet, "No progress output");
    c->add_flag("--json", o->json, "Print a JSON summary on stdout at the end");
    c->callback([o] {
      apply_threads(o->threads);
      o->g.scale_rewards = rl::parse_scale_rewards(o->scale_rewards);
      o->g.loss.loss = rl::parse_loss_aggregation(o->loss);
      o->g.reward.format_mode = rl::parse_format_mode(o->format_mode);
      o->g.precision = parse_train_precision(o->precision);
      if (o->g.precision == TrainPrecision::FP8) fail("--precision for grpo must be fp32 or bf16");
      const rl::GrpoSummary s = rl::run_grpo(o->model, o->tasks, o->g);
      if (o->json) {
        std::printf("%s\n", s.to_json().dump().c_str());
      } else if (!o->g.quiet) {
        std::fprintf(stderr,
                     "grpo done: step %lld, last rollouts: reward %.3f, accuracy %.3f%s; rollout %.0f tok/s, update "
                     "%.0f tok/s, %.0f%% of the time in rollouts; model: %s\n",
                     (long long)s.steps, s.reward_mean, s.accuracy,
                     s.eval_accuracy >= 0 ? str("; held-out accuracy ", s.eval_accuracy).c_str() : "",
                     s.rollout_tokens_per_s, s.update_tokens_per_s, 100 * s.rollout_share, s.out_dir.c_str());
      }
    });
  }
  {
    struct Opts : FinetuneFlags {
      std::string teacher, student, data, mode = "sequence", teacher_precision = "f32";
      rl::DistillOptions d;
    };
    auto o = std::make_shared<Opts>();
    auto* c = app.add_subcommand(
        "distill",
        "Distill a teacher into a student with the same tokenizer (DeepSeek-R1's distilled models).\n"
        "  --mode sequence: SFT of the student on the teacher's verified traces (cross-entropy on the\n"
        "                   assistant tokens)\n"
        "  --mode logit:    on the same tokens, the KL from the teacher's top-k next-token distribution\n"
        "                   (teacher forcing through the engine, renormalised over the top-k ids) to the\n"
        "                   student's\n"
        "--data is chat JSONL ({\"messages\":[...]}, e.g. from `qiusuo sample --keep-correct`) or task JSONL\n"
        "({\"prompt\",\"answer\",\"match\"}): then the teacher is rejection-sampled on the problems first\n"
        "(--samples per problem, correct and well-formed completions kept, OUT/teacher_traces.jsonl).\n"
        "--student is a model directory or a config (preset tiny|small|medium or a config.json): a config\n"
        "builds a random-weight student, smaller, dense or MoE, with the teacher's vocabulary and tokenizer.");
    c->add_option("--teacher", o->teacher, "Teacher model directory (with tokenizer and chat template)")->required();
    c->add_option("--student", o->student, "Student model directory, or config: tiny, small, medium or a config.json")
        ->required();
    c->add_option("--mode", o->mode, "sequence or logit")->capture_default_str();
    c->add_option("--data,-d", o->data, "Chat JSONL of traces, or task JSONL to sample the teacher on")->required();
    c->add_option("--top-k", o->d.top_k, "logit: teacher entries per position")->capture_default_str();
    c->add_option("--samples", o->d.sampling.n, "task data: completions sampled per problem")->capture_default_str();
    c->add_option("--temperature", o->d.sampling.temperature, "task data: sampling temperature")->capture_default_str();
    c->add_option("--max-tokens", o->d.sampling.max_tokens, "task data: tokens per completion at most")
        ->capture_default_str();
    c->add_option("--max-per-problem", o->d.sampling.max_per_problem, "task data: traces kept per problem (0 = all)")
        ->capture_default_str();
    c->add_option("--teacher-precision", o->teacher_precision, "Teacher engine products: f32 or bf16")
        ->capture_default_str();
    c->add_option("--init-seed", o->d.init_seed, "Seed of a student built from a config")->capture_default_str();
    add_finetune_flags(c, *o);
    c->callback([o] {
      apply_threads(o->threads);
      o->d.train = o->f;
      o->d.train.precision = parse_train_precision(o->precision);
      o->d.mode = rl::parse_distill_mode(o->mode);
      o->d.teacher_compute = rl::parse_compute(o->teacher_precision, "--teacher-precision");
      o->d.sampling.seed = o->f.seed;
      const rl::DistillSummary s = rl::run_distill(o->teacher, o->student, o->data, o->d);
      if (o->json) std::printf("%s\n", s.to_json().dump().c_str());
      else print_finetune_summary("distill", s.train, false, o->f.quiet);
    });
  }
  {
    struct Opts {
      std::string out, recipe, until;
      uint64_t seed = 0;
      int threads = 0;
      bool quick = false, quiet = false, json = false, print_recipe = false;
    };
    auto o = std::make_shared<Opts>();
    auto* c = app.add_subcommand(
        "r1",
        "DeepSeek-R1 in miniature, end to end on generated data (no download), about 20 minutes on 2 cores:\n"
        "  data             arithmetic problems (train split for training, test split held out), worked\n"
        "                   solutions as pretraining text, a BPE tokenizer with an R1-Zero chat template\n"
        "  base             pretrain a small DeepSeek-style MoE (MLA, DeepSeekMoE, MTP) on that text\n"
        "  grpo             R1-Zero: GRPO with accuracy + format rewards on the base, no SFT first\n"
        "  rejection_sft    rejection-sample the GRPO model's verified traces, SFT it on them\n"
        "  student_base     pretrain a smaller student on the same text\n"
        "  distill_student  fine-tune the student on the traces (sequence-level distillation)\n"
        "  student_grpo     the same student base by GRPO alone, for the distillation route's wall time\n"
        "Every stage model is evaluated greedily on the held-out test set. Writes OUT/results.json\n"
        "  {\"test_set\":PATH,\"stages\":[{\"stage\",\"model\",\"test_accuracy\",\"format_rate\",\n"
        "   \"mean_response_tokens\",\"train_tokens\",\"seconds\",...},...]}\n"
        "OUT/results.md, OUT/plots/*.svg and one model directory per stage (Hugging Face layout; open one\n"
        "with `qiusuo chat --model OUT/<stage>`). Run again with the same OUT to continue an interrupted run\n"
        "(finished stages are kept, an interrupted stage continues from its checkpoints).");
    c->add_option("--out,-o", o->out, "Run directory")->required();
    c->add_option("--recipe", o->recipe, "Recipe JSON whose keys override the embedded default (see --print-recipe)");
    c->add_flag("--quick", o->quick, "A seconds-long run with tiny models and data (a smoke test of the pipeline)");
    c->add_flag("--print-recipe", o->print_recipe, "Print the recipe (default or --quick, with --recipe applied) and exit");
    c->add_option("--until", o->until,
                  "Stop after this stage: base, grpo, rejection_sft, student_base, distill_student, student_grpo");
    c->add_option("--seed", o->seed, "Seed of the data, initialisation and rollouts")->capture_default_str();
    c->add_option("--threads", o->threads, "Threads (0 = all cores)");
    c->add_flag("--quiet,-q", o->quiet, "No progress output");
    c->add_flag("--json", o->json, "Print results.json on stdout at the end");
    c->callback([o] {
      apply_threads(o->threads);
      rl::R1Options r;
      r.out_dir = o->out;
      r.recipe = rl::r1_default_recipe(o->quick);
      if (!o->recipe.empty()) {
        const nlohmann::json patch = nlohmann::json::parse(read_text_file(o->recipe), nullptr, false);
        if (patch.is_discarded()) fail(ErrorKind::Format, o->recipe, ": not valid JSON");
        rl::merge_recipe(r.recipe, patch, o->recipe);
      }
      if (o->print_recipe) {
        std::printf("%s\n", r.recipe.dump(2).c_str());
        return;
      }
      r.seed = o->seed;
      r.until = o->until;
      r.quiet = o->quiet;
      const nlohmann::ordered_json res = rl::run_r1(r);
      if (o->json) std::printf("%s\n", res.dump().c_str());
      if (!o->quiet) {
        std::fprintf(stderr, "\n");
        for (const auto& st : res["stages"])
          std::fprintf(stderr, "  %-16s test accuracy %.3f  format %.3f  %6.1f tokens/response  %6.0f s\n",
                       st["stage"].get<std::string>().c_str(), st["test_accuracy"].get<double>(),
                       st["format_rate"].get<double>(), st["mean_response_tokens"].get<double>(),
                       st["seconds"].get<double>());
        const std::string last = res["stages"].empty() ? "" : res["stages"].back()["model"].get<std::string>();
        std::fprintf(stderr,
                     "\nResults: %s/results.json, %s/results.md, plots in %s/plots\n"
                     "Talk to the R1-Zero model:  qiusuo chat --model %s/grpo\n"
                     "or to the distilled student: qiusuo chat --model %s/distill_student\n"
                     "(prompts as in %s/data/tasks/test.jsonl, e.g. \"Calculate 57 + 38. Think step by step ...\")\n",
                     o->out.c_str(), o->out.c_str(), o->out.c_str(), o->out.c_str(), o->out.c_str(), o->out.c_str());
      }
    });
  }
}

}  // namespace qs::cli
