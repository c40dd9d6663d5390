// Reading what the gateway's API and /metrics return, in end-to-end tests: RFC 3339 times of the
// journey API as Unix nanoseconds, and the sum of a metric's samples in a Prometheus text page.
//
// Thread-safety: pure functions.
#pragma once

#include <time.h>

#include <cstdint>
#include <cstdlib>
#include <ctime>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

namespace ordertrace::testing_support {

// "2026-12-06T13:34:01.322279Z" (UTC, optional fraction) → Unix ns; 0 for null or a non-time.
inline int64_t Rfc3339Nanos(const nlohmann::json& v) {
  if (!v.is_string()) return 0;
  const std::string s = v.get<std::string>();
  std::tm tm{};
  const char* rest = strptime(s.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (rest == nullptr) return 0;
  int64_t ns = static_cast<int64_t>(timegm(&tm)) * 1'000'000'000;
  if (*rest == '.') {
    int64_t scale = 100'000'000;
    for (++rest; *rest >= '0' && *rest <= '9'; ++rest, scale /= 10) ns += (*rest - '0') * scale;
  }
  return ns;
}

// The sum of `name`'s samples (every label set) in a Prometheus text page; `labels` (e.g.
// `via="parent"`) keeps only the samples whose label set contains it.
inline double MetricSum(const std::string& text, const std::string& name,
                        const std::string& labels = "") {
  double sum = 0;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(name, 0) != 0 || line.size() <= name.size()) continue;
    if (line[name.size()] != '{' && line[name.size()] != ' ') continue;
    if (!labels.empty() && line.find(labels) == std::string::npos) continue;
    sum += std::atof(line.substr(line.rfind(' ') + 1).c_str());
  }
  return sum;
}

}  // namespace ordertrace::testing_support
