// write_training_plots (plot/training.h): metrics.jsonl -> loss, lr, throughput and expert-load
// SVGs, parsed back; both expert_load forms; errors name the file and line.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <set>
#include <vector>

#include <nlohmann/json.hpp>

#include "plot/svg_dom.h"
#include "qiusuo/core/error.h"
#include "qiusuo/io/file.h"
#include "qiusuo/plot/training.h"
#include "test_util.h"

namespace qs {
namespace {

using testing::HasSubstr;
using testing_util::TempDir;
using testing_util::XmlReader;

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

TEST(TrainingPlots, WriteTrainingPlots) {
  for (bool object_form : {false, true}) {
    TempDir dir("plots");
    const std::string metrics = write_metrics(dir, 1000, object_form);
    write_training_plots(metrics, dir / "out");
    for (const char* name : {"loss.svg", "lr.svg", "throughput.svg", "expert_load.svg"})
      EXPECT_EQ(testing_util::xml_problem(read_text_file(dir / "out" + "/" + name)), "") << name;
    const auto loss = XmlReader::parse(read_text_file(dir / "out/loss.svg"));
    const auto series = loss->all("path", "series");
    ASSERT_EQ(series.size(), 2u);
    EXPECT_EQ(series[0]->attr("data-name"), "train");
    EXPECT_EQ(series[1]->attr("data-name"), "val");
    EXPECT_EQ(loss->all("circle").size(), 40u);  // 40 validation points get markers

    const auto el = XmlReader::parse(read_text_file(dir / "out/expert_load.svg"));
    std::vector<std::string> rows;
    for (const auto* t : el->all("g", "row-labels")[0]->all("text")) rows.push_back(t->all_text());
    EXPECT_THAT(rows, testing::Contains("L1\u00b7E0"));
    EXPECT_THAT(rows, testing::Contains("L2\u00b7E3"));
    // Columns: 1000 steps averaged into <= 400 buckets; count the distinct x of the first row.
    const auto cells = el->all("g", "cells")[0]->all("rect");
    ASSERT_FALSE(cells.empty());
    std::set<std::string> xs;
    for (const auto* r : cells)
      if (r->attr("y") == cells[0]->attr("y")) xs.insert(r->attr("x"));
    EXPECT_GT(xs.size(), 100u);  // the first row varies, so most buckets are their own rect
    EXPECT_LE(xs.size(), 400u);
  }
}

TEST(TrainingPlots, WriteTrainingPlotsErrors) {
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
  {
    std::ofstream f(dir / "keys.jsonl");  // a key whose digits overflow any integer is a label as it is
    f << "{\"step\": 1, \"expert_load\": {\"layer_99999999999999999999999\": [0.5, 0.5]}}\n";
  }
  write_training_plots(dir / "keys.jsonl", dir / "out2");
  EXPECT_THAT(read_text_file(dir / "out2/expert_load.svg"), HasSubstr("layer_99999"));
  EXPECT_THAT(read_text_file(dir / "out/expert_load.svg"), HasSubstr("no data"));
  EXPECT_THAT(read_text_file(dir / "out/throughput.svg"), HasSubstr("no data"));
}

}  // namespace
}  // namespace qs
