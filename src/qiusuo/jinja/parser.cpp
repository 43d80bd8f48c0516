// Jinja2 parser: tokens -> AST, following jinja2/parser.py rule for rule (operator precedence,
// tuple/slice/call-argument parsing, filters and tests binding tighter than binary operators,
// `is` test arguments, assignment targets). Filters and tests are resolved here, so an unknown
// or unsupported one fails when the template is compiled, as in Jinja.
#include <functional>

#include "qiusuo/jinja/internal.h"

namespace qs::jinja::detail {

namespace {

const char* const kUnsupportedTags[] = {"block",      "extends", "include", "import",   "from",
                                        "autoescape", "do",      "trans",   "pluralize"};

std::string describe(const Token& t) {
  switch (t.k) {
    case TK::Data:
      return "template data";
    case TK::VarBegin:
      return "begin of print statement";
    case TK::VarEnd:
      return "end of print statement";
    case TK::BlockBegin:
      return "begin of statement block";
    case TK::BlockEnd:
      return "end of statement block";
    case TK::Name:
    case TK::Op:
      return "'" + t.text + "'";
    case TK::String:
      return "string";
    case TK::Int:
      return "integer";
    case TK::Float:
      return "float";
    case TK::Eof:
      return "end of template";
  }
  return "token";
}

class Parser {
 public:
  explicit Parser(std::vector<Token> toks) : toks_(std::move(toks)) {}

  StmtList parse_template() {
    StmtList body = subparse({});
    if (cur().k != TK::Eof) error(str("unexpected ", describe(cur())));
    return body;
  }

 private:
  // ---- token stream ----
  const Token& cur() const { return toks_[i_]; }
  const Token& look() const { return toks_[std::min(i_ + 1, toks_.size() - 1)]; }
  void next() {
    if (i_ + 1 < toks_.size()) ++i_;
  }
  bool is_op(const char* s) const { return cur().k == TK::Op && cur().text == s; }
  bool is_name(const char* s) const { return cur().k == TK::Name && cur().text == s; }
  bool skip_op(const char* s) {
    if (!is_op(s)) return false;
    next();
    return true;
  }
  bool skip_name(const char* s) {
    if (!is_name(s)) return false;
    next();
    return true;
  }
  [[noreturn]] void error(const std::string& msg) const { fail_at(cur().loc, msg); }
  [[noreturn]] void error_at(Loc loc, const std::string& msg) const { fail_at(loc, msg); }
  void expect_op(const char* s) {
    if (!skip_op(s)) error(str("expected '", s, "', got ", describe(cur())));
  }
  void expect_name_kw(const char* s) {
    if (!skip_name(s)) error(str("expected '", s, "', got ", describe(cur())));
  }
  std::string expect_name() {
    if (cur().k != TK::Name) error(str("expected a name, got ", describe(cur())));
    std::string n = cur().text;
    next();
    return n;
  }
  void expect(TK k) {
    if (cur().k != k) {
      if (cur().k == TK::Eof) error("unexpected end of template");
      const char* want = k == TK::BlockEnd ? "end of statement block '%}'"
                         : k == TK::VarEnd ? "end of print statement '}}'"
                                           : "token";
      error(str("expected ", want, ", got ", describe(cur())));
    }
    next();
  }

  static ExprP make(EK k, Loc loc) {
    auto e = std::make_unique<Expr>();
    e->k = k;
    e->loc = loc;
    return e;
  }
  static StmtP make_stmt(SK k, Loc loc) {
    auto s = std::make_unique<Stmt>();
    s->k = k;
    s->loc = loc;
    return s;
  }

  // ---- statements ----
  bool at_end_token(const std::vector<const char*>& ends) const {
    if (cur().k != TK::Name) return false;
    for (const char* e : ends)
      if (cur().text == e) return true;
    return false;
  }

  StmtList subparse(const std::vector<const char*>& ends) {
    StmtList body;
    while (cur().k != TK::Eof) {
      const Token& t = cur();
      if (t.k == TK::Data) {
        auto s = make_stmt(SK::Data, t.loc);
        s->text = t.text;
        body.push_back(std::move(s));
        next();
      } else if (t.k == TK::VarBegin) {
        Loc loc = t.loc;
        next();
        auto s = make_stmt(SK::Output, loc);
        s->expr = parse_tuple(false, true, {}, false, false);
        expect(TK::VarEnd);
        body.push_back(std::move(s));
      } else if (t.k == TK::BlockBegin) {
        next();
        if (!ends.empty() && at_end_token(ends)) return body;
        parse_statement(body);
        expect(TK::BlockEnd);
      } else {
        error(str("unexpected ", describe(t)));
      }
    }
    return body;
  }

