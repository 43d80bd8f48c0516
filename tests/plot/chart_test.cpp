// SVG charts (plot/chart.h), parsed back with a strict XML reader: structure (title, axes, ticks,
// legend, one path per series, one rect per bar), NaN / empty / one-point input, huge values
// (every coordinate finite and on the page), determinism, atomic files.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <set>
#include <vector>

#include "plot/svg_dom.h"
#include "qiusuo/core/error.h"
#include "qiusuo/io/file.h"
#include "qiusuo/plot/chart.h"
#include "test_util.h"

namespace qs::plot {
namespace {

using testing::HasSubstr;
using testing::Not;
using testing_util::TempDir;
using testing_util::XmlElement;
using testing_util::XmlReader;
using testing_util::xml_problem;

// Parses and checks what every chart must satisfy: an <svg> root with the SVG namespace and a
// size, a title, and every coordinate attribute a finite number inside [-1e6, 1e6].
std::unique_ptr<XmlElement> parse_chart(const std::string& svg) {
  std::unique_ptr<XmlElement> root;
  try {
    root = XmlReader::parse(svg);
  } catch (const testing_util::XmlError& e) {
    ADD_FAILURE() << e.what();
    return std::make_unique<XmlElement>();
  }
  EXPECT_EQ(root->name, "svg");
  EXPECT_EQ(root->attr("xmlns"), "http://www.w3.org/2000/svg");
  EXPECT_GT(std::stod(root->attr("width")), 0);
  EXPECT_GT(std::stod(root->attr("height")), 0);
  EXPECT_EQ(root->all("text", "title").size(), 1u);
  for (const auto* e : root->all())
    for (const char* k : {"x", "y", "x1", "y1", "x2", "y2", "cx", "cy", "width", "height", "r"})
      if (e->attrs.count(k) && e->name != "svg") {
        const std::string v = e->attr(k);
        char* end = nullptr;
        const double d = std::strtod(v.c_str(), &end);
        EXPECT_TRUE(end && *end == 0 && std::isfinite(d) && std::fabs(d) <= 1e6) << e->name << " " << k << "=" << v;
      }
  for (const auto* p : root->all("path"))
    for (double d : testing_util::path_numbers(p->attr("d"))) EXPECT_TRUE(std::isfinite(d) && std::fabs(d) <= 1e6) << d;
  EXPECT_THAT(svg, Not(HasSubstr("nan")));
  EXPECT_THAT(svg, Not(HasSubstr("inf")));
  return root;
}

std::vector<std::string> texts(const XmlElement& root, const std::string& cls) {
  std::vector<std::string> v;
  for (const auto* g : root.all("g", cls))
    for (const auto* t : g->all("text")) v.push_back(t->all_text());
  return v;
}

size_t count(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + what.size())) ++n;
  return n;
}

TEST(Svg, ReaderCatchesBrokenXml) {
  EXPECT_EQ(xml_problem("<svg><g a=\"1\"/><text>x &amp; y</text></svg>"), "");
  EXPECT_NE(xml_problem("<svg><g></svg>"), "");
  EXPECT_NE(xml_problem("<svg a=1></svg>"), "");
  EXPECT_NE(xml_problem("<svg a=\"1\" a=\"2\"></svg>"), "");
  EXPECT_NE(xml_problem("<svg>a & b</svg>"), "");
  EXPECT_NE(xml_problem("<svg></svg><svg></svg>"), "");
  EXPECT_NE(xml_problem("<svg>\xff</svg>"), "");
}

TEST(Ticks, AreRound) {
  EXPECT_EQ(nice_ticks(0, 10, 5), (std::vector<double>{0, 2, 4, 6, 8, 10}));
  EXPECT_EQ(nice_ticks(0.13, 0.92, 4), (std::vector<double>{0.2, 0.4, 0.6, 0.8}));
  const auto t = nice_ticks(-3.7, 1234, 6);
  ASSERT_GE(t.size(), 3u);
  for (double v : t) EXPECT_EQ(std::fmod(v, 200.0), 0.0) << v;
  EXPECT_EQ(nice_ticks(5, 5), std::vector<double>{5});
  EXPECT_TRUE(nice_ticks(NAN, 1).empty());
  EXPECT_LE(nice_ticks(-DBL_MAX, DBL_MAX).size(), 20u);
  EXPECT_LE(nice_ticks(1e17, 1e17 + 32).size(), 20u);  // a span near the resolution of the values
}

