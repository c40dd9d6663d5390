// AlertDispatcher with fake sinks, a MemoryStore and a manual clock: one alert per stuck order
// with its diagnosis, re-sends while firing (Alertmanager-like sinks only), endsAt on clear,
// storm grouping and its end, queue overflow counted and repaired from the store, the firing
// set rebuilt after a restart with the original startsAt, retries counted per sink; across
// restarts (a new dispatcher on the same store and record of notifications): the webhook told
// once per episode and storm, what was not delivered before a "crash" delivered after it, what
// ended meanwhile resolved, a damaged record read as far as it can be.
#include "alert/dispatcher.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "journey/store/memory/memory_store.h"

namespace ordertrace::alert {
namespace {

using journey::OrderRow;

constexpr Nanos kSecond = 1000000000;
constexpr Nanos kT0 = 1700000000 * kSecond;

class FakeSink : public Sink {
 public:
  FakeSink(std::string name, bool resends) : name_(std::move(name)), resends_(resends) {}
  const std::string& name() const override { return name_; }
  const std::string& url() const override { return url_; }
  size_t max_batch() const override { return resends_ ? 500 : 1; }
  bool resends() const override { return resends_; }
  void set_url(std::string url) { url_ = std::move(url); }
  SendResult Send(const std::vector<Alert>& alerts) override {
    std::lock_guard lock(mu);
    ++attempts;
    SendResult r;
    if (fail_next > 0) {
      --fail_next;
      r.error = "http 503";
      r.retryable = retryable;
      return r;
    }
    requests.push_back(alerts);
    r.ok = true;
    return r;
  }
  // Every alert delivered, flattened; then forgotten.
  std::vector<Alert> Take() {
    std::lock_guard lock(mu);
    std::vector<Alert> out;
    for (auto& req : requests) out.insert(out.end(), req.begin(), req.end());
    requests.clear();
    return out;
  }

  std::mutex mu;
  std::vector<std::vector<Alert>> requests;
  int attempts = 0;
  int fail_next = 0;
  bool retryable = true;

