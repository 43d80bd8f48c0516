#include "qiusuo/serve/server.h"

#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <random>
#include <thread>

#include "qiusuo/core/error.h"
#include "qiusuo/core/parallel.h"
#include "qiusuo/core/timer.h"
#include "qiusuo/infer/chat.h"
#include "qiusuo/infer/engine.h"
#include "qiusuo/io/file.h"
#include "qiusuo/serve/api_error.h"
#include "qiusuo/serve/choice.h"
#include "qiusuo/serve/connection.h"
#include "qiusuo/serve/constraint.h"
#include "qiusuo/serve/disk_cache.h"
#include "qiusuo/serve/log.h"
#include "qiusuo/serve/metrics.h"
#include "qiusuo/serve/protocol.h"
#include "qiusuo/serve/tool_calls.h"
#include "qiusuo/serve/web_assets.h"

namespace qs::serve {
namespace {
using json = nlohmann::json;
using ojson = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

constexpr size_t kMaxBody = size_t(8) << 20;  // request bodies above this get 413
constexpr auto kPoll = std::chrono::milliseconds(100);

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }
std::string dump(const ojson& j) { return j.dump(-1, ' ', false, ojson::error_handler_t::replace); }

std::string random_hex(int n) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char* hex = "0123456789abcdef";
  std::string s;
  for (int i = 0; i < n; ++i) s.push_back(hex[rng() % 16]);
  return s;
}

int64_t unix_time() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string base64_decode(const std::string& in) {
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
  };
  std::string out;
  int buf = 0, bits = 0;
  for (char c : in) {
    const int v = val(c);
    if (v < 0) break;
    buf = (buf << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(char((buf >> bits) & 0xff));
    }
  }
  return out;
}

bool same_secret(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char d = 0;
  for (size_t i = 0; i < a.size(); ++i) d |= uint8_t(a[i] ^ b[i]);
  return d == 0;
}

// A request's generations: the engine thread pushes items, the HTTP thread takes them.
struct Job {
  struct Item {
    int choice = 0;
    bool done = false;
    TokenEvent ev;
    GenerationResult res;
  };
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Item> items;
  std::vector<int64_t> first_id;   // per prompt: the engine id of its first sample (-1: not submitted)
  int64_t n = 1;                   // samples per prompt
  int total = 0, finished = 0;
  std::atomic<bool> cancelled{false};
  Clock::time_point start = Clock::now();
  std::vector<Clock::time_point> last;  // per choice: time of its last token
  std::vector<char> started;            // per choice: first token seen

  bool wait(std::deque<Item>& out, std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lk(mu);
    cv.wait_for(lk, timeout, [&] { return !items.empty(); });
    out.swap(items);
    return !out.empty();
  }
  bool all_done() {
    std::lock_guard<std::mutex> lk(mu);
    return finished >= total;
  }
};

// One prompt of a generation request, ready for the engine.
struct PromptPlan {
  std::vector<int32_t> ids;
  std::string echo;  // completions with echo: the prompt text
};

struct GenPlan {
  bool chat = true;
  bool stream = false, include_usage = false;
  int64_t n = 1;
  std::vector<PromptPlan> prompts;
  SamplingParams params;
  int top_logprobs = 0;
  ChoiceSetup setup;
  std::function<LogitsProcessor()> processor;  // a fresh constraint per prompt (null: none)
  std::string model;
};

}  // namespace

struct Server::Impl {
  ServerOptions opt;
  httplib::Server http;
  std::thread listen_thread, engine_thread;
  std::atomic<int> listen_fd{-1};
  std::atomic<int> port{0};
  std::atomic<bool> ready{false}, draining{false}, stopping{false}, engine_stop{false};
  std::mutex stop_mu;
  std::condition_variable stop_cv;

  std::unique_ptr<Model> model;
  std::unique_ptr<Tokenizer> tok;
  std::unique_ptr<ChatFormatter> fmt;
  std::unique_ptr<Engine> engine;
  std::unique_ptr<DiskCache> disk;
  std::shared_ptr<const TokenBytes> vocab;
  std::once_flag vocab_once;
  std::string model_name, fingerprint;
  bool reasoning_template = false, template_uses_tools = false;
  std::vector<int32_t> eos;
  int64_t ctx = 0;
  int64_t limit = 0;                 // sequences admitted at most
  std::atomic<int64_t> in_flight{0};
  Metrics metrics;
  std::vector<std::vector<int32_t>> persist_pending;  // engine thread only
  bool persist_posted = false;                        // engine thread only

  explicit Impl(ServerOptions o) : opt(std::move(o)) {}

  // ---- setup -------------------------------------------------------------------------------
  void setup_http();
  void load();
  bool authorized(const httplib::Request& req) const;
  static std::string route_label(const std::string& path);

  // ---- handlers ----------------------------------------------------------------------------
  void handle_chat(const httplib::Request& req, httplib::Response& res);
  void handle_completion(const httplib::Request& req, httplib::Response& res);
  void handle_models(const httplib::Request& req, httplib::Response& res);
  void handle_tokenize(const httplib::Request& req, httplib::Response& res);
  void handle_detokenize(const httplib::Request& req, httplib::Response& res);
  void handle_apply_template(const httplib::Request& req, httplib::Response& res);
  void handle_metrics(const httplib::Request& req, httplib::Response& res);
  void check_model(const std::string& name) const;
  const Tokenizer& need_tokenizer(const char* what) const;
  std::shared_ptr<const TokenBytes> token_bytes();
  void finalize_params(const ApiRequest& ar, int64_t prompt_len, SamplingParams& p) const;
  void generate(const httplib::Request& req, httplib::Response& res, GenPlan plan);
  std::shared_ptr<Job> submit(GenPlan& plan);
  void persist_prompt(const std::vector<int32_t>& prompt);
  ojson response_json(const GenPlan& plan, const std::string& id, int64_t created, std::vector<ChoiceOutput>& outs) const;
  ojson chunk_json(const GenPlan& plan, const std::string& id, int64_t created, int index, const ChoiceDelta& d,
                  bool first, const std::string* finish, bool with_usage, size_t call_base = 0) const;
  ojson usage_of(const GenPlan& plan, const std::vector<ChoiceOutput>& outs) const;
};

