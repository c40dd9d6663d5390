// Engine behaviour the data-driven cases (tests/journeys/cases) do not reach: forgetting
// abandoned journeys after retention, and the detector thread flagging on its own.
#include "journey/engine.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "journey/memory_store.h"

namespace ordertrace::journey {
namespace {

constexpr Nanos kSecond = 1'000'000'000;
constexpr Nanos kT0 = 1'790'000'000 * kSecond;

SpanRecord Submitted(const std::string& order, const std::string& span_id, Nanos end) {
  SpanRecord r;
  r.order_id = order;
  r.trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
  r.span_id = span_id;
  r.service = "crm";
  r.name = "POST /api/orders";
  r.start_ns = end - kSecond;
  r.end_ns = end;
  r.stage = "SUBMITTED";
  return r;
}

class Recorder : public EngineListener {
 public:
  void OnStuck(const OrderRow& row) override {
    std::lock_guard lock(mu);
    stuck.push_back(row.order_id);
  }
  void OnCleared(const OrderRow& row) override {
    std::lock_guard lock(mu);
    cleared.push_back(row.order_id);
  }
  std::mutex mu;
  std::vector<std::string> stuck, cleared;
};

TEST(EngineTest, ForgetInactiveDropsAbandonedOrdersAndTheirMessages) {
  ManualClock clock(kT0);
  auto store = NewMemoryStore();
  Engine engine(std::make_shared<Rules>(DefaultRules()), *store, clock, nullptr);
  SpanRecord publish = Submitted("OLD", "00000000000000a2", kT0 - 1000 * kSecond);
  publish.stage.clear();
  publish.hop = HopRole::kSend;
  publish.message_id = "m-old";
  ASSERT_TRUE(engine
                  .Apply({Submitted("OLD", "00000000000000a1", kT0 - 1000 * kSecond), publish,
                          Submitted("NEW", "00000000000000b1", kT0)})
                  .ok());
  EXPECT_EQ(engine.Tick(kT0), 1u);  // OLD: its message and the receipt by mes are long overdue
  EXPECT_EQ(engine.active_orders(), 2u);
  EXPECT_EQ(engine.open_hops(), 1u);

  EXPECT_EQ(engine.stuck_orders(), 1u);
  EXPECT_EQ(engine.ForgetInactive(kT0 - 500 * kSecond), 1u);
  EXPECT_EQ(engine.active_orders(), 1u);
  EXPECT_EQ(engine.open_hops(), 0u);
  EXPECT_EQ(engine.stuck_orders(), 0u);
  EXPECT_EQ(engine.ForgetInactive(kT0 - 500 * kSecond), 0u);
  // Nothing of OLD fires any more.
  EXPECT_EQ(engine.Tick(kT0 + 3600 * kSecond), 1u);  // only NEW, whose deadlines pass now
}

TEST(EngineTest, DetectorThreadFlagsOnItsOwn) {
  SystemClock clock;
  auto store = NewMemoryStore();
  Engine engine(std::make_shared<Rules>(DefaultRules()), *store, clock, nullptr);
  Recorder recorder;
  engine.AddListener(&recorder);
  engine.StartDetector();
  // Received-by-mes is due 2m after the milestone, plus 30 s grace: stamp the milestone so
  // that the deadline passes 300 ms from now.
  const Nanos now = clock.Now();
  const Nanos due = now + 300'000'000;
  ASSERT_TRUE(engine.Apply({Submitted("T1", "00000000000000c1", due - 150 * kSecond)}).ok());
  EXPECT_EQ(engine.NextDeadline(), due);
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  Nanos flagged_at = 0;
  while (std::chrono::steady_clock::now() < until) {
    {
      std::lock_guard lock(recorder.mu);
      if (!recorder.stuck.empty()) {
        flagged_at = clock.Now();
        break;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  engine.StopDetector();
  ASSERT_NE(flagged_at, 0) << "not flagged within 5 s";
  EXPECT_GE(flagged_at, due);  // never before the deadline plus grace
  // How soon after the deadline is a benchmark's business (bench/journey_bench.cc --lag),
  // not a timed unit test's.
}

}  // namespace
}  // namespace ordertrace::journey
