// Seeded mutation fuzzing of everything qiusuo reads from outside: a few hundred broken copies of
// the shared fixtures (checkpoints: config.json values, safetensors header bytes and fields,
// truncation, shard index; tokenizers: vocab, merges, added tokens, pre-tokenizer and other
// fields, tokenizer_config.json) and random / invalid UTF-8 text for encode, decode and the chat
// template. Every case must end within a few seconds with a result or a qs::Error: no crash, no
// hang, no other exception type. Checkpoints that load also run one tiny forward through the
// `qiusuo logits` command (a subprocess with a timeout, so a crash or hang there is caught too).
//
// The same seed gives the same cases. On a failure the message names the seed and the case;
// reproduce with QIUSUO_FUZZ_SEED=<seed> QIUSUO_FUZZ_CASE=<n> ./mutation_fuzz_test
// --gtest_filter=<test> (the case is printed before it runs, so a crash shows it too).
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <typeinfo>
#include <vector>

#include <nlohmann/json.hpp>

#include "qiusuo/core/error.h"
#include "qiusuo/core/rng.h"
#include "qiusuo/io/file.h"
#include "qiusuo/io/safetensors.h"
#include "qiusuo/model/config.h"
#include "qiusuo/model/weights.h"
#include "qiusuo/tokenizer/chat_template.h"
#include "qiusuo/tokenizer/tokenizer.h"
#include "test_util.h"

namespace qs {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using testing_util::TempDir;

constexpr double kCaseLimitS = 5;  // a case (load, forward, encode, ...) must end within this

uint64_t fuzz_seed() {
  const char* s = std::getenv("QIUSUO_FUZZ_SEED");
  return s ? std::strtoull(s, nullptr, 0) : 20261205;
}
long only_case() {
  const char* s = std::getenv("QIUSUO_FUZZ_CASE");
  return s ? std::strtol(s, nullptr, 10) : -1;
}

// ---- harness -----------------------------------------------------------------------------------

char g_case[600];  // the running case, for the crash handler

void on_crash(int sig) {
  const char* m = "\nmutation fuzz: the process died with a signal in case: ";
  (void)!::write(2, m, std::strlen(m));
  (void)!::write(2, g_case, std::strlen(g_case));
  (void)!::write(2, "\n", 1);
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

// The handler runs on an alternate stack (per thread), so that a stack overflow is reported too.
void alt_stack() {
  thread_local std::vector<char> stack(1 << 16);
  stack_t ss{};
  ss.ss_sp = stack.data();
  ss.ss_size = stack.size();
  ::sigaltstack(&ss, nullptr);
}

struct CrashHandlers {
  CrashHandlers() {
    alt_stack();
    struct sigaction sa {};
    sa.sa_handler = on_crash;
    sa.sa_flags = SA_ONSTACK;
    for (int s : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT}) ::sigaction(s, &sa, nullptr);
  }
};

std::string describe(const std::string& suite, uint64_t seed, long index, const std::string& what) {
  return str(suite, " case ", index, " (", what, "); reproduce: QIUSUO_FUZZ_SEED=", seed, " QIUSUO_FUZZ_CASE=", index,
             " mutation_fuzz_test --gtest_filter=*", suite, "*");
}

// Runs fn on a worker thread with a deadline. "" when it returned or threw qs::Error; otherwise
// what went wrong. A case past its deadline cannot be stopped in-process: the test binary exits.
std::string guarded(const std::string& what, const std::function<void()>& fn, double limit_s = kCaseLimitS) {
  std::snprintf(g_case, sizeof g_case, "%s", what.c_str());
  std::mutex mu;
  std::string failure;
  std::atomic<bool> done{false};
  std::thread worker([&] {
    alt_stack();
    std::string f;
    try {
      fn();
    } catch (const Error&) {
    } catch (const std::exception& e) {
      f = str("threw ", typeid(e).name(), " (not qs::Error): ", e.what());
    } catch (...) {
      f = "threw something that is not a std::exception";
    }
    std::lock_guard<std::mutex> l(mu);
    failure = f;
    done = true;
  });
  const auto t0 = std::chrono::steady_clock::now();
  while (!done) {
    if (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() > limit_s) {
      std::fprintf(stderr, "\nmutation fuzz: HANG: no result after %.0f s in %s\n", limit_s, what.c_str());
      std::fflush(stderr);
      std::_Exit(3);
    }
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  worker.join();
  return failure;
}

// `qiusuo logits` on a checkpoint, as a subprocess with a deadline: "" when it wrote logits or
// exited 1 with "qiusuo: error: ..."; otherwise what went wrong.
std::string cli_logits(const std::string& dir, double limit_s = 20) {
  const std::string bin = std::string(QS_BINARY_DIR) + "/qiusuo", out = dir + "/logits.safetensors",
                    err = dir + "/cli.err";
  const pid_t pid = ::fork();
  if (pid < 0) return "fork failed";
  if (pid == 0) {
    const int fd = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      ::dup2(fd, 2);
      ::dup2(fd, 1);
    }
    ::setenv("OMP_NUM_THREADS", "1", 1);
    const char* argv[] = {bin.c_str(), "logits", "--model", dir.c_str(), "--ids", "1,2,3",
                          "--out", out.c_str(), "--threads", "1", nullptr};
    ::execv(bin.c_str(), const_cast<char* const*>(argv));
    ::_exit(127);
  }
  const auto t0 = std::chrono::steady_clock::now();
  int st = 0;
  while (::waitpid(pid, &st, WNOHANG) == 0) {
    if (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() > limit_s) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &st, 0);
      return str("qiusuo logits did not finish within ", limit_s, " s (hang)");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  std::string msg;
  try {
    msg = read_text_file(err);
  } catch (const Error&) {
  }
  if (WIFSIGNALED(st)) return str("qiusuo logits died with signal ", WTERMSIG(st), ": ", msg);
  if (!WIFEXITED(st)) return "qiusuo logits ended abnormally";
  if (WEXITSTATUS(st) == 0) return file_exists(out) ? "" : "qiusuo logits exited 0 without writing logits";
  if (WEXITSTATUS(st) == 127) return "cannot run " + bin + " (build the qiusuo target)";
  if (WEXITSTATUS(st) == 1 && msg.find("qiusuo: error:") != std::string::npos) return "";
  return str("qiusuo logits exited ", WEXITSTATUS(st), " without a clear error: ", msg);
}

// ---- mutation helpers --------------------------------------------------------------------------

std::string read_bytes(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}
void write_bytes(const std::string& p, const std::string& s) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(s.data(), std::streamsize(s.size()));
}

