// BrokerMonitor without a network: Record() takes poll outcomes at given times.
#include "broker/monitor.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace ordertrace::broker {
namespace {

constexpr Nanos kSec = 1'000'000'000;
// 2026-11-26T14:02:11Z
constexpr Nanos kT0 = 1795701731 * kSec;

Snapshot Snap(Nanos at, uint64_t ready = 1204, uint64_t consumers = 0) {
  Snapshot s;
  s.at_ns = at;
  s.overview.node = "rabbit@h";
  s.overview.rabbitmq_version = "3.10.8";
  s.queues = {{"/", "crm.prices", ready, 3, consumers, 12.5, 0, 0},
              {"/", "mes.calculate", 0, 0, 1, 0, 0, 0}};
  s.exchanges = {{"/", "", "direct"}, {"/", "orders", "direct"}, {"/", "hdrs", "headers"}};
  s.bindings = {{"/", "orders", "crm.prices", "queue", "price.calculated"},
                {"/", "orders", "mes.calculate", "queue", "price.calculate"}};
  return s;
}

MonitorOptions Options() {
  MonitorOptions o;
  o.management.url = "http://127.0.0.1:15672";
  return o;
}

journey::Hop HopTo(std::string exchange, std::string key) {
  journey::Hop h;
  h.exchange = std::move(exchange);
  h.routing_key = std::move(key);
  h.published_ns = kT0;
  return h;
}

TEST(BrokerMonitorTest, DescribesTheHopsQueue) {
  ordertrace::ManualClock clock(kT0);
  metrics::Registry registry;
  BrokerMonitor m(Options(), clock, &registry);
  EXPECT_EQ(m.DescribeHop(HopTo("orders", "price.calculated"), kT0), "");  // nothing known yet
  m.Record(Snap(kT0), kT0);
  EXPECT_EQ(m.DescribeHop(HopTo("orders", "price.calculated"), kT0),
            "queue crm.prices: 1,204 ready, 3 unacked, 0 consumers");
  EXPECT_EQ(m.DescribeHop(HopTo("orders", "price.calculate"), kT0),
            "queue mes.calculate: 0 ready, 0 unacked, 1 consumer");
  EXPECT_EQ(m.DescribeHop(HopTo("orders", "price.calculate.unrouted"), kT0),
            "no queue is bound to exchange 'orders' with routing key "
            "'price.calculate.unrouted': RabbitMQ dropped the message");
  EXPECT_EQ(m.DescribeHop(HopTo("amq.default", "crm.prices"), kT0),
            "queue crm.prices: 1,204 ready, 3 unacked, 0 consumers");
  EXPECT_EQ(m.DescribeHop(HopTo("", "gone"), kT0),
            "no queue named 'gone' for the default exchange: RabbitMQ dropped the message");
  EXPECT_EQ(m.DescribeHop(HopTo("hdrs", "x"), kT0),
            "exchange 'hdrs' routes by headers (headers exchange): queue not resolved");
  EXPECT_EQ(m.DescribeHop(HopTo("nope", "x"), kT0),
            "exchange 'nope' does not exist in vhost '/': the publish failed");
  Snapshot fresh = Snap(kT0 + 1);
  fresh.queues[0].counted = false;  // just after a restart
  m.Record(fresh, kT0 + 1);
  EXPECT_EQ(m.DescribeHop(HopTo("orders", "price.calculated"), kT0),
            "queue crm.prices: 0 consumers, message counts not reported yet (RabbitMQ just "
            "started or declared it)");
  EXPECT_NE(registry.Serialize().find(
                "ordertrace_broker_queue_messages_ready{queue=\"crm.prices\"} 1204\n"),
            std::string::npos)
      << "the last reported value stays";
  journey::Hop named = HopTo("nope", "x");
  named.queue = "mes.calculate";  // the span named the queue: that wins
  EXPECT_EQ(m.DescribeHop(named, kT0), "queue mes.calculate: 0 ready, 0 unacked, 1 consumer");
}

TEST(BrokerMonitorTest, UpDownHistoryAndTransitions) {
  ordertrace::ManualClock clock(kT0);
  metrics::Registry registry;
  BrokerMonitor m(Options(), clock, &registry);
  std::vector<BrokerTransition> seen;
  m.SetTransitionListener([&](const BrokerTransition& t) { seen.push_back(t); });
  EXPECT_FALSE(m.health().polled);
  EXPECT_NE(registry.Serialize().find("ordertrace_broker_up 0\n"), std::string::npos);

  m.Record(Snap(kT0), kT0);
  EXPECT_TRUE(m.health().up);
  EXPECT_TRUE(seen.empty());  // the first success is not a transition
  EXPECT_NE(registry.Serialize().find("ordertrace_broker_up 1\n"), std::string::npos);

  m.Record(Status::Unavailable("connection refused"), kT0 + 10 * kSec);
  m.Record(Status::Unavailable("connection refused"), kT0 + 20 * kSec);
  BrokerHealth h = m.health();
  EXPECT_FALSE(h.up);
  EXPECT_EQ(h.since_ns, kT0 + 10 * kSec);
  EXPECT_EQ(h.error, "connection refused");
  EXPECT_EQ(h.last_success_ns, kT0);
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_FALSE(seen[0].up);
  EXPECT_EQ(seen[0].error, "connection refused");
  EXPECT_EQ(seen[0].broker, "127.0.0.1:15672");
  EXPECT_EQ(m.DescribeHop(HopTo("orders", "price.calculated"), kT0 + 30 * kSec),
            "RabbitMQ unreachable since 14:02:21Z (connection refused)");
  const std::string text = registry.Serialize();
  EXPECT_NE(text.find("ordertrace_broker_up 0\n"), std::string::npos);
  EXPECT_NE(text.find("ordertrace_broker_scrapes_total{result=\"unreachable\"} 2\n"),
            std::string::npos);
  EXPECT_NE(text.find("ordertrace_broker_scrapes_total{result=\"ok\"} 1\n"), std::string::npos);

  auto open = m.OutagesSince(kT0);
  ASSERT_EQ(open.size(), 1u);
  EXPECT_EQ(open[0].start_ns, kT0 + 10 * kSec);
  EXPECT_EQ(open[0].end_ns, 0);

  m.Record(Snap(kT0 + 40 * kSec), kT0 + 40 * kSec);
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_TRUE(seen[1].up);
  EXPECT_EQ(seen[1].down_since_ns, kT0 + 10 * kSec);
  auto closed = m.OutagesSince(kT0);
  ASSERT_EQ(closed.size(), 1u);
  EXPECT_EQ(closed[0].end_ns, kT0 + 40 * kSec);
  // Outages that ended before the window are not returned; ones that end inside it are.
  EXPECT_TRUE(m.OutagesSince(kT0 + 41 * kSec).empty());
  EXPECT_EQ(m.OutagesSince(kT0 + 40 * kSec).size(), 1u);
  EXPECT_EQ(m.health().since_ns, kT0 + 40 * kSec);
}

TEST(BrokerMonitorTest, HistoryIsBounded) {
  ordertrace::ManualClock clock(kT0);
  MonitorOptions o = Options();
  o.max_outages = 3;
  BrokerMonitor m(o, clock, nullptr);
  for (int i = 0; i < 10; ++i) {
    m.Record(Status::Unavailable("timed out after 5000ms"), kT0 + (2 * i) * kSec);
    m.Record(Snap(kT0 + (2 * i + 1) * kSec), kT0 + (2 * i + 1) * kSec);
  }
  auto all = m.OutagesSince(0);
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all.front().start_ns, kT0 + 14 * kSec);
}

