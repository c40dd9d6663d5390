// GET /api/v1/flow over a real HttpServer, on an engine with a memory store, a manual clock and
// a broker monitor fed by Record() (no network).
#include "api/flow_api.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "journey/store/memory/memory_store.h"
#include "journey/store/store_test_fixture.h"
#include "net/http_client.h"

namespace ordertrace::api {
namespace {

using nlohmann::json;

constexpr Nanos kT0 = 1'790'000'000'000'000'000;
constexpr Nanos kSec = 1'000'000'000;

journey::SpanRecord Span(const std::string& order, const std::string& span_id, Nanos at,
                         const std::string& service, const std::string& stage = "") {
  journey::SpanRecord r;
  r.order_id = order;
  r.trace_id = "0af7651916cd43dd8448eb211c80319c";
  r.span_id = span_id;
  r.service = service;
  r.name = "step";
  r.start_ns = at;
  r.end_ns = at + 1000;
  r.stage = stage;
  return r;
}

journey::SpanRecord Publish(const std::string& order, const std::string& span_id, Nanos at,
                            const std::string& exchange, const std::string& key,
                            const std::string& message) {
  journey::SpanRecord r = Span(order, span_id, at, "crm");
  r.hop = journey::HopRole::kSend;
  r.exchange = exchange;
  r.routing_key = key;
  r.message_id = message;
  return r;
}

journey::SpanRecord Process(const std::string& span_id, Nanos at, const std::string& queue,
                            const std::string& message) {
  journey::SpanRecord r = Span("", span_id, at, "mes");
  r.hop = journey::HopRole::kProcess;
  r.queue = queue;
  r.message_id = message;
  return r;
}

broker::Snapshot Snap(uint64_t ready, uint64_t consumers) {
  broker::Snapshot s;
  s.at_ns = kT0;
  s.queues = {{"/", "mes.calculate", ready, 2, consumers, 0, 0, 0}};
  s.exchanges = {{"/", "", "direct"}, {"/", "orders", "direct"}};
  s.bindings = {{"/", "orders", "mes.calculate", "queue", "price.calculate"}};
  return s;
}

class FlowApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = journey::NewMemoryStore();
    engine_ = std::make_unique<journey::Engine>(
        std::make_shared<journey::Rules>(journey::DefaultRules()), *store_, clock_, nullptr);
    broker::MonitorOptions mo;
    mo.management.url = "http://127.0.0.1:15672";
    monitor_ = std::make_unique<broker::BrokerMonitor>(mo, clock_, nullptr);
    server_ = std::make_unique<net::HttpServer>(net::HttpServerOptions{});
    RegisterFlowRoute(*server_, *engine_, guard_, monitor_.get());
    ASSERT_TRUE(server_->Start().ok());
  }

  net::HttpReply Get(const std::string& target, const std::string& if_none_match = "") {
    net::HttpOptions o;
    if (!if_none_match.empty()) o.headers.emplace_back("If-None-Match", if_none_match);
    auto r = net::HttpGet("http://127.0.0.1:" + std::to_string(server_->port()), target, o);
    EXPECT_TRUE(r.ok()) << r.status().message();
    return r.ok() ? *r : net::HttpReply{};
  }

  json GetJson(const std::string& target, int want_status) {
    const net::HttpReply r = Get(target);
    EXPECT_EQ(r.status, want_status) << target << ": " << r.body;
    return json::parse(r.body, nullptr, /*allow_exceptions=*/false);
  }

  // Two orders through crm → orders → mes.calculate → mes: A's message processed in 2 s, B's
  // never (its queue comes from the broker's bindings); C's message goes to an exchange with no
  // binding ("queue:?audit/x").  Then B is flagged.
  void Fill() {
    ASSERT_TRUE(
        engine_
            ->Apply({Span("A", "00000000000000a1", kT0, "crm", "SUBMITTED"),
                     Publish("A", "00000000000000a2", kT0, "orders", "price.calculate", "m-a"),
                     Span("B", "00000000000000b1", kT0, "crm", "SUBMITTED"),
                     Publish("B", "00000000000000b2", kT0, "orders", "price.calculate", "m-b"),
                     Span("C", "00000000000000c1", kT0, "crm", "SUBMITTED"),
                     Publish("C", "00000000000000c2", kT0, "audit", "x", "m-c")})
            .ok());
    ASSERT_TRUE(engine_
                    ->Apply({Process("00000000000000a3", kT0 + 2 * kSec, "mes.calculate", "m-a"),
                             Span("A", "00000000000000a4", kT0 + 3 * kSec, "mes"),
                             Span("C", "00000000000000c4", kT0 + 3 * kSec, "mes")})
                    .ok());
    clock_.Advance(std::chrono::minutes(3));
    ASSERT_GE(engine_->Tick(clock_.Now()), 1u);
    monitor_->Record(Snap(1, 0), clock_.Now());
  }

