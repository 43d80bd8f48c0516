// SVG plots: well-formed XML (checked by a small parser below), series and legends present,
// NaN / empty input handled, heatmap dimensions, metrics.jsonl -> files.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <set>
#include <vector>

#include <nlohmann/json.hpp>

#include "qiusuo/core/error.h"
#include "qiusuo/io/file.h"
#include "qiusuo/train/plots.h"
#include "test_util.h"

namespace qs {
namespace {

using testing::HasSubstr;
using testing::Not;
using testing_util::TempDir;

// Minimal XML well-formedness check: one root element, balanced and properly nested tags,
// quoted attributes without '<', valid entity references, nothing but whitespace outside the
// root. Returns "" when well-formed, else what is wrong and where.
std::string xml_problem(const std::string& s) {
  std::vector<std::string> stack;
  size_t i = 0, roots = 0;
  auto name_char = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == ':' || c == '.'; };
  auto check_entities = [&](size_t b, size_t e) -> std::string {
    for (size_t k = b; k < e; ++k) {
      if (s[k] == '<') return "'<' in text or attribute at " + std::to_string(k);
      if (s[k] != '&') continue;
      const size_t semi = s.find(';', k);
      if (semi == std::string::npos || semi > e) return "unterminated entity at " + std::to_string(k);
      const std::string ent = s.substr(k + 1, semi - k - 1);
      static const std::set<std::string> named = {"amp", "lt", "gt", "quot", "apos"};
      if (!named.count(ent) && !(ent.size() > 1 && ent[0] == '#')) return "unknown entity &" + ent + ";";
    }
    return "";
  };
  if (s.compare(0, 5, "<?xml") == 0) {
    i = s.find("?>");
    if (i == std::string::npos) return "unterminated XML declaration";
    i += 2;
  }
  while (i < s.size()) {
    const size_t lt = s.find('<', i);
    const size_t text_end = lt == std::string::npos ? s.size() : lt;
    if (stack.empty() && s.find_first_not_of(" \t\r\n", i) < text_end) return "text outside the root at " + std::to_string(i);
    if (auto e = check_entities(i, text_end); !e.empty()) return e;
    if (lt == std::string::npos) break;
    if (s.compare(lt, 4, "<!--") == 0) {
      const size_t end = s.find("-->", lt);
      if (end == std::string::npos) return "unterminated comment";
      i = end + 3;
      continue;
    }
    size_t k = lt + 1;
    const bool closing = k < s.size() && s[k] == '/';
    if (closing) ++k;
    const size_t n0 = k;
    while (k < s.size() && name_char(s[k])) ++k;
    const std::string name = s.substr(n0, k - n0);
    if (name.empty()) return "tag without a name at " + std::to_string(lt);
    if (closing) {
      while (k < s.size() && std::isspace(static_cast<unsigned char>(s[k]))) ++k;
      if (k >= s.size() || s[k] != '>') return "bad closing tag </" + name;
      if (stack.empty() || stack.back() != name) return "</" + name + "> does not close <" + (stack.empty() ? "" : stack.back()) + ">";
      stack.pop_back();
      i = k + 1;
      continue;
    }
    // Attributes.
    std::set<std::string> attrs;
    bool self_closing = false;
    while (true) {
      while (k < s.size() && std::isspace(static_cast<unsigned char>(s[k]))) ++k;
      if (k >= s.size()) return "unterminated tag <" + name;
      if (s[k] == '>') { ++k; break; }
      if (s.compare(k, 2, "/>") == 0) { self_closing = true; k += 2; break; }
      const size_t a0 = k;
      while (k < s.size() && name_char(s[k])) ++k;
      const std::string an = s.substr(a0, k - a0);
      if (an.empty()) return "bad attribute in <" + name + "> at " + std::to_string(k);
      if (!attrs.insert(an).second) return "duplicate attribute " + an + " in <" + name + ">";
      if (k >= s.size() || s[k] != '=') return "attribute " + an + " without a value";
      ++k;
      if (k >= s.size() || (s[k] != '"' && s[k] != '\'')) return "unquoted attribute " + an;
      const char q = s[k];
      const size_t v1 = s.find(q, k + 1);
      if (v1 == std::string::npos) return "unterminated attribute " + an;
      if (auto e = check_entities(k + 1, v1); !e.empty()) return e;
      k = v1 + 1;
    }
    if (stack.empty()) ++roots;
    if (roots > 1) return "more than one root element";
    if (!self_closing) stack.push_back(name);
    i = k;
  }
  if (!stack.empty()) return "unclosed <" + stack.back() + ">";
  if (roots != 1) return "no root element";
  return "";
}

size_t count(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + what.size())) ++n;
  return n;
}