// ---- authentication, routes ------------------------------------------------------------------

bool Server::Impl::authorized(const httplib::Request& req) const {
  if (opt.api_key.empty()) return true;
  const std::string h = req.get_header_value("Authorization");
  if (h.rfind("Bearer ", 0) == 0) return same_secret(h.substr(7), opt.api_key);
  if (h.rfind("Basic ", 0) == 0) {  // browsers (the web page): any user, the key as password
    const std::string up = base64_decode(h.substr(6));
    const size_t colon = up.find(':');
    return colon != std::string::npos && same_secret(up.substr(colon + 1), opt.api_key);
  }
  return false;
}

std::string Server::Impl::route_label(const std::string& path) {
  static const char* known[] = {"/v1/chat/completions", "/chat/completions", "/beta/chat/completions",
                                "/v1/completions", "/completions", "/beta/completions", "/v1/models", "/models",
                                "/health", "/v1/health", "/metrics", "/tokenize", "/detokenize", "/apply-template", "/"};
  for (const char* k : known)
    if (path == k) return k;
  if (path.rfind("/v1/models/", 0) == 0) return "/v1/models/{id}";
  for (size_t i = 0; i < kWebAssetCount; ++i)
    if (path == kWebAssets[i].path) return "/assets";
  return "other";
}

void send_error(httplib::Response& res, const ApiError& e) {
  res.status = e.status;
  if (e.status == 401) res.set_header("WWW-Authenticate", "Bearer realm=\"qiusuo\"");
  if (e.status == 429 || e.status == 503) res.set_header("Retry-After", "1");
  res.set_content(dump(e.body()), "application/json");
}

void Server::Impl::setup_http() {
  const int threads = opt.http_threads > 0 ? opt.http_threads : int(limit + 32);
  http.new_task_queue = [threads] { return new httplib::ThreadPool(size_t(threads)); };
  http.set_payload_max_length(kMaxBody);
  http.set_tcp_nodelay(true);
  http.set_keep_alive_max_count(1000);
  http.set_keep_alive_timeout(3);
  http.set_read_timeout(30);
  http.set_write_timeout(30);
  http.set_socket_options([this](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    listen_fd = int(sock);
  });

  http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (req.path == "/health" || req.path == "/v1/health") return httplib::Server::HandlerResponse::Unhandled;
    if (!authorized(req)) {
      send_error(res, ApiError(401, "Authentication Fails: the API key is missing or wrong (send it as "
                                    "\"Authorization: Bearer KEY\")", "", "invalid_api_key"));
      // The web page: let the browser ask (any user name, the key as password).
      if (req.method == "GET" && route_label(req.path) != "other" && req.path.rfind("/v1", 0) != 0 &&
          req.path != "/metrics" && req.path != "/models")
        res.set_header("WWW-Authenticate", "Basic realm=\"qiusuo\", charset=\"UTF-8\"");
      return httplib::Server::HandlerResponse::Handled;
    }
    if (draining) {
      res.set_header("Connection", "close");
      send_error(res, ApiError(503, "the server is shutting down", "", "server_shutting_down"));
      return httplib::Server::HandlerResponse::Handled;
    }
    const std::string r = route_label(req.path);
    if (!ready && r != "/metrics" && r != "/" && r != "/assets" && r != "other") {
      res.set_header("Retry-After", "1");
      send_error(res, ApiError(503, "the model is loading", "", "model_loading"));
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });

  http.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    std::string msg;
    switch (res.status) {
      case 404: msg = "no route " + req.method + " " + req.path; break;
      case 413: msg = "the request body is larger than " + std::to_string(kMaxBody >> 20) + " MiB"; break;
      case 400: msg = "malformed HTTP request"; break;
      default: msg = "HTTP error " + std::to_string(res.status);
    }
    res.set_content(dump(ApiError(res.status, msg).body()), "application/json");
  });
  http.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "internal error";
    try {
      if (ep) std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = std::string("internal error: ") + e.what();
    } catch (...) {
    }
    res.status = 500;
    res.set_content(dump(ApiError(500, what).body()), "application/json");
  });
  http.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
    metrics.count_request(route_label(req.path), res.status);
    if (opt.log_requests) log_line(req.method + " " + req.path + " " + std::to_string(res.status));
  });

  // Every handler: errors become their JSON body; nothing escapes to the HTTP library.
  auto wrap = [this](void (Impl::*fn)(const httplib::Request&, httplib::Response&)) {
    return [this, fn](const httplib::Request& req, httplib::Response& res) {
      try {
        (this->*fn)(req, res);
      } catch (const ApiError& e) {
        send_error(res, e);
      } catch (const Error& e) {
        const int status = e.kind() == ErrorKind::Internal || e.kind() == ErrorKind::Io ? 500 : 400;
        send_error(res, ApiError(status, e.what()));
      } catch (const std::bad_alloc&) {
        send_error(res, ApiError(500, "out of memory while handling the request"));
      } catch (const std::exception& e) {
        send_error(res, ApiError(500, std::string("internal error: ") + e.what()));
      }
    };
  };
  for (const char* p : {"/v1/chat/completions", "/chat/completions", "/beta/chat/completions"})
    http.Post(p, wrap(&Impl::handle_chat));
  for (const char* p : {"/v1/completions", "/completions", "/beta/completions"})
    http.Post(p, wrap(&Impl::handle_completion));
  for (const char* p : {"/v1/models", "/models", R"(/v1/models/(.+))"}) http.Get(p, wrap(&Impl::handle_models));
  http.Post("/tokenize", wrap(&Impl::handle_tokenize));
  http.Post("/detokenize", wrap(&Impl::handle_detokenize));
  http.Post("/apply-template", wrap(&Impl::handle_apply_template));
  http.Get("/metrics", wrap(&Impl::handle_metrics));
  auto health = [this](const httplib::Request&, httplib::Response& res) {
    if (ready) {
      res.set_content(R"({"status":"ok"})", "application/json");
    } else {
      res.status = 503;
      res.set_header("Retry-After", "1");
      res.set_content(R"({"status":"loading"})", "application/json");
    }
  };
  http.Get("/health", health);
  http.Get("/v1/health", health);
  for (size_t i = 0; i < kWebAssetCount; ++i) {
    const WebAsset& a = kWebAssets[i];
    auto serve_asset = [&a](const httplib::Request&, httplib::Response& res) {
      res.set_content(reinterpret_cast<const char*>(a.data), a.size, a.content_type);
      res.set_header("Cache-Control", "no-cache");
    };
    http.Get(a.path, serve_asset);
    if (std::string(a.path) == "/index.html") http.Get("/", serve_asset);
  }
  if (kWebAssetCount == 0)
    http.Get("/", [](const httplib::Request&, httplib::Response& res) {
      res.set_content("<!doctype html><title>qiusuo</title><p>The web page was not built into this binary "
                      "(web/build.sh, then rebuild).</p>",
                      "text/html; charset=utf-8");
    });
}