// Values that break integer or size fields in every way a file can.
json hostile_value(Rng& r, int64_t near = 1) {
  switch (r.below(20)) {
    case 0: return json(int64_t(1) << 40);
    case 1: return json(INT64_MAX);
    case 2: return json(uint64_t(UINT64_MAX));
    case 3: return json(1e17);
    case 4: return json(1e308);
    case 5: return json(-1);
    case 6: return json(0);
    case 7: return json(2.5);
    case 8: return json("12");
    case 9: return json(nullptr);
    case 10: return json(true);
    case 11: return json::array({1, 2});
    case 12: return json::object();
    case 13: return json(INT64_MIN);
    case 14: return json(-1e300);
    case 15: return json(near + 1);
    case 16: return json(near * 2);
    case 17: return json(near > 1 ? near - 1 : 2);
    case 18: return json(100000);
    default: return json(double(near));  // an integer written as a float
  }
}

std::string random_utf8(Rng& r, size_t n) {
  std::string s;
  for (size_t i = 0; i < n; ++i) {
    uint32_t cp;
    switch (r.below(6)) {
      case 0: cp = uint32_t(0x20 + r.below(0x5F)); break;
      case 1: cp = uint32_t(" \n\t\r"[r.below(4)]); break;
      case 2: cp = uint32_t(0x4E00 + r.below(0x5000)); break;  // CJK
      case 3: cp = uint32_t(0x1F300 + r.below(0x300)); break;  // emoji
      case 4: cp = uint32_t(r.below(0x20)); break;              // controls, NUL
      default: cp = uint32_t(0x80 + r.below(0xD800 - 0x80)); break;
    }
    if (cp < 0x80) s += char(cp);
    else if (cp < 0x800) s += char(0xC0 | (cp >> 6)), s += char(0x80 | (cp & 63));
    else if (cp < 0x10000) s += char(0xE0 | (cp >> 12)), s += char(0x80 | ((cp >> 6) & 63)), s += char(0x80 | (cp & 63));
    else
      s += char(0xF0 | (cp >> 18)), s += char(0x80 | ((cp >> 12) & 63)), s += char(0x80 | ((cp >> 6) & 63)),
          s += char(0x80 | (cp & 63));
  }
  return s;
}

std::string random_bytes(Rng& r, size_t n) {
  std::string s(n, '\0');
  for (auto& c : s) c = char(r.below(256));
  return s;
}