// The part of a heatmap with the cells.
std::string cell_group(const std::string& svg) {
  const size_t b = svg.find("<g shape-rendering=\"crispEdges\"");
  if (b == std::string::npos) return "";
  return svg.substr(b, svg.find("</g>", b) - b);
}

TEST(Plots, CheckerCatchesBrokenXml) {
  EXPECT_EQ(xml_problem("<svg><g a=\"1\"/><text>x &amp; y</text></svg>"), "");
  EXPECT_NE(xml_problem("<svg><g></svg>"), "");
  EXPECT_NE(xml_problem("<svg a=1></svg>"), "");
  EXPECT_NE(xml_problem("<svg>a & b</svg>"), "");
  EXPECT_NE(xml_problem("<svg></svg><svg></svg>"), "");
}

TEST(Plots, NiceTicksAreRound) {
  EXPECT_EQ(nice_ticks(0, 10, 5), (std::vector<double>{0, 2, 4, 6, 8, 10}));
  EXPECT_EQ(nice_ticks(0.13, 0.92, 4), (std::vector<double>{0.2, 0.4, 0.6, 0.8}));
  const auto t = nice_ticks(-3.7, 1234, 6);
  ASSERT_GE(t.size(), 3u);
  for (double v : t) EXPECT_EQ(std::fmod(v, 200.0), 0.0) << v;
  EXPECT_EQ(nice_ticks(5, 5), std::vector<double>{5});
  EXPECT_TRUE(nice_ticks(NAN, 1).empty());
}

TEST(Plots, LineChartHasSeriesLegendAndAxes) {
  PlotSeries a{"train <loss>", {}}, b{"val & test", {}};
  for (int i = 0; i <= 200; ++i) a.points.push_back({double(i), 10.0 / (1 + 0.05 * i)});
  for (int i = 0; i <= 200; i += 50) b.points.push_back({double(i), 11.0 / (1 + 0.05 * i)});
  const std::string svg = line_chart_svg("Loss \"run 1\"", "step", "loss", {a, b});
  EXPECT_EQ(xml_problem(svg), "");
  EXPECT_THAT(svg, HasSubstr("train &lt;loss&gt;"));
  EXPECT_THAT(svg, HasSubstr("val &amp; test"));
  EXPECT_THAT(svg, HasSubstr("Loss &quot;run 1&quot;"));
  EXPECT_THAT(svg, HasSubstr("xmlns=\"http://www.w3.org/2000/svg\""));
  EXPECT_EQ(count(svg, "<path "), 2u);
  EXPECT_EQ(count(svg, "<circle"), 5u);  // markers for the short series only
  EXPECT_THAT(svg, HasSubstr(">200</text>"));  // a round x tick at the end
  EXPECT_THAT(svg, Not(HasSubstr("nan")));
}

