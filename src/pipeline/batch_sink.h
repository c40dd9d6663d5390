// The one narrow interface between the receivers and the rest of the gateway.
//
// Receivers (OTLP/gRPC, OTLP/HTTP) decode and validate a request into a SpanBatch and hand it
// to a BatchSink.  What is behind it (in the gateway: a SinkChain of the in-memory ingest queue,
// whose stages log spans and build journeys, and the durable forward queue) is invisible to
// them.
#pragma once

#include <memory>

#include "common/status.h"
#include "otlp/span_batch.h"

namespace ordertrace::pipeline {

class BatchSink {
 public:
  virtual ~BatchSink() = default;

  // Offers an accepted batch.  Called concurrently from receiver threads: implementations are
  // thread-safe.  Returns:
  //   OK                  the pipeline owns the batch; the receiver acknowledges the client
  //   ResourceExhausted   full right now; the client is throttled with retry_after_ms
  //   Unavailable         shutting down; the client retries elsewhere or later
  // Never throws, never blocks for long (bounded by the implementation's own limits).
  virtual Status Accept(std::shared_ptr<const otlp::SpanBatch> batch) noexcept = 0;
};

}  // namespace ordertrace::pipeline
