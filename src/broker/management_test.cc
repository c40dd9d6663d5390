// The management API parsers on responses captured from a real RabbitMQ 3.10.8
// (tests/broker/data/*.json, see tests/broker/data/README.md) and on broken ones; the client's
// errors (refused, timeout, HTTP 401, a body over the limit) against a local HTTP server.
#include "broker/management.h"

#include <gtest/gtest.h>

#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "net/http_client.h"
#include "net/http_server.h"

namespace ordertrace::broker {
namespace {

std::string ReadData(const std::string& name) {
  std::ifstream in(std::string(BROKER_TEST_DATA) + "/" + name, std::ios::binary);
  EXPECT_TRUE(in) << name;
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(ManagementParseTest, CapturedOverview) {
  Overview o;
  ASSERT_TRUE(ParseOverview(ReadData("overview.json"), &o).ok());
  EXPECT_EQ(o.rabbitmq_version, "3.10.8");
  EXPECT_EQ(o.management_version, "3.10.8");
  EXPECT_EQ(o.node, "ot-capture@localhost");
  EXPECT_EQ(o.cluster_name, "ot-capture@vm");
  EXPECT_FALSE(o.erlang_version.empty());
}

TEST(ManagementParseTest, CapturedQueues) {
  std::vector<QueueState> q;
  ASSERT_TRUE(ParseQueues(ReadData("queues.json"), &q).ok());
  ASSERT_EQ(q.size(), 4u);
  // Sorted by name.
  EXPECT_EQ(q[0].name, "audit");
  EXPECT_EQ(q[1].name, "crm.orders");
  EXPECT_EQ(q[2].name, "crm.prices");
  EXPECT_EQ(q[3].name, "mes.calculate");
  for (const auto& x : q) EXPECT_EQ(x.vhost, "/");
  // crm.orders: a consumer acking 200 messages/s as they are published.
  EXPECT_EQ(q[1].consumers, 1u);
  EXPECT_EQ(q[1].ready, 0u);
  EXPECT_TRUE(q[1].counted);
  EXPECT_DOUBLE_EQ(q[1].publish_rate, 200.0);
  EXPECT_DOUBLE_EQ(q[1].deliver_rate, 200.0);
  EXPECT_DOUBLE_EQ(q[1].ack_rate, 199.8);
  // crm.prices: a consumer holding 3 unacked (prefetch 3), 2 more ready.
  EXPECT_EQ(q[2].ready, 2u);
  EXPECT_EQ(q[2].unacked, 3u);
  EXPECT_EQ(q[2].consumers, 1u);
  // mes.calculate: nobody consumes; 10 messages/s pile up.
  EXPECT_EQ(q[3].ready, 91u);
  EXPECT_EQ(q[3].consumers, 0u);
  EXPECT_DOUBLE_EQ(q[3].publish_rate, 10.0);
  EXPECT_DOUBLE_EQ(q[3].deliver_rate, 0.0);
  // audit: never used, no message_stats at all.
  EXPECT_EQ(q[0].ready, 0u);
  EXPECT_DOUBLE_EQ(q[0].publish_rate, 0.0);
}

TEST(ManagementParseTest, CapturedExchangesAndBindings) {
  std::vector<ExchangeInfo> ex;
  ASSERT_TRUE(ParseExchanges(ReadData("exchanges.json"), &ex).ok());
  auto type_of = [&](const std::string& name) {
    for (const auto& e : ex) {
      if (e.name == name) return e.type;
    }
    return std::string("?");
  };
  EXPECT_EQ(type_of(""), "direct");
  EXPECT_EQ(type_of("orders"), "direct");
  EXPECT_EQ(type_of("events"), "topic");
  EXPECT_EQ(type_of("broadcast"), "fanout");
  EXPECT_EQ(type_of("hdrs"), "headers");
  std::vector<BindingInfo> b;
  ASSERT_TRUE(ParseBindings(ReadData("bindings.json"), &b).ok());
  bool found = false;
  for (const auto& x : b) {
    if (x.source == "events") {
      EXPECT_EQ(x.destination, "audit");
      EXPECT_EQ(x.destination_type, "queue");
      EXPECT_EQ(x.routing_key, "order.*.done");
      found = true;
    }
  }
  EXPECT_TRUE(found);
}

TEST(ManagementParseTest, BrokenResponsesAreClearErrors) {
  std::vector<QueueState> q;
  EXPECT_EQ(ParseQueues("<html>502 Bad Gateway</html>", &q).message(), "/api/queues: not JSON");
  EXPECT_EQ(ParseQueues(R"({"error":"x"})", &q).message(),
            "/api/queues: expected a JSON array, got object");
  EXPECT_EQ(ParseQueues(R"([1])", &q).message(), "/api/queues[0]: expected an object, got number");
  EXPECT_EQ(ParseQueues(R"([{"name":"a"},{"name":7}])", &q).message(),
            "/api/queues[1]: name: expected a string, got 7");
  EXPECT_EQ(ParseQueues(R"([{"name":"a","messages_ready":-3}])", &q).message(),
            "/api/queues[0]: messages_ready: expected a count, got -3");
  EXPECT_EQ(ParseQueues(R"([{"name":"a","consumers":"many"}])", &q).message(),
            "/api/queues[0]: consumers: expected a count, got \"many\"");
  EXPECT_EQ(ParseQueues(R"([{"name":"a","message_stats":[]}])", &q).message(),
            "/api/queues[0]: message_stats: expected an object, got []");
  EXPECT_EQ(ParseQueues(R"([{"name":"a","message_stats":{"publish_details":{"rate":"fast"}}}])", &q)
                .message(),
            "/api/queues[0]: publish: expected a number, got \"fast\"");
  EXPECT_EQ(ParseQueues(R"([{"name":"a","messages_ready":1.5}])", &q).message(),
            "/api/queues[0]: messages_ready: expected a count, got 1.5");
  // A long wrong value is shortened in the message.
  const std::string long_name(500, 'x');
  EXPECT_EQ(ParseQueues(R"([{"name":[")" + long_name + R"("]}])", &q).message(),
            "/api/queues[0]: name: expected a string, got [\"" + std::string(38, 'x') + "...");
  // A truncated capture.
  const std::string captured = ReadData("queues.json");
  EXPECT_EQ(ParseQueues(captured.substr(0, captured.size() / 2), &q).message(),
            "/api/queues: not JSON");
  Overview o;
  EXPECT_EQ(ParseOverview("[]", &o).message(), "/api/overview: expected a JSON object, got array");
  EXPECT_EQ(ParseOverview(R"({"rabbitmq_version":3})", &o).message(),
            "/api/overview: rabbitmq_version: expected a string, got 3");
  std::vector<BindingInfo> b;
  EXPECT_EQ(ParseBindings(R"([{"source":null,"destination":"q","routing_key":{}}])", &b).message(),
            "/api/bindings[0]: routing_key: expected a string, got {}");
  std::vector<ExchangeInfo> e;
  EXPECT_EQ(ParseExchanges("", &e).message(), "/api/exchanges: not JSON");
  EXPECT_EQ(ParseExchanges(R"([{"name":"x","arguments":{"alternate-exchange":1}}])", &e).message(),
            "/api/exchanges[0]: alternate-exchange: expected a string, got 1");
  ASSERT_TRUE(ParseExchanges(
                  R"([{"name":"x","type":"direct","arguments":{"alternate-exchange":"ae"}}])", &e)
                  .ok());
  EXPECT_EQ(e[0].alternate_exchange, "ae");
}

TEST(ManagementParseTest, MissingFieldsKeepZeroValues) {
  std::vector<QueueState> q;
  ASSERT_TRUE(ParseQueues(R"([{"name":"bare"},{"name":"n","messages_ready":null}])", &q).ok());
  ASSERT_EQ(q.size(), 2u);
  EXPECT_EQ(q[0].name, "bare");
  EXPECT_EQ(q[0].ready, 0u);
  EXPECT_FALSE(q[0].counted);  // not reported: unknown, not 0
  EXPECT_FALSE(q[1].counted);
  EXPECT_EQ(q[0].consumers, 0u);
  EXPECT_EQ(q[0].vhost, "");
}

// Every prefix of the captured responses and single-byte corruptions of them: an error or a
// result, never a crash (run under ASan/UBSan in the sanitizer build).
TEST(ManagementParseTest, CorruptedCapturesNeverCrash) {
  std::mt19937 rng(7);
  for (const char* name : {"overview.json", "queues.json", "exchanges.json", "bindings.json"}) {
    const std::string good = ReadData(name);
    auto parse = [&](const std::string& body) {
      Overview o;
      std::vector<QueueState> q;
      std::vector<ExchangeInfo> e;
      std::vector<BindingInfo> b;
      (void)ParseOverview(body, &o);
      (void)ParseQueues(body, &q);
      (void)ParseExchanges(body, &e);
      (void)ParseBindings(body, &b);
    };
    for (size_t n = 0; n < good.size(); n += 13) parse(good.substr(0, n));
    for (int i = 0; i < 300; ++i) {
      std::string bad = good;
      bad[rng() % bad.size()] = static_cast<char>(rng() % 256);
      parse(bad);
    }
  }
}

// A local HTTP server standing in for the network, not for RabbitMQ: it checks what the client
// sends and returns what a proxy or a broken peer could.
class ManagementClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    net::HttpServerOptions o;
    o.threads = 1;
    server_ = std::make_unique<net::HttpServer>(o);
    server_->Route("GET", "/api/*", [this](net::HttpRequest& req, net::HttpResponse& res) {
      authorization_ = std::string(req.Header("authorization"));
      if (req.path == "/api/overview") {
        res.status = 401;
        res.content_type = "application/json";
        res.body = R"({"error":"not_authorized","reason":"Login failed"})";
      } else {
        res.body.assign(3 << 20, ' ');  // 3 MiB
      }
    });
    server_->Route("GET", "/slow/api/overview", [](net::HttpRequest&, net::HttpResponse& res) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1500));
      res.body = "{}";
    });
    server_->Route("GET", "/big/api/overview", [](net::HttpRequest&, net::HttpResponse& res) {
      res.body.assign(3 << 20, ' ');
    });
    ASSERT_TRUE(server_->Start().ok());
    url_ = "http://127.0.0.1:" + std::to_string(server_->port());
  }
  void TearDown() override { server_->Shutdown(std::chrono::milliseconds(2000)); }

  std::unique_ptr<net::HttpServer> server_;
  std::string url_;
  std::string authorization_;
};