 private:
  std::string name_, url_ = "fake://";
  bool resends_;
};

OrderRow StuckRow(const std::string& id, const std::string& stage = "SUBMITTED",
                  const std::string& service = "mes", Nanos since = kT0 - 300 * kSecond) {
  OrderRow r;
  r.order_id = id;
  r.stage = stage;
  r.stage_ns = since - 150 * kSecond;
  r.stage_start_ns = r.stage_ns;
  r.first_ns = r.stage_ns;
  r.last_ns = r.stage_ns;
  r.last_service = "crm";
  r.stuck = journey::StuckKind::kNotReceived;
  r.stuck_since_ns = since;
  r.deadline_ns = since;
  r.expected_service = service;
  r.summary = "order " + id + " stuck in " + stage + " (stored line)";
  return r;
}

OrderRow Moved(OrderRow r) {
  r.stage = "PRICE_CALCULATED";
  r.stuck = journey::StuckKind::kNone;
  r.stuck_since_ns = 0;
  r.summary.clear();
  return r;
}

class DispatcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = journey::NewMemoryStore();
    rules_ = std::make_shared<journey::Rules>(journey::DefaultRules());
    clock_.Set(kT0);
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = std::filesystem::path(::testing::TempDir()) /
           (std::string("dispatcher_") + info->name() + "_" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Defaults() recording what the webhook was told, as the gateway does with a SQLite store.
  DispatcherOptions Recording() const {
    DispatcherOptions o = Defaults();
    o.notified_path = MarksPath();
    return o;
  }
  std::string MarksPath() const { return (dir_ / "alerts-notified.log").string(); }
  std::string MarksFile() const {
    std::ifstream in(MarksPath(), std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  // A gateway restart: a new dispatcher on the same store and record; its first pass.
  std::unique_ptr<AlertDispatcher> Restart(std::unique_ptr<AlertDispatcher> d,
                                           const DispatcherOptions& o) {
    d.reset();
    auto next = Make(o);
    EXPECT_TRUE(next->Rebuild().ok());
    next->Poll();
    return next;
  }

  std::unique_ptr<AlertDispatcher> Make(DispatcherOptions o = Defaults()) {
    auto am = std::make_unique<FakeSink>("alertmanager", true);
    auto hook = std::make_unique<FakeSink>("webhook", false);
    am_ = am.get();
    hook_ = hook.get();
    hook->set_url(hook_url_);
    std::vector<std::unique_ptr<Sink>> sinks;
    sinks.push_back(std::move(am));
    sinks.push_back(std::move(hook));
    auto rules = rules_;
    // A registry per dispatcher: its callback gauges point at it (the previous one is gone).
    registry_ = std::make_unique<metrics::Registry>();
    return std::make_unique<AlertDispatcher>(
        o, std::move(sinks), *store_, [rules] { return rules; }, clock_, registry_.get());
  }

  static DispatcherOptions Defaults() {
    DispatcherOptions o;
    o.jaeger_ui = "http://jaeger.test:16686";
    o.ui = "https://gw.test/ui";
    o.runbook_url = "https://wiki.test/stuck-orders";
    o.resend_interval = Duration(60000);
    o.storm_threshold = 5;
    o.storm_window = Duration(60000);
    o.retry_initial = Duration(1);
    o.retry_max = Duration(2);
    return o;
  }

  // The value of one series in the exposition ("" when absent).
  std::string Metric(const std::string& series) const {
    const std::string text = registry_->Serialize();
    const size_t at = text.find("\n" + series + " ");
    if (at == std::string::npos) return "";
    const size_t start = at + series.size() + 2;
    return text.substr(start, text.find('\n', start) - start);
  }

  void Store(const OrderRow& row) {
    journey::WriteBatch b;
    b.orders.push_back(row);
    ASSERT_TRUE(store_->Write(b).ok());
  }

  std::unique_ptr<journey::JourneyStore> store_;
  std::shared_ptr<const journey::Rules> rules_;
  ordertrace::ManualClock clock_;
  std::unique_ptr<metrics::Registry> registry_;
  FakeSink* am_ = nullptr;
  FakeSink* hook_ = nullptr;
  std::filesystem::path dir_;
  std::string hook_url_ = "https://chat.test/hooks/orders";
};

TEST_F(DispatcherTest, OneAlertPerStuckOrderResentWhileFiringResolvedOnClear) {
  auto d = Make();
  const OrderRow row = StuckRow("A-1");
  Store(row);
  d->OnStuck(row);
  d->Poll();
  auto sent = am_->Take();
  ASSERT_EQ(sent.size(), 1u);
  const Alert& a = sent[0];
  EXPECT_FALSE(a.resolved);
  EXPECT_FALSE(a.storm);
  EXPECT_STREQ(a.alertname(), "OrderStuck");
  EXPECT_EQ(a.order_id, "A-1");
  EXPECT_EQ(a.stage, "SUBMITTED");
  EXPECT_EQ(a.service, "mes");
  EXPECT_EQ(a.severity, "critical");  // the default rules' SUBMITTED
  EXPECT_EQ(a.kind, "not_received");
  EXPECT_EQ(a.starts_at, row.stuck_since_ns);
  EXPECT_EQ(a.runbook_url, "https://wiki.test/stuck-orders");
  EXPECT_EQ(a.ui_url, "https://gw.test/ui/orders/A-1");
  EXPECT_FALSE(a.summary.empty());
  EXPECT_NE(a.description.find("Order A-1 is stuck in SUBMITTED"), std::string::npos)
      << a.description;
  ASSERT_EQ(hook_->Take().size(), 1u);

  // Nothing new before the resend interval; then a re-send to Alertmanager only.
  clock_.Set(kT0 + 30 * kSecond);
  d->Poll();
  EXPECT_TRUE(am_->Take().empty());
  clock_.Set(kT0 + 61 * kSecond);
  d->Poll();
  sent = am_->Take();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].starts_at, row.stuck_since_ns);  // same alert, same startsAt
  EXPECT_TRUE(hook_->Take().empty());
  // A repeated flag of the same episode sends nothing new.
  d->OnStuck(row);
  d->Poll();
  EXPECT_TRUE(am_->Take().empty());
  EXPECT_EQ(d->firing(), 1u);

  clock_.Set(kT0 + 70 * kSecond);
  d->OnCleared(Moved(row));
  d->Poll();
  sent = am_->Take();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_TRUE(sent[0].resolved);
  EXPECT_EQ(sent[0].order_id, "A-1");
  EXPECT_EQ(sent[0].stage, "SUBMITTED");  // the labels of the firing alert
  EXPECT_EQ(sent[0].ends_at, kT0 + 70 * kSecond);
  auto hooks = hook_->Take();
  ASSERT_EQ(hooks.size(), 1u);
  EXPECT_TRUE(hooks[0].resolved);
  EXPECT_EQ(d->firing(), 0u);
  clock_.Set(kT0 + 200 * kSecond);
  d->Poll();
  EXPECT_TRUE(am_->Take().empty());
  EXPECT_EQ(Metric("ordertrace_alerts_sent_total{sink=\"alertmanager\"}"), "3");
}

TEST_F(DispatcherTest, StormSendsOneGroupedAlertWithTheCountUntilItCalmsDown) {
  auto d = Make();
  for (int i = 0; i < 40; ++i) {
    const OrderRow row = StuckRow("S-" + std::to_string(i));
    Store(row);
    d->OnStuck(row);
  }
  d->OnStuck(StuckRow("OTHER-1", "APPROVED", "mes"));  // another group: its own alert
  d->Poll();
  auto sent = am_->Take();
  ASSERT_EQ(sent.size(), 2u);
  const Alert* storm = sent[0].storm ? &sent[0] : &sent[1];
  const Alert* other = sent[0].storm ? &sent[1] : &sent[0];
  ASSERT_TRUE(storm->storm);
  EXPECT_STREQ(storm->alertname(), "OrderStuckStorm");
  EXPECT_EQ(storm->count, 40u);
  EXPECT_EQ(storm->stage, "SUBMITTED");
  EXPECT_EQ(storm->service, "mes");
  EXPECT_EQ(storm->summary, "40 orders stuck at SUBMITTED waiting for mes");
  EXPECT_EQ(storm->ui_url, "https://gw.test/ui/stuck?stage=SUBMITTED&service=mes");
  EXPECT_EQ(other->order_id, "OTHER-1");
  EXPECT_EQ(hook_->Take().size(), 2u);
  EXPECT_EQ(d->storms(), 1u);
  EXPECT_EQ(d->held(), 40u);

  // More orders join: the count is updated, no per-order alert.
  clock_.Set(kT0 + 5 * kSecond);
  for (int i = 40; i < 100; ++i) d->OnStuck(StuckRow("S-" + std::to_string(i)));
  d->Poll();
  sent = am_->Take();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_TRUE(sent[0].storm);
  EXPECT_EQ(sent[0].count, 100u);
  EXPECT_EQ(sent[0].summary, "100 orders stuck at SUBMITTED waiting for mes");
  auto hooks = hook_->Take();  // grown 2.5x: the webhook hears it too
  ASSERT_EQ(hooks.size(), 1u);
  EXPECT_EQ(hooks[0].count, 100u);

  // Most orders move on; after the window only 3 remain: the storm ends, they get their own.
  for (int i = 3; i < 100; ++i) d->OnCleared(Moved(StuckRow("S-" + std::to_string(i))));
  clock_.Set(kT0 + 66 * kSecond);
  d->Poll();
  sent = am_->Take();
  size_t resolved_storms = 0, orders = 0;
  for (const Alert& a : sent) {
    if (a.storm && a.resolved) ++resolved_storms;
    if (!a.storm && !a.resolved && a.order_id.rfind("S-", 0) == 0) ++orders;
  }
  EXPECT_EQ(resolved_storms, 1u);
  EXPECT_EQ(orders, 3u);
  EXPECT_EQ(d->storms(), 0u);
  EXPECT_EQ(d->held(), 0u);
}

// The engine hands a detector slice at once (OnVerdicts), its rows without a summary line: the
// dispatcher builds the line it shows (a storm's example, an order alert without a stored
// journey).
TEST_F(DispatcherTest, ASliceOfRowsWithoutSummaryLines) {
  auto d = Make();
  std::vector<OrderRow> stuck;
  for (int i = 0; i < 40; ++i) {
    stuck.push_back(StuckRow("V-" + std::to_string(i)));
    stuck.back().summary.clear();
  }
  stuck.push_back(StuckRow("LONE-1", "APPROVED", "mes"));
  stuck.back().summary.clear();
  d->OnVerdicts(stuck, {});
  d->Poll();
  auto sent = am_->Take();
  ASSERT_EQ(sent.size(), 2u);
  const Alert* storm = sent[0].storm ? &sent[0] : &sent[1];
  const Alert* other = sent[0].storm ? &sent[1] : &sent[0];
  EXPECT_EQ(storm->count, 40u);
  EXPECT_NE(storm->description.find(" stuck in SUBMITTED for "), std::string::npos)
      << storm->description;
  EXPECT_EQ(other->order_id, "LONE-1");
  EXPECT_NE(other->summary.find("order LONE-1 stuck in APPROVED for "), std::string::npos)
      << other->summary;
}

TEST_F(DispatcherTest, FiveThousandAtOnceGiveABoundedNumberOfNotifications) {
  DispatcherOptions o = Defaults();
  o.storm_threshold = 100;
  auto d = Make(o);
  for (int i = 0; i < 5000; ++i) d->OnStuck(StuckRow("B-" + std::to_string(i)));
  d->Poll();
  auto hooks = hook_->Take();
  ASSERT_EQ(hooks.size(), 1u);
  EXPECT_EQ(hooks[0].count, 5000u);
  EXPECT_EQ(hooks[0].summary, "5000 orders stuck at SUBMITTED waiting for mes");
  for (int minute = 1; minute <= 10; ++minute) {
    clock_.Set(kT0 + minute * 61 * kSecond);
    d->Poll();
  }
  EXPECT_TRUE(hook_->Take().empty());
  EXPECT_EQ(am_->requests.size(), 11u);  // the storm alert, then one re-send a minute
}

TEST_F(DispatcherTest, QueueOverflowIsCountedAndRepairedFromTheStore) {
  DispatcherOptions o = Defaults();
  o.queue_capacity = 3;
  o.storm_threshold = 0;
  auto d = Make(o);
  for (int i = 0; i < 10; ++i) {
    const OrderRow row = StuckRow("Q-" + std::to_string(i));
    Store(row);
    d->OnStuck(row);  // never blocks
  }
  EXPECT_EQ(d->dropped(), 7u);
  d->Poll();
  EXPECT_EQ(am_->Take().size(), 10u);
  EXPECT_EQ(d->firing(), 10u);
}

TEST_F(DispatcherTest, RebuildAfterRestartKeepsTheOriginalStartsAt) {
  const OrderRow a = StuckRow("R-1", "SUBMITTED", "mes", kT0 - 3600 * kSecond);
  const OrderRow b = StuckRow("R-2", "APPROVED", "mes", kT0 - 7200 * kSecond);
  Store(a);
  Store(b);
  OrderRow fine = Moved(StuckRow("R-3"));
  Store(fine);
  auto d = Make();
  ASSERT_TRUE(d->Rebuild().ok());
  d->Poll();
  auto sent = am_->Take();
  ASSERT_EQ(sent.size(), 2u);
  for (const Alert& x : sent) {
    EXPECT_EQ(x.starts_at, x.order_id == "R-1" ? a.stuck_since_ns : b.stuck_since_ns);
  }
  // A second rebuild (e.g. after an overflow) adds nothing.
  ASSERT_TRUE(d->Rebuild().ok());
  d->Poll();
  EXPECT_TRUE(am_->Take().empty());
  // An order no longer stuck in the store is resolved by the next rebuild.
  Store(Moved(a));
  ASSERT_TRUE(d->Rebuild().ok());
  d->Poll();
  sent = am_->Take();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_TRUE(sent[0].resolved);
  EXPECT_EQ(sent[0].order_id, "R-1");
}

TEST_F(DispatcherTest, FailuresAreRetriedAndCountedPerSink) {
  auto d = Make();
  am_->fail_next = 2;  // the third attempt succeeds
  d->OnStuck(StuckRow("F-1"));
  d->Poll();
  EXPECT_EQ(am_->attempts, 3);
  EXPECT_EQ(am_->Take().size(), 1u);
  EXPECT_EQ(Metric("ordertrace_alerts_failed_total{sink=\"alertmanager\"}"), "0");

  hook_->fail_next = 100;
  d->OnStuck(StuckRow("F-2"));
  d->Poll();
  EXPECT_EQ(hook_->attempts, 1 + 3);  // F-1's success, then three failed attempts
  EXPECT_EQ(Metric("ordertrace_alerts_failed_total{sink=\"webhook\"}"), "1");

  hook_->fail_next = 100;
  hook_->retryable = false;  // a 400: no retry
  d->OnStuck(StuckRow("F-3"));
  d->Poll();
  EXPECT_EQ(hook_->attempts, 1 + 3 + 1);
  EXPECT_EQ(Metric("ordertrace_alerts_failed_total{sink=\"webhook\"}"), "2");
}

TEST_F(DispatcherTest, ThreadSendsAndStopFlushesResolvedAlerts) {
  DispatcherOptions o = Defaults();
  o.group_wait = Duration(10);
  auto d = Make(o);
  d->Start();
  d->OnStuck(StuckRow("T-1"));
  for (int i = 0; i < 200 && d->firing() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(d->firing(), 1u);
  d->OnCleared(Moved(StuckRow("T-1")));
  d->Stop();  // the clear queued at shutdown is sent
  auto sent = am_->Take();
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_TRUE(sent[1].resolved);
}

TEST_F(DispatcherTest, BrokerUnreachableIsASystemAlertResentAndResolved) {
  auto d = Make();
  d->FireSystem("broker", BrokerUnreachableAlert("127.0.0.1:15672", "connection refused", kT0));
  d->Poll();
  auto sent = am_->Take();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_STREQ(sent[0].alertname(), "BrokerUnreachable");
  EXPECT_EQ(sent[0].severity, "critical");
  EXPECT_EQ(sent[0].starts_at, kT0);
  EXPECT_EQ(sent[0].runbook_url, "https://wiki.test/stuck-orders");
  EXPECT_NE(sent[0].summary.find("connection refused"), std::string::npos);
  ASSERT_EQ(hook_->Take().size(), 1u);
  EXPECT_EQ(d->firing(), 0u);  // not an order

  // Firing again (a new error) keeps startsAt; re-sent to Alertmanager while firing.
  clock_.Set(kT0 + 10 * kSecond);
  d->FireSystem("broker", BrokerUnreachableAlert("127.0.0.1:15672", "timed out after 5000ms",
                                                 kT0 + 10 * kSecond));
  d->Poll();
  sent = am_->Take();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].starts_at, kT0);
  hook_->Take();
  clock_.Set(kT0 + 71 * kSecond);
  d->Poll();
  ASSERT_EQ(am_->Take().size(), 1u);
  EXPECT_TRUE(hook_->Take().empty());

