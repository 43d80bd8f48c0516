// SVG line charts and heatmaps for training runs (see plots.h). Plain string building: every
// text is XML-escaped, every number is finite, so the output is well-formed standalone SVG.
#include "qiusuo/train/plots.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <string_view>

#include <nlohmann/json.hpp>

#include "qiusuo/core/error.h"
#include "qiusuo/io/file.h"

namespace qs {
namespace {

constexpr std::array<const char*, 10> kPalette = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                                  "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

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
  return o;
}

// Coordinate with two decimals ("12.35"); never "nan".
std::string num(double v) {
  if (!std::isfinite(v)) v = 0;
  char b[32];
  std::snprintf(b, sizeof b, "%.2f", v);
  return b;
}

// A round step near `raw`: m x 10^e with m in {1, 2, 5, 10}.
struct NiceStep {
  double m = 1;
  int e = 0;
  double value() const { return e >= 0 ? m * std::pow(10.0, e) : m / std::pow(10.0, -e); }
  // k * step, computed so that decimal values are the closest double (0.6, not 0.6000000000000001).
  double times(double k) const { return e >= 0 ? k * m * std::pow(10.0, e) : (k * m) / std::pow(10.0, -e); }
};

NiceStep nice_step_parts(double raw) {
  if (!(raw > 0) || !std::isfinite(raw)) return {};
  const int e = int(std::floor(std::log10(raw)));
  const double f = raw / std::pow(10.0, e);
  return {f < 1.5 ? 1.0 : f < 3 ? 2.0 : f < 7 ? 5.0 : 10.0, e};
}

double nice_step(double raw) { return nice_step_parts(raw).value(); }

// Tick label with just enough decimals for ticks `step` apart ("0.25", "1500"; "1e-05" when tiny or huge).
std::string tick_label(double v, double step) {
  if (std::fabs(v) < step * 1e-6) v = 0;
  char b[32];
  const double a = std::fabs(v);
  if (v != 0 && (a >= 1e6 || a < 1e-4)) {
    std::snprintf(b, sizeof b, "%.3g", v);
  } else {
    const int dec = std::max(0, int(-std::floor(std::log10(step) + 1e-9)));
    std::snprintf(b, sizeof b, "%.*f", std::min(dec, 10), v);
  }
  return b;
}

struct Rgb { double r, g, b; };

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

std::string svg_open(int w, int h) {
  return str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" ",
             "width=\"", w, "\" height=\"", h, "\" viewBox=\"0 0 ", w, " ",
             h, "\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\" font-size=\"12\">\n",
             "<rect width=\"", w, "\" height=\"", h, "\" fill=\"#ffffff\"/>\n");
}

std::string text(double x, double y, std::string_view s, std::string_view attrs = "") {
  return str("<text x=\"", num(x), "\" y=\"", num(y), "\"", attrs.empty() ? "" : " ", attrs, ">", esc(s), "</text>\n");
}

// ---- PNG (for large heatmaps): RGB, stored (uncompressed) deflate ------------------------------

uint32_t crc32(const uint8_t* p, size_t n, uint32_t c = 0) {
  static const auto table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t v = i;
      for (int k = 0; k < 8; ++k) v = (v & 1) ? 0xEDB88320u ^ (v >> 1) : v >> 1;
      t[i] = v;
    }
    return t;
  }();
  c = ~c;
  for (size_t i = 0; i < n; ++i) c = table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
  return ~c;
}

void put_be32(std::string& s, uint32_t v) {
  for (int i = 3; i >= 0; --i) s.push_back(char((v >> (8 * i)) & 0xFF));
}

void png_chunk(std::string& png, const char* type, const std::string& data) {
  put_be32(png, uint32_t(data.size()));
  std::string td = std::string(type, 4) + data;
  png += td;
  put_be32(png, crc32(reinterpret_cast<const uint8_t*>(td.data()), td.size()));
}

