// The Python-like value model of the Jinja interpreter: construction, unicode string helpers,
// str()/repr(), truthiness, equality, ordering, len/iter/in, and JSON in and out.
#include <locale.h>
#include <wctype.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "qiusuo/jinja/internal.h"

namespace qs::jinja::detail {

// ---- errors ---------------------------------------------------------------------------------

void throw_eval(std::string msg) { throw EvalError{std::move(msg), false}; }
void throw_unsupported(std::string what) { throw EvalError{std::move(what), true}; }

void fail_at(Loc loc, const std::string& msg) {
  qs::fail(ErrorKind::Invalid, "jinja: ", msg, " at line ", loc.line, " col ", loc.col);
}

void fail_unsupported(Loc loc, const std::string& what) {
  qs::fail(ErrorKind::Unsupported, "unsupported Jinja construct '", what, "' at line ", loc.line,
           " col ", loc.col);
}

// ---- construction ---------------------------------------------------------------------------

Value Value::undefined(std::string msg) {
  Value v;
  v.s = std::move(msg);
  return v;
}
Value Value::none() {
  Value v;
  v.t = VT::None;
  return v;
}
Value Value::boolean(bool x) {
  Value v;
  v.t = VT::Bool;
  v.b = x;
  return v;
}
Value Value::integer(int64_t x) {
  Value v;
  v.t = VT::Int;
  v.i = x;
  return v;
}
Value Value::real(double x) {
  Value v;
  v.t = VT::Float;
  v.f = x;
  return v;
}
Value Value::str(std::string x) {
  Value v;
  v.t = VT::Str;
  v.s = std::move(x);
  return v;
}
Value Value::list(ValueList x, ListKind kind) {
  Value v;
  v.t = VT::List;
  v.lk = kind;
  v.l = std::make_shared<const ValueList>(std::move(x));
  return v;
}
Value Value::dict(std::shared_ptr<DictData> d) {
  Value v;
  v.t = VT::Dict;
  v.d = std::move(d);
  return v;
}
Value Value::func(std::string name, std::function<Value(Interp&, CallArgs&)> fn) {
  Value v;
  v.t = VT::Func;
  v.fn = std::make_shared<const Callable>(Callable{std::move(name), std::move(fn)});
  return v;
}

const Value* DictData::find_str(std::string_view key) const {
  auto it = str_index.find(std::string(key));
  return it == str_index.end() ? nullptr : &entries[it->second].second;
}

const Value* DictData::find(const Value& key) const {
  if (key.t == VT::Str) return find_str(key.s);
  for (const auto& e : entries)
    if (e.first.t != VT::Str && py_eq(e.first, key)) return &e.second;
  return nullptr;
}

void DictData::set(Value key, Value value) {
  if (key.t == VT::Str) return set_str(key.s, std::move(value));
  for (auto& e : entries)
    if (e.first.t != VT::Str && py_eq(e.first, key)) {
      e.second = std::move(value);
      return;
    }
  entries.emplace_back(std::move(key), std::move(value));
}

void DictData::set_str(const std::string& key, Value value) {
  auto it = str_index.find(key);
  if (it != str_index.end()) {
    entries[it->second].second = std::move(value);
    return;
  }
  str_index.emplace(key, entries.size());
  entries.emplace_back(Value::str(key), std::move(value));
}

Binder::Binder(std::string_view fname, const CallArgs& args,
               std::initializer_list<const char*> params)
    : vals_(params.size(), nullptr) {
  if (args.pos.size() > params.size())
    throw_eval(str(fname, "() takes at most ", params.size(), " argument(s) (", args.pos.size(),
                   " given)"));
  for (size_t i = 0; i < args.pos.size(); ++i) vals_[i] = &args.pos[i];
  for (const auto& [k, v] : args.kw) {
    size_t idx = 0;
    for (const char* p : params) {
      if (k == p) break;
      ++idx;
    }
    if (idx == params.size())
      throw_eval(str(fname, "() got an unexpected keyword argument '", k, "'"));
    if (vals_[idx]) throw_eval(str(fname, "() got multiple values for argument '", k, "'"));
    vals_[idx] = &v;
  }
}

// ---- unicode --------------------------------------------------------------------------------

namespace {

locale_t utf8_locale() {
  static locale_t loc = [] {
    locale_t l = newlocale(LC_CTYPE_MASK, "C.UTF-8", locale_t(0));
    if (!l) l = newlocale(LC_CTYPE_MASK, "C.utf8", locale_t(0));
    if (!l) l = newlocale(LC_CTYPE_MASK, "en_US.UTF-8", locale_t(0));
    return l;
  }();
  return loc;
}

void append_cp(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += char(0xE0 | (cp >> 12));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xF0 | (cp >> 18));
    out += char(0x80 | ((cp >> 12) & 0x3F));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  }
}

}  // namespace