  d->ResolveSystem("broker", kT0 + 80 * kSecond);
  d->ResolveSystem("unknown", kT0 + 80 * kSecond);  // nothing firing: nothing sent
  d->Poll();
  sent = am_->Take();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_TRUE(sent[0].resolved);
  EXPECT_EQ(sent[0].ends_at, kT0 + 80 * kSecond);
  ASSERT_EQ(hook_->Take().size(), 1u);
  clock_.Set(kT0 + 300 * kSecond);
  d->Poll();
  EXPECT_TRUE(am_->Take().empty());

  // The Alertmanager body: alertname, broker, severity; no order labels.
  const auto body = nlohmann::json::parse(AlertmanagerBody(sent));
  EXPECT_EQ(body[0]["labels"], (nlohmann::json{{"alertname", "BrokerUnreachable"},
                                               {"broker", "127.0.0.1:15672"},
                                               {"severity", "critical"}}));
  EXPECT_TRUE(body[0]["annotations"].contains("summary"));
  EXPECT_TRUE(body[0]["annotations"].contains("description"));
  EXPECT_EQ(body[0]["endsAt"], Rfc3339(kT0 + 80 * kSecond));
  const auto hook = nlohmann::json::parse(WebhookBody(sent[0]));
  EXPECT_EQ(hook["alertname"], "BrokerUnreachable");
  EXPECT_EQ(hook["event"], "resolved");
  EXPECT_EQ(hook["labels"]["broker"], "127.0.0.1:15672");
}

// Issue 18: "no alert fired twice for one stuck episode".  Alertmanager gets the firing set
// again after a restart (it resolves alerts not re-posted); the webhook, a chat channel, does
// not hear again what it was told before.
TEST_F(DispatcherTest, RestartAfterDeliveryDoesNotNotifyTheWebhookAgain) {
  const DispatcherOptions o = Recording();
  auto d = Make(o);
  ASSERT_TRUE(d->Rebuild().ok());
  const OrderRow a = StuckRow("N-1", "SUBMITTED", "mes", kT0 - 600 * kSecond);
  const OrderRow b = StuckRow("N-2", "APPROVED", "mes", kT0 - 900 * kSecond);
  Store(a);
  Store(b);
  d->OnVerdicts({a, b}, {});
  d->Poll();
  EXPECT_EQ(am_->Take().size(), 2u);
  ASSERT_EQ(hook_->Take().size(), 2u);

  clock_.Set(kT0 + 10 * kSecond);
  d = Restart(std::move(d), o);
  auto sent = am_->Take();
  ASSERT_EQ(sent.size(), 2u);  // Alertmanager: the same alerts, their startsAt kept
  for (const Alert& x : sent) {
    EXPECT_FALSE(x.resolved);
    EXPECT_EQ(x.starts_at, x.order_id == "N-1" ? a.stuck_since_ns : b.stuck_since_ns);
    EXPECT_FALSE(x.description.empty());  // the full alert, with its diagnosis
  }
  EXPECT_TRUE(hook_->Take().empty());
  EXPECT_EQ(d->firing(), 2u);
  EXPECT_EQ(d->not_repeated(), 2u);
  EXPECT_EQ(Metric("ordertrace_alerts_not_repeated_total"), "2");
  // Re-sent to Alertmanager while firing, as before the restart.
  clock_.Set(kT0 + 80 * kSecond);
  d->Poll();
  EXPECT_EQ(am_->Take().size(), 2u);
  EXPECT_TRUE(hook_->Take().empty());

  // Resolved after the restart: both sinks hear it, the webhook once.
  d->OnCleared(Moved(a));
  Store(Moved(a));
  d->Poll();
  sent = am_->Take();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_TRUE(sent[0].resolved);
  auto hooks = hook_->Take();
  ASSERT_EQ(hooks.size(), 1u);
  EXPECT_TRUE(hooks[0].resolved);
  EXPECT_EQ(hooks[0].order_id, "N-1");

  // Another restart: N-2 is still not repeated to the webhook, N-1's end is not repeated either.
  d = Restart(std::move(d), o);
  sent = am_->Take();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].order_id, "N-2");
  EXPECT_FALSE(sent[0].resolved);
  EXPECT_TRUE(hook_->Take().empty());
}

