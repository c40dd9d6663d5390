#include "journey/detector.h"

#include <algorithm>
#include <utility>

#include "journey/deadline_heap.h"

namespace ordertrace::journey {

Detector::Detector(const Clock& clock, std::function<void(Nanos)> tick,
                   std::function<Nanos()> next_deadline, std::function<Nanos()> horizon)
    : clock_(clock),
      tick_(std::move(tick)),
      next_deadline_(std::move(next_deadline)),
      horizon_(std::move(horizon)) {}

void Detector::Start(Duration max_sleep, Duration min_interval) {
  if (worker_.running()) return;
  max_sleep_ = std::chrono::duration_cast<std::chrono::nanoseconds>(max_sleep);
  min_gap_ = std::chrono::duration_cast<std::chrono::nanoseconds>(min_interval);
  last_tick_ = {};
  worker_.Start("detector", [this] { return RunOnce(); });
}

std::chrono::nanoseconds Detector::RunOnce() {
  using std::chrono::steady_clock;
  // A wake-up (Wake()) shortens the wait, never below min_interval since the last tick: one
  // that comes sooner waits out the rest (and later wake-ups until then are absorbed).
  if (last_tick_ != steady_clock::time_point{}) {
    const auto rest = last_tick_ + min_gap_ - steady_clock::now();
    if (rest.count() > 0) return rest;
  }
  const auto ticked = steady_clock::now();
  last_tick_ = ticked;
  const Nanos now = clock_.Now();
  const Nanos judged = horizon_ ? std::min(now, horizon_()) : now;
  if (judged != kHorizonUnknown) tick_(judged);
  const Nanos next = next_deadline_();
  auto sleep = max_sleep_;
  if (next != kNoDeadline) {
    if (next <= now && judged < now) {
      sleep = std::min<std::chrono::nanoseconds>(sleep, kHeldBackPoll);  // the horizon holds it
    } else {
      sleep = std::min(sleep, std::chrono::nanoseconds(std::max<Nanos>(next - now, 0)));
    }
  }
  return ticked + std::max(sleep, min_gap_) - steady_clock::now();
}

}  // namespace ordertrace::journey
