// Times for people and JSON: RFC 3339 in UTC.
//
// Thread-safety: pure function.
#pragma once

#include <cstdint>
#include <string>

namespace ordertrace {

// 2026-11-26T11:02:03.123Z from Unix nanoseconds (milliseconds truncated, towards the past for
// times before 1970); 2026-11-26T11:02:03Z without `millis`.
std::string Rfc3339(int64_t unix_ns, bool millis = true);

}  // namespace ordertrace