// ---- loading ---------------------------------------------------------------------------------

void Server::Impl::load() {
  Stopwatch sw;
  const SpeculationChoice spec = resolve_speculation(opt.speculative, opt.model_dir);
  model = Model::load(opt.model_dir, /*with_mtp=*/spec.on, opt.placement);
  if (file_exists(path_join(opt.model_dir, "tokenizer.json"))) {
    tok = std::make_unique<Tokenizer>(Tokenizer::load(opt.model_dir));
    if (!tok->chat_template().empty()) {
      fmt = std::make_unique<ChatFormatter>(*tok);
      reasoning_template = tok->chat_template().find("</think>") != std::string::npos;
      template_uses_tools = tok->chat_template().find("tools") != std::string::npos;
    }
  }
  const ModelConfig& cfg = model->config();
  ctx = opt.ctx;
  if (cfg.max_position_embeddings > 0 && ctx > cfg.max_position_embeddings) {
    log_line("--ctx " + std::to_string(ctx) + " exceeds the model's " + std::to_string(cfg.max_position_embeddings) +
             " positions: using " + std::to_string(cfg.max_position_embeddings));
    ctx = cfg.max_position_embeddings;
  }
  EngineOptions eo;
  eo.max_seqs = opt.max_batch;
  eo.block_size = 64;
  eo.max_step_tokens = opt.max_step_tokens;
  eo.max_model_len = ctx;
  eo.compute = opt.compute;
  eo.kv_dtype = opt.kv_dtype;
  eo.speculative = spec.on;
  const int64_t bytes_per_token =
      int64_t(kv_row_bytes(kv_dtype_of(eo), cfg.kv_lora_rank, cfg.qk_rope_head_dim)) * kv_pool_layers(cfg, eo);
  const int64_t pool_tokens = (opt.kv_cache_mb << 20) / std::max<int64_t>(1, bytes_per_token);
  eo.cache_tokens = std::max(ctx + eo.block_size, pool_tokens);
  engine = std::make_unique<Engine>(*model, tok.get(), eo);
  for (int64_t e : cfg.eos_token_ids) eos.push_back(int32_t(e));
  if (tok && tok->eos_id() >= 0) eos.push_back(tok->eos_id());
  const uint64_t id = model_identity(opt.model_dir, opt.compute, kv_dtype_of(eo));
  char fp[32];
  std::snprintf(fp, sizeof fp, "fp_qs_%08llx", (unsigned long long)(id & 0xffffffffull));
  fingerprint = fp;
  if (!opt.cache_dir.empty()) {
    DiskCacheOptions d;
    d.dir = opt.cache_dir;
    d.max_bytes = opt.cache_size_mb << 20;
    d.model_id = id;
    d.block_size = eo.block_size;
    // A block as the pool stores it, in 4-byte words (rows are 16-byte aligned).
    d.layers = engine->pool().num_layers();
    d.width = int64_t(engine->pool().row_bytes() / 4);
    disk = std::make_unique<DiskCache>(d);
  }
  log_line("loaded " + opt.model_dir + " as '" + model_name + "' in " + std::to_string(int(sw.elapsed() * 1000)) +
           " ms: context " + std::to_string(ctx) + ", KV pool " + std::to_string(engine->stats().blocks_total) +
 " blocks of " + std::to_string(eo.block_size) + " tokens (" + kv_dtype_name(kv_dtype_of(eo)) + "), batch " + std::to_string(opt.max_batch) +
           ", queue " + std::to_string(opt.queue) + ", speculative decoding " + (spec.on ? "mtp" : "none") +
           (opt.speculative == SpeculativeMode::Auto ? " (auto: " + spec.why + ")" : "") +
           (tok ? "" : ", no tokenizer (token-id prompts only)") +
           (fmt ? "" : ", no chat template"));
}

// ---- small routes ----------------------------------------------------------------------------

void Server::Impl::check_model(const std::string& name) const {
  if (name != model_name)
    throw ApiError(400, "Model Not Exist: '" + name + "' (this server serves '" + model_name + "')", "model",
                   "model_not_found");
}

const Tokenizer& Server::Impl::need_tokenizer(const char* what) const {
  if (!tok) throw ApiError(400, std::string(what) + " needs a tokenizer, and the model directory has no tokenizer.json");
  return *tok;
}

