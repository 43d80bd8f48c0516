// quantize_checkpoint (see quantize.h): plan every output tensor (name, dtype, shape) from the
// input's headers, write each shard's header, then produce and write the tensors one source
// tensor at a time.
#include "qiusuo/quant/quantize.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <set>

#include <nlohmann/json.hpp>

#include "qiusuo/core/buffer.h"
#include "qiusuo/core/dtype.h"
#include "qiusuo/core/error.h"
#include "qiusuo/core/parallel.h"
#include "qiusuo/core/timer.h"
#include "qiusuo/io/file.h"
#include "qiusuo/io/safetensors.h"
#include "qiusuo/model/config.h"
#include "qiusuo/model/init.h"  // quantize_fp8_blocks
#include "qiusuo/model/weights.h"
#include "qiusuo/quant/formats.h"

namespace qs {
namespace {
namespace fs = std::filesystem;

std::atomic<int> g_signal{0};
extern "C" void on_signal(int sig) { g_signal.store(sig); }

// SIGINT/SIGTERM set a flag for the duration of a quantize; the loop checks it between tensors.
class SignalGuard {
 public:
  SignalGuard() {
    g_signal.store(0);
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int_);
    sigaction(SIGTERM, &sa, &old_term_);
  }
  ~SignalGuard() {
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
  }
  static void check() {
    if (const int s = g_signal.load())
      fail(ErrorKind::Io, "quantize interrupted by ", s == SIGINT ? "SIGINT" : "SIGTERM", "; no output written");
  }

 private:
  struct sigaction old_int_ {}, old_term_ {};
};

// What produces an output tensor.
enum class Op {
  Copy,        // the input bytes
  Fp8ToBf16,   // an FP8 input kept: dequantized, rounded to BF16
  Fp8Codes,    // quantized to FP8 (codes); the next entry is its scales
  Fp8Scales,
  GptqWeight,  // quantized to GPTQ; the next three entries are scales, zeros, g_idx
  GptqScales,
  GptqZeros,
  GptqGidx,
};

struct OutTensor {
  std::string name;
  DType dtype;
  Shape shape;
  size_t bytes;
  Op op;
  std::string src;  // input tensor name
  int bits = 0;     // GPTQ entries: 4 or 8
};

size_t nbytes(DType t, const Shape& s) { return size_t(shape_numel(s)) * dtype_size(t); }

std::string strip_suffix(const std::string& s, const std::string& suffix) {
  return s.size() > suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0
             ? s.substr(0, s.size() - suffix.size())
             : s;
}

// Drops the pages of an input tensor from this process's resident set (they were read once).
void release(const TensorView* t) {
  if (t) drop_resident_pages(t->data, t->nbytes);
}

// Rows [r0, r1) of a 2-D input (BF16 / F16 / F32, or F8_E4M3 with its block scales) as F32.
void rows_f32(const std::string& name, const TensorView& t, const TensorView* scale, int64_t r0, int64_t r1,
              float* out) {
  const int64_t cols = t.shape[1];
  const size_t off = size_t(r0 * cols), n = size_t((r1 - r0) * cols);
  switch (t.dtype) {
    case DType::F32: std::copy_n(t.as<float>() + off, n, out); break;
    case DType::BF16:
      for (size_t i = 0; i < n; ++i) out[i] = bf16_to_f32(t.as<uint16_t>()[off + i]);
      break;
    case DType::F16:
      for (size_t i = 0; i < n; ++i) out[i] = f16_to_f32(t.as<uint16_t>()[off + i]);
      break;
    case DType::F8_E4M3: {
      const int64_t sc = (cols + 127) / 128;
      for (int64_t r = r0; r < r1; ++r)
        for (int64_t c = 0; c < cols; ++c)
          out[(r - r0) * cols + c] = fp8e4m3_to_f32(t.as<uint8_t>()[r * cols + c]) * scale->as<float>()[(r / 128) * sc + c / 128];
      break;
    }
    default: fail(ErrorKind::Unsupported, "quantize: tensor '", name, "' has dtype ", dtype_name(t.dtype));
  }
  for (size_t i = 0; i < n; ++i)
    if (!std::isfinite(out[i]))
      fail(ErrorKind::Format, "quantize: tensor '", name, "' holds a non-finite value at row ",
           r0 + int64_t(i) / cols, ", column ", int64_t(i) % cols);
}

class Quantizer {
 public:
  Quantizer(const QuantizeOptions& o, const TensorStore& store, const ModelConfig& cfg) : o_(o), store_(store) {
    // A GPTQ input: only the heads asked for; what else it holds wide it chose to (GPTQModel's
    // "-:" overrides, --keep), and stays so.
    for (const auto& e : expected_tensors(cfg)) {
      if ((e.quantizable && !cfg.gptq_bits) || (e.head && o.head_format)) quantizable_.insert(e.name);
      if (e.head && o.head_format) heads_.insert(e.name);
    }
  }

