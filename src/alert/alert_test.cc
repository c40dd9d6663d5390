// The JSON the sinks send, the webhook's HMAC signature, and both sinks against a local HTTP
// server (the project's own HttpServer standing in for Alertmanager and a webhook receiver).
#include "alert/alert.h"

#include <gtest/gtest.h>

#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "alert/sinks.h"
#include "net/http_server.h"

namespace ordertrace::alert {
namespace {

using nlohmann::json;

constexpr Nanos kT = 1700000000123000000;  // 2023-11-14T22:13:20.123Z

Alert OrderAlertExample() {
  Alert a;
  a.order_id = "A-1";
  a.stage = "SUBMITTED";
  a.service = "mes";
  a.severity = "critical";
  a.kind = "not_received";
  a.summary = "order A-1 stuck in SUBMITTED for 7m";
  a.description = "Order A-1 is stuck in SUBMITTED.";
  a.jaeger_links = {"http://jaeger.test:16686/trace/abc", "http://jaeger.test:16686/trace/def"};
  a.jaeger_search_link = "http://jaeger.test:16686/search?traceID=abc&traceID=def";
  a.ui_url = "https://gw.test/ui/orders/A-1";
  a.runbook_url = "https://wiki.test/rb";
  a.starts_at = kT;
  a.expected = "a span from mes (receipt)";
  a.last_span_service = "crm";
  a.last_span_name = "POST /api/orders";
  a.last_span_status = "OK";
  a.open_hops.push_back({"msg-1", "orders", "price.calculate", "", "crm", kT});
  return a;
}

TEST(AlertTest, Rfc3339) {
  EXPECT_EQ(Rfc3339(kT), "2023-11-14T22:13:20.123Z");
  EXPECT_EQ(Rfc3339(0), "1970-01-01T00:00:00.000Z");
}

TEST(AlertTest, AlertmanagerBodyHasLabelsAnnotationsAndNoDots) {
  Alert a = OrderAlertExample();
  Alert r = a;
  r.resolved = true;
  r.ends_at = kT + 60000000000;
  Alert storm;
  storm.storm = true;
  storm.stage = "SUBMITTED";
  storm.service = "mes";
  storm.severity = "critical";
  storm.count = 412;
  storm.summary = "412 orders stuck at SUBMITTED waiting for mes";
  storm.starts_at = kT;
  const json body = json::parse(AlertmanagerBody({a, r, storm}));
  ASSERT_TRUE(body.is_array());
  ASSERT_EQ(body.size(), 3u);
  EXPECT_EQ(body[0]["labels"], json({{"alertname", "OrderStuck"},
                                     {"order_id", "A-1"},
                                     {"stage", "SUBMITTED"},
                                     {"service", "mes"},
                                     {"severity", "critical"}}));
  EXPECT_EQ(body[0]["annotations"]["summary"], a.summary);
  EXPECT_EQ(body[0]["annotations"]["description"], a.description);
  // The order's traces together first, then its latest trace.
  EXPECT_EQ(body[0]["annotations"]["jaeger_url"],
            "http://jaeger.test:16686/search?traceID=abc&traceID=def");
  EXPECT_EQ(body[0]["annotations"]["jaeger_trace_url"], "http://jaeger.test:16686/trace/abc");
  EXPECT_EQ(body[0]["annotations"]["ui_url"], "https://gw.test/ui/orders/A-1");
  EXPECT_EQ(body[0]["annotations"]["runbook_url"], "https://wiki.test/rb");
  EXPECT_EQ(body[0]["startsAt"], "2023-11-14T22:13:20.123Z");
  EXPECT_FALSE(body[0].contains("endsAt"));
  EXPECT_EQ(body[0]["generatorURL"], "http://jaeger.test:16686/search?traceID=abc&traceID=def");
  EXPECT_EQ(body[1]["endsAt"], "2023-11-14T22:14:20.123Z");
  EXPECT_EQ(body[2]["labels"]["alertname"], "OrderStuckStorm");
  EXPECT_FALSE(body[2]["labels"].contains("order_id"));
  EXPECT_EQ(body[2]["annotations"]["count"], "412");
  for (const auto& item : body) {
    for (const char* part : {"labels", "annotations"}) {
      for (const auto& [name, value] : item[part].items()) {
        EXPECT_EQ(name.find('.'), std::string::npos) << name;
        EXPECT_TRUE(value.is_string()) << name;  // Alertmanager takes strings only
      }
    }
  }
}

TEST(AlertTest, WebhookBodySchema) {
  const json j = json::parse(WebhookBody(OrderAlertExample()));
  EXPECT_EQ(j["version"], "1");
  EXPECT_EQ(j["event"], "firing");
  EXPECT_EQ(j["alertname"], "OrderStuck");
  EXPECT_EQ(j["order_id"], "A-1");
  EXPECT_EQ(j["stage"], "SUBMITTED");
  EXPECT_EQ(j["service"], "mes");
  EXPECT_EQ(j["kind"], "not_received");
  EXPECT_EQ(j["starts_at"], "2023-11-14T22:13:20.123Z");
  EXPECT_TRUE(j["ends_at"].is_null());
  EXPECT_EQ(j["jaeger_search_link"], "http://jaeger.test:16686/search?traceID=abc&traceID=def");
  EXPECT_EQ(j["jaeger_links"].size(), 2u);
  EXPECT_EQ(j["ui_url"], "https://gw.test/ui/orders/A-1");
  EXPECT_EQ(j["diagnosis"]["expected"], "a span from mes (receipt)");
  EXPECT_EQ(j["diagnosis"]["last_span"]["service"], "crm");
  EXPECT_EQ(j["diagnosis"]["open_hops"][0]["routing_key"], "price.calculate");
  Alert storm;
  storm.storm = true;
  storm.resolved = true;
  storm.count = 5000;
  storm.ends_at = kT;
  const json s = json::parse(WebhookBody(storm));
  EXPECT_EQ(s["event"], "resolved");
  EXPECT_EQ(s["alertname"], "OrderStuckStorm");
  EXPECT_EQ(s["count"], 5000);
  EXPECT_FALSE(s.contains("order_id"));
}

TEST(AlertTest, HmacSha256) {
  // RFC 4231, test case 2.
  EXPECT_EQ(HmacSha256Hex("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(AlertTest, UrlValidation) {
  EXPECT_TRUE(ValidateHttpUrl("http://127.0.0.1:9093").ok());
  EXPECT_TRUE(ValidateHttpUrl("https://am.example.com/prefix").ok());
  EXPECT_TRUE(ValidateHttpUrl("http://[::1]:9093").ok());
  EXPECT_FALSE(ValidateHttpUrl("am:9093").ok());
  EXPECT_FALSE(ValidateHttpUrl("http://:9093").ok());
  EXPECT_FALSE(ValidateHttpUrl("http://am:99999").ok());
}

struct Received {
  std::mutex mu;
  std::vector<net::HttpRequest> requests;
  int status = 200;
};

class SinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    net::HttpServerOptions o;
    o.threads = 1;
    server_ = std::make_unique<net::HttpServer>(o);
    auto handler = [this](net::HttpRequest& req, net::HttpResponse& res) {
      std::lock_guard lock(got_.mu);
      got_.requests.push_back(req);
      res.status = got_.status;
      res.body = got_.status == 200 ? "" : "bad alert: label name \"order.id\" is invalid";
    };
    server_->Route("POST", "/api/v2/alerts", handler);
    server_->Route("POST", "/hook", handler);
    ASSERT_TRUE(server_->Start().ok());
    base_ = "http://127.0.0.1:" + std::to_string(server_->port());
  }
  void TearDown() override {
    if (!down_) server_->Shutdown(std::chrono::milliseconds(1000));
  }

  std::unique_ptr<net::HttpServer> server_;
  Received got_;
  std::string base_;
  bool down_ = false;
};

TEST_F(SinkTest, AlertmanagerPostsTheArray) {
  auto sink = NewAlertmanagerSink(base_ + "/", std::chrono::milliseconds(2000));
  EXPECT_EQ(sink->name(), "alertmanager");
  EXPECT_TRUE(sink->resends());
  SendResult r = sink->Send({OrderAlertExample()});
  ASSERT_TRUE(r.ok) << r.error;
  ASSERT_EQ(got_.requests.size(), 1u);
  EXPECT_EQ(got_.requests[0].Header("content-type"), "application/json");
  const json body = json::parse(got_.requests[0].body);
  EXPECT_EQ(body[0]["labels"]["order_id"], "A-1");

  got_.status = 400;
  r = sink->Send({OrderAlertExample()});
  EXPECT_FALSE(r.ok);
  EXPECT_FALSE(r.retryable);
  EXPECT_NE(r.error.find("http 400: bad alert"), std::string::npos) << r.error;
  got_.status = 503;
  r = sink->Send({OrderAlertExample()});
  EXPECT_FALSE(r.ok);
  EXPECT_TRUE(r.retryable);
}

TEST_F(SinkTest, WebhookSignsEachEvent) {
  auto sink = NewWebhookSink(base_ + "/hook", "s3cret", std::chrono::milliseconds(2000));
  Alert b = OrderAlertExample();
  b.order_id = "A-2";
  SendResult r = sink->Send({OrderAlertExample(), b});
  ASSERT_TRUE(r.ok) << r.error;
  ASSERT_EQ(got_.requests.size(), 2u);
  for (const auto& req : got_.requests) {
    EXPECT_EQ(req.Header("x-ordertrace-signature"), "sha256=" + HmacSha256Hex("s3cret", req.body));
  }
  EXPECT_EQ(json::parse(got_.requests[1].body)["order_id"], "A-2");
}

TEST_F(SinkTest, ConnectionErrorsAreRetryable) {
  server_->Shutdown(std::chrono::milliseconds(1000));
  down_ = true;
  auto sink = NewAlertmanagerSink(base_, std::chrono::milliseconds(1000));
  SendResult r = sink->Send({OrderAlertExample()});
  EXPECT_FALSE(r.ok);
  EXPECT_TRUE(r.retryable);
  EXPECT_NE(r.error.find("connect"), std::string::npos) << r.error;
}

}  // namespace
}  // namespace ordertrace::alert
