#include "qiusuo/train/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <cstring>
#include <fstream>

#include "qiusuo/core/error.h"
#include "qiusuo/io/file.h"
#include "qiusuo/kernels/convert.h"
#include "qiusuo/kernels/linear.h"
#include "qiusuo/model/weights.h"

namespace qs {
namespace fs = std::filesystem;

namespace {

std::string step_name(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "step-%08lld", (long long)step);
  return buf;
}

// 64-bit checksum of a file's bytes (word-wise multiply-xorshift; fast, order-sensitive).
uint64_t file_checksum(const std::string& path) {
  MappedFile f = MappedFile::open(path);
  const uint8_t* p = f.data();
  const size_t n = f.size();
  uint64_t h = 0x9e3779b97f4a7c15ull ^ n;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    h = (h ^ w) * 0xbf58476d1ce4e5b9ull;
    h ^= h >> 31;
  }
  for (; i < n; ++i) h = (h ^ p[i]) * 0x94d049bb133111ebull;
  return h;
}

void fsync_dir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

void copy_file_atomic(const std::string& from, const std::string& to) {
  const std::string text = read_text_file(from);
  write_text_file_atomic(to, text);
}

// Tensors of the HF checkpoint of m: every parameter, plus the MTP copies of embed and head.
std::vector<TensorToWrite> hf_tensors(const TrainModel<float>& m, std::vector<std::vector<uint16_t>>* bf16) {
  const ModelConfig& c = m.config();
  std::vector<TensorToWrite> out;
  auto& tm = const_cast<TrainModel<float>&>(m);
  auto add = [&](const std::string& name, const Shape& shape, const float* data) {
    if (bf16) {
      bf16->emplace_back(size_t(shape_numel(shape)));
      f32_to_bf16(data, bf16->back().data(), shape_numel(shape));
      out.push_back({name, DType::BF16, shape, bf16->back().data()});
    } else {
      out.push_back({name, DType::F32, shape, data});
    }
  };
  for (const auto& e : expected_tensors(c)) {
    const float* data = nullptr;
    if (const ParamInfo* p = m.info(e.name)) {
      data = tm.params().data() + p->offset;
      // The selection bias stays F32 as in the released checkpoints.
      if (!p->optimize) { out.push_back({e.name, DType::F32, e.shape, data}); continue; }
    } else if (e.name.find("embed_tokens") != std::string::npos) {
      data = tm.param("model.embed_tokens.weight");
    } else {
      data = c.tie_word_embeddings ? tm.param("model.embed_tokens.weight") : tm.param("lm_head.weight");
    }
    add(e.name, e.shape, data);
  }
  return out;
}

void write_model_files(const std::string& dir, const TrainModel<float>& m, const std::string& tokenizer_dir, bool bf16) {
  make_dirs(dir);
  std::vector<std::vector<uint16_t>> conv;
  conv.reserve(4096);
  const auto tensors = hf_tensors(m, bf16 ? &conv : nullptr);
  write_checkpoint_tensors(dir, tensors, size_t(1) << 62);  // one file
  ModelConfig c = m.config();
  c.torch_dtype = bf16 ? "bfloat16" : "float32";
  c.fp8 = false;
  write_text_file_atomic(path_join(dir, "config.json"), model_config_to_json(c).dump(2) + "\n");
  if (!tokenizer_dir.empty())
    for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
      if (file_exists(path_join(tokenizer_dir, f))) copy_file_atomic(path_join(tokenizer_dir, f), path_join(dir, f));
}

}  // namespace

void export_hf_model(const std::string& dir, const TrainModel<float>& m, const std::string& tokenizer_dir, bool bf16) {
  write_model_files(dir, m, tokenizer_dir, bf16);
}

