// Heatmaps (see chart.h): cells as rectangles (a run of equal color in a row is one rectangle),
// a viridis color scale with ticks, rows labelled at the left, x ticks interpolated from the
// column x values. Large matrices are averaged down to kMaxHeatmapCells first.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>

#include "qiusuo/core/error.h"
#include "qiusuo/plot/chart.h"
#include "qiusuo/plot/svg.h"

namespace qs::plot {

using namespace detail;

namespace {

struct Rgb {
  double r, g, b;
};

// Viridis, 9 control points.
Rgb viridis(double t) {
  static constexpr Rgb k[9] = {{68, 1, 84},    {71, 44, 122},  {59, 81, 139},  {44, 113, 142}, {33, 144, 141},
                               {39, 173, 129}, {92, 200, 99},  {170, 220, 50}, {253, 231, 37}};
  t = std::clamp(std::isfinite(t) ? t : 0.0, 0.0, 1.0) * 8;
  const int i = std::min(7, int(t));
  const double f = t - i;
  return {k[i].r + (k[i + 1].r - k[i].r) * f, k[i].g + (k[i + 1].g - k[i].g) * f, k[i].b + (k[i + 1].b - k[i].b) * f};
}

std::string hex(const Rgb& c) {
  char b[8];
  std::snprintf(b, sizeof b, "#%02x%02x%02x", int(std::lround(c.r)), int(std::lround(c.g)), int(std::lround(c.b)));
  return b;
}

// Means of groups of `k` neighbouring entries (finite values only; NaN when a group has none).
std::vector<double> group_means(const std::vector<double>& v, size_t k) {
  std::vector<double> o;
  o.reserve((v.size() + k - 1) / k);
  for (size_t i = 0; i < v.size(); i += k) {
    double s = 0;
    size_t n = 0;
    for (size_t j = i; j < std::min(v.size(), i + k); ++j)
      if (std::isfinite(v[j])) s += clamp_value(v[j]) / double(k), ++n;
    o.push_back(n ? s * double(k) / double(n) : NAN);
  }
  return o;
}

}  // namespace

std::string to_svg(const Heatmap& h) {
  size_t R = h.cells.size(), C = 0;
  for (const auto& row : h.cells) C = std::max(C, row.size());
  if (!h.x_values.empty() && R > 0 && h.x_values.size() != C)
    fail("heatmap '", h.title, "': ", h.x_values.size(), " x values for ", C, " columns");

  // Dense copy, averaged down to at most kMaxHeatmapCells: columns first (not below 64), then rows.
  std::vector<std::vector<double>> m(R, std::vector<double>(C, NAN));
  for (size_t r = 0; r < R; ++r) std::copy(h.cells[r].begin(), h.cells[r].end(), m[r].begin());
  std::vector<double> xs = h.x_values;
  if (xs.empty())
    for (size_t c = 0; c < C; ++c) xs.push_back(double(c));
  std::vector<std::string> labels = h.row_labels;
  labels.resize(R);
  std::vector<size_t> separators = h.row_separators;
  if (R * C > kMaxHeatmapCells) {
    const size_t cols = std::max<size_t>(std::min<size_t>(C, 64), kMaxHeatmapCells / std::max<size_t>(R, 1));
    const size_t kc = (C + cols - 1) / cols;
    if (kc > 1) {
      for (auto& row : m) row = group_means(row, kc);
      xs = group_means(xs, kc);
      C = m.empty() ? 0 : m[0].size();
    }
  }
  if (R * C > kMaxHeatmapCells) {
    const size_t rows = std::max<size_t>(1, kMaxHeatmapCells / std::max<size_t>(C, 1));
    const size_t kr = (R + rows - 1) / rows;
    std::vector<std::vector<double>> mr;
    std::vector<std::string> lr;
    for (size_t r = 0; r < R; r += kr) {
      std::vector<double> row(C);
      for (size_t c = 0; c < C; ++c) {
        std::vector<double> col;
        for (size_t q = r; q < std::min(R, r + kr); ++q) col.push_back(m[q][c]);
        row[c] = group_means(col, col.size())[0];
      }
      mr.push_back(std::move(row));
      lr.push_back(labels[r]);
    }
    for (auto& s : separators) s = (s + kr - 1) / kr;
    m = std::move(mr);
    labels = std::move(lr);
    R = m.size();
  }

  double vmin = h.vmin, vmax = h.vmax;
  if (std::isnan(vmin) || std::isnan(vmax)) {
    double lo = INFINITY, hi = -INFINITY;
    for (const auto& row : m)
      for (double v : row)
        if (std::isfinite(v)) lo = std::min(lo, clamp_value(v)), hi = std::max(hi, clamp_value(v));
    if (std::isnan(vmin)) vmin = lo <= hi ? lo : 0;
    if (std::isnan(vmax)) vmax = lo <= hi ? hi : 1;
  }
  vmin = clamp_value(vmin);
  vmax = clamp_value(vmax);
  if (!(vmax - vmin > std::max(std::fabs(vmin), std::fabs(vmax)) * 1e-12))
    vmax = vmin + (vmin == 0 ? 1 : std::fabs(vmin) * 0.1);

  size_t longest = 1;
  for (const auto& s : labels) longest = std::max(longest, std::min<size_t>(text_width_chars(s), 24));
  const int W = std::clamp(h.width, 300, 20000);
  const double L = std::min(170.0, 14 + 6.5 * double(longest)), T = 36;
  const double PW = std::max(60.0, W - L - 120), PH = std::clamp(double(R) * 14, 120.0, 720.0);
  const int H = int(T + PH + 50);
  const double cw = C ? PW / double(C) : PW, ch = R ? PH / double(R) : PH;

  Svg o(W, H);
  o.title(W, h.title);
  o.rect(L, T, PW, PH, "fill=\"#d9d9d9\"");
  o.text(L + PW / 2, H - 10.0, h.x_label, "class=\"axis-label\" text-anchor=\"middle\"");
  if (R == 0 || C == 0) {
    o.no_data(L + PW / 2, T + PH / 2);
    return o.finish();
  }
  const double span = vmax - vmin;
  auto level = [&](double v) { return int(std::lround(std::clamp((clamp_value(v) - vmin) / span, 0.0, 1.0) * 255)); };

  // Cells. Each rect overlaps its right and lower neighbours by half a pixel so that
  // anti-aliasing leaves no hairline gaps.
  std::array<std::string, 256> colors;
  for (int i = 0; i < 256; ++i) colors[size_t(i)] = hex(viridis(i / 255.0));
  o.raw("<g class=\"cells\" shape-rendering=\"crispEdges\" stroke=\"none\">\n");
  for (size_t r = 0; r < R; ++r) {
    for (size_t c0 = 0; c0 < C;) {
      const double v0 = m[r][c0];
      const int l0 = std::isfinite(v0) ? level(v0) : -1;
      size_t c1 = c0 + 1;
      while (c1 < C && (std::isfinite(m[r][c1]) ? level(m[r][c1]) : -1) == l0) ++c1;
      if (l0 >= 0)
        o.rect(L + double(c0) * cw, T + double(r) * ch, double(c1 - c0) * cw + 0.5, ch + 0.5,
               str("fill=\"", colors[size_t(l0)], "\""));
      c0 = c1;
    }
  }
  o.raw("</g>\n");

  // Row separators, frame.
  for (size_t r : separators)
    if (r > 0 && r < R) o.line(L, T + double(r) * ch, L + PW, T + double(r) * ch, "stroke=\"#ffffff\" stroke-width=\"1.2\"");
  o.rect(L, T, PW, PH, "fill=\"none\" stroke=\"#444444\"");

  // Row labels, thinned to one per ~11 px.
  const double fs = std::clamp(ch * 0.9, 8.0, 11.0);
  const size_t stride = std::max<size_t>(1, size_t(std::ceil(11.0 / ch)));
  o.raw(str("<g class=\"row-labels\" font-size=\"", num(fs), "\" fill=\"#333333\" text-anchor=\"end\">\n"));
  for (size_t r = 0; r < R; r += stride) o.text(L - 4, T + (double(r) + 0.5) * ch + fs * 0.35, ellipsize(labels[r], 24));
  o.raw("</g>\n");

  // x ticks: round values between the first and last column, placed by interpolating xs.
  auto xpos = [&](double v) {
    if (C == 1) return L + 0.5 * cw;
    size_t i = 0;
    while (i + 2 < C && xs[i + 1] <= v) ++i;
    const double a = xs[i], b = xs[i + 1];
    const double f = std::isfinite(b - a) && b != a ? (v - a) / (b - a) : 0;
    return L + (double(i) + std::clamp(f, -0.5, 1.5) + 0.5) * cw;
  };
  const double x0 = clamp_value(xs.front()), x1 = clamp_value(xs.back());
  const auto xt = std::isfinite(x0) && std::isfinite(x1) ? nice_ticks(std::min(x0, x1), std::max(x0, x1), 8)
                                                        : std::vector<double>{};
  const double xstep = xt.size() >= 2 ? xt[1] - xt[0] : 1;
  o.raw("<g class=\"x-ticks\" font-size=\"11\" fill=\"#333333\" text-anchor=\"middle\">\n");
  for (double v : xt) {
    const double x = xpos(v);
    o.line(x, T + PH, x, T + PH + 4, "stroke=\"#444444\"");
    o.text(x, T + PH + 16, tick_label(v, xstep));
  }
  o.raw("</g>\n");

  // Color scale.
  const double sx = L + PW + 18, sw = 14;
  o.raw("<defs><linearGradient id=\"color-scale\" x1=\"0\" y1=\"1\" x2=\"0\" y2=\"0\">");
  for (int i = 0; i <= 8; ++i) o.raw(str("<stop offset=\"", num(i / 8.0), "\" stop-color=\"", hex(viridis(i / 8.0)), "\"/>"));
  o.raw("</linearGradient></defs>\n");
  o.rect(sx, T, sw, PH, "fill=\"url(#color-scale)\" stroke=\"#444444\"");
  const auto vt = nice_ticks(vmin, vmax, 5);
  const double vstep = vt.size() >= 2 ? vt[1] - vt[0] : std::fabs(span);
  o.raw("<g class=\"scale-ticks\" font-size=\"10\" fill=\"#333333\">\n");
  for (double v : vt) {
    const double y = T + PH - (v - vmin) / span * PH;
    o.line(sx + sw, y, sx + sw + 3, y, "stroke=\"#444444\"");
    o.text(sx + sw + 5, y + 3.5, tick_label(v, vstep));
  }
  o.raw("</g>\n");
  if (!h.value_label.empty()) o.y_label(W - 8.0, T + PH / 2, h.value_label, "font-size=\"11\"");
  return o.finish();
}

}  // namespace qs::plot