// rgb: [h][w][3]
std::string encode_png(const std::vector<uint8_t>& rgb, int w, int h) {
  std::string raw;  // filter byte 0 + row
  raw.reserve(size_t(h) * (size_t(w) * 3 + 1));
  for (int y = 0; y < h; ++y) {
    raw.push_back(0);
    raw.append(reinterpret_cast<const char*>(rgb.data()) + size_t(y) * w * 3, size_t(w) * 3);
  }
  std::string z = "\x78\x01";
  for (size_t off = 0; off < raw.size() || off == 0; off += 65535) {
    const size_t len = std::min<size_t>(65535, raw.size() - off);
    const bool last = off + len >= raw.size();
    z.push_back(char(last ? 1 : 0));
    z.push_back(char(len & 0xFF));
    z.push_back(char(len >> 8));
    z.push_back(char(~len & 0xFF));
    z.push_back(char((~len >> 8) & 0xFF));
    z.append(raw, off, len);
    if (last) break;
  }
  uint32_t a = 1, b = 0;  // Adler-32
  for (unsigned char c : raw) {
    a = (a + c) % 65521;
    b = (b + a) % 65521;
  }
  put_be32(z, (b << 16) | a);
  std::string png = "\x89PNG\r\n\x1a\n";
  std::string ihdr;
  put_be32(ihdr, uint32_t(w));
  put_be32(ihdr, uint32_t(h));
  ihdr += std::string("\x08\x02\x00\x00\x00", 5);  // 8-bit RGB, no interlace
  png_chunk(png, "IHDR", ihdr);
  png_chunk(png, "IDAT", z);
  png_chunk(png, "IEND", "");
  return png;
}

std::string base64(const std::string& in) {
  static const char* k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string o;
  o.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    o += k[v >> 18];
    o += k[(v >> 12) & 63];
    o += k[(v >> 6) & 63];
    o += k[v & 63];
  }
  if (i < in.size()) {
    uint32_t v = uint8_t(in[i]) << 16;
    if (i + 1 < in.size()) v |= uint8_t(in[i + 1]) << 8;
    o += k[v >> 18];
    o += k[(v >> 12) & 63];
    o += i + 1 < in.size() ? k[(v >> 6) & 63] : '=';
    o += '=';
  }
  return o;
}

}  // namespace

// ---- ticks -------------------------------------------------------------------------------------

std::vector<double> nice_ticks(double lo, double hi, int target) {
  std::vector<double> t;
  if (!std::isfinite(lo) || !std::isfinite(hi) || hi < lo) return t;
  if (hi == lo) return {lo};
  const NiceStep st = nice_step_parts((hi - lo) / std::max(1, target));
  const double step = st.value();
  const double k0 = std::ceil(lo / step - 1e-9), k1 = std::floor(hi / step + 1e-9);
  for (double k = k0; k <= k1 && t.size() < 1000; k += 1) t.push_back(k == 0 ? 0.0 : st.times(k));
  return t;
}

// ---- line chart --------------------------------------------------------------------------------

