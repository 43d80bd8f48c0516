// Jinja's built-in filters and tests (jinja2/filters.py, jinja2/tests.py) plus transformers'
// `tojson` (json.dumps with ensure_ascii=False), each with the Python behaviour of the original.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "qiusuo/jinja/internal.h"

namespace qs::jinja::detail {

namespace {

bool is_py_none(const Value& v) { return v.is_none() || v.is_undefined(); }

int64_t as_int(const Value& v, const char* what) {
  if (v.t == VT::Bool) return v.b;
  if (v.t == VT::Int) return v.i;
  throw_eval(str("'", type_name(v), "' object cannot be interpreted as an integer (", what, ")"));
}

// make_attrgetter: "a.b.0" -> successive environment.getitem lookups.
std::vector<Value> attribute_parts(const Value& attr) {
  std::vector<Value> parts;
  if (is_py_none(attr)) return parts;
  if (attr.t != VT::Str) {
    parts.push_back(attr);
    return parts;
  }
  size_t start = 0;
  while (true) {
    size_t dot = attr.s.find('.', start);
    std::string p =
        attr.s.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    bool digits =
        !p.empty() && std::all_of(p.begin(), p.end(), [](char c) { return c >= '0' && c <= '9'; });
    parts.push_back(digits ? Value::integer(std::strtoll(p.c_str(), nullptr, 10)) : Value::str(p));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return parts;
}

Value get_path(Value item, const std::vector<Value>& parts, const Value* dflt = nullptr) {
  for (const Value& p : parts) {
    item = get_item(item, p);
    if (dflt && item.is_undefined()) item = *dflt;
  }
  return item;
}

Value ignore_case(const Value& v, bool case_sensitive) {
  if (!case_sensitive && v.t == VT::Str) return Value::str(str_lower(v.s));
  return v;
}

Value iterator(ValueList items) { return Value::list(std::move(items), ListKind::Iterator); }

// Strict str for filters declared as taking `str` that do `s += ...` (indent).
const std::string& need_str(const Value& v, const char* filter) {
  if (v.is_undefined()) fail_undefined(v);
  if (v.t != VT::Str) throw_eval(str(filter, ": expected a string, got ", type_name(v)));
  return v.s;
}

// ---- Python number parsing (int(str, base), float(str)) ----

std::optional<int64_t> parse_py_int(const std::string& text, int base) {
  std::string s = str_strip(text, nullptr, true, true);
  size_t i = 0;
  bool neg = false;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) neg = s[i++] == '-';
  auto prefix_base = [&](char c) {
    c = char(c | 32);
    return c == 'x' ? 16 : c == 'o' ? 8 : c == 'b' ? 2 : 0;
  };
  if (i + 1 < s.size() && s[i] == '0' && prefix_base(s[i + 1]) &&
      (base == 0 || base == prefix_base(s[i + 1]))) {
    base = prefix_base(s[i + 1]);
    i += 2;
    if (i < s.size() && s[i] == '_') ++i;
  } else if (base == 0) {
    base = 10;
    // base 0 forbids leading zeros in non-zero decimals
    if (i + 1 < s.size() && s[i] == '0') {
      for (size_t k = i; k < s.size(); ++k)
        if (s[k] != '0' && s[k] != '_') return std::nullopt;
    }
  }
  if (base < 2 || base > 36 || i >= s.size()) return std::nullopt;
  int64_t v = 0;
  bool last_us = true;  // no leading underscore
  for (; i < s.size(); ++i) {
    char c = s[i];
    if (c == '_') {
      if (last_us) return std::nullopt;
      last_us = true;
      continue;
    }
    int d = (c >= '0' && c <= '9')               ? c - '0'
            : (c | 32) >= 'a' && (c | 32) <= 'z' ? (c | 32) - 'a' + 10
                                                 : 99;
    if (d >= base) return std::nullopt;
    if (__builtin_mul_overflow(v, int64_t(base), &v) || __builtin_add_overflow(v, int64_t(d), &v))
      return std::nullopt;
    last_us = false;
  }
  if (last_us) return std::nullopt;
  return neg ? -v : v;
}

std::optional<double> parse_py_float(const std::string& text) {
  std::string s = str_strip(text, nullptr, true, true);
  std::string t;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '_') {
      bool ok = i > 0 && i + 1 < s.size() && std::isdigit(static_cast<unsigned char>(s[i - 1])) &&
                std::isdigit(static_cast<unsigned char>(s[i + 1]));
      if (!ok) return std::nullopt;
      continue;
    }
    t += s[i];
  }
  if (t.empty()) return std::nullopt;
  std::string low = str_lower(t);
  size_t k = (low[0] == '+' || low[0] == '-') ? 1 : 0;
  std::string body = low.substr(k);
  if (body == "inf" || body == "infinity" || body == "nan") {
    double v = body == "nan" ? NAN : INFINITY;
    return low[0] == '-' ? -v : v;
  }
  for (char c : body)
    if (!(std::isdigit(static_cast<unsigned char>(c)) || c == '.' || c == 'e' || c == '+' ||
          c == '-'))
      return std::nullopt;
  char* end = nullptr;
  double v = std::strtod(t.c_str(), &end);
  if (end != t.c_str() + t.size()) return std::nullopt;
  return v;
}

