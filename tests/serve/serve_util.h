// Helpers of the server tests: the tiny test models, a `qiusuo serve` child process on a free
// loopback port, and small HTTP helpers (cpp-httplib's client).
#pragma once
#include <httplib.h>
#include <signal.h>
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "qiusuo/core/error.h"
#include "test_util.h"

namespace qs::testing_util {

inline std::string qiusuo_bin() { return std::string(QS_BINARY_DIR) + "/qiusuo"; }

// "v3" or "r1": the tiny model with that tokenizer and chat template (built once per build tree).
inline std::string tiny_model(const std::string& kind) {
  const std::string out = std::string(QS_BINARY_DIR) + "/serve-models";
  const std::string dir = out + "/tiny-" + kind;
  if (!std::ifstream(dir + "/tokenizer_config.json").good()) {
    const std::string cmd = std::string(QS_SOURCE_DIR) + "/tests/serve/make_models.sh " + qiusuo_bin() + " " + out +
                            " " + QS_FIXTURES;
    if (std::system(cmd.c_str()) != 0) throw std::runtime_error("cannot make the test models: " + cmd);
  }
  return dir;
}

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// `qiusuo serve --port 0 ARGS...` with stdout and stderr in a log file.
class ServeProcess {
 public:
  explicit ServeProcess(std::vector<std::string> args, const std::string& tag = "serve") : dir_(tag) {
    log_ = dir_ / "serve.log";
    std::vector<std::string> argv = {qiusuo_bin(), "serve", "--port", "0"};
    argv.insert(argv.end(), args.begin(), args.end());
    pid_ = fork();
    if (pid_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);  // no orphaned server when the test process dies
      const int fd = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      dup2(fd, 1);
      dup2(fd, 2);
      std::vector<char*> cargv;
      for (auto& a : argv) cargv.push_back(a.data());
      cargv.push_back(nullptr);
      execv(cargv[0], cargv.data());
      _exit(127);
    }
    // The port is printed before the model loads.
    const std::regex re("listening on http://[0-9.]+:([0-9]+)");
    for (int i = 0; i < 3000 && port_ == 0; ++i) {
      std::smatch m;
      const std::string l = log();
      if (std::regex_search(l, m, re)) port_ = std::stoi(m[1]);
      else if (!running()) break;
      else std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (port_ == 0) throw std::runtime_error("qiusuo serve did not start:\n" + log());
  }
  ~ServeProcess() {
    if (pid_ > 0 && running()) {
      ::kill(pid_, SIGKILL);
      int st;
      waitpid(pid_, &st, 0);
    }
  }
  ServeProcess(const ServeProcess&) = delete;
  ServeProcess& operator=(const ServeProcess&) = delete;

  int port() const { return port_; }
  std::string log() const { return read_file(log_); }
  const TempDir& dir() const { return dir_; }
  bool running() {
    if (exited_) return false;
    int st = 0;
    const pid_t r = waitpid(pid_, &st, WNOHANG);
    if (r == pid_) {
      exited_ = true;
      code_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      return false;
    }
    return true;
  }
  httplib::Client client(double timeout_s = 60) const {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(std::chrono::milliseconds(int64_t(timeout_s * 1000)));
    c.set_write_timeout(std::chrono::seconds(30));
    c.set_connection_timeout(std::chrono::seconds(5));
    return c;
  }
  // Waits for GET /health to answer 200.
  bool wait_ready(double timeout_s = 60) {
    const auto t0 = std::chrono::steady_clock::now();
    while (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() < timeout_s) {
      if (!running()) return false;
      auto c = client(5);
      if (auto r = c.Get("/health"); r && r->status == 200) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }
  // Sends `sig` and waits for the exit; returns the exit code (128 + signal when killed).
  int stop(int sig = SIGTERM, double timeout_s = 60) {
    if (running()) ::kill(pid_, sig);
    const auto t0 = std::chrono::steady_clock::now();
    while (running()) {
      if (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() > timeout_s) {
        ::kill(pid_, SIGKILL);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return code_;
  }
  void signal(int sig) { ::kill(pid_, sig); }
  // Waits for the process to exit by itself; -1 on timeout.
  int wait_exit(double timeout_s) {
    const auto t0 = std::chrono::steady_clock::now();
    while (running()) {
      if (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() > timeout_s) return -1;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return code_;
  }

 private:
  TempDir dir_;
  std::string log_;
  pid_t pid_ = -1;
  int port_ = 0;
  bool exited_ = false;
  int code_ = -1;
};

inline nlohmann::json post_json(httplib::Client& c, const std::string& path, const nlohmann::json& body, int* status,
                                const httplib::Headers& h = {}) {
  auto r = c.Post(path, h, body.dump(), "application/json");
  if (!r) throw std::runtime_error("no response from POST " + path + ": " + httplib::to_string(r.error()));
  if (status) *status = r->status;
  return nlohmann::json::parse(r->body);
}

// Metrics value of a line "name value" (or "name{labels} value"); -1 when absent.
inline double metric(httplib::Client& c, const std::string& name) {
  auto r = c.Get("/metrics");
  if (!r) return -1;
  std::istringstream in(r->body);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(name + " ", 0) == 0) return std::stod(line.substr(name.size() + 1));
  }
  return -1;
}

// A streaming request: calls on_event(json) for every "data:" event until [DONE] (or until it
// returns false: the client then drops the connection). Returns the HTTP status.
struct SseResult {
  int status = 0;
  std::vector<nlohmann::json> events;
  bool done = false;       // saw [DONE]
  double first_s = -1;     // seconds from sending to the first event with text
  std::string body;        // the raw body when the status is not 200
};
inline SseResult post_sse(httplib::Client& c, const std::string& path, const nlohmann::json& body,
                          const std::function<bool(const nlohmann::json&)>& on_event = {}) {
  SseResult out;
  std::string buf;
  httplib::Request req;
  req.method = "POST";
  req.path = path;
  req.body = body.dump();
  req.set_header("Content-Type", "application/json");
  const auto t0 = std::chrono::steady_clock::now();
  req.response_handler = [&](const httplib::Response& r) {
    out.status = r.status;
    return true;
  };
  req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
    if (out.status != 200) {
      out.body.append(data, n);
      return true;
    }
    buf.append(data, n);
    size_t at;
    while ((at = buf.find("\n\n")) != std::string::npos) {
      const std::string ev = buf.substr(0, at);
      buf.erase(0, at + 2);
      if (ev.rfind("data: ", 0) != 0) continue;  // ": keep-alive" comments
      const std::string d = ev.substr(6);
      if (d == "[DONE]") {
        out.done = true;
        continue;
      }
      auto j = nlohmann::json::parse(d);
      if (out.first_s < 0) out.first_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      out.events.push_back(j);
      if (on_event && !on_event(j)) return false;
    }
    return true;
  };
  auto res = c.send(req);
  if (!res && out.status == 0) throw std::runtime_error("no response from POST " + path + ": " + httplib::to_string(res.error()));
  return out;
}

// A greedy chat completion request with one user message (`extra` fields added or replaced).
inline nlohmann::json chat(const std::string& model, const std::string& user, int max_tokens,
                           nlohmann::json extra = nlohmann::json::object()) {
  nlohmann::json b = {{"model", model},
                      {"messages", {{{"role", "user"}, {"content", user}}}},
                      {"max_tokens", max_tokens},
                      {"temperature", 0}};
  b.update(extra);
  return b;
}

}  // namespace qs::testing_util