std::string line_chart_svg(const std::string& title, const std::string& x_label, const std::string& y_label,
                           const std::vector<PlotSeries>& series, const LineChartOptions& opt) {
  const int W = std::max(200, opt.width), H = std::max(150, opt.height);
  const double L = 72, R = W - 20.0, T = 36, B = H - 48.0;  // plot area [L, R] x [T, B]
  const bool logy = opt.log_y;
  auto usable = [&](double x, double y) { return std::isfinite(x) && std::isfinite(y) && (!logy || y > 0); };

  double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
  for (const auto& s : series)
    for (const auto& [x, y] : s.points)
      if (usable(x, y)) {
        xlo = std::min(xlo, x); xhi = std::max(xhi, x);
        ylo = std::min(ylo, y); yhi = std::max(yhi, y);
      }
  const bool empty = !(xlo <= xhi);

  std::string o = svg_open(W, H);
  o += text(W / 2.0, 22, title, "text-anchor=\"middle\" font-size=\"15\" font-weight=\"bold\"");
  o += str("<rect x=\"", num(L), "\" y=\"", num(T), "\" width=\"", num(R - L), "\" height=\"", num(B - T),
           "\" fill=\"#fbfbfb\" stroke=\"none\"/>\n");
  o += text((L + R) / 2, H - 10.0, x_label, "text-anchor=\"middle\"");
  o += str("<text transform=\"translate(16,", num((T + B) / 2), ") rotate(-90)\" text-anchor=\"middle\">", esc(y_label),
           "</text>\n");
  if (empty) {
    o += text((L + R) / 2, (T + B) / 2, "no data", "text-anchor=\"middle\" fill=\"#888888\" font-size=\"14\"");
    o += str("<rect x=\"", num(L), "\" y=\"", num(T), "\" width=\"", num(R - L), "\" height=\"", num(B - T),
             "\" fill=\"none\" stroke=\"#444444\"/>\n</svg>\n");
    return o;
  }

  // x domain: rounded out to the tick step.
  if (xlo == xhi) { xlo -= xlo == 0 ? 1 : std::fabs(xlo) * 0.1; xhi += xhi == 0 ? 1 : std::fabs(xhi) * 0.1; }
  const double xstep = nice_step((xhi - xlo) / 6);
  const double dxlo = std::floor(xlo / xstep + 1e-9) * xstep, dxhi = std::ceil(xhi / xstep - 1e-9) * xstep;
  // y domain: linear rounded to ticks, or whole decades.
  double dylo, dyhi;
  std::vector<std::pair<double, std::string>> yticks;  // value in axis units, label
  if (logy) {
    double e0 = std::floor(std::log10(ylo) + 1e-12), e1 = std::ceil(std::log10(yhi) - 1e-12);
    if (e1 <= e0) e1 = e0 + 1;
    dylo = e0; dyhi = e1;
    const int stride = std::max(1, int(std::ceil((e1 - e0) / 8)));
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
    if (ylo == yhi) { ylo -= ylo == 0 ? 1 : std::fabs(ylo) * 0.1; yhi += yhi == 0 ? 1 : std::fabs(yhi) * 0.1; }
    const double ystep = nice_step((yhi - ylo) / 6);
    dylo = std::floor(ylo / ystep + 1e-9) * ystep;
    dyhi = std::ceil(yhi / ystep - 1e-9) * ystep;
    const auto t = nice_ticks(dylo, dyhi, 6);
    for (double v : t) yticks.push_back({v, tick_label(v, t.size() >= 2 ? t[1] - t[0] : ystep)});
  }
  auto px = [&](double x) { return L + (x - dxlo) / (dxhi - dxlo) * (R - L); };
  auto py = [&](double y) { return B - ((logy ? std::log10(y) : y) - dylo) / (dyhi - dylo) * (B - T); };
  auto pyaxis = [&](double a) { return B - (a - dylo) / (dyhi - dylo) * (B - T); };

  // Grid and tick labels.
  o += "<g stroke=\"#e3e3e3\" stroke-width=\"1\">\n";
  const auto xticks = nice_ticks(dxlo, dxhi, 6);
  const double xtick_step = xticks.size() >= 2 ? xticks[1] - xticks[0] : xstep;
  for (double v : xticks)
    o += str("<line x1=\"", num(px(v)), "\" y1=\"", num(T), "\" x2=\"", num(px(v)), "\" y2=\"", num(B), "\"/>\n");
  for (const auto& [a, lab] : yticks)
    o += str("<line x1=\"", num(L), "\" y1=\"", num(pyaxis(a)), "\" x2=\"", num(R), "\" y2=\"", num(pyaxis(a)), "\"/>\n");
  o += "</g>\n<g font-size=\"11\" fill=\"#333333\">\n";
  for (double v : xticks) o += text(px(v), B + 15, tick_label(v, xtick_step), "text-anchor=\"middle\"");
  for (const auto& [a, lab] : yticks) o += text(L - 5, pyaxis(a) + 4, lab, "text-anchor=\"end\"");
  o += "</g>\n";

  // Series, clipped to the plot area.
  o += str("<defs><clipPath id=\"plot-area\"><rect x=\"", num(L), "\" y=\"", num(T), "\" width=\"", num(R - L),
           "\" height=\"", num(B - T), "\"/></clipPath></defs>\n");
  o += "<g clip-path=\"url(#plot-area)\" fill=\"none\" stroke-width=\"1.6\" stroke-linejoin=\"round\" "
       "stroke-linecap=\"round\">\n";
  for (size_t si = 0; si < series.size(); ++si) {
    const auto& s = series[si];
    const char* color = kPalette[si % kPalette.size()];
    std::string d;
    bool pen = false;
    size_t finite = 0;
    for (const auto& [x, y] : s.points) {
      if (!usable(x, y)) { pen = false; continue; }
      ++finite;
      d += str(pen ? "L" : "M", num(px(x)), " ", num(py(y)), pen ? " " : " h0 ");  // h0: a lone point shows as a dot
      pen = true;
    }
    if (!d.empty()) o += str("<path stroke=\"", color, "\" d=\"", d, "\"/>\n");
    if (finite > 0 && finite <= 60) {
      o += str("<g fill=\"", color, "\" stroke=\"none\">");
      for (const auto& [x, y] : s.points)
        if (usable(x, y)) o += str("<circle cx=\"", num(px(x)), "\" cy=\"", num(py(y)), "\" r=\"2.5\"/>");
      o += "</g>\n";
    }
  }
  o += "</g>\n";
  o += str("<rect x=\"", num(L), "\" y=\"", num(T), "\" width=\"", num(R - L), "\" height=\"", num(B - T),
           "\" fill=\"none\" stroke=\"#444444\"/>\n");

  // Legend (top right inside the plot).
  size_t named = 0, longest = 0;
  for (const auto& s : series)
    if (!s.name.empty()) { ++named; longest = std::max(longest, s.name.size()); }
  if (named > 0) {
    const double lw = 36 + 6.8 * double(std::min<size_t>(longest, 40)), lh = 8 + 17.0 * double(named);
    const double lx = R - lw - 8, ly = T + 8;
    o += str("<g font-size=\"12\"><rect x=\"", num(lx), "\" y=\"", num(ly), "\" width=\"", num(lw), "\" height=\"",
             num(lh), "\" fill=\"#ffffff\" fill-opacity=\"0.85\" stroke=\"#bbbbbb\"/>\n");
    size_t row = 0;
    for (size_t si = 0; si < series.size(); ++si) {
      if (series[si].name.empty()) continue;
      const double y = ly + 13 + 17.0 * double(row++);
      o += str("<line x1=\"", num(lx + 6), "\" y1=\"", num(y - 4), "\" x2=\"", num(lx + 26), "\" y2=\"", num(y - 4),
               "\" stroke=\"", kPalette[si % kPalette.size()], "\" stroke-width=\"2.5\"/>");
      o += text(lx + 31, y, series[si].name);
    }
    o += "</g>\n";
  }
  o += "</svg>\n";
  return o;
}

