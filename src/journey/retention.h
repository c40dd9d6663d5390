// RetentionTask: enforces the journey store's retention (store.h Retention) in the background,
// every `interval`, and keeps the engine in step: the orders retention removed as inactive
// (no span for retention.inactive_orders) are forgotten by the engine too (ForgetInactive),
// so their deadlines do not flag orders the store no longer has.  Each pass is logged when it
// removed something; a failed pass is logged and tried again at the next interval.
//
// Thread-safety: Start() and Stop() from the owning thread; RunOnce() from any thread (it
// takes the store's and the engine's own locks).
#pragma once

#include <cstdint>

#include "common/clock.h"
#include "common/status.h"
#include "common/worker.h"
#include "journey/engine.h"
#include "journey/store/store.h"

namespace ordertrace::journey {

class RetentionTask {
 public:
  struct Pass {
    RetentionResult store;   // removed from the store
    uint64_t forgotten = 0;  // active orders the engine forgot
  };

  // `store`, `engine` and `clock` must outlive the task.
  RetentionTask(JourneyStore& store, Engine& engine, const Clock& clock, Retention retention,
                Duration interval);
  ~RetentionTask() { Stop(); }
  RetentionTask(const RetentionTask&) = delete;
  RetentionTask& operator=(const RetentionTask&) = delete;

  // Runs a pass every `interval`, the first one interval after Start().
  void Start();
  // Joins the thread; a pass under way finishes first.  Idempotent.
  void Stop() { worker_.Stop(); }

  // One pass at the clock's time: the store's retention, then the engine forgets what the
  // store dropped as inactive (even when the store failed part of it: what it removed before
  // the error is gone).  Returns the store's error, if any.
  Result<Pass> RunOnce();

 private:
  JourneyStore& store_;
  Engine& engine_;
  const Clock& clock_;
  const Retention retention_;
  const Duration interval_;
  bool started_ = false;  // worker thread only: the first run of the body is the Start()
  Worker worker_;         // last: stopped before the members its body reads go away
};

}  // namespace ordertrace::journey
