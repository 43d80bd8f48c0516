// One log line to stderr: "2025-01-02T03:04:05.678Z qiusuo serve: <text>" (thread-safe).
#pragma once
#include <string>

namespace qs::serve {
void log_line(const std::string& text);
}
