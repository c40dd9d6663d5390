// The --fault specs as a role sees them: which order faults select an order (every process
// agrees without talking: options.h, FaultSpec::Selects), and the queue faults of the queues this
// role consumes, started and lifted on the role's timers.
#pragma once

#include <string>
#include <vector>

#include "sim/options.h"

namespace ordertrace::sim {

class Inbox;
class Timers;

// Thread-safety: not thread-safe; its role's loop thread uses it.
class Faults {
 public:
  explicit Faults(const Options& options) : options_(options) {}

  // The first --fault of `kind` that selects `order`; null when none does.
  const FaultSpec* For(FaultKind kind, const std::string& order) const;
  // The names of the faults that select `order`, in --fault order (for the report).
  std::vector<std::string> NamesFor(const std::string& order) const;

  // Schedules the queue faults (consumer-gone, slow-consumer) on the queues `inbox` consumes:
  // each starts `after` from now and, with `for`, is lifted that long later.  `role` is for logs;
  // `timers` and `inbox` must outlive the scheduled actions.
  void ScheduleQueueFaults(const std::string& role, Timers& timers, Inbox& inbox);
  // Queue faults scheduled and not lifted yet (a fault without `for` stays pending).
  size_t queue_faults_pending() const { return queue_faults_pending_; }

 private:
  const Options& options_;
  size_t queue_faults_pending_ = 0;
};

}  // namespace ordertrace::sim
