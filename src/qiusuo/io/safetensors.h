// safetensors: an 8-byte little-endian header length N, N bytes of JSON
// {"name": {"dtype": "BF16", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}},
// then the data buffer (offsets are relative to its start). Reading memory-maps the file and
// validates everything before any tensor is used: a truncated or corrupt file (header length,
// dtype, shape and its size in bytes, data_offsets out of range or overlapping) is a clear error.
//
// TensorStore opens a Hugging Face checkpoint directory: model.safetensors, or the shards named
// by model.safetensors.index.json ("weight_map": name -> file), or else every *.safetensors.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <new>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "qiusuo/core/tensor.h"
#include "qiusuo/io/file.h"

namespace qs {

// The format's own limit on the JSON header (as the reference implementation enforces it), and
// a bound on tensor rank far above any checkpoint's (DeepSeek's are at most 2).
inline constexpr uint64_t kMaxSafetensorsHeaderBytes = 100'000'000;
inline constexpr size_t kMaxTensorRank = 16;

class SafetensorsFile {
 public:
  static SafetensorsFile open(const std::string& path);

  const std::map<std::string, TensorView>& tensors() const { return tensors_; }
  const nlohmann::json& metadata() const { return metadata_; }
  const std::string& path() const { return file_.path(); }
  const TensorView* find(const std::string& name) const;
  // Drops the pages of tensor `t` (one of this file's) from the process's resident set when the
  // data is memory-mapped from the file (they are read again from it if touched later); a no-op
  // for a file read into an aligned copy, whose pages hold the only copy.
  void release_pages(const TensorView& t) const;

 private:
  struct AlignedFree {
    void operator()(uint8_t* p) const { ::operator delete[](p, std::align_val_t(64)); }
  };
  MappedFile file_;
  std::unique_ptr<uint8_t[], AlignedFree> copy_;  // aligned copy of a misaligned data section
  std::map<std::string, TensorView> tensors_;
  nlohmann::json metadata_;
};

class TensorStore {
 public:
  static TensorStore open_dir(const std::string& dir);
  static TensorStore open_file(const std::string& path);

  const TensorView* find(const std::string& name) const;
  // The tensor or a NotFound error naming it and the checkpoint.
  const TensorView& get(const std::string& name) const;
  // Checks presence, dtype (one of `dtypes`; empty = any float) and shape; the error names
  // the tensor and both shapes.
  const TensorView& require(const std::string& name, const Shape& shape,
                            std::initializer_list<DType> dtypes = {}) const;
  std::vector<std::string> names() const;
  const std::string& dir() const { return dir_; }
  // SafetensorsFile::release_pages for tensor `name` (if present): for data read once, e.g. by
  // quantize or when GPTQ weights are repacked at load.
  void release_pages(const std::string& name) const;
  size_t total_bytes() const;

 private:
  std::string dir_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const TensorView*> index_;
  std::map<std::string, std::string> file_of_;  // tensor -> file path (for messages)
};

// Writing. Tensors are added as (name, dtype, shape, bytes); write() lays them out in the
// order given, aligned to 8 bytes, and writes the file atomically.
class SafetensorsWriter {
 public:
  void add(const std::string& name, DType dtype, const Shape& shape, const void* data);
  void set_metadata(const std::string& key, const std::string& value) { metadata_[key] = value; }
  size_t data_bytes() const { return offset_; }
  void write(const std::string& path) const;
  // The same, each entry's bytes asked for as it is written: data_of(i) returns entry i's data
  // (valid until the next call), so a producer needs memory for one tensor at a time, not the
  // file's. The entries' `data` given to add() are not read (nullptr is fine).
  void write(const std::string& path, const std::function<const void*(size_t index)>& data_of) const;

 private:
  struct Entry { std::string name; DType dtype; Shape shape; const void* data; size_t begin, end; };
  std::vector<Entry> entries_;
  std::map<std::string, std::string> metadata_;
  size_t offset_ = 0;
};

// Writes tensors as one model.safetensors, or as model-0000i-of-0000n.safetensors shards plus
// model.safetensors.index.json when the total exceeds `shard_bytes` (Hugging Face layout).
struct TensorToWrite { std::string name; DType dtype; Shape shape; const void* data; };
void write_checkpoint_tensors(const std::string& dir, const std::vector<TensorToWrite>& tensors,
                              size_t shard_bytes = size_t(4) << 30);

}  // namespace qs