TEST(LineChart, SeriesLegendAxesAndTicks) {
  Series a{"train <loss>", {}}, b{"val & test", {}};
  for (int i = 0; i <= 200; ++i) a.points.push_back({double(i), 10.0 / (1 + 0.05 * i)});
  for (int i = 0; i <= 200; i += 50) b.points.push_back({double(i), 11.0 / (1 + 0.05 * i)});
  const LineChart c{"Loss \"run 1\"", "step", "loss", {a, b, Series{"", {{0, 5}}}}};
  const std::string svg = to_svg(c);
  const auto root = parse_chart(svg);
  EXPECT_EQ(root->all("text", "title")[0]->all_text(), "Loss \"run 1\"");
  const auto paths = root->all("path", "series");
  ASSERT_EQ(paths.size(), 3u);  // one per series, in order
  EXPECT_EQ(paths[0]->attr("data-name"), "train <loss>");
  EXPECT_EQ(paths[1]->attr("data-name"), "val & test");
  EXPECT_NE(paths[0]->attr("stroke"), paths[1]->attr("stroke"));
  EXPECT_EQ(texts(*root, "legend"), (std::vector<std::string>{"train <loss>", "val & test"}));  // unnamed: no entry
  EXPECT_EQ(root->all("circle").size(), 5u + 1u);  // markers for the short series only
  std::vector<std::string> labels;
  for (const auto* t : root->all("text", "axis-label")) labels.push_back(t->all_text());
  EXPECT_EQ(labels, (std::vector<std::string>{"step", "loss"}));
  const auto xt = texts(*root, "x-ticks");
  EXPECT_THAT(xt, testing::Contains("0"));
  EXPECT_THAT(xt, testing::Contains("200"));  // the axis is rounded out to a tick
  EXPECT_GE(texts(*root, "y-ticks").size(), 3u);
  EXPECT_EQ(svg, to_svg(c));  // deterministic
}

TEST(LineChart, NaNEmptyOnePointAndLog) {
  Series s{"s", {{0, 1}, {1, NAN}, {2, 3}, {3, INFINITY}, {4, 2}, {NAN, 7}}};
  auto root = parse_chart(to_svg(LineChart{"t", "x", "y", {s}}));
  ASSERT_EQ(root->all("path", "series").size(), 1u);
  EXPECT_EQ(count(root->all("path", "series")[0]->attr("d"), "M"), 3u);  // the line breaks at each non-finite value

  for (const auto& ss : std::vector<std::vector<Series>>{{}, {{"empty", {}}}, {{"nan", {{NAN, NAN}}}}}) {
    const std::string svg = to_svg(LineChart{"t", "x", "y", ss});
    parse_chart(svg);
    EXPECT_THAT(svg, HasSubstr(">no data</text>"));
  }

  // One point: drawn as a dot with a marker, on an axis widened around it.
  root = parse_chart(to_svg(LineChart{"one", "x", "y", {{"p", {{3, 0.5}}}}}));
  EXPECT_EQ(root->all("text", "no-data").size(), 0u);
  EXPECT_THAT(root->all("path", "series")[0]->attr("d"), HasSubstr(" h0 "));
  EXPECT_EQ(root->all("circle").size(), 1u);
  EXPECT_GE(texts(*root, "x-ticks").size(), 2u);

  LineChart l{"log", "x", "y", {{"lr", {{0, 0}, {1, 1e-4}, {2, 3e-3}, {3, -1}, {4, 1e-2}}}}};
  l.log_y = true;
  root = parse_chart(to_svg(l));
  const auto yt = texts(*root, "y-ticks");
  EXPECT_THAT(yt, testing::Contains("0.0001"));
  EXPECT_THAT(yt, testing::Contains("0.01"));

  const std::string flat = to_svg(LineChart{"flat", "x", "y", {{"flat", {{0, 2}, {1, 2}}}}});
  parse_chart(flat);
  EXPECT_THAT(flat, Not(HasSubstr("no data")));
}

