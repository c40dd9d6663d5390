// Engine behaviour the data-driven cases (tests/journeys/cases) do not reach: forgetting
// abandoned journeys after retention, the detector thread flagging on its own, and the
// per-stage Prometheus metrics (read back from the registry's exposition text).
#include "journey/engine.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <future>
#include <mutex>
#include <sstream>
#include <thread>

#include "journey/detector.h"
#include "journey/store/memory/memory_store.h"
#include "journey/store/sqlite/db.h"
#include "journey/store/sqlite/sqlite_store.h"

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

// The value of one series in the exposition text ("" when the series is absent).
std::string Series(const std::string& text, const std::string& series) {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.size() > series.size() && line.compare(0, series.size(), series) == 0 &&
        line[series.size()] == ' ') {
      return line.substr(series.size() + 1);
    }
  }
  return "";
}

SpanRecord Milestone(const std::string& order, const std::string& span_id, const std::string& stage,
                     const std::string& service, Nanos end) {
  SpanRecord r = Submitted(order, span_id, end);
  r.stage = stage;
  r.service = service;
  return r;
}

TEST(EngineMetricsTest, ActiveAndStuckOrdersByStageWithoutOrderIds) {
  ManualClock clock(kT0);
  auto store = NewMemoryStore();
  metrics::Registry registry;
  Engine engine(std::make_shared<Rules>(DefaultRules()), *store, clock, &registry);
  const std::string active = "ordertrace_journey_active_orders_by_stage";
  const std::string stuck = "ordertrace_journey_stuck_orders_by_stage";
  // Every stage has its series from the start, at 0; no stuck series yet.
  std::string text = registry.Serialize();
  EXPECT_EQ(Series(text, active + "{stage=\"none\"}"), "0");
  EXPECT_EQ(Series(text, active + "{stage=\"SHIPPED\"}"), "0");
  EXPECT_EQ(text.find(stuck + "{"), std::string::npos);
  // Each stage's position in the rules, for dashboards and `ordertrace watch`.
  const std::string index = "ordertrace_journey_stage_index";
  EXPECT_EQ(Series(text, index + "{stage=\"none\"}"), "-1");
  EXPECT_EQ(Series(text, index + "{stage=\"SUBMITTED\"}"), "0");
  EXPECT_EQ(Series(text, index + "{stage=\"CLOSED\"}"), "5");
  EXPECT_EQ(Series(text, "ordertrace_journey_closed_total"), "0");

  SpanRecord no_stage = Submitted("ORD-M-3", "00000000000000d3", kT0);
  no_stage.stage.clear();
  ASSERT_TRUE(engine
                  .Apply({Submitted("ORD-M-1", "00000000000000d1", kT0),
                          Submitted("ORD-M-2", "00000000000000d2", kT0), no_stage})
                  .ok());
  text = registry.Serialize();
  EXPECT_EQ(Series(text, active + "{stage=\"SUBMITTED\"}"), "2");
  EXPECT_EQ(Series(text, active + "{stage=\"none\"}"), "1");

  // Received by mes is due 2m after SUBMITTED, plus 30 s grace.
  clock.Set(kT0 + 180 * kSecond);
  EXPECT_EQ(engine.Tick(kT0 + 180 * kSecond), 2u);
  text = registry.Serialize();
  EXPECT_EQ(Series(text, stuck + "{stage=\"SUBMITTED\",service=\"mes\",kind=\"not_received\"}"),
            "2");

  // ORD-M-1 moves on after 200 s: cleared, counted in its new stage, SUBMITTED's duration seen.
  ASSERT_TRUE(engine
                  .Apply({Milestone("ORD-M-1", "00000000000000e1", "PRICE_CALCULATED", "crm",
                                    kT0 + 200 * kSecond)})
                  .ok());
  text = registry.Serialize();
  EXPECT_EQ(Series(text, active + "{stage=\"SUBMITTED\"}"), "1");
  EXPECT_EQ(Series(text, active + "{stage=\"PRICE_CALCULATED\"}"), "1");
  EXPECT_EQ(Series(text, stuck + "{stage=\"SUBMITTED\",service=\"mes\",kind=\"not_received\"}"),
            "1");
  const std::string duration = "ordertrace_journey_stage_duration_seconds";
  EXPECT_EQ(Series(text, duration + "_count{stage=\"SUBMITTED\"}"), "1");
  EXPECT_EQ(Series(text, duration + "_sum{stage=\"SUBMITTED\"}"), "200");
  EXPECT_EQ(Series(text, duration + "_bucket{stage=\"SUBMITTED\",le=\"120\"}"), "0");
  EXPECT_EQ(Series(text, duration + "_bucket{stage=\"SUBMITTED\",le=\"300\"}"), "1");
  EXPECT_EQ(Series(text, duration + "_bucket{stage=\"SUBMITTED\",le=\"864000\"}"), "1");
  EXPECT_EQ(Series(text, duration + "_count{stage=\"PRICE_CALCULATED\"}"), "0");

  // A closed order leaves memory, and its stage's count.
  ASSERT_TRUE(
      engine.Apply({Milestone("ORD-M-2", "00000000000000e2", "CLOSED", "crm", kT0 + 210 * kSecond)})
          .ok());
  text = registry.Serialize();
  EXPECT_EQ(Series(text, active + "{stage=\"SUBMITTED\"}"), "0");
  EXPECT_EQ(Series(text, active + "{stage=\"CLOSED\"}"), "0");
  EXPECT_EQ(Series(text, stuck + "{stage=\"SUBMITTED\",service=\"mes\",kind=\"not_received\"}"),
            "0");
  EXPECT_EQ(Series(text, duration + "_count{stage=\"SUBMITTED\"}"), "2");
  EXPECT_EQ(Series(text, "ordertrace_journey_closed_total"), "1");
  // A late duplicate of the closing span closes nothing more.
  ASSERT_TRUE(
      engine.Apply({Milestone("ORD-M-2", "00000000000000e2", "CLOSED", "crm", kT0 + 210 * kSecond)})
          .ok());
  EXPECT_EQ(Series(registry.Serialize(), "ordertrace_journey_closed_total"), "1");

  // After a restart the counts come back from the store.
  {
    metrics::Registry registry2;
    Engine engine2(std::make_shared<Rules>(DefaultRules()), *store, clock, &registry2);
    ASSERT_TRUE(engine2.Recover().ok());
    const std::string text2 = registry2.Serialize();
    EXPECT_EQ(Series(text2, active + "{stage=\"PRICE_CALCULATED\"}"), "1");
    EXPECT_EQ(Series(text2, active + "{stage=\"none\"}"), "1");
    EXPECT_EQ(Series(text2, active + "{stage=\"SUBMITTED\"}"), "0");
  }

  // Retention forgets the rest.
  EXPECT_EQ(engine.ForgetInactive(kT0 + 3600 * kSecond), 2u);
  text = registry.Serialize();
  EXPECT_EQ(Series(text, active + "{stage=\"PRICE_CALCULATED\"}"), "0");
  EXPECT_EQ(Series(text, active + "{stage=\"none\"}"), "0");
  // No order id in any label, or anywhere in the exposition.
  EXPECT_EQ(text.find("ORD-M-"), std::string::npos) << text;
}

