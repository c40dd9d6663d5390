// DurableLog: an append-only, crash-safe, byte-bounded on-disk log of records (the encoded,
// already redacted OTLP requests the gateway accepted) read by named consumers, each at its own
// pace from its own persisted cursor: the forwarder (`forward`) and the journeys (`journeys`).
//
// Durability: Append() returns OK only after the record is on stable storage (fdatasync).
// Concurrent appends are group-committed: one fdatasync covers every record written since the
// last one, so throughput does not pay one sync per request.  With `fsync: false` records are
// written but not synced (survives a process crash, not a power loss).
//
// Format: segment files `seg-<first id, 20 digits>.log` in `dir`; each record is
//   u32 magic 'OTQ1' | u32 length | u32 crc32c(payload) | u64 id | payload
// (little-endian; the magic is the four bytes "OTQ1", the forward queue's format before the log
// existed, so such a directory opens as a log).  Open() replays the segments; a record whose
// header or checksum does not match ends the segment (a torn tail from a crash): it and anything
// after it are dropped and truncated away, logged and counted, never handed out.
//
// Consumers: each has a cursor file, the id of the last record it acknowledged (written to a
// temp file, synced and renamed): `cursor` for `forward` (the old queue's cursor), `cursor-<name>`
// for the others.  A consumer new to the directory starts at its end (its cursor is written at
// Open(), before anything is appended); the cursor of a consumer no longer configured is
// removed (logged with what it had not read).  A segment is deleted when every consumer has
// acknowledged all of its records.  The byte budget (`max_bytes`) counts every record some
// consumer still needs, from the oldest one: a slow consumer lags on its cursor, and only when
// the budget is full are appends refused.
//
// Errors: over the budget, ResourceExhausted (the client is throttled, 429).  A failed write or
// sync (ENOSPC, EDQUOT, EIO, ...) is Unavailable with `retry_after` (the client retries later,
// 503): the partial record is truncated away, the records written since the last good sync are
// taken back (their clients get the error, nobody was acknowledged), and appends work again
// once the disk does.  Logged once per run of failures, counted per reason.
//
// Delivery is at least once per consumer: after a crash, records after a consumer's last
// persisted Ack() are handed to it again.  A `lock` file (flock) keeps a second process out.
//
// Thread-safety: Append() from any number of threads; each Consumer's Next()/Rewind()/Ack() from
// one thread (its own: consumers run concurrently); the accessors from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/metrics.h"
#include "common/status.h"

namespace ordertrace::ingest_log {

struct LogOptions {
  std::filesystem::path dir;                    // created if missing
  uint64_t max_bytes = uint64_t{1} << 30;       // header + payload of records still needed
  uint64_t segment_bytes = uint64_t{64} << 20;  // roll to a new segment file past this size
  bool fsync = true;
  std::chrono::milliseconds retry_after{1000};  // told to clients when full or failing
  // The consumers, at least one: 1 to 32 of a-z 0-9 _ - each.
  std::vector<std::string> consumers{"forward"};
  std::string what = "ingest log";  // how log lines and errors name it
};

struct LogRecord {
  uint64_t id = 0;  // strictly increasing, never reused (survives restarts)
  std::string payload;
  int64_t appended_unix_ms = 0;  // after a restart: the segment file's modification time
};

// What Open() found on disk.
struct RecoveryReport {
  uint64_t records = 0;  // records some consumer still needs
  uint64_t bytes = 0;
  uint64_t torn_records = 0;  // segments cut at a bad header/checksum/length (one per cut)
  uint64_t torn_bytes = 0;
};

// Why an append was refused (the `reason` label of ordertrace_ingest_log_refused_total).
struct Refusals {
  uint64_t full = 0;       // over max_bytes
  uint64_t disk_full = 0;  // ENOSPC, EDQUOT
  uint64_t io = 0;         // another write or sync error
  uint64_t closed = 0;     // after Close()
};

class DurableLog {
 public:
  class Consumer;

  static Result<std::unique_ptr<DurableLog>> Open(const LogOptions& options,
                                                  RecoveryReport* report = nullptr);
  ~DurableLog();  // Close()