// ---- filters ----

Value f_abs(Interp&, const Value& v, CallArgs& a) {
  Binder b("abs", a, {});
  if (v.t == VT::Float) return Value::real(std::fabs(v.f));
  if (v.is_int_like()) {
    int64_t x = v.t == VT::Bool ? v.b : v.i;
    return Value::integer(x < 0 ? -x : x);
  }
  if (v.is_undefined()) fail_undefined(v);
  throw_eval(str("bad operand type for abs(): '", type_name(v), "'"));
}

Value f_attr(Interp&, const Value& v, CallArgs& a) {
  Binder b("attr", a, {"name"});
  if (!b.has(0)) throw_eval("attr() missing required argument 'name'");
  const Value& name = b.get(0);
  if (name.t != VT::Str) throw_eval("attribute name must be a string");
  if (v.is_undefined()) fail_undefined(v);
  if (v.t == VT::Namespace || v.t == VT::Object) {
    if (const Value* x = v.d->find_str(name.s)) return *x;
  } else if (auto m = find_method(v, name.s)) {
    return *m;
  }
  return Value::undefined(str("'", object_type_repr(v), "' has no attribute '", name.s, "'"));
}

Value f_batch(Interp&, const Value& v, CallArgs& a) {
  Binder b("batch", a, {"linecount", "fill_with"});
  if (!b.has(0)) throw_eval("batch() missing required argument 'linecount'");
  int64_t n = as_int(b.get(0), "linecount");
  if (n <= 0) throw_eval("batch(): linecount must be positive");
  ValueList items = py_iter(v), out, tmp;
  for (Value& x : items) {
    if (int64_t(tmp.size()) == n) {
      out.push_back(Value::list(std::move(tmp)));
      tmp.clear();
    }
    tmp.push_back(std::move(x));
  }
  if (!tmp.empty()) {
    if (b.has(1) && !b.get(1).is_none())
      while (int64_t(tmp.size()) < n) tmp.push_back(b.get(1));
    out.push_back(Value::list(std::move(tmp)));
  }
  return iterator(std::move(out));
}

Value f_capitalize(Interp&, const Value& v, CallArgs& a) {
  Binder b("capitalize", a, {});
  return Value::str(str_capitalize(to_str(v)));
}

Value f_center(Interp&, const Value& v, CallArgs& a) {
  Binder b("center", a, {"width"});
  int64_t width = b.has(0) ? as_int(b.get(0), "width") : 80;
  std::string s = to_str(v);
  int64_t len = int64_t(cp_count(s));
  int64_t marg = width - len;
  if (marg <= 0) return Value::str(s);
  int64_t left = marg / 2 + (marg & width & 1);
  return Value::str(std::string(size_t(left), ' ') + s + std::string(size_t(marg - left), ' '));
}

Value f_length(Interp&, const Value& v, CallArgs& a) {
  Binder b("length", a, {});
  return Value::integer(py_len(v));
}

Value f_default(Interp&, const Value& v, CallArgs& a) {
  Binder b("default", a, {"default_value", "boolean"});
  Value dflt = b.get_or(0, Value::str(""));
  bool boolean = b.has(1) && truthy(b.get(1));
  if (v.is_undefined() || (boolean && !truthy(v))) return dflt;
  return v;
}

Value f_dictsort(Interp&, const Value& v, CallArgs& a) {
  Binder b("dictsort", a, {"case_sensitive", "by", "reverse"});
  bool cs = b.has(0) && truthy(b.get(0));
  std::string by = b.has(1) ? to_str(b.get(1)) : "key";
  bool rev = b.has(2) && truthy(b.get(2));
  if (by != "key" && by != "value") throw_eval("You can only sort by either \"key\" or \"value\"");
  if (v.is_undefined()) fail_undefined(v);
  if (v.t != VT::Dict) throw_eval(str("'", type_name(v), "' object has no attribute 'items'"));
  std::vector<std::pair<Value, Value>> items = v.d->entries;
  size_t pos = by == "key" ? 0 : 1;
  auto key = [&](const std::pair<Value, Value>& p) {
    return ignore_case(pos ? p.second : p.first, cs);
  };
  std::stable_sort(items.begin(), items.end(), [&](const auto& x, const auto& y) {
    return rev ? py_cmp(key(y), key(x), "<") < 0 : py_cmp(key(x), key(y), "<") < 0;
  });
  ValueList out;
  for (auto& [k, val] : items) out.push_back(Value::tuple({k, val}));
  return Value::list(std::move(out));
}