// ---- heatmap -----------------------------------------------------------------------------------

constexpr size_t kMaxRectCells = 8000;  // larger heatmaps are one embedded PNG (smaller file)

std::string heatmap_svg(const std::string& title, const std::vector<std::string>& row_labels,
                        const std::vector<std::vector<double>>& matrix, const std::vector<double>& x_values,
                        const HeatmapOptions& opt) {
  const size_t R = matrix.size();
  size_t C = 0;
  for (const auto& row : matrix) C = std::max(C, row.size());
  if (!x_values.empty() && R > 0 && x_values.size() != C)
    fail("heatmap_svg: ", x_values.size(), " x values for ", C, " matrix columns");
  auto at = [&](size_t r, size_t c) { return c < matrix[r].size() ? matrix[r][c] : NAN; };
  auto xval = [&](size_t c) { return x_values.empty() ? double(c) : x_values[c]; };

  double vmin = opt.vmin, vmax = opt.vmax;
  if (std::isnan(vmin) || std::isnan(vmax)) {
    double lo = INFINITY, hi = -INFINITY;
    for (size_t r = 0; r < R; ++r)
      for (double v : matrix[r])
        if (std::isfinite(v)) { lo = std::min(lo, v); hi = std::max(hi, v); }
    if (std::isnan(vmin)) vmin = lo <= hi ? lo : 0;
    if (std::isnan(vmax)) vmax = lo <= hi ? hi : 1;
  }
  if (!(vmax > vmin)) vmax = vmin + (vmin == 0 ? 1 : std::fabs(vmin) * 0.1);

  size_t longest = 1;
  for (const auto& s : row_labels) longest = std::max(longest, s.size());
  const int W = std::max(300, opt.width);
  const double L = std::min(170.0, 14 + 6.5 * double(longest)), T = 36;
  const double PW = std::max(60.0, W - L - 120), PH = std::clamp(double(R) * 14, 120.0, 720.0);
  const int H = int(T + PH + 50);
  const double cw = C ? PW / double(C) : PW, ch = R ? PH / double(R) : PH;

  std::string o = svg_open(W, H);
  o += text(W / 2.0, 22, title, "text-anchor=\"middle\" font-size=\"15\" font-weight=\"bold\"");
  o += str("<rect x=\"", num(L), "\" y=\"", num(T), "\" width=\"", num(PW), "\" height=\"", num(PH),
           "\" fill=\"#d9d9d9\"/>\n");
  o += text(L + PW / 2, H - 10.0, opt.x_label, "text-anchor=\"middle\"");
  if (R == 0 || C == 0) {
    o += text(L + PW / 2, T + PH / 2, "no data", "text-anchor=\"middle\" fill=\"#666666\" font-size=\"14\"");
    o += "</svg>\n";
    return o;
  }
  auto level = [&](double v) { return int(std::lround(std::clamp((v - vmin) / (vmax - vmin), 0.0, 1.0) * 255)); };

  if (R * C <= kMaxRectCells) {
    // Rects; a run of equal color levels in a row is one rect. Each overlaps its right and lower
    // neighbours by half a pixel so that anti-aliasing leaves no hairline gaps.
    std::array<std::string, 256> colors;
    for (int i = 0; i < 256; ++i) colors[size_t(i)] = hex(viridis(i / 255.0));
    o += "<g shape-rendering=\"crispEdges\" stroke=\"none\">\n";
    for (size_t r = 0; r < R; ++r) {
      for (size_t c0 = 0; c0 < C;) {
        const double v0 = at(r, c0);
        const int l0 = std::isfinite(v0) ? level(v0) : -1;
        size_t c1 = c0 + 1;
        while (c1 < C) {
          const double v = at(r, c1);
          if ((std::isfinite(v) ? level(v) : -1) != l0) break;
          ++c1;
        }
        if (l0 >= 0)
          o += str("<rect x=\"", num(L + double(c0) * cw), "\" y=\"", num(T + double(r) * ch), "\" width=\"",
                   num(double(c1 - c0) * cw + 0.5), "\" height=\"", num(ch + 0.5), "\" fill=\"", colors[size_t(l0)], "\"/>\n");
        c0 = c1;
      }
    }
    o += "</g>\n";
  } else {
    std::vector<uint8_t> rgb(R * C * 3);
    for (size_t r = 0; r < R; ++r)
      for (size_t c = 0; c < C; ++c) {
        const double v = at(r, c);
        const Rgb k = std::isfinite(v) ? viridis(level(v) / 255.0) : Rgb{217, 217, 217};
        uint8_t* p = &rgb[(r * C + c) * 3];
        p[0] = uint8_t(std::lround(k.r)); p[1] = uint8_t(std::lround(k.g)); p[2] = uint8_t(std::lround(k.b));
      }
    const std::string uri = "data:image/png;base64," + base64(encode_png(rgb, int(C), int(R)));
    o += str("<image x=\"", num(L), "\" y=\"", num(T), "\" width=\"", num(PW), "\" height=\"", num(PH),
             "\" preserveAspectRatio=\"none\" style=\"image-rendering:pixelated;image-rendering:crisp-edges\" href=\"",
             uri, "\"/>\n");
  }

  // Row separators, frame.
  for (size_t r : opt.row_separators)
    if (r > 0 && r < R)
      o += str("<line x1=\"", num(L), "\" y1=\"", num(T + double(r) * ch), "\" x2=\"", num(L + PW), "\" y2=\"",
               num(T + double(r) * ch), "\" stroke=\"#ffffff\" stroke-width=\"1.2\"/>\n");
  o += str("<rect x=\"", num(L), "\" y=\"", num(T), "\" width=\"", num(PW), "\" height=\"", num(PH),
           "\" fill=\"none\" stroke=\"#444444\"/>\n");

  // Row labels, thinned to one per ~11 px.
  const double fs = std::clamp(ch * 0.9, 8.0, 11.0);
  const size_t stride = std::max<size_t>(1, size_t(std::ceil(11.0 / ch)));
  o += str("<g font-size=\"", num(fs), "\" fill=\"#333333\" text-anchor=\"end\">\n");
  for (size_t r = 0; r < R; r += stride)
    if (r < row_labels.size()) o += text(L - 4, T + (double(r) + 0.5) * ch + fs * 0.35, row_labels[r]);
  o += "</g>\n";

  // x ticks: nice values between the first and last column, placed by interpolating x_values.
  auto xpos = [&](double v) {
    if (C == 1) return L + 0.5 * cw;
    size_t i = 0;
    while (i + 2 < C && xval(i + 1) <= v) ++i;
    const double a = xval(i), b = xval(i + 1);
    const double f = b != a ? (v - a) / (b - a) : 0;
    return L + (double(i) + f + 0.5) * cw;
  };
  const double x0 = xval(0), x1 = xval(C - 1);
  const auto xt = nice_ticks(std::min(x0, x1), std::max(x0, x1), 8);
  const double xstep = xt.size() >= 2 ? xt[1] - xt[0] : 1;
  o += "<g font-size=\"11\" fill=\"#333333\" text-anchor=\"middle\">\n";
  for (double v : xt) {
    const double x = xpos(v);
    o += str("<line x1=\"", num(x), "\" y1=\"", num(T + PH), "\" x2=\"", num(x), "\" y2=\"", num(T + PH + 4),
             "\" stroke=\"#444444\"/>");
    o += text(x, T + PH + 16, tick_label(v, xstep));
  }
  o += "</g>\n";

  // Color scale.
  const double sx = L + PW + 18, sw = 14;
  o += "<defs><linearGradient id=\"color-scale\" x1=\"0\" y1=\"1\" x2=\"0\" y2=\"0\">";
  for (int i = 0; i <= 8; ++i) o += str("<stop offset=\"", num(i / 8.0), "\" stop-color=\"", hex(viridis(i / 8.0)), "\"/>");
  o += "</linearGradient></defs>\n";
  o += str("<rect x=\"", num(sx), "\" y=\"", num(T), "\" width=\"", num(sw), "\" height=\"", num(PH),
           "\" fill=\"url(#color-scale)\" stroke=\"#444444\"/>\n");
  const auto vt = nice_ticks(vmin, vmax, 5);
  const double vstep = vt.size() >= 2 ? vt[1] - vt[0] : std::fabs(vmax - vmin);
  o += "<g font-size=\"10\" fill=\"#333333\">\n";
  for (double v : vt) {
    const double y = T + PH - (v - vmin) / (vmax - vmin) * PH;
    o += str("<line x1=\"", num(sx + sw), "\" y1=\"", num(y), "\" x2=\"", num(sx + sw + 3), "\" y2=\"", num(y),
             "\" stroke=\"#444444\"/>");
    o += text(sx + sw + 5, y + 3.5, tick_label(v, vstep));
  }
  o += "</g>\n";
  if (!opt.value_label.empty())
    o += str("<text transform=\"translate(", num(W - 8.0), ",", num(T + PH / 2), ") rotate(-90)\" text-anchor=\"middle\" "
             "font-size=\"11\">", esc(opt.value_label), "</text>\n");
  o += "</svg>\n";
  return o;
}

