// The bytes the gateway forwards upstream for an accepted batch.
//
// Thread-safety: free functions with no shared state.
#pragma once

#include <string>

#include "otlp/span_batch.h"

namespace ordertrace::forward {

// The protobuf encoding of an ExportTraceServiceRequest holding exactly the batch's accepted
// spans, as the views show them.  When the batch is unmodified (nothing refused, repaired or
// truncated: SpanBatch::modified()) that is the wire as received, returned without re-encoding;
// otherwise the resources, scopes and kept spans are re-encoded from the views.  Resources and
// scopes left without spans are omitted.  Nested array/kvlist values are copied as received.
std::string EncodeForForwarding(const otlp::SpanBatch& batch);

}  // namespace ordertrace::forward