  // The format of a tensor to quantize: the head's own (--head-to), else the file's.
  QuantFormat format_of(const std::string& name) const {
    return heads_.count(name) ? *o_.head_format : o_.format;
  }
  static int bits_of(QuantFormat f) { return f == QuantFormat::Int4 ? 4 : 8; }

  // The head tensors this run quantizes (asked for, present wide, not --keep'd).
  std::vector<std::string> quantized_heads() const {
    std::vector<std::string> v;
    for (const std::string& h : heads_)
      if (store_.find(h) && !kept(h, store_.get(h))) v.push_back(h);
    return v;
  }

  // Left as it is: not a projection of the model, not a matrix, or matched by --keep.
  bool kept(const std::string& name, const TensorView& t) const {
    return !quantizable_.count(name) || t.shape.size() != 2 ||
           std::any_of(o_.keep.begin(), o_.keep.end(), [&](const std::string& p) { return glob_match(p, name); });
  }

  // --group auto over the widths of the tensors to be quantized (one group size for the whole
  // file, as GPTQ's quantization_config has); when none fits, an error naming a tensor that no
  // size divides.
  int64_t auto_group() const {
    std::vector<int64_t> widths;
    std::string odd;  // a tensor whose width no group size divides
    for (const std::string& name : store_.names())
      if (const TensorView& t = store_.get(name); !kept(name, t)) {
        widths.push_back(t.shape[1]);
        if (odd.empty() && auto_group_size(std::span(&t.shape[1], 1)) == 0)
          odd = "'" + name + "' is " + std::to_string(t.shape[1]) + " wide";
      }
    const int64_t g = auto_group_size(widths);
    QS_CHECK(g > 0, "quantize: --group auto: no group size (128, 64 or 32) divides the width of every tensor to "
             "quantize (", odd, "); --keep such tensors, or quantize to fp8");
    return g;
  }

  // The output tensors, in writing order.
  std::vector<OutTensor> plan(QuantizeReport* rep) {
    std::vector<OutTensor> out;
    std::set<std::string> scales_used;
    const bool to_int = o_.format != QuantFormat::Fp8;
    for (const std::string& name : store_.names()) {
      const TensorView& t = store_.get(name);
      if (name.size() > 10 && name.compare(name.size() - 10, 10, "_scale_inv") == 0 &&
          store_.find(strip_suffix(name, "_scale_inv")))
        continue;  // follows its weight
      ++rep->tensors;
      const TensorView* scale = t.dtype == DType::F8_E4M3 ? store_.find(name + "_scale_inv") : nullptr;
      QS_CHECK(t.dtype != DType::F8_E4M3 || scale, "quantize: FP8 tensor '", name, "' has no '", name, "_scale_inv'");
      if (kept(name, t)) {  // as it is; an FP8 tensor in an INT8/INT4 output becomes BF16 (one format per file)
        ++rep->kept;
        if (t.dtype == DType::F8_E4M3 && to_int) {
          out.push_back({name, DType::BF16, t.shape, nbytes(DType::BF16, t.shape), Op::Fp8ToBf16, name});
        } else {
          out.push_back({name, t.dtype, t.shape, t.nbytes, Op::Copy, name});
          if (scale) out.push_back({name + "_scale_inv", scale->dtype, scale->shape, scale->nbytes, Op::Copy, name + "_scale_inv"});
        }
        continue;
      }
      QS_CHECK(t.dtype == DType::BF16 || t.dtype == DType::F16 || t.dtype == DType::F32 || t.dtype == DType::F8_E4M3,
               "quantize: tensor '", name, "' has dtype ", dtype_name(t.dtype), " (BF16, F16, F32 or F8_E4M3 expected)");
      ++rep->quantized;
      const int64_t rows = t.shape[0], cols = t.shape[1];
      if (!to_int) {
        if (t.dtype == DType::F8_E4M3) {  // already FP8: as it is
          out.push_back({name, t.dtype, t.shape, t.nbytes, Op::Copy, name});
          out.push_back({name + "_scale_inv", scale->dtype, scale->shape, scale->nbytes, Op::Copy, name + "_scale_inv"});
          continue;
        }
        const Shape ss{(rows + 127) / 128, (cols + 127) / 128};
        out.push_back({name, DType::F8_E4M3, t.shape, nbytes(DType::F8_E4M3, t.shape), Op::Fp8Codes, name});
        out.push_back({name + "_scale_inv", DType::F32, ss, nbytes(DType::F32, ss), Op::Fp8Scales, name});
        continue;
      }
      const int bits = bits_of(format_of(name));
      check_gptq_shape(name, rows, cols, bits, o_.group);
      const int64_t per = 32 / bits, ng = cols / o_.group;
      const std::string base = strip_suffix(name, ".weight");
      const Shape qw{cols / per, rows}, sc{ng, rows}, qz{ng, rows / per}, gi{cols};
      out.push_back({base + ".qweight", DType::I32, qw, nbytes(DType::I32, qw), Op::GptqWeight, name, bits});
      out.push_back({base + ".scales", DType::F16, sc, nbytes(DType::F16, sc), Op::GptqScales, name, bits});
      out.push_back({base + ".qzeros", DType::I32, qz, nbytes(DType::I32, qz), Op::GptqZeros, name, bits});
      out.push_back({base + ".g_idx", DType::I32, gi, nbytes(DType::I32, gi), Op::GptqGidx, name, bits});
    }
    return out;
  }

