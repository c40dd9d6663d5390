// DurableQueue: an append-only, crash-safe, byte-bounded on-disk FIFO of records (encoded OTLP
// export requests waiting for the upstream).
//
// Durability: Append() returns OK only after the record is on stable storage (fdatasync).
// Concurrent appends are group-committed: one fdatasync covers every record written since the
// last one, so throughput does not pay one sync per request.  With `fsync: false` records are
// written but not synced (survives a process crash, not a power loss): documented in
// docs/forwarding.md.
//
// Format: segment files `seg-<first id, 20 digits>.log` in `dir`; each record is
//   u32 magic 'OTQ1' | u32 length | u32 crc32c(payload) | u64 id | payload
// (little-endian; the magic is the four bytes "OTQ1").  Open() replays the segments; a record
// whose header or checksum does not match ends the segment (a torn tail from a crash): it and
// anything after it are dropped and truncated away, logged and counted, never handed out.
// Consumption is recorded in `cursor` (the id of the last acknowledged record, written to a
// temp file, synced and renamed); a segment whose records are all acknowledged is deleted.
// A `lock` file (flock) keeps a second process from opening the same directory.
//
// Delivery is at least once: after a crash, records appended after the last persisted Ack()
// are handed out again.
//
// Thread-safety: Append() from any number of threads; Next()/Ack() from one consumer thread;
// the accessors from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace ordertrace::forward {

struct DurableQueueOptions {
  std::filesystem::path dir;                    // created if missing
  uint64_t max_bytes = uint64_t{1} << 30;       // payload + header bytes not yet acknowledged
  uint64_t segment_bytes = uint64_t{64} << 20;  // roll to a new segment file past this size
  bool fsync = true;
  std::chrono::milliseconds retry_after{1000};  // told to clients when full
};

struct QueueRecord {
  uint64_t id = 0;  // strictly increasing, never reused (survives restarts)
  std::string payload;
  int64_t appended_unix_ms = 0;  // after a restart: the segment file's modification time
};

// What Open() found on disk.
struct RecoveryReport {
  uint64_t records = 0;  // unacknowledged records recovered
  uint64_t bytes = 0;
  uint64_t torn_records = 0;  // segments cut at a bad header/checksum/length (one per cut)
  uint64_t torn_bytes = 0;
};

class DurableQueue {
 public:
  static Result<std::unique_ptr<DurableQueue>> Open(const DurableQueueOptions& options,
                                                    RecoveryReport* report = nullptr);
  ~DurableQueue();  // Close()

  // Appends one record durably.  ResourceExhausted (with options.retry_after) when it would
  // take the queue over max_bytes (a record larger than max_bytes is accepted only into an
  // empty queue); Unavailable after Close(); Internal on an I/O error (logged).
  Status Append(std::string_view payload);

  // The next records after the last one handed out, oldest first, up to `max_bytes` of payload
  // in total (at least one record when any is available, even one over `max_bytes`, unless
  // `within` is set: then none over it), waiting up to `wait` for one.  Empty when none arrived
  // in time, after Close(), or (with `within`) when the next record does not fit.  Records
  // handed out and not acknowledged are handed out again only after Rewind() or a restart.
  std::vector<QueueRecord> Next(uint64_t max_bytes, std::chrono::milliseconds wait,
                                bool within = false);

  // Makes the consumer start again from the oldest unacknowledged record (after a failed
  // export the consumer retries the same records).
  void Rewind();

  // Acknowledges every record with id <= `id`: persisted to `cursor`, segments fully
  // acknowledged deleted, capacity released.
  Status Ack(uint64_t id);

  // Wakes a consumer blocked in Next() and refuses further appends.
  void Close();

  uint64_t bytes() const;    // unacknowledged, including record headers
  uint64_t records() const;  // unacknowledged
  // Age of the oldest unacknowledged record in ms (0 when empty).
  int64_t oldest_age_ms() const;
  // fdatasync calls on segment files so far (group commit makes it far fewer than appends).
  uint64_t syncs() const;

 private:
  DurableQueue();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ordertrace::forward
