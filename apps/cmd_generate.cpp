// qiusuo generate | chat | score
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "dist_cli.h"
#include "qiusuo/core/error.h"
#include "qiusuo/infer/chat.h"
#include "qiusuo/infer/engine.h"
#include "qiusuo/infer/reasoning.h"
#include "qiusuo/io/file.h"

namespace qs::cli {
namespace {

struct GenOpts {
  std::string model, tokenizer, prompt, ids, jsonl, system, precision = "bf16", speculative = "none", kv_cache = "auto";
  bool chat_template = false, json = false, show_stats = true, expert_parallel = false, mmap = false;
  int threads = 0;
  int64_t context = 4096, completions = 1, max_seqs = 64;
  int top_logprobs = 0;
  SamplingParams sp;
};

void add_sampling_options(CLI::App* c, GenOpts& o) {
  c->add_option("--max-tokens,-n", o.sp.max_tokens, "Tokens to generate at most")->capture_default_str();
  c->add_option("--temperature,-t", o.sp.temperature, "Sampling temperature (0 = greedy)")->capture_default_str();
  c->add_option("--top-k", o.sp.top_k, "Keep the k most likely tokens (0 = off)")->capture_default_str();
  c->add_option("--top-p", o.sp.top_p, "Nucleus sampling mass (1 = off)")->capture_default_str();
  c->add_option("--min-p", o.sp.min_p, "Drop tokens below min_p x the top probability (0 = off)")->capture_default_str();
  c->add_option("--repetition-penalty", o.sp.repetition_penalty, "Penalty for tokens already seen (1 = off)")
      ->capture_default_str();
  c->add_option("--presence-penalty", o.sp.presence_penalty, "OpenAI presence penalty")->capture_default_str();
  c->add_option("--frequency-penalty", o.sp.frequency_penalty, "OpenAI frequency penalty")->capture_default_str();
  c->add_option("--stop", o.sp.stop, "Stop string (repeatable); not included in the output");
  c->add_option("--seed", o.sp.seed, "Random seed (same seed, same output)")->capture_default_str();
  c->add_option("--context", o.context, "Longest sequence (prompt + generated) in tokens; the KV cache holds at least this")
      ->capture_default_str();
  c->add_option("--precision", o.precision,
                "Matrix products: bf16 (default: activations rounded to BF16, F32 accumulation, prefill and\n"
                "decode; over a bf16 or fp8 cache, absorbed attention too: the query and the probabilities\n"
                "rounded to BF16, bf16 rows read in place, fp8 rows dequantized to BF16) or f32 (exact\n"
                "float32 from the stored weights). Either way a token's result does not depend on what else\n"
                "is batched with it. Error: docs/benchmarks.md")
      ->capture_default_str();
  add_kv_cache_option(c, o.kv_cache);
  c->add_option("--threads", o.threads, "Threads (0 = all cores)");
  add_speculative_option(c, o.speculative);
}

// --speculative, resolved (auto: choose_speculation, said on stderr).
bool speculative_of(const GenOpts& o) {
  const SpeculativeMode mode = speculative_mode_of(o.speculative);
  const SpeculationChoice c = resolve_speculation(mode, o.model);
  if (mode == SpeculativeMode::Auto)
    std::fprintf(stderr, "speculative decoding: %s (auto: %s)\n", c.on ? "mtp" : "none", c.why.c_str());
  return c.on;
}

std::string tokenizer_dir(const GenOpts& o) {
  if (!o.tokenizer.empty()) return o.tokenizer;
  if (file_exists(path_join(o.model, "tokenizer.json"))) return o.model;
  return {};
}

Compute precision_of(const std::string& p) {
  if (p == "bf16") return Compute::BF16;
  if (p == "f32") return Compute::F32;
  fail("--precision must be bf16 or f32, got '", p, "'");
}

std::vector<int32_t> parse_ids(const std::string& s, const std::string& what) {
  std::vector<int32_t> out;
  std::string num;
  for (char ch : s + ",") {
    if (ch == ',' || ch == ' ') {
      if (!num.empty()) {
        try {
          out.push_back(int32_t(std::stol(num)));
        } catch (...) {
          fail(what, ": '", num, "' is not a token id");
        }
      }
      num.clear();
    } else if (ch >= '0' && ch <= '9') {
      num.push_back(ch);
    } else {
      fail(what, ": expected comma-separated integers");
    }
  }
  return out;
}

// One prompt to generate from: its ids, how it was rendered, and per-prompt overrides.
struct PromptItem {
  std::vector<int32_t> ids;
  ChatPrompt chat;  // text / reasoning flag when rendered from a chat template
  SamplingParams sp;
};

PromptItem make_prompt(const GenOpts& o, const Tokenizer* tok, const std::string* text, const std::vector<int32_t>* ids) {
  PromptItem p;
  p.sp = o.sp;
  if (ids) {
    p.ids = *ids;
  } else {
    if (!tok) fail(ErrorKind::NotFound, "no tokenizer.json in ", o.model, ": pass --tokenizer DIR, or token ids");
    if (o.chat_template) {
      nlohmann::json msgs = nlohmann::json::array();
      if (!o.system.empty()) msgs.push_back({{"role", "system"}, {"content", o.system}});
      msgs.push_back({{"role", "user"}, {"content", *text}});
      p.chat = ChatFormatter(*tok).render(msgs);
      p.ids = p.chat.ids;
    } else {
      p.ids = tok->encode(*text, true);
    }
  }
  if (p.ids.empty()) fail("the prompt is empty");
  return p;
}

// --jsonl: {"prompt": "..."} or {"ids": [...]}, optional max_tokens, temperature, seed.
std::vector<PromptItem> read_jsonl_prompts(const GenOpts& o, const Tokenizer* tok) {
  std::ifstream in(o.jsonl);
  if (!in) fail(ErrorKind::NotFound, "--jsonl: cannot open ", o.jsonl);
  std::vector<PromptItem> out;
  std::string line;
  int64_t ln = 0;
  while (std::getline(in, line)) {
    ++ln;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      fail(ErrorKind::Format, o.jsonl, ":", ln, ": invalid JSON (", e.what(), ")");
    }
    auto where = [&] { return o.jsonl + ":" + std::to_string(ln); };
    if (!j.is_object()) fail(ErrorKind::Format, where(), ": expected an object");
    PromptItem p;
    try {
      if (j.contains("ids")) {
        if (!j["ids"].is_array()) fail(ErrorKind::Format, where(), ": \"ids\" must be an array of integers");
        std::vector<int32_t> ids;
        for (const auto& v : j["ids"]) {
          if (!v.is_number_integer()) fail(ErrorKind::Format, where(), ": \"ids\" must be an array of integers");
          ids.push_back(int32_t(v.get<int64_t>()));
        }
        p = make_prompt(o, tok, nullptr, &ids);
      } else if (j.contains("prompt") && j["prompt"].is_string()) {
        const std::string text = j["prompt"];
        p = make_prompt(o, tok, &text, nullptr);
      } else {
        fail(ErrorKind::Format, where(), ": each line needs \"prompt\" (string) or \"ids\" (array)");
      }
      if (j.contains("max_tokens")) {
        if (!j["max_tokens"].is_number_integer()) fail(ErrorKind::Format, where(), ": max_tokens must be an integer");
        p.sp.max_tokens = j["max_tokens"];
      }
      if (j.contains("temperature")) {
        if (!j["temperature"].is_number()) fail(ErrorKind::Format, where(), ": temperature must be a number");
        p.sp.temperature = j["temperature"];
      }
      if (j.contains("seed")) {
        if (!j["seed"].is_number_unsigned()) fail(ErrorKind::Format, where(), ": seed must be a non-negative integer");
        p.sp.seed = j["seed"];
      }
      p.sp.validate();
    } catch (const Error& e) {
      if (std::string(e.what()).rfind(o.jsonl, 0) == 0) throw;
      fail(e.kind(), where(), ": ", e.what());
    }
    out.push_back(std::move(p));
  }
  if (out.empty()) fail(ErrorKind::Format, "--jsonl: ", o.jsonl, " has no prompts");
  return out;
}

nlohmann::json top_json(const std::vector<TopLogprob>& top) {
  nlohmann::json a = nlohmann::json::array();
  for (const auto& t : top) a.push_back({{"id", t.id}, {"logprob", t.logprob}});
  return a;
}

void run_generate(const GenOpts& o) {
  apply_threads(o.threads);
  QS_CHECK(o.completions >= 1 && o.completions <= 4096, "--completions must be in [1, 4096]");
  QS_CHECK(o.top_logprobs >= 0, "--logprobs must be >= 0");
  const bool spec = speculative_of(o);
  InferenceModel model("generate", o.model, /*with_mtp=*/spec, o.expert_parallel, o.mmap);
  if (model.serving_done()) return;  // a rank that served its experts to rank 0
  std::unique_ptr<Tokenizer> tok;
  const std::string tdir = tokenizer_dir(o);
  if (!tdir.empty()) tok = std::make_unique<Tokenizer>(Tokenizer::load(tdir));
  std::vector<PromptItem> prompts;
  if (!o.jsonl.empty()) {
    prompts = read_jsonl_prompts(o, tok.get());
  } else if (!o.ids.empty()) {
    const auto ids = parse_ids(o.ids, "--ids");
    prompts.push_back(make_prompt(o, tok.get(), nullptr, &ids));
  } else {
    prompts.push_back(make_prompt(o, tok.get(), &o.prompt, nullptr));
  }
  // Room for every sequence at once when that is modest; otherwise the scheduler preempts.
  int64_t longest = 0, total = 0;
  for (const auto& p : prompts) {
    const int64_t need = int64_t(p.ids.size()) + std::max<int64_t>(p.sp.max_tokens, 1);
    longest = std::max(longest, need);
    total += need * o.completions;
  }
  EngineOptions eo;
  eo.max_seqs = o.max_seqs;
  eo.max_model_len = std::max(o.context, longest);
  eo.cache_tokens = std::max(eo.max_model_len, std::min<int64_t>(total + 64 * int64_t(prompts.size()), 32768));
  eo.compute = precision_of(o.precision);
  eo.kv_dtype = kv_cache_of(o.kv_cache);
  eo.speculative = spec;
  Engine engine(*model, tok.get(), eo);

  const bool stream = !o.json && prompts.size() == 1 && o.completions == 1;
  const bool tty = isatty(1);
  ReasoningSplitter split(prompts[0].chat.opens_reasoning);
  auto show = [&](const ReasoningSplitter::Out& part) {
    if (!part.reasoning.empty()) std::printf(tty ? "\033[2m%s\033[0m" : "%s", part.reasoning.c_str());
    if (!part.content.empty()) std::printf("%s", part.content.c_str());
  };
  std::vector<GenerationRequest> reqs;
  for (auto& p : prompts) {
    GenerationRequest r;
    r.prompt = p.ids;
    r.params = p.sp;
    r.n = o.completions;
    r.top_logprobs = o.top_logprobs;
    if (stream)
      r.on_event = [&](const TokenEvent& ev) {
        if (tok) show(split.push(ev.text));
        else if (ev.token >= 0) std::printf("%d ", ev.token);
        if (ev.finished && tok) show(split.flush());
        std::fflush(stdout);
        return true;
      };
    reqs.push_back(std::move(r));
  }
  const auto results = engine.generate(std::move(reqs));
  std::string first_error;
  for (size_t i = 0; i < results.size(); ++i) {
    const auto& r = results[i];
    if (r.reason == FinishReason::Error && first_error.empty()) first_error = r.error;
    const double n = double(r.tokens.size());
    const double gen_s = r.total_s - r.ttft_s;
    if (o.json) {
      nlohmann::json tops = nlohmann::json::array();
      for (size_t t = 0; t < r.tokens.size(); ++t)
        tops.push_back(t < r.top_logprobs.size() ? top_json(r.top_logprobs[t]) : nlohmann::json::array());
      nlohmann::json j = {{"index", i},
                          {"prompt_index", i / size_t(o.completions)},
                          {"tokens", r.tokens},
                          {"text", r.text},
                          {"logprobs", r.logprobs},
                          {"top_logprobs", tops},
                          {"finish_reason", finish_reason_name(r.reason)},
                          {"prompt_tokens", r.prompt_tokens},
                          {"cached_tokens", r.cached_tokens},
                          {"completion_tokens", r.tokens.size()},
                          {"ttft_s", r.ttft_s},
                          {"decode_tokens_per_s", n > 1 ? (n - 1) / gen_s : 0.0}};
      if (r.reason == FinishReason::Error) j["error"] = r.error;
      j.update(model.fields());
      if (spec) {
        j["draft_tokens"] = r.draft_tokens;
        j["accepted_draft_tokens"] = r.accepted_draft_tokens;
      }
      std::printf("%s\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    } else if (stream) {
      std::printf("\n");
    } else {
      std::printf("--- [%zu] (%s, %zu tokens) ---\n", i, finish_reason_name(r.reason), r.tokens.size());
      if (tok) std::printf("%s\n", r.text.c_str());
      else {
        for (int32_t t : r.tokens) std::printf("%d ", t);
        std::printf("\n");
      }
    }
  }
  std::fflush(stdout);
  if (!first_error.empty()) fail(first_error);
  if (o.show_stats && results.size() == 1) {
    const auto& r = results[0];
    const double n = double(r.tokens.size());
    std::string extra;
    if (spec && r.draft_tokens > 0)
      extra = " | MTP drafts " + std::to_string(r.accepted_draft_tokens) + "/" + std::to_string(r.draft_tokens) +
              " accepted";
    std::fprintf(stderr, "[%lld prompt tokens, %.0f tok/s prefill | %zu generated, %.2f tok/s | %s%s]\n",
                 (long long)r.prompt_tokens, double(r.prompt_tokens) / std::max(r.ttft_s, 1e-9), r.tokens.size(),
                 n > 1 ? (n - 1) / (r.total_s - r.ttft_s) : 0.0, finish_reason_name(r.reason), extra.c_str());
  } else if (o.show_stats) {
    const auto st = engine.stats();
    int64_t gen = 0;
    for (const auto& r : results) gen += int64_t(r.tokens.size());
    std::fprintf(stderr, "[%zu completions, %lld tokens generated in %lld steps, %lld prompt tokens from the prefix cache, %lld preemptions]\n",
                 results.size(), (long long)gen, (long long)st.steps, (long long)st.cached_tokens,
                 (long long)st.preemptions);
  }
}

void run_chat(const GenOpts& o) {
  apply_threads(o.threads);
  const bool spec = speculative_of(o);
  InferenceModel model("chat", o.model, spec, o.expert_parallel, o.mmap);
  if (model.serving_done()) return;
  const std::string tdir = tokenizer_dir(o);
  if (tdir.empty()) fail(ErrorKind::NotFound, "no tokenizer.json in ", o.model, ": pass --tokenizer DIR");
  Tokenizer tok = Tokenizer::load(tdir);
  ChatFormatter fmt(tok);
  EngineOptions eo;
  eo.max_seqs = 1;
  eo.cache_tokens = o.context;
  eo.compute = precision_of(o.precision);
  eo.kv_dtype = kv_cache_of(o.kv_cache);
  eo.speculative = spec;
  Engine engine(*model, &tok, eo);  // the prefix cache keeps earlier turns: each turn computes only what is new
  const bool tty_in = isatty(0), tty_out = isatty(1);
  nlohmann::json msgs = nlohmann::json::array();
  auto reset = [&](const std::string& system) {
    msgs = nlohmann::json::array();
    if (!system.empty()) msgs.push_back({{"role", "system"}, {"content", system}});
  };
  reset(o.system);
  if (tty_in)
    std::fprintf(stderr, "qiusuo chat: %s. Commands: /reset, /system TEXT, /exit. Reasoning is shown %s.\n",
                 o.model.c_str(), tty_out ? "dimmed" : "between [think] markers");
  std::string line;
  while (true) {
    if (tty_in) std::fprintf(stderr, "\n> ");
    if (!std::getline(std::cin, line)) break;
    if (line == "/exit" || line == "/quit") break;
    if (line == "/reset") { reset(o.system); continue; }
    if (line.rfind("/system ", 0) == 0) { reset(line.substr(8)); continue; }
    if (line.empty()) continue;
    msgs.push_back({{"role", "user"}, {"content", line}});
    const ChatPrompt prompt = fmt.render(msgs);
    GenerationRequest req;
    req.prompt = prompt.ids;
    req.params = o.sp;
    req.params.max_tokens = std::min<int64_t>(o.sp.max_tokens, engine.max_model_len() - int64_t(req.prompt.size()));
    if (req.params.max_tokens <= 0) fail("the conversation no longer fits the context (", o.context, " tokens); /reset");
    ReasoningSplitter split(prompt.opens_reasoning);
    bool in_think_shown = false;
    auto show = [&](const ReasoningSplitter::Out& p) {
      if (!p.reasoning.empty()) {
        if (tty_out) std::printf("\033[2m%s\033[0m", p.reasoning.c_str());
        else {
          if (!in_think_shown) { std::printf("[think]"); in_think_shown = true; }
          std::printf("%s", p.reasoning.c_str());
        }
      }
      if (!p.content.empty()) {
        if (!tty_out && in_think_shown) { std::printf("[/think]"); in_think_shown = false; }
        std::printf("%s", p.content.c_str());
      }
      std::fflush(stdout);
    };
    req.on_event = [&](const TokenEvent& ev) {
      show(split.push(ev.text));
      if (ev.finished) show(split.flush());
      return true;
    };
    auto res = engine.generate({std::move(req)});
    if (!tty_out && in_think_shown) std::printf("[/think]");
    std::printf("\n");
    std::fflush(stdout);
    if (res[0].reason == FinishReason::Error) fail(res[0].error);
    msgs.push_back(ChatFormatter::assistant_message(res[0].text, prompt));
  }
}

struct ScoreOpts {
  std::string model, jsonl, precision = "bf16", kv_cache = "auto";
  int top_logprobs = 0, threads = 0;
  int64_t context = 4096;
  bool expert_parallel = false, mmap = false;
};

void run_score(const ScoreOpts& o) {
  apply_threads(o.threads);
  QS_CHECK(o.top_logprobs >= 0, "--top-logprobs must be >= 0");
  InferenceModel model("score", o.model, false, o.expert_parallel, o.mmap);
  if (model.serving_done()) return;
  std::ifstream in(o.jsonl);
  if (!in) fail(ErrorKind::NotFound, "--jsonl: cannot open ", o.jsonl);
  std::vector<ScoreRequest> reqs;
  std::string line;
  int64_t ln = 0, longest = 0, total = 0;
  auto ids_of = [&](const nlohmann::json& j, const char* key) {
    const std::string where = o.jsonl + ":" + std::to_string(ln);
    if (!j.contains(key) || !j[key].is_array()) fail(ErrorKind::Format, where, ": \"", key, "\" must be an array of token ids");
    std::vector<int32_t> v;
    for (const auto& x : j[key]) {
      if (!x.is_number_integer()) fail(ErrorKind::Format, where, ": \"", key, "\" must be an array of token ids");
      const int64_t t = x.get<int64_t>();
      if (t < 0 || t >= model->config().vocab_size)
        fail(where, ": token id ", t, " is outside the vocabulary [0, ", model->config().vocab_size, ")");
      v.push_back(int32_t(t));
    }
    return v;
  };
  while (std::getline(in, line)) {
    ++ln;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      fail(ErrorKind::Format, o.jsonl, ":", ln, ": invalid JSON (", e.what(), ")");
    }
    if (!j.is_object()) fail(ErrorKind::Format, o.jsonl, ":", ln, ": expected an object");
    ScoreRequest r;
    r.prompt = ids_of(j, "prompt_ids");
    r.completion = ids_of(j, "completion_ids");
    if (r.prompt.empty()) fail(ErrorKind::Format, o.jsonl, ":", ln, ": prompt_ids is empty");
    r.top_logprobs = o.top_logprobs;
    const int64_t len = int64_t(r.prompt.size() + r.completion.size());
    longest = std::max(longest, len);
    total += len;
    reqs.push_back(std::move(r));
  }
  EngineOptions eo;
  eo.max_model_len = std::max(o.context, longest);
  eo.cache_tokens = std::max(eo.max_model_len, std::min<int64_t>(total + 64 * int64_t(reqs.size()), 32768));
  eo.compute = precision_of(o.precision);
  eo.kv_dtype = kv_cache_of(o.kv_cache);
  Engine engine(*model, nullptr, eo);
  const auto res = engine.score(std::move(reqs));
  for (const auto& r : res) {
    nlohmann::json j = {{"logprobs", r.logprobs}};
    if (o.top_logprobs > 0) {
      nlohmann::json tops = nlohmann::json::array();
      for (const auto& t : r.top_logprobs) tops.push_back(top_json(t));
      j["top_logprobs"] = tops;
    }
    std::printf("%s\n", j.dump().c_str());
  }
}

}  // namespace