  StmtList parse_statements(const std::vector<const char*>& ends, bool drop_needle) {
    skip_op(":");
    expect(TK::BlockEnd);
    StmtList body = subparse(ends);
    if (cur().k == TK::Eof) {
      std::string want;
      for (const char* e : ends) want += str(want.empty() ? "" : " or ", "'", e, "'");
      error(str("unexpected end of template, expected ", want));
    }
    if (drop_needle) next();
    return body;
  }

  void parse_statement(StmtList& out) {
    NestGuard guard(*this);
    const Token& t = cur();
    if (t.k != TK::Name) error("tag name expected");
    const std::string& tag = t.text;
    if (tag == "for") return out.push_back(parse_for());
    if (tag == "if") return out.push_back(parse_if());
    if (tag == "set") return out.push_back(parse_set());
    if (tag == "macro") return out.push_back(parse_macro());
    if (tag == "call") return out.push_back(parse_call_block());
    if (tag == "filter") return out.push_back(parse_filter_block());
    if (tag == "with") return out.push_back(parse_with());
    if (tag == "generation") {  // transformers' AssistantTracker extension: renders its body
      auto s = make_stmt(SK::Scope, t.loc);
      next();
      s->body = parse_statements({"endgeneration"}, true);
      return out.push_back(std::move(s));
    }
    if (tag == "print") {
      next();
      bool first = true;
      while (cur().k != TK::BlockEnd) {
        if (!first) expect_op(",");
        first = false;
        auto s = make_stmt(SK::Output, cur().loc);
        s->expr = parse_expression(true);
        out.push_back(std::move(s));
      }
      return;
    }
    if (tag == "break" || tag == "continue") {
      if (loop_depth_ == 0) error(str("'", tag, "' outside of a loop"));
      out.push_back(make_stmt(tag == "break" ? SK::Break : SK::Continue, t.loc));
      next();
      return;
    }
    for (const char* u : kUnsupportedTags)
      if (tag == u) fail_unsupported(t.loc, tag);
    error(str("unknown tag '", tag, "'"));
  }

  StmtP parse_for() {
    auto s = make_stmt(SK::For, cur().loc);
    next();
    s->target = parse_assign_target(true, false, {"in"}, false);
    expect_name_kw("in");
    s->expr = parse_tuple(false, false, {"recursive"}, false, false);
    if (skip_name("if")) s->cond = parse_expression(true);
    if (is_name("recursive")) fail_unsupported(cur().loc, "recursive for loop");
    ++loop_depth_;
    s->body = parse_statements({"endfor", "else"}, false);
    --loop_depth_;
    bool is_else = is_name("else");
    next();
    if (is_else) s->else_body = parse_statements({"endfor"}, true);
    return s;
  }

  StmtP parse_if() {
    auto s = make_stmt(SK::If, cur().loc);
    next();
    while (true) {
      s->conds.push_back(parse_tuple(false, false, {}, false, false));
      s->bodies.push_back(parse_statements({"elif", "else", "endif"}, false));
      if (is_name("elif")) {
        next();
        continue;
      }
      if (is_name("else")) {
        next();
        s->else_body = parse_statements({"endif"}, true);
      } else {
        next();  // endif
      }
      break;
    }
    return s;
  }

  StmtP parse_set() {
    Loc loc = cur().loc;
    next();
    ExprP target = parse_assign_target(true, false, {}, true);
    if (skip_op("=")) {
      auto s = make_stmt(SK::Set, loc);
      s->target = std::move(target);
      s->expr = parse_tuple(false, true, {}, false, false);
      return s;
    }
    auto s = make_stmt(SK::SetBlock, loc);
    s->target = std::move(target);
    if (is_op("|")) s->filter = parse_filter(nullptr, false);
    s->body = parse_statements({"endset"}, true);
    return s;
  }

  void parse_signature(Stmt& s) {
    expect_op("(");
    while (!is_op(")")) {
      if (!s.params.empty()) expect_op(",");
      Loc loc = cur().loc;
      std::string name = expect_name();
      if (name == "true" || name == "false" || name == "none" || name == "True" ||
          name == "False" || name == "None")
        error_at(loc, "can't assign to 'const'");
      if (skip_op("="))
        s.defaults.push_back(parse_expression(true));
      else if (!s.defaults.empty())
        error_at(loc, "non-default argument follows default argument");
      s.params.push_back(name);
    }
    expect_op(")");
  }

