// Text for people and JSON: times in RFC 3339 (UTC), durations and counts as a person writes
// them.  One place, so that an alert, a diagnosis, the API and the CLI say a time alike.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"

namespace ordertrace {

// 2026-11-26T11:02:03.123Z from Unix nanoseconds (milliseconds truncated, towards the past for
// times before 1970); 2026-11-26T11:02:03Z without `millis`.  0 is 1970-01-01T00:00:00.000Z.
std::string Rfc3339(Nanos unix_ns, bool millis = true);

// As Rfc3339 (with milliseconds), but "" for 0: the JSON APIs write an unknown time as "".
std::string Rfc3339OrEmpty(Nanos unix_ns);

// 14:02:11Z (UTC time of day) when `t` is on the same UTC day as `now`, else the full
// 2026-11-25T14:02:11Z: short in a sentence, unambiguous across midnight.
std::string ClockTime(Nanos t, Nanos now);

// "1h 5m", "42s", "2d 3h": a duration for people (the two largest units; under a second in ms).
std::string HumanDuration(Duration d);

// 1204 -> "1,204".
std::string WithThousands(uint64_t n);

// For error messages about config and rules values: `s` in single quotes.
std::string Quote(std::string_view s);
// ASCII lower case (keys, units, booleans); other bytes unchanged.
std::string AsciiLower(std::string_view s);
// `s` without leading and trailing ASCII white space.
std::string_view TrimSpace(std::string_view s);
// The items with `separator` between them ("a, b, c"); "" for none.
std::string Join(const std::vector<std::string>& items, std::string_view separator);

}  // namespace ordertrace
