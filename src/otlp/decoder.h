// Decodes an OTLP ExportTraceServiceRequest from its protobuf wire bytes into a SpanBatch,
// validating as it goes, in one pass and without copying strings.
//
// Why hand-written: libprotobuf's generated parser (arena) costs about 4.7 us per span of the
// benchmark workload (docs/benchmarks.md) and builds objects nobody needs; the gateway's
// budget for the whole receive path is half of that.  decoder_differential_test.cc proves this
// decoder agrees with libprotobuf field by field; tests/fuzz/ holds its fuzz target.
//
// Thread-safety: a free function with no shared state.
#pragma once

#include <memory>
#include <string>

#include "common/status.h"
#include "otlp/span_batch.h"

namespace ordertrace::otlp {

// Returns InvalidArgument (with the byte offset and field path) when `wire` is not a
// well-formed ExportTraceServiceRequest.  Spans refused by validation are counted in the
// batch, not an error.
Result<std::shared_ptr<const SpanBatch>> DecodeExportRequest(std::string wire, Protocol protocol,
                                                             const Limits& limits);

// What the receivers turn a request's wire bytes into a batch with: DecodeExportRequest, or a
// decoder that rewrites the bytes first (redact::RedactingDecoder takes personal data out before
// anything else sees the batch).  Errors are the request's: the receivers answer them as a
// malformed request.
//
// Thread-safety: implementations are called concurrently from the receivers' threads.
class BatchDecoder {
 public:
  virtual ~BatchDecoder() = default;
  virtual Result<std::shared_ptr<const SpanBatch>> Decode(std::string wire, Protocol protocol,
                                                          const Limits& limits) const = 0;
};

}  // namespace ordertrace::otlp