  StmtP parse_macro() {
    auto s = make_stmt(SK::Macro, cur().loc);
    next();
    s->name = expect_name();
    parse_signature(*s);
    int saved = loop_depth_;
    loop_depth_ = 0;
    s->body = parse_statements({"endmacro"}, true);
    loop_depth_ = saved;
    scan_special_names(*s);
    return s;
  }

  StmtP parse_call_block() {
    auto s = make_stmt(SK::CallBlock, cur().loc);
    next();
    if (is_op("(")) parse_signature(*s);
    s->expr = parse_expression(true);
    if (s->expr->k != EK::Call) error_at(s->loc, "expected call");
    int saved = loop_depth_;
    loop_depth_ = 0;
    s->body = parse_statements({"endcall"}, true);
    loop_depth_ = saved;
    scan_special_names(*s);
    return s;
  }

  StmtP parse_filter_block() {
    auto s = make_stmt(SK::FilterBlock, cur().loc);
    next();
    s->filter = parse_filter(nullptr, true);
    s->body = parse_statements({"endfilter"}, true);
    return s;
  }

  StmtP parse_with() {
    auto s = make_stmt(SK::With, cur().loc);
    next();
    while (cur().k != TK::BlockEnd) {
      if (!s->targets.empty()) expect_op(",");
      s->targets.push_back(parse_assign_target(true, false, {}, false));
      expect_op("=");
      s->values.push_back(parse_expression(true));
    }
    s->body = parse_statements({"endwith"}, true);
    return s;
  }

  static void check_assignable(const Expr& e) {
    if (e.k == EK::Name || e.k == EK::NSRef) return;
    if (e.k == EK::Tuple) {
      for (const auto& x : e.items) check_assignable(*x);
      return;
    }
    const char* what = e.k == EK::Const ? "const" : e.k == EK::List ? "list" : "expression";
    fail_at(e.loc, str("can't assign to '", what, "'"));
  }

  ExprP parse_assign_target(bool with_tuple, bool name_only,
                            const std::vector<const char*>& extra_end, bool with_namespace) {
    ExprP target;
    if (name_only) {
      target = make(EK::Name, cur().loc);
      target->name = expect_name();
    } else if (with_tuple) {
      target = parse_tuple(true, true, extra_end, false, with_namespace);
    } else {
      target = parse_primary(with_namespace);
    }
    check_assignable(*target);
    return target;
  }

  // Bounds the recursion of the parser (deeply nested brackets or blocks).
  struct NestGuard {
    Parser& p;
    explicit NestGuard(Parser& parser) : p(parser) {
      if (++p.nesting_ > 200) p.error("template nested too deeply");
    }
    ~NestGuard() { --p.nesting_; }
  };

  // ---- expressions ----
  ExprP parse_expression(bool with_condexpr) {
    NestGuard guard(*this);
    return with_condexpr ? parse_condexpr() : parse_or();
  }

  ExprP parse_condexpr() {
    Loc loc = cur().loc;
    ExprP e1 = parse_or();
    while (skip_name("if")) {
      auto c = make(EK::Cond, loc);
      c->b = parse_or();
      if (skip_name("else")) c->c = parse_condexpr();
      c->a = std::move(e1);
      e1 = std::move(c);
      loc = cur().loc;
    }
    return e1;
  }

  ExprP parse_or() {
    ExprP left = parse_and();
    while (is_name("or")) {
      auto e = make(EK::Or, cur().loc);
      next();
      e->a = std::move(left);
      e->b = parse_and();
      left = std::move(e);
    }
    return left;
  }

  ExprP parse_and() {
    ExprP left = parse_not();
    while (is_name("and")) {
      auto e = make(EK::And, cur().loc);
      next();
      e->a = std::move(left);
      e->b = parse_not();
      left = std::move(e);
    }
    return left;
  }

  ExprP parse_not() {
    if (is_name("not")) {
      auto e = make(EK::Not, cur().loc);
      next();
      e->a = parse_not();
      return e;
    }
    return parse_compare();
  }