TEST(EngineMetricsTest, HeartbeatsMissedAndStuckByService) {
  ManualClock clock(kT0);
  auto store = NewMemoryStore();
  metrics::Registry registry;
  Engine engine(std::make_shared<Rules>(DefaultRules()), *store, clock, &registry);
  const std::string missed = "ordertrace_journey_heartbeats_missed_total";
  std::string text = registry.Serialize();
  // Stages with a heartbeat have the series from the start.
  EXPECT_EQ(Series(text, missed + "{stage=\"SUBMITTED\"}"), "0");
  EXPECT_EQ(Series(text, missed + "{stage=\"MANUFACTURING_STARTED\"}"), "0");
  EXPECT_EQ(Series(text, missed + "{stage=\"APPROVED\"}"), "");

  // Received by mes in time; then no heartbeat for 5m (+30 s grace): silent.
  SpanRecord mes = Submitted("ORD-H-1", "00000000000000f2", kT0 + 10 * kSecond);
  mes.stage.clear();
  mes.service = "mes";
  ASSERT_TRUE(engine.Apply({Submitted("ORD-H-1", "00000000000000f1", kT0), mes}).ok());
  clock.Set(kT0 + 331 * kSecond);
  EXPECT_EQ(engine.Tick(kT0 + 331 * kSecond), 1u);
  text = registry.Serialize();
  EXPECT_EQ(Series(text, missed + "{stage=\"SUBMITTED\"}"), "1");
  EXPECT_EQ(Series(text,
                   "ordertrace_journey_stuck_orders_by_stage{stage=\"SUBMITTED\","
                   "service=\"mes\",kind=\"silent\"}"),
            "1");
  EXPECT_EQ(Series(text, "ordertrace_journey_flagged_total{kind=\"silent\"}"), "1");
  EXPECT_EQ(Series(text, "ordertrace_journey_flag_lag_seconds_count"), "1");

  // A heartbeat clears it; a second silence is counted again.
  SpanRecord beat = mes;
  beat.span_id = "00000000000000f3";
  beat.heartbeat = true;
  beat.start_ns = kT0 + 340 * kSecond;
  beat.end_ns = kT0 + 341 * kSecond;
  clock.Set(kT0 + 341 * kSecond);
  ASSERT_TRUE(engine.Apply({beat}).ok());
  EXPECT_EQ(engine.stuck_orders(), 0u);
  text = registry.Serialize();
  EXPECT_EQ(Series(text,
                   "ordertrace_journey_stuck_orders_by_stage{stage=\"SUBMITTED\","
                   "service=\"mes\",kind=\"silent\"}"),
            "0");
  clock.Set(kT0 + 700 * kSecond);
  EXPECT_EQ(engine.Tick(kT0 + 700 * kSecond), 1u);
  EXPECT_EQ(Series(registry.Serialize(), missed + "{stage=\"SUBMITTED\"}"), "2");
}

