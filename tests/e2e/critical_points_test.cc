// The request's critical points, end to end, for real: a private RabbitMQ (Debian
// rabbitmq-server, management plugin on), a real `ordertrace serve` polling its management API,
// and the reference pipeline `ordertrace-sim` (partner, CRM and MES as three processes talking
// only through the broker and exporting OTLP to the gateway).  Each test injects one fault for
// known orders (or a queue), lets healthy orders run beside them, and checks what the gateway
// says:
//   - exactly the faulted orders are flagged (flagged_total equals their number; every healthy
//     order closes and is never seen stuck),
//   - at the right stage, for the right reason, naming the right service and hop / queue with
//     the broker's state of that queue,
//   - no later than deadline + grace + 1 s, and not before deadline + grace,
//   - and cleared, then closed, where the fault is lifted (for=D).
// Plus the broker outage: RabbitMQ stopped mid-run and restarted; no span lost; delayed orders
// attributed to the broker; after recovery every order closes and the alerts resolve in a real
// Alertmanager.
//
// One broker for the whole binary (one ctest entry); each test has its own vhost, gateway and
// sims.  Without rabbitmq-server the tests skip with the reason, or fail when
// ORDERTRACE_REQUIRE_INTEROP=1.
#include <gtest/gtest.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "net/http_client.h"
#include "rabbitmq/broker.h"
#include "sim/options.h"
#include "support/alertmanager_process.h"
#include "support/api_text.h"
#include "support/child_process.h"
#include "support/fast_rules.h"
#include "support/gateway_process.h"
#include "support/run_command.h"

