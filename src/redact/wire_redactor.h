// Redacts an OTLP ExportTraceServiceRequest at the protobuf wire level: every attribute (resource,
// scope, span, event, link; arrays and key-value lists recursively) through the ValueRedactor's
// key and value rules, and the free text of span names, event names and status messages.  The
// output is a new, well-formed request that the decoder reads again; ids, timestamps, kinds and
// every other field are copied as they are.
//
// Why on the wire and not on the decoded views: the batch's wire bytes are what the forward queue
// stores and sends to Jaeger when nothing else changed, so the wire itself must be clean; and the
// views are immutable by design (SpanBatch).
//
// Fields this code does not know are dropped from the messages it rewrites (a future OTLP field
// could carry text; failing closed costs nothing the gateway uses).  Values nested deeper than
// kMaxRewriteDepth become empty.
//
// Thread-safety: a free function; the redactor is thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"
#include "redact/value_redactor.h"

namespace ordertrace::redact {

inline constexpr int kMaxRewriteDepth = 32;

// The redacted request, or nullopt when nothing in `wire` needed a change (the caller keeps the
// original bytes).  InvalidArgument when `wire` is not well-formed protobuf (it was decoded once
// already, so this means a bug upstream; the caller refuses the batch rather than pass it on).
// `max_value_bytes` (otlp::Limits::max_attribute_value_bytes; 0: none): a string scanned for
// data that is longer is cut to it here, with its tail (ValueRedactor::RedactText), so that the
// decoder's own cut cannot leave part of a datum the detectors did not see whole.
Result<std::optional<std::string>> RedactExportRequest(std::string_view wire,
                                                       const ValueRedactor& redactor,
                                                       uint32_t max_value_bytes = 0);

}  // namespace ordertrace::redact