Value f_escape(Interp&, const Value& v, CallArgs& a) {
  Binder b("escape", a, {});
  return Value::str(html_escape(to_str(v)));
}

Value f_first(Interp&, const Value& v, CallArgs& a) {
  Binder b("first", a, {});
  ValueList items = py_iter(v);
  if (items.empty()) return Value::undefined("No first item, sequence was empty.");
  return items[0];
}

Value f_last(Interp&, const Value& v, CallArgs& a) {
  Binder b("last", a, {});
  if (v.t == VT::List && v.lk == ListKind::Iterator)
    throw_eval("'generator' object is not reversible");
  ValueList items = py_iter(v);
  if (items.empty()) return Value::undefined("No last item, sequence was empty.");
  return items.back();
}

Value f_float(Interp&, const Value& v, CallArgs& a) {
  Binder b("float", a, {"default"});
  Value dflt = b.get_or(0, Value::real(0.0));
  switch (v.t) {
    case VT::Undefined:
      fail_undefined(v);
    case VT::Float:
      return v;
    case VT::Int:
    case VT::Bool:
      return Value::real(to_double(v));
    case VT::Str:
      if (auto x = parse_py_float(v.s)) return Value::real(*x);
      return dflt;
    default:
      return dflt;
  }
}

Value f_format(Interp&, const Value& v, CallArgs& a) {
  if (!a.pos.empty() && !a.kw.empty())
    throw_eval("can't handle positional and keyword arguments at the same time");
  Value args;
  if (!a.kw.empty()) {
    auto d = std::make_shared<DictData>();
    for (auto& [k, x] : a.kw) d->set_str(k, x);
    args = Value::dict(d);
  } else {
    args = Value::tuple(a.pos);
  }
  return Value::str(py_percent_format(to_str(v), args));
}

Value f_indent(Interp&, const Value& v, CallArgs& a) {
  Binder b("indent", a, {"width", "first", "blank"});
  std::string indention;
  if (b.has(0) && b.get(0).t == VT::Str)
    indention = b.get(0).s;
  else
    indention =
        std::string(size_t(std::max<int64_t>(0, b.has(0) ? as_int(b.get(0), "width") : 4)), ' ');
  bool first = b.has(1) && truthy(b.get(1));
  bool blank = b.has(2) && truthy(b.get(2));
  std::string s = need_str(v, "indent") + "\n";
  std::vector<std::string> lines = str_splitlines(s);
  std::string rv;
  if (blank) {
    for (size_t i = 0; i < lines.size(); ++i) {
      if (i) rv += "\n" + indention;
      rv += lines[i];
    }
  } else {
    rv = lines.empty() ? "" : lines[0];
    for (size_t i = 1; i < lines.size(); ++i) {
      rv += "\n";
      if (!lines[i].empty()) rv += indention;
      rv += lines[i];
    }
  }
  if (first) rv = indention + rv;
  return Value::str(std::move(rv));
}

Value f_int(Interp&, const Value& v, CallArgs& a) {
  Binder b("int", a, {"default", "base"});
  Value dflt = b.get_or(0, Value::integer(0));
  int base = b.has(1) ? int(as_int(b.get(1), "base")) : 10;
  switch (v.t) {
    case VT::Undefined:
      fail_undefined(v);
    case VT::Int:
      return v;
    case VT::Bool:
      return Value::integer(v.b);
    case VT::Float:
      if (!std::isfinite(v.f)) throw_eval("cannot convert float infinity or NaN to integer");
      return Value::integer(int64_t(std::trunc(v.f)));
    case VT::Str: {
      if (auto x = parse_py_int(v.s, base)) return Value::integer(*x);
      if (auto f = parse_py_float(v.s))
        if (std::isfinite(*f)) return Value::integer(int64_t(std::trunc(*f)));
      return dflt;
    }
    default:
      return dflt;
  }
}

Value f_items(Interp&, const Value& v, CallArgs& a) {
  Binder b("items", a, {});
  if (v.is_undefined()) return iterator({});
  if (v.t != VT::Dict) throw_eval("Can only get item pairs from a mapping.");
  ValueList out;
  for (const auto& [k, x] : v.d->entries) out.push_back(Value::tuple({k, x}));
  return iterator(std::move(out));
}

Value f_join(Interp&, const Value& v, CallArgs& a) {
  Binder b("join", a, {"d", "attribute"});
  std::string sep = b.has(0) ? to_str(b.get(0)) : "";
  std::vector<Value> parts = b.has(1) ? attribute_parts(b.get(1)) : std::vector<Value>{};
  std::string out;
  bool first = true;
  for (const Value& x : py_iter(v)) {
    if (!first) out += sep;
    first = false;
    out += to_str(parts.empty() ? x : get_path(x, parts));
  }
  return Value::str(std::move(out));
}

