// Broker health against a real RabbitMQ (Debian's rabbitmq-server, management plugin on):
//
//   Monitor   a BrokerMonitor in-process: a queue filled with N messages and no consumer is seen
//             with N ready and 0 consumers; a consumer makes it 1; the broker stopped
//             (StopServer) is reported down with an error within 2 intervals and
//             ordertrace_broker_up 0; restarted (StartServer), up again with the outage closed.
//   Gateway   a real `ordertrace serve --rabbitmq-management URL`: /metrics has the queue
//             gauges, /api/v1/broker the queue; an order whose message sits on the queue is
//             diagnosed with the queue's state; the broker stopped fires BrokerUnreachable to
//             the alert webhook and the order's diagnosis says the broker is unreachable;
//             restarted, the alert is resolved and the diagnosis attributes the outage.
//
// The program runs its own private broker (it stops and restarts it), not the rabbitmq_broker
// fixture's.  Without rabbitmq-server the cases skip with the reason, or fail when
// ORDERTRACE_REQUIRE_INTEROP=1.
#if __has_include(<rabbitmq-c/amqp.h>)
#include <rabbitmq-c/amqp.h>
#include <rabbitmq-c/tcp_socket.h>
#else
#include <amqp.h>
#include <amqp_tcp_socket.h>
#endif
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "broker/monitor.h"
#include "net/http_client.h"
#include "net/http_server.h"
#include "rabbitmq/broker.h"
#include "rabbitmq/broker_environment.h"
#include "support/alertmanager_process.h"
#include "support/gateway_process.h"
#include "support/otlp_requests.h"
#include "support/run_command.h"

namespace ordertrace {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using testing::Broker;

::testing::Environment* const g_env = ::testing::AddGlobalTestEnvironment(
    new testing::BrokerEnvironment("ot-broker-health", /*use_fixture=*/false));

bool RequireInterop() {
  const char* v = std::getenv("ORDERTRACE_REQUIRE_INTEROP");
  return v != nullptr && std::strcmp(v, "1") == 0;
}

std::string Unique(std::string_view prefix) {
  static std::mt19937_64 rng(std::random_device{}());
  return std::string(prefix) + "-" + std::to_string(rng() % 1000000);
}

amqp_bytes_t B(const std::string& s) { return amqp_bytes_t{s.size(), const_cast<char*>(s.data())}; }

// One AMQP connection, channel 1 open; errors are kept, never thrown.
class Amqp {
 public:
  explicit Amqp(int port) {
    conn_ = amqp_new_connection();
    amqp_socket_t* sock = amqp_tcp_socket_new(conn_);
    if (sock == nullptr || amqp_socket_open(sock, "127.0.0.1", port) != AMQP_STATUS_OK) {
      error_ = "cannot connect to 127.0.0.1:" + std::to_string(port);
      return;
    }
    if (amqp_login(conn_, "/", 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, "guest", "guest").reply_type !=
        AMQP_RESPONSE_NORMAL) {
      error_ = "login failed";
      return;
    }
    amqp_channel_open(conn_, 1);
    Check("channel.open");
  }
  ~Amqp() {
    if (error_.empty()) amqp_connection_close(conn_, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(conn_);
  }
  Amqp(const Amqp&) = delete;
  Amqp& operator=(const Amqp&) = delete;

  const std::string& error() const { return error_; }

  // A durable queue (it survives the outage), bound to `exchange` with `key` when given.
  void DeclareQueue(const std::string& queue) {
    amqp_queue_declare(conn_, 1, B(queue), 0, /*durable=*/1, 0, /*auto_delete=*/0,
                       amqp_empty_table);
    Check("queue.declare");
  }
  // N persistent messages to the default exchange, routed to `queue` by its name.
  void Publish(const std::string& queue, int n) {
    amqp_basic_properties_t props{};
    props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG;
    props.delivery_mode = 2;
    for (int i = 0; i < n && error_.empty(); ++i) {
      if (amqp_basic_publish(conn_, 1, amqp_empty_bytes, B(queue), 0, 0, &props,
                             amqp_cstring_bytes("order message")) != AMQP_STATUS_OK) {
        error_ = "basic.publish failed";
      }
    }
  }
  // A consumer that never acknowledges: the messages move from ready to unacknowledged.
  void Consume(const std::string& queue) {
    amqp_basic_consume(conn_, 1, B(queue), amqp_empty_bytes, 0, /*no_ack=*/0, 0, amqp_empty_table);
    Check("basic.consume");
  }

 private:
  void Check(const char* what) {
    if (amqp_get_rpc_reply(conn_).reply_type != AMQP_RESPONSE_NORMAL && error_.empty()) {
      error_ = std::string(what) + " failed";
    }
  }
  amqp_connection_state_t conn_ = nullptr;
  std::string error_;
};

// Polls `cond` every 100 ms until it holds or `timeout` passes.
class BrokerHealth : public ::testing::Test {
 protected:
  void SetUp() override {
    Broker& b = testing::BrokerEnvironment::broker();
    if (!b.available) {
      if (RequireInterop()) FAIL() << "RabbitMQ is required but not available: " << b.reason;
      GTEST_SKIP() << "RabbitMQ not available: " << b.reason;
    }
    ASSERT_GT(b.management_port, 0) << "the test broker has no management port";
    management_url_ = "http://127.0.0.1:" + std::to_string(b.management_port);
  }
  // The outage: rabbitmq-server stopped, then started again with the same node, ports, data.
  void StopServer() { ASSERT_TRUE(testing::StopServer(&testing::BrokerEnvironment::broker())); }
  void StartServer() {
    Broker& b = testing::BrokerEnvironment::broker();
    ASSERT_TRUE(testing::StartServer(&b, /*die_with_parent=*/true)) << b.reason;
  }

