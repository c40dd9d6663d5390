#include "pipeline/ingest_queue.h"

#include <string>
#include <utility>

#include "common/log.h"

namespace ordertrace::pipeline {

IngestQueue::IngestQueue(IngestQueueOptions options, std::vector<Stage*> stages,
                         metrics::Registry& registry)
    : options_(options),
      stages_(std::move(stages)),
      queue_bytes_(registry
                       .AddGauge("ordertrace_pipeline_queue_bytes",
                                 "Wire bytes of accepted batches not yet through the pipeline.")
                       .With({})),
      queue_batches_(registry
                         .AddGauge("ordertrace_pipeline_queue_batches",
                                   "Accepted batches not yet through the pipeline.")
                         .With({})),
      batches_total_(registry
                         .AddCounter("ordertrace_pipeline_batches_total",
                                     "Batches that went through every pipeline stage.")
                         .With({})),
      spans_total_(registry
                       .AddCounter("ordertrace_pipeline_spans_total",
                                   "Spans that went through every pipeline stage.")
                       .With({})),
      refused_(registry.AddCounter("ordertrace_pipeline_refused_batches_total",
                                   "Batches the ingest queue refused, by reason (full, closed).",
                                   {"reason"})) {
  // Both series exist from the start, so dashboards see 0 rather than nothing.
  refused_.With({"full"});
  refused_.With({"closed"});
  worker_.Start("ingest queue", [this] { return Drain(); });
}

IngestQueue::~IngestQueue() { Close(); }

Status IngestQueue::Accept(std::shared_ptr<const otlp::SpanBatch> batch) noexcept {
  if (!batch) return Status::InvalidArgument("null batch");
  const size_t size = batch->wire().size();
  const int retry_ms = static_cast<int>(options_.retry_after.count());
  bool wake = false;
  try {
    {
      MutexLock lock(mu_);
      if (closed_) {
        refused_.With({"closed"}).Inc();
        return Status::Unavailable("the gateway is shutting down", retry_ms);
      }
      if (batches_ > 0 && bytes_ + size > options_.max_bytes) {
        refused_.With({"full"}).Inc();
        return Status::ResourceExhausted("ingest queue full (" + std::to_string(bytes_) + " of " +
                                             std::to_string(options_.max_bytes) + " bytes queued)",
                                         retry_ms);
      }
      queue_.push_back(std::move(batch));
      bytes_ += size;
      ++batches_;
      queue_bytes_.Set(static_cast<double>(bytes_));
      queue_batches_.Set(static_cast<double>(batches_));
      // A collecting worker comes back within collect_window on its own; it is woken early only
      // when the queue nears its bound, so that its wait never throttles a client.
      wake = worker_state_ == WorkerState::kSleeping ||
             (worker_state_ == WorkerState::kCollecting && bytes_ >= options_.max_bytes / 2);
      if (wake) worker_state_ = WorkerState::kRunning;
    }
    if (wake) worker_.Wake();
    return Status::Ok();
  } catch (const std::exception& e) {  // allocation failure in push_back or the metric child
    return Status::Internal(std::string("ingest queue: ") + e.what());
  }
}

std::chrono::nanoseconds IngestQueue::Drain() {
  std::deque<std::shared_ptr<const otlp::SpanBatch>> taken;
  {
    MutexLock lock(mu_);
    if (queue_.empty()) {
      worker_state_ = WorkerState::kSleeping;
      drained_.notify_all();
      return std::chrono::nanoseconds::max();  // until Accept() or Close() wakes the worker
    }
    worker_state_ = WorkerState::kRunning;
    taken.swap(queue_);  // everything queued so far, in one go
  }
  for (auto& batch : taken) {
    for (Stage* stage : stages_) stage->Process(batch);
    batches_total_.Inc();
    spans_total_.Inc(batch->spans().size());
    const size_t size = batch->wire().size();
    batch.reset();  // release the bytes before they stop counting

    MutexLock lock(mu_);
    bytes_ -= size;
    --batches_;
    queue_bytes_.Set(static_cast<double>(bytes_));
    queue_batches_.Set(static_cast<double>(batches_));
  }
  MutexLock lock(mu_);
  if (batches_ == 0) drained_.notify_all();
  // Again at once when batches came while it ran (a slow stage must not idle with work
  // queued), or when closing; else it collects for a while.
  if (closed_ || options_.collect_window.count() <= 0 || !queue_.empty()) {
    return std::chrono::nanoseconds(0);
  }
  worker_state_ = WorkerState::kCollecting;
  return options_.collect_window;
}

void IngestQueue::Close() {
  std::lock_guard<std::mutex> join_lock(join_mu_);
  {
    MutexLock lock(mu_);
    closed_ = true;
  }
  if (!worker_.running()) return;
  // Nothing is accepted any more; the worker runs what was (on its own thread, as Stage
  // promises) and then stops.
  worker_.Wake();
  {
    MutexLock lock(mu_);
    while (batches_ != 0) {
      drained_.wait(mu_);
      mu_.AssertHeld();
    }
  }
  worker_.Stop();
  log::Debug("ingest queue drained", {{"batches", batches_total_.Value()}});
}

size_t IngestQueue::queued_batches() const {
  MutexLock lock(mu_);
  return batches_;
}

size_t IngestQueue::queued_bytes() const {
  MutexLock lock(mu_);
  return bytes_;
}

}  // namespace ordertrace::pipeline
