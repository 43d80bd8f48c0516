// Line charts (see chart.h): axes rounded out to round ticks, grid, one path per series clipped
// to the plot area, markers for short series, a legend at the top right.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "qiusuo/core/error.h"
#include "qiusuo/plot/chart.h"
#include "qiusuo/plot/svg.h"

namespace qs::plot {

using namespace detail;

Series series(std::string name, const std::vector<double>& x, const std::vector<double>& y) {
  if (x.size() != y.size()) fail("plot series '", name, "': ", x.size(), " x values but ", y.size(), " y values");
  Series s{std::move(name), {}};
  s.points.reserve(x.size());
  for (size_t i = 0; i < x.size(); ++i) s.points.push_back({x[i], y[i]});
  return s;
}

namespace {

// Averages consecutive points in buckets so that at most max_points remain; a bucket without a
// usable point stays a gap (NaN).
std::vector<std::pair<double, double>> downsample(const std::vector<std::pair<double, double>>& p, size_t max_points,
                                                  bool log_y) {
  if (max_points == 0 || p.size() <= max_points) return p;
  const size_t k = (p.size() + max_points - 1) / max_points;
  std::vector<std::pair<double, double>> o;
  o.reserve(max_points);
  for (size_t i = 0; i < p.size(); i += k) {
    double sx = 0, sy = 0;
    size_t n = 0;
    for (size_t j = i; j < std::min(p.size(), i + k); ++j) {
      const auto [x, y] = p[j];
      if (!std::isfinite(x) || !std::isfinite(y) || (log_y && y <= 0)) continue;
      sx += clamp_value(x) / double(k);  // pre-divided: the sum stays finite near kMaxAbs
      sy += clamp_value(y) / double(k);
      ++n;
    }
    if (n == 0) o.push_back({NAN, NAN});
    else o.push_back({sx * double(k) / double(n), sy * double(k) / double(n)});
  }
  return o;
}

}  // namespace

std::string to_svg(const LineChart& c) {
  const int W = std::clamp(c.width, 200, 20000), H = std::clamp(c.height, 150, 20000);
  const double L = 78, R = W - 20.0, T = 36, B = H - 48.0;  // plot area [L, R] x [T, B]
  const bool logy = c.log_y;
  auto usable = [&](double x, double y) { return std::isfinite(x) && std::isfinite(y) && (!logy || y > 0); };

  std::vector<std::vector<std::pair<double, double>>> pts;
  pts.reserve(c.series.size());
  double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
  for (const auto& s : c.series) {
    pts.push_back(downsample(s.points, c.max_points, logy));
    for (auto& [x, y] : pts.back()) {
      if (!usable(x, y)) {
        x = y = NAN;
        continue;
      }
      x = clamp_value(x);
      y = clamp_value(y);
      xlo = std::min(xlo, x), xhi = std::max(xhi, x);
      ylo = std::min(ylo, y), yhi = std::max(yhi, y);
    }
  }
  const bool empty = !(xlo <= xhi);

  Svg o(W, H);
  o.title(W, c.title);
  o.rect(L, T, R - L, B - T, "fill=\"#fbfbfb\" stroke=\"none\"");
  o.text((L + R) / 2, H - 10.0, c.x_label, "class=\"axis-label\" text-anchor=\"middle\"");
  o.y_label(16, (T + B) / 2, c.y_label);
  if (empty) {
    o.no_data((L + R) / 2, (T + B) / 2);
    o.rect(L, T, R - L, B - T, "fill=\"none\" stroke=\"#444444\"");
    return o.finish();
  }

  const Axis xa = linear_axis(xlo, xhi, 6);
  // y axis: linear, or whole decades (value = log10 y) with 2 and 5 in between when few.
  Axis ya;
  std::vector<std::pair<double, std::string>> yticks;  // position in axis units, label
  if (logy) {
    double e0 = std::floor(std::log10(ylo) + 1e-12), e1 = std::ceil(std::log10(yhi) - 1e-12);
    if (e1 <= e0) e1 = e0 + 1;
    ya.lo = e0;
    ya.hi = e1;
    const double stride = std::max(1.0, std::ceil((e1 - e0) / 8));
    for (double e = e0; e <= e1; e += stride) {
      char b[32];
      std::snprintf(b, sizeof b, "%g", std::pow(10.0, e));
      yticks.push_back({e, b});
      if (e1 - e0 <= 2 && e < e1)
        for (double m : {2.0, 5.0}) {
          std::snprintf(b, sizeof b, "%g", m * std::pow(10.0, e));
          yticks.push_back({e + std::log10(m), b});
        }
    }
  } else {
    ya = linear_axis(ylo, yhi, 6);
    for (double v : ya.ticks) yticks.push_back({v, ya.label(v)});
  }
  auto px = [&](double x) { return L + xa.frac(x) * (R - L); };
  auto pya = [&](double a) { return B - ya.frac(a) * (B - T); };
  auto py = [&](double y) { return pya(logy ? std::log10(y) : y); };

  // Grid, ticks and their labels.
  o.raw("<g class=\"grid\" stroke=\"#e3e3e3\" stroke-width=\"1\">\n");
  for (double v : xa.ticks) o.line(px(v), T, px(v), B, "");
  for (const auto& [a, lab] : yticks) o.line(L, pya(a), R, pya(a), "");
  o.raw("</g>\n<g class=\"x-ticks\" font-size=\"11\" fill=\"#333333\" text-anchor=\"middle\">\n");
  for (double v : xa.ticks) o.text(px(v), B + 15, xa.label(v));
  o.raw("</g>\n<g class=\"y-ticks\" font-size=\"11\" fill=\"#333333\" text-anchor=\"end\">\n");
  for (const auto& [a, lab] : yticks) o.text(L - 5, pya(a) + 4, lab);
  o.raw("</g>\n");

  // Series, clipped to the plot area.
  o.raw(str("<defs><clipPath id=\"plot-area\"><rect x=\"", num(L), "\" y=\"", num(T), "\" width=\"", num(R - L),
            "\" height=\"", num(B - T), "\"/></clipPath></defs>\n"));
  o.raw("<g clip-path=\"url(#plot-area)\" fill=\"none\" stroke-width=\"1.6\" stroke-linejoin=\"round\" "
        "stroke-linecap=\"round\">\n");
  auto style = [](size_t si) {
    const size_t round = si / kPalette.size();
    std::string s = str("stroke=\"", kPalette[si % kPalette.size()], "\"");
    if (round > 0) s += str(" stroke-dasharray=\"", 2 + 2 * ((round - 1) % 4), " 3\"");
    return s;
  };
  for (size_t si = 0; si < pts.size(); ++si) {
    std::string d;
    bool pen = false;
    size_t finite = 0;
    for (const auto& [x, y] : pts[si]) {
      if (std::isnan(x)) {
        pen = false;
        continue;
      }
      ++finite;
      d += str(pen ? "L" : "M", num(px(x)), " ", num(py(y)), pen ? " " : " h0 ");  // h0: a lone point shows as a dot
      pen = true;
    }
    // Every series has its path (possibly empty), so the i-th series is the i-th path.
    o.raw(str("<path class=\"series\" data-name=\"", esc(c.series[si].name), "\" ", style(si), " d=\"", d, "\"/>\n"));
    if (finite > 0 && finite <= c.max_markers) {
      o.raw(str("<g class=\"markers\" fill=\"", kPalette[si % kPalette.size()], "\" stroke=\"none\">"));
      for (const auto& [x, y] : pts[si])
        if (!std::isnan(x)) o.raw(str("<circle cx=\"", num(px(x)), "\" cy=\"", num(py(y)), "\" r=\"2.5\"/>"));
      o.raw("</g>\n");
    }
  }
  o.raw("</g>\n");
  o.rect(L, T, R - L, B - T, "fill=\"none\" stroke=\"#444444\"");

  // Legend (top right inside the plot), as many entries as fit, then "+N more".
  std::vector<size_t> named;
  size_t longest = 0;
  for (size_t si = 0; si < c.series.size(); ++si)
    if (!c.series[si].name.empty()) {
      named.push_back(si);
      longest = std::max(longest, std::min<size_t>(text_width_chars(c.series[si].name), 40));
    }
  if (!named.empty()) {
    const size_t fit = std::max<size_t>(1, size_t((B - T - 24) / 17));
    const size_t shown = named.size() <= fit ? named.size() : fit - 1;
    const size_t rows = shown + (shown < named.size() ? 1 : 0);
    const double lw = 36 + 6.8 * double(std::max<size_t>(longest, 8)), lh = 8 + 17.0 * double(rows);
    const double lx = R - lw - 8, ly = T + 8;
    o.raw("<g class=\"legend\" font-size=\"12\">\n");
    o.rect(lx, ly, lw, lh, "fill=\"#ffffff\" fill-opacity=\"0.85\" stroke=\"#bbbbbb\"");
    for (size_t row = 0; row < shown; ++row) {
      const size_t si = named[row];
      const double y = ly + 13 + 17.0 * double(row);
      o.line(lx + 6, y - 4, lx + 26, y - 4, str(style(si), " stroke-width=\"2.5\""));
      o.text(lx + 31, y, ellipsize(c.series[si].name, 40));
    }
    if (shown < named.size())
      o.text(lx + 31, ly + 13 + 17.0 * double(shown), str("+", named.size() - shown, " more"), "fill=\"#666666\"");
    o.raw("</g>\n");
  }
  return o.finish();
}

}  // namespace qs::plot