TEST(Plots, LineChartNaNEmptyAndLog) {
  PlotSeries s{"s", {{0, 1}, {1, NAN}, {2, 3}, {3, INFINITY}, {4, 2}}};
  std::string svg = line_chart_svg("t", "x", "y", {s});
  EXPECT_EQ(xml_problem(svg), "");
  EXPECT_THAT(svg, Not(HasSubstr("nan")));
  EXPECT_THAT(svg, Not(HasSubstr("inf")));
  EXPECT_EQ(count(svg, " h0 "), 3u);  // the line breaks at each non-finite value: three pieces

  for (const auto& series : std::vector<std::vector<PlotSeries>>{{}, {{"empty", {}}}, {{"nan", {{NAN, NAN}}}}}) {
    svg = line_chart_svg("t", "x", "y", series);
    EXPECT_EQ(xml_problem(svg), "");
    EXPECT_THAT(svg, HasSubstr("no data"));
  }

  PlotSeries l{"lr", {{0, 0}, {1, 1e-4}, {2, 3e-3}, {3, -1}, {4, 1e-2}}};
  LineChartOptions o;
  o.log_y = true;
  svg = line_chart_svg("log", "x", "y", {l}, o);
  EXPECT_EQ(xml_problem(svg), "");
  EXPECT_THAT(svg, HasSubstr(">0.0001</text>"));
  EXPECT_THAT(svg, HasSubstr(">0.01</text>"));

  PlotSeries flat{"flat", {{0, 2}, {1, 2}}};
  svg = line_chart_svg("flat", "x", "y", {flat});
  EXPECT_EQ(xml_problem(svg), "");
  EXPECT_THAT(svg, Not(HasSubstr("no data")));
}

TEST(Plots, HeatmapDimensionsLabelsAndNaN) {
  const size_t R = 6, C = 9;
  std::vector<std::vector<double>> m(R, std::vector<double>(C));
  for (size_t r = 0; r < R; ++r)
    for (size_t c = 0; c < C; ++c) m[r][c] = double((r + c) % 2);  // checkerboard: no runs merge
  std::vector<std::string> labels;
  for (size_t r = 0; r < R; ++r) labels.push_back("L" + std::to_string(r / 3) + "\u00b7E" + std::to_string(r % 3));
  std::vector<double> steps;
  for (size_t c = 0; c < C; ++c) steps.push_back(double(c * 10));
  HeatmapOptions o;
  o.row_separators = {3};
  o.value_label = "load";
  std::string svg = heatmap_svg("Expert load", labels, m, steps, o);
  EXPECT_EQ(xml_problem(svg), "");
  EXPECT_EQ(count(cell_group(svg), "<rect"), R * C);
  EXPECT_THAT(svg, HasSubstr("L1\u00b7E2"));
  EXPECT_THAT(svg, HasSubstr("color-scale"));
  EXPECT_THAT(svg, HasSubstr(">80</text>"));

  // Equal neighbours merge into one rect; NaN cells are not drawn.
  std::vector<std::vector<double>> u(2, std::vector<double>(5, 0.5));
  u[1][2] = NAN;
  svg = heatmap_svg("u", {"a", "b"}, u, {});
  EXPECT_EQ(xml_problem(svg), "");
  EXPECT_EQ(count(cell_group(svg), "<rect"), 3u);  // row a: 1 run; row b: 2 runs around the NaN
  EXPECT_THAT(svg, Not(HasSubstr("nan")));

  svg = heatmap_svg("empty", {}, {}, {});
  EXPECT_EQ(xml_problem(svg), "");
  EXPECT_THAT(svg, HasSubstr("no data"));

  EXPECT_THROW(heatmap_svg("bad", {"a"}, {{1, 2}}, {1, 2, 3}), Error);
}

TEST(Plots, LargeHeatmapIsAnEmbeddedPng) {
  std::vector<std::vector<double>> m(300, std::vector<double>(400));
  for (size_t r = 0; r < m.size(); ++r)
    for (size_t c = 0; c < 400; ++c) m[r][c] = std::sin(double(r * c));
  const std::string svg = heatmap_svg("big", std::vector<std::string>(300, "row"), m, {});
  EXPECT_EQ(xml_problem(svg), "");
  EXPECT_THAT(svg, HasSubstr("href=\"data:image/png;base64,iVBORw0KGgo"));
  EXPECT_EQ(cell_group(svg), "");
  EXPECT_LT(svg.size(), 2u << 20);
}