// Text for encode: valid UTF-8, invalid bytes, special-token strings, long runs.
std::string fuzz_text(Rng& r, const std::vector<std::string>& specials) {
  switch (r.below(7)) {
    case 0: return random_bytes(r, r.below(200));
    case 1: {  // valid text with one broken sequence inside
      std::string s = random_utf8(r, 20 + r.below(50));
      const char* bad[] = {"\xff", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe2\x82", "\x80"};
      s.insert(r.below(s.size() + 1), bad[r.below(6)]);
      return s;
    }
    case 2: {
      std::string s;
      for (int i = 0; i < 8; ++i) s += specials.empty() || r.below(2) ? random_utf8(r, r.below(6)) : specials[r.below(specials.size())];
      return s;
    }
    case 3: return std::string(2000 + r.below(6000), "a \n.0"[r.below(5)]);  // one long pre-token
    default: return random_utf8(r, r.below(300));
  }
}

// ---- checkpoints -------------------------------------------------------------------------------

std::string fixture(const std::string& name) { return std::string(QS_FIXTURES) + "/model/" + name; }
const char* kModels[] = {"v3-tiny", "v2-tiny", "v2-lite-tiny", "v3-tiny-fp8"};

// A fresh copy of a fixture checkpoint (config, weights, index; not the reference outputs),
// written from bytes read once (never links: the mutators write into these files).
void copy_checkpoint(const std::string& name, const std::string& dst) {
  static std::map<std::string, std::vector<std::pair<std::string, std::string>>> cache;
  auto& files = cache[name];
  if (files.empty())
    for (const auto& e : fs::directory_iterator(fixture(name))) {
      const std::string f = e.path().filename().string();
      if (f == "config.json" || f == "model.safetensors.index.json" ||
          (e.path().extension() == ".safetensors" && f != "expected.safetensors"))
        files.push_back({f, read_bytes(e.path().string())});
    }
  fs::create_directories(dst);
  for (const auto& [f, bytes] : files) write_bytes(dst + "/" + f, bytes);
}

std::vector<std::string> shards(const std::string& dir) {
  std::vector<std::string> v;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".safetensors") v.push_back(e.path().string());
  std::sort(v.begin(), v.end());
  return v;
}

// A value nested n arrays deep, as text (nlohmann's dump() of such a value would itself recurse
// n deep). Mutators put the string "@DEEP@" where it goes and call with_deep() on the text.
std::string deep_text(size_t n) { return std::string(n, '[') + std::string(n, ']'); }
std::string with_deep(std::string text) {
  const size_t p = text.find("\"@DEEP@\"");
  if (p != std::string::npos) text.replace(p, 8, deep_text(100000));
  return text;
}
// Parses text a mutator wrote earlier in the same case; refuses deep nesting (see above).
json parse_shallow(const std::string& text) {
  if (text.find("[[[[[[[[[[[[[[[[") != std::string::npos) throw std::runtime_error("deeply nested: not mutated again");
  return json::parse(text);
}

struct St {  // a safetensors file split into its header JSON and data
  json header;
  std::string data;
};
St read_st(const std::string& p) {
  const std::string b = read_bytes(p);
  uint64_t n = 0;
  std::memcpy(&n, b.data(), 8);
  if (b.size() < 8 || n > b.size() - 8) throw std::runtime_error("not a whole safetensors file: not mutated again");
  return {parse_shallow(b.substr(8, n)), b.substr(8 + n)};
}
void write_st(const std::string& p, const St& s, bool pad = true, const std::string& raw_header = "") {
  std::string h = raw_header.empty() ? with_deep(s.header.dump()) : raw_header;
  if (pad)
    while ((h.size() + 8) % 8) h += ' ';
  const uint64_t n = h.size();
  std::string out(8, '\0');
  std::memcpy(out.data(), &n, 8);
  write_bytes(p, out + h + s.data);
}

std::vector<std::string> tensor_names(const json& header) {
  std::vector<std::string> v;
  for (const auto& [k, _] : header.items())
    if (k != "__metadata__") v.push_back(k);
  return v;
}

// Every integer and number field a DeepSeek config.json has, plus nested ones (as "a.b").
const std::vector<std::string> kConfigFields = {
    "vocab_size", "hidden_size", "intermediate_size", "moe_intermediate_size", "num_hidden_layers",
    "num_attention_heads", "num_key_value_heads", "q_lora_rank", "kv_lora_rank", "qk_nope_head_dim",
    "qk_rope_head_dim", "v_head_dim", "n_shared_experts", "n_routed_experts", "num_experts_per_tok",
    "moe_layer_freq", "first_k_dense_replace", "n_group", "topk_group", "routed_scaling_factor", "rms_norm_eps",
    "rope_theta", "max_position_embeddings", "num_nextn_predict_layers", "bos_token_id", "eos_token_id",
    "rope_scaling.factor", "rope_scaling.original_max_position_embeddings", "rope_scaling.beta_fast",
    "rope_scaling.beta_slow", "rope_scaling.mscale", "rope_scaling.mscale_all_dim",
    "quantization_config.weight_block_size", "model_type", "topk_method", "scoring_func", "norm_topk_prob",
    "tie_word_embeddings", "rope_scaling", "quantization_config"};