std::vector<std::string> list_checkpoints(const std::string& out_dir) {
  std::vector<std::string> out;
  const std::string root = path_join(out_dir, "checkpoints");
  if (!is_directory(root)) return out;
  for (const auto& e : fs::directory_iterator(root)) {
    const std::string n = e.path().filename().string();
    if (e.is_directory() && n.rfind("step-", 0) == 0 && n.find(".tmp") == std::string::npos &&
        file_exists(path_join(e.path().string(), "state.json")))
      out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string latest_checkpoint(const std::string& out_dir) {
  const std::string p = path_join(path_join(out_dir, "checkpoints"), "latest");
  if (!file_exists(p)) return {};
  std::string name = read_text_file(p);
  while (!name.empty() && (name.back() == '\n' || name.back() == ' ')) name.pop_back();
  return path_join(path_join(out_dir, "checkpoints"), name);
}

std::string save_checkpoint(const std::string& out_dir, const TrainModel<float>& m, const AdamW& opt,
                            const TrainerState& st, const std::string& tokenizer_dir, int keep_last) {
  const std::string root = path_join(out_dir, "checkpoints");
  make_dirs(root);
  const std::string name = step_name(st.step);
  const std::string final_dir = path_join(root, name);
  const std::string tmp = final_dir + ".tmp." + std::to_string(::getpid());
  std::error_code ec;
  fs::remove_all(tmp, ec);
  write_model_files(tmp, m, tokenizer_dir, false);
  // Optimizer moments, one tensor pair per optimized parameter.
  {
    auto& o = const_cast<AdamW&>(opt);
    std::vector<TensorToWrite> t;
    for (const ParamInfo& p : m.layout()) {
      if (!p.optimize) continue;
      t.push_back({p.name + ".exp_avg", DType::F32, p.shape, o.exp_avg().data() + p.offset});
      t.push_back({p.name + ".exp_avg_sq", DType::F32, p.shape, o.exp_avg_sq().data() + p.offset});
    }
    SafetensorsWriter w;
    for (const auto& x : t) w.add(x.name, x.dtype, x.shape, x.data);
    w.write(path_join(tmp, "optimizer.safetensors"));
  }
  nlohmann::json s;
  s["format"] = "qiusuo-train-checkpoint-1";
  s["step"] = st.step;
  s["tokens_seen"] = st.tokens_seen;
  s["elapsed_s"] = st.elapsed_s;
  s["adam_steps"] = opt.steps();
  s["data"] = {{"epoch", st.data.epoch}, {"index", st.data.index}, {"seed", st.data.seed}};
  s["rng"] = {{"s", {st.rng.s[0], st.rng.s[1], st.rng.s[2], st.rng.s[3]}}, {"spare", st.rng.spare},
              {"has_spare", st.rng.has_spare}};
  s["settings"] = st.settings;
  nlohmann::json files = nlohmann::json::object();
  for (const auto& e : fs::directory_iterator(tmp)) {
    const std::string p = e.path().string();
    files[e.path().filename().string()] = {{"bytes", fs::file_size(p)}, {"checksum", file_checksum(p)}};
  }
  s["files"] = files;
  write_text_file_atomic(path_join(tmp, "state.json"), s.dump(2) + "\n");
  fsync_dir(tmp);
  fs::remove_all(final_dir, ec);
  fs::rename(tmp, final_dir, ec);
  if (ec) fail(ErrorKind::Io, "cannot move checkpoint into place at ", final_dir, ": ", ec.message());
  fsync_dir(root);
  write_text_file_atomic(path_join(root, "latest"), name + "\n");
  // Prune old checkpoints and leftovers of interrupted saves.
  auto all = list_checkpoints(out_dir);
  for (size_t i = 0; keep_last > 0 && i + size_t(keep_last) < all.size(); ++i) fs::remove_all(all[i], ec);
  for (const auto& e : fs::directory_iterator(root))
    if (e.path().filename().string().find(".tmp.") != std::string::npos) fs::remove_all(e.path(), ec);
  return final_dir;
}

void load_hf_weights(const TensorStore& store, TrainModel<float>& m) {
  for (const ParamInfo& p : m.layout()) {
    const TensorView* t = store.find(p.name);
    const bool mtp = p.name.find("model.layers.") == 0 &&
                     std::stoll(p.name.substr(13)) >= m.config().num_hidden_layers;
    if (!t && mtp) continue;
    if (!t) fail(ErrorKind::NotFound, "checkpoint ", store.dir(), " is missing tensor '", p.name, "'");
    if (t->shape != p.shape)
      fail(ErrorKind::Format, "tensor '", p.name, "' has shape ", shape_str(t->shape), " but the config implies ",
           shape_str(p.shape));
    float* dst = m.params().data() + p.offset;
    if (t->dtype == DType::F8_E4M3) {
      const TensorView* s = store.find(p.name + "_scale_inv");
      if (!s) fail(ErrorKind::NotFound, "FP8 tensor '", p.name, "' has no weight_scale_inv");
      WeightMatrix w{DType::F8_E4M3, p.shape[0], p.shape[1], t->data, s->as<float>()};
      for (int64_t r = 0; r < w.rows; ++r) w.dequant_row(r, dst + r * w.cols);
      continue;
    }
    const int64_t n = int64_t(p.numel);
    switch (t->dtype) {
      case DType::F32: std::copy_n(t->as<float>(), n, dst); break;
      case DType::BF16: bf16_to_f32(t->as<uint16_t>(), dst, n); break;
      case DType::F16: f16_to_f32(t->as<uint16_t>(), dst, n); break;
      default: fail(ErrorKind::Format, "tensor '", p.name, "' has unsupported dtype ", dtype_name(t->dtype));
    }
  }
}

TrainerState load_checkpoint(const std::string& dir, TrainModel<float>& m, AdamW& opt) {
  const std::string sp = path_join(dir, "state.json");
  if (!file_exists(sp)) fail(ErrorKind::NotFound, "checkpoint ", dir, " has no state.json (incomplete or not a checkpoint)");
  nlohmann::json s;
  try {
    s = nlohmann::json::parse(read_text_file(sp));
  } catch (const nlohmann::json::exception& e) {
    fail(ErrorKind::Format, sp, ": corrupt (", e.what(), ")");
  }
  try {
    for (const auto& [name, f] : s.at("files").items()) {
      const std::string p = path_join(dir, name);
      if (!file_exists(p)) fail(ErrorKind::Format, "checkpoint file ", p, " is missing");
      const uint64_t bytes = fs::file_size(p);
      if (bytes != f.at("bytes").get<uint64_t>())
        fail(ErrorKind::Format, "checkpoint file ", p, " is corrupt: ", bytes, " bytes, expected ",
             f.at("bytes").get<uint64_t>(), " (truncated?)");
      if (file_checksum(p) != f.at("checksum").get<uint64_t>())
        fail(ErrorKind::Format, "checkpoint file ", p, " is corrupt: checksum mismatch");
    }
    const ModelConfig saved = load_model_config(dir);
    if (model_config_to_json(saved) != model_config_to_json(m.config())) {
      ModelConfig a = saved, b = m.config();
      a.torch_dtype = b.torch_dtype;
      if (model_config_to_json(a) != model_config_to_json(b))
        fail(ErrorKind::Invalid, "checkpoint ", dir, " is of a different model configuration than this run");
    }
    auto store = TensorStore::open_dir(dir);
    load_hf_weights(store, m);
    auto os = SafetensorsFile::open(path_join(dir, "optimizer.safetensors"));
    for (const ParamInfo& p : m.layout()) {
      if (!p.optimize) continue;
      for (const char* k : {".exp_avg", ".exp_avg_sq"}) {
        const TensorView* t = os.find(p.name + k);
        if (!t || t->dtype != DType::F32 || t->shape != p.shape)
          fail(ErrorKind::Format, "optimizer state for '", p.name, "' is missing or has the wrong shape in ", dir);
        auto& dst = std::string(k) == ".exp_avg" ? opt.exp_avg() : opt.exp_avg_sq();
        std::copy_n(t->as<float>(), p.numel, dst.data() + p.offset);
      }
    }
    TrainerState st;
    st.step = s.at("step").get<int64_t>();
    st.tokens_seen = s.at("tokens_seen").get<int64_t>();
    st.elapsed_s = s.value("elapsed_s", 0.0);
    opt.set_steps(s.at("adam_steps").get<int64_t>());
    st.data.epoch = s.at("data").at("epoch").get<uint64_t>();
    st.data.index = s.at("data").at("index").get<uint64_t>();
    st.data.seed = s.at("data").at("seed").get<uint64_t>();
    for (int i = 0; i < 4; ++i) st.rng.s[i] = s.at("rng").at("s")[i].get<uint64_t>();
    st.rng.spare = s.at("rng").at("spare").get<double>();
    st.rng.has_spare = s.at("rng").at("has_spare").get<bool>();
    st.settings = s.value("settings", nlohmann::json::object());
    return st;
  } catch (const nlohmann::json::exception& e) {
    fail(ErrorKind::Format, sp, ": malformed (", e.what(), ")");
  }
}

}  // namespace qs
