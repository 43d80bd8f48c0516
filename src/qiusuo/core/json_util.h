// JSON read from files: parsing with a bound on nesting depth, and short excerpts of values for
// error messages. nlohmann's json copies, compares and dumps recursively, so a value nested
// 100000 deep in a corrupt file would overflow the stack long after parsing; such files are
// rejected while parsing instead. Templates over the JSON type, so core needs no JSON library.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "qiusuo/core/error.h"

namespace qs {

// Far deeper than any file qiusuo reads (config.json and tokenizer.json nest at most ~6 levels).
inline constexpr int kMaxJsonDepth = 200;

namespace detail {
// A SAX handler building the DOM as Json::parse does (a repeated key keeps its last value), that
// fails as soon as a key or value sits inside more than kMaxJsonDepth containers. Json::parse's
// own depth hook (a parser callback) made each object's end scan its parent's members for
// discarded values: quadratic in a parent's size (a 4 GB shard's header of 8414 tensors, each an
// object: 0.43 s, now 0.018).
template <class Json>
class DepthLimitedDom {
 public:
  DepthLimitedDom(Json& root, const std::string& source) : root_(root), source_(source) {}
  bool null() { return put(Json(nullptr)); }
  bool boolean(bool v) { return put(Json(v)); }
  bool number_integer(typename Json::number_integer_t v) { return put(Json(v)); }
  bool number_unsigned(typename Json::number_unsigned_t v) { return put(Json(v)); }
  bool number_float(typename Json::number_float_t v, const typename Json::string_t&) { return put(Json(v)); }
  bool string(typename Json::string_t& v) { return put(Json(std::move(v))); }
  bool binary(typename Json::binary_t& v) { return put(Json::binary(std::move(v))); }
  bool start_object(std::size_t) { return open(Json::object()); }
  bool key(typename Json::string_t& k) {
    check();
    key_ = std::move(k);
    return true;
  }
  bool end_object() { return close(); }
  bool start_array(std::size_t) { return open(Json::array()); }
  bool end_array() { return close(); }
  template <class Exception>
  bool parse_error(std::size_t, const std::string&, const Exception& e) {
    throw e;
  }

 private:
  void check() const {
    if (stack_.size() > size_t(kMaxJsonDepth))
      fail(ErrorKind::Format, source_, ": JSON nested deeper than ", kMaxJsonDepth, " levels");
  }
  // v where the next value goes: the root, the end of the open array, or the open object's key.
  Json* place(Json&& v) {
    check();
    if (stack_.empty()) {
      root_ = std::move(v);
      return &root_;
    }
    Json& top = *stack_.back();
    if (top.is_array()) {
      top.push_back(std::move(v));
      return &top.back();
    }
    Json& slot = top[key_];
    slot = std::move(v);
    return &slot;
  }
  bool put(Json&& v) {
    place(std::move(v));
    return true;
  }
  bool open(Json&& v) {
    stack_.push_back(place(std::move(v)));
    return true;
  }
  bool close() {
    stack_.pop_back();
    return true;
  }
  Json& root_;
  const std::string& source_;
  std::vector<Json*> stack_;  // the open containers (an element's address is stable while it is open)
  typename Json::string_t key_;
};
}  // namespace detail

// Parses `text`; qs::Error(Format) naming `source` for invalid JSON or a key or value inside more
// than kMaxJsonDepth containers.
template <class Json>
Json parse_json_file_text(std::string_view text, const std::string& source) {
  Json root;
  detail::DepthLimitedDom<Json> dom(root, source);
  try {
    Json::sax_parse(text.begin(), text.end(), &dom);
  } catch (const typename Json::exception& e) {
    fail(ErrorKind::Format, source, ": invalid JSON (", e.what(), ")");
  }
  return root;
}

// True when `v` nests containers deeper than max_depth (a scalar has depth 0, [] depth 1). For
// values built in memory (requests, messages) before anything copies or converts them
// recursively. Iterative; stops at the first path that is too deep.
template <class Json>
bool json_deeper_than(const Json& v, int max_depth) {
  std::vector<std::pair<const Json*, int>> stack{{&v, 0}};
  while (!stack.empty()) {
    const auto [j, d] = stack.back();
    stack.pop_back();
    if (!j->is_structured()) continue;
    if (d + 1 > max_depth) return true;
    for (auto it = j->cbegin(); it != j->cend(); ++it) stack.push_back({&*it, d + 1});
  }
  return false;
}

// A short excerpt of a JSON value: compact JSON text cut at about `max_chars` (then "…"). Unlike
// dump() it never recurses, stops as soon as the excerpt is long enough, and replaces invalid
// UTF-8 instead of throwing.
template <class Json>
std::string json_excerpt(const Json& root, size_t max_chars = 120) {
  struct Frame {
    const Json* v;
    typename Json::const_iterator it, end;
    bool first;
  };
  std::string out;
  std::vector<Frame> stack;
  auto scalar = [&](const Json& v) { out += v.dump(-1, ' ', false, Json::error_handler_t::replace); };
  auto open = [&](const Json& v) {
    if (v.is_object() || v.is_array()) {
      out += v.is_object() ? '{' : '[';
      stack.push_back({&v, v.cbegin(), v.cend(), true});
    } else {
      scalar(v);
    }
  };
  open(root);
  while (!stack.empty() && out.size() <= max_chars) {
    Frame& f = stack.back();
    if (f.it == f.end) {
      out += f.v->is_object() ? '}' : ']';
      stack.pop_back();
      continue;
    }
    if (!f.first) out += ", ";
    f.first = false;
    if (f.v->is_object()) {
      scalar(Json(f.it.key()));
      out += ": ";
    }
    const Json& child = *f.it;
    ++f.it;  // before open(), which may grow the stack and move f
    open(child);
  }
  if (out.size() > max_chars) {
    size_t cut = max_chars;
    while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xC0) == 0x80) --cut;  // not inside a UTF-8 sequence
    out.resize(cut);
    out += "\u2026";
  }
  return out;
}

}  // namespace qs