// The crash window: the verdict is committed, the dispatcher dies before the webhook's 2xx (or
// the webhook was failing).  After the restart the webhook gets it: at least once, never lost.
TEST_F(DispatcherTest, NotDeliveredBeforeACrashIsDeliveredAfterTheRestart) {
  const DispatcherOptions o = Recording();
  auto d = Make(o);
  ASSERT_TRUE(d->Rebuild().ok());
  const OrderRow a = StuckRow("C-1", "SUBMITTED", "mes", kT0 - 600 * kSecond);
  const OrderRow b = StuckRow("C-2", "SUBMITTED", "crm", kT0 - 700 * kSecond);
  Store(a);
  Store(b);
  hook_->fail_next = 100;  // C-1: the webhook does not answer
  d->OnStuck(a);
  d->Poll();
  EXPECT_EQ(am_->Take().size(), 1u);
  EXPECT_TRUE(hook_->Take().empty());
  d->OnStuck(b);  // C-2: flagged, queued, then the process dies
  d = Restart(std::move(d), o);
  EXPECT_EQ(am_->Take().size(), 2u);
  auto hooks = hook_->Take();
  ASSERT_EQ(hooks.size(), 2u);
  for (const Alert& x : hooks) {
    EXPECT_FALSE(x.resolved);
    EXPECT_EQ(x.starts_at, x.order_id == "C-1" ? a.stuck_since_ns : b.stuck_since_ns);
  }
  EXPECT_EQ(d->not_repeated(), 0u);
  // Now recorded: the next restart does not repeat them.
  d = Restart(std::move(d), o);
  EXPECT_EQ(am_->Take().size(), 2u);
  EXPECT_TRUE(hook_->Take().empty());
}

