// The journey API over a real HttpServer, on an engine with a memory store and a manual clock.
#include "api/journey_api.h"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "audit/audit_log.h"
#include "journey/store/memory/memory_store.h"
#include "net/http_client.h"

namespace ordertrace::api {
namespace {

using nlohmann::json;

constexpr Nanos kT0 = 1'790'000'000'000'000'000;  // 2026-09-21
constexpr Nanos kMin = 60'000'000'000;

journey::SpanRecord Span(const std::string& order, const std::string& span_id, Nanos start,
                         Nanos end, const std::string& service, const std::string& stage = "") {
  journey::SpanRecord r;
  r.order_id = order;
  r.trace_id = "0af7651916cd43dd8448eb211c80319c";
  r.span_id = span_id;
  r.service = service;
  r.name = "step " + span_id;
  r.start_ns = start;
  r.end_ns = end;
  r.stage = stage;
  return r;
}

// Keeps the audit events the guard writes.
class RecordingAudit : public audit::AuditSink {
 public:
  void Record(const audit::AuditEvent& event) override {
    std::lock_guard<std::mutex> lock(mu_);
    events_.push_back(event);
  }
  std::vector<audit::AuditEvent> Take() {
    std::lock_guard<std::mutex> lock(mu_);
    return std::move(events_);
  }

 private:
  std::mutex mu_;
  std::vector<audit::AuditEvent> events_;
};

class JourneyApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = journey::NewMemoryStore();
    engine_ = std::make_unique<journey::Engine>(
        std::make_shared<journey::Rules>(journey::DefaultRules()), *store_, clock_, nullptr);
    net::HttpServerOptions o;
    server_ = std::make_unique<net::HttpServer>(o);
    JourneyApiOptions api;
    api.jaeger_ui = "http://jaeger.example:16686/";
    RegisterJourneyRoutes(*server_, *engine_, guard_, api);
    ASSERT_TRUE(server_->Start().ok());
  }

  json GetJson(const std::string& target, int want_status) {
    auto r = net::HttpGet(server_->port(), target);
    EXPECT_TRUE(r.ok()) << r.status().message();
    if (!r.ok()) return json();
    EXPECT_EQ(r.value().status, want_status) << target << ": " << r.value().body;
    EXPECT_EQ(r.value().content_type, "application/json");
    return json::parse(r.value().body, nullptr, /*allow_exceptions=*/false);
  }

  ordertrace::ManualClock clock_{kT0};
  std::unique_ptr<journey::JourneyStore> store_;
  std::unique_ptr<journey::Engine> engine_;
  AllowAll auth_;
  RecordingAudit audit_;
  ApiGuard guard_{auth_, &audit_};
  std::unique_ptr<net::HttpServer> server_;
};