Value f_list(Interp&, const Value& v, CallArgs& a) {
  Binder b("list", a, {});
  return Value::list(py_iter(v));
}

Value f_lower(Interp&, const Value& v, CallArgs& a) {
  Binder b("lower", a, {});
  return Value::str(str_lower(to_str(v)));
}

Value f_upper(Interp&, const Value& v, CallArgs& a) {
  Binder b("upper", a, {});
  return Value::str(str_upper(to_str(v)));
}

Value f_map(Interp& in, const Value& v, CallArgs& a) {
  ValueList items = py_iter(v);
  ValueList out;
  if (a.pos.empty()) {
    const Value* attr = nullptr;
    const Value* dflt = nullptr;
    for (const auto& [k, x] : a.kw) {
      if (k == "attribute")
        attr = &x;
      else if (k == "default")
        dflt = &x;
      else
        throw_eval(str("Unexpected keyword argument '", k, "'"));
    }
    if (!attr) throw_eval("map requires a filter argument");
    std::vector<Value> parts = attribute_parts(*attr);
    const Value* d = (dflt && !dflt->is_none()) ? dflt : nullptr;
    for (const Value& x : items) out.push_back(get_path(x, parts, d));
    return iterator(std::move(out));
  }
  if (a.pos[0].t != VT::Str) throw_eval("map: filter name must be a string");
  std::string name = a.pos[0].s;
  CallArgs rest;
  rest.pos.assign(a.pos.begin() + 1, a.pos.end());
  rest.kw = a.kw;
  for (const Value& x : items) {
    CallArgs copy = rest;
    out.push_back(apply_filter(in, name, x, copy));
  }
  return iterator(std::move(out));
}

Value min_max(const Value& v, CallArgs& a, bool is_max) {
  Binder b(is_max ? "max" : "min", a, {"case_sensitive", "attribute"});
  bool cs = b.has(0) && truthy(b.get(0));
  std::vector<Value> parts = b.has(1) ? attribute_parts(b.get(1)) : std::vector<Value>{};
  ValueList items = py_iter(v);
  if (items.empty()) return Value::undefined("No aggregated item, sequence was empty.");
  size_t best = 0;
  Value best_key = ignore_case(get_path(items[0], parts), cs);
  for (size_t i = 1; i < items.size(); ++i) {
    Value k = ignore_case(get_path(items[i], parts), cs);
    int c = py_cmp(k, best_key, is_max ? ">" : "<");
    if (is_max ? c > 0 : c < 0) {
      best = i;
      best_key = std::move(k);
    }
  }
  return items[best];
}
Value f_max(Interp&, const Value& v, CallArgs& a) { return min_max(v, a, true); }
Value f_min(Interp&, const Value& v, CallArgs& a) { return min_max(v, a, false); }

Value select_reject(Interp& in, const Value& v, CallArgs& a, bool lookup_attr, bool select) {
  if (!a.kw.empty()) throw_eval("select/reject filters take no keyword arguments");
  size_t off = 0;
  std::vector<Value> parts;
  if (lookup_attr) {
    if (a.pos.empty()) throw_eval("Missing parameter for attribute name");
    parts = attribute_parts(a.pos[0]);
    off = 1;
  }
  bool has_test = a.pos.size() > off;
  std::string test;
  CallArgs targs;
  if (has_test) {
    if (a.pos[off].t != VT::Str) throw_eval("test name must be a string");
    test = a.pos[off].s;
    targs.pos.assign(a.pos.begin() + long(off) + 1, a.pos.end());
  }
  ValueList out;
  for (const Value& item : py_iter(v)) {
    Value x = lookup_attr ? get_path(item, parts) : item;
    bool r;
    if (has_test) {
      CallArgs copy = targs;
      r = apply_test(in, test, x, copy);
    } else {
      r = truthy(x);
    }
    if (r == select) out.push_back(item);
  }
  return iterator(std::move(out));
}
Value f_select(Interp& in, const Value& v, CallArgs& a) {
  return select_reject(in, v, a, false, true);
}
Value f_reject(Interp& in, const Value& v, CallArgs& a) {
  return select_reject(in, v, a, false, false);
}
Value f_selectattr(Interp& in, const Value& v, CallArgs& a) {
  return select_reject(in, v, a, true, true);
}
Value f_rejectattr(Interp& in, const Value& v, CallArgs& a) {
  return select_reject(in, v, a, true, false);
}