  ExprP parse_compare() {
    Loc loc = cur().loc;
    ExprP expr = parse_math1();
    ExprP cmp;
    while (true) {
      CmpOp op;
      if (is_op("=="))
        op = CmpOp::Eq;
      else if (is_op("!="))
        op = CmpOp::Ne;
      else if (is_op("<"))
        op = CmpOp::Lt;
      else if (is_op("<="))
        op = CmpOp::Le;
      else if (is_op(">"))
        op = CmpOp::Gt;
      else if (is_op(">="))
        op = CmpOp::Ge;
      else if (is_name("in"))
        op = CmpOp::In;
      else if (is_name("not") && look().k == TK::Name && look().text == "in")
        op = CmpOp::NotIn;
      else
        break;
      if (!cmp) {
        cmp = make(EK::Compare, loc);
        cmp->a = std::move(expr);
      }
      next();
      if (op == CmpOp::NotIn) next();
      cmp->cmp_ops.push_back(op);
      cmp->items.push_back(parse_math1());
    }
    return cmp ? std::move(cmp) : std::move(expr);
  }

  ExprP binary(BinOp op, Loc loc, ExprP a, ExprP b) {
    auto e = make(EK::Bin, loc);
    e->op = op;
    e->a = std::move(a);
    e->b = std::move(b);
    return e;
  }

  ExprP parse_math1() {
    ExprP left = parse_concat();
    while (is_op("+") || is_op("-")) {
      Loc loc = cur().loc;
      BinOp op = is_op("+") ? BinOp::Add : BinOp::Sub;
      next();
      left = binary(op, loc, std::move(left), parse_concat());
    }
    return left;
  }

  ExprP parse_concat() {
    Loc loc = cur().loc;
    ExprP first = parse_math2();
    if (!is_op("~")) return first;
    auto e = make(EK::Concat, loc);
    e->items.push_back(std::move(first));
    while (skip_op("~")) e->items.push_back(parse_math2());
    return e;
  }

  ExprP parse_math2() {
    ExprP left = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      Loc loc = cur().loc;
      BinOp op = is_op("*")    ? BinOp::Mul
                 : is_op("/")  ? BinOp::Div
                 : is_op("//") ? BinOp::FloorDiv
                               : BinOp::Mod;
      next();
      left = binary(op, loc, std::move(left), parse_pow());
    }
    return left;
  }

  ExprP parse_pow() {
    ExprP left = parse_unary(true);
    while (is_op("**")) {
      Loc loc = cur().loc;
      next();
      left = binary(BinOp::Pow, loc, std::move(left), parse_unary(true));
    }
    return left;
  }

  ExprP parse_unary(bool with_filter) {
    NestGuard guard(*this);
    ExprP node;
    if (is_op("-") || is_op("+")) {
      node = make(is_op("-") ? EK::Neg : EK::Pos, cur().loc);
      next();
      node->a = parse_unary(false);
    } else {
      node = parse_primary(false);
    }
    node = parse_postfix(std::move(node));
    if (with_filter) node = parse_filter_expr(std::move(node));
    return node;
  }

  ExprP parse_primary(bool with_namespace) {
    const Token& t = cur();
    Loc loc = t.loc;
    if (t.k == TK::Name) {
      std::string name = t.text;
      next();
      if (name == "true" || name == "True" || name == "false" || name == "False") {
        auto e = make(EK::Const, loc);
        e->value = Value::boolean(name == "true" || name == "True");
        return e;
      }
      if (name == "none" || name == "None") {
        auto e = make(EK::Const, loc);
        e->value = Value::none();
        return e;
      }
      if (with_namespace && is_op(".")) {
        next();
        auto e = make(EK::NSRef, loc);
        e->name = name;
        e->attr = expect_name();
        return e;
      }
      auto e = make(EK::Name, loc);
      e->name = name;
      return e;
    }
    if (t.k == TK::String) {
      std::string s;
      while (cur().k == TK::String) {
        s += cur().text;
        next();
      }
      auto e = make(EK::Const, loc);
      e->value = Value::str(std::move(s));
      return e;
    }
    if (t.k == TK::Int || t.k == TK::Float) {
      auto e = make(EK::Const, loc);
      e->value = t.k == TK::Int ? Value::integer(t.ival) : Value::real(t.fval);
      next();
      return e;
    }
    if (is_op("(")) {
      next();
      ExprP e = parse_tuple(false, true, {}, true, false);
      expect_op(")");
      return e;
    }
    if (is_op("[")) return parse_list();
    if (is_op("{")) return parse_dict();
    if (t.k == TK::Eof) error("unexpected end of template");
    error(str("unexpected ", describe(t)));
  }