TEST_F(JourneyApiTest, StuckOrderCarriesItsDiagnosis) {
  // A submitted order that nobody picks up, and a closed one.
  ASSERT_TRUE(
      engine_->Apply({Span("ORD 1/a", "00000000000000a1", kT0, kT0 + 1000, "crm", "SUBMITTED")})
          .ok());
  ASSERT_TRUE(
      engine_->Apply({Span("ORD-2", "00000000000000b1", kT0, kT0 + 1000, "crm", "CLOSED")}).ok());
  clock_.Advance(std::chrono::minutes(3));  // within_receipt 2m + grace 30s have passed
  EXPECT_EQ(engine_->Tick(clock_.Now()), 1u);

  json j = GetJson("/api/v1/orders/ORD%201%2Fa", 200);
  EXPECT_EQ(j["order_id"], "ORD 1/a");
  EXPECT_EQ(j["stage"], "SUBMITTED");
  EXPECT_EQ(j["stuck"], true);
  EXPECT_EQ(j["stuck_kind"], "not_received");
  ASSERT_TRUE(j["diagnosis"].is_object());
  EXPECT_NE(j["diagnosis"]["summary"].get<std::string>().find("mes has not picked it up"),
            std::string::npos)
      << j["diagnosis"]["summary"];
  EXPECT_EQ(j["diagnosis"]["expected_service"], "mes");
  EXPECT_EQ(j["diagnosis"]["last_span"]["service"], "crm");
  EXPECT_EQ(j["diagnosis"]["jaeger_links"][0],
            "http://jaeger.example:16686/trace/0af7651916cd43dd8448eb211c80319c");
  EXPECT_EQ(j["diagnosis"]["jaeger_search_link"],
            "http://jaeger.example:16686/search?traceID=0af7651916cd43dd8448eb211c80319c");
  EXPECT_EQ(j["jaeger_search_link"], j["diagnosis"]["jaeger_search_link"]);
  ASSERT_EQ(j["milestones"].size(), 1u);
  EXPECT_EQ(j["milestones"][0]["stage"], "SUBMITTED");
  ASSERT_EQ(j["spans"].size(), 1u);
  EXPECT_EQ(j["spans"][0]["jaeger_link"],
            "http://jaeger.example:16686/trace/0af7651916cd43dd8448eb211c80319c"
            "?uiFind=00000000000000a1");
  EXPECT_TRUE(j["hops"].is_array());

  json closed = GetJson("/api/v1/orders/ORD-2", 200);
  EXPECT_EQ(closed["stuck"], false);
  EXPECT_TRUE(closed["diagnosis"].is_null());
  // Every order links to its traces, stuck or not.
  EXPECT_EQ(closed["jaeger_search_link"],
            "http://jaeger.example:16686/search?traceID=0af7651916cd43dd8448eb211c80319c");
  EXPECT_EQ(closed["closed"], true);

  json list = GetJson("/api/v1/orders?stuck=true", 200);
  ASSERT_EQ(list["orders"].size(), 1u);
  EXPECT_EQ(list["orders"][0]["order_id"], "ORD 1/a");
  EXPECT_TRUE(list["next_cursor"].is_null());
  EXPECT_EQ(GetJson("/api/v1/orders?stuck=false", 200)["orders"].size(), 1u);
  EXPECT_EQ(GetJson("/api/v1/orders?stage=CLOSED", 200)["orders"][0]["order_id"], "ORD-2");
  EXPECT_EQ(GetJson("/api/v1/orders?service=mes&stuck=true", 200)["orders"].size(), 1u);
}

TEST_F(JourneyApiTest, PagesWalkEveryOrderOnce) {
  std::vector<journey::SpanRecord> spans;
  for (int i = 0; i < 7; ++i) {
    spans.push_back(Span("O" + std::to_string(i), "00000000000000c" + std::to_string(i), kT0,
                         kT0 + kMin, "crm", "SUBMITTED"));
  }
  ASSERT_TRUE(engine_->Apply(std::move(spans)).ok());
  std::set<std::string> seen;
  std::string cursor;
  int pages = 0;
  do {
    json page =
        GetJson("/api/v1/orders?limit=3" + (cursor.empty() ? "" : "&cursor=" + cursor), 200);
    for (const auto& o : page["orders"]) EXPECT_TRUE(seen.insert(o["order_id"]).second);
    cursor = page["next_cursor"].is_null() ? "" : page["next_cursor"].get<std::string>();
    ++pages;
  } while (!cursor.empty() && pages < 10);
  EXPECT_EQ(seen.size(), 7u);
  EXPECT_EQ(pages, 3);
}