// ---- metrics.jsonl -> plots --------------------------------------------------------------------

namespace {

// Averages a stream of row vectors into at most kMaxColumns columns of (nearly) equal width:
// buckets of `width` entries; at 2 * kMaxColumns buckets, neighbours merge and the width doubles.
class ColumnBuckets {
 public:
  static constexpr size_t kMaxColumns = 400;
  explicit ColumnBuckets(size_t rows) : rows_(rows) {}

  void add(double step, const std::vector<double>& values) {  // values: [rows], NaN = missing
    if (b_.empty() || b_.back().n == width_) {
      if (b_.size() == 2 * kMaxColumns) {
        halve();
        width_ *= 2;
      }
      b_.push_back(Bucket{std::vector<double>(rows_, 0.0), std::vector<uint32_t>(rows_, 0), 0.0, 0});
    }
    Bucket& k = b_.back();
    for (size_t r = 0; r < rows_; ++r)
      if (std::isfinite(values[r])) { k.sum[r] += values[r]; ++k.cnt[r]; }
    k.step_sum += step;
    ++k.n;
  }

  // matrix[rows][columns] of means and the mean step of every column.
  void finish(std::vector<std::vector<double>>& matrix, std::vector<double>& steps) {
    while (b_.size() > kMaxColumns) halve();
    matrix.assign(rows_, std::vector<double>(b_.size(), NAN));
    steps.resize(b_.size());
    for (size_t c = 0; c < b_.size(); ++c) {
      steps[c] = b_[c].step_sum / double(b_[c].n);
      for (size_t r = 0; r < rows_; ++r)
        if (b_[c].cnt[r]) matrix[r][c] = b_[c].sum[r] / double(b_[c].cnt[r]);
    }
  }