  bool is_tuple_end(const std::vector<const char*>& extra_end) const {
    if (cur().k == TK::VarEnd || cur().k == TK::BlockEnd || is_op(")")) return true;
    return at_end_token(extra_end);
  }

  ExprP parse_tuple(bool simplified, bool with_condexpr, const std::vector<const char*>& extra_end,
                    bool explicit_parens, bool with_namespace) {
    Loc loc = cur().loc;
    std::vector<ExprP> args;
    bool is_tuple = false;
    while (true) {
      if (!args.empty()) expect_op(",");
      if (is_tuple_end(extra_end)) break;
      args.push_back(simplified ? parse_primary(with_namespace) : parse_expression(with_condexpr));
      if (is_op(","))
        is_tuple = true;
      else
        break;
    }
    if (!is_tuple) {
      if (!args.empty()) return std::move(args[0]);
      if (!explicit_parens) error(str("expected an expression, got ", describe(cur())));
    }
    auto e = make(EK::Tuple, loc);
    e->items = std::move(args);
    return e;
  }

  ExprP parse_list() {
    auto e = make(EK::List, cur().loc);
    expect_op("[");
    while (!is_op("]")) {
      if (!e->items.empty()) expect_op(",");
      if (is_op("]")) break;
      e->items.push_back(parse_expression(true));
    }
    expect_op("]");
    return e;
  }

  ExprP parse_dict() {
    auto e = make(EK::Dict, cur().loc);
    expect_op("{");
    while (!is_op("}")) {
      if (!e->items.empty()) expect_op(",");
      if (is_op("}")) break;
      e->items.push_back(parse_expression(true));
      expect_op(":");
      e->items.push_back(parse_expression(true));
    }
    expect_op("}");
    return e;
  }

  ExprP parse_postfix(ExprP node) {
    while (true) {
      if (is_op(".") || is_op("["))
        node = parse_subscript(std::move(node));
      else if (is_op("("))
        node = parse_call(std::move(node));
      else
        break;
    }
    return node;
  }

  ExprP parse_filter_expr(ExprP node) {
    while (true) {
      if (is_op("|"))
        node = parse_filter(std::move(node), false);
      else if (is_name("is"))
        node = parse_test(std::move(node));
      else if (is_op("("))
        node = parse_call(std::move(node));
      else
        break;
    }
    return node;
  }

  ExprP parse_subscript(ExprP node) {
    Loc loc = cur().loc;
    if (skip_op(".")) {
      const Token& t = cur();
      if (t.k == TK::Name) {
        auto e = make(EK::Getattr, loc);
        e->a = std::move(node);
        e->name = t.text;
        next();
        return e;
      }
      if (t.k != TK::Int) error("expected name or number");
      auto e = make(EK::Getitem, loc);
      e->a = std::move(node);
      e->b = make(EK::Const, t.loc);
      e->b->value = Value::integer(t.ival);
      next();
      return e;
    }
    expect_op("[");
    std::vector<ExprP> args;
    while (!is_op("]")) {
      if (!args.empty()) expect_op(",");
      args.push_back(parse_subscribed());
    }
    expect_op("]");
    auto e = make(EK::Getitem, loc);
    e->a = std::move(node);
    if (args.size() == 1) {
      e->b = std::move(args[0]);
    } else {
      e->b = make(EK::Tuple, loc);
      e->b->items = std::move(args);
    }
    return e;
  }

  ExprP parse_subscribed() {
    Loc loc = cur().loc;
    ExprP start;
    if (is_op(":")) {
      next();
    } else {
      ExprP node = parse_expression(true);
      if (!is_op(":")) return node;
      next();
      start = std::move(node);
    }
    auto e = make(EK::Slice, loc);
    e->items.resize(3);
    e->items[0] = std::move(start);
    if (!is_op(":") && !is_op("]") && !is_op(",")) e->items[1] = parse_expression(true);
    if (skip_op(":")) {
      if (!is_op("]") && !is_op(",")) e->items[2] = parse_expression(true);
    }
    return e;
  }

