// `qiusuo serve` end to end on loopback: routes, response shapes, streaming, reasoning, tool
// calls, JSON mode, errors and authentication. Each test starts its own server process on a
// free port with the tiny test models (tests/serve/make_models.sh).
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <atomic>
#include <filesystem>

#include "serve_util.h"

namespace qs::testing_util {
namespace {
using json = nlohmann::json;

void expect_error(const json& body, int status, int want, const std::string& what) {
  EXPECT_EQ(status, want) << what << ": " << body.dump();
  ASSERT_TRUE(body.contains("error")) << what << ": " << body.dump();
  const json& e = body["error"];
  EXPECT_TRUE(e["message"].is_string() && !e["message"].get<std::string>().empty()) << what;
  EXPECT_TRUE(e["type"].is_string()) << what;
  EXPECT_TRUE(e.contains("param")) << what;
  EXPECT_TRUE(e.contains("code")) << what;
}

// A model directory whose config.json is a named pipe: loading blocks in opening it until the
// test lets it go, so the server is "loading" as long as the test wants, whatever the speed of
// the machine. release() replaces the pipe by the real file and writes the file into the pipe
// for the reader already waiting on it.
class HeldModel {
 public:
  HeldModel(const std::string& model, const std::string& tag) : dir_(tag) {
    for (const auto& e : std::filesystem::directory_iterator(model))
      if (e.path().filename() != "config.json")
        std::filesystem::create_symlink(e.path(), std::filesystem::path(dir_.path) / e.path().filename());
    config_ = read_file(model + "/config.json");
    fifo_ = dir_.path + "/config.json";
    if (mkfifo(fifo_.c_str(), 0644) != 0) throw std::runtime_error("mkfifo " + fifo_);
  }
  ~HeldModel() {
    stop_ = true;
    if (writer_.joinable()) writer_.join();
  }
  std::string path() const { return dir_.path; }
  void release() {
    signal(SIGPIPE, SIG_IGN);  // a reader that goes away early
    const std::string real = dir_.path + "/config.json.real";
    std::ofstream(real, std::ios::binary) << config_;
    writer_ = std::thread([this, real] {
      while (!stop_) {
        const int fd = ::open(fifo_.c_str(), O_WRONLY | O_NONBLOCK);
        if (fd < 0) {  // ENXIO: the server is not reading yet
          std::this_thread::sleep_for(std::chrono::milliseconds(2));
          continue;
        }
        std::filesystem::rename(real, fifo_);  // later readers get the file itself
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
        for (size_t at = 0; at < config_.size();) {
          const ssize_t w = ::write(fd, config_.data() + at, config_.size() - at);
          if (w <= 0) break;
          at += size_t(w);
        }
        ::close(fd);
        return;
      }
    });
  }

 private:
  TempDir dir_;
  std::string config_, fifo_;
  std::thread writer_;
  std::atomic<bool> stop_{false};
};

TEST(ServeApi, HealthWhileLoadingThenRoutes) {
  HeldModel held(tiny_model("v3"), "held-model");
  ServeProcess s({"--model", held.path(), "--served-model-name", "tiny"});
  {
    // The port is bound before the model loads, and the model waits for its config.json.
    auto c = s.client();
    auto r = c.Get("/health");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 503);
    EXPECT_EQ(json::parse(r->body)["status"], "loading");
    int st = 0;
    const json busy = post_json(c, "/v1/chat/completions", chat("tiny", "x", 1), &st);
    expect_error(busy, st, 503, "chat while loading");
  }
  held.release();
  ASSERT_TRUE(s.wait_ready()) << s.log();
  auto c = s.client();
  auto h = c.Get("/health");
  EXPECT_EQ(h->status, 200);
  auto m = c.Get("/v1/models");
  ASSERT_EQ(m->status, 200);
  const json models = json::parse(m->body);
  EXPECT_EQ(models["object"], "list");
  EXPECT_EQ(models["data"][0]["id"], "tiny");
  EXPECT_EQ(models["data"][0]["object"], "model");
  EXPECT_EQ(c.Get("/v1/models/tiny")->status, 200);
  EXPECT_EQ(c.Get("/v1/models/other")->status, 404);

