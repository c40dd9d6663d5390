// Value syntaxes shared by every reader of human-written settings: the gateway's config file
// and flags, the journey rules, ordertrace-sim's flags.  One parser per syntax, so that "16MiB",
// "30s", "yes" and "[::1]:4317" mean the same everywhere and are refused with the same words.
//
// Each parser takes the whole text (surrounding blanks are ignored where noted) and returns
// InvalidArgument with a message like "expected a size like 16MiB, got 'abc'"; callers prefix
// where the value came from (a file and line, a flag).
//
// Thread-safety: pure functions.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace ordertrace {

// All of `text` as an unsigned decimal integer (digits only: no sign, no blanks, no base
// prefix); nullopt when empty, not a number or above 2^64-1.  The one integer parser under the
// others.
std::optional<uint64_t> ParseUint(std::string_view text);

// A byte count: 1048576, 512KiB, 16MiB, 1GiB, 10MB (units case-insensitive; blanks trimmed).
Result<uint64_t> ParseSize(std::string_view text);
// 500ms, 1s, 2m, 1h, 5d (at most 10^9 of a unit); a bare "0" is zero.  Blanks trimmed.
Result<std::chrono::milliseconds> ParseDuration(std::string_view text);
// true/false, yes/no, on/off (case-insensitive; blanks trimmed).
Result<bool> ParseBool(std::string_view text);

// Formats a byte count the way ParseSize accepts it back ("16MiB", "1500").
std::string FormatSize(uint64_t bytes);
// Formats a duration the way ParseDuration accepts it back, in its largest exact unit ("5d",
// "90m", "1500ms", "0s").
std::string FormatDuration(std::chrono::milliseconds d);

// HOST:PORT as the listeners take it.  HOST is a name or IPv4 address, or an IPv6 address in
// brackets ("[::1]:4317"); PORT is 0..65535 (0: any free port, for tests).
struct HostPort {
  std::string host;  // without brackets
  uint16_t port = 0;
};
Result<HostPort> ParseHostPort(std::string_view text);  // blanks trimmed
std::string FormatHostPort(const HostPort& hp);         // brackets an IPv6 host again

// For every strict key reader (config file, rules), so that every file reports problems alike:
// "unknown key (did you mean 'format'?)" when a known key is close to `key`, else
// "unknown key; known keys here: a, b, c".
std::string UnknownKeyMessage(std::string_view key, const std::vector<std::string>& known);

}  // namespace ordertrace
