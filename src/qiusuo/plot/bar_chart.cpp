// Horizontal bar charts (see chart.h): one row per named value, bars from a zero baseline on a
// round-tick value axis, names at the left, values printed at the bar ends.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "qiusuo/core/error.h"
#include "qiusuo/plot/chart.h"
#include "qiusuo/plot/svg.h"

namespace qs::plot {

using namespace detail;

namespace {
std::string value_text(double v) {
  if (!std::isfinite(v)) return "n/a";
  char b[32];
  std::snprintf(b, sizeof b, "%.4g", v);
  return b;
}
}  // namespace

std::string to_svg(const BarChart& c) {
  constexpr double kRow = 24, kMaxNameChars = 32;
  const size_t n = c.bars.size();
  size_t longest = 4;
  double lo = 0, hi = 0;  // the baseline is always on the axis
  bool any = false;
  for (const auto& b : c.bars) {
    longest = std::max(longest, std::min<size_t>(text_width_chars(b.name), size_t(kMaxNameChars)));
    if (std::isfinite(b.value)) {
      lo = std::min(lo, clamp_value(b.value));
      hi = std::max(hi, clamp_value(b.value));
      any = true;
    }
  }
  const int W = std::clamp(c.width, 300, 20000);
  const double L = std::min(260.0, 16 + 6.8 * double(longest)), R = W - 70.0, T = 40;
  const double PH = std::max(60.0, kRow * double(n));
  const int H = int(T + PH + 52);
  const double B = T + PH;

  Svg o(W, H);
  o.title(W, c.title);
  o.rect(L, T, R - L, PH, "fill=\"#fbfbfb\" stroke=\"none\"");
  o.text((L + R) / 2, H - 10.0, c.value_label, "class=\"axis-label\" text-anchor=\"middle\"");
  const Axis a = linear_axis(lo, hi, 6);
  auto px = [&](double v) { return L + a.frac(v) * (R - L); };
  if (!any) {
    o.no_data((L + R) / 2, T + PH / 2);
  } else {
    o.raw("<g class=\"grid\" stroke=\"#e3e3e3\" stroke-width=\"1\">\n");
    for (double v : a.ticks) o.line(px(v), T, px(v), B, "");
    o.raw("</g>\n<g class=\"x-ticks\" font-size=\"11\" fill=\"#333333\" text-anchor=\"middle\">\n");
    for (double v : a.ticks) o.text(px(v), B + 15, a.label(v));
    o.raw("</g>\n<g class=\"bars\" stroke=\"none\">\n");
    const double x0 = px(0);
    for (size_t i = 0; i < n; ++i) {
      const double v = c.bars[i].value;
      if (!std::isfinite(v)) continue;
      const double x1 = px(clamp_value(v));
      o.rect(std::min(x0, x1), T + kRow * double(i) + 4, std::fabs(x1 - x0), kRow - 8,
             str("class=\"bar\" fill=\"", kPalette[v < 0 ? 3 : 0], "\""));
    }
    o.raw("</g>\n");
    o.line(x0, T, x0, B, "stroke=\"#444444\"");
  }
  // Names and values.
  o.raw("<g class=\"bar-labels\" font-size=\"12\" fill=\"#222222\">\n");
  for (size_t i = 0; i < n; ++i) {
    const double y = T + kRow * (double(i) + 0.5) + 4;
    o.text(L - 6, y, ellipsize(c.bars[i].name, size_t(kMaxNameChars)), "text-anchor=\"end\"");
    const double v = c.bars[i].value;
    if (!any || !std::isfinite(v)) {
      o.text(L + 6, y, "n/a", "class=\"value\" fill=\"#888888\"");
      continue;
    }
    const double x1 = px(clamp_value(v));
    o.text(v < 0 ? x1 - 4 : x1 + 4, y, value_text(v), v < 0 ? "class=\"value\" text-anchor=\"end\"" : "class=\"value\"");
  }
  o.raw("</g>\n");
  o.rect(L, T, R - L, PH, "fill=\"none\" stroke=\"#444444\"");
  return o.finish();
}

}  // namespace qs::plot
