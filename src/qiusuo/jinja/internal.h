// Internals of the Jinja2 subset interpreter (see jinja.h): the Python-like value model, the
// tokens and AST, and the helpers shared by lexer.cpp, parser.cpp, eval.cpp, ops.cpp, value.cpp,
// builtins.cpp and methods.cpp. Not part of the public API.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "qiusuo/core/error.h"
#include "qiusuo/jinja/jinja.h"

namespace qs::jinja::detail {

// ---- locations and errors -------------------------------------------------------------------

struct Loc {
  int line = 0;  // 1-based line in the template (after newline normalisation)
  int col = 0;   // 1-based column, counted in code points
};

// Thrown by value operations that do not know where they are in the template (a Python
// TypeError, ValueError, UndefinedError, ...). The evaluator catches it at the innermost node
// and rethrows it as qs::Error with the node's line and column.
struct EvalError {
  std::string msg;
  bool unsupported = false;  // report as "unsupported Jinja construct '<msg>'"
};
[[noreturn]] void throw_eval(std::string msg);
[[noreturn]] void throw_unsupported(std::string what);

// qs::Error "jinja: <msg> at line L col C".
[[noreturn]] void fail_at(Loc loc, const std::string& msg);
// qs::Error(Unsupported) "unsupported Jinja construct '<what>' at line L col C".
[[noreturn]] void fail_unsupported(Loc loc, const std::string& what);

// ---- values ---------------------------------------------------------------------------------

struct Value;
struct DictData;
struct Callable;
struct CallArgs;
class Interp;
using ValueList = std::vector<Value>;

enum class VT : uint8_t {
  Undefined,  // jinja2.Undefined: falsy, prints "", most operations raise
  None,
  Bool,
  Int,
  Float,
  Str,
  List,       // list, tuple or one-shot iterator (see ListKind)
  Dict,       // dict (contents never change once built)
  Namespace,  // jinja2 namespace(): the one mutable object
  Object,     // attribute-only object (loop context, joiner state): attrs in `d`
  Func,       // macro, global function, bound method
};

enum class ListKind : uint8_t {
  List,
  Tuple,
  Iterator,  // generator / iterator (select, map, reverse, ...): always truthy, no len or index
  View,      // dict.keys()/values()/items(): has len, no index; `s` names it ("dict_items")
};

struct Value {
  VT t = VT::Undefined;
  ListKind lk = ListKind::List;
  bool b = false;
  int64_t i = 0;
  double f = 0;
  std::string s;                       // Str: UTF-8 text; Undefined: message when it is used
  std::shared_ptr<const ValueList> l;  // List
  std::shared_ptr<DictData> d;         // Dict / Namespace / Object
  std::shared_ptr<const Callable> fn;  // Func

  static Value undefined(std::string msg = {});
  static Value none();
  static Value boolean(bool v);
  static Value integer(int64_t v);
  static Value real(double v);
  static Value str(std::string v);
  static Value list(ValueList v, ListKind kind = ListKind::List);
  static Value tuple(ValueList v) { return list(std::move(v), ListKind::Tuple); }
  static Value dict(std::shared_ptr<DictData> d);
  static Value func(std::string name, std::function<Value(Interp&, CallArgs&)> fn);

  bool is_undefined() const { return t == VT::Undefined; }
  bool is_none() const { return t == VT::None; }
  bool is_str() const { return t == VT::Str; }
  bool is_number() const { return t == VT::Int || t == VT::Float || t == VT::Bool; }
  bool is_int_like() const { return t == VT::Int || t == VT::Bool; }  // Python int incl. bool
  // list or tuple (indexable, sliceable, concatenable)
  bool is_seq_list() const {
    return t == VT::List && (lk == ListKind::List || lk == ListKind::Tuple);
  }
  const ValueList& items() const { return *l; }
};

// An insertion-ordered dict. String keys are indexed; other keys are found by equality.
struct DictData {
  std::vector<std::pair<Value, Value>> entries;
  std::unordered_map<std::string, size_t> str_index;
  std::string repr;  // Object: what str()/repr() print

  const Value* find(const Value& key) const;
  const Value* find_str(std::string_view key) const;
  void set(Value key, Value value);
  void set_str(const std::string& key, Value value);
};

struct CallArgs {
  ValueList pos;
  std::vector<std::pair<std::string, Value>> kw;
};

struct Callable {
  std::string name;
  std::function<Value(Interp&, CallArgs&)> fn;
};

// Binds CallArgs to a Python-style parameter list; throws EvalError like Python does for
// unexpected, duplicated or too many arguments.
class Binder {
 public:
  Binder(std::string_view fname, const CallArgs& args, std::initializer_list<const char*> params);
  bool has(size_t i) const { return vals_[i] != nullptr; }
  const Value& get(size_t i) const { return *vals_[i]; }
  Value get_or(size_t i, Value dflt) const { return has(i) ? *vals_[i] : std::move(dflt); }

