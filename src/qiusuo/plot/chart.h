// Charts as standalone SVG files (no dependencies; open them in any browser): line charts of
// several named series over one x axis (training and validation loss; GRPO reward, accuracy or
// response length over steps), horizontal bar charts of named values (a comparison of stages or
// runs), and heatmaps (MoE expert load over steps).
//
// Every chart has a title, labelled axes with round-number ticks and, where it has several
// series, a legend. Output is deterministic (the same chart gives the same bytes) and always
// well-formed: texts are XML-escaped, NaN/infinite values are left out (a line breaks there,
// a bar reads "n/a"), huge values are clamped to +-1e300 before scaling, empty input draws
// "no data". write_svg() writes a file atomically (io/file.h), creating its directory.
#pragma once
#include <cmath>
#include <string>
#include <utility>
#include <vector>

namespace qs::plot {

struct Series {
  std::string name;                               // legend entry (empty: not in the legend)
  std::vector<std::pair<double, double>> points;  // (x, y); a non-finite x or y breaks the line
};

// A series from parallel x and y vectors (qs::Error when their lengths differ).
Series series(std::string name, const std::vector<double>& x, const std::vector<double>& y);

struct LineChart {
  std::string title, x_label, y_label;
  std::vector<Series> series;  // colors follow the order (10 colors, then dashed repeats)
  bool log_y = false;          // logarithmic y axis (points with y <= 0 are left out)
  int width = 800, height = 450;
  size_t max_points = 2000;    // longer series are averaged in consecutive buckets down to this
  size_t max_markers = 60;     // series with at most this many points get a marker per point
};

struct Bar {
  std::string name;
  double value = NAN;  // NaN / infinite: no bar, "n/a"
};

// Horizontal bars from a zero baseline (negative values go left), one row per bar in the given
// order, the value printed at the end of each bar.
struct BarChart {
  std::string title, value_label;
  std::vector<Bar> bars;
  int width = 800;  // the height follows from the number of bars
};

struct Heatmap {
  std::string title, x_label = "step";
  std::string value_label;                // caption of the color scale
  std::vector<std::string> row_labels;    // [rows], thinned out when there are many
  std::vector<std::vector<double>> cells; // [rows][cols]; NaN cells are gray, short rows padded with NaN
  std::vector<double> x_values;           // [cols] ascending (e.g. steps); empty = 0, 1, 2, ...
  double vmin = NAN, vmax = NAN;          // color range; NaN = from the data
  std::vector<size_t> row_separators;     // a line above each of these rows (layer boundaries)
  int width = 900;
};
// Heatmaps over more than kMaxHeatmapCells cells average neighbouring columns (down to 64), then
// neighbouring rows, so the file stays small; runs of equal color in a row are one rectangle.
constexpr size_t kMaxHeatmapCells = 40000;

std::string to_svg(const LineChart& chart);
std::string to_svg(const BarChart& chart);
std::string to_svg(const Heatmap& chart);  // qs::Error when x_values has the wrong length

// Atomic write of to_svg(chart) to `path` (its directory is created when missing).
void write_svg(const std::string& path, const LineChart& chart);
void write_svg(const std::string& path, const BarChart& chart);
void write_svg(const std::string& path, const Heatmap& chart);

// Round tick values inside [lo, hi]: multiples of 1, 2 or 5 x 10^k, about `target` of them.
std::vector<double> nice_ticks(double lo, double hi, int target = 6);

}  // namespace qs::plot