TEST(BrokerMonitorTest, QueueMetricsAreCappedAndZeroedWhenGone) {
  ordertrace::ManualClock clock(kT0);
  metrics::Registry registry;
  MonitorOptions o = Options();
  o.max_queue_series = 1;
  BrokerMonitor m(o, clock, &registry);
  m.Record(Snap(kT0, 7, 2), kT0);
  std::string text = registry.Serialize();
  EXPECT_NE(text.find("ordertrace_broker_queue_messages_ready{queue=\"crm.prices\"} 7\n"),
            std::string::npos);
  EXPECT_NE(text.find("ordertrace_broker_queue_messages_unacknowledged{queue=\"crm.prices\"} 3\n"),
            std::string::npos);
  EXPECT_NE(text.find("ordertrace_broker_queue_consumers{queue=\"crm.prices\"} 2\n"),
            std::string::npos);
  EXPECT_NE(text.find("ordertrace_broker_queue_publish_rate{queue=\"crm.prices\"} 12.5\n"),
            std::string::npos);
  EXPECT_EQ(text.find("queue=\"mes.calculate\""), std::string::npos) << "capped at 1 queue";
  Snapshot gone = Snap(kT0 + kSec);
  gone.queues.erase(gone.queues.begin());  // crm.prices deleted
  m.Record(gone, kT0 + kSec);
  text = registry.Serialize();
  EXPECT_NE(text.find("ordertrace_broker_queue_messages_ready{queue=\"crm.prices\"} 0\n"),
            std::string::npos);
}

