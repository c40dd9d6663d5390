// The journey stage in batched mode (the gateway's ingest-log consumer): many requests' facts in
// one engine write, and a replay of the same requests after a restart (what the log's consumer
// does after a crash) changes nothing and flags nothing twice.
#include "journey/journey_stage.h"

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "journey/engine.h"
#include "journey/store/memory/memory_store.h"
#include "otlp/decoder.h"
#include "support/otlp_requests.h"

namespace ordertrace::journey {
namespace {

using testing_support::RequestBuilder;
using testing_support::SpanBuilder;

constexpr Nanos kSecond = 1'000'000'000;
constexpr Nanos kNow = 1'790'000'000 * kSecond;

// One request: order `order` submitted by crm an hour before kNow (its deadline long passed).
std::shared_ptr<const otlp::SpanBatch> Submitted(int n) {
  const std::string order = "ORD-B-" + std::to_string(n);
  const uint64_t end = static_cast<uint64_t>(kNow - 3600 * kSecond);
  auto req = RequestBuilder()
                 .Resource("crm")
                 .Add(SpanBuilder("POST /api/orders")
                          .Ids(std::string(15, '\x07') + static_cast<char>(n + 1),
                               std::string(7, '\x03') + static_cast<char>(n + 1))
                          .Times(end - kSecond, end)
                          .Attr("order.id", order)
                          .Attr("order.stage", "SUBMITTED"))
                 .Build();
  auto batch =
      otlp::DecodeExportRequest(req.SerializeAsString(), otlp::Protocol::kGrpc, otlp::Limits{});
  EXPECT_TRUE(batch.ok());
  return std::move(batch).value();
}

class Recorder : public EngineListener {
 public:
  void OnStuck(const OrderRow& row) override {
    std::lock_guard lock(mu);
    stuck.push_back(row.order_id);
  }
  void OnCleared(const OrderRow&) override {}
  std::mutex mu;
  std::vector<std::string> stuck;
};

std::string Series(const std::string& text, const std::string& series) {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.compare(0, series.size() + 1, series + " ") == 0)
      return line.substr(series.size() + 1);
  }
  return "";
}

TEST(JourneyStageTest, BatchedAppliesTheFactsOfManyRequestsInOneWrite) {
  auto store = NewMemoryStore();
  ManualClock clock(kNow);
  metrics::Registry registry;
  Engine engine(std::make_shared<Rules>(DefaultRules()), *store, clock, &registry);
  ASSERT_TRUE(engine.Recover().ok());
  JourneyStage stage(engine, registry, AttributionOptions{}, JourneyStageOptions{true, {}});
  for (int i = 0; i < 5; ++i) stage.Process(Submitted(i));
  EXPECT_EQ(engine.active_orders(), 0u) << "nothing applied before Flush()";
  EXPECT_TRUE(stage.Flush(false));
  EXPECT_EQ(engine.active_orders(), 5u);
  const std::string text = registry.Serialize();
  EXPECT_EQ(Series(text, "ordertrace_journey_apply_facts_count"), "1") << text;
  EXPECT_EQ(Series(text, "ordertrace_journey_apply_facts_sum"), "5") << text;
  EXPECT_TRUE(stage.Flush(false));  // nothing gathered: no write
  EXPECT_EQ(Series(registry.Serialize(), "ordertrace_journey_apply_facts_count"), "1");
}

TEST(JourneyStageTest, AReplayAfterARestartFlagsNothingTwice) {
  auto store = NewMemoryStore();
  ManualClock clock(kNow);
  {
    metrics::Registry registry;
    Engine engine(std::make_shared<Rules>(DefaultRules()), *store, clock, &registry);
    ASSERT_TRUE(engine.Recover().ok());
    Recorder recorder;
    engine.AddListener(&recorder);
    JourneyStage stage(engine, registry, AttributionOptions{}, JourneyStageOptions{true, {}});
    for (int i = 0; i < 3; ++i) stage.Process(Submitted(i));
    ASSERT_TRUE(stage.Flush(false));
    EXPECT_EQ(engine.Tick(kNow), 3u);
    EXPECT_EQ(recorder.stuck.size(), 3u);
    stage.Stop();
  }
  // "Crash" and restart: the ingest log hands the same requests to a new engine on the store.
  metrics::Registry registry;
  Engine engine(std::make_shared<Rules>(DefaultRules()), *store, clock, &registry);
  ASSERT_TRUE(engine.Recover().ok());
  EXPECT_EQ(engine.stuck_orders(), 3u) << "flagged orders stay flagged";
  Recorder recorder;
  engine.AddListener(&recorder);
  JourneyStage stage(engine, registry, AttributionOptions{}, JourneyStageOptions{true, {}});
  for (int i = 0; i < 3; ++i) stage.Process(Submitted(i));
  ASSERT_TRUE(stage.Flush(true));
  clock.Set(kNow + 10 * kSecond);
  EXPECT_EQ(engine.Tick(clock.Now()), 0u);
  EXPECT_TRUE(recorder.stuck.empty()) << "a second alert for the same stuck episode";
  EXPECT_EQ(engine.active_orders(), 3u);
  EXPECT_EQ(engine.stuck_orders(), 3u);
}

// journeys.apply_delay is a drill's knob: shutdown (EndDelays) cuts a sleep under way short, so
// SIGTERM is not held up for the whole delay, and the facts are still applied.
TEST(JourneyStageTest, EndDelaysCutsAnApplyDelayUnderWayShort) {
  auto store = NewMemoryStore();
  ManualClock clock(kNow);
  metrics::Registry registry;
  Engine engine(std::make_shared<Rules>(DefaultRules()), *store, clock, &registry);
  ASSERT_TRUE(engine.Recover().ok());
  JourneyStage stage(engine, registry, AttributionOptions{},
                     JourneyStageOptions{true, std::chrono::minutes(10)});
  stage.Process(Submitted(1));
  const auto start = std::chrono::steady_clock::now();
  std::thread flusher([&] { EXPECT_TRUE(stage.Flush(false)); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(engine.active_orders(), 0u) << "still in its delay";
  stage.EndDelays();
  flusher.join();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::minutes(5));
  EXPECT_EQ(engine.active_orders(), 1u);
}

}  // namespace
}  // namespace ordertrace::journey
