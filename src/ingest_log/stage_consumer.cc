#include "ingest_log/stage_consumer.h"

#include "common/log.h"
#include "otlp/decoder.h"

namespace ordertrace::ingest_log {

StageConsumer::StageConsumer(DurableLog::Consumer& consumer, std::vector<pipeline::Stage*> stages,
                             StageConsumerOptions options, metrics::Registry& registry)
    : consumer_(consumer),
      stages_(std::move(stages)),
      options_(std::move(options)),
      read_records_(registry
                        .AddCounter("ordertrace_ingest_log_consumed_records_total",
                                    "Records a stage consumer of the ingest log read and ran "
                                    "through its stages (replays after a restart included).",
                                    {"consumer"})
                        .With({consumer.name()})),
      read_spans_(registry
                      .AddCounter("ordertrace_ingest_log_consumed_spans_total",
                                  "Spans in the records a stage consumer of the ingest log read.",
                                  {"consumer"})
                      .With({consumer.name()})),
      undecodable_(registry
                       .AddCounter("ordertrace_ingest_log_undecodable_records_total",
                                   "Records of the ingest log that did not decode (skipped).",
                                   {"consumer"})
                       .With({consumer.name()})) {}

StageConsumer::~StageConsumer() { Stop(); }

void StageConsumer::Start() {
  started_ = true;
  worker_.Start("log-" + consumer_.name(), std::chrono::milliseconds(0), [this] {
    while (!worker_.stopping()) Round(options_.idle_wait);
    Drain();
  });
}

void StageConsumer::Stop() {
  worker_.Stop();
  // A Stop() right after Start() may come before the thread ran its body: drain here then (the
  // thread is joined, so this thread is the only one touching the consumer's state).
  if (started_ && !drained_) Drain();
}

void StageConsumer::Drain() {
  // Catch up with the log, then end the stages' pending work and acknowledge it.
  const auto deadline = std::chrono::steady_clock::now() + options_.drain_timeout;
  while (std::chrono::steady_clock::now() < deadline && Round(std::chrono::milliseconds(0)) > 0) {
  }
  bool done = true;
  for (pipeline::Stage* stage : stages_) done = stage->Flush(/*final=*/true) && done;
  if (done) AckReleased();
  if (const uint64_t lag = consumer_.lag_records(); lag > 0) {
    log::Warn("ingest log consumer stopped behind the log; the rest is read after the next start",
              {{"consumer", consumer_.name()}, {"records", lag}});
  }
  drained_ = true;
}

size_t StageConsumer::Round(std::chrono::milliseconds wait) {
  std::vector<LogRecord> records = consumer_.Next(options_.batch_bytes, wait);
  for (LogRecord& r : records) {
    auto decoded =
        otlp::DecodeExportRequest(std::move(r.payload), otlp::Protocol::kGrpc, options_.limits);
    if (!decoded.ok()) {
      // Cannot happen for a record the receivers encoded; skipped rather than blocking the log.
      undecodable_.Inc();
      log::Error(
          "ingest log record does not decode; skipped",
          {{"consumer", consumer_.name()}, {"id", r.id}, {"error", decoded.status().message()}});
      unacked_.emplace_back(r.id, std::weak_ptr<const otlp::SpanBatch>());
      continue;
    }
    std::shared_ptr<const otlp::SpanBatch> batch = std::move(decoded).value();
    read_spans_.Inc(batch->spans().size());
    for (pipeline::Stage* stage : stages_) stage->Process(batch);
    unacked_.emplace_back(r.id, batch);
  }
  bool done = true;
  for (pipeline::Stage* stage : stages_) done = stage->Flush(/*final=*/false) && done;
  read_records_.Inc(records.size());
  records_.fetch_add(records.size(), std::memory_order_relaxed);
  if (done) AckReleased();
  return records.size();
}

void StageConsumer::AckReleased() {
  uint64_t upto = 0;
  while (!unacked_.empty() && unacked_.front().second.expired()) {
    upto = unacked_.front().first;
    unacked_.pop_front();
  }
  if (upto == 0) return;
  if (Status s = consumer_.Ack(upto); !s.ok()) {
    // Read again after a restart (duplicates, which the stages tolerate); logged by the log.
    log::Warn("ingest log consumer could not persist its cursor",
              {{"consumer", consumer_.name()}, {"error", s.message()}});
  }
}

}  // namespace ordertrace::ingest_log