bool py_isspace(uint32_t c) {
  if (c < 0x80) return (c >= 9 && c <= 13) || (c >= 0x1C && c <= 0x20);
  return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 ||
         c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

std::vector<uint32_t> to_cps(std::string_view s) {
  std::vector<uint32_t> out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    unsigned char b = s[i];
    uint32_t cp;
    int len;
    if (b < 0x80) {
      cp = b, len = 1;
    } else if (b < 0xE0) {
      cp = b & 0x1F, len = 2;
    } else if (b < 0xF0) {
      cp = b & 0x0F, len = 3;
    } else {
      cp = b & 0x07, len = 4;
    }
    if (i + len > s.size()) len = int(s.size() - i);
    for (int k = 1; k < len; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
    out.push_back(cp);
    i += len;
  }
  return out;
}

std::string from_cps(const uint32_t* p, size_t n) {
  std::string out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) append_cp(out, p[i]);
  return out;
}

size_t cp_count(std::string_view s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

uint32_t cp_upper(uint32_t c) {
  if (c < 0x80) return (c >= 'a' && c <= 'z') ? c - 32 : c;
  locale_t l = utf8_locale();
  return l ? uint32_t(towupper_l(wint_t(c), l)) : c;
}
uint32_t cp_lower(uint32_t c) {
  if (c < 0x80) return (c >= 'A' && c <= 'Z') ? c + 32 : c;
  locale_t l = utf8_locale();
  return l ? uint32_t(towlower_l(wint_t(c), l)) : c;
}
bool cp_isalpha(uint32_t c) {
  if (c < 0x80) return (c | 32) >= 'a' && (c | 32) <= 'z';
  locale_t l = utf8_locale();
  return l && iswalpha_l(wint_t(c), l);
}
bool cp_isdigit(uint32_t c) {
  if (c < 0x80) return c >= '0' && c <= '9';
  locale_t l = utf8_locale();
  return l && iswdigit_l(wint_t(c), l);
}
bool cp_isalnum(uint32_t c) { return cp_isalpha(c) || cp_isdigit(c); }
bool cp_isupper(uint32_t c) { return cp_lower(c) != c; }
bool cp_islower(uint32_t c) { return cp_upper(c) != c; }

namespace {
bool cp_iscased(uint32_t c) { return cp_isupper(c) || cp_islower(c); }

bool cp_isprintable(uint32_t c) {
  if (c < 0x20 || c == 0x7F) return false;
  if (c < 0x7F) return true;
  if (c < 0xA0) return false;                   // C1 controls
  if (c != ' ' && py_isspace(c)) return false;  // Zs, Zl, Zp
  if (c == 0xAD || (c >= 0x600 && c <= 0x605) || c == 0x61C || c == 0x6DD || c == 0x70F ||
      c == 0x180E || (c >= 0x200B && c <= 0x200F) || (c >= 0x202A && c <= 0x202E) ||
      (c >= 0x2060 && c <= 0x206F) || c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFB) ||
      (c >= 0xE0000 && c <= 0xE007F))
    return false;                                                  // Cf
  if ((c >= 0xD800 && c <= 0xF8FF) || c >= 0xF0000) return false;  // Cs, Co
  locale_t l = utf8_locale();
  return !l || iswprint_l(wint_t(c), l);  // unassigned code points are not printable
}
}  // namespace

