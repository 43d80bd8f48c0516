// qiusuo tokenize | render
#include <cstdio>
#include <fstream>
#include <memory>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "qiusuo/core/error.h"
#include "qiusuo/io/file.h"
#include "qiusuo/tokenizer/chat_template.h"
#include "qiusuo/tokenizer/tokenizer.h"

namespace qs::cli {
namespace {

// Calls fn(line_number, parsed_object) for each non-empty line of a JSONL file (keys keep their
// order: templates that print dicts see them as Python would).
template <typename Fn>
void for_each_jsonl(const std::string& path, Fn&& fn) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(ErrorKind::NotFound, "cannot open ", path);
  std::string line;
  int64_t n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    nlohmann::ordered_json j;
    try {
      j = nlohmann::ordered_json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      fail(ErrorKind::Format, path, ":", n, ": invalid JSON (", e.what(), ")");
    }
    if (!j.is_object()) fail(ErrorKind::Format, path, ":", n, ": expected a JSON object");
    try {
      fn(n, j);
    } catch (const Error& e) {
      fail(e.kind(), path, ":", n, ": ", e.what());
    }
  }
}

void print_ids(const std::vector<int32_t>& ids) {
  std::printf("%s\n", nlohmann::json{{"ids", ids}}.dump().c_str());
}

struct TokenizeOpts {
  std::string tokenizer, text, file, jsonl;
  bool has_text = false, add_special = false;
};

void run_tokenize(const TokenizeOpts& o) {
  const int inputs = int(o.has_text) + int(!o.file.empty()) + int(!o.jsonl.empty());
  if (inputs != 1) fail("give exactly one of --text, --file or --jsonl");
  const Tokenizer tok = Tokenizer::load(o.tokenizer);
  if (o.has_text) {
    print_ids(tok.encode(o.text, o.add_special));
  } else if (!o.file.empty()) {
    print_ids(tok.encode(read_text_file(o.file), o.add_special));
  } else {
    for_each_jsonl(o.jsonl, [&](int64_t, const nlohmann::ordered_json& j) {
      if (!j.contains("text") || !j["text"].is_string()) fail("expected {\"text\": \"...\"}");
      print_ids(tok.encode(j["text"].get<std::string>(), o.add_special));
      std::fflush(stdout);
    });
  }
}

nlohmann::ordered_json template_context(const Tokenizer& tok) {
  return {{"bos_token", tok.bos_token()}, {"eos_token", tok.eos_token()}, {"pad_token", tok.pad_token()}};
}

void run_render(const std::string& dir, const std::string& jsonl) {
  const Tokenizer tok = Tokenizer::load(dir);
  if (tok.chat_template().empty()) fail(ErrorKind::NotFound, dir, " has no chat_template in tokenizer_config.json");
  const nlohmann::ordered_json ctx = template_context(tok);
  const ChatTemplate tmpl = ChatTemplate::compile(tok.chat_template());
  for_each_jsonl(jsonl, [&](int64_t, const nlohmann::ordered_json& j) {
    if (!j.contains("messages") || !j["messages"].is_array()) fail("expected {\"messages\": [...], ...}");
    bool agp = false;
    if (j.contains("add_generation_prompt")) {
      if (!j["add_generation_prompt"].is_boolean()) fail("add_generation_prompt must be true or false");
      agp = j["add_generation_prompt"].get<bool>();
    }
    nlohmann::ordered_json extra = ctx;
    if (j.contains("tools")) extra["tools"] = j["tools"];
    const std::string rendered = tmpl.render_ordered(j["messages"], agp, extra);
    const auto ids = tok.encode(rendered, false);
    std::printf("%s\n", nlohmann::ordered_json{{"rendered", rendered}, {"ids", ids}}.dump().c_str());
    std::fflush(stdout);
  });
}

}  // namespace

void register_text_commands(CLI::App& app) {
  {
    auto o = std::make_shared<TokenizeOpts>();
    auto* c = app.add_subcommand("tokenize",
                                 "Encode text with a Hugging Face tokenizer.json; prints {\"ids\":[...]} per input");
    auto* t = c->add_option("--tokenizer,--model,-m", o->tokenizer,
                            "Directory with tokenizer.json (+ tokenizer_config.json); a model directory works");
    t->required();
    c->add_option("--text", o->text, "Text to encode")->each([o](const std::string&) { o->has_text = true; });
    c->add_option("--file", o->file, "Encode the whole file as one input");
    c->add_option("--jsonl", o->jsonl, "One input per line: {\"text\": \"...\"}; one output line each");
    c->add_flag("--add-special-tokens", o->add_special,
                "Add BOS/EOS as transformers' AutoTokenizer does (add_bos_token in tokenizer_config.json)");
    c->callback([o] { run_tokenize(*o); });
  }
  {
    struct Opts { std::string tokenizer, jsonl; };
    auto o = std::make_shared<Opts>();
    auto* c = app.add_subcommand(
        "render",
        "Render the chat template of tokenizer_config.json. Each input line\n"
        "{\"messages\":[...], \"add_generation_prompt\": true|false} gives {\"rendered\":\"...\",\"ids\":[...]}\n"
        "(ids = encode(rendered) without an added BOS: the template writes its own)");
    c->add_option("--tokenizer,--model,-m", o->tokenizer, "Directory with tokenizer.json + tokenizer_config.json")->required();
    c->add_option("--jsonl", o->jsonl, "Conversations, one JSON object per line")->required();
    c->callback([o] { run_render(o->tokenizer, o->jsonl); });
  }
}

}  // namespace qs::cli
