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
#include "common/text_format.h"
#include "journey/store/memory/memory_store.h"
#include "journey/store/store_test_fixture.h"
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

// A broker view with a fixed sentence per queue-less hop and a generation the test moves (a
// fake of one interface in a unit test: the real monitor is tested in src/broker).
class FakeBroker : public journey::BrokerView {
 public:
  std::string DescribeHop(const journey::Hop& hop, Nanos) const override {
    return "queue for " + hop.routing_key + ": 3 ready, 0 consumers";
  }
  std::vector<Outage> OutagesSince(Nanos) const override { return {}; }
  uint64_t generation() const override { return generation_.load(); }
  std::atomic<uint64_t> generation_{1};
};

class JourneyApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = journey::NewMemoryStore();
    engine_ = std::make_unique<journey::Engine>(
        std::make_shared<journey::Rules>(journey::DefaultRules()), *store_, clock_, nullptr);
    Serve(Options());
  }

  JourneyApiOptions Options() {
    JourneyApiOptions api;
    api.jaeger_ui = "http://jaeger.example:16686/";
    return api;
  }
  void Serve(JourneyApiOptions api) {
    server_.reset();
    server_ = std::make_unique<net::HttpServer>(net::HttpServerOptions{});
    RegisterJourneyRoutes(*server_, *engine_, guard_, std::move(api));
    ASSERT_TRUE(server_->Start().ok());
  }

  // A GET with an If-None-Match header ("" none).
  net::HttpReply Get(const std::string& target, const std::string& if_none_match = "") {
    net::HttpOptions o;
    if (!if_none_match.empty()) o.headers = {{"If-None-Match", if_none_match}};
    auto r = net::HttpGet("http://127.0.0.1:" + std::to_string(server_->port()), target, o);
    EXPECT_TRUE(r.ok()) << r.status().message();
    return r.ok() ? r.value() : net::HttpReply{};
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
    // Long ids: the cursor that holds one is longer than a filter value may be.
    spans.push_back(Span(std::string(300, 'O') + std::to_string(i),
                         "00000000000000c" + std::to_string(i), kT0, kT0 + kMin, "crm",
                         "SUBMITTED"));
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
  EXPECT_EQ(GetJson("/api/v1/orders?stage=NOPE", 400)["error"],
            "stage: unknown stage 'NOPE' (known: SUBMITTED, PRICE_CALCULATED, APPROVED, "
            "MANUFACTURING_STARTED, SHIPPED, CLOSED)");
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

// GET /api/v1/summary: the board's figures from the engine, conditional on its revision.
TEST_F(JourneyApiTest, SummaryShowsTheBoardAndAnswers304UntilSomethingChanges) {
  JourneyApiOptions api = Options();
  std::atomic<uint64_t> accepted{7};
  api.spans_accepted_total = [&accepted] { return std::optional<uint64_t>(accepted.load()); };
  api.alerts_sent_total = [] { return std::optional<uint64_t>(); };  // no alert sink
  Serve(api);
  // ORD-A stuck in SUBMITTED (mes never picks it up); ORD-B priced after 10 s; ORD-C closed.
  ASSERT_TRUE(engine_
                  ->Apply({Span("ORD-A", "00000000000000a1", kT0, kT0 + 1000, "crm", "SUBMITTED"),
                           Span("ORD-B", "00000000000000b1", kT0, kT0 + 1000, "crm", "SUBMITTED"),
                           Span("ORD-B", "00000000000000b2", kT0, kT0 + 1000 + 10'000'000'000,
                                "mes", "PRICE_CALCULATED"),
                           Span("ORD-C", "00000000000000c1", kT0, kT0 + 1000, "crm", "CLOSED")})
                  .ok());
  clock_.Advance(std::chrono::minutes(3));
  ASSERT_EQ(engine_->Tick(clock_.Now()), 1u);

  net::HttpReply r = Get("/api/v1/summary");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Header("Cache-Control"), "no-cache");
  const std::string etag(r.Header("ETag"));
  ASSERT_EQ(etag.size(), 34u) << etag;  // "<32 hex>"
  json j = json::parse(r.body);
  EXPECT_EQ(j["as_of"], Rfc3339(clock_.Now()));
  EXPECT_EQ(j["revision"], engine_->revision());
  EXPECT_EQ(j["totals"], (json{{"active", 2},
                               {"stuck", 1},
                               {"open_hops", 0},
                               {"flagged_total", 1},
                               {"cleared_total", 0},
                               {"closed_total", 1},
                               {"spans_accepted_total", 7},
                               {"alerts_sent_total", nullptr}}));
  ASSERT_EQ(j["stages"].size(), 7u);  // "none" + the 6 stages, in rule order
  EXPECT_EQ(j["stages"][0], (json{{"stage", "none"},
                                  {"index", -1},
                                  {"terminal", false},
                                  {"active", 0},
                                  {"stuck", 0},
                                  {"allowed_seconds", nullptr},
                                  {"expected_service", nullptr},
                                  {"p50_seconds", nullptr},
                                  {"p95_seconds", nullptr}}));
  const json& submitted = j["stages"][1];
  EXPECT_EQ(submitted["stage"], "SUBMITTED");
  EXPECT_EQ(submitted["index"], 0);
  EXPECT_EQ(submitted["active"], 1);
  EXPECT_EQ(submitted["stuck"], 1);
  EXPECT_EQ(submitted["allowed_seconds"], 1800.0);  // within 30m
  EXPECT_EQ(submitted["expected_service"], "mes");  // received_by
  EXPECT_DOUBLE_EQ(submitted["p50_seconds"].get<double>(), 10.0);
  EXPECT_DOUBLE_EQ(submitted["p95_seconds"].get<double>(), 14.5);
  EXPECT_EQ(j["stages"][6]["stage"], "CLOSED");
  EXPECT_EQ(j["stages"][6]["terminal"], true);
  EXPECT_EQ(j["stages"][6]["allowed_seconds"], nullptr);
  EXPECT_EQ(
      j["stuck_by"],
      (json::array({json{
          {"stage", "SUBMITTED"}, {"service", "mes"}, {"kind", "not_received"}, {"count", 1}}})));

  // Nothing changed: 304 without a body, for the tag alone, in a list, weak or '*'.
  for (const std::string& inm : {etag, "\"x\", " + etag, "W/" + etag, std::string("*")}) {
    r = Get("/api/v1/summary", inm);
    EXPECT_EQ(r.status, 304) << inm;
    EXPECT_TRUE(r.body.empty());
    EXPECT_EQ(r.Header("ETag"), etag);
    EXPECT_EQ(r.Header("Cache-Control"), "no-cache");
  }
  EXPECT_EQ(Get("/api/v1/summary", "\"other\"").status, 200);
  // A span arrives (the revision moves), or only the receivers' count does: a new answer.
  accepted = 8;
  r = Get("/api/v1/summary", etag);
  EXPECT_EQ(r.status, 200);
  const std::string etag2(r.Header("ETag"));
  EXPECT_NE(etag2, etag);
  ASSERT_TRUE(
      engine_->Apply({Span("ORD-D", "00000000000000d1", kT0, kT0 + 1000, "crm", "SUBMITTED")})
          .ok());
  r = Get("/api/v1/summary", etag2);
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(json::parse(r.body)["totals"]["active"], 3);
  EXPECT_EQ(GetJson("/api/v1/summary?stage=SUBMITTED", 400)["error"],
            "unknown query parameter 'stage' (this route takes none)");
}