Value f_replace(Interp&, const Value& v, CallArgs& a) {
  Binder b("replace", a, {"old", "new", "count"});
  if (!b.has(0) || !b.has(1)) throw_eval("replace() missing required arguments 'old' and 'new'");
  int64_t count = (b.has(2) && !b.get(2).is_none()) ? as_int(b.get(2), "count") : -1;
  return Value::str(str_replace(to_str(v), to_str(b.get(0)), to_str(b.get(1)), count));
}

Value f_reverse(Interp&, const Value& v, CallArgs& a) {
  Binder b("reverse", a, {});
  if (v.t == VT::Str) {
    std::vector<uint32_t> cps = to_cps(v.s);
    std::reverse(cps.begin(), cps.end());
    return Value::str(from_cps(cps));
  }
  ValueList items = py_iter(v);
  std::reverse(items.begin(), items.end());
  if (v.t == VT::List && v.lk == ListKind::Iterator) return Value::list(std::move(items));
  return iterator(std::move(items));
}

Value f_round(Interp&, const Value& v, CallArgs& a) {
  Binder b("round", a, {"precision", "method"});
  int64_t prec = b.has(0) ? as_int(b.get(0), "precision") : 0;
  std::string method = b.has(1) ? to_str(b.get(1)) : "common";
  if (method != "common" && method != "ceil" && method != "floor")
    throw_eval("method must be common, ceil or floor");
  if (v.is_undefined()) fail_undefined(v);
  if (!v.is_number()) throw_eval(str("type ", type_name(v), " doesn't define __round__ method"));
  if (method == "common") {
    if (v.is_int_like()) {
      int64_t x = v.t == VT::Bool ? v.b : v.i;
      if (prec >= 0) return Value::integer(x);
      int64_t p = 1;
      for (int64_t k = 0; k < -prec && p < INT64_MAX / 10; ++k) p *= 10;
      double q = std::nearbyint(double(x) / double(p));  // half-even
      return Value::integer(int64_t(q) * p);
    }
    double x = v.f;
    if (!std::isfinite(x)) return v;
    if (prec > 300) return v;
    if (prec >= 0) {
      char buf[400];
      std::snprintf(buf, sizeof buf, "%.*f", int(prec), x);  // correctly rounded, like CPython
      return Value::real(std::strtod(buf, nullptr));
    }
    double p = std::pow(10.0, double(-prec));
    return Value::real(std::nearbyint(x / p) * p);
  }
  double scale = std::pow(10.0, double(prec));
  double x = to_double(v) * scale;
  double r = method == "ceil" ? std::ceil(x) : std::floor(x);
  return Value::real(r / scale);
}

Value f_safe(Interp&, const Value& v, CallArgs& a) {
  Binder b("safe", a, {});
  return Value::str(to_str(v));
}

Value f_slice(Interp&, const Value& v, CallArgs& a) {
  Binder b("slice", a, {"slices", "fill_with"});
  if (!b.has(0)) throw_eval("slice() missing required argument 'slices'");
  int64_t slices = as_int(b.get(0), "slices");
  if (slices <= 0) throw_eval("slice(): slices must be positive");
  ValueList seq = py_iter(v), out;
  int64_t length = int64_t(seq.size());
  int64_t per = length / slices, extra = length % slices, offset = 0;
  for (int64_t n = 0; n < slices; ++n) {
    int64_t start = offset + n * per;
    if (n < extra) ++offset;
    int64_t end = offset + (n + 1) * per;
    ValueList tmp(seq.begin() + start, seq.begin() + end);
    if (b.has(1) && !b.get(1).is_none() && n >= extra) tmp.push_back(b.get(1));
    out.push_back(Value::list(std::move(tmp)));
  }
  return iterator(std::move(out));
}

Value f_sort(Interp&, const Value& v, CallArgs& a) {
  Binder b("sort", a, {"reverse", "case_sensitive", "attribute"});
  bool rev = b.has(0) && truthy(b.get(0));
  bool cs = b.has(1) && truthy(b.get(1));
  ValueList items = py_iter(v);
  // Comma separated attributes: compare the list of keys.
  std::vector<std::vector<Value>> attrs;
  if (b.has(2) && !is_py_none(b.get(2))) {
    const Value& at = b.get(2);
    if (at.t == VT::Str) {
      size_t start = 0;
      while (true) {
        size_t comma = at.s.find(',', start);
        attrs.push_back(attribute_parts(Value::str(
            at.s.substr(start, comma == std::string::npos ? std::string::npos : comma - start))));
        if (comma == std::string::npos) break;
        start = comma + 1;
      }
    } else {
      attrs.push_back(attribute_parts(at));
    }
  }
  std::vector<Value> keys;
  keys.reserve(items.size());
  for (const Value& x : items) {
    if (attrs.empty()) {
      keys.push_back(Value::list({ignore_case(x, cs)}));
    } else {
      ValueList k;
      for (const auto& p : attrs) k.push_back(ignore_case(get_path(x, p), cs));
      keys.push_back(Value::list(std::move(k)));
    }
  }
  std::vector<size_t> order(items.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t x, size_t y) {
    return rev ? py_cmp(keys[y], keys[x], "<") < 0 : py_cmp(keys[x], keys[y], "<") < 0;
  });
  ValueList out;
  out.reserve(items.size());
  for (size_t i : order) out.push_back(items[i]);
  return Value::list(std::move(out));
}