TEST(EngineMetricsTest, NewRulesRelabelTheCounts) {
  ManualClock clock(kT0);
  auto store = NewMemoryStore();
  metrics::Registry registry;
  Engine engine(std::make_shared<Rules>(DefaultRules()), *store, clock, &registry);
  ASSERT_TRUE(engine.Apply({Submitted("ORD-R-1", "0000000000000101", kT0)}).ok());
  Rules renamed = DefaultRules();
  for (StageRule& s : renamed.stages) {
    if (s.name == "SUBMITTED") s.name = "PLACED";
  }
  ASSERT_TRUE(engine.SetRules(std::make_shared<Rules>(renamed)).ok());
  const std::string text = registry.Serialize();
  // The order's stage is no longer in the rules: it counts as no stage; the old series is 0.
  EXPECT_EQ(Series(text, "ordertrace_journey_active_orders_by_stage{stage=\"SUBMITTED\"}"), "0");
  EXPECT_EQ(Series(text, "ordertrace_journey_active_orders_by_stage{stage=\"PLACED\"}"), "0");
  EXPECT_EQ(Series(text, "ordertrace_journey_active_orders_by_stage{stage=\"none\"}"), "1");
}

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

TEST(EngineTest, AnOpenMessageGetsTheQueueTheBrokerRoutesItTo) {
  ManualClock clock(kT0);
  auto store = NewMemoryStore();
  EngineOptions options;
  std::vector<std::string> asked;
  options.route_queue = [&asked](std::string_view exchange, std::string_view key) {
    asked.push_back(std::string(exchange) + "|" + std::string(key));
    return key == "price.calculate" ? std::string("mes.calculate") : std::string();
  };
  Engine engine(std::make_shared<Rules>(DefaultRules()), *store, clock, nullptr, options);
  auto publish = [](const std::string& order, const std::string& span, const std::string& key,
                    const std::string& queue) {
    SpanRecord r = Submitted(order, span, kT0);
    r.stage.clear();
    r.hop = HopRole::kSend;
    r.message_id = "m-" + order;
    r.exchange = "orders";
    r.routing_key = key;
    r.queue = queue;
    return r;
  };
  ASSERT_TRUE(engine
                  .Apply({publish("Q1", "00000000000000d1", "price.calculate", ""),
                          publish("Q2", "00000000000000d2", "nowhere", ""),
                          publish("Q3", "00000000000000d3", "price.calculate", "named.by.span")})
                  .ok());
  // Asked only for the publishes that name no queue; "" (unrouted, several) leaves it unknown.
  EXPECT_EQ(asked, (std::vector<std::string>{"orders|price.calculate", "orders|nowhere"}));
  OrderQuery query;
  query.queues = {"mes.calculate"};
  Result<OrderPage> page = store->ListOrders(query);
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  ASSERT_EQ(page->orders.size(), 1u);
  EXPECT_EQ(page->orders[0].order_id, "Q1");
  query.queues = {"named.by.span"};
  page = store->ListOrders(query);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->orders.size(), 1u);
  EXPECT_EQ(page->orders[0].order_id, "Q3");
}

// Records how the flags came: one OnVerdicts call per store write (a slice of Tick()).
class SliceRecorder : public EngineListener {
 public:
  void OnStuck(const OrderRow& row) override { ++stuck; }
  void OnCleared(const OrderRow& row) override { ++cleared; }
  void OnVerdicts(const std::vector<OrderRow>& s, const std::vector<OrderRow>& c) override {
    slices.push_back(s.size());
    for (const OrderRow& r : s) {
      EXPECT_TRUE(r.summary.empty()) << "no summary line is built for listeners";
      EXPECT_EQ(r.stage, "SUBMITTED");
      EXPECT_EQ(r.expected_service, "mes");
    }
    EngineListener::OnVerdicts(s, c);
  }
  size_t stuck = 0, cleared = 0;
  std::vector<size_t> slices;
};

