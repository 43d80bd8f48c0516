#include "qiusuo/rl/r1.h"

#include <cmath>
#include <cstdio>
#include <memory>

#include "qiusuo/core/error.h"
#include "qiusuo/core/timer.h"
#include "qiusuo/infer/engine.h"
#include "qiusuo/io/file.h"
#include "qiusuo/model/config.h"
#include "qiusuo/model/transformer.h"
#include "qiusuo/plot/chart.h"
#include "qiusuo/rl/distill.h"
#include "qiusuo/rl/evaluate.h"
#include "qiusuo/rl/grpo_trainer.h"
#include "qiusuo/rl/plots.h"
#include "qiusuo/rl/policy.h"
#include "qiusuo/rl/r1_data.h"
#include "qiusuo/rl/sample.h"
#include "qiusuo/rl/sft.h"
#include "qiusuo/train/data.h"
#include "qiusuo/train/trainer.h"

namespace qs::rl {

using json = nlohmann::json;

json r1_default_recipe(bool quick) {
  // The corpus: worked solutions of additions with 1-2 digit operands (four passes over the train
  // split's problems, the style drawn each time), the RL problems left out. Most are "brief" (the
  // sum written at once, which a model this small gets wrong more often), the others are worked
  // column by column (longer, but every step is a one-digit sum). The base model's greedy answer
  // is mostly brief; GRPO can find that its column-by-column samples are rewarded more.
  json r = json::parse(R"({
    "data": {
      "corpus": [
        {"name": "add_a", "knobs": {"min_digits": 1, "max_digits": 2, "ops": "+", "operands": 2},
         "n": 4000, "styles": {"brief": 0.6, "columns": 0.4}},
        {"name": "add_b", "knobs": {"min_digits": 1, "max_digits": 2, "ops": "+", "operands": 2},
         "n": 4000, "styles": {"brief": 0.6, "columns": 0.4}},
        {"name": "add_c", "knobs": {"min_digits": 1, "max_digits": 2, "ops": "+", "operands": 2},
         "n": 4000, "styles": {"brief": 0.6, "columns": 0.4}},
        {"name": "add_d", "knobs": {"min_digits": 1, "max_digits": 2, "ops": "+", "operands": 2},
         "n": 4000, "styles": {"brief": 0.6, "columns": 0.4}}
      ],
      "rl_knobs": {"min_digits": 1, "max_digits": 2, "ops": "+", "operands": 2},
      "rl_problems": 600, "test_problems": 200, "vocab_size": 384, "corpus_files": 32, "corpus_excludes_rl": true
    },
    "base": {
      "config": {"hidden_size": 128, "num_hidden_layers": 4, "intermediate_size": 384, "moe_intermediate_size": 96,
                 "n_routed_experts": 8, "num_experts_per_tok": 2, "n_group": 2, "topk_group": 1,
                 "num_attention_heads": 4, "num_key_value_heads": 4, "q_lora_rank": 64, "kv_lora_rank": 48,
                 "qk_nope_head_dim": 24, "qk_rope_head_dim": 8, "v_head_dim": 24, "max_position_embeddings": 256},
      "steps": 1400, "batch": 8, "seq_len": 256, "lr": 0.002, "warmup": 50, "minutes": 12
    },
    "student_base": {
      "config": {"hidden_size": 96, "num_hidden_layers": 3, "intermediate_size": 288, "moe_intermediate_size": 96,
                 "n_routed_experts": 4, "num_experts_per_tok": 2, "n_group": 1, "topk_group": 1,
                 "first_k_dense_replace": 1,
                 "num_attention_heads": 4, "num_key_value_heads": 4, "q_lora_rank": 48, "kv_lora_rank": 32,
                 "qk_nope_head_dim": 16, "qk_rope_head_dim": 8, "v_head_dim": 16, "max_position_embeddings": 256},
      "steps": 1000, "batch": 8, "seq_len": 256, "lr": 0.002, "warmup": 50, "minutes": 4
    },
    "grpo": {"steps": 60, "prompts": 8, "group": 8, "max_tokens": 96, "lr": 5e-5, "beta": 0.0,
             "clip_low": 0.2, "clip_high": 0.28, "mu": 1, "loss": "dapo", "scale_rewards": "group",
             "eval_every": 10, "eval_problems": 100, "minutes": 5, "micro_batch": 16},
    "sample": {"problems": 300, "n": 4, "temperature": 1.0, "max_tokens": 96, "max_per_problem": 1},
    "rejection_sft": {"epochs": 1, "batch": 16, "lr": 1e-4, "minutes": 1.5},
    "distill": {"epochs": 2, "batch": 16, "lr": 5e-4, "minutes": 2},
    "student_grpo": {"min_steps": 5},
    "eval": {"max_tokens": 96}
  })");
  if (quick) {
    merge_recipe(r, json::parse(R"({
      "data": {"corpus": [{"name": "add", "knobs": {"min_digits": 1, "max_digits": 2, "ops": "+", "operands": 2},
                           "n": 400, "styles": {"brief": 0.7, "columns": 0.3}}],
               "rl_knobs": {"min_digits": 1, "max_digits": 2, "ops": "+", "operands": 2},
               "rl_problems": 60, "test_problems": 8, "vocab_size": 300, "corpus_files": 4},
      "base": {"config": {"hidden_size": 32, "num_hidden_layers": 2, "intermediate_size": 64,
                          "moe_intermediate_size": 32, "q_lora_rank": 16, "kv_lora_rank": 16,
                          "num_attention_heads": 2, "num_key_value_heads": 2,
                          "qk_nope_head_dim": 8, "qk_rope_head_dim": 8, "v_head_dim": 8},
               "steps": 6, "batch": 4, "seq_len": 128, "warmup": 2, "minutes": 0},
      "student_base": {"config": {"hidden_size": 32, "intermediate_size": 64, "moe_intermediate_size": 32,
                                  "q_lora_rank": 16, "kv_lora_rank": 16, "num_attention_heads": 2,
                                  "num_key_value_heads": 2, "qk_nope_head_dim": 8, "qk_rope_head_dim": 8,
                                  "v_head_dim": 8},
                       "steps": 4, "batch": 4, "seq_len": 128, "warmup": 2, "minutes": 0},
      "grpo": {"steps": 2, "prompts": 2, "group": 4, "max_tokens": 24, "eval_every": 1, "eval_problems": 4,
               "minutes": 0},
      "sample": {"problems": 8, "n": 2, "max_tokens": 24},
      "rejection_sft": {"minutes": 0}, "distill": {"minutes": 0},
      "student_grpo": {"min_steps": 1},
      "eval": {"max_tokens": 24}
    })"));
  }
  return r;
}