TEST_F(JourneyApiTest, RulesAreTheLoadedLifecycle) {
  net::HttpReply r = Get("/api/v1/rules");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Header("Cache-Control"), "no-cache");
  const json j = json::parse(r.body);
  EXPECT_EQ(j["source"], "built-in default");
  EXPECT_EQ(j["entity_key"], "order.id");
  EXPECT_EQ(j["grace_seconds"], 30.0);
  EXPECT_EQ(j["message_processed_within_seconds"], 120.0);
  EXPECT_EQ(j["revision"], 1);
  ASSERT_EQ(j["stages"].size(), 6u);
  EXPECT_EQ(j["stages"][0], (json{{"name", "SUBMITTED"},
                                  {"index", 0},
                                  {"terminal", false},
                                  {"next", "PRICE_CALCULATED"},
                                  {"within_seconds", 1800.0},
                                  {"next_by", "mes"},
                                  {"heartbeat_seconds", 300.0},
                                  {"received_by", "mes"},
                                  {"within_receipt_seconds", 120.0},
                                  {"processed_by", nullptr},
                                  {"within_processing_seconds", nullptr},
                                  {"severity", "critical"}}));
  EXPECT_EQ(j["stages"][1]["processed_by"], "crm");
  EXPECT_EQ(j["stages"][1]["within_processing_seconds"], 300.0);
  EXPECT_EQ(j["stages"][5]["terminal"], true);
  EXPECT_EQ(j["stages"][5]["within_seconds"], nullptr);
  EXPECT_EQ(j["stages"][5]["next"], nullptr);
  // Orders moving do not change the rules: still 304.
  const std::string etag(r.Header("ETag"));
  ASSERT_TRUE(
      engine_->Apply({Span("ORD-1", "00000000000000a1", kT0, kT0 + 1000, "crm", "SUBMITTED")})
          .ok());
  EXPECT_EQ(Get("/api/v1/rules", etag).status, 304);
  // A reload does.
  journey::Rules changed = journey::DefaultRules();
  changed.source = "rules.yaml";
  ASSERT_TRUE(engine_->SetRules(std::make_shared<journey::Rules>(changed)).ok());
  r = Get("/api/v1/rules", etag);
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(json::parse(r.body)["revision"], 2);
  EXPECT_EQ(json::parse(r.body)["source"], "rules.yaml");
}