Value f_string(Interp&, const Value& v, CallArgs& a) {
  Binder b("string", a, {});
  return Value::str(to_str(v));
}

Value f_sum(Interp&, const Value& v, CallArgs& a) {
  Binder b("sum", a, {"attribute", "start"});
  std::vector<Value> parts = b.has(0) ? attribute_parts(b.get(0)) : std::vector<Value>{};
  Value acc = b.get_or(1, Value::integer(0));
  for (const Value& x : py_iter(v)) acc = py_add(acc, parts.empty() ? x : get_path(x, parts));
  return acc;
}

Value f_title(Interp&, const Value& v, CallArgs& a) {
  Binder b("title", a, {});
  // "".join(item[0].upper() + item[1:].lower() for item in re.split(r"([-\s({\[<]+)", s) if item)
  std::vector<uint32_t> cps = to_cps(to_str(v));
  auto is_sep = [](uint32_t c) {
    return c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || py_isspace(c);
  };
  std::string out;
  size_t i = 0;
  while (i < cps.size()) {
    size_t j = i;
    bool sep = is_sep(cps[i]);
    while (j < cps.size() && is_sep(cps[j]) == sep) ++j;
    out += str_upper(from_cps(&cps[i], 1));
    out += str_lower(from_cps(cps.data() + i + 1, j - i - 1));
    i = j;
  }
  return Value::str(std::move(out));
}

Value f_tojson(Interp&, const Value& v, CallArgs& a) {
  Binder b("tojson", a, {"ensure_ascii", "indent", "separators", "sort_keys"});
  bool ensure_ascii = b.has(0) && truthy(b.get(0));
  std::string s = py_json_dumps(v, b.get_or(1, Value::none()), b.get_or(2, Value::none()),
                                b.has(3) && truthy(b.get(3)));
  if (ensure_ascii) {
    std::string out;
    char buf[16];
    for (uint32_t c : to_cps(s)) {
      if (c < 0x80) {
        out += char(c);
      } else if (c < 0x10000) {
        std::snprintf(buf, sizeof buf, "\\u%04x", c);
        out += buf;
      } else {
        uint32_t x = c - 0x10000;
        std::snprintf(buf, sizeof buf, "\\u%04x\\u%04x", 0xD800 + (x >> 10), 0xDC00 + (x & 0x3FF));
        out += buf;
      }
    }
    s = std::move(out);
  }
  return Value::str(std::move(s));
}

Value f_trim(Interp&, const Value& v, CallArgs& a) {
  Binder b("trim", a, {"chars"});
  return Value::str(str_strip(to_str(v), b.has(0) ? &b.get(0) : nullptr, true, true));
}

Value f_truncate(Interp&, const Value& v, CallArgs& a) {
  Binder b("truncate", a, {"length", "killwords", "end", "leeway"});
  int64_t length = b.has(0) ? as_int(b.get(0), "length") : 255;
  bool killwords = b.has(1) && truthy(b.get(1));
  std::string end = b.has(2) ? to_str(b.get(2)) : "...";
  int64_t leeway = (b.has(3) && !b.get(3).is_none()) ? as_int(b.get(3), "leeway") : 5;
  int64_t end_len = int64_t(cp_count(end));
  if (length < end_len) throw_eval(str("expected length >= ", end_len, ", got ", length));
  if (leeway < 0) throw_eval(str("expected leeway >= 0, got ", leeway));
  if (py_len(v) <= length + leeway) return v;
  std::vector<uint32_t> cps = to_cps(to_str(v));
  std::string head = from_cps(cps.data(), size_t(length - end_len));
  if (killwords) return Value::str(head + end);
  size_t sp = head.rfind(' ');
  if (sp != std::string::npos) head.resize(sp);
  return Value::str(head + end);
}

Value f_unique(Interp&, const Value& v, CallArgs& a) {
  Binder b("unique", a, {"case_sensitive", "attribute"});
  bool cs = b.has(0) && truthy(b.get(0));
  std::vector<Value> parts = b.has(1) ? attribute_parts(b.get(1)) : std::vector<Value>{};
  ValueList seen, out;
  for (const Value& x : py_iter(v)) {
    Value key = ignore_case(get_path(x, parts), cs);
    bool dup = false;
    for (const Value& s : seen)
      if (py_eq(s, key)) {
        dup = true;
        break;
      }
    if (dup) continue;
    seen.push_back(std::move(key));
    out.push_back(x);
  }
  return iterator(std::move(out));
}

