// ConfigLimits: every count and size read from config.json has an upper bound far above the
// released models; a value over it, a float in an integer field or a total model size beyond the
// bound is a qs::Error naming the field, the value and the bound.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "qiusuo/core/error.h"
#include "qiusuo/io/file.h"
#include "qiusuo/model/config.h"
#include "qiusuo/model/presets.h"

namespace qs {
namespace {

using ::testing::HasSubstr;
using json = nlohmann::json;

json v3_tiny() { return json::parse(read_text_file(std::string(QS_FIXTURES) + "/model/v3-tiny/config.json")); }

std::string error_of(const json& j) {
  try {
    parse_model_config(j);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

std::string with(const std::string& key, const json& v) {
  json j = v3_tiny();
  j[key] = v;
  return error_of(j);
}

TEST(ConfigLimits, RealConfigsAreFarInside) {
  for (const char* name : {"v3-tiny", "v2-tiny", "v2-lite-tiny", "v3-tiny-fp8"})
    EXPECT_NO_THROW(load_model_config(std::string(QS_FIXTURES) + "/model/" + name)) << name;
  for (const char* preset : {"v2-lite", "v3", "r1"}) {
    const ModelConfig c = parse_model_config(preset_config(preset));
    EXPECT_LT(c.num_hidden_layers * 10, ConfigLimits::num_hidden_layers) << preset;
    EXPECT_LT(c.vocab_size * 10, ConfigLimits::vocab_size) << preset;
    EXPECT_LT(double(c.total_params()) * 10, ConfigLimits::total_params) << preset;
  }
}

TEST(ConfigLimits, EveryCountHasABound) {
  const std::pair<const char*, int64_t> fields[] = {
      {"vocab_size", ConfigLimits::vocab_size},
      {"hidden_size", ConfigLimits::hidden_size},
      {"intermediate_size", ConfigLimits::intermediate_size},
      {"moe_intermediate_size", ConfigLimits::moe_intermediate_size},
      {"num_hidden_layers", ConfigLimits::num_hidden_layers},
      {"num_attention_heads", ConfigLimits::num_attention_heads},
      {"q_lora_rank", ConfigLimits::lora_rank},
      {"kv_lora_rank", ConfigLimits::lora_rank},
      {"qk_nope_head_dim", ConfigLimits::head_dim},
      {"qk_rope_head_dim", ConfigLimits::qk_rope_head_dim},
      {"v_head_dim", ConfigLimits::head_dim},
      {"n_routed_experts", ConfigLimits::n_routed_experts},
      {"n_shared_experts", ConfigLimits::n_shared_experts},
      {"num_experts_per_tok", ConfigLimits::n_routed_experts},
      {"moe_layer_freq", ConfigLimits::layer_index},
      {"first_k_dense_replace", ConfigLimits::layer_index},
      {"n_group", ConfigLimits::n_routed_experts},
      {"topk_group", ConfigLimits::n_routed_experts},
      {"max_position_embeddings", ConfigLimits::max_position_embeddings},
      {"num_nextn_predict_layers", ConfigLimits::num_nextn_predict_layers},
  };
  for (const auto& [key, bound] : fields) {
    const std::string e = with(key, bound + 1);
    EXPECT_THAT(e, HasSubstr(std::string("field '") + key + "' is " + std::to_string(bound + 1) +
                             ", above the bound " + std::to_string(bound)));
    // Beyond int64 (an unsigned JSON number) too.
    EXPECT_THAT(with(key, UINT64_MAX), HasSubstr(std::string("field '") + key + "' is 18446744073709551615, above"));
  }
}

TEST(ConfigLimits, TheReviewersHangIsAnErrorAtOnce) {
  EXPECT_THAT(with("num_nextn_predict_layers", 1e17),
              HasSubstr("field 'num_nextn_predict_layers' must be an integer, got 1e+17"));
  EXPECT_THAT(with("num_nextn_predict_layers", 100000),
              HasSubstr("field 'num_nextn_predict_layers' is 100000, above the bound 64"));
  EXPECT_THAT(with("num_nextn_predict_layers", -1), HasSubstr("must be >= 0, got -1"));
  EXPECT_EQ(with("num_nextn_predict_layers", 64), "(no error)");
}

TEST(ConfigLimits, IntegerFieldsMustBeJsonIntegers) {
  EXPECT_THAT(with("hidden_size", 2.5), HasSubstr("field 'hidden_size' must be an integer, got 2.5"));
  EXPECT_THAT(with("hidden_size", 128.0), HasSubstr("field 'hidden_size' must be an integer, got 128.0"));
  EXPECT_THAT(with("num_hidden_layers", "3"), HasSubstr("must be an integer"));
  EXPECT_THAT(with("num_hidden_layers", true), HasSubstr("must be an integer"));
  EXPECT_THAT(with("vocab_size", 0), HasSubstr("field 'vocab_size' must be positive, got 0"));
  EXPECT_THAT(with("eos_token_id", 1.0), HasSubstr("field 'eos_token_id' must be an integer"));
  EXPECT_THAT(with("eos_token_id", json::array({1, 1e9})), HasSubstr("field 'eos_token_id' must be an integer"));
  EXPECT_THAT(with("eos_token_id", json::array({1, 512})), HasSubstr("512 is outside the vocabulary [0, 512)"));
  EXPECT_THAT(with("eos_token_id", json(std::vector<int>(2000, 1))), HasSubstr("above the bound 1024"));
  EXPECT_THAT(with("bos_token_id", UINT64_MAX), HasSubstr("field 'bos_token_id'"));
}

TEST(ConfigLimits, RealFieldsAreFiniteAndInRange) {
  EXPECT_THAT(with("rope_theta", 1e300), HasSubstr("field 'rope_theta' is 1e+300, outside [1, 1e+12]"));
  EXPECT_THAT(with("rms_norm_eps", 2.0), HasSubstr("field 'rms_norm_eps'"));
  EXPECT_THAT(with("routed_scaling_factor", -1), HasSubstr("field 'routed_scaling_factor'"));
  json j = v3_tiny();
  j["rope_scaling"]["factor"] = 1e9;
  EXPECT_THAT(error_of(j), HasSubstr("field 'rope_scaling.factor' is 1000000000.0, outside [1, 10000]"));
  j = v3_tiny();
  j["rope_scaling"]["original_max_position_embeddings"] = 1e17;
  EXPECT_THAT(error_of(j), HasSubstr("field 'rope_scaling.original_max_position_embeddings' must be an integer"));
  j = v3_tiny();
  j["rope_scaling"]["beta_fast"] = 0;
  EXPECT_THAT(error_of(j), HasSubstr("field 'rope_scaling.beta_fast'"));
  j = v3_tiny();
  j["quantization_config"] = 5;
  EXPECT_THAT(error_of(j), HasSubstr("field 'quantization_config' must be an object"));
}

TEST(ConfigLimits, TheWholeModelIsBounded) {
  // Each field within its bound, together 1024 layers of 65536 experts of width 262144.
  json j = v3_tiny();
  j["num_hidden_layers"] = ConfigLimits::num_hidden_layers;
  j["n_routed_experts"] = 65536;
  j["n_group"] = 4;
  j["hidden_size"] = ConfigLimits::hidden_size;
  j["moe_intermediate_size"] = ConfigLimits::moe_intermediate_size;
  EXPECT_THAT(error_of(j), HasSubstr("parameters, above the bound 1e+13"));
}

}  // namespace
}  // namespace qs
