#include "common/text_format.h"

#include <cstdio>
#include <ctime>

namespace ordertrace {

std::string Rfc3339(Nanos t, bool millis) {
  const int64_t seconds = t >= 0 ? t / 1000000000 : (t - 999999999) / 1000000000;
  const int64_t ms = (t - seconds * 1000000000) / 1000000;
  const std::time_t tt = static_cast<std::time_t>(seconds);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[64];
  const int n = std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900,
                              tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
  if (millis) {
    std::snprintf(buf + n, sizeof buf - n, ".%03dZ", static_cast<int>(ms));
  } else {
    std::snprintf(buf + n, sizeof buf - n, "Z");
  }
  return buf;
}

std::string Rfc3339OrEmpty(Nanos t) { return t == 0 ? "" : Rfc3339(t); }

std::string ClockTime(Nanos t, Nanos now) {
  const std::string full = Rfc3339(t, /*millis=*/false);  // 2026-11-26T14:02:11Z
  if (full.size() < 11 || full.compare(0, 10, Rfc3339(now, /*millis=*/false), 0, 10) != 0)
    return full;
  return full.substr(11);
}

std::string HumanDuration(Duration d) {
  int64_t s = std::chrono::duration_cast<std::chrono::seconds>(d).count();
  if (s <= 0) {
    return d.count() > 0 ? std::to_string(d.count()) + "ms" : "0s";
  }
  const int64_t days = s / 86400, hours = s % 86400 / 3600, mins = s % 3600 / 60, secs = s % 60;
  std::string out;
  auto part = [&](int64_t v, const char* unit) {
    if (v == 0) return;
    if (!out.empty()) out += ' ';
    out += std::to_string(v) + unit;
  };
  if (days > 0) {
    part(days, "d");
    part(hours, "h");
  } else if (hours > 0) {
    part(hours, "h");
    part(mins, "m");
  } else {
    part(mins, "m");
    part(secs, "s");
  }
  return out;
}

std::string WithThousands(uint64_t n) {
  std::string digits = std::to_string(n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

std::string Quote(std::string_view s) { return "'" + std::string(s) + "'"; }

std::string AsciiLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::string_view TrimSpace(std::string_view s) {
  auto space = [](char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
  };
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  return s;
}

std::string Join(const std::vector<std::string>& items, std::string_view separator) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += separator;
    out += items[i];
  }
  return out;
}

}  // namespace ordertrace
