// Tree-walking evaluator of the Jinja AST, and the public Template API.
//
// Scoping follows what Jinja's compiled code does: `for` iterations, macro calls, call blocks,
// `with` blocks and block `set` bodies get a fresh scope whose parent is the enclosing one;
// `if` does not. `set` writes to the innermost scope, so a variable set inside a loop body is
// gone at the next iteration and after the loop (use namespace() to carry state out). Lookups
// walk the scope chain, then the globals; a miss is Undefined.
#include "qiusuo/core/json_util.h"
#include "qiusuo/jinja/internal.h"

namespace qs::jinja::detail {

const Value* Scope::find(std::string_view name) const {
  for (const Scope* s = this; s; s = s->parent.get())
    for (const auto& [k, v] : s->vars)
      if (k == name) return &v;
  return nullptr;
}

void Scope::set(const std::string& name, Value v) {
  for (auto& [k, val] : vars)
    if (k == name) {
      val = std::move(v);
      return;
    }
  vars.emplace_back(name, std::move(v));
}

namespace {

ScopeP child_of(const ScopeP& parent) {
  auto s = std::make_shared<Scope>();
  s->parent = parent;
  return s;
}

[[noreturn]] void rethrow_at(Loc loc, const EvalError& e) {
  if (e.unsupported) fail_unsupported(loc, e.msg);
  fail_at(loc, e.msg);
}

struct DepthGuard {
  int& d;
  explicit DepthGuard(int& depth) : d(depth) {
    if (++d > 256) {
      --d;
      throw_eval("maximum recursion depth exceeded");
    }
  }
  ~DepthGuard() { --d; }
};

}  // namespace

Interp::~Interp() {
  // Move the contents out before destroying them: destroying a value may free other scopes.
  for (auto& w : scopes_)
    if (ScopeP s = w.lock()) {
      auto vars = std::move(s->vars);
      s->vars.clear();
    }
  for (auto& w : namespaces_)
    if (auto d = w.lock()) {
      auto entries = std::move(d->entries);
      d->entries.clear();
      d->str_index.clear();
    }
}

std::string Interp::render(ScopeP root) {
  std::string out;
  exec(program_.body, root, out);
  return out;
}

Flow Interp::exec(const StmtList& body, const ScopeP& scope, std::string& out) {
  for (const auto& s : body) {
    Flow f = exec_stmt(*s, scope, out);
    if (f != Flow::Normal) return f;
  }
  return Flow::Normal;
}

Value Interp::lookup(const std::string& name, const ScopeP& scope) {
  if (const Value* v = scope->find(name)) return *v;
  if (const Value* g = find_global(name)) return *g;
  return Value::undefined(str("'", name, "' is undefined"));
}

void Interp::assign(const Expr& target, const Value& v, const ScopeP& scope) {
  switch (target.k) {
    case EK::Name:
      scope->set(target.name, v);
      return;
    case EK::Tuple: {
      ValueList items;
      try {
        items = py_iter(v);
      } catch (const EvalError& e) {
        rethrow_at(target.loc,
                   EvalError{str("cannot unpack non-iterable ", type_name(v), " object"), false});
      }
      if (items.size() < target.items.size())
        fail_at(target.loc, str("not enough values to unpack (expected ", target.items.size(),
                                ", got ", items.size(), ")"));
      if (items.size() > target.items.size())
        fail_at(target.loc, str("too many values to unpack (expected ", target.items.size(), ")"));
      for (size_t i = 0; i < items.size(); ++i) assign(*target.items[i], items[i], scope);
      return;
    }
    case EK::NSRef: {
      Value ns = lookup(target.name, scope);
      if (ns.t != VT::Namespace)
        fail_at(target.loc, "cannot assign attribute on non-namespace object");
      ns.d->set_str(target.attr, v);
      return;
    }
    default:
      fail_at(target.loc, "invalid assignment target");
  }
}

Flow Interp::exec_stmt(const Stmt& s, const ScopeP& scope, std::string& out) {
  switch (s.k) {
    case SK::Data:
      out += s.text;
      return Flow::Normal;
    case SK::Output:
      out += to_str(eval(*s.expr, scope));
      return Flow::Normal;
    case SK::If:
      for (size_t i = 0; i < s.conds.size(); ++i)
        if (truthy(eval(*s.conds[i], scope))) return exec(s.bodies[i], scope, out);
      return exec(s.else_body, scope, out);
    case SK::For:
      return exec_for(s, scope, out);
    case SK::Set:
      assign(*s.target, eval(*s.expr, scope), scope);
      return Flow::Normal;
    case SK::SetBlock: {
      ScopeP inner = child_of(scope);
      std::string text;
      exec(s.body, inner, text);
      Value v = Value::str(std::move(text));
      if (s.filter) v = eval_filter(*s.filter, inner, &v);
      assign(*s.target, v, scope);
      return Flow::Normal;
    }
    case SK::Macro: {
      const Stmt* sp = &s;
      ScopeP closure = scope;
      track(scope);
      scope->set(s.name, Value::func(s.name, [sp, closure](Interp& in, CallArgs& args) {
                   return in.call_macro(*sp, closure, args, false);
                 }));
      return Flow::Normal;
    }
    case SK::CallBlock: {
      const Stmt* sp = &s;
      ScopeP closure = scope;
      track(scope);
      Value caller = Value::func("caller", [sp, closure](Interp& in, CallArgs& args) {
        return in.call_macro(*sp, closure, args, true);
      });
      const Expr& call = *s.expr;
      Value fn = eval(*call.a, scope);
      CallArgs args;
      eval_args(call, scope, args);
      args.kw.emplace_back("caller", std::move(caller));
      try {
        out += to_str(this->call(fn, args));
      } catch (const EvalError& e) {
        rethrow_at(call.loc, e);
      }
      return Flow::Normal;
    }
    case SK::FilterBlock: {
      std::string text;
      exec(s.body, scope, text);
      Value v = Value::str(std::move(text));
      out += to_str(eval_filter(*s.filter, scope, &v));
      return Flow::Normal;
    }
    case SK::With: {
      ScopeP inner = child_of(scope);
      for (size_t i = 0; i < s.targets.size(); ++i)
        assign(*s.targets[i], eval(*s.values[i], scope), inner);
      return exec(s.body, inner, out);
    }
    case SK::Scope:
      return exec(s.body, scope, out);
    case SK::Break:
      return Flow::Break;
    case SK::Continue:
      return Flow::Continue;
  }
  return Flow::Normal;
}

Flow Interp::exec_for(const Stmt& s, const ScopeP& scope, std::string& out) {
  Value seq = eval(*s.expr, scope);
  ValueList items;
  try {
    items = py_iter(seq);
  } catch (const EvalError& e) {
    rethrow_at(s.expr->loc, e);
  }
  if (s.cond) {
    ValueList kept;
    for (Value& item : items) {
      ScopeP probe = child_of(scope);
      assign(*s.target, item, probe);
      if (truthy(eval(*s.cond, probe))) kept.push_back(std::move(item));
    }
    items = std::move(kept);
  }
  const int64_t n = int64_t(items.size());
  auto changed_state = std::make_shared<std::optional<ValueList>>();
  for (int64_t idx = 0; idx < n; ++idx) {
    ScopeP inner = child_of(scope);
    assign(*s.target, items[size_t(idx)], inner);

    auto loop = std::make_shared<DictData>();
    loop->repr = str("<LoopContext ", idx + 1, "/", n, ">");
    loop->set_str("index", Value::integer(idx + 1));
    loop->set_str("index0", Value::integer(idx));
    loop->set_str("revindex", Value::integer(n - idx));
    loop->set_str("revindex0", Value::integer(n - idx - 1));
    loop->set_str("first", Value::boolean(idx == 0));
    loop->set_str("last", Value::boolean(idx == n - 1));
    loop->set_str("length", Value::integer(n));
    loop->set_str("depth", Value::integer(1));
    loop->set_str("depth0", Value::integer(0));
    loop->set_str("previtem",
                  idx > 0 ? items[size_t(idx - 1)] : Value::undefined("there is no previous item"));
    loop->set_str("nextitem",
                  idx + 1 < n ? items[size_t(idx + 1)] : Value::undefined("there is no next item"));
    loop->set_str("cycle", Value::func("cycle", [idx](Interp&, CallArgs& a) {
                    if (a.pos.empty()) throw_eval("no items for cycling given");
                    return a.pos[size_t(idx) % a.pos.size()];
                  }));
    loop->set_str("changed", Value::func("changed", [changed_state](Interp&, CallArgs& a) {
                    if (*changed_state) {
                      const ValueList& last = **changed_state;
                      bool same = last.size() == a.pos.size();
                      for (size_t i = 0; same && i < last.size(); ++i)
                        same = py_eq(last[i], a.pos[i]);
                      if (same) return Value::boolean(false);
                    }
                    *changed_state = a.pos;
                    return Value::boolean(true);
                  }));
    Value lv;
    lv.t = VT::Object;
    lv.d = std::move(loop);
    inner->set("loop", std::move(lv));

    if (exec(s.body, inner, out) == Flow::Break) break;
  }
  if (n == 0) exec(s.else_body, child_of(scope), out);
  return Flow::Normal;
}

void Interp::eval_args(const Expr& e, const ScopeP& scope, CallArgs& args) {
  args.pos.reserve(e.items.size());
  for (const auto& x : e.items) args.pos.push_back(eval(*x, scope));
  for (const auto& [k, x] : e.kwargs) args.kw.emplace_back(k, eval(*x, scope));
}

Value Interp::call(const Value& fn, CallArgs& args) {
  if (fn.t == VT::Func) return fn.fn->fn(*this, args);
  if (fn.is_undefined()) fail_undefined(fn);
  throw_eval(str("'", type_name(fn), "' object is not callable"));
}

Value Interp::call_macro(const Stmt& m, const ScopeP& closure, CallArgs& args, bool is_caller) {
  DepthGuard guard(depth_);
  const std::string name = is_caller ? "caller" : m.name;
  ScopeP sc = child_of(closure);
  const size_t np = m.params.size();
  const size_t first_default = np - m.defaults.size();
  std::vector<bool> bound(np, false);
  for (size_t i = 0; i < args.pos.size() && i < np; ++i) {
    sc->set(m.params[i], args.pos[i]);
    bound[i] = true;
  }
  ValueList extra_pos;
  for (size_t i = np; i < args.pos.size(); ++i) extra_pos.push_back(args.pos[i]);
  auto extra_kw = std::make_shared<DictData>();
  Value caller;
  bool has_caller = false;
  for (const auto& [k, v] : args.kw) {
    size_t idx = 0;
    while (idx < np && m.params[idx] != k) ++idx;
    if (idx < np) {
      if (bound[idx])
        throw_eval(str("macro '", name, "' got multiple values for argument '", k, "'"));
      sc->set(k, v);
      bound[idx] = true;
    } else if (k == "caller" && !is_caller) {
      caller = v;
      has_caller = true;
    } else {
      extra_kw->set_str(k, v);
    }
  }
  if (!extra_pos.empty() && !m.uses_varargs)
    throw_eval(str("macro '", name, "' takes not more than ", np, " argument(s)"));
  if (!extra_kw->entries.empty() && !m.uses_kwargs)
    throw_eval(
        str("macro '", name, "' takes no keyword argument '", extra_kw->entries[0].first.s, "'"));
  for (size_t i = 0; i < np; ++i) {
    if (bound[i]) continue;
    if (i >= first_default)
      sc->set(m.params[i], eval(*m.defaults[i - first_default], sc));
    else
      sc->set(m.params[i], Value::undefined(str("parameter '", m.params[i], "' was not provided")));
  }
  if (m.uses_varargs) sc->set("varargs", Value::tuple(std::move(extra_pos)));
  if (m.uses_kwargs) sc->set("kwargs", Value::dict(extra_kw));
  if (has_caller)
    sc->set("caller", std::move(caller));
  else if (m.uses_caller && !is_caller)
    sc->set("caller", Value::undefined("No caller defined"));
  std::string out;
  exec(m.body, sc, out);
  return Value::str(std::move(out));
}

Value Interp::eval(const Expr& e, const ScopeP& scope) {
  try {
    return eval_inner(e, scope);
  } catch (const EvalError& err) {
    rethrow_at(e.loc, err);
  }
}

Value Interp::eval_filter(const Expr& e, const ScopeP& scope, const Value* input) {
  Value v;
  if (!e.a)
    v = input ? *input : Value::undefined();
  else if (e.a->k == EK::Filter)
    v = eval_filter(*e.a, scope, input);
  else
    v = eval(*e.a, scope);
  CallArgs args;
  eval_args(e, scope, args);
  try {
    return e.filter_fn(*this, v, args);
  } catch (const EvalError& err) {
    rethrow_at(e.loc, err);
  }
}

Value Interp::eval_inner(const Expr& e, const ScopeP& scope) {
  switch (e.k) {
    case EK::Const:
      return e.value;
    case EK::Name:
      return lookup(e.name, scope);
    case EK::List:
    case EK::Tuple: {
      ValueList items;
      items.reserve(e.items.size());
      for (const auto& x : e.items) items.push_back(eval(*x, scope));
      return Value::list(std::move(items), e.k == EK::Tuple ? ListKind::Tuple : ListKind::List);
    }
    case EK::Dict: {
      auto d = std::make_shared<DictData>();
      for (size_t i = 0; i + 1 < e.items.size(); i += 2) {
        Value k = eval(*e.items[i], scope);
        if (k.t == VT::List && k.lk != ListKind::Tuple) throw_eval("unhashable type: 'list'");
        if (k.t == VT::Dict) throw_eval("unhashable type: 'dict'");
        d->set(std::move(k), eval(*e.items[i + 1], scope));
      }
      return Value::dict(std::move(d));
    }
    case EK::Getattr:
      return get_attr(eval(*e.a, scope), e.name);
    case EK::Getitem: {
      Value obj = eval(*e.a, scope);
      if (e.b->k == EK::Slice) {
        const Expr& sl = *e.b;
        Value parts[3];
        for (int i = 0; i < 3; ++i)
          parts[i] = sl.items[size_t(i)] ? eval(*sl.items[size_t(i)], scope) : Value::none();
        return py_slice(obj, parts[0], parts[1], parts[2]);
      }
      return get_item(obj, eval(*e.b, scope));
    }
    case EK::Call: {
      Value fn = eval(*e.a, scope);
      CallArgs args;
      eval_args(e, scope, args);
      return call(fn, args);
    }
    case EK::Filter:
      return eval_filter(e, scope, nullptr);
    case EK::Test: {
      Value v = eval(*e.a, scope);
      CallArgs args;
      eval_args(e, scope, args);
      return Value::boolean(e.test_fn(*this, v, args));
    }
    case EK::Neg:
      return py_neg(eval(*e.a, scope));
    case EK::Pos:
      return py_pos(eval(*e.a, scope));
    case EK::Not:
      return Value::boolean(!truthy(eval(*e.a, scope)));
    case EK::Bin: {
      Value a = eval(*e.a, scope);
      Value b = eval(*e.b, scope);
      switch (e.op) {
        case BinOp::Add:
          return py_add(a, b);
        case BinOp::Sub:
          return py_sub(a, b);
        case BinOp::Mul:
          return py_mul(a, b);
        case BinOp::Div:
          return py_truediv(a, b);
        case BinOp::FloorDiv:
          return py_floordiv(a, b);
        case BinOp::Mod:
          return py_mod(a, b);
        case BinOp::Pow:
          return py_pow(a, b);
      }
      return Value::undefined();
    }
    case EK::Concat: {
      std::string s;
      for (const auto& x : e.items) s += to_str(eval(*x, scope));
      return Value::str(std::move(s));
    }
    case EK::Compare: {
      Value left = eval(*e.a, scope);
      for (size_t i = 0; i < e.items.size(); ++i) {
        Value right = eval(*e.items[i], scope);
        bool ok = false;
        switch (e.cmp_ops[i]) {
          case CmpOp::Eq:
            ok = py_eq(left, right);
            break;
          case CmpOp::Ne:
            ok = !py_eq(left, right);
            break;
          case CmpOp::Lt:
            ok = py_cmp(left, right, "<") < 0;
            break;
          case CmpOp::Le:
            ok = py_cmp(left, right, "<=") <= 0;
            break;
          case CmpOp::Gt:
            ok = py_cmp(left, right, ">") > 0;
            break;
          case CmpOp::Ge:
            ok = py_cmp(left, right, ">=") >= 0;
            break;
          case CmpOp::In:
            ok = py_contains(right, left);
            break;
          case CmpOp::NotIn:
            ok = !py_contains(right, left);
            break;
        }
        if (!ok) return Value::boolean(false);
        left = std::move(right);
      }
      return Value::boolean(true);
    }
    case EK::And: {
      Value l = eval(*e.a, scope);
      if (!truthy(l)) return l;
      return eval(*e.b, scope);
    }
    case EK::Or: {
      Value l = eval(*e.a, scope);
      if (truthy(l)) return l;
      return eval(*e.b, scope);
    }
    case EK::Cond:
      if (truthy(eval(*e.b, scope))) return eval(*e.a, scope);
      if (e.c) return eval(*e.c, scope);
      return Value::undefined(str("the inline if-expression on line ", e.loc.line,
                                  " evaluated to false and no else section was defined."));
    case EK::Slice:
    case EK::NSRef:
      break;
  }
  throw_eval("invalid expression");
}

}  // namespace qs::jinja::detail

