// StageConsumer: a consumer of the ingest log that runs pipeline stages on what it reads (the
// gateway's `journeys` consumer: the span log and the journey stage).
//
// One thread reads many records at once (up to `batch_bytes`), decodes each back into a
// SpanBatch (no redaction: the log holds redacted batches), hands every batch to every stage's
// Process(), then calls each stage's Flush(): a stage that batches (journey::JourneyStage)
// applies the facts of all those requests in one go there.  A record is acknowledged once the
// stages are done with it: after the Flush(), and only when no stage still holds its batch (the
// journey stage's attribution keeps the requests of spans waiting for their ancestor; their
// records and every later one stay unacknowledged until the wait ends).  After a crash the
// consumer resumes after its cursor and replays the rest: stages must tolerate duplicates (the
// journey engine's merges are idempotent).
//
// Stop() drains: it reads until it has caught up with the log (or `drain_timeout`), calls
// Flush(final = true) (the journey stage ends every wait), acknowledges, and joins the thread.
//
// Thread-safety: Start() and Stop() from the owning thread; the stages run on the consumer's
// thread only (pipeline::Stage's contract); the accessors from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <utility>
#include <vector>

#include "common/metrics.h"
#include "common/worker.h"
#include "ingest_log/durable_log.h"
#include "otlp/limits.h"
#include "otlp/span_batch.h"
#include "pipeline/stage.h"

namespace ordertrace::ingest_log {

struct StageConsumerOptions {
  uint64_t batch_bytes = uint64_t{8} << 20;        // payload read per round (at least one record)
  std::chrono::milliseconds idle_wait{100};        // a round waits this long for a record; the
                                                   // stages are flushed at least this often
  std::chrono::milliseconds drain_timeout{30000};  // Stop(): time to catch up with the log
  otlp::Limits limits;                             // for decoding (the receivers' limits)
};

class StageConsumer {
 public:
  // `consumer`, the stages and `registry` must outlive this object.
  StageConsumer(DurableLog::Consumer& consumer, std::vector<pipeline::Stage*> stages,
                StageConsumerOptions options, metrics::Registry& registry);
  ~StageConsumer();  // Stop()

  void Start();
  void Stop();

  uint64_t records_read() const { return records_.load(std::memory_order_relaxed); }

 private:
  // One round: read, decode, Process, Flush, acknowledge.  Returns the records read.
  size_t Round(std::chrono::milliseconds wait);
  // Acknowledges the records whose batches no stage holds any more, oldest first.
  void AckReleased();
  // Stopping: catch up (drain_timeout), Flush(final), acknowledge.
  void Drain();

  DurableLog::Consumer& consumer_;
  const std::vector<pipeline::Stage*> stages_;
  const StageConsumerOptions options_;
  // Records read and not acknowledged, in id order; the batch is weak so that a batch no stage
  // keeps is freed at once (null when the record did not decode).  Consumer thread only.
  std::deque<std::pair<uint64_t, std::weak_ptr<const otlp::SpanBatch>>> unacked_;
  std::atomic<uint64_t> records_{0};
  bool started_ = false;  // owning thread
  bool drained_ = false;  // the consumer thread, then read by Stop() after the join
  metrics::Counter& read_records_;
  metrics::Counter& read_spans_;
  metrics::Counter& undecodable_;
  Worker worker_;  // last: stopped first
};

}  // namespace ordertrace::ingest_log
