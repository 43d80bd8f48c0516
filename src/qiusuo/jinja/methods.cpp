// Python methods callable from templates on str, dict and list values (the immutable sandbox:
// mutating list/dict methods are refused), and the global functions: Jinja's range, dict,
// namespace, joiner, plus transformers' raise_exception and strftime_now.
#include <algorithm>
#include <cstdio>
#include <ctime>

#include "qiusuo/jinja/internal.h"

namespace qs::jinja::detail {

namespace {

using Cps = std::vector<uint32_t>;

int64_t to_int(const Value& v, const char* what) {
  if (v.t == VT::Bool) return v.b;
  if (v.t == VT::Int) return v.i;
  throw_eval(str("'", type_name(v), "' object cannot be interpreted as an integer (", what, ")"));
}

const std::string& need_str(const Value& v, const char* what) {
  if (v.t != VT::Str) {
    if (v.is_undefined()) fail_undefined(v);
    throw_eval(str(what, " must be str, not ", type_name(v)));
  }
  return v.s;
}

// Python's slice index adjustment for start/end arguments of find/count/startswith.
void adjust_range(const Binder& b, size_t si, size_t ei, int64_t len, int64_t& start,
                  int64_t& end) {
  start = 0;
  end = len;
  if (b.has(si) && !b.get(si).is_none()) start = to_int(b.get(si), "start");
  if (b.has(ei) && !b.get(ei).is_none()) end = to_int(b.get(ei), "end");
  if (start < 0) start = std::max<int64_t>(0, start + len);
  if (end < 0) end = std::max<int64_t>(0, end + len);
  if (end > len) end = len;
}

int64_t cps_find(const Cps& s, const Cps& sub, int64_t start, int64_t end, bool reverse) {
  if (start > int64_t(s.size()) || end - start < int64_t(sub.size())) return -1;
  int64_t last = end - int64_t(sub.size());
  if (!reverse) {
    for (int64_t i = start; i <= last; ++i)
      if (std::equal(sub.begin(), sub.end(), s.begin() + i)) return i;
  } else {
    for (int64_t i = last; i >= start; --i)
      if (std::equal(sub.begin(), sub.end(), s.begin() + i)) return i;
  }
  return -1;
}

ValueList split_ws(const Cps& s, int64_t maxsplit, bool from_right) {
  std::vector<std::string> parts;
  int64_t n = int64_t(s.size());
  int64_t maxcount = maxsplit < 0 ? INT64_MAX : maxsplit;
  if (!from_right) {
    int64_t i = 0;
    while (maxcount-- > 0) {
      while (i < n && py_isspace(s[size_t(i)])) ++i;
      if (i == n) break;
      int64_t j = i++;
      while (i < n && !py_isspace(s[size_t(i)])) ++i;
      parts.push_back(from_cps(s.data() + j, size_t(i - j)));
    }
    if (i < n) {
      while (i < n && py_isspace(s[size_t(i)])) ++i;
      if (i != n) parts.push_back(from_cps(s.data() + i, size_t(n - i)));
    }
  } else {
    int64_t i = n - 1;
    while (maxcount-- > 0) {
      while (i >= 0 && py_isspace(s[size_t(i)])) --i;
      if (i < 0) break;
      int64_t j = i--;
      while (i >= 0 && !py_isspace(s[size_t(i)])) --i;
      parts.push_back(from_cps(s.data() + i + 1, size_t(j - i)));
    }
    if (i >= 0) {
      while (i >= 0 && py_isspace(s[size_t(i)])) --i;
      if (i >= 0) parts.push_back(from_cps(s.data(), size_t(i + 1)));
    }
    std::reverse(parts.begin(), parts.end());
  }
  ValueList out;
  for (auto& p : parts) out.push_back(Value::str(std::move(p)));
  return out;
}

ValueList split_sep(const std::string& s, const std::string& sep, int64_t maxsplit,
                    bool from_right) {
  if (sep.empty()) throw_eval("empty separator");
  std::vector<std::string> parts;
  int64_t maxcount = maxsplit < 0 ? INT64_MAX : maxsplit;
  if (!from_right) {
    size_t pos = 0;
    while (maxcount-- > 0) {
      size_t k = s.find(sep, pos);
      if (k == std::string::npos) break;
      parts.push_back(s.substr(pos, k - pos));
      pos = k + sep.size();
    }
    parts.push_back(s.substr(pos));
  } else {
    size_t end = s.size();
    while (maxcount-- > 0 && end >= sep.size()) {
      size_t k = s.rfind(sep, end - sep.size());
      if (k == std::string::npos) break;
      parts.push_back(s.substr(k + sep.size(), end - k - sep.size()));
      end = k;
    }
    parts.push_back(s.substr(0, end));
    std::reverse(parts.begin(), parts.end());
  }
  ValueList out;
  for (auto& p : parts) out.push_back(Value::str(std::move(p)));
  return out;
}

std::string pad(const std::string& s, int64_t width, const Value* fill, char align) {
  uint32_t f = ' ';
  if (fill && !fill->is_none()) {
    Cps fc = to_cps(need_str(*fill, "fillchar"));
    if (fc.size() != 1) throw_eval("The fill character must be exactly one character long");
    f = fc[0];
  }
  int64_t len = int64_t(cp_count(s));
  int64_t marg = width - len;
  if (marg <= 0) return s;
  int64_t left = align == '<' ? 0 : align == '>' ? marg : marg / 2 + (marg & width & 1);
  std::string fs = from_cps(&f, 1), out;
  for (int64_t i = 0; i < left; ++i) out += fs;
  out += s;
  for (int64_t i = 0; i < marg - left; ++i) out += fs;
  return out;
}

// ---- str.format ----

std::string format_spec(const Value& v, const std::string& spec) {
  if (spec.empty()) return to_str(v);
  Cps sp = to_cps(spec);
  size_t i = 0;
  uint32_t fill = ' ';
  char align = 0;
  auto is_align = [](uint32_t c) { return c == '<' || c == '>' || c == '^' || c == '='; };
  if (sp.size() >= 2 && is_align(sp[1])) {
    fill = sp[0];
    align = char(sp[1]);
    i = 2;
  } else if (!sp.empty() && is_align(sp[0])) {
    align = char(sp[0]);
    i = 1;
  }
  char sign = 0;
  if (i < sp.size() && (sp[i] == '+' || sp[i] == '-' || sp[i] == ' ')) sign = char(sp[i++]);
  bool alt = false;
  if (i < sp.size() && sp[i] == '#') alt = true, ++i;
  bool zero = false;
  if (i < sp.size() && sp[i] == '0') zero = true, ++i;
  int64_t width = 0;
  while (i < sp.size() && sp[i] >= '0' && sp[i] <= '9') width = width * 10 + (sp[i++] - '0');
  char grouping = 0;
  if (i < sp.size() && (sp[i] == ',' || sp[i] == '_')) grouping = char(sp[i++]);
  int64_t prec = -1;
  if (i < sp.size() && sp[i] == '.') {
    ++i;
    prec = 0;
    while (i < sp.size() && sp[i] >= '0' && sp[i] <= '9') prec = prec * 10 + (sp[i++] - '0');
  }
  char type = 0;
  if (i < sp.size()) type = char(sp[i++]);
  if (i != sp.size() || grouping || alt) throw_unsupported(str("format spec '", spec, "'"));
  std::string body;
  bool numeric = false;
  char buf[512];
  if (type == 's' || (type == 0 && v.t == VT::Str)) {
    if (v.t != VT::Str)
      throw_eval(str("Unknown format code 's' for object of type '", type_name(v), "'"));
    body = v.s;
    if (prec >= 0) {
      Cps c = to_cps(body);
      if (int64_t(c.size()) > prec) body = from_cps(c.data(), size_t(prec));
    }
  } else if (v.is_number()) {
    numeric = true;
    if (type == 0 && v.t != VT::Float && prec < 0) type = 'd';
    if (type == 'd' || type == 'x' || type == 'X' || type == 'o' || type == 'b' || type == 'c') {
      if (!v.is_int_like())
        throw_eval(str("Unknown format code '", type, "' for object of type 'float'"));
      int64_t x = v.t == VT::Bool ? v.b : v.i;
      if (type == 'b') {
        uint64_t u = x < 0 ? uint64_t(-x) : uint64_t(x);
        std::string bits;
        do {
          bits.insert(bits.begin(), char('0' + (u & 1)));
          u >>= 1;
        } while (u);
        body = (x < 0 ? "-" : "") + bits;
      } else if (type == 'c') {
        uint32_t cp = uint32_t(x);
        body = from_cps(&cp, 1);
      } else {
        std::string f = std::string("%") + (sign && sign != '-' ? std::string(1, sign) : "") +
                        "ll" + (type == 'd' ? 'd' : type);
        std::snprintf(buf, sizeof buf, f.c_str(), (long long)x);
        body = buf;
        sign = 0;
      }
    } else {
      double x = to_double(v);
      char t = type ? type : 'g';
      if (t == '%') {
        x *= 100;
        t = 'f';
      }
      if (type == 0 && prec < 0) {
        body = v.t == VT::Float ? float_repr(x) : to_str(v);
      } else {
        std::string f = std::string("%") + (sign && sign != '-' ? std::string(1, sign) : "") + "." +
                        std::to_string(prec < 0 ? 6 : prec) + t;
        std::snprintf(buf, sizeof buf, f.c_str(), x);
        body = buf;
        sign = 0;
      }
      if (type == '%') body += '%';
    }
    if (sign == '+' && body[0] != '-') body = "+" + body;
    if (sign == ' ' && body[0] != '-') body = " " + body;
  } else {
    if (type != 0)
      throw_eval(str("Unknown format code '", type, "' for object of type '", type_name(v), "'"));
    body = to_str(v);
  }
  if (zero && !align) {
    align = numeric ? '=' : '<';
    fill = '0';
  }
  if (!align) align = numeric ? '>' : '<';
  int64_t len = int64_t(cp_count(body));
  if (len >= width) return body;
  std::string fs = from_cps(&fill, 1);
  int64_t marg = width - len;
  std::string out;
  auto rep = [&](int64_t n) {
    for (int64_t k = 0; k < n; ++k) out += fs;
  };
  if (align == '<') {
    out = body;
    rep(marg);
  } else if (align == '>') {
    rep(marg);
    out += body;
  } else if (align == '^') {
    rep(marg / 2);
    out += body;
    rep(marg - marg / 2);
  } else {  // '=': padding after the sign
    size_t signlen =
        (!body.empty() && (body[0] == '-' || body[0] == '+' || body[0] == ' ')) ? 1 : 0;
    out = body.substr(0, signlen);
    rep(marg);
    out += body.substr(signlen);
  }
  return out;
}

std::string str_format(const std::string& fmt, const CallArgs& a) {
  std::string out;
  size_t auto_idx = 0;
  size_t i = 0;
  while (i < fmt.size()) {
    char c = fmt[i];
    if (c == '}') {
      if (i + 1 < fmt.size() && fmt[i + 1] == '}') {
        out += '}';
        i += 2;
        continue;
      }
      throw_eval("Single '}' encountered in format string");
    }
    if (c != '{') {
      out += c;
      ++i;
      continue;
    }
    if (i + 1 < fmt.size() && fmt[i + 1] == '{') {
      out += '{';
      i += 2;
      continue;
    }
    size_t close = fmt.find('}', i);
    if (close == std::string::npos) throw_eval("Single '{' encountered in format string");
    std::string field = fmt.substr(i + 1, close - i - 1);
    if (field.find('{') != std::string::npos) throw_unsupported("nested str.format field");
    i = close + 1;
    std::string spec, conv;
    size_t colon = field.find(':');
    if (colon != std::string::npos) {
      spec = field.substr(colon + 1);
      field.resize(colon);
    }
    size_t bang = field.find('!');
    if (bang != std::string::npos) {
      conv = field.substr(bang + 1);
      field.resize(bang);
    }
    size_t name_end = field.find_first_of(".[");
    std::string name = field.substr(0, name_end);
    Value v;
    if (name.empty()) {
      if (auto_idx >= a.pos.size())
        throw_eval(str("Replacement index ", auto_idx, " out of range"));
      v = a.pos[auto_idx++];
    } else if (std::all_of(name.begin(), name.end(), [](char d) { return d >= '0' && d <= '9'; })) {
      size_t k = std::stoul(name);
      if (k >= a.pos.size()) throw_eval(str("Replacement index ", k, " out of range"));
      v = a.pos[k];
    } else {
      bool found = false;
      for (const auto& [key, x] : a.kw)
        if (key == name) {
          v = x;
          found = true;
        }
      if (!found) throw_eval(str("KeyError: '", name, "'"));
    }
    size_t p = name_end;
    while (p != std::string::npos && p < field.size()) {
      if (field[p] == '.') {
        size_t q = field.find_first_of(".[", p + 1);
        v = get_attr(v,
                     field.substr(p + 1, q == std::string::npos ? std::string::npos : q - p - 1));
        p = q;
      } else {
        size_t q = field.find(']', p);
        if (q == std::string::npos) throw_eval("Missing ']' in format string");
        std::string key = field.substr(p + 1, q - p - 1);
        bool digits = !key.empty() && std::all_of(key.begin(), key.end(),
                                                  [](char d) { return d >= '0' && d <= '9'; });
        v = get_item(v, digits ? Value::integer(std::stoll(key)) : Value::str(key));
        p = q + 1;
      }
    }
    if (conv == "r" || conv == "a")
      v = Value::str(to_repr(v));
    else if (conv == "s")
      v = Value::str(to_str(v));
    else if (!conv.empty())
      throw_eval(str("Unknown conversion specifier ", conv));
    out += format_spec(v, spec);
  }
  return out;
}

// ---- str methods ----

bool is_all(const std::string& s, bool (*pred)(uint32_t)) {
  Cps c = to_cps(s);
  return !c.empty() && std::all_of(c.begin(), c.end(), pred);
}

Value str_method(const std::string& name, const std::string& s, CallArgs& a) {
  auto str_list = [](ValueList v) { return Value::list(std::move(v)); };
  if (name == "upper" || name == "lower" || name == "title" || name == "capitalize" ||
      name == "swapcase" || name == "casefold") {
    Binder b(name, a, {});
    if (name == "upper") return Value::str(str_upper(s));
    if (name == "lower" || name == "casefold") return Value::str(str_lower(s));
    if (name == "title") return Value::str(str_title(s));
    if (name == "capitalize") return Value::str(str_capitalize(s));
    std::string out;
    for (uint32_t c : to_cps(s)) {
      uint32_t d = cp_isupper(c) ? cp_lower(c) : cp_islower(c) ? cp_upper(c) : c;
      out += from_cps(&d, 1);
    }
    return Value::str(out);
  }
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    Binder b(name, a, {"chars"});
    return Value::str(
        str_strip(s, b.has(0) ? &b.get(0) : nullptr, name != "rstrip", name != "lstrip"));
  }
  if (name == "split" || name == "rsplit") {
    Binder b(name, a, {"sep", "maxsplit"});
    int64_t maxsplit = b.has(1) ? to_int(b.get(1), "maxsplit") : -1;
    bool right = name == "rsplit";
    if (!b.has(0) || b.get(0).is_none()) return str_list(split_ws(to_cps(s), maxsplit, right));
    return str_list(split_sep(s, need_str(b.get(0), "sep"), maxsplit, right));
  }
  if (name == "splitlines") {
    Binder b(name, a, {"keepends"});
    ValueList out;
    for (auto& l : str_splitlines(s, b.has(0) && truthy(b.get(0)))) out.push_back(Value::str(l));
    return str_list(std::move(out));
  }
  if (name == "startswith" || name == "endswith") {
    Binder b(name, a, {"prefix", "start", "end"});
    if (!b.has(0)) throw_eval(str(name, "() takes at least 1 argument (0 given)"));
    Cps c = to_cps(s);
    int64_t start, end;
    adjust_range(b, 1, 2, int64_t(c.size()), start, end);
    ValueList cands;
    if (b.get(0).t == VT::List && b.get(0).lk == ListKind::Tuple)
      cands = *b.get(0).l;
    else if (b.get(0).t == VT::Str)
      cands.push_back(b.get(0));
    else
      throw_eval(str(name, " first arg must be str or a tuple of str, not ", type_name(b.get(0))));
    for (const Value& x : cands) {
      Cps p = to_cps(need_str(x, "prefix"));
      if (start > int64_t(c.size()) || end - start < int64_t(p.size())) continue;
      auto it = name == "startswith" ? c.begin() + start : c.begin() + (end - int64_t(p.size()));
      if (std::equal(p.begin(), p.end(), it)) return Value::boolean(true);
    }
    return Value::boolean(false);
  }
  if (name == "find" || name == "rfind" || name == "index" || name == "rindex" || name == "count") {
    Binder b(name, a, {"sub", "start", "end"});
    if (!b.has(0)) throw_eval(str(name, "() takes at least 1 argument (0 given)"));
    Cps c = to_cps(s), sub = to_cps(need_str(b.get(0), "substring"));
    int64_t start, end;
    adjust_range(b, 1, 2, int64_t(c.size()), start, end);
    if (name == "count") {
      if (start > int64_t(c.size()) || end < start) return Value::integer(0);
      if (sub.empty()) return Value::integer(end - start + 1);
      int64_t n = 0;
      for (int64_t i = start; i + int64_t(sub.size()) <= end;) {
        if (std::equal(sub.begin(), sub.end(), c.begin() + i)) {
          ++n;
          i += int64_t(sub.size());
        } else {
          ++i;
        }
      }
      return Value::integer(n);
    }
    int64_t r = cps_find(c, sub, start, end, name[0] == 'r');
    if (r < 0 && (name == "index" || name == "rindex")) throw_eval("substring not found");
    return Value::integer(r);
  }
  if (name == "replace") {
    Binder b(name, a, {"old", "new", "count"});
    if (!b.has(0) || !b.has(1)) throw_eval("replace() takes at least 2 arguments");
    int64_t count = b.has(2) ? to_int(b.get(2), "count") : -1;
    return Value::str(str_replace(s, need_str(b.get(0), "old"), need_str(b.get(1), "new"), count));
  }
  if (name == "join") {
    Binder b(name, a, {"iterable"});
    if (!b.has(0)) throw_eval("join() takes exactly one argument (0 given)");
    std::string out;
    size_t i = 0;
    for (const Value& x : py_iter(b.get(0))) {
      if (x.t != VT::Str)
        throw_eval(str("sequence item ", i, ": expected str instance, ", type_name(x), " found"));
      if (i++) out += s;
      out += x.s;
    }
    return Value::str(out);
  }
  if (name == "center" || name == "ljust" || name == "rjust") {
    Binder b(name, a, {"width", "fillchar"});
    if (!b.has(0)) throw_eval(str(name, "() takes at least 1 argument (0 given)"));
    char align = name == "center" ? '^' : name == "ljust" ? '<' : '>';
    return Value::str(pad(s, to_int(b.get(0), "width"), b.has(1) ? &b.get(1) : nullptr, align));
  }
  if (name == "zfill") {
    Binder b(name, a, {"width"});
    if (!b.has(0)) throw_eval("zfill() takes exactly one argument (0 given)");
    int64_t width = to_int(b.get(0), "width");
    int64_t len = int64_t(cp_count(s));
    if (len >= width) return Value::str(s);
    std::string zeros(size_t(width - len), '0');
    if (!s.empty() && (s[0] == '+' || s[0] == '-'))
      return Value::str(s.substr(0, 1) + zeros + s.substr(1));
    return Value::str(zeros + s);
  }
  if (name == "isdigit" || name == "isdecimal" || name == "isnumeric") {
    Binder b(name, a, {});
    return Value::boolean(is_all(s, cp_isdigit));
  }
  if (name == "isalpha") {
    Binder b(name, a, {});
    return Value::boolean(is_all(s, cp_isalpha));
  }
  if (name == "isalnum") {
    Binder b(name, a, {});
    return Value::boolean(is_all(s, cp_isalnum));
  }
  if (name == "isspace") {
    Binder b(name, a, {});
    return Value::boolean(is_all(s, py_isspace));
  }
  if (name == "islower" || name == "isupper") {
    Binder b(name, a, {});
    bool cased = false;
    for (uint32_t c : to_cps(s)) {
      if (name == "islower" ? cp_isupper(c) : cp_islower(c)) return Value::boolean(false);
      if (name == "islower" ? cp_islower(c) : cp_isupper(c)) cased = true;
    }
    return Value::boolean(cased);
  }
  if (name == "partition" || name == "rpartition") {
    Binder b(name, a, {"sep"});
    if (!b.has(0)) throw_eval(str(name, "() takes exactly one argument (0 given)"));
    const std::string& sep = need_str(b.get(0), "sep");
    if (sep.empty()) throw_eval("empty separator");
    size_t k = name == "partition" ? s.find(sep) : s.rfind(sep);
    if (k == std::string::npos)
      return name == "partition" ? Value::tuple({Value::str(s), Value::str(""), Value::str("")})
                                 : Value::tuple({Value::str(""), Value::str(""), Value::str(s)});
    return Value::tuple(
        {Value::str(s.substr(0, k)), Value::str(sep), Value::str(s.substr(k + sep.size()))});
  }
  if (name == "removeprefix" || name == "removesuffix") {
    Binder b(name, a, {"affix"});
    if (!b.has(0)) throw_eval(str(name, "() takes exactly one argument (0 given)"));
    const std::string& x = need_str(b.get(0), "affix");
    if (name == "removeprefix" && s.compare(0, x.size(), x) == 0)
      return Value::str(s.substr(x.size()));
    if (name == "removesuffix" && !x.empty() && s.size() >= x.size() &&
        s.compare(s.size() - x.size(), x.size(), x) == 0)
      return Value::str(s.substr(0, s.size() - x.size()));
    return Value::str(s);
  }
  if (name == "format") return Value::str(str_format(s, a));
  throw_unsupported(str("str.", name));
}

const char* const kStrMethods[] = {
    "upper",        "lower",       "title",     "capitalize", "swapcase",   "casefold",
    "strip",        "lstrip",      "rstrip",    "split",      "rsplit",     "splitlines",
    "startswith",   "endswith",    "find",      "rfind",      "index",      "rindex",
    "count",        "replace",     "join",      "center",     "ljust",      "rjust",
    "zfill",        "isdigit",     "isdecimal", "isnumeric",  "isalpha",    "isalnum",
    "isspace",      "islower",     "isupper",   "partition",  "rpartition", "removeprefix",
    "removesuffix", "format",      "encode",    "expandtabs", "format_map", "istitle",
    "isidentifier", "isprintable", "isascii",   "translate",  "maketrans"};

// ---- dict / list methods ----

Value dict_method(const std::string& name, const Value& self, CallArgs& a) {
  const DictData& d = *self.d;
  if (name == "items" || name == "keys" || name == "values") {
    Binder b(name, a, {});
    ValueList out;
    for (const auto& [k, v] : d.entries)
      out.push_back(name == "items" ? Value::tuple({k, v}) : name == "keys" ? k : v);
    Value view = Value::list(std::move(out), ListKind::View);
    view.s = "dict_" + name;
    return view;
  }
  if (name == "get") {
    Binder b(name, a, {"key", "default"});
    if (!b.has(0)) throw_eval("get expected at least 1 argument, got 0");
    if (const Value* v = d.find(b.get(0))) return *v;
    return b.get_or(1, Value::none());
  }
  if (name == "copy") {
    Binder b(name, a, {});
    return Value::dict(std::make_shared<DictData>(d));
  }
  throw_unsupported(str("dict.", name));
}

Value list_method(const std::string& name, const Value& self, CallArgs& a) {
  const ValueList& l = *self.l;
  if (name == "index") {
    Binder b(name, a, {"value", "start", "stop"});
    if (!b.has(0)) throw_eval("index expected at least 1 argument, got 0");
    int64_t start, end;
    adjust_range(b, 1, 2, int64_t(l.size()), start, end);
    for (int64_t i = start; i < end; ++i)
      if (py_eq(l[size_t(i)], b.get(0))) return Value::integer(i);
    throw_eval(str(to_repr(b.get(0)), " is not in list"));
  }
  if (name == "count") {
    Binder b(name, a, {"value"});
    if (!b.has(0)) throw_eval("count() takes exactly one argument (0 given)");
    int64_t n = 0;
    for (const Value& x : l) n += py_eq(x, b.get(0));
    return Value::integer(n);
  }
  if (name == "copy") {
    Binder b(name, a, {});
    return Value::list(l, self.lk);
  }
  throw_unsupported(str("list.", name));
}

const char* const kDictMethods[] = {"items", "keys", "values", "get", "copy"};
const char* const kDictUnsafe[] = {"pop", "popitem", "setdefault", "update", "clear"};
const char* const kListMethods[] = {"index", "count", "copy"};
const char* const kListUnsafe[] = {"append", "extend",  "insert", "pop",
                                   "remove", "reverse", "sort",   "clear"};

template <size_t N>
bool in_list(const char* const (&names)[N], const std::string& n) {
  for (const char* x : names)
    if (n == x) return true;
  return false;
}

Value unsafe(const std::string& name, const char* type) {
  return Value::undefined(
      str("access to attribute '", name, "' of '", type, "' object is unsafe."));
}

// ---- globals ----

Value g_range(Interp&, CallArgs& a) {
  if (!a.kw.empty()) throw_eval("range() takes no keyword arguments");
  if (a.pos.empty() || a.pos.size() > 3)
    throw_eval(str("range expected 1 to 3 arguments, got ", a.pos.size()));
  int64_t start = 0, stop, step = 1;
  if (a.pos.size() == 1) {
    stop = to_int(a.pos[0], "range");
  } else {
    start = to_int(a.pos[0], "range");
    stop = to_int(a.pos[1], "range");
    if (a.pos.size() == 3) step = to_int(a.pos[2], "range");
  }
  if (step == 0) throw_eval("range() arg 3 must not be zero");
  int64_t len = 0;
  if (step > 0 && start < stop) len = (stop - start + step - 1) / step;
  if (step < 0 && start > stop) len = (start - stop - step - 1) / -step;
  if (len > 100000)
    throw_eval("Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
  ValueList out;
  out.reserve(size_t(len));
  for (int64_t i = 0; i < len; ++i) out.push_back(Value::integer(start + i * step));
  return Value::list(std::move(out));
}

std::shared_ptr<DictData> dict_from_args(const char* fname, CallArgs& a) {
  auto d = std::make_shared<DictData>();
  if (a.pos.size() > 1) throw_eval(str(fname, " expected at most 1 argument, got ", a.pos.size()));
  if (!a.pos.empty()) {
    const Value& src = a.pos[0];
    if (src.t == VT::Dict || src.t == VT::Namespace) {
      for (const auto& [k, v] : src.d->entries) d->set(k, v);
    } else {
      for (const Value& item : py_iter(src)) {
        ValueList kv = py_iter(item);
        if (kv.size() != 2)
          throw_eval("dictionary update sequence element has wrong length; 2 is required");
        d->set(kv[0], kv[1]);
      }
    }
  }
  for (auto& [k, v] : a.kw) d->set_str(k, v);
  return d;
}

Value g_dict(Interp&, CallArgs& a) { return Value::dict(dict_from_args("dict", a)); }

Value g_namespace(Interp& in, CallArgs& a) {
  Value v;
  v.t = VT::Namespace;
  v.d = dict_from_args("namespace", a);
  in.track(v.d);
  return v;
}

Value g_joiner(Interp&, CallArgs& a) {
  Binder b("joiner", a, {"sep"});
  std::string sep = b.has(0) ? to_str(b.get(0)) : ", ";
  auto used = std::make_shared<bool>(false);
  return Value::func("joiner", [sep, used](Interp&, CallArgs&) {
    if (!*used) {
      *used = true;
      return Value::str("");
    }
    return Value::str(sep);
  });
}

Value g_raise_exception(Interp&, CallArgs& a) {
  Binder b("raise_exception", a, {"message"});
  qs::fail(ErrorKind::Invalid, b.has(0) ? to_str(b.get(0)) : std::string());
}

Value g_strftime_now(Interp&, CallArgs& a) {
  Binder b("strftime_now", a, {"format"});
  if (!b.has(0)) throw_eval("strftime_now() missing required argument 'format'");
  const std::string& fmt = need_str(b.get(0), "format");
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  localtime_r(&now, &tm);
  if (fmt.empty()) return Value::str("");
  for (size_t cap = 256; cap <= (1u << 20); cap *= 4) {
    std::string buf(cap, '\0');
    size_t n = std::strftime(buf.data(), cap, fmt.c_str(), &tm);
    if (n > 0) {
      buf.resize(n);
      return Value::str(buf);
    }
  }
  return Value::str("");
}

Value g_unsupported(const char* name) {
  return Value::func(
      name, [name](Interp&, CallArgs&) -> Value { throw_unsupported(str("global ", name)); });
}

}  // namespace

std::optional<Value> find_method(const Value& obj, const std::string& name) {
  if (obj.t == VT::Str) {
    if (!in_list(kStrMethods, name)) return std::nullopt;
    std::string self = obj.s;
    return Value::func(name,
                       [name, self](Interp&, CallArgs& a) { return str_method(name, self, a); });
  }
  if (obj.t == VT::Dict) {
    if (in_list(kDictUnsafe, name)) return unsafe(name, "dict");
    if (!in_list(kDictMethods, name)) return std::nullopt;
    Value self = obj;
    return Value::func(name,
                       [name, self](Interp&, CallArgs& a) { return dict_method(name, self, a); });
  }
  if (obj.is_seq_list()) {
    bool tuple = obj.lk == ListKind::Tuple;
    if (!tuple && in_list(kListUnsafe, name)) return unsafe(name, "list");
    if (!in_list(kListMethods, name) || (tuple && name == "copy")) return std::nullopt;
    Value self = obj;
    return Value::func(name,
                       [name, self](Interp&, CallArgs& a) { return list_method(name, self, a); });
  }
  return std::nullopt;
}

const Value* find_global(std::string_view name) {
  static const std::vector<std::pair<std::string, Value>> globals = [] {
    std::vector<std::pair<std::string, Value>> g;
    g.emplace_back("range", Value::func("range", g_range));
    g.emplace_back("dict", Value::func("dict", g_dict));
    g.emplace_back("namespace", Value::func("namespace", g_namespace));
    g.emplace_back("joiner", Value::func("joiner", g_joiner));
    g.emplace_back("cycler", g_unsupported("cycler"));
    g.emplace_back("lipsum", g_unsupported("lipsum"));
    g.emplace_back("raise_exception", Value::func("raise_exception", g_raise_exception));
    g.emplace_back("strftime_now", Value::func("strftime_now", g_strftime_now));
    return g;
  }();
  for (const auto& [k, v] : globals)
    if (k == name) return &v;
  return nullptr;
}

}  // namespace qs::jinja::detail