  int st = 0;
  const json tk = post_json(c, "/tokenize", {{"content", "Hello world"}, {"with_pieces", true}}, &st);
  ASSERT_EQ(st, 200) << tk.dump();
  ASSERT_EQ(tk["tokens"].size(), 2u);
  EXPECT_EQ(tk["tokens"][0]["piece"], "Hello");
  const json ids = post_json(c, "/tokenize", {{"content", "Hello world"}}, &st)["tokens"];
  const json dt = post_json(c, "/detokenize", {{"tokens", ids}}, &st);
  EXPECT_EQ(dt["content"], "Hello world");
  const json at = post_json(c, "/apply-template", {{"messages", {{{"role", "user"}, {"content", "Hi"}}}}}, &st);
  EXPECT_EQ(at["prompt"], "<｜begin▁of▁sentence｜><｜User｜>Hi<｜Assistant｜>");

  auto page = c.Get("/");
  ASSERT_EQ(page->status, 200);
  EXPECT_NE(page->body.find("<html"), std::string::npos);
  auto nf = c.Get("/nope");
  expect_error(json::parse(nf->body), nf->status, 404, "unknown route");

  auto met = c.Get("/metrics");
  ASSERT_EQ(met->status, 200);
  for (const char* name : {"qiusuo_requests_total{", "qiusuo_prompt_tokens_total", "qiusuo_prompt_cached_tokens_total",
                           "qiusuo_generation_tokens_total", "qiusuo_queue_depth", "qiusuo_batch_size",
                           "qiusuo_kv_blocks_used", "qiusuo_kv_blocks_cached", "qiusuo_time_to_first_token_seconds_bucket",
                           "qiusuo_inter_token_latency_seconds_bucket"})
    EXPECT_NE(met->body.find(name), std::string::npos) << name;
  EXPECT_TRUE(std::regex_search(met->body, std::regex("qiusuo_requests_total\\{route=\"/health\",status=\"503\"\\} [1-9]")))
      << met->body;
}

TEST(ServeApi, ChatShapesStreamingAndUsage) {
  ServeProcess s({"--model", tiny_model("v3")});
  ASSERT_TRUE(s.wait_ready()) << s.log();
  auto c = s.client();
  int st = 0;
  const json r = post_json(c, "/v1/chat/completions", chat("tiny-v3", "Tell me a story.", 12), &st);
  ASSERT_EQ(st, 200) << r.dump();
  EXPECT_EQ(r["object"], "chat.completion");
  EXPECT_EQ(r["id"].get<std::string>().rfind("chatcmpl-", 0), 0u);
  EXPECT_TRUE(r["created"].is_number_integer());
  EXPECT_EQ(r["model"], "tiny-v3");
  EXPECT_TRUE(r["system_fingerprint"].is_string());
  ASSERT_EQ(r["choices"].size(), 1u);
  const json& ch = r["choices"][0];
  EXPECT_EQ(ch["index"], 0);
  EXPECT_EQ(ch["message"]["role"], "assistant");
  EXPECT_TRUE(ch["message"]["content"].is_string());
  EXPECT_EQ(ch["finish_reason"], "length");
  EXPECT_TRUE(ch["logprobs"].is_null());
  const json& u = r["usage"];
  EXPECT_EQ(u["completion_tokens"], 12);
  EXPECT_EQ(u["total_tokens"], u["prompt_tokens"].get<int>() + 12);
  EXPECT_EQ(u["prompt_cache_hit_tokens"].get<int>() + u["prompt_cache_miss_tokens"].get<int>(), u["prompt_tokens"]);
  EXPECT_EQ(u["prompt_tokens_details"]["cached_tokens"], u["prompt_cache_hit_tokens"]);
  EXPECT_EQ(u["completion_tokens_details"]["reasoning_tokens"], 0);

  // Streaming gives the same greedy text, the role first, then the finish and the usage chunk.
  const auto sse = post_sse(c, "/v1/chat/completions",
                            chat("tiny-v3", "Tell me a story.", 12, {{"stream", true}, {"stream_options", {{"include_usage", true}}}}));
  ASSERT_EQ(sse.status, 200);
  EXPECT_TRUE(sse.done);
  ASSERT_GE(sse.events.size(), 3u);
  EXPECT_EQ(sse.events[0]["choices"][0]["delta"]["role"], "assistant");
  std::string text;
  std::string finish;
  for (const auto& e : sse.events) {
    EXPECT_EQ(e["object"], "chat.completion.chunk");
    EXPECT_EQ(e["id"], sse.events[0]["id"]);
    if (e["choices"].empty()) continue;
    const json& d = e["choices"][0]["delta"];
    if (d.contains("content") && d["content"].is_string()) text += d["content"].get<std::string>();
    if (!e["choices"][0]["finish_reason"].is_null()) finish = e["choices"][0]["finish_reason"];
    EXPECT_TRUE(e["usage"].is_null());
  }
  EXPECT_EQ(text, ch["message"]["content"]);
  EXPECT_EQ(finish, "length");
  const json& last = sse.events.back();
  EXPECT_TRUE(last["choices"].empty());
  EXPECT_EQ(last["usage"]["completion_tokens"], 12);

  // n samples, seeds, logprobs.
  const json n3 = post_json(c, "/v1/chat/completions",
                            chat("tiny-v3", "Hi", 5, {{"n", 3}, {"temperature", 1.0}, {"seed", 7}, {"logprobs", true}, {"top_logprobs", 2}}), &st);
  ASSERT_EQ(st, 200) << n3.dump();
  ASSERT_EQ(n3["choices"].size(), 3u);
  EXPECT_EQ(n3["usage"]["completion_tokens"], 15);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(n3["choices"][i]["index"], i);
    const json& lp = n3["choices"][i]["logprobs"]["content"];
    ASSERT_EQ(lp.size(), 5u);
    EXPECT_LE(lp[0]["logprob"].get<double>(), 0.0);
    EXPECT_EQ(lp[0]["top_logprobs"].size(), 2u);
    EXPECT_TRUE(lp[0]["bytes"].is_array());
  }
  const json again = post_json(c, "/v1/chat/completions", chat("tiny-v3", "Hi", 5, {{"n", 3}, {"temperature", 1.0}, {"seed", 7}}), &st);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(again["choices"][i]["message"]["content"], n3["choices"][i]["message"]["content"]);

