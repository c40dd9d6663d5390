// SinkChain: offers each batch to several sinks in order and acknowledges it only when all of
// them took it.  The gateway puts the in-memory IngestQueue (journeys, logs) before the durable
// forward queue: a batch the forward queue then refuses is retried by the client, and the
// stages behind the IngestQueue see it twice, which they tolerate (duplicates are idempotent).
// The other order would forward duplicates to Jaeger instead.
//
// Thread-safety: as thread-safe as its sinks (all BatchSinks are).
#pragma once

#include <vector>

#include "pipeline/batch_sink.h"

namespace ordertrace::pipeline {

class SinkChain : public BatchSink {
 public:
  explicit SinkChain(std::vector<BatchSink*> sinks) : sinks_(std::move(sinks)) {}

  // The first refusal, or OK when every sink took the batch.
  Status Accept(std::shared_ptr<const otlp::SpanBatch> batch) noexcept override {
    for (BatchSink* sink : sinks_) {
      Status s = sink->Accept(batch);
      if (!s.ok()) return s;
    }
    return Status::Ok();
  }

 private:
  const std::vector<BatchSink*> sinks_;
};

}  // namespace ordertrace::pipeline
