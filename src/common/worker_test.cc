#include "common/worker.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

namespace ordertrace {
namespace {

using namespace std::chrono_literals;

// Waits up to 10 s for `pred`: the tests assert on events, never on timings.
template <typename Pred>
bool Eventually(Pred pred) {
  for (int i = 0; i < 1000; ++i) {
    if (pred()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return pred();
}

TEST(Worker, RunsTheBodyAtStartAndAfterEachInterval) {
  std::atomic<int> runs{0};
  Worker w;
  w.Start("periodic", 1ms, [&] { ++runs; });
  EXPECT_TRUE(Eventually([&] { return runs.load() >= 3; }));
  w.Stop();
  EXPECT_FALSE(w.running());
}

TEST(Worker, WithoutAnIntervalRunsOnlyWhenWoken) {
  std::atomic<int> runs{0};
  Worker w;
  w.Start("woken", 0ms, [&] { ++runs; });
  ASSERT_TRUE(Eventually([&] { return runs.load() == 1; }));
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(runs.load(), 1);  // no interval: nothing until Wake()
  w.Wake();
  EXPECT_TRUE(Eventually([&] { return runs.load() == 2; }));
  w.Stop();
}

TEST(Worker, AWakeDuringTheBodyIsNotLost) {
  std::atomic<int> runs{0};
  Worker w;
  w.Start("self-waking", 0ms, [&] {
    if (++runs == 1) w.Wake();  // arrives before the wait
  });
  EXPECT_TRUE(Eventually([&] { return runs.load() >= 2; }));
  w.Stop();
}

TEST(Worker, StopInterruptsALongIntervalAndSleepFor) {
  std::atomic<bool> slept_through{false};
  Worker w;
  w.Start("sleeper", 3600s, [&] {
    if (w.SleepFor(3600s)) slept_through = true;
  });
  std::this_thread::sleep_for(20ms);
  auto t0 = std::chrono::steady_clock::now();
  w.Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 60s);  // not an hour
  EXPECT_FALSE(slept_through.load());
  EXPECT_TRUE(w.stopping());
}

TEST(Worker, StopIsIdempotentAndRestartable) {
  std::atomic<int> runs{0};
  Worker w;
  w.Stop();  // never started
  w.Start("again", 0ms, [&] { ++runs; });
  ASSERT_TRUE(Eventually([&] { return runs.load() == 1; }));
  w.Stop();
  w.Stop();
  w.Start("again", 0ms, [&] { ++runs; });
  EXPECT_TRUE(Eventually([&] { return runs.load() == 2; }));
}

}  // namespace
}  // namespace ordertrace