 private:
  std::vector<const Value*> vals_;
};

// ---- unicode and Python string helpers (value.cpp) ------------------------------------

bool py_isspace(uint32_t cp);  // str.isspace() / the regex \s
std::vector<uint32_t> to_cps(std::string_view s);
std::string from_cps(const uint32_t* p, size_t n);
inline std::string from_cps(const std::vector<uint32_t>& v) { return from_cps(v.data(), v.size()); }
size_t cp_count(std::string_view s);
uint32_t cp_upper(uint32_t c);
uint32_t cp_lower(uint32_t c);
bool cp_isalpha(uint32_t c);
bool cp_isdigit(uint32_t c);
bool cp_isalnum(uint32_t c);
bool cp_isupper(uint32_t c);
bool cp_islower(uint32_t c);
std::string str_upper(std::string_view s);
std::string str_lower(std::string_view s);
std::string str_strip(std::string_view s, const Value* chars, bool left, bool right);
std::vector<std::string> str_splitlines(std::string_view s, bool keepends = false);
std::string str_replace(std::string_view s, std::string_view old, std::string_view neu,
                        int64_t count);
std::string str_capitalize(std::string_view s);
std::string str_title(std::string_view s);  // Python str.title()
std::string html_escape(std::string_view s);
std::string py_str_repr(std::string_view s);

// ---- Python semantics of values (value.cpp) -------------------------------------------

const char* type_name(const Value& v);         // Python type name: 'int', 'str', 'NoneType', ...
std::string object_type_repr(const Value& v);  // "'dict object'" style used in Jinja messages
[[noreturn]] void fail_undefined(const Value& v);  // raises the UndefinedError of v
bool truthy(const Value& v);
std::string to_str(const Value& v);   // str(v)
std::string to_repr(const Value& v);  // repr(v)
std::string float_repr(double x);     // repr(float)
bool py_eq(const Value& a, const Value& b);
int py_cmp(const Value& a, const Value& b, const char* op);  // <0, 0, >0; TypeError if unordered
bool py_contains(const Value& container, const Value& item);
int64_t py_len(const Value& v);
ValueList py_iter(const Value& v);  // list(v)
double to_double(const Value& v);   // numeric value (Bool/Int/Float)

Value py_add(const Value& a, const Value& b);
Value py_sub(const Value& a, const Value& b);
Value py_mul(const Value& a, const Value& b);
Value py_truediv(const Value& a, const Value& b);
Value py_floordiv(const Value& a, const Value& b);
Value py_mod(const Value& a, const Value& b);
Value py_pow(const Value& a, const Value& b);
Value py_neg(const Value& a);
Value py_pos(const Value& a);
std::string py_percent_format(const std::string& fmt, const Value& args);  // str % args

Value py_slice(const Value& v, const Value& start, const Value& stop, const Value& step);
Value get_item(const Value& obj, const Value& key);         // environment.getitem
Value get_attr(const Value& obj, const std::string& name);  // environment.getattr

Value from_json(const nlohmann::json& j);
Value from_json(const nlohmann::ordered_json& j);
// json.dumps(v, ensure_ascii=False, indent=indent, separators=..., sort_keys=sort_keys).
// indent: None, int or str.
std::string py_json_dumps(const Value& v, const Value& indent, const Value& separators,
                          bool sort_keys);

// ---- builtins (builtins.cpp, methods.cpp) ---------------------------------------

using FilterFn = Value (*)(Interp&, const Value&, CallArgs&);
using TestFn = bool (*)(Interp&, const Value&, CallArgs&);
FilterFn find_filter(std::string_view name);
TestFn find_test(std::string_view name);
bool is_unsupported_filter(std::string_view name);  // a real Jinja filter we do not implement
Value apply_filter(Interp& in, std::string_view name, const Value& v, CallArgs& args);
bool apply_test(Interp& in, std::string_view name, const Value& v, CallArgs& args);

// Method `name` of a str/dict/list value (bound), or nullopt when there is none.
std::optional<Value> find_method(const Value& obj, const std::string& name);
// The global functions: range, dict, namespace, joiner, cycler, lipsum (unsupported),
// raise_exception, strftime_now.
const Value* find_global(std::string_view name);

// ---- tokens ---------------------------------------------------------------------------------

enum class TK : uint8_t {
  Data,        // template text
  VarBegin,    // {{
  VarEnd,      // }}
  BlockBegin,  // {%
  BlockEnd,    // %}
  Name,
  String,
  Int,
  Float,
  Op,  // operator; text holds its spelling
  Eof,
};

struct Token {
  TK k = TK::Eof;
  Loc loc;
  std::string text;  // Data text, Name, unescaped String value, Op spelling
  int64_t ival = 0;
  double fval = 0;
};

std::vector<Token> lex(std::string_view source, const Options& options);

// ---- AST ------------------------------------------------------------------------------------

struct Expr;
struct Stmt;
using ExprP = std::unique_ptr<Expr>;
using StmtP = std::unique_ptr<Stmt>;
using StmtList = std::vector<StmtP>;

enum class EK : uint8_t {
  Const,    // value
  Name,     // name
  List,     // items
  Tuple,    // items
  Dict,     // items = k0, v0, k1, v1, ...
  Getattr,  // a.name
  Getitem,  // a[b]
  Slice,    // items[0..2] = start, stop, step (each may be null); only as Getitem's b
  Call,     // a(items..., kwargs...)
  Filter,   // a|name(items..., kwargs...); a is null in filter blocks / block set
  Test,     // a is name(items..., kwargs...)
  Neg,      // -a
  Pos,      // +a
  Not,      // not a
  Bin,      // a op b
  Concat,   // items joined with ~
  Compare,  // a (cmp_ops[i] items[i])...
  And,      // a and b
  Or,       // a or b
  Cond,     // a if b else c (c may be null)
  NSRef,    // name.attr (assignment target only)
};

enum class BinOp : uint8_t { Add, Sub, Mul, Div, FloorDiv, Mod, Pow };
enum class CmpOp : uint8_t { Eq, Ne, Lt, Le, Gt, Ge, In, NotIn };

struct Expr {
  EK k;
  Loc loc;
  Value value;
  std::string name;
  std::string attr;
  std::vector<ExprP> items;
  std::vector<std::pair<std::string, ExprP>> kwargs;
  std::vector<CmpOp> cmp_ops;
  BinOp op = BinOp::Add;
  ExprP a, b, c;
  FilterFn filter_fn = nullptr;  // resolved at parse time
  TestFn test_fn = nullptr;
};

enum class SK : uint8_t {
  Data,         // text
  Output,       // expr
  If,           // conds[i] -> bodies[i]; else_body
  For,          // target in expr [if cond] body [else else_body]
  Set,          // target = expr
  SetBlock,     // target [| filter] body
  Macro,        // name(params = defaults) body
  CallBlock,    // call(params) expr body
  FilterBlock,  // filter body
  With,         // targets = values body
  Scope,        // body (the `generation` block of transformers; renders its body)
  Break,
  Continue,
};

struct Stmt {
  SK k;
  Loc loc;
  std::string text;
  ExprP expr;
  ExprP target;
  ExprP cond;
  ExprP filter;
  std::vector<ExprP> conds;
  std::vector<StmtList> bodies;
  StmtList body;
  StmtList else_body;
  std::string name;
  std::vector<std::string> params;
  std::vector<ExprP> defaults;  // aligned to the last params
  std::vector<ExprP> targets;
  std::vector<ExprP> values;
  bool uses_caller = false;  // macro body refers to caller / varargs / kwargs
  bool uses_varargs = false;
  bool uses_kwargs = false;
};

struct Program {
  Options options;
  StmtList body;
};

std::shared_ptr<const Program> parse_program(std::string_view source, const Options& options);

// ---- evaluator ------------------------------------------------------------------------------

struct Scope {
  std::shared_ptr<Scope> parent;
  std::vector<std::pair<std::string, Value>> vars;

