// Time as the gateway counts it: Unix nanoseconds (`Nanos`, the unit of every span timestamp),
// millisecond durations (`Duration`, the unit of rules and options), and the clock the engine,
// the alert dispatcher and the broker monitor read, so tests can set it by hand.
//
// Thread-safety: SystemClock is stateless; ManualClock is atomic and may be set from one
// thread while others read it.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace ordertrace {

using Nanos = int64_t;                       // Unix time in nanoseconds
using Duration = std::chrono::milliseconds;  // deadlines, intervals, grace

class Clock {
 public:
  virtual ~Clock() = default;
  virtual Nanos Now() const = 0;
};

// The system's real-time clock.
class SystemClock : public Clock {
 public:
  Nanos Now() const override {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
};

// A clock tests set by hand.
class ManualClock : public Clock {
 public:
  explicit ManualClock(Nanos now = 0) : now_(now) {}
  Nanos Now() const override { return now_.load(); }
  void Set(Nanos now) { now_.store(now); }
  void Advance(Duration d) { now_.fetch_add(std::chrono::nanoseconds(d).count()); }

 private:
  std::atomic<Nanos> now_;
};

}  // namespace ordertrace
