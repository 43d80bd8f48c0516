// One error type for the whole library: a message the user can read, with context
// (file, tensor, field, line) folded into the text. The CLI prints it and exits non-zero;
// the server maps it to an HTTP status.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace qs {

enum class ErrorKind { Invalid, NotFound, Io, Format, Unsupported, Internal };

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& msg) : std::runtime_error(msg), kind_(kind) {}
  ErrorKind kind() const { return kind_; }

 private:
  ErrorKind kind_;
};

// str(a, b, c): concatenates anything that has operator<<.
template <typename... Args>
std::string str(Args&&... args) {
  std::ostringstream os;
  (os << ... << std::forward<Args>(args));
  return os.str();
}

template <typename... Args>
[[noreturn]] void fail(ErrorKind kind, Args&&... args) {
  throw Error(kind, str(std::forward<Args>(args)...));
}
template <typename... Args>
[[noreturn]] void fail(Args&&... args) {
  throw Error(ErrorKind::Invalid, str(std::forward<Args>(args)...));
}

}  // namespace qs

// QS_CHECK(cond, parts...): throws qs::Error(Invalid) with the parts when cond is false.
#define QS_CHECK(cond, ...)                       \
  do {                                            \
    if (!(cond)) ::qs::fail(__VA_ARGS__);         \
  } while (0)
// QS_ASSERT: internal invariant; a failure is a bug in qiusuo, not bad input.
#define QS_ASSERT(cond)                                                                   \
  do {                                                                                    \
    if (!(cond))                                                                          \
      ::qs::fail(::qs::ErrorKind::Internal, "internal error: ", #cond, " at ", __FILE__, \
                 ":", __LINE__);                                                          \
  } while (0)