// A backlog of due orders is flagged by one Tick() in slices (one store write each), earliest
// deadline first; each flag writes the verdict to the order's stored row and leaves the rest
// (the partner the row was written with) as it was.
TEST(EngineTest, TickFlagsABacklogInSlicesAndWritesTheVerdicts) {
  ManualClock clock(kT0);
  auto store = NewMemoryStore();
  Engine engine(std::make_shared<Rules>(DefaultRules()), *store, clock, nullptr);
  SliceRecorder rec;
  engine.AddListener(&rec);
  constexpr int kOrders = 5000;
  std::vector<SpanRecord> facts;
  for (int i = 0; i < kOrders; ++i) {
    SpanRecord r = Submitted("S-" + std::to_string(i), std::to_string(100000 + i), kT0 + i);
    r.partner = "pse:k1:P" + std::to_string(i);
    facts.push_back(std::move(r));
  }
  ASSERT_TRUE(engine.Apply(std::move(facts)).ok());
  clock.Advance(std::chrono::minutes(10));  // every order's receipt deadline (2m + 30s) passed
  EXPECT_EQ(engine.Tick(clock.Now()), static_cast<size_t>(kOrders));
  EXPECT_EQ(rec.stuck, static_cast<size_t>(kOrders));
  ASSERT_GE(rec.slices.size(), 3u);  // 2048 per slice
  for (size_t n : rec.slices) EXPECT_LE(n, 2048u);
  EXPECT_EQ(engine.stuck_orders(), static_cast<size_t>(kOrders));
  for (int i : {0, 2047, 2048, kOrders - 1}) {
    auto row = store->GetOrder("S-" + std::to_string(i));
    ASSERT_TRUE(row.ok() && row->has_value());
    EXPECT_EQ((*row)->stuck, StuckKind::kNotReceived) << i;
    EXPECT_EQ((*row)->stuck_since_ns,
              kT0 + i + std::chrono::nanoseconds(std::chrono::seconds(150)).count())
        << i;
    EXPECT_EQ((*row)->partner, "pse:k1:P" + std::to_string(i)) << i;
    EXPECT_EQ((*row)->stage, "SUBMITTED") << i;
  }
  OrderQuery q;
  q.stuck = true;
  q.count_total = true;
  auto page = store->ListOrders(q);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->total.value_or(0), static_cast<uint64_t>(kOrders));
  // Nothing more is due: the next tick flags nothing.
  EXPECT_EQ(engine.Tick(clock.Now()), 0u);
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