  // Writes tensor `t` (entries of one source come in order: the first computes, the others
  // take what it left in the stash).
  void write(int fd, const std::string& path, const OutTensor& t) {
    const TensorView& src = store_.get(t.src);
    auto put = [&](const void* p, size_t n) {
      QS_CHECK(n == t.bytes, "quantize: internal size mismatch for '", t.name, "'");
      write_all(fd, p, n, path);
    };
    switch (t.op) {
      case Op::Copy: {
        // In slices, releasing the pages behind: a large kept tensor (the embeddings) never
        // stays resident as a whole.
        constexpr size_t kSlice = size_t(64) << 20;
        const auto* p = static_cast<const uint8_t*>(src.data);
        QS_CHECK(src.nbytes == t.bytes, "quantize: internal size mismatch for '", t.name, "'");
        for (size_t o = 0; o < src.nbytes; o += kSlice) {
          const size_t n = std::min(kSlice, src.nbytes - o);
          write_all(fd, p + o, n, path);
          TensorView part = src;
          part.data = p + o;
          part.nbytes = n;
          release(&part);
        }
        release(&src);
        break;
      }
      case Op::Fp8ToBf16: {
        const TensorView* scale = store_.find(t.src + "_scale_inv");
        const int64_t rows = src.shape.empty() ? 1 : src.shape[0], cols = src.numel() / std::max<int64_t>(rows, 1);
        std::vector<uint16_t> out(size_t(src.numel()));
        std::vector<float> band(size_t(128 * cols));
        TensorView t2 = src;
        t2.shape = {rows, cols};
        for (int64_t r0 = 0; r0 < rows; r0 += 128) {
          const int64_t r1 = std::min(rows, r0 + 128);
          rows_f32(t.src, t2, scale, r0, r1, band.data());
          for (int64_t i = 0; i < (r1 - r0) * cols; ++i) out[size_t(r0 * cols + i)] = f32_to_bf16(band[size_t(i)]);
        }
        put(out.data(), out.size() * 2);
        release(&src);
        release(scale);
        break;
      }
      case Op::Fp8Codes: {
        const int64_t rows = src.shape[0], cols = src.shape[1];
        const int64_t sc = (cols + 127) / 128;
        std::vector<uint8_t> codes(size_t(rows * cols));
        stash_f32_.assign(size_t((rows + 127) / 128 * sc), 0.0f);
        const int64_t bands = (rows + 127) / 128;
        parallel_for(bands, 1, [&](int64_t b0, int64_t b1) {
          std::vector<float> band(size_t(128 * cols));
          for (int64_t b = b0; b < b1; ++b) {
            const int64_t r0 = b * 128, r1 = std::min(rows, r0 + 128);
            rows_f32(t.src, src, nullptr, r0, r1, band.data());
            quantize_fp8_blocks(band.data(), r1 - r0, cols, codes.data() + r0 * cols, stash_f32_.data() + b * sc);
          }
        });
        put(codes.data(), codes.size());
        release(&src);
        break;
      }
      case Op::Fp8Scales: put(stash_f32_.data(), stash_f32_.size() * 4); break;
      case Op::GptqWeight: {
        const int64_t rows = src.shape[0], cols = src.shape[1];
        const TensorView* scale = src.dtype == DType::F8_E4M3 ? store_.find(t.src + "_scale_inv") : nullptr;
        const int bits = t.bits;
        gptq_ = GptqOutput{};
        init_gptq_output(rows, cols, bits, o_.group, &gptq_);
        const int64_t bands = (rows + 127) / 128;
        // Bands of 128 rows in parallel: each writes only its own rows' bits (whole words are
        // per output row: qweight word (w, n) belongs to row n alone).
        parallel_for(bands, 1, [&](int64_t b0, int64_t b1) {
          std::vector<float> band(size_t(128 * cols));
          for (int64_t b = b0; b < b1; ++b) {
            const int64_t r0 = b * 128, r1 = std::min(rows, r0 + 128);
            rows_f32(t.src, src, scale, r0, r1, band.data());
            quantize_gptq_rows(band.data(), r0, r1, rows, cols, bits, o_.group, &gptq_);
          }
        });
        put(gptq_.qweight.data(), gptq_.qweight.size() * 4);
        release(&src);
        release(scale);
        break;
      }
      case Op::GptqScales: put(gptq_.scales.data(), gptq_.scales.size() * 2); break;
      case Op::GptqZeros: put(gptq_.qzeros.data(), gptq_.qzeros.size() * 4); break;
      case Op::GptqGidx: put(gptq_.g_idx.data(), gptq_.g_idx.size() * 4); break;
    }
  }