TEST_F(JourneyApiTest, ErrorsAreJson) {
  json nf = GetJson("/api/v1/orders/NOPE", 404);
  EXPECT_EQ(nf["error"], "order 'NOPE' not found");
  EXPECT_EQ(GetJson("/api/v1/orders?stuck=maybe", 400)["error"],
            "stuck: expected true or false, got 'maybe'");
  EXPECT_EQ(GetJson("/api/v1/orders?limit=0", 400)["error"], "limit: expected 1..1000, got '0'");
  EXPECT_EQ(GetJson("/api/v1/orders?stage=NOPE", 400)["error"], "stage: unknown stage 'NOPE'");
  EXPECT_NE(GetJson("/api/v1/orders?colour=red", 400)["error"].get<std::string>().find(
                "unknown query parameter 'colour'"),
            std::string::npos);
  EXPECT_EQ(GetJson("/api/v1/orders/a%2", 400)["error"],
            "expected /api/v1/orders/{id} with one percent-encoded order id");
  EXPECT_EQ(GetJson("/api/v1/orders/a/b", 400)["error"],
            "expected /api/v1/orders/{id} with one percent-encoded order id");
  EXPECT_EQ(GetJson("/api/v1/orders/NOPE?include=spans", 400)["error"],
            "include: unknown value 'spans' (known: jaeger)");
  EXPECT_EQ(GetJson("/api/v1/orders/NOPE?jaeger=1", 400)["error"],
            "unknown query parameter 'jaeger' (known: include)");
  // Asked for, Jaeger's query service must be configured (jaeger.query_url).
  EXPECT_EQ(GetJson("/api/v1/orders/NOPE?include=jaeger", 409)["error"],
            "include=jaeger: Jaeger's query service is not configured (jaeger.query_url, "
            "docs/jaeger.md)");
}

// ?include=jaeger adds what the read-back returns for the order's journey (the gateway binds it
// to jaeger::ReadBack; tests/jaeger/readback_test.cc runs it against a real Jaeger).
TEST_F(JourneyApiTest, IncludeJaegerAddsTheReadBack) {
  server_.reset();
  server_ = std::make_unique<net::HttpServer>(net::HttpServerOptions{});
  JourneyApiOptions api;
  api.jaeger_ui = "https://gw.example/jaeger";
  std::atomic<int> calls{0};
  api.jaeger_read_back = [&calls](const journey::Journey& j) {
    ++calls;
    return json{{"traces", json::array()}, {"spans_seen", j.spans.size()}, {"error", nullptr}};
  };
  RegisterJourneyRoutes(*server_, *engine_, guard_, api);
  ASSERT_TRUE(server_->Start().ok());
  ASSERT_TRUE(
      engine_->Apply({Span("ORD-3", "00000000000000c1", kT0, kT0 + 1000, "crm", "SUBMITTED")})
          .ok());

  EXPECT_FALSE(GetJson("/api/v1/orders/ORD-3", 200).contains("jaeger"));
  EXPECT_EQ(calls, 0);
  json j = GetJson("/api/v1/orders/ORD-3?include=jaeger", 200);
  EXPECT_EQ(j["jaeger"]["spans_seen"], 1);
  EXPECT_EQ(j["spans"][0]["jaeger_link"],
            "https://gw.example/jaeger/trace/0af7651916cd43dd8448eb211c80319c"
            "?uiFind=00000000000000c1");
  EXPECT_EQ(GetJson("/api/v1/orders/ORD-3?include=,jaeger,", 200)["jaeger"]["spans_seen"], 1);
  EXPECT_EQ(calls, 2);
  GetJson("/api/v1/orders/NOPE?include=jaeger", 404);
  EXPECT_EQ(calls, 2);
}

// The audit keeps the values of the list's filters, but not of parameters it does not know:
// they may carry personal data (a customer's id or e-mail put in a query by mistake).
TEST_F(JourneyApiTest, AuditKeepsFilterValuesButNotUnknownParameters) {
  GetJson("/api/v1/orders?stuck=true&stage=SUBMITTED&limit=5", 200);
  GetJson("/api/v1/orders?customer=PRT-ACME-0042", 400);
  GetJson("/api/v1/orders?stuck=true&q=alice%40example.com", 400);
  const auto events = audit_.Take();
  ASSERT_EQ(events.size(), 3u);
  using Entry = std::pair<std::string, std::string>;
  EXPECT_EQ(
      events[0].resource,
      (std::vector<Entry>{
          {"type", "order_list"}, {"stuck", "true"}, {"stage", "SUBMITTED"}, {"limit", "5"}}));
  EXPECT_EQ(events[1].resource,
            (std::vector<Entry>{{"type", "order_list"}, {"customer", "[not recorded]"}}));
  EXPECT_EQ(
      events[2].resource,
      (std::vector<Entry>{{"type", "order_list"}, {"stuck", "true"}, {"q", "[not recorded]"}}));
}

}  // namespace
}  // namespace ordertrace::api
