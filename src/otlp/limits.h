// otlp::Limits: how much of a span the gateway keeps, shared by the decoders (which apply it)
// and the config (which reads it) without the config depending on the span views.
//
// Thread-safety: a plain value.
#pragma once

#include <cstdint>

namespace ordertrace::otlp {

// Validation limits.  Counts above a limit are truncated (the rest counted as dropped, as the
// OpenTelemetry SDKs do); a string value above max_attribute_value_bytes is cut at a UTF-8
// boundary.  See docs/validation.md for what is refused and what is repaired.
struct Limits {
  uint32_t max_attributes = 128;            // per span, resource and scope
  uint32_t max_attributes_per_event = 128;  // per event and per link
  uint32_t max_events_per_span = 128;
  uint32_t max_links_per_span = 128;
  uint32_t max_attribute_value_bytes = 32 * 1024;
  uint32_t max_value_depth = 8;  // nesting of array/kvlist values
};

}  // namespace ordertrace::otlp