json* config_slot(json& cfg, const std::string& field, bool create) {
  const size_t dot = field.find('.');
  if (dot == std::string::npos) return create || cfg.contains(field) ? &cfg[field] : nullptr;
  const std::string a = field.substr(0, dot), b = field.substr(dot + 1);
  if (!cfg.contains(a) || !cfg[a].is_object()) return nullptr;
  return create || cfg[a].contains(b) ? &cfg[a][b] : nullptr;
}

// One mutant of checkpoint `dir`; returns what was done.
std::string mutate_checkpoint(Rng& r, const std::string& dir) {
  const std::string cfg_path = dir + "/config.json";
  const auto files = shards(dir);
  const std::string st_path = files[r.below(files.size())];
  const std::string st_name = fs::path(st_path).filename().string();
  switch (r.below(12)) {
    case 0: case 1: case 2: {  // a config.json value
      json cfg = parse_shallow(read_bytes(cfg_path));
      const std::string field = kConfigFields[r.below(kConfigFields.size())];
      json* slot = config_slot(cfg, field, true);
      if (!slot) return "config: no " + field;
      const int64_t near = slot->is_number_integer() ? slot->get<int64_t>() : 1;
      std::string what;
      if (r.below(8) == 0) {
        const size_t dot = field.find('.');
        if (dot == std::string::npos) cfg.erase(field);
        else cfg[field.substr(0, dot)].erase(field.substr(dot + 1));
        what = "config: " + field + " removed";
      } else {
        *slot = r.below(12) == 0 ? json("@DEEP@") : hostile_value(r, near);
        what = "config: " + field + " = " + (*slot == "@DEEP@" ? "a value nested 100000 deep" : slot->dump());
      }
      write_bytes(cfg_path, with_deep(cfg.dump(2)));
      return what;
    }
    case 3: {  // config.json bytes: truncated, flipped, deeply nested, not an object
      std::string b = read_bytes(cfg_path);
      switch (r.below(4)) {
        case 0: b.resize(r.below(b.size())); write_bytes(cfg_path, b); return "config: truncated";
        case 1: b[r.below(b.size())] = char(r.below(256)); write_bytes(cfg_path, b); return "config: byte flipped";
        case 2: write_bytes(cfg_path, std::string(200000, '[') + std::string(200000, ']')); return "config: nested 200000 deep";
        default: write_bytes(cfg_path, "[1, 2, 3]"); return "config: an array";
      }
    }
    case 4: case 5: case 6: {  // a safetensors header field
      St s = read_st(st_path);
      const auto names = tensor_names(s.header);
      const std::string t = names[r.below(names.size())];
      json& e = s.header[t];
      std::string what = st_name + ": tensor " + t + " ";
      switch (r.below(10)) {
        case 0: {
          const char* d[] = {"Q4_K", "F64", "I8", "F8_E4M3", "BF16", "F32", "U8", ""};
          e["dtype"] = r.below(5) == 0 ? hostile_value(r) : json(d[r.below(8)]);
          what += "dtype " + e["dtype"].dump();
          break;
        }
        case 1: case 2: {
          json& sh = e["shape"];
          if (sh.empty() || r.below(4) == 0) {
            const json shapes[] = {json::array(), json::array({int64_t(1) << 32, int64_t(1) << 32, 16}),
                                   json::array({int64_t(1) << 62, 4}), json(std::vector<int>(40, 1)), json("12"),
                                   json::array({-1, 8})};
            sh = shapes[r.below(6)];
          } else {
            sh[r.below(sh.size())] = hostile_value(r, 4);
          }
          what += "shape " + sh.dump();
          break;
        }
        case 3: case 4: case 5: {
          json& off = e["data_offsets"];
          const uint64_t b = off[0].get<uint64_t>(), en = off[1].get<uint64_t>();
          switch (r.below(6)) {
            case 0: off = json::array({b + s.data.size(), en + s.data.size()}); break;  // out of range
            case 1: off = json::array({en, b}); break;
            case 2: off[r.below(2)] = hostile_value(r, int64_t(b)); break;
            case 3: off = json::array({0, en - b}); break;  // overlaps the first tensor
            case 4: off = json::array({b, en, en}); break;
            default: off = json::array({b + 1, en + 1}); break;  // shifted by a byte
          }
          what += "data_offsets " + off.dump();
          break;
        }
        case 6: s.header[t + ".renamed"] = e; s.header.erase(t); what += "renamed"; break;
        case 7: s.header.erase(t); what += "removed"; break;
        case 8: e[r.below(2) ? "dtype" : "shape"] = "@DEEP@"; what += "dtype or shape nested 100000 deep"; break;
        default: e = hostile_value(r); what += "entry " + e.dump(); break;
      }
      write_st(st_path, s);
      return what;
    }
    case 7: {  // header bytes
      St s = read_st(st_path);
      std::string h = s.header.dump();
      const size_t k = 1 + r.below(4);
      for (size_t i = 0; i < k; ++i) h[r.below(h.size())] = char(r.below(256));
      write_st(st_path, s, true, h);
      return st_name + ": header bytes flipped";
    }
    case 8: {  // the length prefix
      std::string b = read_bytes(st_path);
      uint64_t n = 0;
      std::memcpy(&n, b.data(), 8);
      const uint64_t vals[] = {0, 1, n - 1, n + 1, b.size(), b.size() - 7, uint64_t(1) << 40, UINT64_MAX,
                               200'000'000};
      n = vals[r.below(9)];
      std::memcpy(b.data(), &n, 8);
      write_bytes(st_path, b);
      return st_name + ": header length " + std::to_string(n);
    }
    case 9: {  // truncation at a random point
      std::string b = read_bytes(st_path);
      const size_t at = r.below(3) == 0 ? r.below(std::min<size_t>(b.size(), 4096)) : r.below(b.size());
      b.resize(at);
      write_bytes(st_path, b);
      return st_name + ": truncated at " + std::to_string(at);
    }
    case 10: {  // valid but unusual layouts
      St s = read_st(st_path);
      switch (r.below(3)) {
        case 0: {  // data section shifted by 1-7 bytes (header not padded): every tensor misaligned
          std::string h = s.header.dump();
          const size_t shift = 1 + r.below(7);
          while ((h.size() + 8) % 8 != shift) h += ' ';
          write_st(st_path, s, false, h);
          return st_name + ": misaligned data section";
        }
        case 1: s.header["__metadata__"] = hostile_value(r); write_st(st_path, s); return st_name + ": __metadata__ " + s.header["__metadata__"].dump();
        default: {
          std::string deep = std::string(100000, '[') + std::string(100000, ']');
          write_st(st_path, s, true, "{\"x\": " + deep + "}");
          return st_name + ": header nested 100000 deep";
        }
      }
    }
    default: {  // shard index (or its absence)
      const std::string idx = dir + "/model.safetensors.index.json";
      if (!file_exists(idx)) {
        write_bytes(dir + "/extra.safetensors", read_bytes(st_path));  // a second file with the same tensors
        return "a stray duplicate shard";
      }
      json j = parse_shallow(read_bytes(idx));
      auto& wm = j["weight_map"];
      const auto names = tensor_names(wm);
      const std::string t = names[r.below(names.size())];
      switch (r.below(5)) {
        case 0: wm[t] = "missing.safetensors"; break;
        case 1: wm[t] = "../../../etc/passwd"; break;
        case 2: wm[t] = hostile_value(r); break;
        case 3: wm["model.layers.999.nothing"] = wm[t]; break;
        default: j.erase("weight_map"); break;
      }
      write_bytes(idx, j.dump());
      return "index: " + (j.contains("weight_map") ? t + " -> " + wm[t].dump() : "no weight_map");
    }
  }
}

