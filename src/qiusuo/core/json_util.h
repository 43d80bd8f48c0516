// JSON read from files: parsing with a bound on nesting depth, and short excerpts of values for
// error messages. nlohmann's json copies, compares and dumps recursively, so a value nested
// 100000 deep in a corrupt file would overflow the stack long after parsing; such files are
// rejected while parsing instead. Templates over the JSON type, so core needs no JSON library.
#pragma once
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "qiusuo/core/error.h"

namespace qs {

// Far deeper than any file qiusuo reads (config.json and tokenizer.json nest at most ~6 levels).
inline constexpr int kMaxJsonDepth = 200;

// Parses `text`; qs::Error(Format) naming `source` for invalid JSON or nesting deeper than
// kMaxJsonDepth.
template <class Json>
Json parse_json_file_text(std::string_view text, const std::string& source) {
  try {
    return Json::parse(text.begin(), text.end(), [&](int depth, typename Json::parse_event_t, Json&) {
      if (depth > kMaxJsonDepth) fail(ErrorKind::Format, source, ": JSON nested deeper than ", kMaxJsonDepth, " levels");
      return true;
    });
  } catch (const typename Json::exception& e) {
    fail(ErrorKind::Format, source, ": invalid JSON (", e.what(), ")");
  }
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
