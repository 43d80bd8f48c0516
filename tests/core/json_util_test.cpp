// parse_json_file_text (core/json_util.h): the DOM nlohmann's own parser builds, with a bound on
// nesting depth and errors that name the file.
#include "qiusuo/core/json_util.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

namespace qs {
namespace {

using json = nlohmann::json;

std::string nested(int containers, const std::string& inner) {
  return std::string(size_t(containers), '[') + inner + std::string(size_t(containers), ']');
}

std::string error_of(const std::string& text) {
  try {
    parse_json_file_text<json>(text, "some/file.json");
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Format) << e.what();
    return e.what();
  }
  return "";
}

TEST(JsonUtil, ParsesAsNlohmannDoes) {
  for (const std::string text : {
           R"({"a": 1, "b": [true, false, null, -3, 18446744073709551615, 2.5e-3, "x\u00e9\n"], "c": {}, "d": []})",
           R"({"k": 1, "k": {"z": [1, [2, [3]]]}})",  // a repeated key keeps its last value
           R"([{"a": [{}]}, [], [[{"b": 0}]], "s"])", R"("top-level string")", "42", "-0.0", "null",
           R"({"bin": "no binary in JSON text", "nested": {"x": {"y": {"z": [0.1, 1e308]}}}})"}) {
    const json want = json::parse(text);
    const json got = parse_json_file_text<json>(text, "t.json");
    EXPECT_EQ(got, want) << text;
    EXPECT_EQ(got.dump(), want.dump()) << text;  // the same types (integer / unsigned / float)
  }
  // ordered_json keeps the members' order, as its own parser does.
  const std::string text = R"({"z": 1, "a": {"y": 2, "b": 3}, "m": [1]})";
  EXPECT_EQ(parse_json_file_text<nlohmann::ordered_json>(text, "t.json").dump(), nlohmann::ordered_json::parse(text).dump());
}

TEST(JsonUtil, DepthBoundIsOnWhatSitsInsideContainers) {
  // A value inside kMaxJsonDepth containers is accepted; inside one more it is an error.
  EXPECT_EQ(parse_json_file_text<json>(nested(kMaxJsonDepth, "1"), "t.json"), json::parse(nested(kMaxJsonDepth, "1")));
  EXPECT_NE(error_of(nested(kMaxJsonDepth + 1, "1")).find("some/file.json: JSON nested deeper than 200 levels"),
            std::string::npos);
  // The same for an object's key, and far deeper input fails the same way (no recursion).
  EXPECT_NO_THROW(parse_json_file_text<json>(nested(kMaxJsonDepth - 1, R"({"k": 0})"), "t.json"));
  EXPECT_NE(error_of(nested(kMaxJsonDepth, R"({"k": 0})")).find("nested deeper than 200"), std::string::npos);
  EXPECT_NE(error_of(nested(100000, "")).find("nested deeper than 200"), std::string::npos);
}

TEST(JsonUtil, InvalidJsonNamesTheFile) {
  for (const std::string text : {"", "{", R"({"a": 1,})", "[1 2]", "{} trailing", R"({"a": tru})", "\"unterminated"}) {
    const std::string e = error_of(text);
    EXPECT_NE(e.find("some/file.json: invalid JSON"), std::string::npos) << "[" << text << "] gave: " << e;
  }
}

}  // namespace
}  // namespace qs