std::string str_upper(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (uint32_t c : to_cps(s)) {
    if (c == 0xDF) {  // ß -> SS (Python's full case mapping)
      out += "SS";
      continue;
    }
    append_cp(out, cp_upper(c));
  }
  return out;
}

std::string str_lower(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (uint32_t c : to_cps(s)) append_cp(out, cp_lower(c));
  return out;
}

std::string str_strip(std::string_view s, const Value* chars, bool left, bool right) {
  std::vector<uint32_t> cps = to_cps(s);
  std::vector<uint32_t> set;
  bool ws = chars == nullptr || chars->t == VT::None;
  if (!ws) {
    if (chars->t != VT::Str) throw_eval("strip arg must be None or str");
    set = to_cps(chars->s);
  }
  auto strip_it = [&](uint32_t c) {
    return ws ? py_isspace(c) : std::find(set.begin(), set.end(), c) != set.end();
  };
  size_t b = 0, e = cps.size();
  if (left)
    while (b < e && strip_it(cps[b])) ++b;
  if (right)
    while (e > b && strip_it(cps[e - 1])) --e;
  return from_cps(cps.data() + b, e - b);
}

std::vector<std::string> str_splitlines(std::string_view s, bool keepends) {
  std::vector<uint32_t> cps = to_cps(s);
  std::vector<std::string> out;
  size_t start = 0, i = 0;
  while (i < cps.size()) {
    uint32_t c = cps[i];
    bool brk = c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || c == 0x1C || c == 0x1D ||
               c == 0x1E || c == 0x85 || c == 0x2028 || c == 0x2029;
    if (!brk) {
      ++i;
      continue;
    }
    size_t eol = i;
    ++i;
    if (c == '\r' && i < cps.size() && cps[i] == '\n') ++i;
    out.push_back(from_cps(cps.data() + start, (keepends ? i : eol) - start));
    start = i;
  }
  if (start < cps.size()) out.push_back(from_cps(cps.data() + start, cps.size() - start));
  return out;
}

std::string str_replace(std::string_view s, std::string_view old, std::string_view neu,
                        int64_t count) {
  std::string out;
  if (old.empty()) {
    std::vector<uint32_t> cps = to_cps(s);
    int64_t n = 0;
    for (size_t i = 0; i <= cps.size(); ++i) {
      if (count < 0 || n < count) {
        out += neu;
        ++n;
      }
      if (i < cps.size()) append_cp(out, cps[i]);
    }
    return out;
  }
  size_t pos = 0;
  int64_t n = 0;
  while (count < 0 || n < count) {
    size_t k = s.find(old, pos);
    if (k == std::string_view::npos) break;
    out.append(s.substr(pos, k - pos));
    out.append(neu);
    pos = k + old.size();
    ++n;
  }
  out.append(s.substr(pos));
  return out;
}

std::string str_capitalize(std::string_view s) {
  std::vector<uint32_t> cps = to_cps(s);
  std::string out;
  for (size_t i = 0; i < cps.size(); ++i) {
    if (i == 0) {
      if (cps[0] == 0xDF) {
        out += "Ss";
        continue;
      }
      append_cp(out, cp_upper(cps[0]));
    } else {
      append_cp(out, cp_lower(cps[i]));
    }
  }
  return out;
}

std::string str_title(std::string_view s) {
  std::string out;
  bool prev_cased = false;
  for (uint32_t c : to_cps(s)) {
    append_cp(out, prev_cased ? cp_lower(c) : cp_upper(c));
    prev_cased = cp_iscased(c);
  }
  return out;
}