TEST_F(ManagementClientTest, SendsBasicAuthAndExplainsHttpErrors) {
  ManagementOptions o;
  o.url = url_ + "/";
  o.user = "guest";
  o.password = "wrong";
  ManagementClient client(o);
  EXPECT_EQ(client.host_port(), "127.0.0.1:" + std::to_string(server_->port()));
  auto r = client.Fetch(1);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(r.status().message(), "GET /api/overview: HTTP 401 Unauthorized: Login failed");
  EXPECT_EQ(authorization_, "Basic Z3Vlc3Q6d3Jvbmc=");  // guest:wrong
}

TEST_F(ManagementClientTest, TimeoutAndBodyLimitAndRefused) {
  ManagementOptions o;
  o.url = url_ + "/slow";
  o.timeout = std::chrono::milliseconds(300);
  const auto began = std::chrono::steady_clock::now();
  auto slow = ManagementClient(o).Fetch(1);
  ASSERT_FALSE(slow.ok());
  EXPECT_EQ(slow.status().message(), "read timed out after 300ms");
  EXPECT_LT(std::chrono::steady_clock::now() - began, std::chrono::milliseconds(1200));

  o.url = url_ + "/big";
  o.timeout = std::chrono::milliseconds(5000);
  o.max_body_bytes = 1 << 20;
  auto big = ManagementClient(o).Fetch(1);
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.status().message(), "response body larger than 1048576 bytes");

  const uint16_t port = server_->port();
  server_->Shutdown(std::chrono::milliseconds(100));
  o.url = "http://127.0.0.1:" + std::to_string(port);
  auto refused = ManagementClient(o).Fetch(1);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().message(), "connection refused");
}

}  // namespace
}  // namespace ordertrace::broker
