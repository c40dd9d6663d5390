// Detector: the background thread that runs the engine's Tick(now) when a deadline falls due.
// It ticks at the next deadline (asked after each tick), at least every `max_sleep`, and
// sooner when woken (Wake(): Apply() brought an earlier deadline, or the rules changed); but
// never more often than every `min_interval`, so deadlines that fall close together are
// flagged by one Tick() and one store transaction (a tick per deadline cost a transaction per
// flag), at the price of at most `min_interval` of lag.  It judges no deadline past the facts
// not yet applied (`horizon`, below).  It runs on an ordertrace::Worker.
//
// Thread-safety: Start() and Stop() from the owning thread (the engine's owner); Wake() from
// any thread.  `tick` and `next_deadline` run on the detector's thread.
#pragma once

#include <chrono>
#include <functional>
#include <limits>

#include "common/clock.h"
#include "common/worker.h"

namespace ordertrace::journey {

class Detector {
 public:
  // `horizon()`: the clock time before which every accepted fact has been applied (facts wait
  // in the durable ingest log while the journeys consumer is behind).  Deadlines are judged up
  // to min(clock, horizon), never past facts not yet read: an order whose moving-on span waits
  // in the log is not flagged.  kCaughtUp: nothing waits; kHorizonUnknown: how far is not known
  // (a backlog found at start-up): no tick until it is.  While the horizon holds a due deadline
  // back the thread looks again every kHeldBackPoll.
  static constexpr Nanos kCaughtUp = std::numeric_limits<Nanos>::max();
  static constexpr Nanos kHorizonUnknown = std::numeric_limits<Nanos>::min();
  static constexpr std::chrono::milliseconds kHeldBackPoll{100};

  // `tick(now)` flags what is due at `now` (the clock's time, or the horizon when earlier);
  // `next_deadline()` returns the earliest pending deadline, kNoDeadline (deadline_heap.h) when
  // none; `horizon` may be empty (always caught up).  `clock` must outlive the detector.
  Detector(const Clock& clock, std::function<void(Nanos now)> tick,
           std::function<Nanos()> next_deadline, std::function<Nanos()> horizon = {});
  ~Detector() { Stop(); }
  Detector(const Detector&) = delete;
  Detector& operator=(const Detector&) = delete;

  // Starts the thread; a no-op when it runs already.
  void Start(Duration max_sleep, Duration min_interval);
  // Makes the thread tick as soon as `min_interval` since the last tick allows.
  void Wake() { worker_.Wake(); }
  // Joins the thread (its current Tick() finishes first).  Idempotent.
  void Stop() { worker_.Stop(); }

 private:
  // One run of the worker's body: ticks (unless woken before `min_interval` since the last
  // tick) and returns the wait until the next run.
  std::chrono::nanoseconds RunOnce();

  const Clock& clock_;
  std::function<void(Nanos)> tick_;
  std::function<Nanos()> next_deadline_;
  std::function<Nanos()> horizon_;
  std::chrono::nanoseconds max_sleep_{0};
  std::chrono::nanoseconds min_gap_{0};
  std::chrono::steady_clock::time_point last_tick_{};  // worker thread only
  Worker worker_;  // last: stopped before the members its body reads go away
};

}  // namespace ordertrace::journey