// What moved on while the gateway was down (Rebuild finds it no longer stuck) is resolved to
// every sink, with the labels and startsAt of the alert they had; a new episode of the same
// order is a new alert.
TEST_F(DispatcherTest, EndedWhileDownIsResolvedAfterTheRestart) {
  const DispatcherOptions o = Recording();
  auto d = Make(o);
  ASSERT_TRUE(d->Rebuild().ok());
  const OrderRow a = StuckRow("E-1", "SUBMITTED", "mes", kT0 - 600 * kSecond);
  const OrderRow b = StuckRow("E-2", "APPROVED", "mes", kT0 - 900 * kSecond);
  const OrderRow c = StuckRow("E-3", "APPROVED", "mes", kT0 - 950 * kSecond);
  Store(a);
  Store(b);
  Store(c);
  d->OnVerdicts({a, b, c}, {});
  d->Poll();
  am_->Take();
  ASSERT_EQ(hook_->Take().size(), 3u);

  // While down: E-1 moved on, E-2 moved on and got stuck again (a new episode), E-3 stays.
  d.reset();
  Store(Moved(a));
  const OrderRow b2 = StuckRow("E-2", "PRICE_CALCULATED", "billing", kT0 + 5 * kSecond);
  Store(b2);
  clock_.Set(kT0 + 20 * kSecond);
  d = Restart(nullptr, o);
  auto check = [&](const std::vector<Alert>& sent, const std::string& who) {
    ASSERT_EQ(sent.size(), who == "webhook" ? 3u : 4u) << who;
    std::map<std::string, std::vector<const Alert*>> by;
    for (const Alert& x : sent)
      by[x.order_id + (x.resolved ? "/resolved" : "/firing")].push_back(&x);
    std::string seen;
    for (const auto& [k, v] : by) seen += k + " ";
    ASSERT_EQ(by.size(), who == "webhook" ? 3u : 4u) << who << ": " << seen;
    ASSERT_EQ(by["E-1/resolved"].size(), 1u) << who << ": " << seen;
    EXPECT_EQ(by["E-1/resolved"][0]->starts_at, a.stuck_since_ns);
    EXPECT_EQ(by["E-1/resolved"][0]->stage, "SUBMITTED");  // the labels of the firing alert
    EXPECT_EQ(by["E-1/resolved"][0]->service, "mes");
    EXPECT_EQ(by["E-1/resolved"][0]->ends_at, kT0 + 20 * kSecond);
    EXPECT_NE(by["E-1/resolved"][0]->summary.find("no longer stuck"), std::string::npos);
    ASSERT_EQ(by["E-2/resolved"].size(), 1u) << who;
    EXPECT_EQ(by["E-2/resolved"][0]->starts_at, b.stuck_since_ns);
    EXPECT_EQ(by["E-2/resolved"][0]->stage, "APPROVED");
    ASSERT_EQ(by["E-2/firing"].size(), 1u) << who;
    EXPECT_EQ(by["E-2/firing"][0]->starts_at, b2.stuck_since_ns);
    EXPECT_EQ(by["E-3/firing"].size(), who == "webhook" ? 0u : 1u) << who;
  };
  check(am_->Take(), "alertmanager");
  check(hook_->Take(), "webhook");
  EXPECT_EQ(d->firing(), 2u);
  // Nothing of it again after one more restart.
  d = Restart(std::move(d), o);
  EXPECT_EQ(am_->Take().size(), 2u);  // E-2's new episode and E-3, firing
  EXPECT_TRUE(hook_->Take().empty());
}

