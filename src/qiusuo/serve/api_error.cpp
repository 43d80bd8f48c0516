#include "qiusuo/serve/api_error.h"

namespace qs::serve {

const char* error_type_for(int status) {
  switch (status) {
    case 401: return "authentication_error";
    case 403: return "permission_error";
    case 404: return "not_found_error";
    case 429: return "rate_limit_error";
    case 503: return "service_unavailable_error";
    default: return status >= 500 ? "server_error" : "invalid_request_error";
  }
}

ApiError::ApiError(int status_, const std::string& message, std::string param_, std::string code_, std::string type_)
    : std::runtime_error(message), status(status_), type(std::move(type_)), param(std::move(param_)),
      code(std::move(code_)) {
  if (type.empty()) type = error_type_for(status);
  if (code.empty()) code = type;  // as DeepSeek: code repeats the type when nothing more specific applies
}

nlohmann::ordered_json ApiError::body() const { return error_body(what(), type, param, code); }

nlohmann::ordered_json error_body(const std::string& message, const std::string& type, const std::string& param,
                          const std::string& code) {
  nlohmann::ordered_json e = {{"message", message}, {"type", type}, {"param", nullptr}, {"code", nullptr}};
  if (!param.empty()) e["param"] = param;
  if (!code.empty()) e["code"] = code;
  return {{"error", e}};
}

void bad_value(const std::string& param, const std::string& message) { throw ApiError(400, message, param); }

void bad_type(const std::string& param, const std::string& message) {
  throw ApiError(422, "Failed to deserialize the JSON body into the target type: " + message, param);
}

}  // namespace qs::serve
