// `qiusuo serve` under load and faults: 64 concurrent streams equal to sequential greedy
// results, no leaked KV blocks, disconnects mid-stream, fuzzed bodies, SIGTERM draining,
// context caching (in memory, then on disk across restarts), every model fixture.
#include <gtest/gtest.h>

#include <dirent.h>

#include <atomic>
#include <filesystem>
#include <random>

#include "serve_util.h"

namespace qs::testing_util {
namespace {
using json = nlohmann::json;

std::string words(int n, int seed) {
  static const char* w[] = {"river", "stone", "light", "cloud", "seven", "paper", "glass", "north", "quiet", "amber"};
  std::string s;
  for (int i = 0; i < n; ++i) s += std::string(w[(i * 7 + seed) % 10]) + " ";
  return s;
}

bool wait_idle(httplib::Client& c, double timeout_s = 20) {
  const auto t0 = std::chrono::steady_clock::now();
  while (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() < timeout_s) {
    if (metric(c, "qiusuo_kv_blocks_used") == 0 && metric(c, "qiusuo_batch_size") == 0 &&
        metric(c, "qiusuo_requests_in_flight") == 0)
      return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

TEST(ServeLoad, SixtyFourStreamsEqualSequentialAndLeakNothing) {
  ServeProcess s({"--model", tiny_model("v3"), "--max-batch", "64", "--quiet"});
  ASSERT_TRUE(s.wait_ready()) << s.log();
  struct Case { json body; std::string text; int tokens = 0; };
  std::vector<Case> cases;
  std::mt19937 rng(1);
  for (int i = 0; i < 64; ++i) {
    const int prompt_words = i % 4 == 0 ? 150 + int(rng() % 150) : 1 + int(rng() % 40);  // mixed prompt lengths
    const int out = 2 + int(rng() % 20);                                                 // mixed output lengths
    cases.push_back({chat("tiny-v3", words(prompt_words, i), out), "", 0});
  }
  {
    auto c = s.client();
    for (auto& k : cases) {  // one at a time
      int st = 0;
      const json r = post_json(c, "/v1/chat/completions", k.body, &st);
      ASSERT_EQ(st, 200) << r.dump();
      k.text = r["choices"][0]["message"]["content"];
      k.tokens = r["usage"]["completion_tokens"];
    }
  }
  std::vector<std::string> got(cases.size()), failure(cases.size());
  std::vector<int> done(cases.size(), 0);
  std::vector<std::thread> th;
  for (size_t i = 0; i < cases.size(); ++i)
    th.emplace_back([&, i] {
      try {
        auto c = s.client();
        json b = cases[i].body;
        b["stream"] = true;
        const auto r = post_sse(c, "/v1/chat/completions", b);
        std::string t;
        for (const auto& e : r.events)
          if (!e["choices"].empty() && e["choices"][0]["delta"].contains("content") && e["choices"][0]["delta"]["content"].is_string())
            t += e["choices"][0]["delta"]["content"].get<std::string>();
        got[i] = t;
        done[i] = r.status == 200 && r.done;
        if (!done[i]) failure[i] = "status " + std::to_string(r.status) + " " + r.body;
      } catch (const std::exception& e) {
        failure[i] = e.what();
      }
    });
  for (auto& t : th) t.join();
  for (size_t i = 0; i < cases.size(); ++i) {
    EXPECT_TRUE(done[i]) << "request " << i << " did not complete: " << failure[i] << "\n" << s.log();
    EXPECT_EQ(got[i], cases[i].text) << "request " << i << ": batched greedy output differs from the sequential one";
  }
  auto c = s.client();
  EXPECT_TRUE(wait_idle(c)) << "KV blocks still used when idle: " << metric(c, "qiusuo_kv_blocks_used");
  EXPECT_GT(metric(c, "qiusuo_kv_blocks_cached"), 0);  // prompts stay cached (evictable)
}

TEST(ServeLoad, DisconnectsFreeTheirBlocks) {
  ServeProcess s({"--model", tiny_model("v3"), "--quiet"});
  ASSERT_TRUE(s.wait_ready()) << s.log();
  std::vector<std::thread> th;
  std::atomic<int> cut{0};
  for (int i = 0; i < 12; ++i)
    th.emplace_back([&, i] {
      auto c = s.client();
      int seen = 0;
      // Streams dropped after a few chunks.
      post_sse(c, "/v1/chat/completions", chat("tiny-v3", words(20 + i, i), 2000, {{"stream", true}}), [&](const json&) {
        return ++seen < 3;
      });
      cut++;
    });
  // Non-streaming requests whose clients give up.
  for (int i = 0; i < 4; ++i)
    th.emplace_back([&, i] {
      auto c = s.client(0.3);
      auto r = c.Post("/v1/chat/completions", chat("tiny-v3", words(10, i), 2000).dump(), "application/json");
      EXPECT_FALSE(r);  // timed out: the client closed the connection
    });
  for (auto& t : th) t.join();
  EXPECT_EQ(cut.load(), 12);
  auto c = s.client();
  EXPECT_TRUE(wait_idle(c)) << "blocks used " << metric(c, "qiusuo_kv_blocks_used") << ", running "
                            << metric(c, "qiusuo_batch_size");
  int st = 0;
  post_json(c, "/v1/chat/completions", chat("tiny-v3", "still there?", 3), &st);
  EXPECT_EQ(st, 200);
  EXPECT_NE(c.Get("/metrics")->body.find("route=\"/v1/chat/completions\",status=\"499\"} 4"), std::string::npos)
      << "the non-streaming requests were not seen as disconnected";
}

TEST(ServeLoad, FuzzedBodiesGetErrorsAndTheServerSurvives) {
  ServeProcess s({"--model", tiny_model("v3"), "--quiet", "--ctx", "512"});
  ASSERT_TRUE(s.wait_ready()) << s.log();
  auto c = s.client();
  std::mt19937 rng(12345);
  auto rnd_value = [&](auto&& self, int depth) -> json {
    switch (rng() % (depth > 3 ? 6 : 8)) {
      case 0: return nullptr;
      case 1: return bool(rng() % 2);
      case 2: return int64_t(rng()) * (rng() % 2 ? 1 : -1) * 1000003;
      case 3: return std::pow(10.0, double(int(rng() % 600) - 300));
      case 4: return std::string(size_t(rng() % 5), char('a' + rng() % 26));
      case 5: return 18446744073709551615ull;
      case 6: {
        json a = json::array();
        for (int i = int(rng() % 4); i > 0; --i) a.push_back(self(self, depth + 1));
        return a;
      }
      default: {
        json o = json::object();
        for (int i = int(rng() % 4); i > 0; --i) o[std::string(1, char('a' + rng() % 26))] = self(self, depth + 1);
        return o;
      }
    }
  };
  const json valid = chat("tiny-v3", "hello", 2);
  // A valid request with one field made wrong: another JSON type, or a value out of range.
  auto of_type = [&](char t) -> json {
    switch (t) {
      case 's': return std::string(size_t(1 + rng() % 4), char('a' + rng() % 26));
      case 'n': return rng() % 2 ? json(1e300 * (rng() % 2 ? 1 : -1)) : json(18446744073709551615ull);
      case 'a': return json::array({rnd_value(rnd_value, 2), rnd_value(rnd_value, 2)});
      default: return json::object({{"q", rnd_value(rnd_value, 2)}});
    }
  };
  // field -> the JSON types that are wrong for it ('n': numbers out of range count as wrong)
  const std::vector<std::pair<std::string, std::string>> fields = {
      {"model", "nao"}, {"messages", "snoa"}, {"max_tokens", "snao"}, {"temperature", "snao"}, {"top_p", "snao"},
      {"n", "snao"}, {"presence_penalty", "snao"}, {"frequency_penalty", "snao"}, {"top_logprobs", "snao"},
      {"seed", "sao"}, {"stream", "snao"}, {"logprobs", "snao"}, {"stop", "no"}, {"response_format", "sna"},
      {"tools", "sno"}, {"tool_choice", "na"}, {"stream_options", "sna"}};
  std::vector<std::pair<std::string, std::string>> bodies;  // (path, body)
  for (int i = 0; i < 150; ++i) {
    json b = valid;
    const auto& [f, types] = fields[rng() % fields.size()];
    json v = of_type(types[rng() % types.size()]);
    if (f == "messages" && v.is_array()) v = json::array({json::object({{"role", "user"}, {"content", of_type("nao"[rng() % 3])}})});
    if (f == "model" && v.is_string()) v = "no-such-model";
    if (f == "top_logprobs") b["logprobs"] = true;
    b[f] = v;
    bodies.push_back({"/v1/chat/completions", b.dump()});
  }
  for (int i = 0; i < 40; ++i) bodies.push_back({i % 2 ? "/v1/completions" : "/v1/chat/completions", rnd_value(rnd_value, 0).dump()});
  for (int i = 0; i < 40; ++i) {  // random bytes, truncations, invalid UTF-8
    std::string b = valid.dump();
    if (i % 3 == 0) b = b.substr(0, rng() % b.size());
    else if (i % 3 == 1) b[rng() % b.size()] = char(0x80 + rng() % 64);
    else for (int k = 0; k < 8; ++k) b[rng() % b.size()] = char(rng() % 256);
    if (json::accept(b)) b += "}";
    bodies.push_back({"/v1/chat/completions", b});
  }
  bodies.push_back({"/v1/chat/completions", std::string(100000, '[') + std::string(100000, ']')});
  bodies.push_back({"/v1/chat/completions", "{\"model\":\"tiny-v3\",\"messages\":[{\"role\":\"user\",\"content\":\"\xed\xa0\x80\"}]}"});
  bodies.push_back({"/v1/chat/completions", R"({"model":"tiny-v3","messages":[{"role":"user","content":"x"}],"max_tokens":1e400})"});
  bodies.push_back({"/v1/chat/completions", R"({"model":"tiny-v3","messages":[{"role":"user","content":"x"}],"n":1000000})"});
  bodies.push_back({"/v1/chat/completions", "{\"model\":\"tiny-v3\",\"messages\":[{\"role\":\"user\",\"content\":\"" + std::string(3 << 20, 'x') + "\"}]}"});
  bodies.push_back({"/v1/chat/completions", std::string(10 << 20, 'x')});
  bodies.push_back({"/tokenize", "{\"content\": 5}"});
  bodies.push_back({"/detokenize", "{\"tokens\": [-1, 99999999999]}"});
  bodies.push_back({"/apply-template", "{\"messages\": 3}"});
  for (const auto& [path, body] : bodies) {
    auto r = c.Post(path, body, "application/json");
    ASSERT_TRUE(r) << "no answer to " << body.substr(0, 200);
    EXPECT_GE(r->status, 400) << body.substr(0, 300) << " -> " << r->body.substr(0, 300);
    EXPECT_LT(r->status, 500) << body.substr(0, 300) << " -> " << r->body.substr(0, 300);
    ASSERT_TRUE(json::accept(r->body)) << r->body.substr(0, 200);
    const json e = json::parse(r->body);
    EXPECT_TRUE(e.contains("error") && e["error"]["message"].is_string()) << r->body;
  }
  EXPECT_TRUE(s.running());
  int st = 0;
  post_json(c, "/v1/chat/completions", valid, &st);
  EXPECT_EQ(st, 200);
}

TEST(ServeLoad, SigtermDrainsInFlightRequestsAndExitsZero) {
  ServeProcess s({"--model", tiny_model("v3")});
  ASSERT_TRUE(s.wait_ready()) << s.log();
  std::atomic<bool> signalled{false};
  SseResult r;
  std::thread t([&] {
    auto c = s.client();
    r = post_sse(c, "/v1/chat/completions", chat("tiny-v3", "a long answer", 120, {{"stream", true}}), [&](const json&) {
      if (!signalled.exchange(true)) s.signal(SIGTERM);  // mid-stream
      return true;
    });
  });
  t.join();
  EXPECT_TRUE(signalled.load());
  EXPECT_EQ(r.status, 200);
  EXPECT_TRUE(r.done) << "the stream was cut by the shutdown";
  std::string finish;
  int chunks = 0;
  for (const auto& e : r.events)
    if (!e["choices"].empty()) {
      ++chunks;
      if (!e["choices"][0]["finish_reason"].is_null()) finish = e["choices"][0]["finish_reason"];
    }
  EXPECT_EQ(finish, "length");
  EXPECT_GE(chunks, 100);
  EXPECT_EQ(s.wait_exit(30), 0) << s.log();
  auto c = s.client(2);
  EXPECT_FALSE(c.Get("/health")) << "still accepting after SIGTERM";
}

int prompt_hits(const json& r) { return r["usage"]["prompt_cache_hit_tokens"]; }

// TTFT of a streamed chat request with this system prompt, and its usage.
std::pair<double, json> timed(httplib::Client& c, const std::string& model, const std::string& system, const std::string& user) {
  json b = {{"model", model},
            {"messages", {{{"role", "system"}, {"content", system}}, {{"role", "user"}, {"content", user}}}},
            {"max_tokens", 4},
            {"temperature", 0},
            {"stream", true},
            {"stream_options", {{"include_usage", true}}}};
  const auto r = post_sse(c, "/v1/chat/completions", b);
  EXPECT_TRUE(r.done);
  return {r.first_s, r.events.back()["usage"]};
}

TEST(ServeCache, RepeatedSystemPromptHitsTheCacheAndStartsFaster) {
  ServeProcess s({"--model", tiny_model("v3"), "--quiet"});
  ASSERT_TRUE(s.wait_ready()) << s.log();
  auto c = s.client();
  double cold = 1e9, warm = 1e9;
  for (int k = 0; k < 3; ++k) {
    const std::string system = "You are agent " + std::to_string(k) + ". " + words(2500, k);
    const auto [t1, u1] = timed(c, "tiny-v3", system, "first question");
    const auto [t2, u2] = timed(c, "tiny-v3", system, "second question");
    EXPECT_EQ(u1["prompt_cache_hit_tokens"], 0);
    const int prompt = u2["prompt_tokens"];
    const int hit = u2["prompt_cache_hit_tokens"];
    EXPECT_GT(hit, prompt - 64 - 16) << "the system prompt's blocks were not reused";
    EXPECT_EQ(hit % 64, 0) << "hits are counted in full blocks of 64 tokens";
    EXPECT_EQ(u2["prompt_tokens_details"]["cached_tokens"], hit);
    EXPECT_EQ(u2["prompt_cache_miss_tokens"], prompt - hit);
    cold = std::min(cold, t1);
    warm = std::min(warm, t2);
  }
  EXPECT_LT(warm, cold) << "time to first token: cached " << warm << " s, uncached " << cold << " s";
  EXPECT_GT(metric(c, "qiusuo_prompt_cached_tokens_total"), 0);
}

std::vector<std::string> entries(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (e.path().extension() == ".kvb") out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

TEST(ServeCache, DiskCacheSurvivesRestartsAndIgnoresBadEntries) {
  TempDir cache("kvcache");
  const std::string system = "You are a careful assistant. " + words(700, 3);
  const std::string user = "What now?";
  json first;
  {
    ServeProcess s({"--model", tiny_model("v3"), "--cache-dir", cache.path});
    ASSERT_TRUE(s.wait_ready()) << s.log();
    auto c = s.client();
    const auto [t, u] = timed(c, "tiny-v3", system, user);
    first = u;
    EXPECT_EQ(prompt_hits(json{{"usage", u}}), 0);
    const int full_blocks = first["prompt_tokens"].get<int>() / 64;
    for (int i = 0; i < 500 && metric(c, "qiusuo_disk_cache_written_blocks_total") < full_blocks; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    EXPECT_EQ(metric(c, "qiusuo_disk_cache_written_blocks_total"), full_blocks);
    EXPECT_EQ(s.stop(), 0) << s.log();
  }
  const auto files = entries(cache.path);
  ASSERT_GE(files.size(), 10u);
  json second;
  std::string second_text;
  {
    ServeProcess s({"--model", tiny_model("v3"), "--cache-dir", cache.path});
    ASSERT_TRUE(s.wait_ready()) << s.log();
    auto c = s.client();
    const auto [t, u] = timed(c, "tiny-v3", system, user);
    second = u;
    EXPECT_EQ(u["prompt_tokens"], first["prompt_tokens"]);
    EXPECT_GE(u["prompt_cache_hit_tokens"].get<int>(), int(files.size()) * 64 - 64) << s.log();
    EXPECT_GT(metric(c, "qiusuo_disk_cache_loaded_blocks_total"), 0);
    int st = 0;
    second_text = post_json(c, "/v1/chat/completions",
                            {{"model", "tiny-v3"}, {"max_tokens", 6}, {"temperature", 0},
                             {"messages", {{{"role", "system"}, {"content", system}}, {{"role", "user"}, {"content", user}}}}},
                            &st)["choices"][0]["message"]["content"];
    EXPECT_EQ(s.stop(), 0);
  }
  // Damage entries: a flipped byte in the middle block, a truncated later one, one of another model.
  const std::string bad_sum = files[files.size() / 2];
  {
    std::fstream f(bad_sum, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(2000);
    f.put('\x5a');
  }
  std::filesystem::resize_file(files.back(), std::filesystem::file_size(files.back()) / 2);
  {
    std::string foreign = read_file(files[0]);
    foreign[16] ^= 0x55;  // the model identity
    std::ofstream(cache.path + "/00000000000000aa.kvb", std::ios::binary) << foreign;
  }
  {
    ServeProcess s({"--model", tiny_model("v3"), "--cache-dir", cache.path});
    ASSERT_TRUE(s.wait_ready()) << s.log();
    auto c = s.client();
    int st = 0;
    const json r = post_json(c, "/v1/chat/completions",
                             {{"model", "tiny-v3"}, {"max_tokens", 6}, {"temperature", 0},
                              {"messages", {{{"role", "system"}, {"content", system}}, {{"role", "user"}, {"content", user}}}}},
                             &st);
    ASSERT_EQ(st, 200);
    EXPECT_EQ(r["choices"][0]["message"]["content"], second_text) << "damaged entries changed the output";
    // Only the blocks before the damaged one come from disk.
    EXPECT_LE(r["usage"]["prompt_cache_hit_tokens"].get<int>(), int(files.size() / 2) * 64 + 64);
    const std::string log = s.log();
    EXPECT_NE(log.find("bad checksum"), std::string::npos) << log;
    EXPECT_NE(log.find("truncated"), std::string::npos) << log;
    EXPECT_NE(log.find("another model"), std::string::npos) << log;
    EXPECT_EQ(s.stop(), 0);
  }
}

TEST(ServeFixtures, StartsOnEveryModelFixture) {
  const std::string root = std::string(QS_FIXTURES) + "/model";
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator(root)) {
    if (!std::filesystem::exists(e.path() / "config.json")) continue;
    ++n;
    ServeProcess s({"--model", e.path().string(), "--served-model-name", "m", "--quiet"});
    ASSERT_TRUE(s.wait_ready()) << s.log();
    auto c = s.client();
    int st = 0;
    // No tokenizer: prompts as token ids.
    const json r = post_json(c, "/v1/completions", {{"model", "m"}, {"prompt", {1, 2, 3, 4}}, {"max_tokens", 4}, {"temperature", 0}, {"ignore_eos", true}}, &st);
    EXPECT_EQ(st, 200) << e.path() << ": " << r.dump();
    EXPECT_EQ(r["usage"]["completion_tokens"], 4) << e.path();
    const json ch = post_json(c, "/v1/chat/completions", chat("m", "x", 2), &st);
    EXPECT_EQ(st, 400) << ch.dump();
    EXPECT_EQ(s.stop(), 0);
  }
  EXPECT_GE(n, 4);
}

}  // namespace
}  // namespace qs::testing_util
