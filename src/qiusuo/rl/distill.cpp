#include "qiusuo/rl/distill.h"

#include <fstream>
#include <limits>

#include "qiusuo/core/error.h"
#include "qiusuo/io/file.h"
#include "qiusuo/io/safetensors.h"
#include "qiusuo/rl/policy.h"
#include "qiusuo/train/trainer.h"

namespace qs::rl {

DistillMode parse_distill_mode(const std::string& s) {
  if (s == "sequence") return DistillMode::Sequence;
  if (s == "logit") return DistillMode::Logit;
  fail("--mode must be sequence or logit, got '", s, "'");
}

nlohmann::ordered_json DistillSummary::to_json() const {
  nlohmann::ordered_json j = train.to_json();
  j["traces"] = traces;
  if (traces_sampled >= 0) j["traces_sampled"] = traces_sampled;
  return j;
}

namespace {

nlohmann::json read_json(const std::string& path) {
  try {
    return nlohmann::json::parse(read_text_file(path));
  } catch (const nlohmann::json::exception& e) {
    fail(ErrorKind::Format, path, ": invalid JSON (", e.what(), ")");
  }
}

// The parts of tokenizer.json that decide which id a text gets.
nlohmann::json tokenizer_identity(const std::string& dir) {
  const nlohmann::json j = read_json(path_join(dir, "tokenizer.json"));
  return {j.value("model", nlohmann::json()), j.value("added_tokens", nlohmann::json()),
          j.value("pre_tokenizer", nlohmann::json())};
}

// "chat" for {"messages": ...} lines, "tasks" for {"prompt": ...} lines (the first non-blank line).
std::string data_kind(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(ErrorKind::NotFound, "cannot open ", path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_object() && j.contains("messages")) return "chat";
    if (j.is_object() && j.contains("prompt")) return "tasks";
    fail(ErrorKind::Format, path, ": the first line is neither chat data ({\"messages\":[...]}) nor a task ",
         "({\"prompt\",\"answer\",\"match\"})");
  }
  fail(ErrorKind::Format, path, " is empty");
}

}  // namespace

std::unique_ptr<TrainModel<float>> build_student(const std::string& student, const std::string& teacher_dir,
                                                 uint64_t seed, std::string* tokenizer_dir) {
  const ModelConfig tcfg = load_model_config(teacher_dir);
  const bool has_weights = is_directory(student) && (file_exists(path_join(student, "model.safetensors")) ||
                                                     file_exists(path_join(student, "model.safetensors.index.json")));
  if (has_weights) {
    const ModelConfig scfg = load_model_config(student);
    if (scfg.vocab_size != tcfg.vocab_size)
      fail("the student's vocabulary (", scfg.vocab_size, " ids) differs from the teacher's (", tcfg.vocab_size,
           "): distillation needs the same tokenizer");
    if (file_exists(path_join(student, "tokenizer.json")) &&
        tokenizer_identity(student) != tokenizer_identity(teacher_dir))
      fail("the student's tokenizer (", student, ") differs from the teacher's (", teacher_dir,
           "): distillation needs the same tokenizer");
    auto m = std::make_unique<TrainModel<float>>(scfg);
    load_hf_weights(TensorStore::open_dir(student), *m);
    *tokenizer_dir = file_exists(path_join(student, "tokenizer.json")) ? student : teacher_dir;
    return m;
  }
  // A config: a file, a directory with config.json (no weights), or a preset name.
  nlohmann::json cj;
  if (is_directory(student)) cj = read_json(path_join(student, "config.json"));
  else if (file_exists(student)) cj = read_json(student);
  else cj = train_preset(student);  // qs::Error naming the known presets
  cj.erase("train");
  cj["vocab_size"] = tcfg.vocab_size;
  if (!tcfg.eos_token_ids.empty()) cj["eos_token_id"] = tcfg.eos_token_ids.size() == 1 ? nlohmann::json(tcfg.eos_token_ids[0])
                                                                                       : nlohmann::json(tcfg.eos_token_ids);
  if (tcfg.bos_token_id >= 0) cj["bos_token_id"] = tcfg.bos_token_id;
  const ModelConfig scfg = parse_model_config(cj, student);
  auto m = std::make_unique<TrainModel<float>>(scfg);
  m->init_random(seed);
  *tokenizer_dir = teacher_dir;
  return m;
}

