// Python operators on Jinja values: arithmetic, `%` formatting, slicing, and Jinja's
// getattr/getitem rules (sandboxed: no private or mutating attributes).
#include <cmath>
#include <cstdio>
#include <limits>

#include "qiusuo/jinja/internal.h"

namespace qs::jinja::detail {

namespace {

int64_t ival(const Value& v) { return v.t == VT::Bool ? int64_t(v.b) : v.i; }

[[noreturn]] void bad_operands(const char* op, const Value& a, const Value& b) {
  throw_eval(str("unsupported operand type(s) for ", op, ": '", type_name(a), "' and '",
                 type_name(b), "'"));
}

void check_defined(const Value& a, const Value& b) {
  if (a.is_undefined()) fail_undefined(a);
  if (b.is_undefined()) fail_undefined(b);
}

void checked(bool overflow) {
  if (overflow) throw_eval("integer overflow (values beyond 64 bits are not supported)");
}

Value repeat(const Value& seq, int64_t n) {
  if (seq.t == VT::Str) {
    std::string out;
    if (n > 0) {
      if (seq.s.size() * uint64_t(n) > (uint64_t(1) << 31)) throw_eval("repeated string too long");
      out.reserve(seq.s.size() * size_t(n));
      for (int64_t i = 0; i < n; ++i) out += seq.s;
    }
    return Value::str(std::move(out));
  }
  ValueList out;
  if (n > 0) {
    if (seq.l->size() * uint64_t(n) > (uint64_t(1) << 26)) throw_eval("repeated list too long");
    for (int64_t i = 0; i < n; ++i) out.insert(out.end(), seq.l->begin(), seq.l->end());
  }
  return Value::list(std::move(out), seq.lk);
}

bool is_seq(const Value& v) { return v.t == VT::Str || v.is_seq_list(); }

// Python's float divmod.
void float_divmod(double vx, double wx, double& floordiv, double& mod) {
  if (wx == 0) throw_eval("float division by zero");
  mod = std::fmod(vx, wx);
  double div = (vx - mod) / wx;
  if (mod != 0) {
    if ((wx < 0) != (mod < 0)) {
      mod += wx;
      div -= 1.0;
    }
  } else {
    mod = std::copysign(0.0, wx);
  }
  if (div != 0) {
    floordiv = std::floor(div);
    if (div - floordiv > 0.5) floordiv += 1.0;
  } else {
    floordiv = std::copysign(0.0, vx / wx);
  }
}

}  // namespace

Value py_add(const Value& a, const Value& b) {
  check_defined(a, b);
  if (a.is_number() && b.is_number()) {
    if (a.t == VT::Float || b.t == VT::Float) return Value::real(to_double(a) + to_double(b));
    int64_t r;
    checked(__builtin_add_overflow(ival(a), ival(b), &r));
    return Value::integer(r);
  }
  if (a.t == VT::Str && b.t == VT::Str) return Value::str(a.s + b.s);
  if (a.t == VT::Str)
    throw_eval(str("can only concatenate str (not \"", type_name(b), "\") to str"));
  if (a.is_seq_list()) {
    if (b.t != VT::List || b.lk != a.lk)
      throw_eval(str("can only concatenate ", type_name(a), " (not \"", type_name(b), "\") to ",
                     type_name(a)));
    ValueList out = *a.l;
    out.insert(out.end(), b.l->begin(), b.l->end());
    return Value::list(std::move(out), a.lk);
  }
  bad_operands("+", a, b);
}

Value py_sub(const Value& a, const Value& b) {
  check_defined(a, b);
  if (a.is_number() && b.is_number()) {
    if (a.t == VT::Float || b.t == VT::Float) return Value::real(to_double(a) - to_double(b));
    int64_t r;
    checked(__builtin_sub_overflow(ival(a), ival(b), &r));
    return Value::integer(r);
  }
  bad_operands("-", a, b);
}

Value py_mul(const Value& a, const Value& b) {
  check_defined(a, b);
  if (a.is_number() && b.is_number()) {
    if (a.t == VT::Float || b.t == VT::Float) return Value::real(to_double(a) * to_double(b));
    int64_t r;
    checked(__builtin_mul_overflow(ival(a), ival(b), &r));
    return Value::integer(r);
  }
  if (is_seq(a) && b.is_int_like()) return repeat(a, ival(b));
  if (is_seq(b) && a.is_int_like()) return repeat(b, ival(a));
  if (is_seq(a) || is_seq(b))
    throw_eval(
        str("can't multiply sequence by non-int of type '", type_name(is_seq(a) ? b : a), "'"));
  bad_operands("*", a, b);
}

Value py_truediv(const Value& a, const Value& b) {
  check_defined(a, b);
  if (!a.is_number() || !b.is_number()) bad_operands("/", a, b);
  double y = to_double(b);
  if (y == 0) throw_eval("division by zero");
  return Value::real(to_double(a) / y);
}

Value py_floordiv(const Value& a, const Value& b) {
  check_defined(a, b);
  if (!a.is_number() || !b.is_number()) bad_operands("//", a, b);
  if (a.t == VT::Float || b.t == VT::Float) {
    double fd, m;
    float_divmod(to_double(a), to_double(b), fd, m);
    return Value::real(fd);
  }
  int64_t x = ival(a), y = ival(b);
  if (y == 0) throw_eval("integer division or modulo by zero");
  if (x == std::numeric_limits<int64_t>::min() && y == -1) checked(true);
  int64_t q = x / y;
  if ((x % y != 0) && ((x < 0) != (y < 0))) --q;
  return Value::integer(q);
}

Value py_mod(const Value& a, const Value& b) {
  check_defined(a, b);
  if (a.t == VT::Str) return Value::str(py_percent_format(a.s, b));
  if (!a.is_number() || !b.is_number()) bad_operands("%", a, b);
  if (a.t == VT::Float || b.t == VT::Float) {
    double fd, m;
    if (to_double(b) == 0) throw_eval("float modulo");
    float_divmod(to_double(a), to_double(b), fd, m);
    return Value::real(m);
  }
  int64_t x = ival(a), y = ival(b);
  if (y == 0) throw_eval("integer division or modulo by zero");
  if (y == -1) return Value::integer(0);
  int64_t r = x % y;
  if (r != 0 && ((r < 0) != (y < 0))) r += y;
  return Value::integer(r);
}

Value py_pow(const Value& a, const Value& b) {
  check_defined(a, b);
  if (!a.is_number() || !b.is_number()) bad_operands("** or pow()", a, b);
  if (a.is_int_like() && b.is_int_like() && ival(b) >= 0) {
    int64_t base = ival(a), e = ival(b), r = 1;
    while (e > 0) {
      if (e & 1) checked(__builtin_mul_overflow(r, base, &r));
      e >>= 1;
      if (e > 0) checked(__builtin_mul_overflow(base, base, &base));
    }
    return Value::integer(r);
  }
  double x = to_double(a), y = to_double(b);
  if (x == 0 && y < 0) throw_eval("0.0 cannot be raised to a negative power");
  if (x < 0 && y != std::floor(y)) throw_eval("complex results are not supported");
  return Value::real(std::pow(x, y));
}

Value py_neg(const Value& a) {
  if (a.is_undefined()) fail_undefined(a);
  if (a.t == VT::Float) return Value::real(-a.f);
  if (a.is_int_like()) {
    int64_t r;
    checked(__builtin_sub_overflow(int64_t(0), ival(a), &r));
    return Value::integer(r);
  }
  throw_eval(str("bad operand type for unary -: '", type_name(a), "'"));
}

Value py_pos(const Value& a) {
  if (a.is_undefined()) fail_undefined(a);
  if (a.t == VT::Float) return a;
  if (a.is_int_like()) return Value::integer(ival(a));
  throw_eval(str("bad operand type for unary +: '", type_name(a), "'"));
}

// ---- printf-style formatting ----------------------------------------------------------------

std::string py_percent_format(const std::string& fmt, const Value& args) {
  ValueList pos;
  const DictData* mapping = nullptr;
  if (args.t == VT::List && args.lk == ListKind::Tuple)
    pos = *args.l;
  else if (args.t == VT::Dict)
    mapping = args.d.get(), pos.push_back(args);
  else
    pos.push_back(args);
  size_t next = 0;
  bool used_mapping = false;
  std::string out;
  size_t i = 0;
  while (i < fmt.size()) {
    char c = fmt[i];
    if (c != '%') {
      out += c;
      ++i;
      continue;
    }
    ++i;
    if (i >= fmt.size()) throw_eval("incomplete format");
    const Value* arg = nullptr;
    if (fmt[i] == '(') {
      size_t close = fmt.find(')', i);
      if (close == std::string::npos) throw_eval("incomplete format key");
      if (!mapping) throw_eval("format requires a mapping");
      const Value* v = mapping->find_str(fmt.substr(i + 1, close - i - 1));
      if (!v) throw_eval(str("KeyError: '", fmt.substr(i + 1, close - i - 1), "'"));
      arg = v;
      used_mapping = true;
      i = close + 1;
    }
    std::string flags;
    while (i < fmt.size() && std::string_view("-+ #0").find(fmt[i]) != std::string_view::npos)
      flags += fmt[i++];
    std::string width, prec;
    while (i < fmt.size() && std::isdigit(static_cast<unsigned char>(fmt[i]))) width += fmt[i++];
    if (i < fmt.size() && fmt[i] == '.') {
      ++i;
      prec = "";
      while (i < fmt.size() && std::isdigit(static_cast<unsigned char>(fmt[i]))) prec += fmt[i++];
      if (prec.empty()) prec = "0";
    }
    if (i < fmt.size() && fmt[i] == '*') throw_eval("'*' width in % formatting is not supported");
    if (i >= fmt.size()) throw_eval("incomplete format");
    char conv = fmt[i++];
    if (conv == '%') {
      out += '%';
      continue;
    }
    if (!arg) {
      if (next >= pos.size()) throw_eval("not enough arguments for format string");
      arg = &pos[next++];
    }
    std::string piece;
    char buf[512];
    switch (conv) {
      case 's':
      case 'r':
      case 'a': {
        piece = conv == 's' ? to_str(*arg) : to_repr(*arg);
        if (!prec.empty()) {
          auto cps = to_cps(piece);
          size_t p = size_t(std::stoul(prec));
          if (cps.size() > p) piece = from_cps(cps.data(), p);
        }
        size_t w = width.empty() ? 0 : size_t(std::stoul(width));
        size_t n = cp_count(piece);
        if (n < w) {
          if (flags.find('-') != std::string::npos)
            piece.append(w - n, ' ');
          else
            piece.insert(0, w - n, ' ');
        }
        break;
      }
      case 'd':
      case 'i':
      case 'u':
      case 'x':
      case 'X':
      case 'o':
      case 'c': {
        int64_t v;
        if (arg->is_int_like())
          v = ival(*arg);
        else if (arg->t == VT::Float && conv != 'c' && conv != 'x' && conv != 'X' && conv != 'o')
          v = int64_t(std::trunc(arg->f));
        else
          throw_eval(str("%", conv, " format: a real number is required, not ", type_name(*arg)));
        if (conv == 'c') {
          uint32_t cp = uint32_t(v);
          piece = from_cps(&cp, 1);
          break;
        }
        std::string f = "%" + flags + width + (prec.empty() ? "" : "." + prec) + "ll" +
                        (conv == 'i' || conv == 'u' ? 'd' : conv);
        std::snprintf(buf, sizeof buf, f.c_str(), (long long)v);
        piece = buf;
        break;
      }
      case 'f':
      case 'F':
      case 'e':
      case 'E':
      case 'g':
      case 'G': {
        if (!arg->is_number()) throw_eval(str("must be real number, not ", type_name(*arg)));
        std::string f = "%" + flags + width + "." + (prec.empty() ? "6" : prec) + conv;
        std::snprintf(buf, sizeof buf, f.c_str(), to_double(*arg));
        piece = buf;
        break;
      }
      default:
        throw_eval(str("unsupported format character '", conv, "'"));
    }
    out += piece;
  }
  if (!mapping && next < pos.size())
    throw_eval("not all arguments converted during string formatting");
  (void)used_mapping;
  return out;
}

// ---- slicing, getitem, getattr --------------------------------------------------------------

Value py_slice(const Value& v, const Value& start, const Value& stop, const Value& step) {
  auto idx = [](const Value& x, const char* what) -> std::optional<int64_t> {
    if (x.is_none() || x.is_undefined()) return std::nullopt;
    if (x.is_int_like()) return x.t == VT::Bool ? int64_t(x.b) : x.i;
    throw_eval(str("slice indices must be integers or None (", what, " is ", type_name(x), ")"));
  };
  std::optional<int64_t> a = idx(start, "start"), b = idx(stop, "stop"), s = idx(step, "step");
  int64_t st = s.value_or(1);
  if (st == 0) throw_eval("slice step cannot be zero");
  std::vector<uint32_t> cps;
  int64_t len;
  if (v.t == VT::Str) {
    cps = to_cps(v.s);
    len = int64_t(cps.size());
  } else if (v.is_seq_list()) {
    len = int64_t(v.l->size());
  } else {
    if (v.is_undefined()) fail_undefined(v);
    return Value::undefined(str("'", object_type_repr(v), "' object is not subscriptable"));
  }
  auto adjust = [&](std::optional<int64_t> x, bool is_start) -> int64_t {
    if (!x) return st > 0 ? (is_start ? 0 : len) : (is_start ? len - 1 : -1);
    int64_t p = *x;
    if (p < 0) {
      p += len;
      if (p < 0) p = st < 0 ? -1 : 0;
    } else if (p >= len) {
      p = st < 0 ? len - 1 : len;
    }
    return p;
  };
  int64_t lo = adjust(a, true), hi = adjust(b, false);
  std::vector<int64_t> picks;
  if (st > 0)
    for (int64_t k = lo; k < hi; k += st) picks.push_back(k);
  else
    for (int64_t k = lo; k > hi; k += st) picks.push_back(k);
  if (v.t == VT::Str) {
    std::vector<uint32_t> out;
    out.reserve(picks.size());
    for (int64_t k : picks) out.push_back(cps[size_t(k)]);
    return Value::str(from_cps(out));
  }
  ValueList out;
  out.reserve(picks.size());
  for (int64_t k : picks) out.push_back((*v.l)[size_t(k)]);
  return Value::list(std::move(out), v.lk);
}

namespace {

Value no_attribute(const Value& obj, const std::string& name) {
  return Value::undefined(str("'", object_type_repr(obj), "' has no attribute '", name, "'"));
}

Value no_element(const Value& obj, const Value& key) {
  if (key.t == VT::Str) return no_attribute(obj, key.s);
  return Value::undefined(str("'", object_type_repr(obj), "' has no element ", to_repr(key)));
}

// obj[key] in Python; nullopt when Python raises TypeError/LookupError.
std::optional<Value> subscript(const Value& obj, const Value& key) {
  switch (obj.t) {
    case VT::Dict:
      if (const Value* v = obj.d->find(key)) return *v;
      return std::nullopt;
    case VT::List:
    case VT::Str: {
      if (obj.t == VT::List && !obj.is_seq_list()) return std::nullopt;
      if (!key.is_int_like()) return std::nullopt;
      int64_t k = key.t == VT::Bool ? int64_t(key.b) : key.i;
      if (obj.t == VT::List) {
        int64_t n = int64_t(obj.l->size());
        if (k < 0) k += n;
        if (k < 0 || k >= n) return std::nullopt;
        return (*obj.l)[size_t(k)];
      }
      std::vector<uint32_t> cps = to_cps(obj.s);
      int64_t n = int64_t(cps.size());
      if (k < 0) k += n;
      if (k < 0 || k >= n) return std::nullopt;
      return Value::str(from_cps(&cps[size_t(k)], 1));
    }
    default:
      return std::nullopt;
  }
}

// getattr(obj, name) in Python (sandboxed); nullopt for AttributeError.
std::optional<Value> attribute(const Value& obj, const std::string& name) {
  switch (obj.t) {
    case VT::Namespace:
    case VT::Object:
      if (const Value* v = obj.d->find_str(name)) return *v;
      return std::nullopt;
    case VT::Str:
    case VT::List:
    case VT::Dict:
      return find_method(obj, name);
    default:
      return std::nullopt;
  }
}

}  // namespace

Value get_item(const Value& obj, const Value& key) {
  if (obj.is_undefined()) fail_undefined(obj);
  if (auto v = subscript(obj, key)) return std::move(*v);
  if (key.t == VT::Str)
    if (auto v = attribute(obj, key.s)) return std::move(*v);
  return no_element(obj, key);
}

Value get_attr(const Value& obj, const std::string& name) {
  if (obj.is_undefined()) fail_undefined(obj);
  if (auto v = attribute(obj, name)) return std::move(*v);
  if (auto v = subscript(obj, Value::str(name))) return std::move(*v);
  return no_attribute(obj, name);
}

}  // namespace qs::jinja::detail