 private:
  struct Bucket {
    std::vector<double> sum;
    std::vector<uint32_t> cnt;
    double step_sum;
    uint64_t n;
  };
  void halve() {
    std::vector<Bucket> m;
    for (size_t i = 0; i < b_.size(); i += 2) {
      Bucket k = std::move(b_[i]);
      if (i + 1 < b_.size()) {
        for (size_t r = 0; r < rows_; ++r) { k.sum[r] += b_[i + 1].sum[r]; k.cnt[r] += b_[i + 1].cnt[r]; }
        k.step_sum += b_[i + 1].step_sum;
        k.n += b_[i + 1].n;
      }
      m.push_back(std::move(k));
    }
    b_ = std::move(m);
  }
  size_t rows_;
  uint64_t width_ = 1;
  std::vector<Bucket> b_;
};

// Layer number from a key like "3", "layer_3", "layers.3"; -1 when it has no digits.
long layer_number(const std::string& key) {
  const size_t p = key.find_last_of("0123456789");
  if (p == std::string::npos) return -1;
  size_t s = p;
  while (s > 0 && std::isdigit(static_cast<unsigned char>(key[s - 1]))) --s;
  return std::stol(key.substr(s, p - s + 1));
}

// expert_load -> [(layer label, per-expert values)] in layer order.
std::vector<std::pair<std::string, std::vector<double>>> parse_expert_load(const nlohmann::json& j) {
  std::vector<std::pair<std::string, std::vector<double>>> out;
  auto values = [](const nlohmann::json& a, const std::string& where) {
    if (!a.is_array()) fail("expert_load[", where, "] must be an array of numbers");
    std::vector<double> v;
    for (const auto& x : a) v.push_back(x.is_number() ? x.get<double>() : NAN);
    return v;
  };
  if (j.is_array()) {
    for (size_t i = 0; i < j.size(); ++i)
      if (!j[i].is_null() && !(j[i].is_array() && j[i].empty())) out.push_back({std::to_string(i), values(j[i], std::to_string(i))});
  } else if (j.is_object()) {
    for (const auto& [k, v] : j.items())
      if (!v.is_null() && !(v.is_array() && v.empty())) {
        const long n = layer_number(k);
        out.push_back({n >= 0 ? std::to_string(n) : k, values(v, k)});
      }
    std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
      const long x = layer_number(a.first), y = layer_number(b.first);
      return x != y ? x < y : a.first < b.first;
    });
  } else if (!j.is_null()) {
    fail("expert_load must be an array (by layer) or an object (layer -> array)");
  }
  return out;
}

