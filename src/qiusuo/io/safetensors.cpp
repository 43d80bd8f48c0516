#include "qiusuo/io/safetensors.h"

#include <algorithm>
#include <cstring>
#include <filesystem>

#include "qiusuo/core/error.h"
#include "qiusuo/core/json_util.h"
#include "qiusuo/io/file.h"

namespace qs {

namespace {

// a * b, or false when it does not fit in 64 bits.
bool mul_ok(uint64_t a, uint64_t b, uint64_t* out) {
  if (a != 0 && b > UINT64_MAX / a) return false;
  *out = a * b;
  return true;
}

}  // namespace

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  SafetensorsFile f;
  f.file_ = MappedFile::open(path);
  const size_t size = f.file_.size();
  const uint8_t* base = f.file_.data();
  if (size < 8) fail(ErrorKind::Format, path, ": truncated safetensors file (", size, " bytes, no header)");
  uint64_t n = 0;
  std::memcpy(&n, base, 8);
  if (n > kMaxSafetensorsHeaderBytes)
    fail(ErrorKind::Format, path, ": corrupt safetensors file: header length ", n, " is above the format's limit of ",
         kMaxSafetensorsHeaderBytes, " bytes");
  if (n > size - 8)
    fail(ErrorKind::Format, path, ": truncated safetensors file: header says ", n,
         " bytes of JSON but the file has only ", size - 8, " after the length");
  const nlohmann::json header = parse_json_file_text<nlohmann::json>(
      std::string_view(reinterpret_cast<const char*>(base) + 8, size_t(n)), path + ": corrupt safetensors header");
  if (!header.is_object()) fail(ErrorKind::Format, path, ": corrupt safetensors header (not a JSON object)");
  const size_t data_start = 8 + size_t(n);
  const size_t data_size = size - data_start;
  std::vector<std::pair<std::pair<uint64_t, uint64_t>, std::string>> spans;  // ((begin, end), name)
  bool misaligned = false;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it.value().is_object() && !it.value().is_null())
        fail(ErrorKind::Format, path, ": __metadata__ must be an object of strings");
      f.metadata_ = it.value();
      continue;
    }
    const auto& v = it.value();
    const std::string& name = it.key();
    if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") || !v.contains("data_offsets"))
      fail(ErrorKind::Format, path, ": tensor '", name, "' has a malformed header entry");
    TensorView t;
    const auto& dt = v["dtype"];
    if (!dt.is_string() || !parse_dtype(dt.get<std::string>(), &t.dtype))
      fail(ErrorKind::Format, path, ": tensor '", name, "' has unsupported dtype ", json_excerpt(dt));
    const auto& sh = v["shape"];
    if (!sh.is_array() || sh.size() > kMaxTensorRank)
      fail(ErrorKind::Format, path, ": tensor '", name, "' has a malformed shape ", json_excerpt(sh),
           " (an array of at most ", kMaxTensorRank, " sizes)");
    uint64_t numel = 1;
    for (const auto& d : sh) {
      if (!d.is_number_integer() || d.get<int64_t>() < 0)
        fail(ErrorKind::Format, path, ": tensor '", name, "' has a malformed shape ", json_excerpt(sh));
      t.shape.push_back(d.get<int64_t>());
      if (!mul_ok(numel, uint64_t(d.get<int64_t>()), &numel) || numel > uint64_t(INT64_MAX))
        fail(ErrorKind::Format, path, ": tensor '", name, "' has shape ", json_excerpt(sh), " whose size overflows 64 bits");
    }
    const auto& off = v["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      fail(ErrorKind::Format, path, ": tensor '", name, "' has malformed data_offsets ", json_excerpt(off),
           " (two non-negative integers)");
    const uint64_t b = off[0].get<uint64_t>(), e = off[1].get<uint64_t>();
    if (b > e) fail(ErrorKind::Format, path, ": tensor '", name, "' has data_offsets end < begin");
    uint64_t want = 0;
    if (!mul_ok(numel, dtype_size(t.dtype), &want))
      fail(ErrorKind::Format, path, ": tensor '", name, "' has shape ", json_excerpt(sh), " whose size overflows 64 bits");
    if (e - b != want)
      fail(ErrorKind::Format, path, ": tensor '", name, "' ", dtype_name(t.dtype), shape_str(t.shape),
           " needs ", want, " bytes but data_offsets span ", e - b);
    if (e > data_size)
      fail(ErrorKind::Format, path, ": truncated safetensors file: tensor '", name, "' needs bytes up to ",
           e, " of the data section but the file holds only ", data_size);
    if ((data_start + b) % dtype_size(t.dtype) != 0) misaligned = true;
    t.data = reinterpret_cast<const uint8_t*>(b);  // offset for now; the base is set below
    t.nbytes = size_t(e - b);
    if (e > b) spans.push_back({{b, e}, name});
    f.tensors_.emplace(name, std::move(t));
  }
  // Tensors may not share bytes.
  std::sort(spans.begin(), spans.end());
  for (size_t i = 1; i < spans.size(); ++i)
    if (spans[i].first.first < spans[i - 1].first.second)
      fail(ErrorKind::Format, path, ": corrupt safetensors header: tensors '", spans[i - 1].second, "' and '",
           spans[i].second, "' overlap (data_offsets [", spans[i - 1].first.first, ", ", spans[i - 1].first.second,
           ") and [", spans[i].first.first, ", ", spans[i].first.second, "))");
  // Kernels read elements at their natural alignment: a file whose tensors are not aligned (a
  // header not padded to 8 bytes, as old writers left it) is read from an aligned copy.
  const uint8_t* data = base + data_start;
  if (misaligned) {
    f.copy_.reset(static_cast<uint8_t*>(::operator new[](data_size + 1, std::align_val_t(64))));
    std::memcpy(f.copy_.get(), data, data_size);
    data = f.copy_.get();
  }
  for (auto& [name, t] : f.tensors_) t.data = data + reinterpret_cast<uintptr_t>(t.data);
  return f;
}

