// MemoryExporter: a libordertrace SpanExporter for tests.  Keeps a copy of every span it is
// given; Block() makes Export() wait until Release() (to fill the batch processor's queue).
// Header-only.
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <vector>

#include "ordertrace/tracer.h"

namespace ordertrace::testing_support {

class MemoryExporter : public SpanExporter {
 public:
  ExportResult Export(const std::vector<std::unique_ptr<SpanData>>& spans) noexcept override {
    std::unique_lock<std::mutex> lock(mu_);
    ++calls_;
    entered_.notify_all();
    released_cv_.wait(lock, [&] { return released_; });
    for (const auto& s : spans) spans_.push_back(*s);
    return ExportResult::kSuccess;
  }
  void Block() {
    std::lock_guard<std::mutex> lock(mu_);
    released_ = false;
  }
  void Release() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      released_ = true;
    }
    released_cv_.notify_all();
  }
  // Waits until Export() has been called at least once.
  bool WaitEntered(std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    return entered_.wait_for(lock, timeout, [&] { return calls_ > 0; });
  }
  std::vector<SpanData> spans() {
    std::lock_guard<std::mutex> lock(mu_);
    return spans_;
  }

 private:
  std::mutex mu_;
  std::condition_variable entered_, released_cv_;
  bool released_ = true;
  int calls_ = 0;
  std::vector<SpanData> spans_;
};

}  // namespace ordertrace::testing_support
