// SVG text building and round-number axes (see svg.h). Plain string building with snprintf in
// the C locale: the same chart always gives the same bytes.
#include "qiusuo/plot/svg.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "qiusuo/core/error.h"
#include "qiusuo/io/file.h"
#include "qiusuo/plot/chart.h"

namespace qs::plot::detail {

double clamp_value(double v) {
  if (std::isnan(v)) return v;
  return std::clamp(v, -kMaxAbs, kMaxAbs);
}

std::string esc(std::string_view s) {
  std::string o;
  o.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      case '\'': o += "&apos;"; break;
      default:
        // XML 1.0 forbids most C0 controls even escaped.
        if (static_cast<unsigned char>(c) < 0x20 && c != '\t' && c != '\n' && c != '\r') o += ' ';
        else o += c;
    }
  }
  // Invalid UTF-8 would make the document unreadable: replace each bad byte with U+FFFD.
  std::string v;
  v.reserve(o.size());
  for (size_t i = 0; i < o.size();) {
    const auto b = static_cast<unsigned char>(o[i]);
    size_t n = b < 0x80 ? 1 : (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : (b >> 3) == 30 ? 4 : 0;
    bool ok = n > 0 && i + n <= o.size();
    for (size_t k = 1; ok && k < n; ++k) ok = (static_cast<unsigned char>(o[i + k]) & 0xC0) == 0x80;
    if (ok && n == 2) ok = b >= 0xC2;
    if (ok && n == 3) {
      const auto b1 = static_cast<unsigned char>(o[i + 1]);
      ok = !(b == 0xE0 && b1 < 0xA0) && !(b == 0xED && b1 >= 0xA0);
    }
    if (ok && n == 4) {
      const auto b1 = static_cast<unsigned char>(o[i + 1]);
      ok = b <= 0xF4 && !(b == 0xF0 && b1 < 0x90) && !(b == 0xF4 && b1 >= 0x90);
    }
    if (!ok) {
      v += "\uFFFD";
      ++i;
      continue;
    }
    v.append(o, i, n);
    i += n;
  }
  return v;
}

std::string num(double v) {
  if (!std::isfinite(v)) v = 0;
  v = std::clamp(v, -1e6, 1e6);
  char b[32];
  std::snprintf(b, sizeof b, "%.2f", v);
  if (std::string_view(b) == "-0.00") return "0.00";
  return b;
}

