// Errors of the HTTP API: an HTTP status and the OpenAI/DeepSeek error body
//   {"error": {"message": ..., "type": ..., "param": ..., "code": ...}}
// Thrown anywhere while a request is handled; the server turns it into the response. Status
// choices (docs/serve.md): 400 malformed JSON / bad values / context too long / unknown model,
// 422 wrong JSON types or missing fields (as DeepSeek's "Failed to deserialize the JSON body"),
// 401 missing or wrong key, 404 unknown route, 413 body too large, 429 queue full, 503 loading
// or shutting down, 500 an internal failure of one request.
#pragma once
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

namespace qs::serve {

struct ApiError : std::runtime_error {
  int status;
  std::string type, param, code;
  ApiError(int status, const std::string& message, std::string param = {}, std::string code = {},
           std::string type = {});
  nlohmann::ordered_json body() const;
};

// The error body; empty param / code become null.
nlohmann::ordered_json error_body(const std::string& message, const std::string& type, const std::string& param,
                          const std::string& code);
// The default error type of an HTTP status ("invalid_request_error", "authentication_error", ...).
const char* error_type_for(int status);

// 400 with param: a bad value. 422 with param: a wrong type or missing field.
[[noreturn]] void bad_value(const std::string& param, const std::string& message);
[[noreturn]] void bad_type(const std::string& param, const std::string& message);

}  // namespace qs::serve
