// Worker: one background thread that runs a body again and again, each `interval` or sooner
// when woken, until stopped.  Every background loop of the gateway (ingest queue, forwarder,
// detector, alert sender, broker poller, retention) runs on one, so the stop protocol (flag,
// wake, join, exactly once) is written once.
//
//   Worker w;
//   w.Start("detector", std::chrono::milliseconds(100), [&] { engine.Tick(clock.Now()); });
//   ...
//   w.Stop();  // the current run of the body finishes, then the thread is joined
//
// The body runs once at Start(), then after each wait.  A wait ends after `interval`, on
// Wake(), or on Stop(); an interval of 0 waits for Wake() or Stop() only.  A Wake() that
// arrives while the body runs is not lost: the next wait returns at once.  Bodies with waits
// of their own (a retry backoff) use SleepFor(), which Stop() interrupts.
//
// Thread-safety: Start() and Stop() from the owning thread (Stop() is idempotent and also
// runs in the destructor); Wake(), SleepFor() and stopping() from any thread.  The body runs
// on the worker's thread only, never concurrently with itself.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace ordertrace {

class Worker {
 public:
  Worker() = default;
  ~Worker() { Stop(); }
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Starts the thread.  Calling Start() on a running worker is a programming error (assert).
  void Start(std::string name, std::chrono::milliseconds interval, std::function<void()> body);
  // As above, for loops whose period changes (the journey detector sleeps until the next
  // deadline): the body returns how long to wait before its next run; 0 or less runs it again
  // at once.  Wake() and Stop() end the wait early, as above.
  void Start(std::string name, std::function<std::chrono::nanoseconds()> body);

  // Makes the current or next wait return at once.
  void Wake();

  // Asks the body to stop, interrupts its waits, and joins the thread.  The body's current run
  // finishes first (bodies that loop check stopping()).
  void Stop();

  // Sleeps up to `d`; returns false at once when the worker is stopping.
  bool SleepFor(std::chrono::milliseconds d);

  bool stopping() const { return stop_.load(std::memory_order_acquire); }
  bool running() const { return thread_.joinable(); }
  const std::string& name() const { return name_; }

 private:
  // `body` returns the next wait; kForever waits for Wake() or Stop() only.
  static constexpr std::chrono::nanoseconds kForever = std::chrono::nanoseconds::max();
  void Run(const std::function<std::chrono::nanoseconds()>& body);

  std::string name_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool woken_ = false;  // guarded by mu_
  std::atomic<bool> stop_{false};
};

}  // namespace ordertrace