void merge_recipe(json& recipe, const json& patch, const std::string& where) {
  if (!patch.is_object()) fail(where, ": expected a JSON object");
  for (const auto& [k, v] : patch.items()) {
    if (!recipe.contains(k)) fail(where, ": unknown key '", k, "'");
    json& dst = recipe[k];
    if (dst.is_object() && v.is_object() && k != "config") merge_recipe(dst, v, where + "." + k);
    else if (dst.is_object() && v.is_object()) dst.update(v);  // model configs take any config.json key
    else dst = v;
  }
}

namespace {

template <typename T>
T get(const json& j, const char* section, const char* key) {
  if (!j.contains(section) || !j[section].contains(key)) fail("recipe: missing ", section, ".", key);
  try {
    return j[section][key].get<T>();
  } catch (const std::exception&) {
    fail("recipe: ", section, ".", key, " has the wrong type");
  }
}

bool has_checkpoint(const std::string& out) { return file_exists(path_join(path_join(out, "checkpoints"), "latest")) ||
                                                     is_directory(path_join(path_join(out, "checkpoints"), "latest")); }

// Pretraining of a model described by recipe section `sec` on the r1 dataset.
TrainSummary pretrain(const json& recipe, const char* sec, const R1Data& d, const std::string& out, uint64_t seed,
                      bool quiet) {
  json cj = train_preset("tiny");
  cj.erase("train");
  cj.update(recipe[sec]["config"]);
  const DatasetMeta meta = read_dataset_meta(d.dataset);
  cj["vocab_size"] = (int64_t(meta.vocab_size) + 63) / 64 * 64;
  if (meta.eos_id >= 0) cj["eos_token_id"] = meta.eos_id;
  if (meta.bos_id >= 0) cj["bos_token_id"] = meta.bos_id;
  const ModelConfig cfg = parse_model_config(cj, str("recipe ", sec, ".config"));
  TrainConfig tc;
  tc.out_dir = out;
  tc.data_dir = d.dataset;
  tc.tokenizer_dir = d.tokenizer;
  tc.steps = get<int64_t>(recipe, sec, "steps");
  tc.batch = get<int64_t>(recipe, sec, "batch");
  tc.seq_len = get<int64_t>(recipe, sec, "seq_len");
  tc.lr.peak = get<double>(recipe, sec, "lr");
  tc.lr.warmup = get<int64_t>(recipe, sec, "warmup");
  tc.lr.min_ratio = 0.1;
  tc.time_limit_s = 60.0 * get<double>(recipe, sec, "minutes");
  tc.eval_every = 0;
  tc.eval_batches = 4;
  tc.save_every = 200;
  tc.seed = seed;
  tc.resume = has_checkpoint(out);
  tc.quiet = quiet;
  tc.progress = !quiet;
  return run_training(cfg, tc);
}

EvalResult eval_on(const std::string& model, const std::string& tasks, const json& recipe) {
  EvalOptions eo;
  eo.max_tokens = get<int64_t>(recipe, "eval", "max_tokens");
  return evaluate_model(model, load_task_jsonl(tasks), eo, Compute::F32, 64);
}

}  // namespace