  // Appends one record durably.  OK: durable (synced unless fsync is off).  ResourceExhausted
  // (with retry_after) when it would take the log over max_bytes (a record larger than max_bytes
  // is accepted only into an empty log); Unavailable after Close() or on a write/sync error.
  Status Append(std::string_view payload);

  // The consumer of that name (one of options.consumers), null otherwise.  Owned by the log.
  Consumer* consumer(std::string_view name) const;

  // Wakes consumers blocked in Next() (they get nothing from now on) and refuses appends.
  void Close();

  uint64_t bytes() const;         // records some consumer still needs, headers included
  uint64_t records() const;       // likewise
  int64_t oldest_age_ms() const;  // of the oldest such record; 0 when none
  uint64_t syncs() const;         // fdatasync calls on segments (group commit: fewer than appends)
  uint64_t appends() const;       // appends that returned OK
  Refusals refused() const;

  // ordertrace_ingest_log_* (docs/architecture.md); `registry` must outlive the log.
  void RegisterMetrics(metrics::Registry& registry);

  // Test seam: the next `times` writes (kWrite: a partial record is written first) or segment
  // syncs (kSync) fail with `err` as if the kernel had returned it.
  enum class Fault { kWrite, kSync };
  void InjectFaultForTest(Fault fault, int err, int times);

 private:
  DurableLog();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// One reader of the log.  Records are handed out oldest first, only once durable.
class DurableLog::Consumer {
 public:
  const std::string& name() const { return name_; }

  // The next records after the last one handed out, up to `max_bytes` of payload in total (at
  // least one record when any is available, even one over `max_bytes`, unless `within` is set:
  // then none over it), waiting up to `wait` for one.  Empty when none arrived in time, after
  // Close(), or (with `within`) when the next record does not fit.  Records handed out and not
  // acknowledged are handed out again only after Rewind() or a restart.
  std::vector<LogRecord> Next(uint64_t max_bytes, std::chrono::milliseconds wait,
                              bool within = false);

  // Starts again from the oldest record this consumer has not acknowledged.
  void Rewind();

  // Acknowledges every record with id <= `id` for this consumer: persisted to its cursor;
  // segments every consumer passed are deleted and their bytes released.
  Status Ack(uint64_t id);

  uint64_t acked_id() const;
  uint64_t lag_records() const;  // records after acked_id()
  uint64_t lag_bytes() const;    // their bytes, headers included
  int64_t lag_age_ms() const;    // age of the oldest of them; 0 when none

  // How far this consumer has caught up, in time: every record appended before the returned
  // time (unix ms) is acknowledged.  kCaughtUp when every record is; kHorizonUnknown while the
  // oldest record not acknowledged was found on disk by Open() (when it was appended is not
  // recorded).  The journey detector judges deadlines only up to it (gateway.cc).
  static constexpr int64_t kCaughtUp = std::numeric_limits<int64_t>::max();
  static constexpr int64_t kHorizonUnknown = std::numeric_limits<int64_t>::min();
  int64_t horizon_unix_ms() const;

 private:
  friend class DurableLog;
  friend struct DurableLog::Impl;
  Consumer(DurableLog::Impl* log, std::string name, size_t index)
      : log_(log), name_(std::move(name)), index_(index) {}
  DurableLog::Impl* const log_;
  const std::string name_;
  const size_t index_;  // into the log's consumer states
};

// Upgrade from the forward queue (before the ingest log): appends, in order, the records the
// `forward` consumer of the queue directory `old_dir` had not acknowledged to `into`, then
// removes `old_dir`.  Returns how many were moved: 0 when `old_dir` does not exist.  A crash
// midway sends some twice, never loses one (each is acknowledged in the old queue only after
// it is durable in `into`).  An error (`into` full or failing) leaves the rest in `old_dir` for
// the next start.
Result<uint64_t> ImportForwardQueue(const std::filesystem::path& old_dir, DurableLog& into);

}  // namespace ordertrace::ingest_log
