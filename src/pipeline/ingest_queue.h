// IngestQueue: the in-memory BatchSink behind the receivers.  It holds accepted batches up to a
// bound on their total wire bytes and runs them, one batch at a time and in order of
// acceptance, through a list of Stages (pipeline/stage.h) on a single worker thread.
//
// Flow control: when the bound is reached Accept() refuses with ResourceExhausted (the
// receivers turn it into HTTP 429 / gRPC RESOURCE_EXHAUSTED with Retry-After), so a slow
// stage pushes back on the clients instead of growing memory.  Close() stops accepting
// (Unavailable) and drains: every batch accepted before Close() goes through every stage
// before Close() returns.  Nothing is lost on a clean shutdown; on a crash the queue's
// content is (the durable forward queue, src/forward/, is what survives crashes).
//
// Thread-safety: Accept() is safe from any number of threads; Close() from any thread, and
// more than once.  Stages run on the worker thread only, so a Stage needs no locking of its
// own unless something else reads its state.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <vector>

#include "common/metrics.h"
#include "common/status.h"
#include "common/worker.h"
#include "otlp/span_batch.h"
#include "pipeline/batch_sink.h"
#include "pipeline/stage.h"

namespace ordertrace::pipeline {

struct IngestQueueOptions {
  // Bound on the wire bytes of batches accepted and not yet through all stages.  A batch
  // larger than the whole bound is still accepted when the queue is empty, so that a bound
  // below the receivers' body limit can never refuse a request forever.
  size_t max_bytes = size_t{256} << 20;
  // Told to throttled clients (Retry-After).
  std::chrono::milliseconds retry_after{1000};
};

class IngestQueue : public BatchSink {
 public:
  // Starts the worker.  `stages` are not owned and must outlive the queue; `registry` gets the
  // queue's metrics (ordertrace_pipeline_*) and must outlive it too.
  IngestQueue(IngestQueueOptions options, std::vector<Stage*> stages, metrics::Registry& registry);
  ~IngestQueue() override;  // Close()

  IngestQueue(const IngestQueue&) = delete;
  IngestQueue& operator=(const IngestQueue&) = delete;

  // See BatchSink.  OK: queued; ResourceExhausted: over max_bytes; Unavailable: closed;
  // InvalidArgument: a null batch.
  Status Accept(std::shared_ptr<const otlp::SpanBatch> batch) noexcept override;

  // Refuses further batches, runs everything already accepted through the stages, joins the
  // worker.  Returns when the queue is empty.
  void Close();

  // Accepted batches (and their wire bytes) not yet through all stages.
  size_t queued_batches() const;
  size_t queued_bytes() const;

 private:
  // The worker's body: runs every queued batch through the stages, then returns.
  void Drain();

  const IngestQueueOptions options_;
  const std::vector<Stage*> stages_;

  mutable std::mutex mu_;
  std::condition_variable drained_;  // the worker emptied the queue (Close() waits for it)
  std::deque<std::shared_ptr<const otlp::SpanBatch>> queue_;
  size_t bytes_ = 0;    // includes the batch the worker is processing
  size_t batches_ = 0;  // likewise
  bool closed_ = false;

  std::mutex join_mu_;  // serialises Close() callers around the stop

  metrics::Gauge& queue_bytes_;
  metrics::Gauge& queue_batches_;
  metrics::Counter& batches_total_;
  metrics::Counter& spans_total_;
  metrics::Family<metrics::Counter>& refused_;

  // Last: started when everything above exists, stopped (joined) first on destruction.
  Worker worker_;
};

}  // namespace ordertrace::pipeline
