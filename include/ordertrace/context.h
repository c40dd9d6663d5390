// SpanContext: the identity of a span as it travels between services (W3C Trace Context).
//
// Part of libordertrace's public API (include/ordertrace/).  A value type; thread-safe to copy.
#pragma once

#include <array>
#include <cstdint>
#include <string>

namespace ordertrace {

using TraceId = std::array<uint8_t, 16>;
using SpanId = std::array<uint8_t, 8>;

// W3C trace-flags: bit 0 is "sampled".
inline constexpr uint8_t kTraceFlagSampled = 0x01;

struct SpanContext {
  TraceId trace_id{};
  SpanId span_id{};
  uint8_t trace_flags = 0;
  std::string trace_state;  // W3C tracestate header value, as received/validated ("" if none)
  bool remote = false;      // extracted from a carrier rather than created in this process

  // Valid when neither id is all zero (W3C Trace Context).
  bool valid() const {
    bool t = false, s = false;
    for (uint8_t b : trace_id) t |= b != 0;
    for (uint8_t b : span_id) s |= b != 0;
    return t && s;
  }
  bool sampled() const { return (trace_flags & kTraceFlagSampled) != 0; }
};

// Lower-case hex of an id.
std::string ToHex(const TraceId& id);
std::string ToHex(const SpanId& id);

}  // namespace ordertrace