  // Stop strings: the text ends before the stop string, finish_reason stop.
  const std::string full = r["choices"][0]["message"]["content"];
  if (full.size() > 6) {
    const std::string stop = full.substr(full.size() / 2, 2);
    const json sr = post_json(c, "/v1/chat/completions", chat("tiny-v3", "Tell me a story.", 12, {{"stop", stop}}), &st);
    const std::string t = sr["choices"][0]["message"]["content"];
    EXPECT_EQ(t, full.substr(0, full.find(stop)));
    EXPECT_EQ(sr["choices"][0]["finish_reason"], "stop");
  }

  // Chat prefix completion: the reply continues the given prefix (and does not repeat it).
  json pre = chat("tiny-v3", "Tell me a story.", 4);
  pre["messages"].push_back({{"role", "assistant"}, {"content", "Once upon"}, {"prefix", true}});
  const json pr = post_json(c, "/beta/chat/completions", pre, &st);
  ASSERT_EQ(st, 200) << pr.dump();
  const json tmpl = post_json(c, "/apply-template", {{"messages", pre["messages"]}}, &st);
  EXPECT_EQ(tmpl["prompt"].get<std::string>().substr(tmpl["prompt"].get<std::string>().size() - 9), "Once upon");
}

TEST(ServeApi, ReasoningToolsJsonAndCompletions) {
  ServeProcess r1({"--model", tiny_model("r1")});
  ServeProcess v3({"--model", tiny_model("v3")});
  ASSERT_TRUE(r1.wait_ready()) << r1.log();
  ASSERT_TRUE(v3.wait_ready()) << v3.log();
  int st = 0;
  {
    // R1's generation prompt opens <think>: the output is reasoning_content.
    auto c = r1.client();
    const json r = post_json(c, "/v1/chat/completions", chat("tiny-r1", "Why?", 8), &st);
    ASSERT_EQ(st, 200) << r.dump();
    const json& m = r["choices"][0]["message"];
    EXPECT_TRUE(m["reasoning_content"].is_string());
    EXPECT_FALSE(m["reasoning_content"].get<std::string>().empty());
    EXPECT_GT(r["usage"]["completion_tokens_details"]["reasoning_tokens"].get<int>(), 0);
    const auto sse = post_sse(c, "/v1/chat/completions", chat("tiny-r1", "Why?", 8, {{"stream", true}}));
    std::string reasoning;
    for (const auto& e : sse.events) {
      const json& d = e["choices"][0]["delta"];
      if (d.contains("reasoning_content") && d["reasoning_content"].is_string() &&
          !d["reasoning_content"].get<std::string>().empty()) {
        EXPECT_TRUE(d["content"].is_null()) << e.dump();
        reasoning += d["reasoning_content"].get<std::string>();
      }
    }
    EXPECT_EQ(reasoning, m["reasoning_content"]);
    // reasoning_content sent back in the history is dropped from the prompt.
    json hist = chat("tiny-r1", "Why?", 2);
    hist["messages"].push_back({{"role", "assistant"}, {"content", "Because."}, {"reasoning_content", "secret"}});
    hist["messages"].push_back({{"role", "user"}, {"content", "Sure?"}});
    const json tp = post_json(c, "/apply-template", {{"messages", hist["messages"]}}, &st);
    EXPECT_EQ(tp["prompt"].get<std::string>().find("secret"), std::string::npos);
    EXPECT_EQ(post_json(c, "/v1/chat/completions", hist, &st)["object"], "chat.completion");
  }
  auto c = v3.client();
  const json tools = json::parse(R"([{"type":"function","function":{"name":"get_weather","description":"Weather of a city",
      "parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}},
      {"type":"function","function":{"name":"get_time","parameters":{"type":"object","properties":{}}}}])");
  {
    // A forced call: the arguments are a JSON object, the call parses back into tool_calls.
    const json r = post_json(c, "/v1/chat/completions",
                             chat("tiny-v3", "Weather in Paris?", 40,
                                  {{"tools", tools}, {"tool_choice", {{"type", "function"}, {"function", {{"name", "get_weather"}}}}}}),
                             &st);
    ASSERT_EQ(st, 200) << r.dump();
    const json& ch = r["choices"][0];
    EXPECT_EQ(ch["finish_reason"], "tool_calls");
    EXPECT_TRUE(ch["message"]["content"].is_null());
    ASSERT_EQ(ch["message"]["tool_calls"].size(), 1u);
    const json& call = ch["message"]["tool_calls"][0];
    EXPECT_EQ(call["type"], "function");
    EXPECT_EQ(call["function"]["name"], "get_weather");
    EXPECT_TRUE(json::parse(call["function"]["arguments"].get<std::string>()).is_object());
    EXPECT_EQ(call["id"].get<std::string>().rfind("call_", 0), 0u);
    // Streamed: the call arrives as a delta.tool_calls entry.
    const auto sse = post_sse(c, "/v1/chat/completions",
                              chat("tiny-v3", "Weather in Paris?", 40, {{"tools", tools}, {"tool_choice", "required"}, {"stream", true}}));
    int calls = 0;
    std::string finish;
    for (const auto& e : sse.events) {
      const json& d = e["choices"][0]["delta"];
      if (d.contains("tool_calls")) {
        ++calls;
        EXPECT_EQ(d["tool_calls"][0]["index"], 0);
        EXPECT_TRUE(d["tool_calls"][0]["function"]["name"] == "get_weather" ||
                    d["tool_calls"][0]["function"]["name"] == "get_time");
      }
      if (!e["choices"][0]["finish_reason"].is_null()) finish = e["choices"][0]["finish_reason"];
    }
    EXPECT_EQ(calls, 1);
    EXPECT_EQ(finish, "tool_calls");
    // The next turn sends the call and its result back.
    json next = chat("tiny-v3", "Weather in Paris?", 3, {{"tools", tools}});
    next["messages"].push_back({{"role", "assistant"}, {"content", ""}, {"tool_calls", {call}}});
    next["messages"].push_back({{"role", "tool"}, {"tool_call_id", call["id"]}, {"content", "{\"temp\": 21}"}});
    const json nr = post_json(c, "/v1/chat/completions", next, &st);
    EXPECT_EQ(st, 200) << nr.dump();
    const json tp = post_json(c, "/apply-template", {{"messages", next["messages"]}, {"tools", tools}}, &st);
    const std::string p = tp["prompt"];
    EXPECT_NE(p.find("<｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather"), std::string::npos) << p;
    EXPECT_NE(p.find("<｜tool▁output▁begin｜>{\"temp\": 21}"), std::string::npos) << p;
    EXPECT_NE(p.find("Weather of a city"), std::string::npos) << "the tools are described in a system message";
  }
  {
    // JSON mode: the content is a JSON object, whatever the (random) model prefers.
    for (int max_tokens : {6, 30}) {
      const json r = post_json(c, "/v1/chat/completions",
                               chat("tiny-v3", "Answer in json.", max_tokens, {{"response_format", {{"type", "json_object"}}}, {"temperature", 1.0}, {"seed", 3}}),
                               &st);
      ASSERT_EQ(st, 200) << r.dump();
      const std::string content = r["choices"][0]["message"]["content"];
      EXPECT_TRUE(json::accept(content)) << content;
      EXPECT_TRUE(json::parse(content).is_object()) << content;
    }
  }
  {
    // Completions: text, token ids, several prompts, echo, fill in the middle.
    const json r = post_json(c, "/v1/completions", {{"model", "tiny-v3"}, {"prompt", "def add(a, b):"}, {"max_tokens", 5}, {"temperature", 0}, {"echo", true}}, &st);
    ASSERT_EQ(st, 200) << r.dump();
    EXPECT_EQ(r["object"], "text_completion");
    EXPECT_EQ(r["choices"][0]["text"].get<std::string>().rfind("def add(a, b):", 0), 0u);
    const json m = post_json(c, "/v1/completions", {{"model", "tiny-v3"}, {"prompt", {"a", "b c"}}, {"max_tokens", 3}, {"n", 2}, {"logprobs", 2}}, &st);
    ASSERT_EQ(st, 200) << m.dump();
    ASSERT_EQ(m["choices"].size(), 4u);
    EXPECT_EQ(m["choices"][3]["logprobs"]["tokens"].size(), 3u);
    EXPECT_EQ(m["choices"][3]["logprobs"]["top_logprobs"][0].size(), 2u);
    const json ids = post_json(c, "/v1/completions", {{"model", "tiny-v3"}, {"prompt", {0, 100, 200}}, {"max_tokens", 2}}, &st);
    EXPECT_EQ(ids["usage"]["prompt_tokens"], 3);
    const json fim = post_json(c, "/beta/completions", {{"model", "tiny-v3"}, {"prompt", "def f(x):\n    "}, {"suffix", "\n    return y"}, {"max_tokens", 4}}, &st);
    ASSERT_EQ(st, 200) << fim.dump();
    const json tk = post_json(c, "/tokenize", {{"content", "<｜fim▁begin｜>def f(x):\n    <｜fim▁hole｜>\n    return y<｜fim▁end｜>"}, {"add_special", true}}, &st);
    EXPECT_EQ(fim["usage"]["prompt_tokens"], tk["tokens"].size());
    const auto sse = post_sse(c, "/v1/completions", {{"model", "tiny-v3"}, {"prompt", "x"}, {"max_tokens", 3}, {"stream", true}});
    EXPECT_TRUE(sse.done);
    EXPECT_EQ(sse.events[0]["object"], "text_completion");
  }
}

