#include "qiusuo/rl/r1_data.h"

#include <cstdio>
#include <set>

#include "qiusuo/core/error.h"
#include "qiusuo/core/rng.h"
#include "qiusuo/io/file.h"
#include "qiusuo/tokenizer/chat_template.h"
#include "qiusuo/tokenizer/pre_tokenizer.h"
#include "qiusuo/tokenizer/trainer.h"
#include "qiusuo/train/data.h"
#include "qiusuo/train/prepare.h"

namespace qs::rl {

const std::string& r1_zero_chat_template() {
  // One line: whitespace outside tags would be rendered.
  static const std::string k =
      "{%- if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}"
      "{{- bos_token }}"
      "{%- for message in messages %}"
      "{%- if message['role'] == 'system' %}{{ message['content'] + '\n' }}"
      "{%- elif message['role'] == 'user' %}{{ 'User: ' + message['content'] + '\n' }}"
      "{%- elif message['role'] == 'assistant' %}{{ 'Assistant: ' + message['content'] + eos_token }}"
      "{%- endif %}"
      "{%- endfor %}"
      "{%- if add_generation_prompt %}{{ 'Assistant: <think>\n' }}{% endif %}";
  return k;
}

nlohmann::json r1_pre_tokenizer() {
  nlohmann::json j = PreTokenizer::deepseek_v3_json();
  // Stage 1 of DeepSeek-V3 isolates runs of up to three digits; here each digit alone.
  j["pretokenizers"][0]["pattern"]["Regex"] = "\\p{N}";
  return j;
}

namespace {

nlohmann::json knobs_json(const ArithmeticKnobs& k) {
  return {{"min_digits", k.min_digits}, {"max_digits", k.max_digits}, {"ops", k.ops}, {"operands", k.operands},
          {"allow_negative", k.allow_negative}};
}
void knobs_from(const nlohmann::json& j, ArithmeticKnobs& k) {
  if (!j.is_object()) fail("recipe: arithmetic knobs must be an object");
  k.min_digits = j.value("min_digits", k.min_digits);
  k.max_digits = j.value("max_digits", k.max_digits);
  k.ops = j.value("ops", k.ops);
  k.operands = j.value("operands", k.operands);
  k.allow_negative = j.value("allow_negative", k.allow_negative);
}

bool complete(const std::string& path) { return file_exists(path); }

}  // namespace

nlohmann::json recipe_to_json(const R1DataRecipe& r) {
  nlohmann::json parts = nlohmann::json::array();
  for (const CorpusPart& p : r.corpus) {
    nlohmann::json st = nlohmann::json::object();
    for (const auto& [s, w] : p.styles) st[s] = w;
    parts.push_back({{"name", p.name}, {"knobs", knobs_json(p.knobs)}, {"n", p.n}, {"styles", st}});
  }
  return {{"corpus", parts},         {"rl_knobs", knobs_json(r.rl_knobs)}, {"rl_problems", r.rl_problems},
          {"test_problems", r.test_problems}, {"vocab_size", r.vocab_size}, {"corpus_files", r.corpus_files},
          {"corpus_excludes_rl", r.corpus_excludes_rl}};
}

void recipe_from_json(const nlohmann::json& j, R1DataRecipe& r) {
  if (!j.is_object()) fail("recipe: expected an object");
  if (j.contains("corpus")) {
    if (!j["corpus"].is_array()) fail("recipe: corpus must be an array");
    r.corpus.clear();
    for (const auto& pj : j["corpus"]) {
      CorpusPart p;
      p.name = pj.value("name", std::string("part") + std::to_string(r.corpus.size()));
      if (pj.contains("knobs")) knobs_from(pj["knobs"], p.knobs);
      p.n = pj.value("n", int64_t(0));
      if (pj.contains("styles")) {
        if (!pj["styles"].is_object()) fail("recipe: corpus styles must be an object {style: weight}");
        for (const auto& [s, w] : pj["styles"].items()) p.styles.push_back({s, w.get<double>()});
      }
      r.corpus.push_back(std::move(p));
    }
  }
  if (j.contains("rl_knobs")) knobs_from(j["rl_knobs"], r.rl_knobs);
  r.rl_problems = j.value("rl_problems", r.rl_problems);
  r.test_problems = j.value("test_problems", r.test_problems);
  r.vocab_size = j.value("vocab_size", r.vocab_size);
  r.corpus_files = j.value("corpus_files", r.corpus_files);
  r.corpus_excludes_rl = j.value("corpus_excludes_rl", r.corpus_excludes_rl);
}

R1Data build_r1_data(const R1DataRecipe& recipe, const std::string& dir, uint64_t seed, bool verbose) {
  QS_CHECK(!recipe.corpus.empty(), "recipe: the corpus has no parts");
  QS_CHECK(recipe.corpus_files >= 2, "recipe: corpus_files must be at least 2");
  R1Data d;
  d.dir = dir;
  const std::string tasks = path_join(dir, "tasks");
  make_dirs(tasks);
  d.rl_tasks = path_join(tasks, "rl.jsonl");
  d.test_tasks = path_join(tasks, "test.jsonl");
  d.test_b_tasks = path_join(tasks, "test_b.jsonl");
  d.tokenizer = path_join(dir, "tokenizer");
  d.dataset = path_join(dir, "dataset");

  // Tasks: RL training problems and two disjoint test sets of the same split and knobs.
  if (!complete(d.test_b_tasks)) {
    GenerateOptions g;
    g.task = TaskKind::Arithmetic;
    g.arithmetic = recipe.rl_knobs;
    g.split = Split::Train;
    g.n = recipe.rl_problems;
    g.seed = seed * 1000 + 1;
    write_task_jsonl(d.rl_tasks, generate_problems(g));
    g.split = Split::Test;
    g.n = 2 * recipe.test_problems;
    g.seed = seed * 1000 + 2;
    const std::vector<Problem> test = generate_problems(g);  // distinct problems
    write_task_jsonl(d.test_tasks, std::vector<Problem>(test.begin(), test.begin() + recipe.test_problems));
    write_task_jsonl(d.test_b_tasks, std::vector<Problem>(test.begin() + recipe.test_problems, test.end()));
  }

  // Corpus: conversations rendered with the template, spread over corpus_files documents.
  const std::string corpus = path_join(dir, "corpus");
  const std::string corpus_done = path_join(corpus, "done.json");
  if (!complete(corpus_done)) {
    make_dirs(corpus);
    const auto& sp = default_special_tokens();
    const nlohmann::json ctx = {{"bos_token", sp[0]}, {"eos_token", sp[1]}, {"pad_token", sp[2]}};
    std::vector<std::string> files(size_t(recipe.corpus_files));
    std::set<std::string> rl_forms;
    if (recipe.corpus_excludes_rl)
      for (const Problem& p : load_task_jsonl(d.rl_tasks)) rl_forms.insert(canonical_form(p));
    Rng rng(seed * 1000 + 3);
    int64_t count = 0, bytes = 0;
    for (size_t pi = 0; pi < recipe.corpus.size(); ++pi) {
      const CorpusPart& part = recipe.corpus[pi];
      QS_CHECK(part.n > 0, "recipe: corpus part '", part.name, "' has n = ", part.n);
      QS_CHECK(!part.styles.empty(), "recipe: corpus part '", part.name, "' has no styles");
      double total_w = 0;
      for (const auto& [s, w] : part.styles) {
        QS_CHECK(w >= 0, "recipe: negative style weight");
        total_w += w;
      }
      QS_CHECK(total_w > 0, "recipe: corpus part '", part.name, "' has no positive style weight");
      GenerateOptions g;
      g.task = TaskKind::Arithmetic;
      g.arithmetic = part.knobs;
      g.split = Split::Train;
      g.n = part.n;
      g.seed = seed * 1000 + 10 + pi;
      for (const Problem& p : generate_problems(g)) {
        if (rl_forms.count(canonical_form(p))) continue;
        double u = rng.uniform() * total_w;
        std::string style = part.styles.back().first;
        for (const auto& [s, w] : part.styles) {
          if (u < w) {
            style = s;
            break;
          }
          u -= w;
        }
        const WorkedSolution ws = worked_solution(p, style, rng);
        const nlohmann::json msgs = nlohmann::json::array(
            {{{"role", "user"}, {"content", p.prompt}}, {{"role", "assistant"}, {"content", format_response(ws)}}});
        std::string text = render_chat(r1_zero_chat_template(), msgs, false, ctx);
        bytes += int64_t(text.size());
        files[size_t(rng.below(files.size()))] += text;
        ++count;
      }
    }
    for (size_t f = 0; f < files.size(); ++f) {
      char name[32];
      std::snprintf(name, sizeof name, "part-%03zu.txt", f);
      write_text_file_atomic(path_join(corpus, name), files[f]);
    }
    write_text_file_atomic(corpus_done, nlohmann::json{{"problems", count}, {"bytes", bytes}}.dump() + "\n");
  }
  {
    const nlohmann::json cd = nlohmann::json::parse(read_text_file(corpus_done));
    d.corpus_problems = cd.value("problems", int64_t(0));
    d.corpus_bytes = cd.value("bytes", int64_t(0));
  }

  // Tokenizer trained on the corpus, with the R1-Zero template.
  if (!complete(path_join(d.tokenizer, "tokenizer_config.json"))) {
    const auto& sp = default_special_tokens();
    BpeTrainerOptions bo;
    bo.vocab_size = recipe.vocab_size;
    bo.special_tokens = sp;
    bo.bos_token = sp[0];
    bo.eos_token = sp[1];
    bo.pad_token = sp[2];
    bo.add_bos_token = false;  // the template writes BOS itself
    bo.chat_template = r1_zero_chat_template();
    bo.pre_tokenizer = r1_pre_tokenizer();
    BpeTrainer trainer(bo);
    for (int64_t f = 0; f < recipe.corpus_files; ++f) {
      char name[32];
      std::snprintf(name, sizeof name, "part-%03lld.txt", (long long)f);
      trainer.feed_file(path_join(corpus, name));
    }
    trainer.train().save(d.tokenizer);
  }

  // Dataset.
  if (!is_prepared_dataset(d.dataset)) {
    PrepareOptions po;
    po.inputs = {corpus};
    po.include = {"*.txt"};
    po.tokenizer_dir = d.tokenizer;
    po.out_dir = d.dataset;
    po.val_fraction = 0.03;
    po.seed = seed;
    po.verbose = verbose;
    prepare_dataset(po);
  }
  const DatasetMeta meta = read_dataset_meta(d.dataset);
  d.train_tokens = int64_t(meta.train_tokens);
  d.val_tokens = int64_t(meta.val_tokens);
  d.vocab_size = int32_t(meta.vocab_size);
  return d;
}

}  // namespace qs::rl
