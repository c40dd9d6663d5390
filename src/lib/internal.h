// libordertrace internals shared between its .cc files (not installed).
#pragma once

#include <string>
#include <string_view>

#include "ordertrace/tracer.h"

namespace ordertrace::internal {

inline constexpr char kSdkVersion[] = "0.1.0";
inline constexpr char kScopeName[] = "libordertrace";

bool RatioSamples(const TraceId& id, double ratio) noexcept;
bool ShouldSample(Sampler sampler, double ratio, const SpanContext* parent,
                  const TraceId& trace_id) noexcept;

// Percent-decoding for OTEL_RESOURCE_ATTRIBUTES / OTEL_EXPORTER_OTLP_HEADERS; false when
// malformed (a '%' not followed by two hex digits).
bool PercentDecode(std::string_view in, std::string* out);

}  // namespace ordertrace::internal
