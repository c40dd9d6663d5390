// OTLP/JSON (ExportTraceServiceRequest, per the OTLP specification: lowerCamelCase keys, hex
// trace/span ids, integer enums, 64-bit integers as strings or numbers, unknown fields
// ignored) converted to the protobuf wire encoding, which DecodeExportRequest then reads.
//
// Thread-safety: free functions with no shared state.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"

namespace ordertrace::otlp {

// Returns InvalidArgument with the JSON path of the problem ("resourceSpans[0].scopeSpans[1]
// .spans[3].traceId: ...") on malformed input.
Result<std::string> JsonToWire(std::string_view json);

}  // namespace ordertrace::otlp