Value f_wordcount(Interp&, const Value& v, CallArgs& a) {
  Binder b("wordcount", a, {});
  int64_t n = 0;
  bool in_word = false;
  for (uint32_t c : to_cps(to_str(v))) {
    bool w = c == '_' || cp_isalnum(c);
    if (w && !in_word) ++n;
    in_word = w;
  }
  return Value::integer(n);
}

struct FilterEntry {
  const char* name;
  FilterFn fn;
};

const FilterEntry kFilters[] = {
    {"abs", f_abs},
    {"attr", f_attr},
    {"batch", f_batch},
    {"capitalize", f_capitalize},
    {"center", f_center},
    {"count", f_length},
    {"d", f_default},
    {"default", f_default},
    {"dictsort", f_dictsort},
    {"e", f_escape},
    {"escape", f_escape},
    {"forceescape", f_escape},
    {"first", f_first},
    {"float", f_float},
    {"format", f_format},
    {"indent", f_indent},
    {"int", f_int},
    {"items", f_items},
    {"join", f_join},
    {"last", f_last},
    {"length", f_length},
    {"list", f_list},
    {"lower", f_lower},
    {"map", f_map},
    {"max", f_max},
    {"min", f_min},
    {"reject", f_reject},
    {"rejectattr", f_rejectattr},
    {"replace", f_replace},
    {"reverse", f_reverse},
    {"round", f_round},
    {"safe", f_safe},
    {"select", f_select},
    {"selectattr", f_selectattr},
    {"slice", f_slice},
    {"sort", f_sort},
    {"string", f_string},
    {"sum", f_sum},
    {"title", f_title},
    {"tojson", f_tojson},
    {"trim", f_trim},
    {"truncate", f_truncate},
    {"unique", f_unique},
    {"upper", f_upper},
    {"wordcount", f_wordcount},
};

const char* const kUnsupportedFilters[] = {"filesizeformat", "groupby",   "pprint",
                                           "random",         "striptags", "urlencode",
                                           "urlize",         "wordwrap",  "xmlattr"};

// ---- tests ----

bool need_arg(const CallArgs& a, const char* test) {
  if (a.pos.empty() && a.kw.empty()) throw_eval(str("test '", test, "' requires an argument"));
  return true;
}
const Value& arg0(const CallArgs& a) { return a.pos.empty() ? a.kw[0].second : a.pos[0]; }