const TensorView* SafetensorsFile::find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

TensorStore TensorStore::open_file(const std::string& path) {
  TensorStore s;
  s.dir_ = std::filesystem::path(path).parent_path().string();
  s.files_.push_back(std::make_unique<SafetensorsFile>(SafetensorsFile::open(path)));
  for (const auto& [name, t] : s.files_.back()->tensors()) {
    s.index_[name] = &t;
    s.file_of_[name] = path;
  }
  return s;
}

TensorStore TensorStore::open_dir(const std::string& dir) {
  if (!is_directory(dir)) fail(ErrorKind::NotFound, "checkpoint directory ", dir, " does not exist");
  TensorStore s;
  s.dir_ = dir;
  std::vector<std::string> files;
  const std::string index_path = path_join(dir, "model.safetensors.index.json");
  std::map<std::string, std::string> weight_map;
  if (file_exists(index_path)) {
    const nlohmann::json idx = parse_json_file_text<nlohmann::json>(read_text_file(index_path), index_path);
    if (!idx.contains("weight_map") || !idx["weight_map"].is_object())
      fail(ErrorKind::Format, index_path, ": missing \"weight_map\" object");
    for (auto it = idx["weight_map"].begin(); it != idx["weight_map"].end(); ++it) {
      if (!it.value().is_string() || it.value().get<std::string>().empty() ||
          it.value().get<std::string>().find('/') != std::string::npos)
        fail(ErrorKind::Format, index_path, ": weight_map entry '", it.key(), "' is not a file name in the checkpoint directory");
      weight_map[it.key()] = it.value().get<std::string>();
      if (std::find(files.begin(), files.end(), it.value().get<std::string>()) == files.end())
        files.push_back(it.value().get<std::string>());
    }
  } else if (file_exists(path_join(dir, "model.safetensors"))) {
    files.push_back("model.safetensors");
  } else {
    for (const auto& e : std::filesystem::directory_iterator(dir))
      if (e.path().extension() == ".safetensors") files.push_back(e.path().filename().string());
    std::sort(files.begin(), files.end());
    if (files.empty()) fail(ErrorKind::NotFound, "no *.safetensors files in ", dir);
  }
  for (const auto& fname : files) {
    const std::string p = path_join(dir, fname);
    if (!file_exists(p)) fail(ErrorKind::NotFound, "shard ", p, " named by the index is missing");
    s.files_.push_back(std::make_unique<SafetensorsFile>(SafetensorsFile::open(p)));
    for (const auto& [name, t] : s.files_.back()->tensors()) {
      if (s.index_.count(name))
        fail(ErrorKind::Format, "tensor '", name, "' appears in both ", s.file_of_[name], " and ", p);
      s.index_[name] = &t;
      s.file_of_[name] = p;
    }
  }
  for (const auto& [name, fname] : weight_map) {
    auto it = s.file_of_.find(name);
    if (it == s.file_of_.end())
      fail(ErrorKind::Format, index_path, " maps tensor '", name, "' to ", fname, " but that file does not contain it");
    if (std::filesystem::path(it->second).filename() != fname)
      fail(ErrorKind::Format, index_path, " maps tensor '", name, "' to ", fname, " but it is in ", it->second);
  }
  return s;
}

void SafetensorsFile::release_pages(const TensorView& t) const {
  if (!copy_) drop_resident_pages(t.data, t.nbytes);
}

void TensorStore::release_pages(const std::string& name) const {
  const auto it = index_.find(name);
  if (it == index_.end()) return;
  for (const auto& f : files_)
    if (const TensorView* t = f->find(name); t == it->second) {
      f->release_pages(*t);
      return;
    }
}

const TensorView* TensorStore::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : it->second;
}

