// Stage: one step of the pipeline, run on every accepted batch by the IngestQueue's worker
// (ingest_queue.h): today the span log (SpanLogStage) and the order journeys
// (journey::JourneyStage).
//
// Thread-safety: Process() is called on the queue's worker thread, never concurrently with
// itself, in acceptance order; a Stage needs no locking of its own unless something else reads
// its state.  It must not throw and should not block for long: while it runs the queue fills
// and clients are throttled.  A stage may keep the batch (shared ownership) past Process():
// the journey stage's attribution holds the requests of spans that wait for their ancestor.
#pragma once

#include <memory>

#include "otlp/span_batch.h"

namespace ordertrace::pipeline {

class Stage {
 public:
  virtual ~Stage() = default;
  virtual void Process(const std::shared_ptr<const otlp::SpanBatch>& batch) noexcept = 0;
};

}  // namespace ordertrace::pipeline