std::string html_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&#34;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string py_str_repr(std::string_view s) {
  bool has_sq = s.find('\'') != std::string_view::npos;
  bool has_dq = s.find('"') != std::string_view::npos;
  char quote = (has_sq && !has_dq) ? '"' : '\'';
  std::string out(1, quote);
  char buf[16];
  for (uint32_t c : to_cps(s)) {
    if (c == uint32_t(quote) || c == '\\') {
      out += '\\';
      out += char(c);
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (cp_isprintable(c)) {
      append_cp(out, c);
    } else {
      if (c <= 0xFF)
        std::snprintf(buf, sizeof buf, "\\x%02x", c);
      else if (c <= 0xFFFF)
        std::snprintf(buf, sizeof buf, "\\u%04x", c);
      else
        std::snprintf(buf, sizeof buf, "\\U%08x", c);
      out += buf;
    }
  }
  out += quote;
  return out;
}

// ---- str / repr -----------------------------------------------------------------------------

std::string float_repr(double x) {
  if (std::isnan(x)) return "nan";
  if (std::isinf(x)) return x > 0 ? "inf" : "-inf";
  if (x == 0) return std::signbit(x) ? "-0.0" : "0.0";
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, x, std::chars_format::scientific);
  std::string sci(buf, res.ptr);  // e.g. "-1.2345e+02" (shortest round-trip digits)
  bool neg = sci[0] == '-';
  if (neg) sci.erase(0, 1);
  size_t epos = sci.find('e');
  int exp = std::stoi(sci.substr(epos + 1));
  std::string digits;
  for (size_t i = 0; i < epos; ++i)
    if (sci[i] != '.') digits += sci[i];
  int decpt = exp + 1;  // digits d1 d2 ... with the point after decpt digits
  std::string out = neg ? "-" : "";
  if (decpt > -4 && decpt <= 16) {
    if (decpt <= 0) {
      out += "0.";
      out.append(size_t(-decpt), '0');
      out += digits;
    } else if (size_t(decpt) >= digits.size()) {
      out += digits;
      out.append(size_t(decpt) - digits.size(), '0');
      out += ".0";
    } else {
      out += digits.substr(0, size_t(decpt));
      out += '.';
      out += digits.substr(size_t(decpt));
    }
  } else {
    out += digits[0];
    if (digits.size() > 1) {
      out += '.';
      out += digits.substr(1);
    }
    std::snprintf(buf, sizeof buf, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    out += buf;
  }
  return out;
}

const char* type_name(const Value& v) {
  switch (v.t) {
    case VT::Undefined:
      return "Undefined";
    case VT::None:
      return "NoneType";
    case VT::Bool:
      return "bool";
    case VT::Int:
      return "int";
    case VT::Float:
      return "float";
    case VT::Str:
      return "str";
    case VT::List:
      return v.lk == ListKind::Tuple      ? "tuple"
             : v.lk == ListKind::Iterator ? "generator"
             : v.lk == ListKind::View     ? v.s.c_str()
                                          : "list";
    case VT::Dict:
      return "dict";
    case VT::Namespace:
      return "Namespace";
    case VT::Object:
      return "LoopContext";
    case VT::Func:
      return "function";
  }
  return "object";
}

std::string object_type_repr(const Value& v) {
  if (v.t == VT::None) return "None";
  return str(type_name(v), " object");
}

void fail_undefined(const Value& v) {
  throw_eval(v.s.empty() ? std::string("value is undefined") : v.s);
}

bool truthy(const Value& v) {
  switch (v.t) {
    case VT::Undefined:
    case VT::None:
      return false;
    case VT::Bool:
      return v.b;
    case VT::Int:
      return v.i != 0;
    case VT::Float:
      return v.f != 0;
    case VT::Str:
      return !v.s.empty();
    case VT::List:
      return v.lk == ListKind::Iterator || !v.l->empty();
    case VT::Dict:
      return !v.d->entries.empty();
    default:
      return true;
  }
}

std::string to_str(const Value& v) {
  if (v.t == VT::Str) return v.s;
  if (v.t == VT::Undefined) return "";
  return to_repr(v);
}