std::string write_metrics(const TempDir& dir, int steps, bool object_form) {
  const std::string path = dir / "metrics.jsonl";
  std::ofstream f(path);
  for (int s = 1; s <= steps; ++s) {
    nlohmann::json j = {{"step", s}, {"loss", 10.0 / std::sqrt(double(s))}, {"lr", s < 20 ? s * 1e-4 : 2e-3},
                        {"tokens_per_s", 1000 + s % 7}};
    if (s % 25 == 0) j["val_loss"] = 10.5 / std::sqrt(double(s));
    std::vector<double> l1 = {0.1 + 0.001 * (s % 10), 0.2, 0.3, 0.4 - 0.001 * (s % 10)};
    std::vector<double> l2 = {0.25, 0.25, 0.25, 0.25};
    if (object_form) j["expert_load"] = {{"layer_1", l1}, {"layer_2", l2}};
    else j["expert_load"] = {nullptr, l1, l2};  // layer 0 is dense
    f << j.dump() << "\n";
    if (s == 3) f << "\n";  // blank lines are ignored
  }
  return path;
}

TEST(Plots, WriteTrainingPlots) {
  for (bool object_form : {false, true}) {
    TempDir dir("plots");
    const std::string metrics = write_metrics(dir, 1000, object_form);
    write_training_plots(metrics, dir / "out");
    for (const char* name : {"loss.svg", "lr.svg", "throughput.svg", "expert_load.svg"}) {
      const std::string svg = read_text_file(dir / "out" + "/" + name);
      EXPECT_EQ(xml_problem(svg), "") << name;
    }
    const std::string loss = read_text_file(dir / "out/loss.svg");
    EXPECT_THAT(loss, HasSubstr(">train</text>"));
    EXPECT_THAT(loss, HasSubstr(">val</text>"));
    EXPECT_EQ(count(loss, "<circle"), 40u);  // 40 validation points get markers

    const std::string el = read_text_file(dir / "out/expert_load.svg");
    EXPECT_THAT(el, HasSubstr(">L1\u00b7E0</text>"));
    EXPECT_THAT(el, HasSubstr(">L2\u00b7E3</text>"));
    // Columns: 1000 steps averaged into <= 400 buckets; count the distinct x of the first row.
    const std::string cells = cell_group(el);
    std::set<std::string> xs;
    const std::string first_y = cells.substr(cells.find(" y=\""), cells.find("\"", cells.find(" y=\"") + 4) - cells.find(" y=\"") + 1);
    for (size_t p = cells.find("<rect x=\""); p != std::string::npos; p = cells.find("<rect x=\"", p + 1))
      if (cells.compare(cells.find(" y=\"", p), first_y.size(), first_y) == 0)
        xs.insert(cells.substr(p + 9, cells.find('"', p + 9) - p - 9));
    EXPECT_GT(xs.size(), 100u);  // the first row varies, so most buckets are their own rect
    EXPECT_LE(xs.size(), 400u);
  }
}

TEST(Plots, WriteTrainingPlotsErrors) {
  TempDir dir("plots");
  EXPECT_THROW(write_training_plots(dir / "missing.jsonl", dir / "out"), Error);
  {
    std::ofstream f(dir / "bad.jsonl");
    f << "{\"step\": 1, \"loss\": 2}\n{not json\n";
  }
  try {
    write_training_plots(dir / "bad.jsonl", dir / "out");
    FAIL();
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("bad.jsonl:2: invalid JSON"));
  }
  {
    std::ofstream f(dir / "dense.jsonl");  // no expert_load at all: a "no data" heatmap
    f << "{\"step\": 1, \"loss\": 2, \"lr\": 0.1}\n{\"step\": 2, \"loss\": 1.5, \"lr\": 0.1}\n";
  }
  write_training_plots(dir / "dense.jsonl", dir / "out");
  EXPECT_THAT(read_text_file(dir / "out/expert_load.svg"), HasSubstr("no data"));
  EXPECT_THAT(read_text_file(dir / "out/throughput.svg"), HasSubstr("no data"));
}

}  // namespace
}  // namespace qs
