#include "qiusuo/rl/sft.h"

#include <algorithm>
#include <fstream>
#include <numeric>

#include "qiusuo/core/error.h"
#include "qiusuo/core/rng.h"
#include "qiusuo/core/timer.h"
#include "qiusuo/io/file.h"
#include "qiusuo/io/safetensors.h"
#include "qiusuo/rl/policy.h"
#include "qiusuo/train/train_step.h"

namespace qs::rl {

int64_t SftExample::targets() const { return std::count(target.begin(), target.end(), uint8_t(1)); }

SftExample tokenize_conversation(const ChatFormatter& chat, const nlohmann::json& messages) {
  QS_CHECK(messages.is_array() && !messages.empty(), "\"messages\" must be a non-empty array");
  ChatOptions whole;
  whole.add_generation_prompt = false;
  SftExample ex;
  ex.ids = chat.render(messages, whole).ids;
  ex.target.assign(ex.ids.size(), 0);
  bool any_assistant = false;
  for (size_t i = 0; i < messages.size(); ++i) {
    if (!messages[i].is_object() || messages[i].value("role", std::string()) != "assistant") continue;
    any_assistant = true;
    QS_CHECK(i > 0, "messages[0] is an assistant message: a conversation starts with a system or user message");
    nlohmann::json before = nlohmann::json::array();
    for (size_t k = 0; k < i; ++k) before.push_back(messages[k]);
    nlohmann::json upto = before;
    upto.push_back(messages[i]);
    const std::vector<int32_t> prefix = chat.render(before).ids;  // with the generation prompt
    const std::vector<int32_t> turn = chat.render(upto, whole).ids;
    // The turn's tokens must sit at the same place in the whole conversation.
    if (turn.size() > ex.ids.size() || !std::equal(turn.begin(), turn.end(), ex.ids.begin())) continue;
    size_t start = 0;
    while (start < prefix.size() && start < turn.size() && prefix[start] == turn[start]) ++start;
    for (size_t t = start; t < turn.size(); ++t) ex.target[t] = 1;
  }
  QS_CHECK(any_assistant, "the conversation has no assistant message to learn");
  QS_CHECK(ex.targets() > 0, "no assistant tokens to learn (the chat template renders the assistant turns ",
           "differently in context)");
  return ex;
}

SftData load_sft_jsonl(const std::string& path, const ChatFormatter& chat, int64_t max_len) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(ErrorKind::NotFound, "cannot open ", path);
  SftData d;
  std::string line;
  int64_t ln = 0;
  while (std::getline(in, line)) {
    ++ln;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      fail(ErrorKind::Format, path, ":", ln, ": invalid JSON (", e.what(), ")");
    }
    if (!j.is_object() || !j.contains("messages"))
      fail(ErrorKind::Format, path, ":", ln, ": expected an object with \"messages\" (chat data: ",
           "{\"messages\":[{\"role\":\"user\",\"content\":...},{\"role\":\"assistant\",\"content\":...}]})");
    ++d.lines;
    SftExample ex;
    try {
      ex = tokenize_conversation(chat, j["messages"]);
    } catch (const Error& e) {
      fail(ErrorKind::Format, path, ":", ln, ": ", e.what());
    }
    if (max_len > 0 && int64_t(ex.ids.size()) > max_len) {
      ++d.too_long;
      continue;
    }
    d.tokens += int64_t(ex.ids.size());
    d.targets += ex.targets();
    d.examples.push_back(std::move(ex));
  }
  if (in.bad()) fail(ErrorKind::Io, "error reading ", path);
  if (d.lines == 0) fail(ErrorKind::Format, path, " holds no conversations");
  if (d.examples.empty())
    fail(ErrorKind::Format, path, ": every conversation is longer than ", max_len, " tokens (the model's context)");
  return d;
}