std::string to_repr(const Value& v) {
  switch (v.t) {
    case VT::Undefined:
      return "Undefined";
    case VT::None:
      return "None";
    case VT::Bool:
      return v.b ? "True" : "False";
    case VT::Int:
      return std::to_string(v.i);
    case VT::Float:
      return float_repr(v.f);
    case VT::Str:
      return py_str_repr(v.s);
    case VT::List: {
      if (v.lk == ListKind::Iterator) return "<generator object>";
      if (v.lk == ListKind::View) {
        Value inner = v;
        inner.lk = ListKind::List;
        return v.s + "(" + to_repr(inner) + ")";
      }
      bool tup = v.lk == ListKind::Tuple;
      std::string out = tup ? "(" : "[";
      for (size_t i = 0; i < v.l->size(); ++i) {
        if (i) out += ", ";
        out += to_repr((*v.l)[i]);
      }
      if (tup && v.l->size() == 1) out += ',';
      out += tup ? ")" : "]";
      return out;
    }
    case VT::Dict:
    case VT::Namespace: {
      std::string out = v.t == VT::Namespace ? "<Namespace {" : "{";
      bool first = true;
      for (const auto& [k, val] : v.d->entries) {
        if (!first) out += ", ";
        first = false;
        out += to_repr(k);
        out += ": ";
        out += to_repr(val);
      }
      out += v.t == VT::Namespace ? "}>" : "}";
      return out;
    }
    case VT::Object:
      return v.d->repr;
    case VT::Func:
      return str("<function ", v.fn->name, ">");
  }
  return "";
}

// ---- comparisons ----------------------------------------------------------------------------

double to_double(const Value& v) {
  switch (v.t) {
    case VT::Bool:
      return v.b ? 1.0 : 0.0;
    case VT::Int:
      return double(v.i);
    case VT::Float:
      return v.f;
    default:
      throw_eval(str("must be real number, not ", type_name(v)));
  }
}

namespace {
int64_t as_int(const Value& v) { return v.t == VT::Bool ? int64_t(v.b) : v.i; }
}  // namespace

bool py_eq(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.t == VT::Float || b.t == VT::Float) return to_double(a) == to_double(b);
    return as_int(a) == as_int(b);
  }
  if (a.t != b.t) return false;
  switch (a.t) {
    case VT::Undefined:
    case VT::None:
      return true;
    case VT::Str:
      return a.s == b.s;
    case VT::List: {
      if (a.lk != b.lk) return false;
      if (!a.is_seq_list()) return a.l == b.l;
      if (a.l->size() != b.l->size()) return false;
      for (size_t i = 0; i < a.l->size(); ++i)
        if (!py_eq((*a.l)[i], (*b.l)[i])) return false;
      return true;
    }
    case VT::Dict: {
      if (a.d->entries.size() != b.d->entries.size()) return false;
      for (const auto& [k, v] : a.d->entries) {
        const Value* o = b.d->find(k);
        if (!o || !py_eq(v, *o)) return false;
      }
      return true;
    }
    case VT::Namespace:
    case VT::Object:
      return a.d == b.d;
    case VT::Func:
      return a.fn == b.fn;
    default:
      return false;
  }
}

int py_cmp(const Value& a, const Value& b, const char* op) {
  if (a.is_undefined()) fail_undefined(a);
  if (b.is_undefined()) fail_undefined(b);
  if (a.is_number() && b.is_number()) {
    if (a.t == VT::Float || b.t == VT::Float) {
      double x = to_double(a), y = to_double(b);
      return x < y ? -1 : x > y ? 1 : 0;  // NaN compares as "equal" for ordering purposes
    }
    int64_t x = as_int(a), y = as_int(b);
    return x < y ? -1 : x > y ? 1 : 0;
  }
  if (a.t == VT::Str && b.t == VT::Str) {
    int c = a.s.compare(b.s);  // UTF-8 byte order is code point order
    return c < 0 ? -1 : c > 0 ? 1 : 0;
  }
  if (a.is_seq_list() && b.is_seq_list() && a.lk == b.lk) {
    size_t n = std::min(a.l->size(), b.l->size());
    for (size_t i = 0; i < n; ++i) {
      const Value& x = (*a.l)[i];
      const Value& y = (*b.l)[i];
      if (!py_eq(x, y)) return py_cmp(x, y, op);
    }
    return a.l->size() < b.l->size() ? -1 : a.l->size() > b.l->size() ? 1 : 0;
  }
  throw_eval(str("'", op, "' not supported between instances of '", type_name(a), "' and '",
                 type_name(b), "'"));
}

