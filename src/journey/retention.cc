#include "journey/retention.h"

#include <chrono>

#include "common/log.h"

namespace ordertrace::journey {

RetentionTask::RetentionTask(JourneyStore& store, Engine& engine, const Clock& clock,
                             Retention retention, Duration interval)
    : store_(store), engine_(engine), clock_(clock), retention_(retention), interval_(interval) {}

void RetentionTask::Start() {
  if (worker_.running()) return;
  started_ = false;
  worker_.Start("retention", interval_, [this] {
    // The worker runs the body at once; the first pass waits one interval.
    if (!started_) {
      started_ = true;
      return;
    }
    auto pass = RunOnce();
    if (!pass.ok()) {
      log::Error("journey retention failed", {{"error", pass.status().message()}});
    } else if (pass->store.orders_removed + pass->store.spans_removed + pass->forgotten > 0) {
      log::Info("journey retention", {{"orders_removed", pass->store.orders_removed},
                                      {"spans_removed", pass->store.spans_removed},
                                      {"active_orders_forgotten", pass->forgotten}});
    }
  });
}

Result<RetentionTask::Pass> RetentionTask::RunOnce() {
  const Nanos now = clock_.Now();
  auto removed = store_.EnforceRetention(now, retention_);
  Pass pass;
  if (retention_.inactive_orders.count() > 0) {
    // The store dropped abandoned journeys; the engine forgets their deadlines too.
    pass.forgotten =
        engine_.ForgetInactive(now - std::chrono::nanoseconds(retention_.inactive_orders).count());
  }
  if (!removed.ok()) return removed.status();
  pass.store = removed.value();
  return pass;
}

}  // namespace ordertrace::journey