bool t_defined(Interp&, const Value& v, CallArgs&) { return !v.is_undefined(); }
bool t_undefined(Interp&, const Value& v, CallArgs&) { return v.is_undefined(); }
bool t_none(Interp&, const Value& v, CallArgs&) { return v.is_none(); }
bool t_boolean(Interp&, const Value& v, CallArgs&) { return v.t == VT::Bool; }
bool t_true(Interp&, const Value& v, CallArgs&) { return v.t == VT::Bool && v.b; }
bool t_false(Interp&, const Value& v, CallArgs&) { return v.t == VT::Bool && !v.b; }
bool t_integer(Interp&, const Value& v, CallArgs&) { return v.t == VT::Int; }
bool t_float(Interp&, const Value& v, CallArgs&) { return v.t == VT::Float; }
bool t_number(Interp&, const Value& v, CallArgs&) { return v.is_number(); }
bool t_string(Interp&, const Value& v, CallArgs&) { return v.t == VT::Str; }
bool t_mapping(Interp&, const Value& v, CallArgs&) { return v.t == VT::Dict; }
bool t_iterable(Interp&, const Value& v, CallArgs&) {
  return v.t == VT::Str || v.t == VT::List || v.t == VT::Dict || v.is_undefined();
}
bool t_sequence(Interp&, const Value& v, CallArgs&) {
  return v.t == VT::Str || v.is_seq_list() || v.t == VT::Dict || v.is_undefined();
}
bool t_callable(Interp&, const Value& v, CallArgs&) { return v.t == VT::Func; }
bool t_escaped(Interp&, const Value&, CallArgs&) { return false; }
bool t_odd(Interp&, const Value& v, CallArgs&) {
  return py_eq(py_mod(v, Value::integer(2)), Value::integer(1));
}
bool t_even(Interp&, const Value& v, CallArgs&) {
  return py_eq(py_mod(v, Value::integer(2)), Value::integer(0));
}
bool t_divisibleby(Interp&, const Value& v, CallArgs& a) {
  need_arg(a, "divisibleby");
  return py_eq(py_mod(v, arg0(a)), Value::integer(0));
}
bool t_eq(Interp&, const Value& v, CallArgs& a) {
  need_arg(a, "eq");
  return py_eq(v, arg0(a));
}
bool t_ne(Interp&, const Value& v, CallArgs& a) {
  need_arg(a, "ne");
  return !py_eq(v, arg0(a));
}
bool t_lt(Interp&, const Value& v, CallArgs& a) {
  need_arg(a, "lt");
  return py_cmp(v, arg0(a), "<") < 0;
}
bool t_le(Interp&, const Value& v, CallArgs& a) {
  need_arg(a, "le");
  return py_cmp(v, arg0(a), "<=") <= 0;
}
bool t_gt(Interp&, const Value& v, CallArgs& a) {
  need_arg(a, "gt");
  return py_cmp(v, arg0(a), ">") > 0;
}
bool t_ge(Interp&, const Value& v, CallArgs& a) {
  need_arg(a, "ge");
  return py_cmp(v, arg0(a), ">=") >= 0;
}
bool t_in(Interp&, const Value& v, CallArgs& a) {
  need_arg(a, "in");
  return py_contains(arg0(a), v);
}
bool t_sameas(Interp&, const Value& v, CallArgs& a) {
  need_arg(a, "sameas");
  const Value& o = arg0(a);
  if (v.t != o.t) return false;
  switch (v.t) {
    case VT::None:
    case VT::Undefined:
      return true;
    case VT::Bool:
      return v.b == o.b;
    case VT::Int:
      return v.i == o.i && v.i >= -5 && v.i <= 256;  // CPython's small-int cache
    case VT::List:
      return v.l == o.l;
    case VT::Dict:
    case VT::Namespace:
    case VT::Object:
      return v.d == o.d;
    case VT::Func:
      return v.fn == o.fn;
    default:
      return false;
  }
}
bool t_lower(Interp&, const Value& v, CallArgs&) {
  bool cased = false;
  for (uint32_t c : to_cps(to_str(v))) {
    if (cp_isupper(c)) return false;
    if (cp_islower(c)) cased = true;
  }
  return cased;
}
bool t_upper(Interp&, const Value& v, CallArgs&) {
  bool cased = false;
  for (uint32_t c : to_cps(to_str(v))) {
    if (cp_islower(c)) return false;
    if (cp_isupper(c)) cased = true;
  }
  return cased;
}
bool t_filter(Interp&, const Value& v, CallArgs&) { return v.t == VT::Str && find_filter(v.s); }
bool t_test(Interp&, const Value& v, CallArgs&) { return v.t == VT::Str && find_test(v.s); }

struct TestEntry {
  const char* name;
  TestFn fn;
};

const TestEntry kTests[] = {
    {"boolean", t_boolean},
    {"callable", t_callable},
    {"defined", t_defined},
    {"divisibleby", t_divisibleby},
    {"eq", t_eq},
    {"equalto", t_eq},
    {"==", t_eq},
    {"escaped", t_escaped},
    {"even", t_even},
    {"false", t_false},
    {"filter", t_filter},
    {"float", t_float},
    {"ge", t_ge},
    {">=", t_ge},
    {"gt", t_gt},
    {"greaterthan", t_gt},
    {">", t_gt},
    {"in", t_in},
    {"integer", t_integer},
    {"iterable", t_iterable},
    {"le", t_le},
    {"<=", t_le},
    {"lower", t_lower},
    {"lt", t_lt},
    {"lessthan", t_lt},
    {"<", t_lt},
    {"mapping", t_mapping},
    {"ne", t_ne},
    {"!=", t_ne},
    {"none", t_none},
    {"number", t_number},
    {"odd", t_odd},
    {"sameas", t_sameas},
    {"sequence", t_sequence},
    {"string", t_string},
    {"test", t_test},
    {"true", t_true},
    {"undefined", t_undefined},
    {"upper", t_upper},
};

}  // namespace

FilterFn find_filter(std::string_view name) {
  for (const auto& e : kFilters)
    if (name == e.name) return e.fn;
  return nullptr;
}

TestFn find_test(std::string_view name) {
  for (const auto& e : kTests)
    if (name == e.name) return e.fn;
  return nullptr;
}

bool is_unsupported_filter(std::string_view name) {
  for (const char* n : kUnsupportedFilters)
    if (name == n) return true;
  return false;
}

Value apply_filter(Interp& in, std::string_view name, const Value& v, CallArgs& args) {
  FilterFn f = find_filter(name);
  if (!f) {
    if (is_unsupported_filter(name)) throw_unsupported(str("filter ", name));
    throw_eval(str("no filter named '", name, "'"));
  }
  return f(in, v, args);
}

bool apply_test(Interp& in, std::string_view name, const Value& v, CallArgs& args) {
  TestFn t = find_test(name);
  if (!t) throw_eval(str("no test named '", name, "'"));
  return t(in, v, args);
}

}  // namespace qs::jinja::detail
