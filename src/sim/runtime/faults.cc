#include "sim/runtime/faults.h"

#include <cstdio>

#include "sim/runtime/inbox.h"
#include "sim/runtime/loop.h"

namespace ordertrace::sim {

const FaultSpec* Faults::For(FaultKind kind, const std::string& order) const {
  for (const FaultSpec& f : options_.faults)
    if (f.kind == kind && f.Selects(options_.seed, order)) return &f;
  return nullptr;
}

std::vector<std::string> Faults::NamesFor(const std::string& order) const {
  std::vector<std::string> names;
  for (const FaultSpec& f : options_.faults)
    if (f.Selects(options_.seed, order)) names.emplace_back(FaultName(f.kind));
  return names;
}

void Faults::ScheduleQueueFaults(const std::string& role, Timers& timers, Inbox& inbox) {
  for (const FaultSpec& f : options_.faults) {
    if (!IsQueueFault(f.kind)) continue;
    const int index = inbox.IndexOf(f.queue);
    if (index < 0) continue;  // another role consumes it
    ++queue_faults_pending_;
    const size_t i = static_cast<size_t>(index);
    const FaultSpec* fp = &f;
    // Neither the start nor the lift is order work: the role may be idle meanwhile.
    if (f.kind == FaultKind::kConsumerGone) {
      timers.After(
          f.after,
          [this, role, &timers, &inbox, i, fp] {
            std::fprintf(stderr, "%s: fault %s: cancelling the consumer of %s\n", role.c_str(),
                         fp->text.c_str(), inbox.queue(i).c_str());
            inbox.Cancel(i);
            if (fp->lift_after)
              timers.After(
                  *fp->lift_after,
                  [this, role, &inbox, i] {
                    std::fprintf(stderr, "%s: consuming %s again\n", role.c_str(),
                                 inbox.queue(i).c_str());
                    inbox.Resume(i);
                    --queue_faults_pending_;
                  },
                  false);
          },
          false);
    } else {
      timers.After(
          f.after,
          [this, &timers, &inbox, i, fp] {
            inbox.Throttle(i, fp->per_second);
            if (fp->lift_after)
              timers.After(
                  *fp->lift_after,
                  [this, &inbox, i] {
                    inbox.Unthrottle(i);
                    --queue_faults_pending_;
                  },
                  false);
          },
          false);
    }
  }
}

}  // namespace ordertrace::sim