// Averages consecutive points so at most max_points remain.
std::vector<std::pair<double, double>> downsample(const std::vector<std::pair<double, double>>& p, size_t max_points) {
  if (p.size() <= max_points) return p;
  const size_t k = (p.size() + max_points - 1) / max_points;
  std::vector<std::pair<double, double>> o;
  for (size_t i = 0; i < p.size(); i += k) {
    double sx = 0, sy = 0;
    size_t n = 0, e = std::min(p.size(), i + k);
    for (size_t j = i; j < e; ++j) { sx += p[j].first; sy += p[j].second; ++n; }
    o.push_back({sx / double(n), sy / double(n)});
  }
  return o;
}

}  // namespace

void write_training_plots(const std::string& metrics_jsonl_path, const std::string& out_dir) {
  std::ifstream in(metrics_jsonl_path, std::ios::binary);
  if (!in) fail(ErrorKind::NotFound, "cannot open ", metrics_jsonl_path);
  std::vector<std::pair<double, double>> loss, val_loss, lr, tps;
  // Expert-load rows are fixed by the first record that has any: (layer label, number of experts).
  std::vector<std::pair<std::string, size_t>> layers;
  std::map<std::string, std::pair<size_t, size_t>> layer_row;  // label -> (first row, experts)
  size_t rows = 0;
  std::unique_ptr<ColumnBuckets> buckets;
  std::string line;
  int64_t lineno = 0, records = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      fail(ErrorKind::Format, metrics_jsonl_path, ":", lineno, ": invalid JSON (", e.what(), ")");
    }
    if (!j.is_object()) fail(ErrorKind::Format, metrics_jsonl_path, ":", lineno, ": expected a JSON object");
    const double step = j.contains("step") && j["step"].is_number() ? j["step"].get<double>() : double(records);
    ++records;
    auto take = [&](const char* k, std::vector<std::pair<double, double>>& dst) {
      if (j.contains(k) && j[k].is_number()) dst.push_back({step, j[k].get<double>()});
    };
    take("loss", loss);
    take("val_loss", val_loss);
    take("lr", lr);
    take("tokens_per_s", tps);
    if (!j.contains("expert_load")) continue;
    std::vector<std::pair<std::string, std::vector<double>>> el;
    try {
      el = parse_expert_load(j["expert_load"]);
    } catch (const Error& e) {
      fail(ErrorKind::Format, metrics_jsonl_path, ":", lineno, ": ", e.what());
    }
    if (el.empty()) continue;
    if (!buckets) {
      for (const auto& [name, v] : el) {
        layer_row[name] = {rows, v.size()};
        layers.push_back({name, v.size()});
        rows += v.size();
      }
      buckets = std::make_unique<ColumnBuckets>(rows);
    }
    std::vector<double> row(rows, NAN);
    for (const auto& [name, v] : el) {
      auto it = layer_row.find(name);
      if (it == layer_row.end()) continue;  // a layer not in the first record: ignored
      const size_t n = std::min(v.size(), it->second.second);
      for (size_t e = 0; e < n; ++e) row[it->second.first + e] = v[e];
    }
    buckets->add(step, row);
  }
  if (in.bad()) fail(ErrorKind::Io, "error reading ", metrics_jsonl_path);

  make_dirs(out_dir);
  constexpr size_t kMaxPoints = 2000;
  std::vector<PlotSeries> ls = {{"train", downsample(loss, kMaxPoints)}};
  if (!val_loss.empty()) ls.push_back({"val", downsample(val_loss, kMaxPoints)});
  write_text_file_atomic(path_join(out_dir, "loss.svg"), line_chart_svg("Loss", "step", "cross-entropy (nats)", ls));
  write_text_file_atomic(path_join(out_dir, "lr.svg"),
                         line_chart_svg("Learning rate", "step", "lr", {{"lr", downsample(lr, kMaxPoints)}}));
  write_text_file_atomic(path_join(out_dir, "throughput.svg"),
                         line_chart_svg("Throughput", "step", "tokens / s", {{"tokens/s", downsample(tps, kMaxPoints)}}));

  std::vector<std::vector<double>> matrix;
  std::vector<double> steps;
  std::vector<std::string> labels;
  HeatmapOptions ho;
  ho.value_label = "fraction of routed tokens";
  ho.vmin = 0;
  if (buckets) {
    buckets->finish(matrix, steps);
    for (const auto& [name, n] : layers) {
      if (!labels.empty()) ho.row_separators.push_back(labels.size());
      for (size_t e = 0; e < n; ++e) labels.push_back(str("L", name, "\u00b7E", e));
    }
  }
  write_text_file_atomic(path_join(out_dir, "expert_load.svg"),
                         heatmap_svg("Expert load (layer\u00b7expert)", labels, matrix, steps, ho));
}

}  // namespace qs
