// The sim's roles (partner, crm, mes): each a single-threaded event loop over its AMQP
// connections and a min-heap of timed actions (heartbeats, step completions, fault lifts), no
// thread per order.  docs/sim.md has the topology, the spans of every step and the faults.
//
// Thread-safety: a RoleRunner runs on one thread (Run); in_hand(), idle() and finished() may be
// read from others.  ReportWriter is thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>

#include "ordertrace/tracer.h"
#include "sim/options.h"

namespace ordertrace::sim {

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
class ReportWriter {
 public:
  // Truncates `path`; false (and errno) when it cannot be opened.
  bool Open(const std::string& path);
  ~ReportWriter();
  void Line(const std::string& json);

 private:
  std::mutex mu_;
  std::FILE* f_ = nullptr;
};

// The tracer options the sim uses for a role's provider: the standard OTEL_* variables, then
// service.name = the role, the OTLP endpoint from --otlp, and (unless the OTEL_BSP_* variables
// set them) a queue big enough for hundreds of orders per second, exported every 200 ms.
TracerOptions SimTracerOptions(const Options& options, const std::string& service);

class RoleRunner {
 public:
  // `role` is partner, crm or mes (not all).  The provider must outlive Run().  `report` may be
  // null.
  RoleRunner(Role role, const Options& options, TracerProvider& provider, ReportWriter* report);
  ~RoleRunner();
  RoleRunner(const RoleRunner&) = delete;
  RoleRunner& operator=(const RoleRunner&) = delete;

  // Runs until `stop` (then stops starting orders and consuming, finishes what is in hand for
  // up to --drain, closes AMQP) or, for the partner, until its orders are all submitted and
  // confirmed.  Then flushes and shuts the provider down and fills stats().  Returns them.
  Stats Run(const std::atomic<bool>& stop);

  // Work in hand: deliveries not acked yet and timed order actions pending.
  size_t in_hand() const { return in_hand_.load(); }
  // Nothing in hand, nothing to publish, no delivery for 2 s and no queue fault to come.
  bool idle() const { return idle_.load(); }
  // The partner has started every order it was asked for.
  bool finished() const { return finished_.load(); }

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
  std::atomic<size_t> in_hand_{0};
  std::atomic<bool> idle_{false};
  std::atomic<bool> finished_{false};
};

// The `ordertrace-sim` program: parses args, runs the role(s) until SIGINT/SIGTERM (or the
// partner's orders are done), writes stats.  Returns the exit status (0, 1 runtime failure, 2
// usage).
int SimMain(int argc, char** argv);

}  // namespace ordertrace::sim
