// Built-in configs of the released DeepSeek architectures (the config.json values of the
// Hugging Face repositories), for `qiusuo init` and training presets.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace qs {

// "v2-lite" (DeepSeek-V2-Lite, 16B), "v2" (DeepSeek-V2, 236B), "v3" (DeepSeek-V3, 671B),
// "r1" (DeepSeek-R1: the V3 architecture). Throws qs::Error listing the names when unknown.
nlohmann::json preset_config(const std::string& name);
std::vector<std::string> preset_names();

}  // namespace qs