  static const json* Find(const json& list, const std::string& id) {
    for (const json& x : list) {
      if (x["id"] == id) return &x;
    }
    return nullptr;
  }

  ordertrace::ManualClock clock_{kT0};
  std::unique_ptr<journey::JourneyStore> store_;
  std::unique_ptr<journey::Engine> engine_;
  std::unique_ptr<broker::BrokerMonitor> monitor_;
  AllowAll auth_;
  ApiGuard guard_{auth_, nullptr};
  std::unique_ptr<net::HttpServer> server_;
};

TEST_F(FlowApiTest, NodesAndEdgesInLifecycleOrder) {
  Fill();
  const json j = GetJson("/api/v1/flow", 200);
  EXPECT_EQ(j["window_seconds"], 3600);
  EXPECT_TRUE(j["as_of"].is_string());
  EXPECT_EQ(j["broker"], (json{{"configured", true},
                               {"up", true},
                               {"since", j["broker"]["since"]},
                               {"error", nullptr}}));
  const json& nodes = j["nodes"];
  const json* crm = Find(nodes, "service:crm");
  const json* orders = Find(nodes, "exchange:orders");
  const json* queue = Find(nodes, "queue:mes.calculate");
  const json* mes = Find(nodes, "service:mes");
  const json* unknown = Find(nodes, "queue:?audit/x");
  ASSERT_TRUE(crm && orders && queue && mes && unknown) << nodes.dump(1);
  // crm, the exchanges, the queues, mes: columns left to right.
  EXPECT_EQ((*crm)["rank"], 0);
  EXPECT_EQ((*orders)["rank"], 1);
  EXPECT_EQ((*queue)["rank"], 2);
  EXPECT_EQ((*unknown)["rank"], 2);
  EXPECT_EQ((*mes)["rank"], 3);
  EXPECT_EQ((*crm)["messages"], 3);
  EXPECT_EQ((*crm)["kind"], "service");
  EXPECT_EQ((*queue)["kind"], "queue");
  EXPECT_EQ((*queue)["queue"], (json{{"ready", 1}, {"unacked", 2}, {"consumers", 0}}));
  EXPECT_EQ((*queue)["state"], "bad");  // messages waiting, nobody consuming
  EXPECT_EQ((*queue)["stuck"], 1);      // B's open hop
  EXPECT_EQ((*unknown)["queue"], nullptr);
  EXPECT_EQ((*unknown)["name"], "?audit/x");

  const json& edges = j["edges"];
  const json* publish = Find(edges, "service:crm->exchange:orders");
  const json* route = Find(edges, "exchange:orders->queue:mes.calculate");
  const json* consume = Find(edges, "queue:mes.calculate->service:mes");
  const json* unrouted = Find(edges, "exchange:audit->queue:?audit/x");
  ASSERT_TRUE(publish && route && consume && unrouted) << edges.dump(1);
  EXPECT_EQ((*publish)["count"], 2);
  EXPECT_EQ((*publish)["open"], 1);
  EXPECT_EQ((*publish)["stuck"], 1);
  EXPECT_EQ((*publish)["state"], "bad");
  EXPECT_EQ((*route)["source"], "exchange:orders");
  EXPECT_EQ((*route)["target"], "queue:mes.calculate");
  EXPECT_EQ((*consume)["count"], 1);
  EXPECT_EQ((*consume)["open"], 0);
  EXPECT_DOUBLE_EQ((*consume)["p50_seconds"].get<double>(), 2.0 - 1e-6);
  EXPECT_EQ((*consume)["p95_seconds"], (*consume)["p50_seconds"]);
  EXPECT_EQ((*unrouted)["open"], 1);
  EXPECT_EQ((*unrouted)["p50_seconds"], nullptr);
}

TEST_F(FlowApiTest, WindowLeavesOldHopsOutButKeepsOpenOnes) {
  Fill();
  clock_.Advance(std::chrono::hours(2));
  const json j = GetJson("/api/v1/flow?window=1h", 200);
  const json* publish = Find(j["edges"], "service:crm->exchange:orders");
  ASSERT_NE(publish, nullptr) << j.dump(1);
  EXPECT_EQ((*publish)["count"], 0);  // published 2 h ago
  EXPECT_EQ((*publish)["open"], 1);   // B's message is still open
  EXPECT_EQ(Find(j["edges"], "queue:mes.calculate->service:mes"), nullptr);
  EXPECT_EQ(GetJson("/api/v1/flow?window=3h", 200)["edges"].size(), 5u)
      << GetJson("/api/v1/flow?window=3h", 200)["edges"].dump(1);
}