// Told before the restart, read back as stuck, then cleared in the same first pass (before its
// alert was built again): resolved to both sinks all the same.
TEST_F(DispatcherTest, ToldBeforeTheRestartAndClearedAtOnceIsResolved) {
  const DispatcherOptions o = Recording();
  auto d = Make(o);
  ASSERT_TRUE(d->Rebuild().ok());
  const OrderRow a = StuckRow("Q-1", "SUBMITTED", "mes", kT0 - 600 * kSecond);
  Store(a);
  d->OnStuck(a);
  d->Poll();
  ASSERT_EQ(hook_->Take().size(), 1u);
  d.reset();
  d = Make(o);
  ASSERT_TRUE(d->Rebuild().ok());
  d->OnCleared(Moved(a));
  Store(Moved(a));
  d->Poll();
  for (FakeSink* sink : {am_, hook_}) {
    auto sent = sink->Take();
    ASSERT_EQ(sent.size(), 1u) << sink->name();
    EXPECT_TRUE(sent[0].resolved);
    EXPECT_EQ(sent[0].order_id, "Q-1");
    EXPECT_EQ(sent[0].starts_at, a.stuck_since_ns);
  }
  d = Restart(std::move(d), o);
  EXPECT_TRUE(am_->Take().empty());
  EXPECT_TRUE(hook_->Take().empty());
}