TEST(LineChart, HugeValuesStayOnThePage) {
  const std::vector<std::vector<std::pair<double, double>>> cases = {
      {{0, 1e300}, {1, -1e300}},
      {{-DBL_MAX, DBL_MAX}, {DBL_MAX, -DBL_MAX}},
      {{0, 1e17}, {1, 1e17 + 16}, {2, 1e17 + 32}},  // a span near the resolution of the values
      {{1e-300, 1e-310}, {2e-300, 0}},
      {{0, 5}, {1e15, 6}},
  };
  for (const auto& pts : cases) {
    for (bool logy : {false, true}) {
      LineChart c{"huge", "x", "y", {{"a", pts}, {"b", {{0, 1}}}}};
      c.log_y = logy;
      const auto root = parse_chart(to_svg(c));
      EXPECT_EQ(root->all("path", "series").size(), 2u);
      const auto yt = texts(*root, "y-ticks");
      EXPECT_EQ(std::set<std::string>(yt.begin(), yt.end()).size(), yt.size()) << "tick labels repeat";
    }
  }
}

TEST(LineChart, LongSeriesAreAveragedAndManySeriesFitTheLegend) {
  Series s{"long", {}};
  for (int i = 0; i < 100000; ++i) s.points.push_back({double(i), std::sin(i * 0.001)});
  LineChart c{"long", "x", "y", {s}};
  c.max_points = 500;
  auto root = parse_chart(to_svg(c));
  EXPECT_EQ(testing_util::path_numbers(root->all("path", "series")[0]->attr("d")).size(), 2u * 500 + 1);  // + h0

  LineChart many{"many", "x", "y", {}};
  for (int i = 0; i < 100; ++i) many.series.push_back({"series " + std::to_string(i), {{0, double(i)}, {1, double(i + 1)}}});
  const std::string svg = to_svg(many);
  root = parse_chart(svg);
  EXPECT_EQ(root->all("path", "series").size(), 100u);
  const auto legend = texts(*root, "legend");
  ASSERT_LT(legend.size(), 100u);
  EXPECT_THAT(legend.back(), testing::MatchesRegex("\\+[0-9]+ more"));
  EXPECT_NE(root->all("path", "series")[10]->attr("stroke-dasharray"), "");  // colors repeat dashed
}

TEST(LineChart, SeriesFromVectors) {
  const Series s = series("r", {1, 2, 3}, {0.5, 0.25, 0.125});
  ASSERT_EQ(s.points.size(), 3u);
  EXPECT_EQ(s.points[2], (std::pair<double, double>{3, 0.125}));
  EXPECT_THROW(series("bad", {1, 2}, {1}), Error);
}

TEST(BarChart, BarsValuesAndNames) {
  BarChart c{"Accuracy by stage", "accuracy", {{"base", 0.12}, {"SFT", 0.3}, {"GRPO <r1>", 0.455}, {"broken", NAN}, {"delta", -0.05}}};
  const std::string svg = to_svg(c);
  const auto root = parse_chart(svg);
  const auto bars = root->all("rect", "bar");
  ASSERT_EQ(bars.size(), 4u);  // NaN: no bar
  const auto labels = texts(*root, "bar-labels");
  EXPECT_THAT(labels, testing::IsSupersetOf({"base", "SFT", "GRPO <r1>", "broken", "delta", "0.12", "0.455", "n/a", "-0.05"}));
  // Lengths are proportional to the values; the negative bar lies left of the baseline.
  auto w = [&](size_t i) { return std::stod(bars[i]->attr("width")); };
  EXPECT_NEAR(w(1) / w(0), 0.3 / 0.12, 0.05);
  EXPECT_NEAR(w(3) / w(0), 0.05 / 0.12, 0.05);
  EXPECT_LT(std::stod(bars[3]->attr("x")), std::stod(bars[0]->attr("x")));
  EXPECT_THAT(texts(*root, "x-ticks"), testing::Contains("0.0"));
  EXPECT_EQ(svg, to_svg(c));

  const std::string empty = to_svg(BarChart{"none", "v", {}});
  parse_chart(empty);
  EXPECT_THAT(empty, HasSubstr(">no data</text>"));
  const std::string all_nan = to_svg(BarChart{"missing", "v", {{"a", NAN}, {"b", INFINITY}}});
  EXPECT_EQ(parse_chart(all_nan)->all("rect", "bar").size(), 0u);
  EXPECT_THAT(all_nan, HasSubstr(">no data</text>"));

  const auto one = parse_chart(to_svg(BarChart{"one", "v", {{"only", 7}}}));
  EXPECT_EQ(one->all("rect", "bar").size(), 1u);

  const auto huge = parse_chart(to_svg(BarChart{"huge", "v", {{"a", DBL_MAX}, {"b", -1e300}, {"c", 1}}}));
  EXPECT_EQ(huge->all("rect", "bar").size(), 3u);

  const std::string long_name(200, 'n');
  const auto ln = parse_chart(to_svg(BarChart{"long", "v", {{long_name, 1}, {"bad \xff utf8", 2}}}));
  for (const auto& t : texts(*ln, "bar-labels")) EXPECT_LT(t.size(), 100u);
}

