// A Jinja2 subset interpreter, faithful to Python Jinja2 3.1 as Hugging Face uses it for chat
// templates: ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
// extensions=[loopcontrols]), default Undefined, autoescape off, plus transformers' globals
// (raise_exception, strftime_now) and its `tojson` filter (json.dumps, ensure_ascii=False).
//
// Pipeline: source -> lexer (tags, whitespace control, trim/lstrip rules) -> parser (AST) ->
// tree-walking evaluator over a Python-like value model (none vs undefined, int vs float, str
// indexed by code points, immutable lists/dicts, mutable namespace()).
//
// Supported: if/elif/else, for (loop.*, for-else, `for x in y if c`, unpacking), set (incl.
// `set ns.attr`, block set), macro (varargs/kwargs/caller), call blocks, filter blocks, with,
// print, break/continue, raw, comments, and transformers' `generation` block; the full
// expression grammar (literals, attribute/subscript/slices, arithmetic, `~`, chained
// comparisons, in/not in, and/or/not, conditional expressions, filters, tests, calls); all
// builtin tests, the builtin filters except those listed below, str/dict/list methods, and the
// globals range, dict, namespace, joiner, raise_exception, strftime_now.
// Not supported (a qs::Error(Unsupported) "unsupported Jinja construct '...' at line L col C"):
// template inheritance and loading (extends/block/include/import/from), recursive loops,
// `*args`/`**kwargs` in calls, i18n, the `do` extension, cycler/lipsum, and the filters
// groupby, filesizeformat, pprint, random, striptags, urlencode, urlize, wordwrap, xmlattr.
// Mutating list/dict methods (append, update, pop, ...) fail as the immutable sandbox does.
// Known differences: integers are 64-bit (overflow is an error); the repr of generators,
// methods and range() objects differs from CPython's (addresses); generators are materialised,
// so iterating the same one twice yields its items twice; `|safe` gives a plain string.
//
// Errors: every failure throws qs::Error with the line and column in the template; the
// `raise_exception(msg)` global throws qs::Error whose message is exactly msg.
#pragma once

#include <nlohmann/json.hpp>

#include <memory>
#include <string>
#include <string_view>

namespace qs::jinja {

// Environment options. The defaults are the Hugging Face chat-template environment.
struct Options {
  bool trim_blocks = true;             // drop the first newline after a block/comment tag
  bool lstrip_blocks = true;           // strip spaces/tabs before a block/comment tag at line start
  bool keep_trailing_newline = false;  // Jinja drops a single trailing newline of the source
};

namespace detail {
struct Program;
}

// A parsed template: immutable, cheap to copy, safe to render from several threads at once.
class Template {
 public:
  Template();  // renders ""
  // Parses `source`; throws qs::Error on a syntax error or an unsupported construct.
  static Template parse(std::string_view source, const Options& options = {});

  // Renders with the variables of `context` (a JSON object, or null for none). JSON null is
  // Python None; a key that is absent is Undefined. nlohmann::json sorts object keys, so dicts
  // iterate and print in key order; render_ordered() keeps the given (insertion) order, as
  // Python dicts do, for `tojson`, `items()`, iteration and printing.
  std::string render(const nlohmann::json& context) const;
  std::string render_ordered(const nlohmann::ordered_json& context) const;

 private:
  explicit Template(std::shared_ptr<const detail::Program> program);
  std::shared_ptr<const detail::Program> program_;
};

// Convenience: parse and render once.
std::string render(std::string_view source, const nlohmann::json& context,
                   const Options& options = {});

}  // namespace qs::jinja