// ---- public API -------------------------------------------------------------------------------

namespace qs::jinja {

Template::Template() : program_(std::make_shared<detail::Program>()) {}

Template::Template(std::shared_ptr<const detail::Program> program) : program_(std::move(program)) {}

Template Template::parse(std::string_view source, const Options& options) {
  return Template(detail::parse_program(source, options));
}

namespace {

template <class J>
std::string render_with(const detail::Program& program, const J& context) {
  using namespace detail;
  auto root = std::make_shared<Scope>();
  if (json_deeper_than(context, kMaxJsonDepth))  // from_json() recurses as deep as the values nest
    qs::fail("jinja: the render context is nested deeper than ", kMaxJsonDepth, " levels");
  if (context.is_object()) {
    for (auto it = context.begin(); it != context.end(); ++it) root->set(it.key(), from_json(*it));
  } else if (!context.is_null()) {
    qs::fail("jinja: the render context must be a JSON object");
  }
  Interp interp(program);
  try {
    return interp.render(root);
  } catch (const EvalError& e) {  // not attributed to a node (should not happen)
    qs::fail("jinja: ", e.msg);
  }
}

}  // namespace

std::string Template::render(const nlohmann::json& context) const {
  return render_with(*program_, context);
}

std::string Template::render_ordered(const nlohmann::ordered_json& context) const {
  return render_with(*program_, context);
}

std::string render(std::string_view source, const nlohmann::json& context, const Options& options) {
  return Template::parse(source, options).render(context);
}

}  // namespace qs::jinja
