// Test support for the gateway's tests: runs Gateway::Run() on a thread of its own, as
// `ordertrace serve` does, until Stop(), and can send that thread SIGHUP.
//
// Thread-safety: one test thread drives it; the gateway runs on the thread it owns.
#pragma once

#include <pthread.h>
#include <signal.h>

#include <chrono>
#include <thread>

#include "api/routes.h"
#include "common/status.h"
#include "gateway/gateway.h"

namespace ordertrace::gateway {

class RunningGateway {
 public:
  explicit RunningGateway(Gateway& gw) : gw_(gw), thread_([this] { result_ = gw_.Run(); }) {}
  ~RunningGateway() {
    if (thread_.joinable()) (void)Stop();  // a failed test's leftover; the result is moot
  }
  bool WaitReady() {
    for (int i = 0; i < 500 && gw_.readiness().state() != api::Readiness::State::kReady; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return gw_.readiness().state() == api::Readiness::State::kReady;
  }
  // To the runner thread only: it blocks SIGHUP, so the signal waits for its sigtimedwait.
  bool Hup() { return pthread_kill(thread_.native_handle(), SIGHUP) == 0; }
  Status Stop() {
    gw_.RequestStop();
    thread_.join();
    return result_;
  }

 private:
  Gateway& gw_;
  Status result_ = Status::Internal("not run");
  std::thread thread_;  // last: starts once the rest is ready
};

}  // namespace ordertrace::gateway