TEST(BrokerMonitorTest, StatusJson) {
  ordertrace::ManualClock clock(kT0);
  BrokerMonitor m(Options(), clock, nullptr);
  auto j = nlohmann::json::parse(m.StatusJson());
  EXPECT_TRUE(j["up"].is_null());
  EXPECT_TRUE(j["queues"].empty());
  m.Record(Snap(kT0), kT0);
  m.Record(Status::Unavailable("GET /api/overview: HTTP 401 Unauthorized: Login failed"),
           kT0 + kSec);
  j = nlohmann::json::parse(m.StatusJson());
  EXPECT_EQ(j["broker"], "127.0.0.1:15672");
  EXPECT_EQ(j["up"], false);
  EXPECT_EQ(j["since"], "2026-11-26T14:02:12.000Z");
  EXPECT_EQ(j["error"], "GET /api/overview: HTTP 401 Unauthorized: Login failed");
  EXPECT_EQ(j["version"], "3.10.8");
  ASSERT_EQ(j["queues"].size(), 2u);  // the last known values
  EXPECT_EQ(j["queues"][0]["name"], "crm.prices");
  EXPECT_EQ(j["queues"][0]["messages_ready"], 1204);
  EXPECT_EQ(j["queues"][0]["consumers"], 0);
  ASSERT_EQ(j["outages"].size(), 1u);
  EXPECT_TRUE(j["outages"][0]["end"].is_null());
}

// generation() (the API's ETags) moves when what DescribeHop says may change, not at every poll.
TEST(BrokerMonitorTest, GenerationMovesWhenTheAnswersMayChange) {
  ordertrace::ManualClock clock(kT0);
  BrokerMonitor m(Options(), clock, nullptr);
  uint64_t g = m.generation();
  m.Record(Snap(kT0), kT0);  // the first poll
  EXPECT_GT(m.generation(), g);
  g = m.generation();
  Snapshot same = Snap(kT0 + kSec);
  same.queues[0].publish_rate = 99;  // rates alone change nothing said
  m.Record(same, kT0 + kSec);
  EXPECT_EQ(m.generation(), g);
  m.Record(Snap(kT0 + 2 * kSec, 1205), kT0 + 2 * kSec);  // one more message ready
  EXPECT_GT(m.generation(), g);
  g = m.generation();
  Snapshot rebound = Snap(kT0 + 3 * kSec, 1205);
  rebound.bindings.pop_back();
  m.Record(rebound, kT0 + 3 * kSec);
  EXPECT_GT(m.generation(), g);
  g = m.generation();
  m.Record(Status::Unavailable("connection refused"), kT0 + 4 * kSec);  // down
  EXPECT_GT(m.generation(), g);
  g = m.generation();
  m.Record(Status::Unavailable("connection refused"), kT0 + 5 * kSec);  // still, same error
  EXPECT_EQ(m.generation(), g);
  m.Record(Status::Unavailable("timed out after 5000ms"), kT0 + 6 * kSec);  // another error
  EXPECT_GT(m.generation(), g);
  g = m.generation();
  m.Record(rebound, kT0 + 7 * kSec);  // up again, the same snapshot as before
  EXPECT_GT(m.generation(), g);
}

}  // namespace
}  // namespace ordertrace::broker