// A damaged record (a torn last write, garbage, an overlong line, a bad escape): a warning with
// the count, what is unreadable is treated as not notified (told again), the rest holds, and the
// file is rewritten clean.
TEST_F(DispatcherTest, ADamagedRecordIsReadAsFarAsItCanBe) {
  const OrderRow a = StuckRow("D-1", "SUBMITTED", "mes", kT0 - 600 * kSecond);
  const OrderRow b = StuckRow("D 2\n", "SUBMITTED", "mes", kT0 - 700 * kSecond);
  const OrderRow c = StuckRow("D-3", "SUBMITTED", "mes", kT0 - 800 * kSecond);
  const OrderRow e = StuckRow("D-5", "SUBMITTED", "mes", kT0 - 900 * kSecond);
  for (const OrderRow* r : {&a, &b, &c, &e}) Store(*r);
  {
    std::ofstream out(MarksPath(), std::ios::binary);
    out << "# ordertrace alert marks v1\n"
        << "F " << a.stuck_since_ns << " D-1 SUBMITTED mes\n"
        << "garbage \x01\xff\n"
        << "F " << e.stuck_since_ns << " D%zz SUBMITTED mes\n"  // a bad escape
        << "F " << c.stuck_since_ns << " D-3 SUBMITTED " << std::string(5000, 'x') << "\n"
        << "F 12x D-4 SUBMITTED mes\n"
        << std::string("\0\0\0\n", 4) << "F " << b.stuck_since_ns << " D%202%0A SUBMITTED mes\n"
        << "F " << e.stuck_since_ns << " D-5 SUBM";  // torn
  }
  const DispatcherOptions o = Recording();
  auto d = Restart(nullptr, o);
  EXPECT_EQ(am_->Take().size(), 4u);
  std::set<std::string> told;
  for (const Alert& x : hook_->Take()) told.insert(x.order_id);
  EXPECT_EQ(told, (std::set<std::string>{"D-3", "D-5"}));  // D-1 and "D 2\n" were recorded
  EXPECT_EQ(Metric("ordertrace_alerts_notified_log_errors_total"), "6");
  const std::string file = MarksFile();
  EXPECT_EQ(file.find("garbage"), std::string::npos) << file;
  EXPECT_EQ(file.find("SUBM\n"), std::string::npos) << file;
  // Clean now: every order recorded, nothing told again.
  d = Restart(std::move(d), o);
  EXPECT_EQ(am_->Take().size(), 4u);
  EXPECT_TRUE(hook_->Take().empty());
  EXPECT_EQ(Metric("ordertrace_alerts_notified_log_errors_total"), "0");
  // Any bytes at all: read, never a crash.
  {
    std::ofstream out(MarksPath(), std::ios::binary | std::ios::trunc);
    for (int i = 0; i < 20000; ++i) out.put(static_cast<char>((i * 7919) % 256));
  }
  d = Restart(std::move(d), o);
  EXPECT_EQ(hook_->Take().size(), 4u);
}

// A storm the webhook heard of is taken up after a restart (its startsAt, no new "storm
// started"); its end is told once; per-order alerts sent before it stay firing.
TEST_F(DispatcherTest, AStormIsTakenUpAfterARestartNotAnnouncedAgain) {
  const DispatcherOptions o = Recording();  // threshold 5
  auto d = Make(o);
  ASSERT_TRUE(d->Rebuild().ok());
  std::vector<OrderRow> rows;
  for (int i = 0; i < 40; ++i) {
    rows.push_back(StuckRow("S-" + std::to_string(i)));
    Store(rows.back());
  }
  // Three per-order alerts before the storm is recognised, then the rest.
  d->OnVerdicts({rows[0], rows[1], rows[2]}, {});
  d->Poll();
  EXPECT_EQ(hook_->Take().size(), 3u);
  clock_.Set(kT0 + 2 * kSecond);
  d->OnVerdicts(std::vector<OrderRow>(rows.begin() + 3, rows.end()), {});
  d->Poll();
  auto hooks = hook_->Take();
  ASSERT_EQ(hooks.size(), 1u);
  ASSERT_TRUE(hooks[0].storm);
  const Nanos storm_start = hooks[0].starts_at;
  am_->Take();

  clock_.Set(kT0 + 30 * kSecond);
  d = Restart(std::move(d), o);
  EXPECT_TRUE(hook_->Take().empty());
  auto sent = am_->Take();
  size_t storms = 0, orders = 0;
  for (const Alert& x : sent) {
    EXPECT_FALSE(x.resolved);
    if (x.storm) {
      ++storms;
      EXPECT_EQ(x.starts_at, storm_start);
      EXPECT_EQ(x.count, 40u);
    } else {
      ++orders;  // the three sent before the storm stay firing
    }
  }
  EXPECT_EQ(storms, 1u);
  EXPECT_EQ(orders, 3u);
  EXPECT_EQ(d->storms(), 1u);
  EXPECT_EQ(d->held(), 37u);

  // It calms down: the end is told once, the orders still stuck get their own alerts.
  for (int i = 2; i < 40; ++i) {
    d->OnCleared(Moved(rows[static_cast<size_t>(i)]));
    Store(Moved(rows[static_cast<size_t>(i)]));
  }
  clock_.Set(kT0 + 100 * kSecond);
  d->Poll();
  hooks = hook_->Take();
  size_t storm_over = 0, resolved_orders = 0;
  for (const Alert& x : hooks) {
    if (x.storm && x.resolved) {
      ++storm_over;
      EXPECT_EQ(x.starts_at, storm_start);
    }
    if (!x.storm && x.resolved) ++resolved_orders;  // S-2, sent before the storm
    EXPECT_FALSE(!x.storm && !x.resolved) << x.order_id << " was told before";
  }
  EXPECT_EQ(storm_over, 1u);
  EXPECT_EQ(resolved_orders, 1u);
  EXPECT_EQ(d->storms(), 0u);
  d = Restart(std::move(d), o);
  EXPECT_TRUE(hook_->Take().empty());
}