TEST(ServeApi, ErrorsAndAuthentication) {
  ServeProcess s({"--model", tiny_model("v3"), "--ctx", "128", "--api-key", "sekret"});
  ASSERT_TRUE(s.wait_ready()) << s.log();
  auto c = s.client();
  const httplib::Headers auth = {{"Authorization", "Bearer sekret"}};
  int st = 0;
  // Authentication: every route but /health.
  for (const char* path : {"/v1/models", "/metrics", "/", "/v1/chat/completions"}) {
    auto r = std::string(path) == "/v1/chat/completions" ? c.Post(path, chat("tiny-v3", "x", 1).dump(), "application/json")
                                                          : c.Get(path);
    ASSERT_TRUE(r);
    expect_error(json::parse(r->body), r->status, 401, path);
  }
  auto wrong = c.Get("/v1/models", httplib::Headers{{"Authorization", "Bearer nope"}});
  EXPECT_EQ(wrong->status, 401);
  EXPECT_EQ(c.Get("/health")->status, 200);
  EXPECT_EQ(c.Get("/v1/models", auth)->status, 200);
  EXPECT_EQ(c.Get("/", httplib::Headers{{"Authorization", "Basic bWU6c2VrcmV0"}})->status, 200);  // me:sekret

  auto err = [&](const json& body, int want, const std::string& what) {
    const json r = post_json(c, "/v1/chat/completions", body, &st, auth);
    expect_error(r, st, want, what);
    return r;
  };
  err({{"model", "tiny-v3"}, {"messages", json::array()}}, 400, "empty messages");
  err({{"messages", {{{"role", "user"}, {"content", "x"}}}}}, 422, "no model");
  const json unknown = err(chat("gpt-4", "x", 1), 400, "unknown model");
  EXPECT_EQ(unknown["error"]["param"], "model");
  err(chat("tiny-v3", "x", 1, {{"temperature", -1}}), 400, "bad temperature");
  err(chat("tiny-v3", "x", 1, {{"max_tokens", "ten"}}), 422, "wrong type");
  err(chat("tiny-v3", "x", 1, {{"messages", {{{"role", "user"}, {"content", {{"a", 1}}}}}}}), 422, "wrong content type");
  const json ctx = err(chat("tiny-v3", std::string(2000, 'a') + " b", 1), 400, "context");
  EXPECT_EQ(ctx["error"]["code"], "context_length_exceeded");
  err(chat("tiny-v3", "x", 127), 400, "prompt (4 tokens) + max_tokens beyond --ctx");
  auto bad = c.Post("/v1/chat/completions", auth, "{\"model\":", "application/json");
  expect_error(json::parse(bad->body), bad->status, 400, "malformed JSON");
  auto big = c.Post("/v1/chat/completions", auth, std::string(10 << 20, ' '), "application/json");
  ASSERT_TRUE(big);
  expect_error(json::parse(big->body), big->status, 413, "10 MB body");
  EXPECT_EQ(c.Get("/v1/models", auth)->status, 200);  // still serving
}