size_t text_width_chars(std::string_view s) {
  size_t n = 0;
  for (char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

std::string ellipsize(std::string_view s, size_t max_chars) {
  if (text_width_chars(s) <= max_chars) return std::string(s);
  size_t i = 0, n = 0;
  while (i < s.size() && n + 1 < max_chars) {
    ++i;
    while (i < s.size() && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) ++i;
    ++n;
  }
  return std::string(s.substr(0, i)) + "\u2026";
}

Svg::Svg(int w, int h) {
  o_ = str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" ",
           "width=\"", w, "\" height=\"", h, "\" viewBox=\"0 0 ", w, " ", h,
           "\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\" font-size=\"12\">\n",
           "<rect width=\"", w, "\" height=\"", h, "\" fill=\"#ffffff\"/>\n");
}

void Svg::text(double x, double y, std::string_view s, std::string_view attrs) {
  o_ += str("<text x=\"", num(x), "\" y=\"", num(y), "\"", attrs.empty() ? "" : " ", attrs, ">", esc(s), "</text>\n");
}

void Svg::line(double x1, double y1, double x2, double y2, std::string_view attrs) {
  o_ += str("<line x1=\"", num(x1), "\" y1=\"", num(y1), "\" x2=\"", num(x2), "\" y2=\"", num(y2), "\"",
            attrs.empty() ? "" : " ", attrs, "/>\n");
}

void Svg::rect(double x, double y, double w, double h, std::string_view attrs) {
  o_ += str("<rect x=\"", num(x), "\" y=\"", num(y), "\" width=\"", num(std::max(0.0, w)), "\" height=\"",
            num(std::max(0.0, h)), "\"", attrs.empty() ? "" : " ", attrs, "/>\n");
}

void Svg::title(double width, std::string_view t) {
  text(width / 2, 22, t, "class=\"title\" text-anchor=\"middle\" font-size=\"15\" font-weight=\"bold\"");
}

void Svg::y_label(double x, double y, std::string_view label, std::string_view attrs) {
  o_ += str("<text class=\"axis-label\" transform=\"translate(", num(x), ",", num(y), ") rotate(-90)\" ",
            "text-anchor=\"middle\"", attrs.empty() ? "" : " ", attrs, ">", esc(label), "</text>\n");
}

void Svg::no_data(double x, double y) {
  text(x, y, "no data", "class=\"no-data\" text-anchor=\"middle\" fill=\"#888888\" font-size=\"14\"");
}

std::string Svg::finish() {
  o_ += "</svg>\n";
  return std::move(o_);
}

// ---- ticks -------------------------------------------------------------------------------------

double NiceStep::value() const { return e >= 0 ? m * std::pow(10.0, e) : m / std::pow(10.0, -e); }
double NiceStep::times(double k) const {
  return e >= 0 ? k * m * std::pow(10.0, e) : (k * m) / std::pow(10.0, -e);
}

NiceStep nice_step(double raw) {
  if (!(raw > 0) || !std::isfinite(raw)) return {};
  const int e = int(std::floor(std::log10(raw)));
  const double f = raw / std::pow(10.0, e);
  return {f < 1.5 ? 1.0 : f < 3 ? 2.0 : f < 7 ? 5.0 : 10.0, e};
}

std::string tick_label(double v, double step) {
  if (std::fabs(v) < step * 1e-6) v = 0;
  char b[48];
  const double a = std::fabs(v);
  if (v != 0 && (a >= 1e6 || a < 1e-4)) {
    // Significant digits enough to tell ticks `step` apart (1e+17 vs 1.000000000000001e+17).
    const int sig = std::clamp(int(std::floor(std::log10(a)) - std::floor(std::log10(step) + 1e-9)) + 1, 3, 17);
    std::snprintf(b, sizeof b, "%.*g", sig, v);
  } else {
    const int dec = std::max(0, int(-std::floor(std::log10(step) + 1e-9)));
    std::snprintf(b, sizeof b, "%.*f", std::min(dec, 10), v);
  }
  return b;
}

std::string Axis::label(double v) const { return tick_label(v, step); }

Axis linear_axis(double lo, double hi, int target) {
  Axis a;
  if (!std::isfinite(lo) || !std::isfinite(hi) || hi < lo) lo = 0, hi = 1;
  lo = clamp_value(lo);
  hi = clamp_value(hi);
  // One value (or a span below double resolution): widen around it.
  const double mag = std::max(std::fabs(lo), std::fabs(hi));
  if (!(hi - lo > mag * 1e-12)) {
    const double c = lo / 2 + hi / 2, half = c == 0 ? 1.0 : std::fabs(c) * 0.1;
    lo = c - half;
    hi = c + half;
  }
  const NiceStep st = nice_step((hi - lo) / std::max(1, target));
  a.step = st.value();
  const double k0 = std::floor(lo / a.step + 1e-9), k1 = std::ceil(hi / a.step - 1e-9);
  a.lo = k0 == 0 ? 0.0 : st.times(k0);
  a.hi = k1 == 0 ? 0.0 : st.times(k1);
  if (!(a.hi > a.lo) || !std::isfinite(a.hi - a.lo)) {  // rounding out overflowed (|v| near kMaxAbs)
    a.lo = lo;
    a.hi = hi;
    a.ticks = {lo, hi};
    return a;
  }
  for (double k = k0; k <= k1 && a.ticks.size() < 100; k += 1) a.ticks.push_back(k == 0 ? 0.0 : st.times(k));
  return a;
}

}  // namespace qs::plot::detail

namespace qs::plot {

namespace {
void write_file(const std::string& path, const std::string& svg) {
  const auto slash = path.find_last_of('/');
  if (slash != std::string::npos && slash > 0) make_dirs(path.substr(0, slash));
  write_text_file_atomic(path, svg);
}
}  // namespace

void write_svg(const std::string& path, const LineChart& chart) { write_file(path, to_svg(chart)); }
void write_svg(const std::string& path, const BarChart& chart) { write_file(path, to_svg(chart)); }
void write_svg(const std::string& path, const Heatmap& chart) { write_file(path, to_svg(chart)); }

std::vector<double> nice_ticks(double lo, double hi, int target) {
  std::vector<double> t;
  if (!std::isfinite(lo) || !std::isfinite(hi) || hi < lo) return t;
  if (hi == lo) return {lo};
  if (!std::isfinite(hi - lo)) {  // |lo|, |hi| near DBL_MAX: ticks of a quarter of the range, scaled
    t = nice_ticks(lo / 4, hi / 4, target);
    for (double& v : t) v *= 4;
    return t;
  }
  const detail::NiceStep st = detail::nice_step((hi - lo) / std::max(1, target));
  const double step = st.value();
  const double k0 = std::ceil(lo / step - 1e-9), k1 = std::floor(hi / step + 1e-9);
  if (k1 - k0 > 1000 || k0 + 1 == k0) return {lo, hi};  // a span below the resolution of lo, hi
  for (double k = k0; k <= k1; k += 1) t.push_back(k == 0 ? 0.0 : st.times(k));
  return t;
}

}  // namespace qs::plot