// Loads config, tensors and weights in-process; true when everything loaded.
bool load_checkpoint(const std::string& dir) {
  const ModelConfig cfg = load_model_config(dir);
  const TensorStore store = TensorStore::open_dir(dir);
  for (const auto& name : store.names()) {  // touch every byte the views claim
    const TensorView& t = store.get(name);
    volatile uint8_t x = 0;
    if (t.nbytes) x = static_cast<const uint8_t*>(t.data)[0] ^ static_cast<const uint8_t*>(t.data)[t.nbytes - 1];
    (void)x;
  }
  const ModelWeights w = load_weights(cfg, store, /*with_mtp=*/true);
  return true;
}

TEST(MutationFuzz, Checkpoints) {
  CrashHandlers handlers;
  const uint64_t seed = fuzz_seed();
  const long only = only_case();
  constexpr long kCases = 160;
  constexpr int kMaxForwards = 20;
  TempDir root("fuzz-ckpt");
  int loaded = 0, forwards = 0, errors = 0;
  for (long i = 0; i < kCases; ++i) {
    if (only >= 0 && i != only) continue;
    Rng r(seed ^ (0x9E3779B97F4A7C15ull * uint64_t(i + 1)));
    const std::string model = kModels[i % 4];
    const std::string dir = root / ("c" + std::to_string(i));
    copy_checkpoint(model, dir);
    std::string what = model + ": " + mutate_checkpoint(r, dir);
    if (r.below(4) == 0) {  // sometimes two at once (the second may find nothing left to parse)
      try {
        what += "; " + mutate_checkpoint(r, dir);
      } catch (const std::exception&) {
      }
    }
    const std::string id = describe("Checkpoints", seed, i, what);
    bool ok = false;
    const std::string f = guarded(id, [&] { ok = load_checkpoint(dir); });
    EXPECT_EQ(f, "") << id;
    ok ? ++loaded : ++errors;
    if (ok && forwards < kMaxForwards) {
      ++forwards;
      const std::string c = cli_logits(dir);
      EXPECT_EQ(c, "") << id;
    }
    fs::remove_all(dir);
  }
  std::printf("checkpoint mutants: %d loaded (%d through qiusuo logits), %d rejected with qs::Error\n", loaded,
              forwards, errors);
}