std::shared_ptr<const TokenBytes> Server::Impl::token_bytes() {
  std::call_once(vocab_once, [&] { vocab = std::make_shared<TokenBytes>(*tok, model->config().vocab_size, eos); });
  return vocab;
}

void Server::Impl::handle_models(const httplib::Request& req, httplib::Response& res) {
  ojson m = {{"id", model_name}, {"object", "model"}, {"created", 0}, {"owned_by", "qiusuo"}, {"max_model_len", ctx}};
  if (req.matches.size() > 1) {
    if (req.matches[1] != model_name) throw ApiError(404, "Model Not Exist: '" + std::string(req.matches[1]) + "'", "model", "model_not_found");
    res.set_content(dump(m), "application/json");
    return;
  }
  res.set_content(dump(ojson{{"object", "list"}, {"data", {m}}}), "application/json");
}

void Server::Impl::handle_metrics(const httplib::Request&, httplib::Response& res) {
  ServerGauges g;
  g.in_flight = in_flight;
  g.queue_limit = limit;
  g.ready = ready;
  if (disk) {
    const auto s = disk->stats();
    g.disk_entries = s.entries;
    g.disk_bytes = s.bytes;
    g.disk_loaded = s.loaded;
    g.disk_written = s.written;
    g.disk_ignored = s.ignored;
  }
  EngineStats st;
  if (engine) st = engine->stats();
  res.set_content(metrics.render(engine ? &st : nullptr, g), "text/plain; version=0.0.4; charset=utf-8");
}

void Server::Impl::handle_tokenize(const httplib::Request& req, httplib::Response& res) {
  const json body = parse_body(req.body);
  const Tokenizer& t = need_tokenizer("/tokenize");
  auto it = body.find("content");
  if (it == body.end() || !it->is_string()) bad_type("content", "missing field `content` (a string)");
  bool add_special = false, pieces = false;
  if (auto a = body.find("add_special"); a != body.end() && !a->is_null()) {
    if (!a->is_boolean()) bad_type("add_special", "add_special: invalid type, expected a boolean");
    add_special = *a;
  }
  if (auto a = body.find("with_pieces"); a != body.end() && !a->is_null()) {
    if (!a->is_boolean()) bad_type("with_pieces", "with_pieces: invalid type, expected a boolean");
    pieces = *a;
  }
  std::vector<int32_t> ids;
  try {
    ids = t.encode(it->get<std::string>(), add_special);
  } catch (const Error& e) {
    bad_value("content", e.what());
  }
  ojson out = ojson::array();
  for (int32_t id : ids) {
    if (pieces) out.push_back({{"id", id}, {"piece", token_text(&t, id)}});
    else out.push_back(id);
  }
  res.set_content(dump(ojson{{"tokens", out}}), "application/json");
}

void Server::Impl::handle_detokenize(const httplib::Request& req, httplib::Response& res) {
  const json body = parse_body(req.body);
  const Tokenizer& t = need_tokenizer("/detokenize");
  auto it = body.find("tokens");
  if (it == body.end() || !it->is_array()) bad_type("tokens", "missing field `tokens` (an array of token ids)");
  std::vector<int32_t> ids;
  for (size_t i = 0; i < it->size(); ++i) {
    const json& v = (*it)[i];
    if (!v.is_number_integer()) bad_type("tokens", "tokens[" + std::to_string(i) + "]: invalid type, expected a token id");
    const int64_t x = v.is_number_unsigned() ? int64_t(std::min<uint64_t>(v.get<uint64_t>(), 1ull << 40)) : v.get<int64_t>();
    if (x < 0 || x >= t.vocab_size()) bad_value("tokens", "token id " + v.dump() + " is outside the vocabulary");
    ids.push_back(int32_t(x));
  }
  res.set_content(dump(json{{"content", t.decode(ids)}}), "application/json");
}

void Server::Impl::handle_apply_template(const httplib::Request& req, httplib::Response& res) {
  const json body = parse_body(req.body);
  need_tokenizer("/apply-template");
  if (!fmt) throw ApiError(400, "the tokenizer has no chat template");
  json b = body;
  if (!b.contains("model")) b["model"] = model_name;
  const ApiRequest ar = parse_chat_request(b);
  json msgs = ar.messages;
  ChatOptions co;
  if (!ar.tools.is_null() && ar.tool_choice != "none") {
    co.tools = ar.tools;
    if (!template_uses_tools)
      msgs.insert(msgs.begin(), json{{"role", "system"}, {"content", tools_system_prompt(ar.tools)}});
  }
  ChatPrompt cp;
  try {
    cp = fmt->render(msgs, co);
  } catch (const Error& e) {
    bad_value("messages", e.what());
  }
  res.set_content(dump(json{{"prompt", cp.text}}), "application/json");
}

// ---- generation: parameters, submission ------------------------------------------------------

void Server::Impl::finalize_params(const ApiRequest& ar, int64_t prompt_len, SamplingParams& p) const {
  if (prompt_len >= ctx || (ar.max_tokens_given && prompt_len + p.max_tokens > ctx))
    throw ApiError(400,
                   "This model's maximum context length is " + std::to_string(ctx) + " tokens. However, you requested " +
                       std::to_string(prompt_len + (ar.max_tokens_given ? p.max_tokens : 1)) + " tokens (" +
                       std::to_string(prompt_len) + " in the messages, " +
                       std::to_string(ar.max_tokens_given ? p.max_tokens : 1) +
                       " in the completion). Please reduce the length of the messages or completion.",
                   "messages", "context_length_exceeded");
  if (!ar.max_tokens_given) p.max_tokens = ctx - prompt_len;
}

void Server::Impl::persist_prompt(const std::vector<int32_t>& prompt) {
  // Engine thread (on_finish): batch the prompts of requests that end in one step.
  persist_pending.push_back(prompt);
  if (persist_posted) return;
  persist_posted = true;
  engine->post([this] {
    persist_posted = false;
    auto prompts = std::move(persist_pending);
    persist_pending.clear();
    try {
      disk->persist(*engine, prompts);
    } catch (const std::exception& e) {
      log_line(std::string("disk cache: persist failed: ") + e.what());
    }
  });
}

