// Stage: one step of the pipeline, run on every accepted batch: by the IngestQueue's worker
// (ingest_queue.h) when the gateway keeps no ingest log, else by the log's `journeys` consumer
// (ingest_log/stage_consumer.h).  Today the span log (SpanLogStage) and the order journeys
// (journey::JourneyStage).
//
// Flush(): the log's consumer reads many records at once, hands each batch to Process(), then
// calls Flush(): a stage that batches its work (the journey stage: the facts of many requests in
// one store transaction) completes it there; it is also called when the consumer is idle, at
// least every StageConsumerOptions::idle_wait, and with `final` at shutdown (end every pending
// wait).  The IngestQueue never calls it: a stage used there completes its work in Process().
//
// Thread-safety: Process() and Flush() are called on one thread, never concurrently with
// themselves or each other, in acceptance order; a Stage needs no locking of its own unless
// something else reads its state.  They must not throw and should not block for long: while
// they run the queue fills (or the log's consumer lags).  A stage may keep the batch (shared
// ownership) past Process(): the journey stage's attribution holds the requests of spans that
// wait for their ancestor, and the log's consumer acknowledges a record only once no stage
// holds its batch.
#pragma once

#include <memory>

#include "otlp/span_batch.h"

namespace ordertrace::pipeline {

class Stage {
 public:
  virtual ~Stage() = default;
  virtual void Process(const std::shared_ptr<const otlp::SpanBatch>& batch) noexcept = 0;
  // False: the work of the batches given so far is not done (a store write failed and is kept
  // for retry): the log's consumer acknowledges nothing until a later Flush() returns true.
  virtual bool Flush(bool final) noexcept {
    (void) final;
    return true;
  }
};

}  // namespace ordertrace::pipeline