// The hang the review found, and the same fields at values just over and under their bounds,
// through the whole command.
TEST(MutationFuzz, ConfigBoundsThroughTheCommand) {
  CrashHandlers handlers;
  const std::vector<std::pair<std::string, json>> cases = {
      {"num_nextn_predict_layers", 1e17},   {"num_nextn_predict_layers", 100000},
      {"num_nextn_predict_layers", 65},     {"num_hidden_layers", 1025},
      {"max_position_embeddings", int64_t(1) << 40}, {"vocab_size", int64_t(1) << 40},
      {"n_routed_experts", 1e9},            {"hidden_size", 2.5},
  };
  TempDir root("fuzz-bounds");
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string dir = root / ("b" + std::to_string(i));
    copy_checkpoint("v3-tiny", dir);
    json cfg = json::parse(read_bytes(dir + "/config.json"));
    cfg[cases[i].first] = cases[i].second;
    write_bytes(dir + "/config.json", cfg.dump());
    const std::string id = cases[i].first + " = " + cases[i].second.dump();
    std::snprintf(g_case, sizeof g_case, "%s", id.c_str());
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(cli_logits(dir, 10), "") << id;
    EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 5) << id;
    const std::string err = read_bytes(dir + "/cli.err");
    EXPECT_NE(err.find(cases[i].first), std::string::npos) << id << ": " << err;  // the error names the field
  }
}

// ---- tokenizers --------------------------------------------------------------------------------

std::string tok_fixture(const std::string& name) { return std::string(QS_FIXTURES) + "/tokenizer/" + name; }