std::shared_ptr<Job> Server::Impl::submit(GenPlan& plan) {
  const int64_t seqs = plan.n * int64_t(plan.prompts.size());
  // Admission: a bounded number of sequences in the engine (running + waiting).
  int64_t cur = in_flight.load();
  do {
    if (cur + seqs > limit) {
      ApiError e(429, "Rate Limit Reached: the server is at its queue limit (" + std::to_string(limit) +
                          " sequences); retry later", "", "rate_limit_exceeded");
      throw e;
    }
  } while (!in_flight.compare_exchange_weak(cur, cur + seqs));
  auto job = std::make_shared<Job>();
  job->n = plan.n;
  job->total = int(seqs);
  job->first_id.assign(plan.prompts.size(), -1);
  job->last.assign(size_t(seqs), job->start);
  job->started.assign(size_t(seqs), 0);
  // The callbacks read first_id: hold the job's lock until every prompt is submitted.
  std::unique_lock<std::mutex> lk(job->mu);
  size_t submitted = 0;
  try {
    for (size_t p = 0; p < plan.prompts.size(); ++p) {
      const auto& ids = plan.prompts[p].ids;
      if (disk) {
        if (auto task = disk->prefetch(ids)) engine->post([task, e = engine.get()] { task(*e); });
      }
      GenerationRequest gr;
      gr.prompt = ids;
      gr.params = plan.params;
      gr.n = plan.n;
      gr.top_logprobs = plan.top_logprobs;
      if (plan.processor) gr.processor = plan.processor();
      const int base = int(p * size_t(plan.n));
      gr.on_event = [this, job, p, base](const TokenEvent& ev) {
        const auto now = Clock::now();
        std::lock_guard<std::mutex> g(job->mu);
        const int c = base + int(ev.request - job->first_id[p]);
        if (ev.token >= 0) {
          if (!job->started[size_t(c)]) {
            job->started[size_t(c)] = 1;
            metrics.observe_ttft(std::chrono::duration<double>(now - job->start).count());
          } else {
            metrics.observe_itl(std::chrono::duration<double>(now - job->last[size_t(c)]).count());
          }
          job->last[size_t(c)] = now;
        }
        job->items.push_back({c, false, ev, {}});
        job->cv.notify_all();
        return !job->cancelled.load();
      };
      gr.on_finish = [this, job, p, base](GenerationResult&& r) {
        const bool first_sample = [&] {
          std::lock_guard<std::mutex> g(job->mu);
          const int c = base + int(r.request - job->first_id[p]);
          metrics.count_tokens(c == base ? r.prompt_tokens : 0, c == base ? r.cached_tokens : 0,
                               int64_t(r.tokens.size()));
          metrics.observe_e2e(std::chrono::duration<double>(Clock::now() - job->start).count());
          Job::Item it;
          it.choice = c;
          it.done = true;
          it.res = std::move(r);
          job->items.push_back(std::move(it));
          job->finished++;
          job->cv.notify_all();
          return c == base;
        }();
        (void)first_sample;
        in_flight--;
      };
      if (disk) {
        auto user = std::move(gr.on_finish);
        gr.on_finish = [this, user, ids, base, job, p](GenerationResult&& r) {
          const bool first = r.request == job->first_id[p];
          const bool ok = r.reason == FinishReason::Stop || r.reason == FinishReason::Length;
          user(std::move(r));
          if (first && ok) persist_prompt(ids);
        };
      }
      job->first_id[p] = engine->submit(std::move(gr));
      submitted = p + 1;
    }
  } catch (const Error& e) {
    for (size_t p = 0; p < submitted; ++p)
      for (int64_t k = 0; k < plan.n; ++k) engine->cancel(job->first_id[p] + k);
    in_flight -= int64_t(plan.prompts.size() - submitted) * plan.n;
    job->cancelled = true;
    throw ApiError(400, e.what());
  }
  return job;
}

// ---- generation: responses -------------------------------------------------------------------

ojson Server::Impl::usage_of(const GenPlan& plan, const std::vector<ChoiceOutput>& outs) const {
  int64_t prompt = 0, cached = 0, completion = 0, reasoning = 0;
  for (size_t p = 0; p < plan.prompts.size(); ++p) {
    const ChoiceOutput& first = outs[p * size_t(plan.n)];
    prompt += int64_t(plan.prompts[p].ids.size());
    cached += first.result.cached_tokens;
  }
  for (const auto& o : outs) {
    completion += int64_t(o.result.tokens.size());
    reasoning += o.reasoning_tokens;
  }
  return usage_json(prompt, cached, completion, reasoning);
}

ojson Server::Impl::response_json(const GenPlan& plan, const std::string& id, int64_t created,
                                 std::vector<ChoiceOutput>& outs) const {
  ojson choices = ojson::array();
  for (size_t i = 0; i < outs.size(); ++i) {
    ChoiceOutput& o = outs[i];
    ojson c = {{"index", i}};
    if (plan.chat) {
      ojson msg = {{"role", "assistant"}};
      msg["content"] = o.calls.empty() || !o.content.empty() ? ojson(o.content) : ojson(nullptr);
      if (plan.setup.reasoning) msg["reasoning_content"] = o.reasoning.empty() ? ojson(nullptr) : ojson(o.reasoning);
      if (!o.calls.empty()) {
        ojson tc = ojson::array();
        for (size_t k = 0; k < o.calls.size(); ++k) tc.push_back(o.calls[k].to_json(int(k), false));
        msg["tool_calls"] = tc;
      }
      c["message"] = msg;
    } else {
      const std::string& echo = plan.prompts[i / size_t(plan.n)].echo;
      c["text"] = echo + o.content;
    }
    c["logprobs"] = o.logprobs;
    c["finish_reason"] = o.finish_reason;
    choices.push_back(c);
  }
  return {{"id", id},
          {"object", plan.chat ? "chat.completion" : "text_completion"},
          {"created", created},
          {"model", plan.model},
          {"system_fingerprint", fingerprint},
          {"choices", choices},
          {"usage", usage_of(plan, outs)}};
}