// EngineOptions::facts_horizon: while facts wait unapplied (the journeys consumer behind in the
// ingest log), a deadline past the horizon is not judged, however late the clock: the order's
// moving-on span may be in the backlog.  Judged once the horizon passes it.
TEST(EngineTest, DetectorJudgesNoDeadlinePastTheFactsHorizon) {
  SystemClock clock;
  auto store = NewMemoryStore();
  std::atomic<Nanos> horizon{Detector::kHorizonUnknown};
  EngineOptions options;
  options.facts_horizon = [&horizon] { return horizon.load(); };
  Engine engine(std::make_shared<Rules>(DefaultRules()), *store, clock, nullptr, options);
  Recorder recorder;
  engine.AddListener(&recorder);
  auto stuck = [&recorder] {
    std::lock_guard lock(recorder.mu);
    return recorder.stuck.size();
  };
  // Due (deadline + grace) 10 s ago.
  const Nanos due = clock.Now() - 10 * kSecond;
  ASSERT_TRUE(engine.Apply({Submitted("H1", "00000000000000d1", due - 150 * kSecond)}).ok());
  ASSERT_EQ(engine.NextDeadline(), due);
  engine.StartDetector(Duration(20), Duration(1));
  // Not known how far the facts go (a backlog found at start-up): nothing is judged.
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  EXPECT_EQ(stuck(), 0u);
  // Every fact accepted before a moment just before the deadline is applied: still not judged.
  horizon.store(due - 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  EXPECT_EQ(stuck(), 0u);
  // The horizon passes the deadline: flagged, with the deadline's time.
  horizon.store(due + kSecond);
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (stuck() == 0 && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  engine.StopDetector();
  ASSERT_EQ(stuck(), 1u) << "not flagged within 5 s of the horizon passing its deadline";
  auto row = store->GetOrder("H1");
  ASSERT_TRUE(row.ok() && row->has_value());
  EXPECT_EQ((*row)->stuck, StuckKind::kNotReceived);
  EXPECT_EQ((*row)->stuck_since_ns, due);
}

// A store whose Write() waits while held (the rest forwards to a memory store): the verdict
// writer is caught in the middle of its transaction.  Thread-safe as the memory store is.
class GatedStore : public JourneyStore {
 public:
  void Hold() {
    std::lock_guard lock(mu_);
    held_ = true;
  }
  void Release() {
    {
      std::lock_guard lock(mu_);
      held_ = false;
    }
    cv_.notify_all();
  }
  // Waits up to 5 s for a Write() to be waiting; true when one is.
  bool AwaitWaiter() {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(5), [this] { return waiting_ > 0; });
  }
  Status Write(const WriteBatch& batch) override {
    {
      std::unique_lock lock(mu_);
      ++waiting_;
      cv_.notify_all();
      cv_.wait(lock, [this] { return !held_; });
      --waiting_;
    }
    return inner_->Write(batch);
  }
  Result<std::optional<Journey>> GetJourney(std::string_view id, size_t max_spans) override {
    return inner_->GetJourney(id, max_spans);
  }
  Result<std::optional<OrderRow>> GetOrder(std::string_view id) override {
    return inner_->GetOrder(id);
  }
  Result<OrderPage> ListOrders(const OrderQuery& q) override { return inner_->ListOrders(q); }
  Status ForEachActiveOrder(const std::function<void(const OrderRow&)>& fn) override {
    return inner_->ForEachActiveOrder(fn);
  }
  Status ForEachOpenHop(const std::function<void(const Hop&)>& fn) override {
    return inner_->ForEachOpenHop(fn);
  }
  Status ForEachOrderId(const std::function<void(std::string_view)>& fn) override {
    return inner_->ForEachOrderId(fn);
  }
  Status ForEachRecentSpan(size_t limit,
                           const std::function<void(std::string_view, std::string_view,
                                                    std::string_view)>& fn) override {
    return inner_->ForEachRecentSpan(limit, fn);
  }
  Result<std::optional<Hop>> FindHop(std::string_view send_span_id,
                                     std::string_view message_id) override {
    return inner_->FindHop(send_span_id, message_id);
  }
  Result<RetentionResult> EnforceRetention(Nanos now, const Retention& r) override {
    return inner_->EnforceRetention(now, r);
  }
  Result<StoreStats> Stats() override { return inner_->Stats(); }
  Status ForEachOrderSince(Nanos since, const std::function<void(const OrderRow&)>& fn) override {
    return inner_->ForEachOrderSince(since, fn);
  }
  Status ForEachMilestoneSince(Nanos since,
                               const std::function<void(const struct Milestone&)>& fn) override {
    return inner_->ForEachMilestoneSince(since, fn);
  }
  Status ForEachHopSince(Nanos since, const std::function<void(const Hop&)>& fn) override {
    return inner_->ForEachHopSince(since, fn);
  }
  Status ForEachEpisodeSince(Nanos since,
                             const std::function<void(const StuckEpisode&)>& fn) override {
    return inner_->ForEachEpisodeSince(since, fn);
  }

 private:
  std::unique_ptr<JourneyStore> inner_ = NewMemoryStore();
  std::mutex mu_;
  std::condition_variable cv_;
  bool held_ = false;
  int waiting_ = 0;
};

// Orders `prefix`1 and `prefix`2 SUBMITTED at kT0 (span ids ...`span`1, ...`span`2), and the
// clock past their first deadline: received by mes is due 2m after SUBMITTED, plus 30 s grace.
void SubmitTwoPastTheirDeadline(Engine& engine, ManualClock& clock, const std::string& prefix,
                                const std::string& span) {
  const std::string id = "00000000000000" + span;
  ASSERT_TRUE(
      engine.Apply({Submitted(prefix + "1", id + "1", kT0), Submitted(prefix + "2", id + "2", kT0)})
          .ok());
  clock.Set(kT0 + 180 * kSecond);
}

// With the detector thread running, the verdict writer writes the flags: the listeners hear
// them only once they are in the store, and an Apply() that moves a flagged order on while its
// verdict is being written is written after it (the store ends with the order's latest state).
TEST(EngineTest, VerdictWriterWritesBeforeListenersHearAndKeepsTheOrder) {
  ManualClock clock(kT0);
  GatedStore store;
  Engine engine(std::make_shared<Rules>(DefaultRules()), store, clock, nullptr);
  Recorder recorder;
  engine.AddListener(&recorder);
  ASSERT_NO_FATAL_FAILURE(SubmitTwoPastTheirDeadline(engine, clock, "ORD-V-", "f"));
  store.Hold();
  engine.StartDetector(Duration(20), Duration(1));
  ASSERT_TRUE(store.AwaitWaiter()) << "the verdict writer did not write";
  EXPECT_EQ(engine.stuck_orders(), 2u);  // decided, in memory
  {
    std::lock_guard lock(recorder.mu);
    EXPECT_TRUE(recorder.stuck.empty()) << "heard before the store write";
  }
  // ORD-V-1 moves on meanwhile: its Apply() waits for the verdicts' write, then writes its row.
  auto moved = std::async(std::launch::async, [&] {
    return engine.Apply(
        {Milestone("ORD-V-1", "00000000000000f3", "PRICE_CALCULATED", "crm", kT0 + 170 * kSecond)});
  });
  EXPECT_EQ(moved.wait_for(std::chrono::milliseconds(100)), std::future_status::timeout);
  store.Release();
  ASSERT_TRUE(moved.get().ok());
  engine.StopDetector();
  {
    std::lock_guard lock(recorder.mu);
    EXPECT_EQ(recorder.stuck.size(), 2u);
    EXPECT_EQ(recorder.cleared, std::vector<std::string>{"ORD-V-1"});
  }
  auto one = store.GetOrder("ORD-V-1");
  auto two = store.GetOrder("ORD-V-2");
  ASSERT_TRUE(one.ok() && one->has_value() && two.ok() && two->has_value());
  EXPECT_EQ((*one)->stage, "PRICE_CALCULATED");
  EXPECT_EQ((*one)->stuck, StuckKind::kNone);
  EXPECT_EQ((*two)->stuck, StuckKind::kNotReceived);
  EXPECT_EQ((*two)->stuck_since_ns, kT0 + 150 * kSecond);
}

// The SQLite store appends the verdicts and episodes to its verdict log (store.h Settle); the
// verdict writer settles them into the tables once it has nothing to write, so the log does not
// wait for a reader to fold it.
TEST(EngineTest, VerdictWriterSettlesTheStoreWhenIdle) {
  std::string dir = (std::filesystem::temp_directory_path() / "ordertrace-engine-XXXXXX").string();
  ASSERT_NE(mkdtemp(dir.data()), nullptr);
  SqliteStoreOptions options;
  options.path = dir + "/journeys.db";
  auto opened = OpenSqliteStore(options);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  JourneyStore& store = **opened;
  ManualClock clock(kT0);
  Engine engine(std::make_shared<Rules>(DefaultRules()), store, clock, nullptr);
  Recorder recorder;
  engine.AddListener(&recorder);
  ASSERT_NO_FATAL_FAILURE(SubmitTwoPastTheirDeadline(engine, clock, "ORD-S-", "e"));
  engine.StartDetector(Duration(20), Duration(1));
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  size_t heard = 0, left = 1;
  while (std::chrono::steady_clock::now() < until && (heard < 2 || left > 0)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    {
      std::lock_guard lock(recorder.mu);
      heard = recorder.stuck.size();
    }
    auto deferred = store.Settle(0);  // 0: counts, folds nothing
    ASSERT_TRUE(deferred.ok()) << deferred.status().ToString();
    left = *deferred;
  }
  engine.StopDetector();
  EXPECT_EQ(heard, 2u);
  EXPECT_EQ(left, 0u) << "verdict log entries left unsettled";
  // In the tables themselves: the count read straight from the file.
  sqlite::Db db(options.path);
  ASSERT_TRUE(db.Open().ok());
  auto count = [&db](const char* sql) -> int64_t {
    auto n = db.QueryInt(sql);
    EXPECT_TRUE(n.ok()) << sql << ": " << n.status().ToString();
    return n.ok() ? *n : -1;
  };
  EXPECT_EQ(count("SELECT count(*) FROM orders WHERE stuck <> 0"), 2);
  EXPECT_EQ(count("SELECT count(*) FROM episodes WHERE cleared_ns = 0"), 2);
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

}  // namespace
}  // namespace ordertrace::journey

