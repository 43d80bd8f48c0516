// qiusuo generate | chat
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <memory>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "qiusuo/core/error.h"
#include "qiusuo/core/timer.h"
#include "qiusuo/infer/engine.h"
#include "qiusuo/infer/reasoning.h"
#include "qiusuo/io/file.h"
#include "qiusuo/tokenizer/chat_template.h"

namespace qs::cli {
namespace {

struct GenOpts {
  std::string model, tokenizer, prompt, ids, system, precision = "bf16";
  bool chat_template = false, json = false, show_stats = true;
  int threads = 0;
  int64_t context = 4096;
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
  c->add_option("--context", o.context, "KV cache capacity in tokens")->capture_default_str();
  c->add_option("--precision", o.precision, "Prefill GEMM precision: bf16 (fast) or f32 (exact); decode is F32")
      ->capture_default_str();
  c->add_option("--threads", o.threads, "Threads (0 = all cores)");
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

nlohmann::json template_ctx(const Tokenizer& t) {
  return {{"bos_token", t.bos_token()}, {"eos_token", t.eos_token()}, {"pad_token", t.pad_token()}};
}

void run_generate(const GenOpts& o) {
  apply_threads(o.threads);
  auto model = Model::load(o.model, /*with_mtp=*/false);
  std::unique_ptr<Tokenizer> tok;
  const std::string tdir = tokenizer_dir(o);
  if (!tdir.empty()) tok = std::make_unique<Tokenizer>(Tokenizer::load(tdir));
  std::vector<int32_t> prompt;
  std::string rendered;
  if (!o.ids.empty()) {
    std::string num;
    for (char ch : o.ids + ",") {
      if (ch == ',' || ch == ' ') {
        if (!num.empty()) prompt.push_back(int32_t(std::stol(num)));
        num.clear();
      } else if (ch >= '0' && ch <= '9') {
        num.push_back(ch);
      } else {
        fail("--ids: expected comma-separated integers");
      }
    }
  } else {
    if (!tok) fail(ErrorKind::NotFound, "no tokenizer.json in ", o.model, ": pass --tokenizer DIR, or --ids");
    if (o.chat_template) {
      if (tok->chat_template().empty()) fail("--chat: the tokenizer has no chat_template");
      nlohmann::json msgs = nlohmann::json::array();
      if (!o.system.empty()) msgs.push_back({{"role", "system"}, {"content", o.system}});
      msgs.push_back({{"role", "user"}, {"content", o.prompt}});
      rendered = render_chat(tok->chat_template(), msgs, true, template_ctx(*tok));
      prompt = tok->encode(rendered, false);
    } else {
      prompt = tok->encode(o.prompt, true);
    }
  }
  if (prompt.empty()) fail("the prompt is empty");
  EngineOptions eo;
  eo.max_batch = 1;
  eo.cache_tokens = std::max<int64_t>(o.context, int64_t(prompt.size()) + o.sp.max_tokens);
  eo.compute = precision_of(o.precision);
  Engine engine(*model, tok.get(), eo);
  GenerationRequest req;
  req.prompt = prompt;
  req.params = o.sp;
  const bool tty = isatty(1);
  ReasoningSplitter split(ReasoningSplitter::prompt_opens_reasoning(rendered));
  auto show = [&](const ReasoningSplitter::Out& part) {
    if (!part.reasoning.empty()) std::printf(tty ? "\033[2m%s\033[0m" : "%s", part.reasoning.c_str());
    if (!part.content.empty()) std::printf("%s", part.content.c_str());
  };
  req.on_event = [&](const TokenEvent& ev) {
    if (o.json) return true;
    if (tok) show(split.push(ev.text));
    else if (ev.token >= 0) std::printf("%d ", ev.token);
    if (ev.finished && tok) show(split.flush());
    std::fflush(stdout);
    return true;
  };
  Stopwatch sw;
  auto res = engine.generate({std::move(req)});
  const auto& r = res[0];
  const double gen_s = r.total_s - r.ttft_s;
  const double n = double(r.tokens.size());
  if (o.json) {
    nlohmann::json j = {{"text", r.text}, {"tokens", r.tokens}, {"finish_reason", finish_reason_name(r.reason)},
                        {"prompt_tokens", r.prompt_tokens}, {"completion_tokens", r.tokens.size()},
                        {"ttft_s", r.ttft_s}, {"decode_tokens_per_s", n > 1 ? (n - 1) / gen_s : 0.0}};
    std::printf("%s\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  } else {
    std::printf("\n");
  }
  if (r.reason == FinishReason::Error) fail(r.error);
  if (o.show_stats)
    std::fprintf(stderr, "[%lld prompt tokens, %.0f tok/s prefill | %zu generated, %.2f tok/s | %s]\n",
                 (long long)r.prompt_tokens, double(r.prompt_tokens) / std::max(r.ttft_s, 1e-9), r.tokens.size(),
                 n > 1 ? (n - 1) / gen_s : 0.0, finish_reason_name(r.reason));
}

void run_chat(const GenOpts& o) {
  apply_threads(o.threads);
  auto model = Model::load(o.model, false);
  const std::string tdir = tokenizer_dir(o);
  if (tdir.empty()) fail(ErrorKind::NotFound, "no tokenizer.json in ", o.model, ": pass --tokenizer DIR");
  Tokenizer tok = Tokenizer::load(tdir);
  if (tok.chat_template().empty()) fail(tdir, "/tokenizer_config.json has no chat_template");
  EngineOptions eo;
  eo.max_batch = 1;
  eo.cache_tokens = o.context;
  eo.compute = precision_of(o.precision);
  Engine engine(*model, &tok, eo);
  const bool tty_in = isatty(0), tty_out = isatty(1);
  nlohmann::json msgs = nlohmann::json::array();
  if (!o.system.empty()) msgs.push_back({{"role", "system"}, {"content", o.system}});
  if (tty_in)
    std::fprintf(stderr, "qiusuo chat: %s. Commands: /reset, /system TEXT, /exit. Reasoning is shown %s.\n",
                 o.model.c_str(), tty_out ? "dimmed" : "between [think] markers");
  std::string line;
  while (true) {
    if (tty_in) std::fprintf(stderr, "\n> ");
    if (!std::getline(std::cin, line)) break;
    if (line == "/exit" || line == "/quit") break;
    if (line == "/reset") { msgs = nlohmann::json::array(); if (!o.system.empty()) msgs.push_back({{"role", "system"}, {"content", o.system}}); continue; }
    if (line.rfind("/system ", 0) == 0) {
      msgs = nlohmann::json::array({{{"role", "system"}, {"content", line.substr(8)}}});
      continue;
    }
    if (line.empty()) continue;
    msgs.push_back({{"role", "user"}, {"content", line}});
    const std::string rendered = render_chat(tok.chat_template(), msgs, true, template_ctx(tok));
    GenerationRequest req;
    req.prompt = tok.encode(rendered, false);
    req.params = o.sp;
    req.params.max_tokens = std::min<int64_t>(o.sp.max_tokens, o.context - int64_t(req.prompt.size()) - 1);
    if (req.params.max_tokens <= 0) fail("the conversation no longer fits the context (", o.context, " tokens); /reset");
    ReasoningSplitter split(ReasoningSplitter::prompt_opens_reasoning(rendered));
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
    // The full output (reasoning included) goes into the history; R1's template strips it.
    std::string full = res[0].text;
    if (ReasoningSplitter::prompt_opens_reasoning(rendered)) full = "<think>\n" + full;
    msgs.push_back({{"role", "assistant"}, {"content", full}});
  }
}

}  // namespace

void register_generate_commands(CLI::App& app) {
  {
    auto o = std::make_shared<GenOpts>();
    auto* c = app.add_subcommand("generate", "Generate text from a prompt, streaming it to stdout");
    c->add_option("--model,-m", o->model, "Checkpoint directory")->required();
    c->add_option("--tokenizer", o->tokenizer, "Tokenizer directory (default: the model directory)");
    c->add_option("--prompt,-p", o->prompt, "Prompt text");
    c->add_option("--ids", o->ids, "Prompt as comma-separated token ids (no tokenizer needed)");
    c->add_flag("--chat", o->chat_template, "Wrap the prompt in the chat template as one user turn");
    c->add_option("--system", o->system, "System message (with --chat)");
    c->add_flag("--json", o->json, "Print one JSON object with text, tokens and timings instead of streaming");
    add_sampling_options(c, *o);
    c->callback([o] {
      if (o->prompt.empty() && o->ids.empty()) fail("give --prompt or --ids");
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
    c->callback([o] { run_chat(*o); });
  }
}

}  // namespace qs::cli