bool py_contains(const Value& c, const Value& item) {
  switch (c.t) {
    case VT::Undefined:
      return false;
    case VT::Str:
      if (item.t != VT::Str)
        throw_eval(str("'in <string>' requires string as left operand, not ", type_name(item)));
      return c.s.find(item.s) != std::string::npos;
    case VT::List:
      for (const Value& x : *c.l)
        if (py_eq(x, item)) return true;
      return false;
    case VT::Dict:
      return c.d->find(item) != nullptr;
    default:
      throw_eval(str("argument of type '", type_name(c), "' is not iterable"));
  }
}

int64_t py_len(const Value& v) {
  switch (v.t) {
    case VT::Undefined:
      return 0;
    case VT::Str:
      return int64_t(cp_count(v.s));
    case VT::List:
      if (v.lk == ListKind::Iterator) break;
      return int64_t(v.l->size());
    case VT::Dict:
      return int64_t(v.d->entries.size());
    default:
      break;
  }
  throw_eval(str("object of type '", type_name(v), "' has no len()"));
}

ValueList py_iter(const Value& v) {
  switch (v.t) {
    case VT::Undefined:
      return {};
    case VT::Str: {
      ValueList out;
      for (uint32_t c : to_cps(v.s)) out.push_back(Value::str(from_cps(&c, 1)));
      return out;
    }
    case VT::List:
      return *v.l;
    case VT::Dict: {
      ValueList out;
      out.reserve(v.d->entries.size());
      for (const auto& e : v.d->entries) out.push_back(e.first);
      return out;
    }
    default:
      throw_eval(str("'", type_name(v), "' object is not iterable"));
  }
}

// ---- JSON -----------------------------------------------------------------------------------

namespace {

template <class J>
Value from_json_impl(const J& j) {
  switch (j.type()) {
    case nlohmann::json::value_t::null:
      return Value::none();
    case nlohmann::json::value_t::boolean:
      return Value::boolean(j.template get<bool>());
    case nlohmann::json::value_t::number_integer:
      return Value::integer(j.template get<int64_t>());
    case nlohmann::json::value_t::number_unsigned: {
      uint64_t u = j.template get<uint64_t>();
      if (u > uint64_t(INT64_MAX)) return Value::real(double(u));
      return Value::integer(int64_t(u));
    }
    case nlohmann::json::value_t::number_float:
      return Value::real(j.template get<double>());
    case nlohmann::json::value_t::string:
      return Value::str(j.template get<std::string>());
    case nlohmann::json::value_t::array: {
      ValueList out;
      out.reserve(j.size());
      for (const auto& x : j) out.push_back(from_json_impl(x));
      return Value::list(std::move(out));
    }
    case nlohmann::json::value_t::object: {
      auto d = std::make_shared<DictData>();
      for (auto it = j.begin(); it != j.end(); ++it) d->set_str(it.key(), from_json_impl(*it));
      return Value::dict(std::move(d));
    }
    default:
      return Value::none();
  }
}

void json_escape(std::string& out, std::string_view s) {
  out += '"';
  char buf[8];
  for (char ch : s) {
    unsigned char c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (c < 0x20) {
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += ch;
        }
    }
  }
  out += '"';
}