const TensorView& TensorStore::get(const std::string& name) const {
  const TensorView* t = find(name);
  if (!t) fail(ErrorKind::NotFound, "checkpoint ", dir_, " is missing tensor '", name, "'");
  return *t;
}

const TensorView& TensorStore::require(const std::string& name, const Shape& shape,
                                       std::initializer_list<DType> dtypes) const {
  const TensorView& t = get(name);
  if (t.shape != shape)
    fail(ErrorKind::Format, "tensor '", name, "' has shape ", shape_str(t.shape), " but the config implies ",
         shape_str(shape), " (", file_of_.at(name), ")");
  bool ok = dtypes.size() == 0
                ? (t.dtype == DType::F32 || t.dtype == DType::BF16 || t.dtype == DType::F16)
                : std::find(dtypes.begin(), dtypes.end(), t.dtype) != dtypes.end();
  if (!ok) {
    std::string allowed;
    if (dtypes.size() == 0) allowed = "F32, BF16 or F16";
    for (DType d : dtypes) allowed += (allowed.empty() ? "" : ", ") + std::string(dtype_name(d));
    fail(ErrorKind::Format, "tensor '", name, "' has dtype ", dtype_name(t.dtype), "; expected ", allowed);
  }
  return t;
}

std::vector<std::string> TensorStore::names() const {
  std::vector<std::string> out;
  for (const auto& [k, v] : index_) out.push_back(k);
  return out;
}

size_t TensorStore::total_bytes() const {
  size_t n = 0;
  for (const auto& [k, v] : index_) n += v->nbytes;
  return n;
}

void SafetensorsWriter::add(const std::string& name, DType dtype, const Shape& shape, const void* data) {
  for (const auto& e : entries_)
    QS_CHECK(e.name != name, "duplicate tensor name '", name, "' in safetensors writer");
  const size_t bytes = size_t(shape_numel(shape)) * dtype_size(dtype);
  entries_.push_back({name, dtype, shape, data, offset_, offset_ + bytes});
  offset_ += bytes;
}

void SafetensorsWriter::write(const std::string& path) const {
  write(path, [&](size_t i) { return entries_[i].data; });
}

void SafetensorsWriter::write(const std::string& path, const std::function<const void*(size_t)>& data_of) const {
  nlohmann::json h = nlohmann::json::object();
  if (!metadata_.empty()) h["__metadata__"] = metadata_;
  for (const auto& e : entries_)
    h[e.name] = {{"dtype", std::string(dtype_name(e.dtype))}, {"shape", e.shape},
                 {"data_offsets", {e.begin, e.end}}};
  std::string js = h.dump();
  while ((js.size() + 8) % 8) js.push_back(' ');  // data section starts 8-aligned
  const uint64_t n = js.size();
  write_file_atomic(path, [&](int fd) {
    write_all(fd, &n, 8, path);
    write_all(fd, js.data(), js.size(), path);
    for (size_t i = 0; i < entries_.size(); ++i) write_all(fd, data_of(i), entries_[i].end - entries_[i].begin, path);
  });
}

void write_checkpoint_tensors(const std::string& dir, const std::vector<TensorToWrite>& tensors,
                              size_t shard_bytes) {
  make_dirs(dir);
  std::vector<std::vector<const TensorToWrite*>> shards(1);
  size_t cur = 0;
  for (const auto& t : tensors) {
    const size_t b = size_t(shape_numel(t.shape)) * dtype_size(t.dtype);
    if (cur > 0 && cur + b > shard_bytes) {
      shards.emplace_back();
      cur = 0;
    }
    shards.back().push_back(&t);
    cur += b;
  }
  // Remove stale files of another layout so the directory is unambiguous.
  std::error_code ec;
  if (shards.size() == 1) {
    SafetensorsWriter w;
    w.set_metadata("format", "pt");
    for (const auto* t : shards[0]) w.add(t->name, t->dtype, t->shape, t->data);
    w.write(path_join(dir, "model.safetensors"));
    std::filesystem::remove(path_join(dir, "model.safetensors.index.json"), ec);
    return;
  }
  nlohmann::json weight_map = nlohmann::json::object();
  size_t total = 0;
  char name[64];
  for (size_t i = 0; i < shards.size(); ++i) {
    std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", i + 1, shards.size());
    SafetensorsWriter w;
    w.set_metadata("format", "pt");
    for (const auto* t : shards[i]) {
      w.add(t->name, t->dtype, t->shape, t->data);
      weight_map[t->name] = name;
    }
    total += w.data_bytes();
    w.write(path_join(dir, name));
  }
  nlohmann::json idx = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
  write_text_file_atomic(path_join(dir, "model.safetensors.index.json"), idx.dump(2) + "\n");
  std::filesystem::remove(path_join(dir, "model.safetensors"), ec);
}

}  // namespace qs
