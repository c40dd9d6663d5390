// DurableQueue: the ingest log (ingest_log/durable_log.h) with one consumer, `forward`: the
// forwarder's own crash-safe FIFO when it runs standalone (Forwarder::Start without a log),
// and the on-disk format of the forward queue before the ingest log existed (its `cursor` is
// the `forward` consumer's cursor, so such a directory opens as either).
//
// Everything the log promises holds: Append() returns OK once the record is durable (group
// commit), a torn tail is cut at Open(), full is ResourceExhausted, a failed write or sync is
// Unavailable with the retry delay and takes nothing acknowledged with it.
//
// Thread-safety: Append() from any number of threads; Next()/Rewind()/Ack() from one consumer
// thread; the accessors from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "ingest_log/durable_log.h"

namespace ordertrace::forward {

// As the log's options; Open() sets `consumers` ({"forward"}) and `what` itself.
using DurableQueueOptions = ingest_log::LogOptions;

using QueueRecord = ingest_log::LogRecord;
using RecoveryReport = ingest_log::RecoveryReport;

class DurableQueue {
 public:
  static Result<std::unique_ptr<DurableQueue>> Open(const DurableQueueOptions& options,
                                                    RecoveryReport* report = nullptr) {
    ingest_log::LogOptions o = options;
    o.consumers = {"forward"};
    o.what = "forward queue";
    auto log = ingest_log::DurableLog::Open(o, report);
    if (!log.ok()) return log.status();
    return std::unique_ptr<DurableQueue>(new DurableQueue(std::move(log).value()));
  }

  // See DurableLog::Append and DurableLog::Consumer.
  Status Append(std::string_view payload) { return log_->Append(payload); }
  std::vector<QueueRecord> Next(uint64_t max_bytes, std::chrono::milliseconds wait,
                                bool within = false) {
    return consumer_->Next(max_bytes, wait, within);
  }
  void Rewind() { consumer_->Rewind(); }
  Status Ack(uint64_t id) { return consumer_->Ack(id); }
  void Close() { log_->Close(); }

  uint64_t bytes() const { return log_->bytes(); }      // unacknowledged, headers included
  uint64_t records() const { return log_->records(); }  // unacknowledged
  int64_t oldest_age_ms() const { return log_->oldest_age_ms(); }
  uint64_t syncs() const { return log_->syncs(); }

  ingest_log::DurableLog& log() { return *log_; }
  ingest_log::DurableLog::Consumer& consumer() { return *consumer_; }

 private:
  explicit DurableQueue(std::unique_ptr<ingest_log::DurableLog> log)
      : log_(std::move(log)), consumer_(log_->consumer("forward")) {}
  std::unique_ptr<ingest_log::DurableLog> log_;
  ingest_log::DurableLog::Consumer* consumer_;
};

}  // namespace ordertrace::forward