namespace ordertrace::journey {
namespace {

// Engine::Summary() (GET /api/v1/summary) and Engine::revision() (its ETags).
TEST(EngineSummaryTest, CountsByStageServiceAndKindWithStageTimesAndRevisions) {
  ManualClock clock(kT0);
  auto store = NewMemoryStore();
  Engine engine(std::make_shared<Rules>(DefaultRules()), *store, clock, nullptr);
  const uint64_t r0 = engine.revision();
  // A: submitted, nobody picks it up; B: priced 10 s after its submission; C: closed.
  ASSERT_TRUE(engine.Apply({Submitted("A", "00000000000000a1", kT0)}).ok());
  const uint64_t r1 = engine.revision();
  EXPECT_GT(r1, r0);
  ASSERT_TRUE(
      engine
          .Apply({Submitted("B", "00000000000000b1", kT0),
                  Milestone("B", "00000000000000b2", "PRICE_CALCULATED", "mes", kT0 + 10 * kSecond),
                  Milestone("C", "00000000000000c1", "CLOSED", "crm", kT0)})
          .ok());
  const uint64_t r2 = engine.revision();
  EXPECT_GT(r2, r1);
  EXPECT_EQ(engine.Tick(clock.Now()), 0u);
  EXPECT_EQ(engine.revision(), r2);        // nothing due: no change
  clock.Advance(std::chrono::minutes(3));  // A: within_receipt 2m + grace 30s have passed
  EXPECT_EQ(engine.Tick(clock.Now()), 1u);
  const uint64_t r3 = engine.revision();
  EXPECT_GT(r3, r2);

  EngineSummary s = engine.Summary();
  EXPECT_EQ(s.revision, r3);
  ASSERT_NE(s.rules, nullptr);
  EXPECT_EQ(s.active, 2u);
  EXPECT_EQ(s.stuck, 1u);
  EXPECT_EQ(s.flagged_total, 1u);
  EXPECT_EQ(s.cleared_total, 0u);
  EXPECT_EQ(s.closed_total, 1u);
  ASSERT_EQ(s.stages.size(), s.rules->stages.size() + 1);
  EXPECT_EQ(s.stages[0].index, -1);
  EXPECT_EQ(s.stages[0].active, 0);
  EXPECT_EQ(s.stages[1].index, 0);  // SUBMITTED
  EXPECT_EQ(s.stages[1].active, 1);
  EXPECT_EQ(s.stages[1].stuck, 1);
  // One order left SUBMITTED after 10 s: in the (5, 15] bucket, interpolated.
  ASSERT_TRUE(s.stages[1].p50_seconds.has_value());
  EXPECT_DOUBLE_EQ(*s.stages[1].p50_seconds, 10.0);
  EXPECT_DOUBLE_EQ(*s.stages[1].p95_seconds, 14.5);
  EXPECT_EQ(s.stages[2].active, 1);  // PRICE_CALCULATED
  EXPECT_FALSE(s.stages[2].p50_seconds.has_value());
  ASSERT_EQ(s.stuck_by.size(), 1u);
  EXPECT_EQ(s.stuck_by[0].stage, 0);
  EXPECT_EQ(s.stuck_by[0].service, "mes");
  EXPECT_EQ(s.stuck_by[0].kind, StuckKind::kNotReceived);
  EXPECT_EQ(s.stuck_by[0].count, 1);
  // The same service as the order's row says it.
  auto row = store->GetOrder("A");
  ASSERT_TRUE(row.ok() && row->has_value());
  EXPECT_EQ((*row)->expected_service, "mes");

  // mes picks A up: cleared, the matrix empties.
  SpanRecord pickup = Submitted("A", "00000000000000a2", clock.Now());
  pickup.stage.clear();
  pickup.service = "mes";
  ASSERT_TRUE(engine.Apply({pickup}).ok());
  EXPECT_GT(engine.revision(), r3);
  s = engine.Summary();
  EXPECT_EQ(s.stuck, 0u);
  EXPECT_EQ(s.cleared_total, 1u);
  EXPECT_TRUE(s.stuck_by.empty());
  EXPECT_EQ(s.stages[1].stuck, 0);

  // New rules are a change too.
  const uint64_t r4 = engine.revision();
  ASSERT_TRUE(engine.SetRules(std::make_shared<Rules>(DefaultRules())).ok());
  EXPECT_GT(engine.revision(), r4);
}

// Many stuck orders over several services and kinds: the matrix adds up to the stage counts.
TEST(EngineSummaryTest, MatrixAddsUpToTheStuckCounts) {
  ManualClock clock(kT0);
  auto store = NewMemoryStore();
  Engine engine(std::make_shared<Rules>(DefaultRules()), *store, clock, nullptr);
  std::vector<SpanRecord> spans;
  for (int i = 0; i < 30; ++i) {
    const std::string id = "O" + std::to_string(i);
    char span[17];
    std::snprintf(span, sizeof span, "%016x", 0x100 + i);
    if (i % 3 == 0) {
      spans.push_back(Submitted(id, span, kT0));
    } else {
      spans.push_back(Milestone(id, span, i % 3 == 1 ? "PRICE_CALCULATED" : "APPROVED",
                                i % 2 == 0 ? "crm" : "mes", kT0));
    }
  }
  ASSERT_TRUE(engine.Apply(std::move(spans)).ok());
  clock.Advance(std::chrono::hours(30));
  engine.Tick(clock.Now());
  const EngineSummary s = engine.Summary();
  EXPECT_EQ(s.stuck, 30u);
  int64_t cells = 0;
  for (size_t i = 1; i < s.stuck_by.size(); ++i) {
    EXPECT_GE(s.stuck_by[i - 1].count, s.stuck_by[i].count);
  }
  for (const auto& c : s.stuck_by) cells += c.count;
  EXPECT_EQ(cells, 30);
  int64_t by_stage = 0;
  for (const auto& st : s.stages) by_stage += st.stuck;
  EXPECT_EQ(by_stage, 30);
}

// A store that counts the spans written to it and fails its writes on demand.
class CountingStore : public JourneyStore {
 public:
  explicit CountingStore(JourneyStore& inner) : inner_(inner) {}
  Status Write(const WriteBatch& batch) override {
    if (fail) return Status::Internal("injected");
    spans += batch.spans.size();
    orders += batch.orders.size();
    return inner_.Write(batch);
  }
  Result<std::optional<Journey>> GetJourney(std::string_view id, size_t max_spans) override {
    return inner_.GetJourney(id, max_spans);
  }
  Result<std::optional<OrderRow>> GetOrder(std::string_view id) override {
    return inner_.GetOrder(id);
  }
  Result<OrderPage> ListOrders(const OrderQuery& q) override { return inner_.ListOrders(q); }
  Status ForEachActiveOrder(const std::function<void(const OrderRow&)>& fn) override {
    return inner_.ForEachActiveOrder(fn);
  }
  Status ForEachOpenHop(const std::function<void(const Hop&)>& fn) override {
    return inner_.ForEachOpenHop(fn);
  }
  Status ForEachOrderId(const std::function<void(std::string_view)>& fn) override {
    return inner_.ForEachOrderId(fn);
  }
  Status ForEachRecentSpan(size_t limit,
                           const std::function<void(std::string_view, std::string_view,
                                                    std::string_view)>& fn) override {
    return inner_.ForEachRecentSpan(limit, fn);
  }
  Result<std::optional<Hop>> FindHop(std::string_view send, std::string_view message) override {
    return inner_.FindHop(send, message);
  }
  Result<RetentionResult> EnforceRetention(Nanos now, const Retention& r) override {
    return inner_.EnforceRetention(now, r);
  }
  Result<StoreStats> Stats() override { return inner_.Stats(); }
  Status ForEachOrderSince(Nanos since, const std::function<void(const OrderRow&)>& fn) override {
    return inner_.ForEachOrderSince(since, fn);
  }
  Status ForEachMilestoneSince(Nanos since,
                               const std::function<void(const journey::Milestone&)>& fn) override {
    return inner_.ForEachMilestoneSince(since, fn);
  }
  Status ForEachHopSince(Nanos since, const std::function<void(const Hop&)>& fn) override {
    return inner_.ForEachHopSince(since, fn);
  }
  Status ForEachEpisodeSince(Nanos since,
                             const std::function<void(const StuckEpisode&)>& fn) override {
    return inner_.ForEachEpisodeSince(since, fn);
  }