nlohmann::ordered_json FinetuneSummary::to_json() const {
  return {{"steps", steps},
          {"first_step", first_step},
          {"examples", examples},
          {"skipped_too_long", skipped_too_long},
          {"train_tokens", train_tokens},
          {"final_loss", final_loss},
          {"tokens_per_s", tokens_per_s},
          {"seconds", seconds},
          {"stopped_early", stopped_early},
          {"out", out_dir},
          {"checkpoint", checkpoint}};
}


FinetuneSummary run_finetune(const std::string& what, TrainModel<float>& model, const std::string& tokenizer_dir,
                             const SftData& data, const FinetuneOptions& o, nlohmann::json settings,
                             const TeacherFn& teacher, int64_t teacher_k) {
  QS_CHECK(!data.examples.empty(), what, ": no training examples");
  QS_CHECK(o.batch >= 1, "--batch must be at least 1");
  QS_CHECK(o.micro_batch >= 0, "--micro-batch must be >= 0");
  QS_CHECK(o.epochs > 0 || o.steps > 0, "give --steps or a positive --epochs");
  QS_CHECK(!teacher || teacher_k >= 1, "logit distillation needs top-k >= 1");
  const int64_t N = int64_t(data.examples.size());
  const int64_t steps = o.steps > 0 ? o.steps : std::max<int64_t>(1, int64_t(std::ceil(o.epochs * double(N) / double(o.batch))));
  const int64_t micro = o.micro_batch > 0 ? std::min(o.micro_batch, o.batch) : o.batch;
  int64_t longest = 0;
  for (const SftExample& e : data.examples) longest = std::max<int64_t>(longest, int64_t(e.ids.size()));
  const int64_t S_max = longest - 1;
  QS_CHECK(S_max >= 1, what, ": every example has a single token");
  settings["batch"] = o.batch;
  settings["micro_batch"] = micro;
  settings["seed"] = o.seed;
  settings["examples"] = N;
  settings["lr"] = o.lr;
  settings["precision"] = train_precision_name(o.precision);
  TrainLoop loop(what, model,
                 loop_options_from(o, steps, o.min_lr_ratio, tokenizer_dir, settings, {"batch", "seed", "examples", "threads"}));

  TrainLossOptions lo;
  lo.precision = o.precision;
  lo.mtp_lambda = o.mtp_lambda;
  lo.aux_alpha = 0;
  TrainStep<float> step(model, {micro, S_max}, lo);

  // The order of examples: epoch e visits a permutation seeded by (seed, e); step s takes the
  // examples s*batch .. s*batch + batch - 1 of the endless sequence of epochs.
  int64_t perm_epoch = -1;
  std::vector<int64_t> perm(static_cast<size_t>(N));
  auto example_at = [&](int64_t g) -> const SftExample& {
    const int64_t e = g / N;
    if (e != perm_epoch) {
      std::iota(perm.begin(), perm.end(), 0);
      Rng rng(derive_seed(o.seed, 2, uint64_t(e)));
      for (int64_t i = N - 1; i > 0; --i) std::swap(perm[size_t(i)], perm[size_t(rng.below(uint64_t(i + 1)))]);
      perm_epoch = e;
    }
    return data.examples[size_t(perm[size_t(g % N)])];
  };

  FinetuneSummary sum;
  sum.first_step = loop.step();
  sum.examples = N;
  sum.skipped_too_long = data.too_long;
  sum.out_dir = o.out_dir;
  std::vector<int32_t> inputs, targets, lengths, t_ids;
  std::vector<double> weights, t_lp;
  double session_tokens = 0, session_time = 0;
  Stopwatch total;
  while (!loop.done()) {
    Stopwatch sw;
    const int64_t s = loop.step();
    std::vector<const SftExample*> rows;
    int64_t n_targets = 0;
    for (int64_t j = 0; j < o.batch; ++j) {
      rows.push_back(&example_at(s * o.batch + j));
      n_targets += rows.back()->targets();
    }
    model.zero_grad();
    StepReport rep;
    double objective = 0, ce = 0, seq_tokens = 0;
    for (int64_t m0 = 0; m0 < o.batch; m0 += micro) {
      const std::vector<const SftExample*> mb(rows.begin() + m0, rows.begin() + std::min(o.batch, m0 + micro));
      const int64_t B = int64_t(mb.size());
      int64_t S = 1;
      for (const SftExample* e : mb) S = std::max<int64_t>(S, int64_t(e->ids.size()) - 1);
      inputs.assign(size_t(B * S), 0);
      targets.assign(size_t(B * S), -1);
      weights.assign(size_t(B * S), 0.0);
      lengths.assign(size_t(B), 0);
      for (int64_t b = 0; b < B; ++b) {
        const SftExample& e = *mb[size_t(b)];
        const int64_t L = int64_t(e.ids.size()) - 1;
        lengths[size_t(b)] = int32_t(L);
        seq_tokens += double(L);
        for (int64_t t = 0; t < L; ++t) {
          inputs[size_t(b * S + t)] = e.ids[size_t(t)];
          if (e.target[size_t(t + 1)]) {
            targets[size_t(b * S + t)] = e.ids[size_t(t + 1)];
            weights[size_t(b * S + t)] = 1.0 / double(n_targets);
          }
        }
      }
      TokenBatch tb{B, S, inputs, targets, weights, lengths};
      StepRequest req;
      if (teacher) {
        teacher(mb, S, teacher_k, t_ids, t_lp);
        QS_ASSERT(int64_t(t_ids.size()) == B * S * teacher_k && int64_t(t_lp.size()) == B * S * teacher_k);
        req.loss = Loss::Distill;
        req.teacher.k = teacher_k;
        req.teacher.ids = t_ids;
        req.teacher.logprobs = t_lp;
      }
      const StepResult r = step.run(tb, req);
      objective += r.main;
      ce += r.ce;
      accumulate_expert_load(rep.load, r.expert_load);
    }
    if (!std::isfinite(objective))
      fail(ErrorKind::Internal, what, ": the loss is not finite at step ", s + 1, "; lower --lr");
    const double dt = sw.elapsed();
    session_tokens += seq_tokens;
    session_time += dt;
    rep.tokens = n_targets;
    rep.metrics["loss"] = objective;
    if (teacher) rep.metrics["ce"] = ce;
    rep.metrics["tokens_per_s"] = seq_tokens / dt;
    rep.metrics["epoch"] = double((s + 1) * o.batch) / double(N);
    char line[160];
    if (teacher)
      std::snprintf(line, sizeof line, "kl %.4f | ce %.4f | %.0f tok/s", objective, ce, session_tokens / session_time);
    else
      std::snprintf(line, sizeof line, "loss %.4f | %.0f tok/s", objective, session_tokens / session_time);
    rep.progress = line;
    sum.final_loss = objective;
    loop.finish_step(std::move(rep), dt);
  }
  loop.progress().finish();
  sum.steps = loop.step();
  sum.train_tokens = loop.tokens_seen();
  sum.tokens_per_s = session_time > 0 ? session_tokens / session_time : 0;
  sum.seconds = total.elapsed();
  sum.stopped_early = loop.stopped_early();
  sum.checkpoint = loop.last_checkpoint();
  return sum;
}

FinetuneSummary run_sft(const std::string& model_dir, const std::string& data_path, const FinetuneOptions& o) {
  const std::unique_ptr<Tokenizer> tok = load_chat_tokenizer(model_dir);
  const ChatFormatter chat(*tok);
  const ModelConfig cfg = load_model_config(model_dir);
  const int64_t max_len = o.max_len > 0 ? o.max_len : cfg.max_position_embeddings;
  const SftData data = load_sft_jsonl(data_path, chat, max_len);
  TrainModel<float> model(cfg);
  load_hf_weights(TensorStore::open_dir(model_dir), model);
  nlohmann::json settings = {{"model", model_dir}, {"data", data_path}};
  return run_finetune("sft", model, model_dir, data, o, settings);
}

}  // namespace qs::rl
