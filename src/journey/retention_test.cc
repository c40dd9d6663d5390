// RetentionTask: a pass removes expired journeys from the store and makes the engine forget
// the inactive ones; the background loop runs its first pass one interval after Start().
#include "journey/retention.h"

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <thread>

#include "journey/store/memory/memory_store.h"

namespace ordertrace::journey {
namespace {

constexpr Nanos kSecond = 1'000'000'000;
constexpr Nanos kHour = 3600 * kSecond;
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

Retention InactiveAfter(std::chrono::hours inactive) {
  Retention r;
  r.closed_orders = Duration(0);
  r.inactive_orders = inactive;
  r.spans = Duration(0);
  return r;
}

class RetentionTaskTest : public ::testing::Test {
 protected:
  RetentionTaskTest()
      : clock_(kT0),
        store_(NewMemoryStore()),
        engine_(std::make_shared<Rules>(DefaultRules()), *store_, clock_, nullptr) {}

  bool Known(const std::string& order) {
    auto row = store_->GetOrder(order);
    EXPECT_TRUE(row.ok());
    return row.ok() && row.value().has_value();
  }

  ManualClock clock_;
  std::unique_ptr<JourneyStore> store_;
  Engine engine_;
};

TEST_F(RetentionTaskTest, PassRemovesInactiveOrdersFromStoreAndEngine) {
  ASSERT_TRUE(engine_.Apply({Submitted("ORD-OLD", "00000000000000a1", kT0)}).ok());
  clock_.Set(kT0 + 10 * kHour);
  ASSERT_TRUE(engine_.Apply({Submitted("ORD-NEW", "00000000000000a2", kT0 + 10 * kHour)}).ok());
  ASSERT_EQ(engine_.active_orders(), 2u);

  RetentionTask task(*store_, engine_, clock_, InactiveAfter(std::chrono::hours(5)),
                     Duration(3600 * 1000));
  auto pass = task.RunOnce();
  ASSERT_TRUE(pass.ok()) << pass.status().ToString();
  EXPECT_EQ(pass->store.orders_removed, 1u);
  EXPECT_EQ(pass->forgotten, 1u);
  EXPECT_EQ(engine_.active_orders(), 1u);
  EXPECT_FALSE(Known("ORD-OLD"));
  EXPECT_TRUE(Known("ORD-NEW"));

  // Nothing more has expired: a second pass removes nothing.
  pass = task.RunOnce();
  ASSERT_TRUE(pass.ok());
  EXPECT_EQ(pass->store.orders_removed, 0u);
  EXPECT_EQ(pass->forgotten, 0u);
}

TEST_F(RetentionTaskTest, KeepingInactiveOrdersForeverForgetsNothing) {
  ASSERT_TRUE(engine_.Apply({Submitted("ORD-OLD", "00000000000000b1", kT0)}).ok());
  clock_.Set(kT0 + 1000 * kHour);
  RetentionTask task(*store_, engine_, clock_, InactiveAfter(std::chrono::hours(0)),
                     Duration(3600 * 1000));
  auto pass = task.RunOnce();
  ASSERT_TRUE(pass.ok());
  EXPECT_EQ(pass->store.orders_removed, 0u);
  EXPECT_EQ(pass->forgotten, 0u);
  EXPECT_EQ(engine_.active_orders(), 1u);
  EXPECT_TRUE(Known("ORD-OLD"));
}

TEST_F(RetentionTaskTest, BackgroundPassesStartOneIntervalAfterStart) {
  ASSERT_TRUE(engine_.Apply({Submitted("ORD-OLD", "00000000000000c1", kT0)}).ok());
  clock_.Set(kT0 + 10 * kHour);
  {
    // A long interval: stopped before the first pass, nothing is removed.
    RetentionTask task(*store_, engine_, clock_, InactiveAfter(std::chrono::hours(5)),
                       Duration(3600 * 1000));
    task.Start();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    task.Stop();
  }
  EXPECT_EQ(engine_.active_orders(), 1u);
  EXPECT_TRUE(Known("ORD-OLD"));

  // A short one: the pass comes on its own.
  RetentionTask task(*store_, engine_, clock_, InactiveAfter(std::chrono::hours(5)), Duration(10));
  task.Start();
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (engine_.active_orders() > 0 && std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  task.Stop();
  EXPECT_EQ(engine_.active_orders(), 0u);
  EXPECT_FALSE(Known("ORD-OLD"));
}

}  // namespace
}  // namespace ordertrace::journey