// Five stuck orders at different times (two kinds), two not stuck; walks of every sort.
TEST_F(JourneyApiTest, ListSortsFiltersAndPagesWithAnOpaqueCursor) {
  for (int i = 0; i < 5; ++i) {
    const std::string id = "S" + std::to_string(i);
    // Submitted 5..1 minutes before the flag: S0 is stuck the longest.
    ASSERT_TRUE(engine_
                    ->Apply({Span(id, "00000000000000a" + std::to_string(i), kT0 + i * kMin,
                                  kT0 + i * kMin + 1000, "crm", i < 3 ? "SUBMITTED" : "APPROVED")})
                    .ok());
  }
  clock_.Advance(std::chrono::minutes(15));
  ASSERT_EQ(engine_->Tick(clock_.Now()), 5u);
  ASSERT_TRUE(engine_
                  ->Apply({Span("N1", "00000000000000b1", clock_.Now(), clock_.Now() + 1000, "crm",
                                "SUBMITTED"),
                           Span("N2", "00000000000000b2", clock_.Now(), clock_.Now() + 1000, "crm",
                                "SHIPPED")})
                  .ok());
  auto ids_of = [](const json& page) {
    std::vector<std::string> ids;
    for (const json& o : page["orders"]) ids.push_back(o["order_id"]);
    return ids;
  };
  auto walk = [&](const std::string& query) {
    std::vector<std::string> ids;
    std::string cursor;
    for (int pages = 0; pages < 20; ++pages) {
      const json page = GetJson(
          "/api/v1/orders?" + query + "&limit=2" + (cursor.empty() ? "" : "&cursor=" + cursor),
          200);
      for (const std::string& id : ids_of(page)) ids.push_back(id);
      EXPECT_TRUE(page["total"].is_number());
      if (page["next_cursor"].is_null()) break;
      cursor = page["next_cursor"].get<std::string>();
      EXPECT_EQ(cursor.find_first_not_of(
                    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
                std::string::npos)
          << cursor;
    }
    return ids;
  };
  using Ids = std::vector<std::string>;
  EXPECT_EQ(walk("sort=stuck_since"), (Ids{"S0", "S1", "S2", "S3", "S4"}));
  EXPECT_EQ(walk("sort=-stuck_since"), (Ids{"S4", "S3", "S2", "S1", "S0"}));
  EXPECT_EQ(walk("sort=stuck_since&stage=SUBMITTED"), (Ids{"S0", "S1", "S2"}));
  EXPECT_EQ(walk("sort=stuck_since&stage=SUBMITTED&stage=APPROVED"),
            (Ids{"S0", "S1", "S2", "S3", "S4"}));
  EXPECT_EQ(walk("sort=stage_since"), (Ids{"S0", "S1", "S2", "S3", "S4", "N1", "N2"}));
  EXPECT_EQ(walk("sort=-stage_since&stuck=true"), (Ids{"S4", "S3", "S2", "S1", "S0"}));
  EXPECT_EQ(walk("sort=order_id"), (Ids{"N1", "N2", "S0", "S1", "S2", "S3", "S4"}));
  EXPECT_EQ(walk("stuck=true"), (Ids{"S0", "S1", "S2", "S3", "S4"}));
  // The total counts every page.
  json page = GetJson("/api/v1/orders?sort=stuck_since&limit=2", 200);
  EXPECT_EQ(page["total"], 5);
  EXPECT_EQ(page["orders"].size(), 2u);
  // Kinds: SUBMITTED orders miss mes' receipt, APPROVED ones too (received by mes in 10m).
  EXPECT_EQ(ids_of(GetJson("/api/v1/orders?kind=not_received&kind=silent", 200)).size(), 5u);
  EXPECT_TRUE(ids_of(GetJson("/api/v1/orders?kind=silent", 200)).empty());
  EXPECT_EQ(GetJson("/api/v1/orders?kind=silent", 200)["total"], 0);
  // Services: any of them; with a stage, both must hold.
  EXPECT_EQ(ids_of(GetJson("/api/v1/orders?service=mes&service=nobody&stage=APPROVED", 200)),
            (Ids{"S3", "S4"}));
  // A trace: every order's span is in the same one here; another trace has none.
  EXPECT_EQ(GetJson("/api/v1/orders?trace_id=0AF7651916CD43DD8448EB211C80319C", 200)["total"], 7);
  EXPECT_EQ(GetJson("/api/v1/orders?trace_id=0af7651916cd43dd8448eb211c80319d", 200)["total"], 0);

  // A cursor belongs to its sort; anything else is 400.
  const std::string cursor = page["next_cursor"].get<std::string>();
  EXPECT_EQ(GetJson("/api/v1/orders?sort=-stuck_since&cursor=" + cursor, 400)["error"],
            "cursor: made for sort=stuck_since, not sort=-stuck_since (start again without a "
            "cursor)");
  EXPECT_EQ(GetJson("/api/v1/orders?cursor=" + cursor, 400)["error"],
            "cursor: made for sort=stuck_since, not sort=order_id (start again without a cursor)");
  for (const std::string bad : {"S1", "!!", "c3R1Y2tfc2luY2UKeAo", "c3R1Y2tfc2luY2U"}) {
    EXPECT_EQ(GetJson("/api/v1/orders?sort=stuck_since&cursor=" + bad, 400)["error"],
              "cursor: not a cursor of this list (give next_cursor as it came)")
        << bad;
  }
}

TEST_F(JourneyApiTest, ListErrorsNameTheKnownValues) {
  EXPECT_EQ(GetJson("/api/v1/orders?sort=oldest", 400)["error"],
            "sort: unknown sort 'oldest' (known: order_id, stuck_since, -stuck_since, "
            "stage_since, -stage_since)");
  EXPECT_EQ(GetJson("/api/v1/orders?kind=late", 400)["error"],
            "kind: unknown kind 'late' (known: next_overdue, not_received, not_processed, "
            "silent, message_unprocessed)");
  EXPECT_EQ(GetJson("/api/v1/orders?trace_id=abc", 400)["error"],
            "trace_id: expected 32 hex digits (not all zero), got 'abc'");
  EXPECT_EQ(GetJson("/api/v1/orders?message_id=", 400)["error"],
            "message_id: expected a message id, got nothing");
  EXPECT_EQ(GetJson("/api/v1/orders?queue=", 400)["error"], "queue: expected a name, got nothing");
  EXPECT_EQ(GetJson("/api/v1/orders?sort=stuck_since&stuck=false", 400)["error"],
            "sort=stuck_since lists stuck orders only; not with stuck=false");
  EXPECT_EQ(GetJson("/api/v1/orders?kind=silent&stuck=false", 400)["error"],
            "kind: only stuck orders have one; not with stuck=false");
  EXPECT_EQ(GetJson("/api/v1/orders?queue=" + std::string(300, 'q'), 400)["error"],
            "queue: longer than 256 bytes");
  std::string many;
  for (int i = 0; i < 33; ++i) many += "&service=s" + std::to_string(i);
  EXPECT_EQ(GetJson("/api/v1/orders?x=1" + many, 400)["error"].get<std::string>().substr(0, 25),
            "unknown query parameter '");
  EXPECT_EQ(GetJson("/api/v1/orders?" + many.substr(1), 400)["error"],
            "service: at most 32 values in one query");
  EXPECT_EQ(GetJson("/api/v1/orders?colour=red", 400)["error"],
            "unknown query parameter 'colour' (known: stuck, stage, service, kind, queue, "
            "trace_id, message_id, partner, sort, limit, cursor, closed)");
}

// Each entry's oldest open hop with the broker's sentence, and its deadline; a message id and a
// queue find their orders; a broker poll that changes what it says changes the ETag.
TEST_F(JourneyApiTest, ListEntriesCarryTheirOpenHopAndDeadline) {
  auto ids = [](const json& page) {
    std::vector<std::string> out;
    for (const json& o : page["orders"]) out.push_back(o["order_id"]);
    return out;
  };
  FakeBroker broker;
  JourneyApiOptions api = Options();
  api.broker = &broker;
  Serve(api);
  journey::SpanRecord publish =
      Span("ORD-H", "00000000000000e1", kT0, kT0 + 1000, "crm", "SUBMITTED");
  publish.hop = journey::HopRole::kSend;
  publish.message_id = "msg-1";
  publish.exchange = "orders";
  publish.routing_key = "order.submitted";
  publish.queue = "mes.orders";
  ASSERT_TRUE(engine_->Apply({publish}).ok());
  ASSERT_TRUE(
      engine_->Apply({Span("ORD-J", "00000000000000f1", kT0, kT0 + 1000, "crm", "SUBMITTED")})
          .ok());
  net::HttpReply r = Get("/api/v1/orders");
  ASSERT_EQ(r.status, 200) << r.body;
  const std::string etag(r.Header("ETag"));
  json j = json::parse(r.body);
  ASSERT_EQ(j["orders"].size(), 2u);
  EXPECT_EQ(j["total"], 2);
  const json& h = j["orders"][0];
  EXPECT_EQ(h["order_id"], "ORD-H");
  EXPECT_EQ(h["open_hop"], (json{{"message_id", "msg-1"},
                                 {"exchange", "orders"},
                                 {"routing_key", "order.submitted"},
                                 {"queue", "mes.orders"},
                                 {"published", Rfc3339(kT0 + 1000)},
                                 {"broker", "queue for order.submitted: 3 ready, 0 consumers"}}));
  // The earliest of its deadlines: mes' receipt within 2m, plus the grace.
  EXPECT_EQ(h["deadline"], Rfc3339(kT0 + 1000 + 2 * kMin + 30'000'000'000));
  EXPECT_TRUE(j["orders"][1]["open_hop"].is_null());
  EXPECT_EQ(ids(GetJson("/api/v1/orders?message_id=msg-1", 200)),
            std::vector<std::string>{"ORD-H"});
  EXPECT_EQ(GetJson("/api/v1/orders?message_id=msg-2", 200)["total"], 0);
  EXPECT_EQ(ids(GetJson("/api/v1/orders?queue=mes.orders&queue=other", 200)),
            std::vector<std::string>{"ORD-H"});
  EXPECT_EQ(GetJson("/api/v1/orders?queue=other", 200)["total"], 0);

  EXPECT_EQ(Get("/api/v1/orders", etag).status, 304);
  EXPECT_EQ(Get("/api/v1/orders/ORD-H", "").status, 200);
  const std::string order_etag(Get("/api/v1/orders/ORD-H").Header("ETag"));
  EXPECT_NE(order_etag, etag);  // another target, another tag
  EXPECT_EQ(Get("/api/v1/orders/ORD-H", order_etag).status, 304);
  EXPECT_EQ(Get("/api/v1/orders/ORD-J", order_etag).status, 200);
  broker.generation_ = 2;  // the broker says something else now
  EXPECT_EQ(Get("/api/v1/orders", etag).status, 200);
  EXPECT_EQ(Get("/api/v1/orders/ORD-H", order_etag).status, 200);
  // The order's own change too.
  const std::string etag2(Get("/api/v1/orders/ORD-H").Header("ETag"));
  journey::SpanRecord process = publish;
  process.span_id = "00000000000000e2";
  process.hop = journey::HopRole::kProcess;
  process.order_id.clear();
  process.stage.clear();
  process.service = "mes";
  process.links = {publish.span_id};
  ASSERT_TRUE(engine_->Apply({process}).ok());
  r = Get("/api/v1/orders/ORD-H", etag2);
  EXPECT_EQ(r.status, 200);
  EXPECT_TRUE(json::parse(r.body)["hops"][0]["open"] == false) << r.body;
  EXPECT_TRUE(GetJson("/api/v1/orders", 200)["orders"][0]["open_hop"].is_null());
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
  // Jaeger's answer is not in the engine's revision: not conditional, not kept.
  auto reply = net::HttpGet(server_->port(), "/api/v1/orders/ORD-3?include=jaeger");
  ASSERT_TRUE(reply.ok());
  EXPECT_TRUE(reply.value().Header("ETag").empty());
  EXPECT_EQ(reply.value().Header("Cache-Control"), "no-store");
  EXPECT_EQ(calls, 3);
  GetJson("/api/v1/orders/NOPE?include=jaeger", 404);
  EXPECT_EQ(calls, 3);
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

// With the SQLite store a flag is appended to the verdict log and indexed later.  A list that may
// not wait for that says how many entries it did not see, shows its rows as they are now, and is
// not cached; one that may wait (the default second) folds them and is exact.
TEST_F(JourneyApiTest, ListSaysWhatTheStoreHasNotIndexedYet) {
  journey::testing_stores::TempSqliteDir dir;
  server_.reset();
  engine_.reset();
  store_ = dir.Open();
  ASSERT_NE(store_, nullptr);
  engine_ = std::make_unique<journey::Engine>(
      std::make_shared<journey::Rules>(journey::DefaultRules()), *store_, clock_, nullptr);
  ASSERT_TRUE(engine_
                  ->Apply({Span("ORD-A", "00000000000000a1", kT0, kT0 + 1000, "crm", "SUBMITTED"),
                           Span("ORD-B", "00000000000000b1", kT0, kT0 + 1000, "crm", "CLOSED")})
                  .ok());
  clock_.Advance(std::chrono::minutes(3));
  ASSERT_EQ(engine_->Tick(clock_.Now()), 1u);  // ORD-A: its verdict and episode in the log

  JourneyApiOptions no_wait = Options();
  no_wait.list_settle_wait = Duration(0);
  Serve(no_wait);
  net::HttpReply r = Get("/api/v1/orders?stuck=true");
  ASSERT_EQ(r.status, 200) << r.body;
  json j = json::parse(r.body);
  EXPECT_EQ(j["unsettled"], 2);
  EXPECT_EQ(j["orders"].size(), 0u);  // the stuck filter has not seen ORD-A's flag yet
  EXPECT_TRUE(r.Header("ETag").empty());
  EXPECT_EQ(r.Header("Cache-Control"), "no-store");
  r = Get("/api/v1/orders");
  ASSERT_EQ(r.status, 200) << r.body;
  j = json::parse(r.body);
  EXPECT_EQ(j["unsettled"], 2);
  ASSERT_EQ(j["orders"].size(), 2u);
  EXPECT_EQ(j["orders"][0]["order_id"], "ORD-A");
  EXPECT_EQ(j["orders"][0]["stuck"], true);  // the row as it is now
  EXPECT_EQ(j["orders"][0]["stuck_kind"], "not_received");
  EXPECT_EQ(j["orders"][1]["stuck"], false);

  Serve(Options());
  r = Get("/api/v1/orders?stuck=true");
  ASSERT_EQ(r.status, 200) << r.body;
  j = json::parse(r.body);
  EXPECT_EQ(j["unsettled"], 0);
  ASSERT_EQ(j["orders"].size(), 1u);
  EXPECT_EQ(j["orders"][0]["order_id"], "ORD-A");
  EXPECT_EQ(j["total"], 1);
  EXPECT_FALSE(r.Header("ETag").empty());
  EXPECT_EQ(r.Header("Cache-Control"), "no-cache");

  server_.reset();
  engine_.reset();
  store_.reset();
}

}  // namespace
}  // namespace ordertrace::api