 private:
  const QuantizeOptions& o_;
  const TensorStore& store_;
  std::set<std::string> quantizable_, heads_;
  std::vector<float> stash_f32_;
  GptqOutput gptq_;
};

void fsync_path(const std::string& path, bool dir) {
  const int fd = ::open(path.c_str(), (dir ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

double peak_rss_mb_now() {
  rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return double(ru.ru_maxrss) / 1024.0;
}

}  // namespace

int64_t auto_group_size(std::span<const int64_t> widths) {
  for (int64_t g : {128, 64, 32})
    if (std::all_of(widths.begin(), widths.end(), [&](int64_t w) { return w % g == 0; })) return g;
  return 0;
}

QuantFormat parse_quant_format(const std::string& s) {
  if (s == "fp8") return QuantFormat::Fp8;
  if (s == "int8") return QuantFormat::Int8;
  if (s == "int4") return QuantFormat::Int4;
  fail(ErrorKind::Invalid, "quantize: unknown format '", s, "' (fp8, int8 or int4)");
}

const char* quant_format_name(QuantFormat f) {
  return f == QuantFormat::Fp8 ? "fp8" : f == QuantFormat::Int8 ? "int8" : "int4";
}

bool glob_match(const std::string& p, const std::string& s) {
  size_t i = 0, j = 0, star = std::string::npos, mark = 0;
  while (j < s.size()) {
    if (i < p.size() && (p[i] == '?' || p[i] == s[j])) {
      ++i;
      ++j;
    } else if (i < p.size() && p[i] == '*') {
      star = i++;
      mark = j;
    } else if (star != std::string::npos) {
      i = star + 1;
      j = ++mark;
    } else {
      return false;
    }
  }
  while (i < p.size() && p[i] == '*') ++i;
  return i == p.size();
}

QuantizeReport quantize_checkpoint(const QuantizeOptions& o) {
  QS_CHECK(!o.model_dir.empty() && !o.out_dir.empty(), "quantize: --model and --out are required");
  if (o.format != QuantFormat::Fp8)
    QS_CHECK(o.group == 0 || o.group == 32 || o.group == 64 || o.group == 128, "quantize: --group ", o.group,
             " is not supported (32, 64 or 128; 0 = auto)");
  QS_CHECK(o.shard_gb > 0, "quantize: shard size must be positive");
  const std::string out = fs::path(o.out_dir).lexically_normal().string();
  QS_CHECK(!fs::exists(out), "quantize: output '", out, "' exists; remove it or choose another --out");
  QS_CHECK(fs::weakly_canonical(out) != fs::weakly_canonical(o.model_dir), "quantize: --out is the input directory");
  QuantizeOptions opt = o;
  if (opt.quantize_head && !opt.head_format) opt.head_format = opt.format;
  if (opt.head_format) {
    const bool fp8 = opt.format == QuantFormat::Fp8, head_fp8 = *opt.head_format == QuantFormat::Fp8;
    QS_CHECK(fp8 == head_fp8, "quantize: --head-to ", quant_format_name(*opt.head_format), " with --to ",
             quant_format_name(opt.format), " is not supported (one file holds one quantization method: ",
             fp8 ? "an fp8 file takes an fp8 head" : "an int8 / int4 file takes an int8 or int4 head", ")");
  }
  Stopwatch sw;
  const ModelConfig cfg = load_model_config(o.model_dir);
  nlohmann::ordered_json config =
      nlohmann::ordered_json::parse(read_text_file(path_join(o.model_dir, "config.json")));
  // A GPTQ input: its integer tensors pass through, so the output keeps its bits and group.
  if (cfg.gptq_bits) {
    const QuantFormat in = cfg.gptq_bits == 4 ? QuantFormat::Int4 : QuantFormat::Int8;
    const auto& qc = config["quantization_config"];
    const int64_t in_group = qc.contains("group_size") && qc["group_size"].is_number_integer()
                                 ? qc["group_size"].get<int64_t>() : 0;
    QS_CHECK(opt.format == in && (opt.group == 0 || opt.group == in_group), "quantize: '", o.model_dir,
             "' is already GPTQ ", quant_format_name(in), " (group_size ", in_group, "); --to ",
             quant_format_name(opt.format), opt.group ? " --group " + std::to_string(opt.group) : std::string(),
             " would quantize quantized weights again: give --to ", quant_format_name(in),
             " (to quantize what it keeps wide, e.g. --head-to int8) or start from the BF16 or FP8 checkpoint");
    QS_CHECK(in_group == 32 || in_group == 64 || in_group == 128, "quantize: '", o.model_dir,
             "' has quantization_config.group_size ", in_group, " (32, 64 or 128 to add tensors to it)");
    opt.group = in_group;
  }
  const TensorStore store = TensorStore::open_dir(o.model_dir);
  QuantizeReport rep;
  rep.input_quantized = cfg.gptq_bits != 0;
  if (opt.format == QuantFormat::Fp8) opt.group = 128;  // the 128x128 blocks
  Quantizer q(opt, store, cfg);
  if (opt.group == 0) opt.group = q.auto_group();
  rep.group = opt.group;
  const std::vector<std::string> heads = q.quantized_heads();
  if (!heads.empty()) rep.head_format = opt.head_format;
  const std::vector<OutTensor> plan = q.plan(&rep);  // every shape error before any output

  // Shards: consecutive groups (the entries of one source stay together) up to shard_gb.
  const size_t shard_bytes = size_t(o.shard_gb * 1e9);
  std::vector<std::vector<size_t>> shards(1);
  size_t cur = 0;
  for (size_t i = 0; i < plan.size();) {
    size_t j = i + 1, group_bytes = plan[i].bytes;
    while (j < plan.size() && plan[j].src == plan[i].src) group_bytes += plan[j++].bytes;
    if (cur > 0 && cur + group_bytes > shard_bytes) {
      shards.emplace_back();
      cur = 0;
    }
    for (size_t k = i; k < j; ++k) shards.back().push_back(k);
    cur += group_bytes;
    i = j;
  }

  // Into a temporary directory beside OUT; stale ones of an earlier killed run are removed.
  const fs::path parent = fs::absolute(out).parent_path();
  make_dirs(parent.string());
  const std::string stem = fs::path(out).filename().string() + ".tmp-";
  for (const auto& e : fs::directory_iterator(parent))
    if (e.path().filename().string().rfind(stem, 0) == 0) fs::remove_all(e.path());
  const std::string tmp = (parent / (stem + std::to_string(::getpid()))).string();
  SignalGuard signals;
  try {
    make_dirs(tmp);
    nlohmann::json weight_map = nlohmann::json::object();
    size_t total = 0, done = 0;
    char fname[64];
    for (size_t si = 0; si < shards.size(); ++si) {
      if (shards.size() == 1) std::snprintf(fname, sizeof fname, "model.safetensors");
      else std::snprintf(fname, sizeof fname, "model-%05zu-of-%05zu.safetensors", si + 1, shards.size());
      const std::string path = path_join(tmp, fname);
      nlohmann::json h = nlohmann::json::object();
      h["__metadata__"] = {{"format", "pt"}, {"quantized_by", std::string("qiusuo quantize --to ") + quant_format_name(o.format)}};
      size_t off = 0;
      for (size_t k : shards[si]) {
        const OutTensor& t = plan[k];
        h[t.name] = {{"dtype", std::string(dtype_name(t.dtype))}, {"shape", t.shape}, {"data_offsets", {off, off + t.bytes}}};
        off += t.bytes;
        weight_map[t.name] = fname;
      }
      std::string js = h.dump();
      while ((js.size() + 8) % 8) js.push_back(' ');
      const uint64_t n = js.size();
      const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      QS_CHECK(fd >= 0, "quantize: cannot create ", path, ": ", std::strerror(errno));
      try {
        write_all(fd, &n, 8, path);
        write_all(fd, js.data(), js.size(), path);
        for (size_t k : shards[si]) {
          SignalGuard::check();
          q.write(fd, path, plan[k]);
          rep.output_bytes += double(plan[k].bytes);
          if (k + 1 == plan.size() || plan[k + 1].src != plan[k].src) {
            ++done;
            if (o.progress) o.progress(done, rep.tensors, plan[k].src);
          }
        }
        QS_CHECK(::fsync(fd) == 0, "quantize: fsync ", path, ": ", std::strerror(errno));
      } catch (...) {
        ::close(fd);
        throw;
      }
      ::close(fd);
      total += off;
    }
    SignalGuard::check();
    if (shards.size() > 1) {
      const nlohmann::json idx = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
      write_text_file_atomic(path_join(tmp, "model.safetensors.index.json"), idx.dump(2) + "\n");
    }
    if (o.format == QuantFormat::Fp8) {
      config["quantization_config"] = {{"activation_scheme", "dynamic"}, {"fmt", "e4m3"}, {"quant_method", "fp8"},
                                       {"weight_block_size", {128, 128}}};
    } else {
      if (!cfg.gptq_bits)
        config["quantization_config"] = {{"quant_method", "gptq"}, {"bits", Quantizer::bits_of(o.format)},
                                         {"group_size", opt.group}, {"sym", true}, {"desc_act", false},
                                         {"checkpoint_format", "gptq"}, {"damp_percent", 0.0},
                                         {"true_sequential", true}, {"static_groups", false}};
      auto& qc = config["quantization_config"];
      if (!heads.empty()) qc["lm_head"] = true;
      // Heads of other bits: "dynamic" overrides ahead of any the input had (the first
      // matching pattern decides).
      if (!heads.empty() && *opt.head_format != o.format) {
        nlohmann::ordered_json dyn = nlohmann::ordered_json::object();
        for (const std::string& h : heads) {
          std::string re = "+:^";
          for (char ch : strip_suffix(h, ".weight")) {
            if (ch == '.') re += '\\';
            re += ch;
          }
          dyn[re + "$"] = {{"bits", Quantizer::bits_of(*opt.head_format)}};
        }
        if (qc.contains("dynamic") && qc["dynamic"].is_object())
          for (const auto& [k, v] : qc["dynamic"].items())
            if (!dyn.contains(k)) dyn[k] = v;
        qc["dynamic"] = dyn;
      }
    }
    write_text_file_atomic(path_join(tmp, "config.json"), config.dump(2) + "\n");
    // Other files (tokenizer, generation config, ...) as they are.
    for (const auto& e : fs::directory_iterator(o.model_dir)) {
      const std::string fn = e.path().filename().string();
      if (!e.is_regular_file() || fn == "config.json" || fn == "model.safetensors.index.json" ||
          e.path().extension() == ".safetensors")
        continue;
      fs::copy_file(e.path(), fs::path(tmp) / fn);
      sync_file((fs::path(tmp) / fn).string());
    }
    fsync_path(tmp, true);
    SignalGuard::check();
    fs::rename(tmp, out);
    fsync_path(parent.string(), true);
  } catch (...) {
    std::error_code ec;
    fs::remove_all(tmp, ec);
    throw;
  }
  rep.input_bytes = double(store.total_bytes());
  rep.seconds = sw.elapsed();
  rep.peak_rss_mb = peak_rss_mb_now();
  return rep;
}

}  // namespace qs