namespace ordertrace {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;
using testing_support::Alertmanager;
using testing_support::ChildProcess;
using testing_support::GatewayProcess;
using testing_support::Receiver;
using testing_support::RunCommand;
using Clock = std::chrono::steady_clock;

// The request's lifecycle with every deadline in seconds (support/fast_rules.h).
constexpr const char* kRules = testing_support::kFastLifecycleRules;
constexpr auto kGrace = 1s;

// What a test expects of one faulted order.
struct Expect {
  std::string stage;
  std::string kind;
  std::string service;      // expected_service in the diagnosis
  std::string hop_key;      // an open hop with this routing key ("" none expected)
  std::string hop_broker;   // text in that hop's broker sentence ("" no check)
  std::string broker_text;  // text in the diagnosis' broker attribution ("" no check)
  bool lifted = false;      // the fault is lifted: the order must clear and close
};

// What the test saw of an order while polling.
struct Seen {
  bool ever_stuck = false;
  json first_stuck;  // the order as the API gave it the first time it was stuck
  json last;
};

class CriticalPoints : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    broker_dir_ = fs::temp_directory_path() / ("ordertrace_e2e_broker_" + std::to_string(getpid()));
    broker_ = new testing::Broker(testing::StartBroker(broker_dir_.string(), true));
  }
  static void TearDownTestSuite() {
    testing::StopBroker(broker_);
    delete broker_;
    std::error_code ec;
    fs::remove_all(broker_dir_, ec);
  }

  void SetUp() override {
    if (!broker_->available) {
      if (const char* r = std::getenv("ORDERTRACE_REQUIRE_INTEROP"); r && std::string(r) == "1") {
        FAIL() << "RabbitMQ is required: " << broker_->reason;
      }
      GTEST_SKIP() << "RabbitMQ not available: " << broker_->reason;
    }
    static int n = 0;
    vhost_ = "e2e" + std::to_string(++n);
    prefix_ = "T" + std::to_string(n) + "-";
    dir_ = fs::temp_directory_path() /
           ("ordertrace_e2e_" + std::to_string(getpid()) + "_" + std::to_string(n));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    ASSERT_TRUE(Management("PUT", "/api/vhosts/" + vhost_, "{}"));
    ASSERT_TRUE(Management("PUT", "/api/permissions/" + vhost_ + "/guest",
                           R"({"configure":".*","write":".*","read":".*"})"));
    std::ofstream(dir_ / "rules.yaml") << kRules;
  }

  void TearDown() override {
    for (auto& s : sims_) s->Stop();
    if (gateway_) gateway_->Stop();
    if (HasFailure()) {
      for (size_t i = 0; i < sims_.size(); ++i) {
        std::cerr << "---- sim " << i << " log (tail) ----\n" << Tail(sims_[i]->Log()) << "\n";
      }
      if (gateway_) std::cerr << "---- gateway log (tail) ----\n" << Tail(gateway_->Log()) << "\n";
    }
    if (broker_->available) Management("DELETE", "/api/vhosts/" + vhost_, "");
    std::error_code ec;
    if (!HasFailure()) fs::remove_all(dir_, ec);
  }

  static std::string Tail(const std::string& s) {
    return s.size() > 6000 ? s.substr(s.size() - 6000) : s;
  }

  // The broker's management API (curl: PUT/DELETE with a body are not in our HTTP client).
  static bool Management(const std::string& method, const std::string& path,
                         const std::string& body) {
    const std::string cmd = "curl -sf -o /dev/null -u guest:guest -X " + method +
                            " -H 'content-type: application/json' " +
                            (body.empty() ? "" : "-d '" + body + "' ") +
                            "http://127.0.0.1:" + std::to_string(broker_->management_port) + path;
    return RunCommand(cmd).exit_code == 0;
  }

  std::string AmqpUrl() const {
    return "amqp://guest:guest@127.0.0.1:" + std::to_string(broker_->port) + "/" + vhost_;
  }

  // The gateway: these rules, broker health every second on this test's vhost, and alerts to
  // `alertmanager` when given.
  void StartGateway(const std::string& alertmanager = "") {
    std::ofstream(dir_ / "gateway.yaml")
        << "broker:\n  management_url: http://127.0.0.1:" << broker_->management_port
        << "\n  vhost: " << vhost_ << "\n  interval: 1s\n  timeout: 1s\n";
    gateway_ = std::make_unique<GatewayProcess>("e2e");
    std::vector<std::string> flags{"--config", (dir_ / "gateway.yaml").string(), "--rules",
                                   (dir_ / "rules.yaml").string()};
    if (!alertmanager.empty()) {
      flags.push_back("--alertmanager");
      flags.push_back(alertmanager);
    }
    ASSERT_TRUE(gateway_->Start(flags)) << gateway_->Log();
  }

  // One sim role as a process; `extra` after the common flags.
  ChildProcess* StartSim(const std::string& role, const std::vector<std::string>& extra) {
    auto p = std::make_unique<ChildProcess>();
    std::vector<std::string> argv{
        ORDERTRACE_SIM_BIN,
        role,
        "--amqp",
        AmqpUrl(),
        "--otlp",
        "http://127.0.0.1:" + std::to_string(gateway_->otlp_http_port()) + "/v1/traces",
        "--rules",
        (dir_ / "rules.yaml").string(),
        "--seed",
        "42",
        "--order-prefix",
        prefix_,
        "--report",
        (dir_ / (role + ".report")).string(),
        "--quiet"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    EXPECT_TRUE(p->Start(argv, (dir_ / (role + ".log")).string()));
    sims_.push_back(std::move(p));
    return sims_.back().get();
  }

  // crm and mes with `faults`, then the partner submitting `orders` at `rate` per second.
  void StartPipeline(int orders, double rate, const std::vector<std::string>& faults) {
    std::vector<std::string> f;
    for (const auto& spec : faults) {
      f.push_back("--fault");
      f.push_back(spec);
    }
    // Export every 200 ms: the rules' deadlines are seconds here.
    ::setenv("OTEL_BSP_SCHEDULE_DELAY", "200", 1);
    StartSim("crm", f);
    StartSim("mes", f);
    std::vector<std::string> p = f;
    p.insert(p.end(), {"--orders", std::to_string(orders), "--rate", std::to_string(rate)});
    partner_ = StartSim("partner", p);
  }

  std::string Id(int i) const { return sim::OrderId(prefix_, 42, static_cast<uint64_t>(i)); }

  json GetOrder(const std::string& id) {
    auto r = net::HttpGet(gateway_->api_url(), "/api/v1/orders/" + id, 3000ms);
    if (!r.ok() || r.value().status != 200) return nullptr;
    return json::parse(r.value().body, nullptr, false);
  }
  std::string Metrics() {
    auto r = net::HttpGet(gateway_->api_url(), "/metrics", 3000ms);
    return r.ok() ? r.value().body : "";
  }
  json StuckList() {
    auto r = net::HttpGet(gateway_->api_url(), "/api/v1/orders?stuck=true&limit=1000", 3000ms);
    if (!r.ok() || r.value().status != 200) return json::array();
    json j = json::parse(r.value().body, nullptr, false);
    return j.is_object() && j["orders"].is_array() ? j["orders"] : json::array();
  }

  // Polls orders 1..n every 200 ms until `done` holds for the map (or `timeout`), keeping
  // what was seen of each.
  bool Watch(int n, std::map<std::string, Seen>* seen,
             const std::function<bool(const std::map<std::string, Seen>&)>& done,
             std::chrono::seconds timeout) {
    const auto until = Clock::now() + timeout;
    while (Clock::now() < until) {
      for (int i = 1; i <= n; ++i) {
        json o = GetOrder(Id(i));
        if (!o.is_object()) continue;
        Seen& s = (*seen)[Id(i)];
        if (o.value("stuck", false) && !s.ever_stuck) {
          s.ever_stuck = true;
          s.first_stuck = o;
        }
        s.last = std::move(o);
      }
      if (done(*seen)) return true;
      std::this_thread::sleep_for(200ms);
    }
    return false;
  }

  // The orders the gateway flagged, from its "order stuck" log lines.
  std::set<std::string> FlaggedInLog() const {
    std::set<std::string> ids;
    const std::string log = gateway_->Log();
    static const std::regex line(R"(msg="order stuck"[^\n]*? order_id="?([^ "\n]+))");
    for (auto it = std::sregex_iterator(log.begin(), log.end(), line); it != std::sregex_iterator();
         ++it) {
      ids.insert((*it)[1]);
    }
    return ids;
  }

  static bool Closed(const Seen& s) {
    return s.last.is_object() && s.last.value("closed", false) && !s.last.value("stuck", true);
  }
  static bool AllClosed(const std::map<std::string, Seen>& m, int orders) {
    if (m.size() < static_cast<size_t>(orders)) return false;
    for (const auto& [id, s] : m) {
      if (!Closed(s)) return false;
    }
    return true;
  }

  // Runs `orders` orders with `faults`; `expect` maps order numbers (1-based) to what the
  // gateway must say of them; every other order must close without ever being stuck.
  void RunScenario(int orders, const std::vector<std::string>& faults,
                   const std::map<int, Expect>& expect) {
    StartGateway();
    if (HasFatalFailure()) return;
    StartPipeline(orders, 5, faults);
    std::map<std::string, Seen> seen;
    auto settled = [&](const std::map<std::string, Seen>& m) {
      for (int i = 1; i <= orders; ++i) {
        auto it = m.find(Id(i));
        if (it == m.end()) return false;
        auto e = expect.find(i);
        if (e == expect.end() || e->second.lifted) {
          if (!Closed(it->second)) return false;
          if (e != expect.end() && !it->second.ever_stuck) return false;
        } else if (!it->second.last.value("stuck", false)) {
          return false;
        }
      }
      return true;
    };
    const bool ok = Watch(orders, &seen, settled, 60s);
    EXPECT_TRUE(partner_->Wait(1s)) << "the partner should have submitted its orders and exited";
    EXPECT_EQ(partner_->exit_code(), 0);

    for (int i = 1; i <= orders; ++i) {
      const std::string id = Id(i);
      const Seen& s = seen[id];
      auto e = expect.find(i);
      if (e == expect.end()) {
        EXPECT_FALSE(s.ever_stuck)
            << "healthy order " << id << " was flagged: " << s.first_stuck.dump();
        EXPECT_TRUE(Closed(s)) << "healthy order " << id << " did not close: " << s.last.dump();
        continue;
      }
      const Expect& x = e->second;
      ASSERT_TRUE(s.ever_stuck) << "faulted order " << id
                                << " was never flagged: " << s.last.dump();
      const json& o = s.first_stuck;
      const json& d = o["diagnosis"];
      ASSERT_TRUE(d.is_object()) << o.dump();
      EXPECT_EQ(o.value("stage", ""), x.stage) << id << ": " << d.value("summary", "");
      EXPECT_EQ(o.value("stuck_kind", ""), x.kind) << id << ": " << d.value("summary", "");
      EXPECT_EQ(d.value("expected_service", ""), x.service) << id << ": " << d.value("summary", "");
      // Flagged within deadline + grace + 1 s, and not before deadline + grace.
      const int64_t due = testing_support::Rfc3339Nanos(d["deadline"]);
      const int64_t since = testing_support::Rfc3339Nanos(o["stuck_since"]);
      ASSERT_GT(due, 0) << d.dump();
      ASSERT_GT(since, 0) << o.dump();
      const int64_t grace = std::chrono::nanoseconds(kGrace).count();
      EXPECT_LE(since - due, grace + 1'000'000'000) << id << " flagged late: " << o.dump();
      EXPECT_GE(since - due, grace - 100'000'000) << id << " flagged early: " << o.dump();
      if (!x.hop_key.empty()) {
        bool found = false;
        for (const json& h : d["open_hops"]) {
          if (h.value("routing_key", "") != x.hop_key) continue;
          found = true;
          EXPECT_EQ(h.value("exchange", ""), sim::kExchange);
          if (!x.hop_broker.empty()) {
            EXPECT_NE(h.value("broker", std::string()).find(x.hop_broker), std::string::npos)
                << id << " hop " << h.dump();
          }
        }
        EXPECT_TRUE(found) << id << ": no open hop with routing key " << x.hop_key << ": "
                           << d.dump();
      }
      if (!x.broker_text.empty()) {
        EXPECT_NE(d.dump().find(x.broker_text), std::string::npos) << id << ": " << d.dump();
      }
      if (x.lifted) {
        EXPECT_TRUE(Closed(s)) << id
                               << ": the fault was lifted but it did not close: " << s.last.dump();
      } else {
        EXPECT_TRUE(s.last.value("stuck", false)) << id << " should still be stuck";
      }
    }
    EXPECT_TRUE(ok) << "not every order reached its expected end within 60 s";
    // Exactly the faulted orders were flagged (the gateway logs each flag; a lifted order may
    // legitimately be flagged again on its way out, late after its silence), and the unlifted
    // ones are stuck now.
    std::set<std::string> want_flagged;
    for (const auto& [i, x] : expect) want_flagged.insert(Id(i));
    EXPECT_EQ(FlaggedInLog(), want_flagged);
    EXPECT_GE(testing_support::MetricSum(Metrics(), "ordertrace_journey_flagged_total"),
              static_cast<double>(expect.size()));
    std::set<std::string> stuck_now, want_stuck;
    for (const json& o : StuckList()) stuck_now.insert(o.value("order_id", ""));
    for (const auto& [i, x] : expect) {
      if (!x.lifted) want_stuck.insert(Id(i));
    }
    EXPECT_EQ(stuck_now, want_stuck);
  }

  static inline testing::Broker* broker_ = nullptr;
  static inline fs::path broker_dir_;
  std::string vhost_, prefix_;
  fs::path dir_;
  std::unique_ptr<GatewayProcess> gateway_;
  std::vector<std::unique_ptr<ChildProcess>> sims_;
  ChildProcess* partner_ = nullptr;
};

std::string Orders(std::initializer_list<std::string> ids) {
  std::string s;
  for (const auto& id : ids) s += (s.empty() ? "" : "|") + id;
  return s;
}

// Critical point 1: the message to the MES never reaches it (published to a routing key no
// queue is bound to: RabbitMQ drops it).
TEST_F(CriticalPoints, MessageToMesLost) {
  RunScenario(8, {"lost-to-mes:orders=" + Orders({Id(3), Id(6)})},
              {{3,
                {"SUBMITTED", "not_received", "mes", sim::kUnroutedCalculateKey,
                 "no queue is bound", "", false}},
               {6,
                {"SUBMITTED", "not_received", "mes", sim::kUnroutedCalculateKey,
                 "no queue is bound", "", false}}});
}

// The price calculation: silent (no heartbeat) vs alive but slow (heartbeats, then late).
TEST_F(CriticalPoints, PriceCalculationSilentOrSlow) {
  RunScenario(
      8,
      {"calc-silent:orders=" + Orders({Id(2)}), "calc-silent:orders=" + Orders({Id(5)}) + ":for=5s",
       "calc-slow:orders=" + Orders({Id(7)})},
      {{2, {"SUBMITTED", "silent", "mes", "", "", "", false}},
       {5, {"SUBMITTED", "silent", "mes", "", "", "", true}},
       {7, {"SUBMITTED", "next_overdue", "mes", "", "", "", true}}});
}

// Critical point 2: the CRM never processes the calculated price (its handler hangs on the
// delivery, unacked).
TEST_F(CriticalPoints, CrmNeverProcessesCalculatedPrice) {
  RunScenario(8,
              {"crm-ignores-price:orders=" + Orders({Id(2)}),
               "crm-ignores-price:orders=" + Orders({Id(5)}) + ":for=4s"},
              {{2,
                {"PRICE_CALCULATED", "not_processed", "crm", "price.calculated", "queue crm.prices",
                 "", false}},
               {5,
                {"PRICE_CALCULATED", "not_processed", "crm", "price.calculated", "queue crm.prices",
                 "", true}}});
}

// The CRM approves but never sends the order to manufacturing.
TEST_F(CriticalPoints, CrmStallsAfterApproval) {
  RunScenario(6, {"crm-stalls-approved:orders=" + Orders({Id(4)})},
              {{4, {"APPROVED", "not_received", "mes", "", "", "", false}}});
}

// Critical point 3: the MES goes silent after manufacturing started.
TEST_F(CriticalPoints, MesSilentAfterManufacturingStarted) {
  RunScenario(
      8,
      {"mes-silent:orders=" + Orders({Id(4)}), "mes-silent:orders=" + Orders({Id(7)}) + ":for=5s"},
      {{4, {"MANUFACTURING_STARTED", "silent", "mes", "", "", "", false}},
       {7, {"MANUFACTURING_STARTED", "silent", "mes", "", "", "", true}}});
}

// Critical point 4: the CRM never closes a shipped order.
TEST_F(CriticalPoints, CrmNeverClosesShippedOrder) {
  RunScenario(8,
              {"crm-no-close:orders=" + Orders({Id(3)}),
               "crm-no-close:orders=" + Orders({Id(8)}) + ":for=6s"},
              {{3, {"SHIPPED", "next_overdue", "crm", "", "", "", false}},
               {8, {"SHIPPED", "next_overdue", "crm", "", "", "", true}}});
}

// Critical point 5 (a consumer gone): the MES stops consuming mes.manufacturing for 8 s; the
// orders that reach it meanwhile are flagged with the queue's state (0 consumers), and all of
// them close once the consumer is back.
TEST_F(CriticalPoints, ConsumerGoneQueuePilesUp) {
  StartGateway();
  ASSERT_FALSE(HasFatalFailure());
  const int orders = 10;
  StartPipeline(orders, 5, {"consumer-gone:queue=mes.manufacturing:after=1s:for=8s"});
  std::map<std::string, Seen> seen;
  const bool ok = Watch(
      orders, &seen, [&](const std::map<std::string, Seen>& m) { return AllClosed(m, orders); },
      60s);
  EXPECT_TRUE(ok) << "every order should close once the consumer is back";
  int flagged = 0;
  for (const auto& [id, s] : seen) {
    if (!s.ever_stuck) continue;
    ++flagged;
    const json& o = s.first_stuck;
    const json& d = o["diagnosis"];
    EXPECT_EQ(o.value("stage", ""), "APPROVED") << o.dump();
    EXPECT_TRUE(o.value("stuck_kind", "") == "not_received" ||
                o.value("stuck_kind", "") == "message_unprocessed")
        << o.dump();
    bool queue_named = false;
    for (const json& h : d["open_hops"]) {
      const std::string b = h.value("broker", std::string());
      if (b.find("queue mes.manufacturing") != std::string::npos &&
          b.find("0 consumers") != std::string::npos) {
        queue_named = true;
      }
    }
    EXPECT_TRUE(queue_named) << "the diagnosis should name mes.manufacturing with 0 consumers: "
                             << d.dump();
  }
  EXPECT_GE(flagged, 1) << "orders reaching the queue while its consumer was gone are stuck";
  std::set<std::string> seen_stuck;
  for (const auto& [id, s] : seen) {
    if (s.ever_stuck) seen_stuck.insert(id);
  }
  EXPECT_EQ(FlaggedInLog(), seen_stuck) << "only orders held by the missing consumer are flagged";
  EXPECT_TRUE(StuckList().empty());
  EXPECT_EQ(testing_support::MetricSum(Metrics(), "ordertrace_journey_cleared_total"), flagged);
}

// Critical point 5 (RabbitMQ fails): the broker is stopped mid-run and restarted.
TEST_F(CriticalPoints, BrokerOutage) {
  Receiver hook;
  ASSERT_TRUE(hook.started());
  Alertmanager am(dir_ / "am", hook.url("/am"));
  if (!fs::exists(testing_support::kAlertmanagerBin)) {
    if (const char* r = std::getenv("ORDERTRACE_REQUIRE_INTEROP"); r && std::string(r) == "1") {
      FAIL() << testing_support::kAlertmanagerBin << " is required (scripts/setup installs it)";
    }
    GTEST_SKIP() << testing_support::kAlertmanagerBin << " is missing (scripts/setup)";
  }
  ASSERT_TRUE(am.Start()) << am.Log();
  StartGateway(am.url());
  ASSERT_FALSE(HasFatalFailure());
  const int orders = 15;
  StartPipeline(orders, 5, {});
  std::this_thread::sleep_for(2500ms);  // orders in every stage
  ASSERT_TRUE(testing::StopServer(broker_));
  // The gateway reports the broker itself: metric, and an alert in Alertmanager.
  EXPECT_TRUE(testing_support::WaitFor(
      [&] {
        return testing_support::MetricSum(Metrics(), "ordertrace_broker_up") == 0 &&
               !Metrics().empty();
      },
      10s));
  EXPECT_TRUE(testing_support::WaitFor(
      [&] {
        return !am.Alerts({{"alertname", "BrokerUnreachable"}}).empty();
      },
      15s))
      << am.Log();
  // Orders delayed by the outage are stuck, and their diagnosis names the broker.
  json attributed;
  EXPECT_TRUE(testing_support::WaitFor(
      [&] {
        for (const json& o : StuckList()) {
          json full = GetOrder(o.value("order_id", ""));
          if (full.is_object() && full["diagnosis"].dump().find("RabbitMQ") != std::string::npos &&
              full["diagnosis"].dump().find("unreachable") != std::string::npos) {
            attributed = full;
            return true;
          }
        }
        return false;
      },
      15s))
      << "no stuck order attributed to the broker; stuck: " << StuckList().dump();
  EXPECT_FALSE(am.Alerts({{"alertname", "OrderStuck"}}).empty());
  std::this_thread::sleep_for(2s);
  ASSERT_TRUE(testing::StartServer(broker_, true)) << broker_->reason;

  // After recovery every order closes, nothing is stuck, and Alertmanager resolves the alerts.
  std::map<std::string, Seen> seen;
  EXPECT_TRUE(Watch(
      orders, &seen, [&](const std::map<std::string, Seen>& m) { return AllClosed(m, orders); },
      90s))
      << "every order should close after the broker is back";
  EXPECT_TRUE(StuckList().empty());
  EXPECT_TRUE(testing_support::WaitFor(
      [&] {
        return am.Alerts({{"alertname", "OrderStuck"}}).empty() &&
               am.Alerts({{"alertname", "BrokerUnreachable"}}).empty();
      },
      30s))
      << am.Alerts().dump();
  EXPECT_GE(testing_support::MetricSum(Metrics(), "ordertrace_broker_up"), 1);

  // No span lost: every span the three sims exported reached the gateway, none was dropped.
  EXPECT_TRUE(partner_->Wait(5s));
  for (auto& s : sims_) EXPECT_EQ(s->Stop(), 0) << s->Log();
  double exported = 0, dropped = 0, reconnects = 0;
  for (const char* role : {"crm", "mes", "partner"}) {
    std::ifstream in(dir_ / (std::string(role) + ".report"));
    std::string line, last;
    while (std::getline(in, line)) {
      if (!line.empty()) last = line;
    }
    json stats = json::parse(last, nullptr, false);
    ASSERT_TRUE(stats.is_object() && stats.contains("spans_exported")) << role << ": " << last;
    exported += stats.value("spans_exported", 0.0);
    dropped += stats.value("spans_dropped", 0.0);
    reconnects += stats.value("reconnects", 0.0);
  }
  EXPECT_EQ(dropped, 0);
  EXPECT_GE(reconnects, 2) << "crm and mes reconnect after the outage";
  EXPECT_TRUE(testing_support::WaitFor(
      [&] {
        return testing_support::MetricSum(Metrics(), "ordertrace_receiver_accepted_spans_total") ==
               exported;
      },
      10s))
      << "exported " << exported << ", accepted "
      << testing_support::MetricSum(Metrics(), "ordertrace_receiver_accepted_spans_total");
}

}  // namespace
}  // namespace ordertrace
