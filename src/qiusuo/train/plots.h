// Training plots as standalone SVG files (no dependencies; open them in any browser):
// line charts (loss, learning rate, throughput) and a heatmap of MoE expert load over steps.
//
// write_training_plots() reads the trainer's metrics.jsonl: one JSON object per logged step with
//   step (number), loss, lr, tokens_per_s, optional val_loss (numbers; null = not measured) and
//   expert_load: either an array indexed by layer (null / [] for dense layers) or an object keyed by
//   layer ("3" or "layer_3"), each entry the fraction of routed tokens per expert ([n_experts]).
#pragma once
#include <cmath>
#include <string>
#include <utility>
#include <vector>

namespace qs {

struct PlotSeries {
  std::string name;                                // legend entry (empty: not in the legend)
  std::vector<std::pair<double, double>> points;   // (x, y); non-finite y breaks the line
};

struct LineChartOptions {
  bool log_y = false;  // logarithmic y axis (points with y <= 0 are left out)
  int width = 800;
  int height = 450;
};

// A line chart with axes, round-number ticks, grid, legend and one color per series. Series with
// at most 60 finite points also get a marker per point. Empty / all-NaN input draws "no data".
std::string line_chart_svg(const std::string& title, const std::string& x_label, const std::string& y_label,
                           const std::vector<PlotSeries>& series, const LineChartOptions& options = {});

struct HeatmapOptions {
  std::string x_label = "step";
  std::string value_label;                 // caption of the color scale
  double vmin = NAN, vmax = NAN;           // color range; NaN = from the data
  std::vector<size_t> row_separators;      // draw a line above these rows (e.g. layer boundaries)
  int width = 900;
};

// A heatmap: matrix[rows][cols] (NaN cells are left gray), rows labelled by row_labels[rows]
// (thinned out when there are many), columns placed at x_values[cols] (ascending, e.g. steps),
// with a viridis color scale legend. Up to 8000 cells are drawn as rects (runs of equal color
// merged); larger matrices are embedded as one PNG image with one pixel per cell.
std::string heatmap_svg(const std::string& title, const std::vector<std::string>& row_labels,
                        const std::vector<std::vector<double>>& matrix, const std::vector<double>& x_values,
                        const HeatmapOptions& options = {});

// Round tick values covering [lo, hi]: multiples of 1, 2 or 5 x 10^k, about `target` of them.
std::vector<double> nice_ticks(double lo, double hi, int target = 6);

// Reads a metrics.jsonl and writes out_dir/loss.svg (train + val loss), lr.svg, throughput.svg
// and expert_load.svg (rows = layer·expert, columns = steps averaged into <= 400 buckets), each
// atomically. qs::Error naming the file and line for invalid JSON.
void write_training_plots(const std::string& metrics_jsonl_path, const std::string& out_dir);

}  // namespace qs