// A storm that calmed down while the gateway was down: its end is told after the restart, and
// the orders still stuck (held back, never told) get their own alerts.
TEST_F(DispatcherTest, AStormThatCalmedDownWhileDownEndsAfterTheRestart) {
  const DispatcherOptions o = Recording();
  auto d = Make(o);
  ASSERT_TRUE(d->Rebuild().ok());
  std::vector<OrderRow> rows;
  for (int i = 0; i < 20; ++i) {
    rows.push_back(StuckRow("W-" + std::to_string(i)));
    Store(rows.back());
  }
  d->OnVerdicts(rows, {});
  d->Poll();
  auto hooks = hook_->Take();
  ASSERT_EQ(hooks.size(), 1u);
  const Nanos storm_start = hooks[0].starts_at;
  d.reset();
  for (size_t i = 2; i < rows.size(); ++i) Store(Moved(rows[i]));
  clock_.Set(kT0 + 300 * kSecond);
  d = Restart(nullptr, o);
  hooks = hook_->Take();
  ASSERT_EQ(hooks.size(), 3u);
  size_t over = 0, firing = 0;
  for (const Alert& x : hooks) {
    if (x.storm) {
      EXPECT_TRUE(x.resolved);
      EXPECT_EQ(x.starts_at, storm_start);
      ++over;
    } else {
      EXPECT_FALSE(x.resolved);
      ++firing;
    }
  }
  EXPECT_EQ(over, 1u);
  EXPECT_EQ(firing, 2u);
  d = Restart(std::move(d), o);
  EXPECT_TRUE(hook_->Take().empty());
}

// Orders told one by one (never a storm) do not become a storm because a restart reads them
// back at once: they are not news.
TEST_F(DispatcherTest, OrdersToldOneByOneAreNoStormAfterARestart) {
  const DispatcherOptions o = Recording();  // threshold 5 within 60 s
  auto d = Make(o);
  ASSERT_TRUE(d->Rebuild().ok());
  for (int batch = 0; batch < 3; ++batch) {
    clock_.Set(kT0 + batch * 61 * kSecond);
    std::vector<OrderRow> rows;
    for (int i = 0; i < 4; ++i) {
      rows.push_back(StuckRow("P-" + std::to_string(batch) + "-" + std::to_string(i)));
      Store(rows.back());
    }
    d->OnVerdicts(rows, {});
    d->Poll();
  }
  EXPECT_EQ(hook_->Take().size(), 12u);
  EXPECT_EQ(d->storms(), 0u);
  am_->Take();
  clock_.Set(kT0 + 200 * kSecond);
  d = Restart(std::move(d), o);
  EXPECT_EQ(d->storms(), 0u);
  EXPECT_EQ(am_->Take().size(), 12u);
  EXPECT_TRUE(hook_->Take().empty());
}

// Without a record (a memory store, no notified_path) a restart tells every sink again, as
// before: the store forgot nothing it could be compared with.
TEST_F(DispatcherTest, WithoutARecordARestartTellsEverySinkAgain) {
  const DispatcherOptions o = Defaults();
  auto d = Make(o);
  const OrderRow a = StuckRow("M-1");
  Store(a);
  d->OnStuck(a);
  d->Poll();
  EXPECT_EQ(hook_->Take().size(), 1u);
  d = Restart(std::move(d), o);
  EXPECT_EQ(hook_->Take().size(), 1u);
  EXPECT_FALSE(std::filesystem::exists(MarksPath()));
}

// The record stays small: ended episodes are dropped when it is compacted.
TEST_F(DispatcherTest, TheRecordIsCompacted) {
  DispatcherOptions o = Recording();
  o.storm_threshold = 0;
  auto d = Make(o);
  ASSERT_TRUE(d->Rebuild().ok());
  for (int i = 0; i < 500; ++i) {
    const OrderRow r = StuckRow("K-" + std::to_string(i));
    d->OnStuck(r);
    d->Poll();
    d->OnCleared(Moved(r));
    d->Poll();
  }
  const OrderRow last = StuckRow("K-last");
  Store(last);
  d->OnStuck(last);
  d->Poll();
  const std::string file = MarksFile();
  EXPECT_LT(std::count(file.begin(), file.end(), '\n'), 140) << file.size();
  EXPECT_NE(file.find("K-last"), std::string::npos);
  hook_->Take();
  d = Restart(std::move(d), o);
  EXPECT_TRUE(hook_->Take().empty());
}

// Another webhook (its URL changed) has heard nothing: it is told of every stuck order.
TEST_F(DispatcherTest, AnotherWebhookIsToldOfEveryStuckOrder) {
  const DispatcherOptions o = Recording();
  auto d = Make(o);
  ASSERT_TRUE(d->Rebuild().ok());
  const OrderRow a = StuckRow("U-1");
  Store(a);
  d->OnStuck(a);
  d->Poll();
  ASSERT_EQ(hook_->Take().size(), 1u);
  hook_url_ = "https://chat.test/hooks/other-channel";
  d = Restart(std::move(d), o);
  ASSERT_EQ(hook_->Take().size(), 1u);
  d = Restart(std::move(d), o);
  EXPECT_TRUE(hook_->Take().empty());
  // The record never holds the URL itself (it may carry a token).
  EXPECT_EQ(MarksFile().find("chat.test"), std::string::npos) << MarksFile();
}

}  // namespace
}  // namespace ordertrace::alert