  const Value* find(std::string_view name) const;  // this scope or its parents
  void set(const std::string& name, Value v);      // this scope
};
using ScopeP = std::shared_ptr<Scope>;

enum class Flow : uint8_t { Normal, Break, Continue };

// One rendering. Macros keep their defining scope alive and namespaces can hold macros, so
// values can form reference cycles (scope -> macro -> scope); the destructor breaks them by
// clearing every scope captured by a macro and every namespace created during the render.
class Interp {
 public:
  explicit Interp(const Program& program) : program_(program) {}
  ~Interp();
  Interp(const Interp&) = delete;
  Interp& operator=(const Interp&) = delete;

  void track(const ScopeP& captured) { scopes_.push_back(captured); }
  void track(const std::shared_ptr<DictData>& ns) { namespaces_.push_back(ns); }

  std::string render(ScopeP root);
  Flow exec(const StmtList& body, const ScopeP& scope, std::string& out);
  Value eval(const Expr& e, const ScopeP& scope);
  Value call(const Value& fn, CallArgs& args);
  Value call_macro(const Stmt& macro, const ScopeP& closure, CallArgs& args, bool is_caller);

 private:
  Flow exec_stmt(const Stmt& s, const ScopeP& scope, std::string& out);
  Flow exec_for(const Stmt& s, const ScopeP& scope, std::string& out);
  Value eval_inner(const Expr& e, const ScopeP& scope);
  Value eval_filter(const Expr& e, const ScopeP& scope, const Value* input);
  void eval_args(const Expr& e, const ScopeP& scope, CallArgs& args);
  void assign(const Expr& target, const Value& v, const ScopeP& scope);
  Value lookup(const std::string& name, const ScopeP& scope);

  const Program& program_;
  int depth_ = 0;
  std::vector<std::weak_ptr<Scope>> scopes_;
  std::vector<std::weak_ptr<DictData>> namespaces_;
};

}  // namespace qs::jinja::detail
