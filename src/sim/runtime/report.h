// What a sim role did: the counters printed at exit (one JSON line per role) and the --report
// file, where the partner also writes a line per order naming the faults that select it.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

#include "common/thread_annotations.h"

namespace ordertrace::sim {

// One role's counters.  Thread-safety: a plain value; while the role runs, only its loop thread
// (the runner, its inbox and outbox, and its steps) touches it.
struct Stats {
  std::string role;
  uint64_t orders_started = 0;      // partner
  uint64_t messages_processed = 0;  // deliveries handled (redeliveries of work in hand too)
  uint64_t published = 0;           // confirmed publishes
  uint64_t publish_failures = 0;    // failed attempts (each left a FAIL publish span)
  uint64_t publish_retries = 0;     // attempts after a failure
  uint64_t reconnects = 0;          // connections re-established (both connections)
  uint64_t orders_closed = 0;       // crm
  uint64_t unsent = 0;              // publishes still waiting at exit (broker unreachable)
  // From the TracerProvider's own counters (TracerStats), after ForceFlush + Shutdown.
  uint64_t spans_ended = 0;
  uint64_t spans_exported = 0;
  uint64_t spans_dropped = 0;  // queue full + export failed
};
// One JSON object, one line: {"role":..,"orders_started":..,...}.
std::string StatsJson(const Stats& stats);

// The --report file: JSON lines, each flushed at once; shared by the roles of `all`.
//
// Thread-safety: thread-safe.
class ReportWriter {
 public:
  // Truncates `path`; false (and errno) when it cannot be opened.
  bool Open(const std::string& path);
  ~ReportWriter();
  void Line(const std::string& json);

 private:
  Mutex mu_;
  std::FILE* f_ GUARDED_BY(mu_) = nullptr;
};

}  // namespace ordertrace::sim