ojson Server::Impl::chunk_json(const GenPlan& plan, const std::string& id, int64_t created, int index,
                              const ChoiceDelta& d, bool first, const std::string* finish, bool with_usage,
                              size_t call_base) const {
  ojson c = {{"index", index}};
  ojson logprobs = d.logprobs;
  if (plan.chat) {
    ojson delta = ojson::object();
    if (first) delta["role"] = "assistant";
    if (!d.reasoning.empty()) {
      delta["content"] = nullptr;
      delta["reasoning_content"] = d.reasoning;
    }
    if (!d.content.empty() || (d.reasoning.empty() && d.calls.empty())) {
      delta["content"] = d.content;
      if (plan.setup.reasoning) delta["reasoning_content"] = nullptr;
    }
    if (!d.calls.empty()) {
      ojson tc = ojson::array();
      for (size_t k = 0; k < d.calls.size(); ++k) tc.push_back(d.calls[k].to_json(int(call_base + k), true));
      delta["tool_calls"] = tc;
    }
    if (!d.logprobs.is_null()) logprobs = {{"content", d.logprobs}};
    c["delta"] = delta;
  } else {
    c["text"] = d.content;
  }
  c["logprobs"] = logprobs;
  c["finish_reason"] = finish ? ojson(*finish) : ojson(nullptr);
  ojson out = {{"id", id},
              {"object", plan.chat ? "chat.completion.chunk" : "text_completion"},
              {"created", created},
              {"model", plan.model},
              {"system_fingerprint", fingerprint},
              {"choices", ojson::array({c})}};
  if (with_usage) out["usage"] = nullptr;
  return out;
}

void Server::Impl::generate(const httplib::Request& req, httplib::Response& res, GenPlan plan) {
  auto shared_plan = std::make_shared<GenPlan>(std::move(plan));
  GenPlan& gp = *shared_plan;
  auto job = submit(gp);
  const std::string id = (gp.chat ? "chatcmpl-" : "cmpl-") + random_hex(24);
  const int64_t created = unix_time();
  auto watch = std::make_shared<ConnectionWatch>(req.remote_addr, req.remote_port, req.local_port);
  auto outs = std::make_shared<std::vector<ChoiceOutput>>();
  for (int i = 0; i < job->total; ++i) outs->emplace_back(gp.setup);
  auto cancel_all = [this, job, shared_plan] {
    job->cancelled = true;
    for (int64_t first : job->first_id)
      for (int64_t k = 0; k < shared_plan->n; ++k) engine->cancel(first + k);
  };

  if (!gp.stream) {
    std::deque<Job::Item> items;
    std::string error;
    while (true) {
      const bool got = job->wait(items, kPoll);
      // Checked after every wake-up, not only on a timeout: while tokens keep arriving the wait
      // never times out, and a client gone mid-generation would hold its blocks to the end.
      if (watch->closed()) {
        cancel_all();
        res.status = 499;  // nobody to answer (the status only reaches the metrics)
        return;
      }
      if (!got) continue;
      for (auto& it : items) {
        ChoiceOutput& o = (*outs)[size_t(it.choice)];
        if (it.done) {
          o.finish(it.res);
          if (it.res.reason == FinishReason::Error && error.empty()) error = it.res.error;
        } else {
          o.push(it.ev);
        }
      }
      items.clear();
      if (job->all_done()) {
        std::lock_guard<std::mutex> lk(job->mu);
        if (job->items.empty()) break;
      }
    }
    if (!error.empty()) throw ApiError(500, "generation failed: " + error, "", "generation_failed");
    res.set_content(dump(response_json(gp, id, created, *outs)), "application/json");
    return;
  }

  // Streaming: Server-Sent Events, one chunk per delta, then the finish chunks, the usage chunk
  // (stream_options.include_usage) and "data: [DONE]".
  struct StreamState {
    std::vector<char> role_sent;
    int finished = 0;
    bool done = false;
  };
  auto st = std::make_shared<StreamState>();
  st->role_sent.assign(size_t(job->total), 0);
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");
  res.set_chunked_content_provider(
      "text/event-stream",
      [this, job, outs, st, watch, shared_plan, id, created, cancel_all](size_t, httplib::DataSink& sink) {
        const GenPlan& gp = *shared_plan;
        auto send = [&](const ojson& j) {
          const std::string s = "data: " + dump(j) + "\n\n";
          return sink.write(s.data(), s.size());
        };
        if (st->done) {
          sink.done();
          return true;
        }
        std::deque<Job::Item> items;
        if (!job->wait(items, kPoll)) {
          if (watch->closed()) {
            cancel_all();
            return false;
          }
          return true;
        }
        // One delta may hold the end of the reasoning and the start of the content: reasoning
        // chunks carry content null, so those go out as two chunks.
        auto send_delta = [&](int choice, ChoiceDelta d, size_t call_base) {
          const bool first = !st->role_sent[size_t(choice)];
          st->role_sent[size_t(choice)] = 1;
          if (!d.reasoning.empty() && (!d.content.empty() || !d.calls.empty())) {
            ChoiceDelta r;
            r.reasoning = std::move(d.reasoning);
            r.logprobs = std::move(d.logprobs);
            d.reasoning.clear();
            d.logprobs = nullptr;
            if (!send(chunk_json(gp, id, created, choice, r, first, nullptr, gp.include_usage))) return false;
            return send(chunk_json(gp, id, created, choice, d, false, nullptr, gp.include_usage, call_base));
          }
          return send(chunk_json(gp, id, created, choice, d, first, nullptr, gp.include_usage, call_base));
        };
        for (auto& it : items) {
          ChoiceOutput& o = (*outs)[size_t(it.choice)];
          const bool first = !st->role_sent[size_t(it.choice)];
          const size_t calls_before = o.calls.size();
          if (it.done) {
            const ChoiceDelta d = o.finish(it.res);
            if (it.res.reason == FinishReason::Cancelled) {
              st->finished++;
              continue;
            }
            if (it.res.reason == FinishReason::Error) {
              const ojson e = ApiError(500, "generation failed: " + it.res.error, "", "generation_failed").body();
              if (!send(e)) { cancel_all(); return false; }
            }
            if ((!d.empty() || first) && !send_delta(it.choice, d, calls_before)) {
              cancel_all();
              return false;
            }
            ChoiceDelta none;
            if (!send(chunk_json(gp, id, created, it.choice, none, false, &o.finish_reason, gp.include_usage))) {
              cancel_all();
              return false;
            }
            st->finished++;
          } else {
            const ChoiceDelta d = o.push(it.ev);
            if (d.empty() && !first) continue;
            if (!send_delta(it.choice, d, calls_before)) {
              cancel_all();
              return false;
            }
          }
        }
        if (st->finished >= job->total) {
          if (gp.include_usage) {
            ojson u = {{"id", id},
                      {"object", gp.chat ? "chat.completion.chunk" : "text_completion"},
                      {"created", created},
                      {"model", gp.model},
                      {"system_fingerprint", fingerprint},
                      {"choices", json::array()},
                      {"usage", usage_of(gp, *outs)}};
            if (!send(u)) return false;
          }
          const std::string end = "data: [DONE]\n\n";
          if (!sink.write(end.data(), end.size())) return false;
          st->done = true;
          sink.done();
        }
        return true;
      },
      [cancel_all, job](bool success) {
        if (!success || !job->all_done()) cancel_all();
      });
}