TEST(Heatmap, DimensionsLabelsAndNaN) {
  const size_t R = 6, C = 9;
  Heatmap h;
  h.title = "Expert load";
  h.cells.assign(R, std::vector<double>(C));
  for (size_t r = 0; r < R; ++r)
    for (size_t c = 0; c < C; ++c) h.cells[r][c] = double((r + c) % 2);  // checkerboard: no runs merge
  for (size_t r = 0; r < R; ++r) h.row_labels.push_back("L" + std::to_string(r / 3) + "\u00b7E" + std::to_string(r % 3));
  for (size_t c = 0; c < C; ++c) h.x_values.push_back(double(c * 10));
  h.row_separators = {3};
  h.value_label = "load";
  auto root = parse_chart(to_svg(h));
  EXPECT_EQ(root->all("g", "cells")[0]->all("rect").size(), R * C);
  EXPECT_THAT(texts(*root, "row-labels"), testing::Contains("L1\u00b7E2"));
  EXPECT_THAT(texts(*root, "x-ticks"), testing::Contains("80"));
  EXPECT_EQ(root->all("linearGradient").size(), 1u);

  // Equal neighbours merge into one rect; NaN cells are not drawn.
  Heatmap u;
  u.title = "u";
  u.row_labels = {"a", "b"};
  u.cells.assign(2, std::vector<double>(5, 0.5));
  u.cells[1][2] = NAN;
  root = parse_chart(to_svg(u));
  EXPECT_EQ(root->all("g", "cells")[0]->all("rect").size(), 3u);  // row a: 1 run; row b: 2 runs around the NaN

  Heatmap e;
  e.title = "empty";
  EXPECT_THAT(to_svg(e), HasSubstr("no data"));
  parse_chart(to_svg(e));

  Heatmap bad;
  bad.title = "bad";
  bad.cells = {{1, 2}};
  bad.x_values = {1, 2, 3};
  EXPECT_THROW(to_svg(bad), Error);
}

TEST(Heatmap, LargeMatricesAreAveragedDown) {
  Heatmap h;
  h.title = "big";
  h.cells.assign(2000, std::vector<double>(400));
  for (size_t r = 0; r < h.cells.size(); ++r)
    for (size_t c = 0; c < 400; ++c) h.cells[r][c] = std::sin(double(r * c));
  h.cells[5][5] = 1e308;  // outside the color range: the top color
  h.vmin = -1;
  h.vmax = 1;
  h.row_labels.assign(2000, "row");
  const std::string svg = to_svg(h);
  const auto root = parse_chart(svg);
  const size_t cells = root->all("g", "cells")[0]->all("rect").size();
  EXPECT_GT(cells, 1000u);
  EXPECT_LE(cells, kMaxHeatmapCells);
  EXPECT_LT(svg.size(), size_t(8) << 20);
  EXPECT_EQ(root->all("image").size(), 0u);
}

TEST(WriteSvg, AtomicFileInANewDirectory) {
  TempDir dir("plot");
  const LineChart c{"t", "x", "y", {{"a", {{0, 1}, {1, 2}}}}};
  write_svg(dir / "sub/dir/a.svg", c);
  EXPECT_EQ(read_text_file(dir / "sub/dir/a.svg"), to_svg(c));
  const BarChart b{"b", "v", {{"x", 1}}};
  write_svg(dir / "b.svg", b);
  EXPECT_EQ(read_text_file(dir / "b.svg"), to_svg(b));
  EXPECT_THROW(write_svg("/proc/nonexistent/dir/c.svg", b), Error);
}

}  // namespace
}  // namespace qs::plot