  void parse_call_args(Expr& e) {
    Loc loc = cur().loc;
    expect_op("(");
    bool require_comma = false;
    while (!is_op(")")) {
      if (require_comma) {
        expect_op(",");
        if (is_op(")")) break;
      }
      if (is_op("*") || is_op("**")) fail_unsupported(cur().loc, str(cur().text, " arguments"));
      if (cur().k == TK::Name && look().k == TK::Op && look().text == "=") {
        std::string key = cur().text;
        next();
        next();
        e.kwargs.emplace_back(key, parse_expression(true));
      } else {
        if (!e.kwargs.empty()) error_at(loc, "invalid syntax for function call expression");
        e.items.push_back(parse_expression(true));
      }
      require_comma = true;
    }
    expect_op(")");
  }

  ExprP parse_call(ExprP node) {
    auto e = make(EK::Call, cur().loc);
    e->a = std::move(node);
    parse_call_args(*e);
    return e;
  }

  std::string parse_dotted_name() {
    std::string name = expect_name();
    while (skip_op(".")) name += "." + expect_name();
    return name;
  }

  ExprP parse_filter(ExprP node, bool start_inline) {
    while (is_op("|") || start_inline) {
      if (!start_inline) next();
      start_inline = false;
      Loc loc = cur().loc;
      auto e = make(EK::Filter, loc);
      e->name = parse_dotted_name();
      e->filter_fn = find_filter(e->name);
      if (!e->filter_fn) {
        if (is_unsupported_filter(e->name)) fail_unsupported(loc, "filter " + e->name);
        error_at(loc, str("no filter named '", e->name, "'"));
      }
      if (is_op("(")) parse_call_args(*e);
      e->a = std::move(node);
      node = std::move(e);
    }
    return node;
  }

  ExprP parse_test(ExprP node) {
    Loc loc = cur().loc;
    next();  // is
    bool negated = skip_name("not");
    Loc name_loc = cur().loc;
    auto e = make(EK::Test, loc);
    e->name = parse_dotted_name();
    e->test_fn = find_test(e->name);
    if (!e->test_fn) error_at(name_loc, str("no test named '", e->name, "'"));
    if (is_op("(")) {
      parse_call_args(*e);
    } else if ((cur().k == TK::Name || cur().k == TK::String || cur().k == TK::Int ||
                cur().k == TK::Float || is_op("[") || is_op("{")) &&
               !is_name("else") && !is_name("or") && !is_name("and")) {
      if (is_name("is")) error("you cannot chain multiple tests with is");
      ExprP arg = parse_primary(false);
      e->items.push_back(parse_postfix(std::move(arg)));
    }
    e->a = std::move(node);
    if (!negated) return e;
    auto n = make(EK::Not, loc);
    n->a = std::move(e);
    return n;
  }

  // Which of the special names (caller, varargs, kwargs) a macro or call block refers to.
  static void walk_expr(const Expr* e, const std::function<void(const std::string&)>& f) {
    if (!e) return;
    if (e->k == EK::Name) f(e->name);
    walk_expr(e->a.get(), f);
    walk_expr(e->b.get(), f);
    walk_expr(e->c.get(), f);
    for (const auto& x : e->items) walk_expr(x.get(), f);
    for (const auto& kv : e->kwargs) walk_expr(kv.second.get(), f);
  }
  static void walk_body(const StmtList& body, const std::function<void(const std::string&)>& f) {
    for (const auto& s : body) {
      walk_expr(s->expr.get(), f);
      walk_expr(s->cond.get(), f);
      walk_expr(s->filter.get(), f);
      for (const auto& x : s->conds) walk_expr(x.get(), f);
      for (const auto& x : s->defaults) walk_expr(x.get(), f);
      for (const auto& x : s->values) walk_expr(x.get(), f);
      for (const auto& b : s->bodies) walk_body(b, f);
      walk_body(s->body, f);
      walk_body(s->else_body, f);
    }
  }
  static void scan_special_names(Stmt& s) {
    walk_body(s.body, [&](const std::string& n) {
      if (n == "caller") s.uses_caller = true;
      if (n == "varargs") s.uses_varargs = true;
      if (n == "kwargs") s.uses_kwargs = true;
    });
    for (const auto& d : s.defaults)
      walk_expr(d.get(), [&](const std::string& n) {
        if (n == "caller") s.uses_caller = true;
      });
  }

  std::vector<Token> toks_;
  size_t i_ = 0;
  int loop_depth_ = 0;
  int nesting_ = 0;
};

}  // namespace

std::shared_ptr<const Program> parse_program(std::string_view source, const Options& options) {
  auto prog = std::make_shared<Program>();
  prog->options = options;
  prog->body = Parser(lex(source, options)).parse_template();
  return prog;
}

}  // namespace qs::jinja::detail