// ---- chat completions ------------------------------------------------------------------------

void Server::Impl::handle_chat(const httplib::Request& req, httplib::Response& res) {
  const json body = parse_body(req.body);
  ApiRequest ar = parse_chat_request(body);
  check_model(ar.model);
  need_tokenizer("chat completions");
  if (!fmt) throw ApiError(400, "the model's tokenizer has no chat template: use /v1/completions");
  json messages = ar.messages;
  const bool tools_on = !ar.tools.is_null() && ar.tool_choice != "none";
  ChatOptions co;
  if (tools_on) {
    co.tools = ar.tools;
    if (!template_uses_tools) {
      // After the client's own leading system messages (the template joins all system messages).
      size_t at = 0;
      while (at < messages.size() && messages[at]["role"] == "system") ++at;
      messages.insert(messages.begin() + long(at), json{{"role", "system"}, {"content", tools_system_prompt(ar.tools)}});
    }
  }
  ChatPrompt cp;
  try {
    cp = fmt->render(messages, co);
  } catch (const Error& e) {
    bad_value("messages", e.what());
  }
  GenPlan plan;
  plan.chat = true;
  plan.model = model_name;
  plan.stream = ar.stream;
  plan.include_usage = ar.include_usage;
  plan.n = ar.n;
  plan.params = ar.params;
  plan.top_logprobs = ar.logprobs ? ar.top_logprobs : 0;
  plan.prompts.push_back({cp.ids, {}});
  finalize_params(ar, int64_t(cp.ids.size()), plan.params);
  plan.setup.chat = true;
  plan.setup.reasoning = reasoning_template || cp.opens_reasoning;
  plan.setup.starts_in_reasoning = cp.opens_reasoning;
  plan.setup.tools = tools_on;
  plan.setup.logprobs = ar.logprobs;
  plan.setup.eos = eos;
  plan.setup.tokenizer = tok.get();
  // Constraints: JSON mode, forced tool calls; an open reasoning block stays free until </think>.
  std::vector<ConstraintPhase> phases;
  if (cp.opens_reasoning) phases.push_back(ConstraintPhase::until("</think>"));
  if (ar.json_mode) {
    phases.push_back(ConstraintPhase::json(true));
  } else if (tools_on && (ar.tool_choice == "required" || ar.tool_choice == "function")) {
    std::vector<std::vector<int32_t>> heads;
    for (const auto& name : ar.tool_names)
      if (ar.tool_choice == "required" || name == ar.tool_choice_name)
        heads.push_back(tok->encode(std::string(kToolCallsBegin) + tool_call_head(name, true)));
    phases.push_back(ConstraintPhase::sequences(std::move(heads)));
    phases.push_back(ConstraintPhase::json(true));
    phases.push_back(ConstraintPhase::sequences({tok->encode(tool_call_tail() + kToolCallsEnd)}));
  } else {
    phases.clear();
  }
  if (!phases.empty()) {
    auto vb = token_bytes();
    const int64_t max_tokens = plan.params.max_tokens;
    plan.processor = [vb, phases, max_tokens]() -> LogitsProcessor {
      OutputConstraint c(vb, phases, max_tokens);
      return [c](std::span<const int32_t> g, float* logits, int64_t v) mutable { c(g, logits, v); };
    };
  }
  generate(req, res, std::move(plan));
}

// ---- completions (and fill in the middle) ----------------------------------------------------