TEST(ServeApi, QueueLimitAnswers429WithRetryAfter) {
  ServeProcess s({"--model", tiny_model("v3"), "--max-batch", "1", "--queue", "1"});
  ASSERT_TRUE(s.wait_ready()) << s.log();
  std::atomic<int> ok{0}, limited{0}, other{0};
  std::vector<std::thread> th;
  for (int i = 0; i < 6; ++i)
    th.emplace_back([&, i] {
      auto c = s.client();
      auto r = c.Post("/v1/chat/completions", chat("tiny-v3", "count " + std::to_string(i), 300).dump(), "application/json");
      if (!r) return other++, void();
      if (r->status == 200) ok++;
      else if (r->status == 429 && r->has_header("Retry-After") && json::parse(r->body)["error"]["type"] == "rate_limit_error") limited++;
      else other++;
    });
  for (auto& t : th) t.join();
  EXPECT_GE(ok.load(), 2);
  EXPECT_GE(limited.load(), 1);
  EXPECT_EQ(other.load(), 0);
}

// --speculative: with mtp the server drafts with the model's MTP module and gives exactly the
// plain server's greedy tokens (concurrent requests share ragged steps, streaming included);
// auto decides from the bytes a step reads (this tiny model: off); mtp without an MTP module
// is a clear error at load.
TEST(ServeSpeculative, MtpGivesThePlainTokensAutoDecidesAndNoModuleIsAnError) {
  const std::string model = tiny_model("mtp");
  auto run = [&](const std::string& mode, double* drafts) {
    ServeProcess s({"--model", model, "--speculative", mode, "--quiet"}, "spec-" + mode);
    EXPECT_TRUE(s.wait_ready()) << s.log();
    EXPECT_NE(s.log().find("speculative decoding " + std::string(mode == "mtp" ? "mtp" : "none")), std::string::npos)
        << s.log();
    std::vector<std::string> texts(6);
    std::vector<std::thread> th;
    for (int i = 0; i < 6; ++i)
      th.emplace_back([&, i] {
        auto c = s.client();
        int st = 0;
        const json r = post_json(c, "/v1/completions",
                                 {{"model", "tiny-mtp"}, {"prompt", "request " + std::to_string(i) + std::string(i, '!')},
                                  {"max_tokens", 12 + 3 * i}, {"temperature", 0}},
                                 &st);
        if (st == 200) texts[size_t(i)] = r["choices"][0]["text"];
        else texts[size_t(i)] = "HTTP " + std::to_string(st) + ": " + r.dump();
      });
    for (auto& t : th) t.join();
    auto c = s.client();
    const auto sse = post_sse(c, "/v1/completions",
                              {{"model", "tiny-mtp"}, {"prompt", "request 0"}, {"max_tokens", 12}, {"temperature", 0}, {"stream", true}});
    std::string streamed;
    for (const auto& e : sse.events)
      if (!e["choices"].empty()) streamed += e["choices"][0]["text"].get<std::string>();
    EXPECT_EQ(streamed, texts[0]) << mode << ": streaming";
    *drafts = metric(c, "qiusuo_spec_decode_draft_tokens_total");
    EXPECT_GE(metric(c, "qiusuo_spec_decode_accepted_tokens_total"), 0);
    EXPECT_EQ(s.stop(), 0);
    return texts;
  };
  double plain_drafts = -1, spec_drafts = -1;
  const auto plain = run("none", &plain_drafts);
  const auto spec = run("mtp", &spec_drafts);
  EXPECT_EQ(plain_drafts, 0);
  EXPECT_GT(spec_drafts, 40);  // every decode step after the first of each request verifies a draft
  for (size_t i = 0; i < plain.size(); ++i) {
    EXPECT_FALSE(plain[i].empty() || plain[i].rfind("HTTP ", 0) == 0) << plain[i];
    EXPECT_EQ(spec[i], plain[i]) << "request " << i;
  }
  {  // auto: two layers and a 129280-token head: the MTP module reads about what the model reads
    ServeProcess s({"--model", model}, "spec-auto");
    ASSERT_TRUE(s.wait_ready()) << s.log();
    EXPECT_NE(s.log().find("speculative decoding none (auto: expected batch-1 speed-up"), std::string::npos) << s.log();
  }
  {
    ServeProcess s({"--model", tiny_model("v3"), "--speculative", "mtp"}, "spec-nomtp");
    EXPECT_FALSE(s.wait_ready(60));
    EXPECT_NE(s.wait_exit(60), 0);
    EXPECT_NE(s.log().find("MTP module"), std::string::npos) << s.log();
  }
}

}  // namespace
}  // namespace qs::testing_util