DistillSummary run_distill(const std::string& teacher_dir, const std::string& student, const std::string& data,
                           const DistillOptions& o) {
  QS_CHECK(!data.empty(), "distill needs --data: chat JSONL of the teacher's traces (`qiusuo sample --keep-correct`) ",
           "or task JSONL (the teacher is then sampled on the problems)");
  QS_CHECK(o.top_k >= 1, "--top-k must be at least 1");
  const std::unique_ptr<Tokenizer> tok = load_chat_tokenizer(teacher_dir);
  const ChatFormatter chat(*tok);
  std::unique_ptr<Model> teacher;
  std::unique_ptr<Engine> engine;
  auto teacher_engine = [&]() -> Engine& {
    if (!engine) {
      teacher = Model::load(teacher_dir, false);
      engine = std::make_unique<Engine>(*teacher, tok.get(),
                                        batch_engine_options(o.max_seqs, model_context(*teacher), o.teacher_compute));
    }
    return *engine;
  };
  std::string tokenizer_dir;
  std::unique_ptr<TrainModel<float>> model = build_student(student, teacher_dir, o.init_seed, &tokenizer_dir);
  make_dirs(o.train.out_dir);

  DistillSummary sum;
  sum.traces = data;
  if (data_kind(data) == "tasks") {
    // Rejection-sample the teacher once; a resumed run reuses the traces.
    sum.traces = path_join(o.train.out_dir, "teacher_traces.jsonl");
    if (!(o.train.resume || !o.train.resume_from.empty()) || !file_exists(sum.traces)) {
      SampleOptions so = o.sampling;
      so.keep_correct = true;
      so.journal = sum.traces + ".partial";
      so.resume = o.train.resume;
      const SampleResult r = rejection_sample(teacher_engine(), chat, load_task_jsonl(data), so);
      if (r.kept == 0)
        fail("the teacher solved none of the ", r.problems, " problems in ", so.n,
             " samples each: no traces to distill (accuracy ", double(r.correct) / double(r.samples), ")");
      write_jsonl(sum.traces, r.lines);
      std::remove(so.journal.c_str());
      sum.traces_sampled = r.kept;
    }
  }
  const int64_t context = model->config().max_position_embeddings;
  const SftData d = load_sft_jsonl(sum.traces, chat, o.train.max_len > 0 ? std::min(o.train.max_len, context) : context);
  nlohmann::json settings = {{"teacher", teacher_dir},
                             {"student", student},
                             {"data", data},
                             {"mode", o.mode == DistillMode::Logit ? "logit" : "sequence"},
                             {"top_k", o.top_k}};
  if (o.mode == DistillMode::Sequence) {
    sum.train = run_finetune("distill", *model, tokenizer_dir, d, o.train, settings);
    return sum;
  }
  // Logit distillation: the teacher's top-k distribution at every position, by teacher forcing.
  Engine& eng = teacher_engine();
  TeacherFn fn = [&](const std::vector<const SftExample*>& rows, int64_t S, int64_t k, std::vector<int32_t>& ids,
                     std::vector<double>& lps) {
    std::vector<ScoreRequest> reqs;
    for (const SftExample* e : rows)
      reqs.push_back({{e->ids[0]}, std::vector<int32_t>(e->ids.begin() + 1, e->ids.end()), int(k)});
    const std::vector<ScoreResult> res = eng.score(std::move(reqs));
    ids.assign(size_t(int64_t(rows.size()) * S * k), 0);
    lps.assign(ids.size(), -std::numeric_limits<double>::infinity());
    for (size_t b = 0; b < rows.size(); ++b) {
      const int64_t L = int64_t(rows[b]->ids.size()) - 1;
      for (int64_t t = 0; t < S; ++t) {
        const size_t at = size_t((int64_t(b) * S + t) * k);
        if (t >= L || int64_t(res[b].top_logprobs[size_t(t)].size()) < k) {
          for (int64_t j = 0; j < k; ++j) ids[at + size_t(j)] = int32_t(j);  // unused positions: distinct ids
          continue;
        }
        for (int64_t j = 0; j < k; ++j) {
          ids[at + size_t(j)] = res[b].top_logprobs[size_t(t)][size_t(j)].id;
          lps[at + size_t(j)] = res[b].top_logprobs[size_t(t)][size_t(j)].logprob;
        }
      }
    }
  };
  QS_CHECK(o.top_k <= model->config().vocab_size, "--top-k (", o.top_k, ") exceeds the vocabulary (",
           model->config().vocab_size, ")");
  sum.train = run_finetune("distill", *model, tokenizer_dir, d, o.train, settings, fn, o.top_k);
  return sum;
}

}  // namespace qs::rl