nlohmann::ordered_json run_r1(const R1Options& o) {
  const json& rc = o.recipe;
  const std::string out = o.out_dir;
  make_dirs(out);
  write_text_file_atomic(path_join(out, "recipe.json"), rc.dump(2) + "\n");
  auto say = [&](const std::string& s) {
    if (!o.quiet) std::fprintf(stderr, "[r1] %s\n", s.c_str());
  };
  Stopwatch total;
  static const char* kStages[] = {"base", "grpo", "rejection_sft", "distill_student", "student_grpo"};
  if (!o.until.empty()) {
    bool known = o.until == "student_base";
    for (const char* s : kStages) known |= o.until == s;
    if (!known) fail("--until: unknown stage '", o.until, "' (base, grpo, rejection_sft, student_base, distill_student, student_grpo)");
  }

  // ---- data ----------------------------------------------------------------------------------
  R1DataRecipe dr;
  recipe_from_json(rc.at("data"), dr);
  say("data: generating problems, the pretraining corpus, a tokenizer and the token dataset");
  Stopwatch dw;
  const R1Data d = build_r1_data(dr, path_join(out, "data"), o.seed, !o.quiet);
  say(str("data: ", d.corpus_problems, " corpus problems, ", d.train_tokens, " training tokens, vocabulary ",
          d.vocab_size, " (", format_duration(dw.elapsed()), ")"));

  // A stage: its model directory and its record (DIR/<name>/stage.json once finished).
  std::vector<json> stages;
  json extra = json::object();
  auto record = [&](const std::string& name, const std::string& model, int64_t train_tokens, double seconds,
                    json more) {
    const std::string marker = path_join(model, "stage.json");
    json st;
    if (file_exists(marker)) {
      st = json::parse(read_text_file(marker));
    } else {
      say(str(name, ": evaluating on ", d.test_tasks));
      const EvalResult a = eval_on(model, d.test_tasks, rc);
      const EvalResult b = eval_on(model, d.test_b_tasks, rc);
      st = {{"stage", name},
            {"model", model},
            {"test_accuracy", a.accuracy},
            {"format_rate", a.format_rate},
            {"mean_response_tokens", a.mean_response_tokens},
            {"train_tokens", train_tokens},
            {"seconds", seconds},
            {"test_b_accuracy", b.accuracy},
            {"test_problems", a.n}};
      st.update(more);
      write_text_file_atomic(marker, st.dump(2) + "\n");
    }
    say(str(name, ": test accuracy ", st["test_accuracy"].get<double>(), " (other problems of the split: ",
            st["test_b_accuracy"].get<double>(), "), format ", st["format_rate"].get<double>(), ", ",
            st["mean_response_tokens"].get<double>(), " tokens per response"));
    return st;
  };
  auto done = [&](const std::string& model) { return file_exists(path_join(model, "stage.json")); };
  auto stop_after = [&](const char* s) { return o.until == s; };
  auto results = [&]() {
    nlohmann::ordered_json r;
    r["test_set"] = d.test_tasks;
    r["stages"] = nlohmann::ordered_json::array();
    for (const json& s : stages) {
      nlohmann::ordered_json e;
      for (const char* k : {"stage", "model", "test_accuracy", "format_rate", "mean_response_tokens", "train_tokens", "seconds"})
        e[k] = s[k];
      for (const auto& [k, v] : s.items())
        if (!e.contains(k)) e[k] = v;
      r["stages"].push_back(e);
    }
    r["test_b_set"] = d.test_b_tasks;
    for (const auto& [k, v] : extra.items()) r[k] = v;
    r["total_seconds"] = total.elapsed();
    return r;
  };

  auto finish = [&]() {
    const nlohmann::ordered_json r = results();
    write_text_file_atomic(path_join(out, "results.json"), r.dump(2) + "\n");
    plot::BarChart acc{"Held-out test accuracy (greedy) by stage", "accuracy", {}};
    plot::BarChart len{"Mean response length on the test set by stage", "tokens", {}};
    for (const json& st : stages) {
      acc.bars.push_back({st["stage"].get<std::string>(), st["test_accuracy"].get<double>()});
      len.bars.push_back({st["stage"].get<std::string>(), st["mean_response_tokens"].get<double>()});
    }
    make_dirs(path_join(out, "plots"));
    plot::write_svg(path_join(path_join(out, "plots"), "stages.svg"), acc);
    plot::write_svg(path_join(path_join(out, "plots"), "stage_response_length.svg"), len);
    std::string md = "# qiusuo r1: DeepSeek-R1 in miniature\n\n";
    md += str("Held-out test set: `", d.test_tasks, "` (", stages.empty() ? 0 : stages[0].value("test_problems", 0),
              " problems of the test split, greedy decoding); reproduction check on other problems of the same split: `",
              d.test_b_tasks, "`.\n\n");
    md += "| stage | test accuracy | other test problems | format rate | mean response tokens | train tokens | seconds | model |\n";
    md += "|---|---|---|---|---|---|---|---|\n";
    char buf[512];
    for (const json& st : stages) {
      std::snprintf(buf, sizeof buf, "| %s | %.3f | %.3f | %.3f | %.1f | %lld | %.0f | `%s` |\n",
                    st["stage"].get<std::string>().c_str(), st["test_accuracy"].get<double>(),
                    st.value("test_b_accuracy", 0.0), st["format_rate"].get<double>(),
                    st["mean_response_tokens"].get<double>(), (long long)st["train_tokens"].get<int64_t>(),
                    st["seconds"].get<double>(), st["model"].get<std::string>().c_str());
      md += buf;
    }
    if (extra.contains("student_base")) {
      const json& sb = extra["student_base"];
      std::snprintf(buf, sizeof buf, "\nThe student's own pretrained base (`%s`): test accuracy %.3f, %.1f tokens per response.\n",
                    sb["model"].get<std::string>().c_str(), sb["test_accuracy"].get<double>(),
                    sb["mean_response_tokens"].get<double>());
      md += buf;
    }
    md += "\nStages: `base` pretrained on worked solutions (mostly brief, some column by column); `grpo` R1-Zero (GRPO with "
          "accuracy + format rewards on the base, no SFT); `rejection_sft` the GRPO model fine-tuned on its own verified "
          "samples; `distill_student` a smaller pretrained student fine-tuned on the same traces; `student_grpo` the same "
          "student base trained by GRPO for the wall time of the distillation route (sampling + distillation). "
          "`seconds` of the rejection_sft and distill_student stages include the sampling of the traces.\n\n"
          "Plots: `plots/reward.svg`, `plots/response_length.svg` (GRPO steps), `plots/stages.svg` (this table).\n";
    write_text_file_atomic(path_join(out, "results.md"), md);
    return r;
  };

  // ---- base: pretraining ---------------------------------------------------------------------
  const std::string base = path_join(out, "base");
  {
    int64_t tokens = 0;
    double secs = 0;
    if (!done(base)) {
      say("base: pretraining the MoE base model on the corpus");
      Stopwatch w;
      const TrainSummary s = pretrain(rc, "base", d, base, o.seed, o.quiet);
      tokens = s.steps_done * get<int64_t>(rc, "base", "batch") * get<int64_t>(rc, "base", "seq_len");
      secs = w.elapsed();
      stages.push_back(record("base", base, tokens, secs, {{"final_loss", s.final_loss}}));
    } else {
      stages.push_back(record("base", base, 0, 0, {}));
    }
  }
  if (stop_after("base")) return finish();

  // ---- grpo: R1-Zero ---------------------------------------------------------------------------
  const std::string grpo = path_join(out, "grpo");
  const json& g = rc.at("grpo");
  auto grpo_options = [&](const std::string& dir) {
    GrpoOptions go;
    go.out_dir = dir;
    go.steps = g.at("steps").get<int64_t>();
    go.prompts = g.at("prompts").get<int64_t>();
    go.group = g.at("group").get<int64_t>();
    go.max_tokens = g.at("max_tokens").get<int64_t>();
    go.lr = g.at("lr").get<double>();
    go.loss.beta = g.at("beta").get<double>();
    go.loss.clip_low = g.at("clip_low").get<double>();
    go.loss.clip_high = g.at("clip_high").get<double>();
    go.mu = g.at("mu").get<int64_t>();
    go.loss.loss = parse_loss_aggregation(g.at("loss").get<std::string>());
    go.scale_rewards = parse_scale_rewards(g.at("scale_rewards").get<std::string>());
    go.micro_batch = g.at("micro_batch").get<int64_t>();
    go.eval_tasks = d.test_tasks;
    go.eval_every = g.at("eval_every").get<int64_t>();
    go.eval_problems = g.at("eval_problems").get<int64_t>();
    go.time_limit_s = 60.0 * g.at("minutes").get<double>();
    go.save_every = 10;
    go.log_samples_every = std::max<int64_t>(1, go.steps / 10);
    go.seed = o.seed;
    go.resume = has_checkpoint(dir);
    go.quiet = o.quiet;
    go.progress = !o.quiet;
    return go;
  };
  if (!done(grpo)) {
    say("grpo: R1-Zero, GRPO with rule-based rewards straight on the base model");
    Stopwatch w;
    const GrpoSummary s = run_grpo(base, d.rl_tasks, grpo_options(grpo));
    stages.push_back(record("grpo", grpo, s.train_tokens, w.elapsed(),
                            {{"grpo_steps", s.steps}, {"rollout_tokens_per_s", s.rollout_tokens_per_s},
                             {"update_tokens_per_s", s.update_tokens_per_s}, {"rollout_share", s.rollout_share}}));
  } else {
    stages.push_back(record("grpo", grpo, 0, 0, {}));
  }
  {
    const std::string plots = path_join(out, "plots");
    write_grpo_plots(path_join(grpo, "metrics.jsonl"), plots);
  }
  if (stop_after("grpo")) return finish();

  // ---- rejection sampling + SFT ------------------------------------------------------------------
  const std::string traces = path_join(out, "traces.jsonl");
  const json& sp = rc.at("sample");
  double sample_s = 0;
  if (!file_exists(traces)) {
    say("rejection sampling: verified traces of the GRPO model on training problems");
    Stopwatch w;
    std::vector<Problem> problems = load_task_jsonl(d.rl_tasks);
    const int64_t np = std::min<int64_t>(int64_t(problems.size()), sp.at("problems").get<int64_t>());
    problems.erase(problems.end() - (int64_t(problems.size()) - np), problems.end());
    SampleOptions so;
    so.n = sp.at("n").get<int64_t>();
    so.temperature = sp.at("temperature").get<double>();
    so.max_tokens = sp.at("max_tokens").get<int64_t>();
    so.max_per_problem = sp.at("max_per_problem").get<int64_t>();
    so.keep_correct = true;
    so.seed = o.seed;
    const std::unique_ptr<Tokenizer> tok = load_chat_tokenizer(grpo);
    const std::unique_ptr<Model> model = Model::load(grpo, false);
    const ChatFormatter chat(*tok);
    Engine engine(*model, tok.get(), batch_engine_options(64, model_context(*model), Compute::F32));
    SampleResult r = rejection_sample(engine, chat, problems, so);
    bool unverified = false;
    if (r.kept == 0) {
      // Only a model that solves nothing gets here (the --quick smoke run): the stages after it
      // still run, on unverified samples, and results.json says so.
      say(str("rejection sampling: WARNING: the GRPO model solved none of ", r.problems,
              " problems; the later stages train on UNVERIFIED samples"));
      so.keep_correct = false;
      r = rejection_sample(engine, chat, problems, so);
      unverified = true;
    }
    QS_CHECK(r.kept > 0, "rejection sampling produced no samples");
    write_jsonl(traces, r.lines);
    sample_s = w.elapsed();
    extra["rejection_sampling"] = r.to_json();
    extra["rejection_sampling"]["unverified"] = unverified;
    extra["rejection_sampling"]["seconds"] = sample_s;
    write_text_file_atomic(path_join(out, "traces.json"), extra["rejection_sampling"].dump(2) + "\n");
  } else if (file_exists(path_join(out, "traces.json"))) {
    extra["rejection_sampling"] = json::parse(read_text_file(path_join(out, "traces.json")));
    sample_s = extra["rejection_sampling"].value("seconds", 0.0);
  }
  say(str("rejection sampling: ", extra.value("rejection_sampling", json::object()).value("kept", int64_t(0)),
          " verified traces in ", traces));
  auto finetune_options = [&](const char* sec, const std::string& dir) {
    FinetuneOptions f;
    f.out_dir = dir;
    f.epochs = get<double>(rc, sec, "epochs");
    f.batch = get<int64_t>(rc, sec, "batch");
    f.lr = get<double>(rc, sec, "lr");
    f.warmup = 5;
    f.time_limit_s = 60.0 * get<double>(rc, sec, "minutes");
    f.seed = o.seed;
    f.save_every = 50;
    f.resume = has_checkpoint(dir);
    f.quiet = o.quiet;
    f.progress = !o.quiet;
    return f;
  };
  const std::string rsft = path_join(out, "rejection_sft");
  if (!done(rsft)) {
    say("rejection_sft: SFT of the GRPO model on its own verified traces");
    Stopwatch w;
    const FinetuneSummary s = run_sft(grpo, traces, finetune_options("rejection_sft", rsft));
    stages.push_back(record("rejection_sft", rsft, s.train_tokens, w.elapsed() + sample_s, {{"sft_steps", s.steps}}));
  } else {
    stages.push_back(record("rejection_sft", rsft, 0, 0, {}));
  }
  if (stop_after("rejection_sft")) return finish();

  // ---- the student -----------------------------------------------------------------------------
  const std::string sbase = path_join(out, "student_base");
  if (!file_exists(path_join(sbase, "pretrain.json"))) {
    say("student_base: pretraining the smaller student on the same corpus");
    Stopwatch w;
    const TrainSummary s = pretrain(rc, "student_base", d, sbase, o.seed + 1, o.quiet);
    const EvalResult a = eval_on(sbase, d.test_tasks, rc);
    const json sj = {{"model", sbase},
                     {"test_accuracy", a.accuracy},
                     {"format_rate", a.format_rate},
                     {"mean_response_tokens", a.mean_response_tokens},
                     {"train_tokens", s.steps_done * get<int64_t>(rc, "student_base", "batch") *
                                          get<int64_t>(rc, "student_base", "seq_len")},
                     {"seconds", w.elapsed()}};
    write_text_file_atomic(path_join(sbase, "pretrain.json"), sj.dump(2) + "\n");
  }
  extra["student_base"] = json::parse(read_text_file(path_join(sbase, "pretrain.json")));
  say(str("student_base: test accuracy ", extra["student_base"]["test_accuracy"].get<double>()));
  if (stop_after("student_base")) return finish();

  const std::string dstu = path_join(out, "distill_student");
  double distill_s = 0;
  if (!done(dstu)) {
    say("distill_student: the student fine-tuned on the teacher's verified traces (sequence-level distillation)");
    Stopwatch w;
    DistillOptions dopt;
    dopt.train = finetune_options("distill", dstu);
    dopt.mode = DistillMode::Sequence;
    const DistillSummary s = run_distill(rsft, sbase, traces, dopt);
    distill_s = w.elapsed();
    stages.push_back(record("distill_student", dstu, s.train.train_tokens, distill_s + sample_s,
                            {{"teacher", rsft}, {"student_base", sbase}, {"sft_steps", s.train.steps}}));
  } else {
    stages.push_back(record("distill_student", dstu, 0, 0, {}));
    distill_s = stages.back().value("seconds", 0.0) - sample_s;
  }
  if (stop_after("distill_student")) return finish();

  // The same student by GRPO alone, for the wall time of the distillation route.
  const std::string sgrpo = path_join(out, "student_grpo");
  if (!done(sgrpo)) {
    const double budget = stages.back().value("seconds", 0.0);
    say(str("student_grpo: GRPO on the student base for the distillation route's time (", format_duration(budget), ")"));
    Stopwatch w;
    GrpoOptions go = grpo_options(sgrpo);
    go.time_limit_s = budget > 0 ? budget : go.time_limit_s;
    go.eval_every = 0;  // held-out accuracy at the end only: the budget goes to training
    go.steps = std::max(go.steps, rc.at("student_grpo").at("min_steps").get<int64_t>());
    const GrpoSummary s = run_grpo(sbase, d.rl_tasks, go);
    stages.push_back(record("student_grpo", sgrpo, s.train_tokens, w.elapsed(),
                            {{"grpo_steps", s.steps}, {"student_base", sbase}, {"time_budget_s", budget}}));
  } else {
    stages.push_back(record("student_grpo", sgrpo, 0, 0, {}));
  }
  return finish();
}

}  // namespace qs::rl
