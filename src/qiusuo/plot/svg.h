// Internals of the plot module: SVG text building and axis scaling shared by the charts.
// Not part of the public API (see chart.h).
#pragma once
#include <array>
#include <string>
#include <string_view>
#include <vector>

namespace qs::plot::detail {

inline constexpr std::array<const char*, 10> kPalette = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                                         "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
// Data values are clamped to +-kMaxAbs so that spans and products stay finite.
inline constexpr double kMaxAbs = 1e300;

double clamp_value(double v);          // finite v clamped to +-kMaxAbs (NaN stays NaN)
std::string esc(std::string_view s);   // XML text / attribute escaping; C0 controls become spaces
std::string num(double v);             // pixel coordinate "12.35"; non-finite -> 0, clamped to +-1e6
std::string ellipsize(std::string_view s, size_t max_chars);  // at most max_chars code points, "…" if cut
size_t text_width_chars(std::string_view s);                  // code points (for layout)

// Builds one SVG document: the header and a white background on construction, elements in
// between, the closing tag in finish().
class Svg {
 public:
  Svg(int width, int height);
  void raw(std::string_view s) { o_ += s; }
  void text(double x, double y, std::string_view s, std::string_view attrs = "");
  void line(double x1, double y1, double x2, double y2, std::string_view attrs);
  void rect(double x, double y, double w, double h, std::string_view attrs);
  void title(double width, std::string_view title);  // centered, bold, at the top
  void y_label(double x, double y, std::string_view label, std::string_view attrs = "");  // rotated -90
  void no_data(double x, double y);
  std::string finish();

 private:
  std::string o_;
};

// A linear axis covering [lo, hi] rounded out to round ticks: multiples of 1, 2 or 5 x 10^k.
// Degenerate ranges (one value) are widened; non-finite input gives [0, 1].
struct Axis {
  double lo = 0, hi = 1, step = 0.2;
  std::vector<double> ticks;
  std::string label(double v) const;  // just enough decimals (or significant digits) for `step`
  double frac(double v) const { return (v - lo) / (hi - lo); }  // 0 at lo, 1 at hi
};
Axis linear_axis(double lo, double hi, int target);

// A round step near `raw`: m x 10^e with m in {1, 2, 5, 10}; value(k) = k * step computed so that
// decimals are the closest double (0.6, not 0.6000000000000001).
struct NiceStep {
  double m = 1;
  int e = 0;
  double value() const;
  double times(double k) const;
};
NiceStep nice_step(double raw);
std::string tick_label(double v, double step);

}  // namespace qs::plot::detail
