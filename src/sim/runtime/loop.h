// The event loop of a sim role: one thread per role, no thread per order.  The loop connects the
// role's two AMQP connections (Inbox, Outbox), runs its timed actions (Timers), publishes, hands
// deliveries to the role's steps (sim/roles/) and, when asked to stop, finishes what is in hand.
// docs/sim.md has the topology, the spans of every step and the faults.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <queue>
#include <string>
#include <vector>

#include "ordertrace/tracer.h"
#include "sim/options.h"
#include "sim/runtime/report.h"

namespace ordertrace::sim {

// A role's timed actions (heartbeats, step completions, fault starts and lifts), run in time
// order, in scheduling order among equal times.
//
// Thread-safety: not thread-safe; its role's loop thread uses it.
class Timers {
 public:
  using TimePoint = Clock::time_point;

  // Runs `fn` `delay` from now.  `order_work`: whether it is part of an order in hand (counted
  // by order_work(), so the role is not idle and a stop waits for it); the schedule of queue
  // faults is not.
  void After(Micros delay, std::function<void()> fn, bool order_work = true);
  // Runs `fn` (order work) at `at`.
  void At(TimePoint at, std::function<void()> fn);
  // Runs every action that is due, and those they schedule that are due already.
  void RunDue();
  // How long until the next action is due (0 when one is overdue), at most `cap`.
  Micros UntilNext(Micros cap) const;
  // Pending actions that are order work.
  size_t order_work() const { return order_work_; }

 private:
  struct Timer {
    TimePoint at;
    uint64_t seq;
    std::function<void()> fn;
    bool order_work;
    bool operator>(const Timer& o) const { return at != o.at ? at > o.at : seq > o.seq; }
  };
  std::priority_queue<Timer, std::vector<Timer>, std::greater<Timer>> heap_;
  uint64_t seq_ = 0;
  size_t order_work_ = 0;
};

// The tracer options the sim uses for a role's provider: the standard OTEL_* variables, then
// service.name = the role, the OTLP endpoint from --otlp, and (unless the OTEL_BSP_* variables
// set them) a queue big enough for hundreds of orders per second, exported every 200 ms.
TracerOptions SimTracerOptions(const Options& options, const std::string& service);

// Runs one role (partner, crm or mes) on the calling thread.
//
// Thread-safety: Run() on one thread; in_hand(), idle() and finished() may be read from others.
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

 private:
  struct Parts;  // the runtime and the role's steps (loop.cc)

  size_t InHand() const;
  void BeginStop();
  void Progress();
  Stats Finish();

  std::unique_ptr<Parts> parts_;
  std::atomic<size_t> in_hand_{0};
  std::atomic<bool> idle_{false};
  std::atomic<bool> finished_{false};
};

}  // namespace ordertrace::sim
