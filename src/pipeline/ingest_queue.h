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
// Wake-ups: the worker takes everything queued at once.  When batches came while it ran, it
// takes those next; when none did, it waits up to `collect_window` for more before it goes to
// sleep, and Accept() wakes it only when it sleeps (or when half the bound is queued): under a
// steady load the worker runs once per window or back to back, not once per batch woken, and
// the receivers' threads make no futex call per request.  A batch accepted while the worker
// sleeps is run at once.
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
#include "common/thread_annotations.h"
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
  // How long the worker, having just run batches, waits for more without being woken (see
  // the class comment): the most a batch waits in the queue behind an idle worker.  0: every
  // batch accepted wakes the worker when it waits.
  std::chrono::microseconds collect_window{2000};
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
  Status Accept(std::shared_ptr<const otlp::SpanBatch> batch) noexcept override EXCLUDES(mu_);

  // Refuses further batches, runs everything already accepted through the stages, joins the
  // worker.  Returns when the queue is empty.
  void Close() EXCLUDES(mu_);

  // Accepted batches (and their wire bytes) not yet through all stages.
  size_t queued_batches() const EXCLUDES(mu_);
  size_t queued_bytes() const EXCLUDES(mu_);

 private:
  // The worker's body: runs every batch queued so far through the stages, then returns how
  // long to wait before its next run: 0 when more came meanwhile, collect_window after a run,
  // until woken when nothing ran.
  std::chrono::nanoseconds Drain() EXCLUDES(mu_);

  // What the worker is doing, for Accept() to decide whether to wake it.
  enum class WorkerState {
    kRunning,     // taking or running batches: whatever is queued now will be seen
    kCollecting,  // waiting collect_window after a run: back soon without a wake-up
    kSleeping,    // nothing was queued: waits for a wake-up
  };

  const IngestQueueOptions options_;
  const std::vector<Stage*> stages_;

  mutable Mutex mu_;
  std::condition_variable_any drained_;  // the worker emptied the queue (Close() waits for it)
  std::deque<std::shared_ptr<const otlp::SpanBatch>> queue_ GUARDED_BY(mu_);
  size_t bytes_ GUARDED_BY(mu_) = 0;    // includes the batches the worker is processing
  size_t batches_ GUARDED_BY(mu_) = 0;  // likewise
  bool closed_ GUARDED_BY(mu_) = false;
  WorkerState worker_state_ GUARDED_BY(mu_) = WorkerState::kRunning;

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
