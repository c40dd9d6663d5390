// Forwarder: the consumer of the ingest log (cursor `forward`) that makes forwarding lossless.
// In the gateway, receivers append every accepted batch to the ingest log (ingest_log/log_sink.h)
// and the forwarder reads it at its own pace; standalone (Start() without a log: tests, tools) it
// opens a DurableQueue of its own and is itself the BatchSink: Accept() re-encodes a batch for
// the upstream (encoder.h) and appends it; the client is acknowledged only once the record is
// durable.  Either way a sender thread takes records from the log, batches them by size
// and age (concatenated ExportTraceServiceRequests are one valid request: their resource_spans
// add up), exports them with OtlpExporter, and acknowledges them in the queue only when the
// upstream accepted them.  Retryable failures are retried with exponential backoff and jitter,
// honouring Retry-After / RetryInfo; permanent ones move the records to the dead-letter
// directory with the reason, except credential failures (401, 403, UNAUTHENTICATED,
// PERMISSION_DENIED), which say nothing about the data: those are held and retried every
// retry_max until the credentials are fixed.  Nothing leaves the log before the upstream took it
// (or it was dead-lettered); when the log is full, clients are throttled.
//
// Thread-safety: Accept() from any number of threads; Close() once, from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <filesystem>
#include <memory>
#include <random>

#include "common/metrics.h"
#include "common/worker.h"
#include "forward/durable_queue.h"
#include "forward/exporter/exporter.h"
#include "ingest_log/durable_log.h"
#include "pipeline/batch_sink.h"

namespace ordertrace::forward {

struct ForwarderOptions {
  ExporterOptions exporter;
  DurableQueueOptions queue;
  std::filesystem::path dead_letter_dir;
  uint64_t batch_max_bytes = uint64_t{4} << 20;  // one export request at most this big
  std::chrono::milliseconds batch_max_age{200};  // ... or sent when its oldest record is this old
  std::chrono::milliseconds retry_initial{500};
  std::chrono::milliseconds retry_max{30000};
  std::chrono::milliseconds drain_timeout{5000};  // on Close(): time to send what is queued
};

class Forwarder : public pipeline::BatchSink {
 public:
  // Standalone: opens (and recovers) options.queue, creates the exporter, starts the sender.
  // Errors name the problem (bad upstream URL, unreadable TLS file, directory not writable).
  static Result<std::unique_ptr<Forwarder>> Start(const ForwarderOptions& options,
                                                  metrics::Registry& registry);
  // As the consumer `log` (options.queue unused); `log` must outlive the forwarder.
  static Result<std::unique_ptr<Forwarder>> Start(const ForwarderOptions& options,
                                                  ingest_log::DurableLog::Consumer& log,
                                                  metrics::Registry& registry);
  ~Forwarder() override;  // Close()

  // See BatchSink (standalone only; as a consumer of the gateway's log: Unavailable).  OK once
  // the batch is durable in the queue; ResourceExhausted when the queue is full; Unavailable
  // after Close() or on an I/O error.
  Status Accept(std::shared_ptr<const otlp::SpanBatch> batch) noexcept override;

  // Refuses new batches, gives the sender up to drain_timeout to send everything in the log,
  // stops it.  What is still unsent stays on disk and is sent after the next start.
  void Close();

  uint64_t queued_bytes() const { return queue_->lag_bytes(); }
  uint64_t queued_records() const { return queue_->lag_records(); }

 private:
  Forwarder(const ForwarderOptions& options, std::unique_ptr<DurableQueue> own_queue,
            ingest_log::DurableLog::Consumer& queue, std::unique_ptr<OtlpExporter> exporter,
            metrics::Registry& registry);
  void Run();
  // Exports `records` (as one request); returns false when the sender should stop.
  bool Send(std::vector<QueueRecord>& records);
  void DeadLetter(const QueueRecord& record, const ExportResult& result);
  static Result<std::unique_ptr<OtlpExporter>> Prepare(const ForwarderOptions& options);
  // 401/403/UNAUTHENTICATED/PERMISSION_DENIED: held and retried, never dead-lettered.
  static bool IsAuthFailure(const std::string& code);
  // RESOURCE_EXHAUSTED (gRPC: over the receiver's message limit) or HTTP 413.
  static bool IsTooLarge(const std::string& code);
  // Sleeps up to `d` unless Close() wants the sender to stop; returns false if it does.
  bool Sleep(std::chrono::milliseconds d);

  const ForwarderOptions options_;
  // The largest export request: options_.batch_max_bytes, halved each time the upstream refuses
  // a batch of several records as too large.  Sender thread only.
  uint64_t batch_limit_;
  std::unique_ptr<DurableQueue> own_queue_;  // standalone only
  ingest_log::DurableLog::Consumer* queue_;  // what the sender reads: the `forward` consumer
  std::unique_ptr<OtlpExporter> exporter_;

  std::atomic<bool> accepting_{true};
  std::mt19937_64 rng_;  // sender thread only

  metrics::Family<metrics::Counter>& exports_;  // {code}
  metrics::Counter& retries_;
  metrics::Counter& dead_letters_;
  metrics::Counter& upstream_rejected_spans_;
  // A standalone forwarder's own queue only (nullptr in the gateway, where the ingest log's
  // ordertrace_ingest_log_* metrics count appends and refusals): registered only then, so the
  // gateway exports no counter that stays 0.
  metrics::Counter* accepted_records_ = nullptr;
  metrics::Family<metrics::Counter>* refused_ = nullptr;  // {reason}
  metrics::Histogram& latency_;
  metrics::Counter& exported_bytes_;
  metrics::Counter& auth_failures_;

  // Last: started when everything above exists, stopped (joined) first on destruction.
  Worker sender_;
};

}  // namespace ordertrace::forward