std::string json_float(double x) {
  if (std::isnan(x)) return "NaN";
  if (std::isinf(x)) return x > 0 ? "Infinity" : "-Infinity";
  return float_repr(x);
}

struct JsonWriter {
  const std::string* indent;  // null: no indentation
  std::string item_sep, key_sep;
  bool sort_keys;
  std::string out;

  void newline(int level) {
    out += '\n';
    for (int i = 0; i < level; ++i) out += *indent;
  }

  void write(const Value& v, int level) {
    switch (v.t) {
      case VT::None:
        out += "null";
        return;
      case VT::Bool:
        out += v.b ? "true" : "false";
        return;
      case VT::Int:
        out += std::to_string(v.i);
        return;
      case VT::Float:
        out += json_float(v.f);
        return;
      case VT::Str:
        json_escape(out, v.s);
        return;
      case VT::List: {
        if (!v.is_seq_list()) break;
        if (v.l->empty()) {
          out += "[]";
          return;
        }
        out += '[';
        for (size_t i = 0; i < v.l->size(); ++i) {
          if (i) out += item_sep;
          if (indent) newline(level + 1);
          write((*v.l)[i], level + 1);
        }
        if (indent) newline(level);
        out += ']';
        return;
      }
      case VT::Dict: {
        if (v.d->entries.empty()) {
          out += "{}";
          return;
        }
        std::vector<const std::pair<Value, Value>*> items;
        for (const auto& e : v.d->entries) items.push_back(&e);
        if (sort_keys)
          std::stable_sort(items.begin(), items.end(),
                           [](auto* a, auto* b) { return py_cmp(a->first, b->first, "<") < 0; });
        out += '{';
        bool first = true;
        for (const auto* e : items) {
          if (!first) out += item_sep;
          first = false;
          if (indent) newline(level + 1);
          const Value& k = e->first;
          switch (k.t) {
            case VT::Str:
              json_escape(out, k.s);
              break;
            case VT::Bool:
              out += k.b ? "\"true\"" : "\"false\"";
              break;
            case VT::None:
              out += "\"null\"";
              break;
            case VT::Int:
              out += '"' + std::to_string(k.i) + '"';
              break;
            case VT::Float:
              out += '"' + json_float(k.f) + '"';
              break;
            default:
              throw_eval(str("keys must be str, int, float, bool or None, not ", type_name(k)));
          }
          out += key_sep;
          write(e->second, level + 1);
        }
        if (indent) newline(level);
        out += '}';
        return;
      }
      default:
        break;
    }
    throw_eval(str("Object of type ", type_name(v), " is not JSON serializable"));
  }
};

}  // namespace

Value from_json(const nlohmann::json& j) { return from_json_impl(j); }
Value from_json(const nlohmann::ordered_json& j) { return from_json_impl(j); }

std::string py_json_dumps(const Value& v, const Value& indent, const Value& separators,
                          bool sort_keys) {
  JsonWriter w;
  std::string ind;
  w.indent = nullptr;
  if (!indent.is_none() && !indent.is_undefined()) {
    if (indent.t == VT::Str)
      ind = indent.s;
    else if (indent.is_int_like())
      ind = std::string(size_t(std::max<int64_t>(0, indent.t == VT::Bool ? indent.b : indent.i)),
                        ' ');
    else
      throw_eval("tojson: indent must be an int or a string");
    w.indent = &ind;
  }
  w.item_sep = w.indent ? "," : ", ";
  w.key_sep = ": ";
  if (!separators.is_none() && !separators.is_undefined()) {
    if (separators.t != VT::List || separators.l->size() != 2 || (*separators.l)[0].t != VT::Str ||
        (*separators.l)[1].t != VT::Str)
      throw_eval("tojson: separators must be a pair of strings");
    w.item_sep = (*separators.l)[0].s;
    w.key_sep = (*separators.l)[1].s;
  }
  w.sort_keys = sort_keys;
  w.write(v, 0);
  return std::move(w.out);
}

}  // namespace qs::jinja::detail
