// PerSecondLimit: lets at most N events a second through and counts the ones it held back, so
// that the next one let through can say how many were left out.  For lines a flood must not
// multiply: audit lines of refused connections, debug lines of redaction.
//
// Thread-safety: Admit() may be called from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <utility>

#include "common/thread_annotations.h"

namespace ordertrace {

class PerSecondLimit {
 public:
  explicit PerSecondLimit(int per_second) : per_second_(per_second > 0 ? per_second : 1) {}

  // Whether this event goes through; when it does, *left_out is the number held back since the
  // last one that did.
  bool Admit(uint64_t* left_out) {
    const auto now = std::chrono::steady_clock::now();
    MutexLock lock(mu_);
    if (now - window_ >= std::chrono::seconds(1)) {
      window_ = now;
      in_window_ = 0;
    }
    if (++in_window_ > per_second_) {
      ++left_out_;
      return false;
    }
    *left_out = std::exchange(left_out_, 0);
    return true;
  }

 private:
  const int per_second_;
  Mutex mu_;
  std::chrono::steady_clock::time_point window_ GUARDED_BY(mu_){};
  int in_window_ GUARDED_BY(mu_) = 0;
  uint64_t left_out_ GUARDED_BY(mu_) = 0;
};

}  // namespace ordertrace
