#include "common/values.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <limits>
#include <utility>

#include "common/text_format.h"

namespace ordertrace {
namespace {

// Splits "16MiB" into its leading digits and the rest.
std::pair<std::string_view, std::string_view> SplitNumber(std::string_view s) {
  size_t i = 0;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
  return {s.substr(0, i), TrimSpace(s.substr(i))};
}

size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1])});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

}  // namespace

std::optional<uint64_t> ParseUint(std::string_view s) {
  if (s.empty()) return std::nullopt;
  uint64_t v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size()) return std::nullopt;
  return v;
}

Result<HostPort> ParseHostPort(std::string_view text) {
  const std::string_view s = TrimSpace(text);
  auto bad = [&](std::string why = {}) {
    return Status::InvalidArgument("expected HOST:PORT like 127.0.0.1:4317, got " + Quote(text) +
                                   (why.empty() ? "" : " (" + why + ")"));
  };
  HostPort hp;
  std::string_view port;
  if (!s.empty() && s.front() == '[') {
    const size_t close = s.find(']');
    if (close == std::string_view::npos || close + 1 >= s.size() || s[close + 1] != ':') {
      return bad();
    }
    hp.host = std::string(s.substr(1, close - 1));
    port = s.substr(close + 2);
    const bool v6_chars =
        !hp.host.empty() && std::all_of(hp.host.begin(), hp.host.end(), [](char c) {
          return std::isxdigit(static_cast<unsigned char>(c)) || c == ':' || c == '.';
        });
    if (!v6_chars || hp.host.find(':') == std::string::npos) return bad("not an IPv6 address");
  } else {
    const size_t colon = s.rfind(':');
    if (colon == std::string_view::npos) return bad("missing :PORT");
    hp.host = std::string(s.substr(0, colon));
    port = s.substr(colon + 1);
    if (hp.host.find(':') != std::string::npos) {
      return bad("put an IPv6 address in brackets, like [::1]:4317");
    }
    if (hp.host.empty()) return bad("missing HOST; use 0.0.0.0 for all interfaces");
    const bool name_chars = std::all_of(hp.host.begin(), hp.host.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_';
    });
    if (!name_chars) return bad("invalid host name");
  }
  auto n = ParseUint(port);
  if (!n || *n > 65535) return bad("port must be 0 to 65535");
  hp.port = static_cast<uint16_t>(*n);
  return hp;
}

std::string FormatHostPort(const HostPort& hp) {
  if (hp.host.find(':') != std::string::npos) {
    return "[" + hp.host + "]:" + std::to_string(hp.port);
  }
  return hp.host + ":" + std::to_string(hp.port);
}

Result<uint64_t> ParseSize(std::string_view text) {
  const auto bad = [&] {
    return Status::InvalidArgument("expected a size like 16MiB, got " + Quote(text));
  };
  auto [digits, unit] = SplitNumber(TrimSpace(text));
  auto n = ParseUint(digits);
  if (!n) return bad();
  static const std::pair<const char*, uint64_t> kUnits[] = {
      {"", 1},
      {"b", 1},
      {"kb", 1000},
      {"mb", 1000 * 1000},
      {"gb", 1000 * 1000 * 1000},
      {"kib", 1 << 10},
      {"mib", 1 << 20},
      {"gib", uint64_t{1} << 30},
  };
  const std::string u = AsciiLower(unit);
  for (const auto& [name, mult] : kUnits) {
    if (u != name) continue;
    if (*n > std::numeric_limits<uint64_t>::max() / mult) return bad();
    return *n * mult;
  }
  return bad();
}

Result<std::chrono::milliseconds> ParseDuration(std::string_view text) {
  const auto bad = [&] {
    return Status::InvalidArgument("expected a duration like 500ms, 30s, 2m, 1h or 5d, got " +
                                   Quote(text));
  };
  auto [digits, unit] = SplitNumber(TrimSpace(text));
  auto n = ParseUint(digits);
  if (!n || *n > 1000000000) return bad();
  const int64_t v = static_cast<int64_t>(*n);
  if (unit.empty() && v == 0) return std::chrono::milliseconds(0);  // zero needs no unit
  if (unit == "ms") return std::chrono::milliseconds(v);
  if (unit == "s") return std::chrono::milliseconds(v * 1000);
  if (unit == "m") return std::chrono::milliseconds(v * 60 * 1000);
  if (unit == "h") return std::chrono::milliseconds(v * 3600 * 1000);
  if (unit == "d") return std::chrono::milliseconds(v * 24 * 3600 * 1000);
  return bad();
}

std::string FormatDuration(std::chrono::milliseconds d) {
  const int64_t ms = d.count();
  if (ms == 0) return "0s";
  static const std::pair<const char*, int64_t> kUnits[] = {
      {"d", int64_t{24} * 3600 * 1000}, {"h", 3600 * 1000}, {"m", 60 * 1000}, {"s", 1000}};
  for (const auto& [name, mult] : kUnits) {
    if (ms % mult == 0) return std::to_string(ms / mult) + name;
  }
  return std::to_string(ms) + "ms";
}

Result<bool> ParseBool(std::string_view text) {
  const std::string b = AsciiLower(TrimSpace(text));
  if (b == "true" || b == "yes" || b == "on") return true;
  if (b == "false" || b == "no" || b == "off") return false;
  return Status::InvalidArgument("expected true or false, got " + Quote(text));
}

std::string UnknownKeyMessage(std::string_view key, const std::vector<std::string>& known) {
  std::string best;
  size_t best_distance = 3;  // suggest only close matches
  for (const auto& k : known) {
    size_t d = EditDistance(AsciiLower(key), k);
    if (d < best_distance) {
      best_distance = d;
      best = k;
    }
  }
  if (!best.empty()) return "unknown key (did you mean '" + best + "'?)";
  std::string list;
  for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
  return "unknown key; known keys here: " + list;
}

std::string FormatSize(uint64_t bytes) {
  if (bytes != 0 && bytes % (uint64_t{1} << 30) == 0) return std::to_string(bytes >> 30) + "GiB";
  if (bytes != 0 && bytes % (uint64_t{1} << 20) == 0) return std::to_string(bytes >> 20) + "MiB";
  if (bytes != 0 && bytes % (uint64_t{1} << 10) == 0) return std::to_string(bytes >> 10) + "KiB";
  return std::to_string(bytes);
}

}  // namespace ordertrace