  bool fail = false;
  size_t spans = 0;
  size_t orders = 0;

 private:
  JourneyStore& inner_;
};

TEST(EngineTest, AnExactRepeatIsSkippedAndAChangedSpanIsNot) {
  ManualClock clock(kT0);
  auto memory = NewMemoryStore();
  CountingStore store(*memory);
  metrics::Registry registry;
  Engine engine(std::make_shared<Rules>(DefaultRules()), store, clock, &registry);
  SpanRecord publish = Submitted("ORD-R-1", "00000000000000e1", kT0);
  publish.hop = HopRole::kSend;
  publish.message_id = "m-r-1";
  ASSERT_TRUE(engine.Apply({publish, Submitted("ORD-R-2", "00000000000000e2", kT0)}).ok());
  EXPECT_EQ(store.spans, 2u);
  EXPECT_EQ(store.orders, 2u);

  // An exporter's retry of the same request: nothing reaches the store.
  ASSERT_TRUE(engine.Apply({publish, Submitted("ORD-R-2", "00000000000000e2", kT0)}).ok());
  EXPECT_EQ(store.spans, 2u);
  EXPECT_EQ(store.orders, 2u);
  EXPECT_EQ(engine.open_hops(), 1u);
  const std::string text = registry.Serialize();
  EXPECT_EQ(Series(text, "ordertrace_journey_repeated_spans_total"), "2");
  EXPECT_EQ(Series(text, "ordertrace_journey_facts_total"), "4");

  // The same span id with other content (a later stage) is not a repeat: the order moves on,
  // the store keeps the span's first content (semantics.h).
  SpanRecord changed = Submitted("ORD-R-2", "00000000000000e2", kT0 + kSecond);
  changed.stage = "APPROVED";
  ASSERT_TRUE(engine.Apply({changed}).ok());
  EXPECT_EQ(store.spans, 3u);
  auto order = store.GetOrder("ORD-R-2");
  ASSERT_TRUE(order.ok() && order->has_value());
  EXPECT_EQ((*order)->stage, "APPROVED");
  auto journey = store.GetJourney("ORD-R-2", 100);
  ASSERT_TRUE(journey.ok() && journey->has_value());
  ASSERT_EQ((*journey)->spans.size(), 1u);
  EXPECT_EQ((*journey)->spans[0].stage, "SUBMITTED");
}

TEST(EngineTest, ASpanWhoseWriteFailedIsNotSkippedAsARepeat) {
  ManualClock clock(kT0);
  auto memory = NewMemoryStore();
  CountingStore store(*memory);
  Engine engine(std::make_shared<Rules>(DefaultRules()), store, clock, nullptr);
  const SpanRecord span = Submitted("ORD-F-1", "00000000000000f1", kT0);
  store.fail = true;
  EXPECT_FALSE(engine.Apply({span}).ok());
  store.fail = false;
  // The retry of the failed write goes first; the span itself is applied again, not skipped.
  ASSERT_TRUE(engine.Apply({span}).ok());
  EXPECT_EQ(store.spans, 2u);
  // Now written: the next repeat is skipped.
  ASSERT_TRUE(engine.Apply({span}).ok());
  EXPECT_EQ(store.spans, 2u);
}

TEST(EngineTest, RepeatsGoThroughWhenTheFilterIsOff) {
  ManualClock clock(kT0);
  auto memory = NewMemoryStore();
  CountingStore store(*memory);
  EngineOptions options;
  options.recent_spans = 0;
  Engine engine(std::make_shared<Rules>(DefaultRules()), store, clock, nullptr, options);
  const SpanRecord span = Submitted("ORD-O-1", "00000000000000c1", kT0);
  ASSERT_TRUE(engine.Apply({span}).ok());
  ASSERT_TRUE(engine.Apply({span}).ok());
  EXPECT_EQ(store.spans, 2u);
}

}  // namespace
}  // namespace ordertrace::journey