TEST_F(FlowApiTest, RejectsWindowsOutsideTheRange) {
  for (const char* q :
       {"window=30s", "window=8d", "window=1x", "window=", "since=1h", "window=1h&window=2h"}) {
    const json j = GetJson(std::string("/api/v1/flow?") + q, 400);
    EXPECT_EQ(j["status"], 400) << q;
    EXPECT_FALSE(j["error"].get<std::string>().empty()) << q;
  }
  EXPECT_NE(GetJson("/api/v1/flow?window=8d", 400)["error"].get<std::string>().find("1m to 7d"),
            std::string::npos);
  EXPECT_EQ(GetJson("/api/v1/flow?window=7d", 200)["window_seconds"], 7 * 86400);
  EXPECT_EQ(GetJson("/api/v1/flow?window=1m", 200)["window_seconds"], 60);
}

TEST_F(FlowApiTest, WithoutBrokerTheBlockSaysNotConfigured) {
  net::HttpServer server{net::HttpServerOptions{}};
  RegisterFlowRoute(server, *engine_, guard_, nullptr);
  ASSERT_TRUE(server.Start().ok());
  auto r = net::HttpGet(server.port(), "/api/v1/flow");
  ASSERT_TRUE(r.ok());
  const json j = json::parse(r->body);
  EXPECT_EQ(j["broker"],
            (json{{"configured", false}, {"up", nullptr}, {"since", nullptr}, {"error", nullptr}}));
  EXPECT_EQ(j["nodes"], json::array());
  EXPECT_EQ(j["edges"], json::array());
}

TEST_F(FlowApiTest, ETagAnswers304UntilSomethingChanges) {
  Fill();
  const net::HttpReply first = Get("/api/v1/flow");
  ASSERT_EQ(first.status, 200);
  const std::string etag(first.Header("ETag"));
  ASSERT_FALSE(etag.empty());
  EXPECT_EQ(first.Header("Cache-Control"), "no-cache");
  clock_.Advance(std::chrono::seconds(1));  // as_of moves; nothing shown changes
  const net::HttpReply again = Get("/api/v1/flow", etag);
  EXPECT_EQ(again.status, 304);
  EXPECT_TRUE(again.body.empty());
  EXPECT_EQ(again.Header("ETag"), etag);
  monitor_->Record(Snap(0, 1), clock_.Now());  // the consumer is back
  const net::HttpReply changed = Get("/api/v1/flow", etag);
  EXPECT_EQ(changed.status, 200);
  EXPECT_NE(changed.Header("ETag"), etag);
}

// With the SQLite store B's flag waits in the verdict log: a flow answered without waiting counts
// no stuck order yet and says how many entries it did not see; one that may wait is exact.
TEST_F(FlowApiTest, StuckCountsSayWhatTheStoreHasNotIndexedYet) {
  journey::testing_stores::TempSqliteDir dir;
  server_.reset();
  engine_.reset();
  store_ = dir.Open();
  ASSERT_NE(store_, nullptr);
  engine_ = std::make_unique<journey::Engine>(
      std::make_shared<journey::Rules>(journey::DefaultRules()), *store_, clock_, nullptr);
  Fill();
  auto stuck_on_queue = [](const json& j) {
    const json* queue = Find(j["nodes"], "queue:mes.calculate");
    return queue != nullptr ? (*queue)["stuck"] : json();
  };
  auto j = FlowJson(*engine_, monitor_.get(), std::chrono::hours(1), clock_.Now(), Duration(0));
  ASSERT_TRUE(j.ok()) << j.status().ToString();
  EXPECT_GE((*j)["unsettled"], 1);
  EXPECT_EQ(stuck_on_queue(*j), 0);
  j = FlowJson(*engine_, monitor_.get(), std::chrono::hours(1), clock_.Now());
  ASSERT_TRUE(j.ok()) << j.status().ToString();
  EXPECT_EQ((*j)["unsettled"], 0);
  EXPECT_EQ(stuck_on_queue(*j), 1);  // B's open hop
  engine_.reset();
  store_.reset();
}

}  // namespace
}  // namespace ordertrace::api