void Server::Impl::handle_completion(const httplib::Request& req, httplib::Response& res) {
  const json body = parse_body(req.body);
  ApiRequest ar = parse_completion_request(body);
  check_model(ar.model);
  GenPlan plan;
  plan.chat = false;
  plan.model = model_name;
  plan.stream = ar.stream;
  plan.include_usage = ar.include_usage;
  plan.n = ar.n;
  plan.params = ar.params;
  plan.top_logprobs = ar.logprobs ? ar.top_logprobs : 0;
  int64_t longest = 0;
  for (const auto& p : ar.prompts) {
    PromptPlan pp;
    if (p.is_ids) {
      pp.ids = p.ids;
      if (ar.echo && tok) pp.echo = tok->decode(p.ids);
    } else {
      const Tokenizer& t = need_tokenizer("a text prompt");
      std::string text = p.text;
      if (ar.suffix) {
        for (const char* s : {"<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>"})
          if (t.token_to_id(s) < 0)
            throw ApiError(400, "suffix (fill in the middle) needs the DeepSeek FIM tokens, which this tokenizer lacks",
                           "suffix");
        text = std::string("<｜fim▁begin｜>") + p.text + "<｜fim▁hole｜>" + *ar.suffix + "<｜fim▁end｜>";
      }
      try {
        pp.ids = t.encode(text, /*add_special_tokens=*/true);
      } catch (const Error& e) {
        bad_value("prompt", e.what());
      }
      if (ar.echo) pp.echo = p.text;
    }
    if (pp.ids.empty()) bad_value("prompt", "the prompt has no tokens");
    longest = std::max<int64_t>(longest, int64_t(pp.ids.size()));
    plan.prompts.push_back(std::move(pp));
  }
  // Without max_tokens each prompt may use the rest of the context after the longest prompt.
  finalize_params(ar, longest, plan.params);
  plan.setup.chat = false;
  plan.setup.logprobs = ar.logprobs;
  plan.setup.eos = eos;
  plan.setup.tokenizer = tok.get();
  generate(req, res, std::move(plan));
}

// ---- Server ----------------------------------------------------------------------------------

Server::Server(ServerOptions opt) : impl_(std::make_unique<Impl>(std::move(opt))) {
  Impl& s = *impl_;
  QS_CHECK(s.opt.max_batch >= 1 && s.opt.max_batch <= 4096, "--max-batch must be in [1, 4096], got ", s.opt.max_batch);
  QS_CHECK(s.opt.ctx >= 16, "--ctx must be at least 16 tokens, got ", s.opt.ctx);
  QS_CHECK(s.opt.queue >= 0, "--queue must be >= 0, got ", s.opt.queue);
  QS_CHECK(s.opt.kv_cache_mb >= 1, "--kv-cache must be >= 1 MiB");
  QS_CHECK(s.opt.cache_size_mb >= 1, "--cache-size must be >= 1 MiB");
  QS_CHECK(s.opt.port >= 0 && s.opt.port <= 65535, "--port must be in [0, 65535], got ", s.opt.port);
  QS_CHECK(is_directory(s.opt.model_dir), "--model: ", s.opt.model_dir, " is not a directory");
  s.model_name = s.opt.served_model_name;
  if (s.model_name.empty()) {
    std::string d = s.opt.model_dir;
    while (d.size() > 1 && d.back() == '/') d.pop_back();
    const size_t slash = d.rfind('/');
    s.model_name = slash == std::string::npos ? d : d.substr(slash + 1);
  }
  s.limit = s.opt.max_batch + s.opt.queue;
}

Server::~Server() {
  stop();
  if (impl_->listen_thread.joinable()) impl_->listen_thread.join();
  impl_->engine_stop = true;
  if (impl_->engine) impl_->engine->notify();
  if (impl_->engine_thread.joinable()) impl_->engine_thread.join();
}

int Server::bound_port() const { return impl_->port; }

void Server::stop() {
  Impl& s = *impl_;
  if (s.stopping.exchange(true)) return;
  s.draining = true;
  // Stop accepting: the accept loop ends and the HTTP library waits for the connections it
  // has (in-flight requests finish; idle keep-alive connections close within 3 s).
  const int fd = s.listen_fd.load();
  if (fd >= 0) ::shutdown(fd, SHUT_RDWR);
  s.stop_cv.notify_all();
}

void Server::run() {
  Impl& s = *impl_;
  s.setup_http();
  if (s.opt.port == 0) {
    const int p = s.http.bind_to_any_port(s.opt.host);
    if (p <= 0) fail(ErrorKind::Io, "cannot listen on ", s.opt.host, " (any port)");
    s.port = p;
  } else {
    if (!s.http.bind_to_port(s.opt.host, s.opt.port))
      fail(ErrorKind::Io, "cannot listen on ", s.opt.host, ":", s.opt.port, " (in use, or not an address of this host)");
    s.port = s.opt.port;
  }
  // The HTTP library listens with a backlog of 5: a burst of clients (64 streams at once)
  // overflowed it, and a client whose request segment was dropped meanwhile could come through
  // only after the library's keep-alive wait had given up on the connection: closed unanswered.
  // listen() on the bound socket again raises the backlog (Linux).
  if (const int fd = s.listen_fd.load(); fd >= 0) ::listen(fd, 4096);
  s.listen_thread = std::thread([&s] { s.http.listen_after_bind(); });
  log_line("listening on http://" + s.opt.host + ":" + std::to_string(s.port.load()) + (s.opt.api_key.empty() ? "" : " (API key required)"));
  try {
    s.load();
  } catch (...) {
    stop();
    s.listen_thread.join();
    throw;
  }
  if (!s.stopping) {
    s.engine_thread = std::thread([&s] {
      set_num_threads(s.opt.threads);
      s.engine->run(s.engine_stop);
    });
    s.ready = true;
    log_line("ready: model '" + s.model_name + "' at http://" + s.opt.host + ":" + std::to_string(s.port.load()) + "/v1");
  }
  s.listen_thread.join();  // after stop(): every connection has been served
  log_line("drained; stopping");
  s.engine_stop = true;
  if (s.engine) s.engine->notify();
  if (s.engine_thread.joinable()) s.engine_thread.join();
  if (s.disk) s.disk->flush();
  s.disk.reset();
}

}  // namespace qs::serve
