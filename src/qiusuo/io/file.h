// Files: read-only memory maps and atomic writes (temp file + fsync + rename + fsync of the
// directory: after a crash at any point either the old or the new file is there, whole).
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

namespace qs {

// Memory the kernel could give this process now without swapping (MemAvailable of /proc/meminfo:
// free memory plus reclaimable page cache), in bytes; 0 when unknown.
size_t available_memory_bytes();

class MappedFile {
 public:
  static MappedFile open(const std::string& path);  // throws qs::Error (NotFound / Io)
  MappedFile() = default;
  MappedFile(MappedFile&& o) noexcept;
  MappedFile& operator=(MappedFile&& o) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string path_;
};

std::string read_text_file(const std::string& path);  // whole file; qs::Error if missing
bool file_exists(const std::string& path);
bool is_directory(const std::string& path);
void make_dirs(const std::string& path);
std::string path_join(const std::string& a, const std::string& b);

// Calls write(fd) on "<path>.tmp.<pid>", fsyncs, renames over `path`, fsyncs the directory.
// On any failure the temp file is removed and `path` is untouched.
void write_file_atomic(const std::string& path, const std::function<void(int fd)>& write);
void write_text_file_atomic(const std::string& path, const std::string& text);
void write_all(int fd, const void* data, size_t n, const std::string& what);  // loops over write(2)
void sync_file(const std::string& path);  // fsync of an existing file (errors ignored)
// Drops the whole pages inside [p, p + n) of a memory mapping from this process's resident set
// (madvise MADV_DONTNEED): a read-only file mapping reads them again from the file if touched;
// anonymous memory would read back zeros, so use it only on file mappings or on data read once.
void drop_resident_pages(const void* p, size_t n);
// Maps the pages of [p, p + n) (a file mapping about to be read whole) in one call
// (MADV_POPULATE_READ) instead of a page fault per 16 pages as they are touched: the copies and
// GPTQ repacks at load read their tensors ~10% faster on this project's test machine. A hint:
// without kernel support nothing happens.
void populate_pages(const void* p, size_t n);

}  // namespace qs
