#include "common/time_format.h"

#include <cstdio>
#include <ctime>

namespace ordertrace {

std::string Rfc3339(int64_t t, bool millis) {
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

}  // namespace ordertrace
