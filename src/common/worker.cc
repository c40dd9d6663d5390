#include "common/worker.h"

#include <cassert>
#include <utility>

namespace ordertrace {

void Worker::Start(std::string name, std::chrono::milliseconds interval,
                   std::function<void()> body) {
  const std::chrono::nanoseconds wait = interval.count() > 0 ? interval : kForever;
  Start(std::move(name), [wait, body = std::move(body)] {
    body();
    return wait;
  });
}

void Worker::Start(std::string name, std::function<std::chrono::nanoseconds()> body) {
  assert(!thread_.joinable() && "Worker::Start on a running worker");
  name_ = std::move(name);
  stop_.store(false, std::memory_order_release);
  {
    std::lock_guard<std::mutex> lock(mu_);
    woken_ = false;
  }
  thread_ = std::thread([this, body = std::move(body)] { Run(body); });
}

void Worker::Run(const std::function<std::chrono::nanoseconds()>& body) {
  while (!stopping()) {
    const std::chrono::nanoseconds wait = body();
    std::unique_lock<std::mutex> lock(mu_);
    auto ready = [this] { return woken_ || stopping(); };
    if (wait == kForever) {
      cv_.wait(lock, ready);
    } else if (wait.count() > 0) {
      cv_.wait_for(lock, wait, ready);
    }
    woken_ = false;
  }
}

void Worker::Wake() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    woken_ = true;
  }
  cv_.notify_all();
}

void Worker::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_.store(true, std::memory_order_release);
  }
  cv_.notify_all();
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

bool Worker::SleepFor(std::chrono::milliseconds d) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, d, [this] { return stopping(); });
  return !stopping();
}

}  // namespace ordertrace