// Code points in s (the byte alphabet is one code point of at most 2 bytes).
size_t unicode_width(const std::string& s) {
  size_t n = 0;
  for (char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

// The DeepSeek-V3 tokenizer cut down to ids below 3000 (plus the byte alphabet and every added
// token), so that loading a mutant takes milliseconds. Merges whose parts or result were cut go.
struct SmallTokenizer {
  json tok, cfg;
};
const SmallTokenizer& small_tokenizer() {
  static const SmallTokenizer s = [] {
    SmallTokenizer o;
    o.tok = json::parse(read_bytes(tok_fixture("deepseek-v3") + "/tokenizer.json"));
    o.cfg = json::parse(read_bytes(tok_fixture("deepseek-v3") + "/tokenizer_config.json"));
    json& m = o.tok["model"];
    std::set<std::string> keep;
    json vocab = json::object();
    for (const auto& [k, v] : m["vocab"].items()) {
      const bool byte_char = k.size() <= 2 && unicode_width(k) == 1;
      if (v.get<int64_t>() < 3000 || byte_char) {
        vocab[k] = v;
        keep.insert(k);
      }
    }
    json merges = json::array();
    for (const auto& mg : m["merges"]) {
      std::string a, b;
      if (mg.is_string()) {
        const std::string s = mg.get<std::string>();
        const size_t sp = s.find(' ');
        a = s.substr(0, sp), b = s.substr(sp + 1);
      } else {
        a = mg[0].get<std::string>(), b = mg[1].get<std::string>();
      }
      if (keep.count(a) && keep.count(b) && keep.count(a + b)) merges.push_back(mg);
    }
    m["vocab"] = vocab;
    m["merges"] = merges;
    return o;
  }();
  return s;
}

std::string mutate_tokenizer(Rng& r, json& tok, json& cfg, std::string& raw_tok) {
  json& m = tok["model"];
  auto any_key = [&](const json& o) {
    auto it = o.begin();
    std::advance(it, long(r.below(o.size())));
    return it.key();
  };
  switch (r.below(11)) {
    case 0: case 1: {  // vocab
      const std::string k = any_key(m["vocab"]);
      switch (r.below(4)) {
        case 0:
          m["vocab"][k] = r.below(10) == 0 ? json("@DEEP@") : hostile_value(r, m["vocab"][k].get<int64_t>());
          return "vocab[" + k + "] = " + m["vocab"][k].dump();
        case 1: m["vocab"].erase(k); return "vocab: " + k + " removed";
        case 2: m["vocab"][""] = 5; return "vocab: empty token";
        default: m["vocab"] = hostile_value(r); return "vocab = " + m["vocab"].dump();
      }
    }
    case 2: case 3: {  // merges
      json& mg = m["merges"];
      if (mg.empty() || r.below(6) == 0) { mg = hostile_value(r); return "merges = " + mg.dump(); }
      const size_t i = r.below(mg.size());
      const json vals[] = {"a", "", "a b c", " ", "zzzz qqqq", json::array({"a"}), json::array({1, 2}), 7, nullptr,
                           json::array({"Ġ", "Ġ", "Ġ"})};
      mg[i] = vals[r.below(10)];
      return "merges[" + std::to_string(i) + "] = " + mg[i].dump();
    }
    case 4: case 5: {  // added tokens
      json& at = tok["added_tokens"];
      if (at.empty() || r.below(8) == 0) { at = hostile_value(r); return "added_tokens = " + at.dump(); }
      const size_t i = r.below(at.size());
      const char* fields[] = {"id", "content", "special", "lstrip", "rstrip", "normalized", "single_word"};
      const std::string f = fields[r.below(7)];
      if (r.below(3) == 0) at[i].erase(f);
      else if (f == "content" && r.below(2)) at[i][f] = r.below(2) ? json("") : json(at[0]["content"]);
      else at[i][f] = r.below(10) == 0 ? json("@DEEP@") : hostile_value(r, at[i]["id"].get<int64_t>());
      return "added_tokens[" + std::to_string(i) + "]." + f + " = " + (at[i].contains(f) ? at[i][f].dump() : "(removed)");
    }
    case 6: case 7: {  // pre-tokenizer
      json& p = tok["pre_tokenizer"];
      switch (r.below(6)) {
        case 0: p = r.below(4) == 0 ? json("@DEEP@") : hostile_value(r); break;
        case 1: p["type"] = "Whitespace"; break;
        case 2: p["pretokenizers"] = json::array(); break;
        default: {
          if (!p.contains("pretokenizers") || p["pretokenizers"].empty()) { p["type"] = 7; break; }
          json& e = p["pretokenizers"][r.below(p["pretokenizers"].size())];
          const json patterns[] = {json{{"Regex", "("}}, json{{"Regex", "(a+)+$"}}, json{{"Regex", ""}},
                                   json{{"Regex", "(?:a|a)*b"}}, json{{"String", ""}}, json{{"Regex", "\\p{Xx}"}},
                                   json{{"Regex", std::string(5000, '(') + std::string(5000, ')')}}, json(3)};
          const char* keys[] = {"pattern", "behavior", "invert", "add_prefix_space", "use_regex", "trim_offsets",
                                "individual_digits", "type"};
          const std::string k = keys[r.below(8)];
          e[k] = k == "pattern" ? patterns[r.below(8)] : hostile_value(r);
          return "pre_tokenizer." + k + " = " + e[k].dump().substr(0, 80);
        }
      }
      return "pre_tokenizer = " + p.dump().substr(0, 120);
    }
    case 8: {  // normalizer, decoder, post_processor, model type
      const char* keys[] = {"normalizer", "decoder", "post_processor", "model.type", "model.unk_token", "model.byte_fallback"};
      const std::string k = keys[r.below(6)];
      const json v = r.below(2) ? hostile_value(r) : json::parse(R"({"type": "TemplateProcessing",
          "single": [{"SpecialToken": {"id": "<x>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
          "special_tokens": {"<x>": {"id": "<x>", "ids": [1099511627776]}}})");
      if (k.rfind("model.", 0) == 0) m[k.substr(6)] = v;
      else tok[k] = v;
      return k + " = " + v.dump().substr(0, 120);
    }
    case 9: {  // tokenizer_config.json
      const char* keys[] = {"bos_token", "eos_token", "add_bos_token", "add_eos_token", "chat_template", "tokenizer_class"};
      const std::string k = keys[r.below(6)];
      if (k == "chat_template" && cfg.contains(k) && cfg[k].is_string() && r.below(2)) {
        std::string t = cfg[k].get<std::string>();
        if (r.below(2)) t.resize(r.below(t.size()));
        else t[r.below(t.size())] = "{}%#()|.'\"x"[r.below(11)];
        cfg[k] = t;
        return "chat_template edited";
      }
      cfg[k] = r.below(3) == 0 ? json{{"content", hostile_value(r)}} : r.below(8) == 0 ? json("@DEEP@") : hostile_value(r);
      return "tokenizer_config." + k + " = " + cfg[k].dump();
    }
    default: {  // raw JSON bytes: truncated or flipped
      raw_tok = tok.dump();
      if (r.below(2)) {
        raw_tok.resize(r.below(raw_tok.size()));
        return "tokenizer.json truncated";
      }
      for (int i = 0; i < 4; ++i) raw_tok[r.below(raw_tok.size())] = char(r.below(256));
      return "tokenizer.json bytes flipped";
    }
  }
}

// What a loaded tokenizer must survive: encode, decode of any ids, streaming decode, chat template.
void exercise_tokenizer(const Tokenizer& t, Rng& r, const std::vector<std::string>& specials) {
  for (int k = 0; k < 3; ++k) {
    const std::string text = fuzz_text(r, specials);
    try {
      const auto ids = t.encode(text, r.below(2) == 1);
      (void)t.decode(ids);
    } catch (const Error&) {
    }
  }
  std::vector<int32_t> ids;
  for (int k = 0; k < 40; ++k)
    ids.push_back(r.below(4) == 0 ? int32_t(r.next_u64()) : int32_t(r.below(uint64_t(t.vocab_size()) + 5)));
  (void)t.decode(ids, r.below(2) == 1);
  StreamDecoder sd(t);
  for (int32_t id : ids) (void)sd.push(id);
  (void)sd.flush();
  if (!t.chat_template().empty()) {
    json msgs = json::array();
    const char* roles[] = {"system", "user", "assistant", "tool", "nobody"};
    for (int k = 0; k < 1 + int(r.below(4)); ++k) {
      json m = {{"role", roles[r.below(5)]}, {"content", fuzz_text(r, specials).substr(0, 400)}};
      if (r.below(6) == 0) m["content"] = hostile_value(r);
      if (r.below(20) == 0) {  // nested 100000 deep (built in place: no recursion here)
        json d = json::array();
        for (int k = 0; k < 100000; ++k) {
          json outer = json::array();
          outer.push_back(std::move(d));
          d = std::move(outer);
        }
        m[r.below(2) ? "content" : "extra"] = std::move(d);
      }
      if (r.below(8) == 0) m["tool_calls"] = json::array({{{"type", "function"}, {"function", {{"name", "f"}, {"arguments", hostile_value(r)}}}}});
      msgs.push_back(std::move(m));
    }
    (void)render_chat(t.chat_template(), msgs, r.below(2) == 1, json{{"bos_token", t.bos_token()}});
  }
}

TEST(MutationFuzz, Tokenizers) {
  CrashHandlers handlers;
  const uint64_t seed = fuzz_seed();
  const long only = only_case();
  constexpr long kCases = 200;
  const SmallTokenizer& base = small_tokenizer();
  std::vector<std::string> specials;
  for (const auto& a : base.tok["added_tokens"]) specials.push_back(a["content"].get<std::string>());
  TempDir root("fuzz-tok");
  int loaded = 0, errors = 0;
  for (long i = 0; i < kCases; ++i) {
    if (only >= 0 && i != only) continue;
    Rng r(seed ^ (0xD1B54A32D192ED03ull * uint64_t(i + 1)));
    json tok = base.tok, cfg = base.cfg;
    std::string raw;
    std::string what = mutate_tokenizer(r, tok, cfg, raw);
    if (raw.empty() && r.below(4) == 0) what += "; " + mutate_tokenizer(r, tok, cfg, raw);
    const std::string dir = root / ("t" + std::to_string(i));
    fs::create_directories(dir);
    write_bytes(dir + "/tokenizer.json", raw.empty() ? with_deep(tok.dump()) : raw);
    write_bytes(dir + "/tokenizer_config.json", with_deep(cfg.dump()));
    const std::string id = describe("Tokenizers", seed, i, what);
    bool ok = false;
    const std::string f = guarded(id, [&] {
      const Tokenizer t = Tokenizer::load(dir);
      ok = true;
      exercise_tokenizer(t, r, specials);
    });
    EXPECT_EQ(f, "") << id;
    ok ? ++loaded : ++errors;
    fs::remove_all(dir);
  }
  std::printf("tokenizer mutants: %d loaded, %d rejected with qs::Error\n", loaded, errors);
}

// Random and invalid UTF-8 text through the real DeepSeek tokenizers and chat templates.
TEST(MutationFuzz, TextThroughRealTokenizers) {
  CrashHandlers handlers;
  const uint64_t seed = fuzz_seed();
  const long only = only_case();
  const char* names[] = {"deepseek-v3", "deepseek-r1"};
  for (uint64_t n = 0; n < 2; ++n) {
    const char* name = names[n];
    const Tokenizer t = Tokenizer::load(tok_fixture(name));
    std::vector<std::string> specials;
    for (const auto& a : t.added_tokens()) specials.push_back(a.content);
    for (long i = 0; i < 60; ++i) {
      if (only >= 0 && i != only) continue;
      Rng r(seed ^ (0xA0761D6478BD642Full * uint64_t(i + 1)) ^ (n << 60));
      const std::string id = describe("TextThroughRealTokenizers", seed, i, name);
      EXPECT_EQ(guarded(id, [&] { exercise_tokenizer(t, r, specials); }), "") << id;
    }
  }
}

}  // namespace
}  // namespace qs