  std::string management_url_;
};

TEST_F(BrokerHealth, MonitorSeesQueueDepthConsumersAndTheOutage) {
  const std::string queue = Unique("bh.monitor");
  constexpr int kMessages = 25;
  ordertrace::SystemClock clock;
  metrics::Registry registry;
  broker::MonitorOptions o;
  o.management.url = management_url_;
  o.management.timeout = 1000ms;
  o.interval = 1000ms;
  broker::BrokerMonitor monitor(o, clock, &registry);
  std::mutex mu;
  std::vector<broker::BrokerTransition> transitions;
  monitor.SetTransitionListener([&](const broker::BrokerTransition& t) {
    std::lock_guard lock(mu);
    transitions.push_back(t);
  });
  monitor.Start();

  auto queue_state = [&]() -> std::optional<broker::QueueState> {
    auto snap = monitor.snapshot();
    if (!snap) return std::nullopt;
    const broker::QueueState* q = snap->FindQueue(queue);
    if (q == nullptr) return std::nullopt;
    return *q;
  };
  {
    Amqp producer(testing::BrokerEnvironment::broker().port);
    ASSERT_EQ(producer.error(), "");
    producer.DeclareQueue(queue);
    producer.Publish(queue, kMessages);
    ASSERT_EQ(producer.error(), "");
  }
  // The management plugin refreshes queue statistics every 5 s.
  ASSERT_TRUE(testing_support::WaitFor(
      [&] {
        auto q = queue_state();
        return q && q->ready == kMessages && q->consumers == 0;
      },
      30s))
      << "last seen: " << (queue_state() ? std::to_string(queue_state()->ready) : "no queue");
  EXPECT_TRUE(monitor.health().up);
  journey::Hop hop;
  hop.routing_key = queue;  // the default exchange
  EXPECT_EQ(monitor.DescribeHop(hop, clock.Now()),
            "queue " + queue + ": 25 ready, 0 unacked, 0 consumers");
  const std::string metrics_text = registry.Serialize();
  EXPECT_NE(
      metrics_text.find("ordertrace_broker_queue_messages_ready{queue=\"" + queue + "\"} 25\n"),
      std::string::npos);
  EXPECT_NE(metrics_text.find("ordertrace_broker_up 1\n"), std::string::npos);

  {
    Amqp consumer(testing::BrokerEnvironment::broker().port);
    ASSERT_EQ(consumer.error(), "");
    consumer.Consume(queue);
    ASSERT_EQ(consumer.error(), "");
    ASSERT_TRUE(testing_support::WaitFor(
        [&] {
          auto q = queue_state();
          return q && q->consumers == 1 && q->unacked == kMessages && q->ready == 0;
        },
        30s));
    EXPECT_EQ(monitor.DescribeHop(hop, clock.Now()),
              "queue " + queue + ": 0 ready, 25 unacked, 1 consumer");
  }  // the consumer goes: its unacknowledged messages are ready again

  const auto stopping = std::chrono::steady_clock::now();
  const Nanos stopping_ns = clock.Now();
  StopServer();
  const auto stopped = std::chrono::steady_clock::now();
  ASSERT_TRUE(testing_support::WaitFor([&] { return !monitor.health().up; },
                                       2 * o.interval + o.management.timeout))
      << "still up "
      << std::chrono::duration<double>(std::chrono::steady_clock::now() - stopped).count()
      << " s after the stop";
  const broker::BrokerHealth down = monitor.health();
  EXPECT_FALSE(down.error.empty());
  EXPECT_NE(registry.Serialize().find("ordertrace_broker_up 0\n"), std::string::npos);
  EXPECT_NE(monitor.DescribeHop(hop, clock.Now()).find("RabbitMQ unreachable since "),
            std::string::npos);
  // Seen down within 2 intervals of the server going away (StopServer waits for it to exit).
  const double stop_took = std::chrono::duration<double>(stopped - stopping).count();
  const double seen_after = static_cast<double>(down.since_ns - stopping_ns) / 1e9;
  EXPECT_LE(seen_after, stop_took + 2.0 * std::chrono::duration<double>(o.interval).count() +
                            std::chrono::duration<double>(o.management.timeout).count());
  std::printf("seen down %.1f s after StopServer began (the stop took %.1f s): %s\n", seen_after,
              stop_took, down.error.c_str());

  StartServer();
  ASSERT_TRUE(testing_support::WaitFor([&] { return monitor.health().up; },
                                       3 * o.interval + o.management.timeout));
  auto outages = monitor.OutagesSince(0);
  ASSERT_EQ(outages.size(), 1u);
  EXPECT_EQ(outages[0].start_ns, down.since_ns);
  EXPECT_GT(outages[0].end_ns, outages[0].start_ns);
  {
    std::lock_guard lock(mu);
    ASSERT_EQ(transitions.size(), 2u);
    EXPECT_FALSE(transitions[0].up);
    EXPECT_TRUE(transitions[1].up);
    EXPECT_EQ(transitions[1].down_since_ns, down.since_ns);
  }
  // The durable queue and its persistent messages survived the outage.
  EXPECT_TRUE(testing_support::WaitFor(
      [&] {
        auto q = queue_state();
        return q && q->ready == kMessages && q->consumers == 0;
      },
      30s));
  EXPECT_NE(registry.Serialize().find("ordertrace_broker_scrapes_total{result=\"unreachable\"}"),
            std::string::npos);
  monitor.Stop();
}

// ---------------------------------------------------------------------------------------------
// Through a real `ordertrace serve`.

// 32 / 16 lowercase hex digits from a counter.
std::string Hex(uint64_t v, int digits) {
  static const char kHex[] = "0123456789abcdef";
  std::string s(static_cast<size_t>(digits), '0');
  for (int i = digits - 1; i >= 0 && v != 0; --i, v >>= 4) s[static_cast<size_t>(i)] = kHex[v & 15];
  return s;
}

// An order that reached SUBMITTED 10 minutes ago at the CRM, which then published its message
// to `queue` (default exchange) for the MES: nobody processed it, so the order is stuck at once.
std::string StuckOrderSpans(const std::string& order, const std::string& queue) {
  const int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  const int64_t t = now - int64_t{600} * 1'000'000'000;
  const std::string trace = Hex(0xb40c0000u + static_cast<uint64_t>(order.size()) * 7919u +
                                    std::hash<std::string>{}(order) % 100000,
                                32);
  using opentelemetry::proto::trace::v1::Span;
  using testing_support::IdFromHex;
  using testing_support::SpanBuilder;
  return testing_support::ToOtlpJson(
      testing_support::RequestBuilder()
          .Resource("crm")
          .Scope("broker_health_test")
          .Add(SpanBuilder("create order")
                   .Ids(IdFromHex(trace), IdFromHex(Hex(0xa1, 16)))
                   .Kind(Span::SPAN_KIND_INTERNAL)
                   .Times(static_cast<uint64_t>(t), static_cast<uint64_t>(t + 1'000'000))
                   .Attr("order.id", order)
                   .Attr("order.stage", "SUBMITTED"))
          .Add(
              SpanBuilder("publish " + queue)
                  .Ids(IdFromHex(trace), IdFromHex(Hex(0xa2, 16)), IdFromHex(Hex(0xa1, 16)))
                  .Kind(Span::SPAN_KIND_PRODUCER)
                  .Times(static_cast<uint64_t>(t + 2'000'000), static_cast<uint64_t>(t + 3'000'000))
                  .Attr("order.id", order)
                  .Attr("messaging.system", "rabbitmq")
                  .Attr("messaging.operation.type", "send")
                  .Attr("messaging.destination.name", queue)
                  .Attr("messaging.rabbitmq.destination.routing_key", queue)
                  .Attr("messaging.message.id", "msg-" + order))
          .Build());
}

// A webhook receiver for the gateway's alerts (a real HTTP sink, not a broker).
// The BrokerUnreachable events the gateway's webhook sink posted to `hook` so far.
std::vector<json> BrokerEvents(const testing_support::Receiver& hook) {
  std::vector<json> out;
  for (const json& e : hook.bodies()) {
    if (e.is_object() && e.value("alertname", "") == "BrokerUnreachable") out.push_back(e);
  }
  return out;
}

json GetJson(uint16_t port, const std::string& target) {
  auto r = net::HttpGet(port, target);
  if (!r.ok() || r->status != 200) return json();
  return json::parse(r->body, nullptr, false);
}

TEST_F(BrokerHealth, GatewayExportsQueuesDiagnosesAndAlertsTheOutage) {
  const std::string queue = Unique("bh.gateway");
  const std::string order = Unique("ORD-BH");
  constexpr int kMessages = 1204;
  {
    Amqp producer(testing::BrokerEnvironment::broker().port);
    ASSERT_EQ(producer.error(), "");
    producer.DeclareQueue(queue);
    producer.Publish(queue, kMessages);
    ASSERT_EQ(producer.error(), "");
  }
  testing_support::Receiver hook;
  ASSERT_TRUE(hook.started());
  testing_support::GatewayProcess gw("broker_health");
  const std::filesystem::path config = gw.dir() / "gateway.yaml";
  std::ofstream yaml(config);
  yaml << "broker:\n  interval: 1s\n  timeout: 1s\n";
  // The URL through the flag (which wins over broker.management_url), the rest from the file.
  std::vector<std::string> flags{"--config", config.string(), "--rabbitmq-management",
                                 management_url_};
  yaml << "alerting:\n  webhook:\n    url: " << hook.url("/hook") << "\n";
  yaml.close();
  ASSERT_TRUE(gw.Start(flags)) << gw.Log();
  ASSERT_TRUE(gw.WaitForLog("RabbitMQ management API reachable")) << gw.Log();

  // /metrics: the queue's gauges; /api/v1/broker: the queue.
  const std::string ready_series =
      "ordertrace_broker_queue_messages_ready{queue=\"" + queue + "\"} 1204\n";
  ASSERT_TRUE(testing_support::WaitFor(
      [&] {
        auto m = net::HttpGet(gw.http_port(), "/metrics");
        return m.ok() && m->body.find(ready_series) != std::string::npos;
      },
      30s))
      << "no " << ready_series;
  auto metrics = net::HttpGet(gw.http_port(), "/metrics");
  ASSERT_TRUE(metrics.ok());
  EXPECT_NE(metrics->body.find("ordertrace_broker_up 1\n"), std::string::npos);
  EXPECT_NE(metrics->body.find("ordertrace_broker_queue_consumers{queue=\"" + queue + "\"} 0\n"),
            std::string::npos);
  json status = GetJson(gw.http_port(), "/api/v1/broker");
  ASSERT_TRUE(status.is_object());
  EXPECT_EQ(status["up"], true);
  EXPECT_EQ(status["broker"],
            "127.0.0.1:" + std::to_string(testing::BrokerEnvironment::broker().management_port));
  bool listed = false;
  for (const json& q : status["queues"]) {
    if (q["name"] == queue) {
      listed = true;
      EXPECT_EQ(q["messages_ready"], kMessages);
      EXPECT_EQ(q["consumers"], 0);
    }
  }
  EXPECT_TRUE(listed) << status.dump();

  // An order whose message waits on the queue: its diagnosis has the queue's state.
  {
    net::HttpOptions post;
    post.timeout = 5000ms;
    post.headers = {{"Content-Type", "application/json"}};
    auto posted =
        net::HttpPost("http://127.0.0.1:" + std::to_string(gw.otlp_http_port()) + "/v1/traces",
                      StuckOrderSpans(order, queue), post);
    ASSERT_TRUE(posted.ok()) << posted.status().message();
    ASSERT_EQ(posted->status, 200) << posted->body;
  }
  const std::string sentence = "queue " + queue + ": 1,204 ready, 0 unacked, 0 consumers";
  json j;
  ASSERT_TRUE(testing_support::WaitFor(
      [&] {
        j = GetJson(gw.http_port(), "/api/v1/orders/" + order);
        return j.is_object() && j["diagnosis"].is_object() &&
               !j["diagnosis"]["open_hops"].empty() &&
               j["diagnosis"]["open_hops"][0]["broker"] == sentence;
      },
      20s))
      << j.dump(2);
  EXPECT_NE(j["diagnosis"]["summary"].get<std::string>().find(sentence), std::string::npos);
  EXPECT_TRUE(j["diagnosis"]["broker"].is_null());

  // The outage: BrokerUnreachable fires, the diagnosis says the broker is unreachable.
  StopServer();
  ASSERT_TRUE(testing_support::WaitFor([&] { return !BrokerEvents(hook).empty(); }, 10s))
      << gw.Log();
  json fired = BrokerEvents(hook).front();
  EXPECT_EQ(fired["event"], "firing");
  EXPECT_EQ(fired["severity"], "critical");
  EXPECT_EQ(fired["labels"]["broker"], status["broker"]);
  EXPECT_FALSE(fired["summary"].get<std::string>().empty());
  EXPECT_TRUE(gw.WaitForLog("RabbitMQ management API unreachable"));
  auto down_metrics = net::HttpGet(gw.http_port(), "/metrics");
  ASSERT_TRUE(down_metrics.ok());
  EXPECT_NE(down_metrics->body.find("ordertrace_broker_up 0\n"), std::string::npos);
  j = GetJson(gw.http_port(), "/api/v1/orders/" + order);
  ASSERT_TRUE(j["diagnosis"].is_object());
  EXPECT_NE(j["diagnosis"]["open_hops"][0]["broker"].get<std::string>().find(
                "RabbitMQ unreachable since "),
            std::string::npos);
  EXPECT_NE(j["diagnosis"]["broker"].get<std::string>().find("RabbitMQ has been unreachable since"),
            std::string::npos)
      << j["diagnosis"].dump(2);
  json broker_down = GetJson(gw.http_port(), "/api/v1/broker");
  EXPECT_EQ(broker_down["up"], false);
  EXPECT_FALSE(broker_down["error"].is_null());
  // Readiness does not depend on the broker.
  auto ready = net::HttpGet(gw.http_port(), "/readyz");
  ASSERT_TRUE(ready.ok());
  EXPECT_EQ(ready->status, 200);

  // Back: the alert is resolved, the diagnosis attributes the outage to this stage.
  StartServer();
  ASSERT_TRUE(testing_support::WaitFor(
      [&] {
        auto events = BrokerEvents(hook);
        return !events.empty() && events.back()["event"] == "resolved";
      },
      15s))
      << gw.Log();
  EXPECT_FALSE(BrokerEvents(hook).back()["ends_at"].is_null());
  ASSERT_TRUE(testing_support::WaitFor(
      [&] {
        j = GetJson(gw.http_port(), "/api/v1/orders/" + order);
        return j.is_object() && j["diagnosis"].is_object() &&
               j["diagnosis"]["broker"].is_string() &&
               j["diagnosis"]["broker"].get<std::string>().find("RabbitMQ was unreachable ") == 0;
      },
      10s))
      << j.dump(2);
  EXPECT_NE(j["diagnosis"]["summary"].get<std::string>().find("RabbitMQ was unreachable "),
            std::string::npos);
  std::printf("diagnosis after the outage: %s\n",
              j["diagnosis"]["summary"].get<std::string>().c_str());
  // The durable queue kept its persistent messages; once RabbitMQ reports them again, the hop
  // shows them.
  EXPECT_TRUE(testing_support::WaitFor(
      [&] {
        j = GetJson(gw.http_port(), "/api/v1/orders/" + order);
        return j.is_object() && j["diagnosis"].is_object() &&
               j["diagnosis"]["open_hops"][0]["broker"] == sentence;
      },
      30s))
      << j.dump(2);
  std::printf("diagnosis once the counts are back: %s\n",
              j["diagnosis"]["summary"].get<std::string>().c_str());
  // `ordertrace order` prints the broker's view of the hop and the attribution.
  const std::string cli = testing_support::RunCommand(
                              std::string(ORDERTRACE_BIN) + " order " + order +
                              " --api http://127.0.0.1:" + std::to_string(gw.http_port()) + " 2>&1")
                              .out;
  EXPECT_NE(cli.find("              broker: " + sentence + "\n"), std::string::npos) << cli;
  EXPECT_NE(cli.find("  broker:     RabbitMQ was unreachable "), std::string::npos) << cli;
  EXPECT_EQ(gw.Stop(), 0);
}

}  // namespace
}  // namespace ordertrace