void register_generate_commands(CLI::App& app) {
  {
    auto o = std::make_shared<GenOpts>();
    auto* c = app.add_subcommand(
        "generate",
        "Generate text from a prompt (streamed to stdout), or from many prompts at once (--jsonl),\n"
        "batched continuously through one engine with a prefix cache. Greedy results do not depend on\n"
        "the batch: every prompt gives the tokens it gives alone.");
    c->add_option("--model,-m", o->model, "Checkpoint directory")->required();
    c->add_option("--tokenizer", o->tokenizer, "Tokenizer directory (default: the model directory)");
    c->add_option("--prompt,-p", o->prompt, "Prompt text");
    c->add_option("--ids", o->ids, "Prompt as comma-separated token ids (no tokenizer needed)");
    c->add_option("--jsonl", o->jsonl,
                  "Prompts from a file, one JSON object per line: {\"prompt\":\"...\"} or {\"ids\":[...]}, with\n"
                  "optional per-line \"max_tokens\", \"temperature\", \"seed\"; all submitted to the engine at once");
    c->add_option("--completions", o->completions,
                  "Samples per prompt: the prompt is computed once and its blocks shared; sample i uses seed + i")
        ->capture_default_str();
    c->add_option("--logprobs", o->top_logprobs,
                  "Also report the K most likely alternatives of every generated token (top_logprobs);\n"
                  "the chosen token's log-probability is always reported (--json)")
        ->capture_default_str();
    c->add_flag("--chat", o->chat_template, "Wrap each prompt in the chat template as one user turn");
    c->add_option("--system", o->system, "System message (with --chat)");
    c->add_flag("--json", o->json,
                "Print one JSON line per completion, in input order: index, prompt_index, tokens, text,\n"
                "logprobs, top_logprobs, finish_reason, prompt_tokens, cached_tokens, completion_tokens,\n"
                "ttft_s, decode_tokens_per_s");
    c->add_option("--max-seqs", o->max_seqs, "Sequences decoding together at most")->capture_default_str();
    add_sampling_options(c, *o);
    add_mmap_flag(c, o->mmap);
    c->add_flag("--expert-parallel", o->expert_parallel,
                "Under mpirun: each rank maps only its share of the routed experts; rank 0 runs the engine\n"
                "and prints, the MoE rows go to the experts' ranks by all-to-all (docs/dist.md)");
    c->callback([o] {
      const int given = int(!o->prompt.empty()) + int(!o->ids.empty()) + int(!o->jsonl.empty());
      if (given == 0) fail("give --prompt, --ids or --jsonl");
      if (given > 1) fail("give only one of --prompt, --ids and --jsonl");
      run_generate(*o);
    });
  }
  {
    auto o = std::make_shared<GenOpts>();
    o->sp.max_tokens = 1024;
    o->sp.temperature = 0.6f;
    o->sp.top_p = 0.95f;
    auto* c = app.add_subcommand(
        "chat",
        "Interactive chat using the model's chat template. R1-style <think> reasoning is shown dimmed\n"
        "(or between [think] markers when stdout is not a terminal). Reads one user turn per line.");
    c->add_option("--model,-m", o->model, "Checkpoint directory")->required();
    c->add_option("--tokenizer", o->tokenizer, "Tokenizer directory (default: the model directory)");
    c->add_option("--system", o->system, "System message");
    add_sampling_options(c, *o);
    add_mmap_flag(c, o->mmap);
    c->add_flag("--expert-parallel", o->expert_parallel, "Under mpirun: experts divided among the ranks (docs/dist.md)");
    c->callback([o] { run_chat(*o); });
  }
  {
    auto o = std::make_shared<ScoreOpts>();
    auto* c = app.add_subcommand(
        "score",
        "Log-probabilities of given completions after given prompts (teacher forcing), batched through\n"
        "the engine. Input lines {\"prompt_ids\":[...],\"completion_ids\":[...]}; output one line\n"
        "{\"logprobs\":[...]} per input line (one per completion token: log-softmax of the logits at the\n"
        "position before it), with --top-logprobs K also \"top_logprobs\" ([{\"id\",\"logprob\"}...] per token)");
    c->add_option("--model,-m", o->model, "Checkpoint directory")->required();
    c->add_option("--jsonl", o->jsonl, "Input file")->required();
    c->add_option("--precision", o->precision, "bf16 (default) or f32 (exact)")->capture_default_str();
    add_kv_cache_option(c, o->kv_cache);
    c->add_option("--top-logprobs", o->top_logprobs, "Alternatives per token")->capture_default_str();
    c->add_option("--context", o->context, "Longest prompt + completion")->capture_default_str();
    c->add_option("--threads", o->threads, "Threads (0 = all cores)");
    add_mmap_flag(c, o->mmap);
    c->add_flag("--expert-parallel", o->expert_parallel, "Under mpirun: experts divided among the ranks (docs/dist.md)");
    c->callback([o] { run_score(*o); });
  }
}

}  // namespace qs::cli
