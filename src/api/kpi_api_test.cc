// GET /api/v1/kpi over a real HttpServer, on an engine with a memory store and a manual clock:
// the figures of three known journeys (on time, stuck then cleared, stuck and lost).
#include "api/kpi_api.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "common/metrics.h"
#include "journey/store/memory/memory_store.h"
#include "net/http_client.h"

namespace ordertrace::api {
namespace {

using nlohmann::json;

constexpr Nanos kT0 = 1'790'000'000'000'000'000;
constexpr Nanos kSec = 1'000'000'000;

journey::SpanRecord Span(const std::string& order, const std::string& span_id, Nanos at,
                         const std::string& service, const std::string& stage,
                         const std::string& partner = "") {
  journey::SpanRecord r;
  r.order_id = order;
  r.trace_id = "0af7651916cd43dd8448eb211c80319c";
  r.span_id = span_id;
  r.service = service;
  r.name = "step";
  r.start_ns = at;
  r.end_ns = at;
  r.stage = stage;
  r.partner = partner;
  return r;
}

class KpiApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = journey::NewMemoryStore();
    engine_ = std::make_unique<journey::Engine>(
        std::make_shared<journey::Rules>(journey::DefaultRules()), *store_, clock_, &registry_);
    server_ = std::make_unique<net::HttpServer>(net::HttpServerOptions{});
    RegisterKpiRoute(*server_, *engine_, guard_);
    ASSERT_TRUE(server_->Start().ok());
  }

  json GetJson(const std::string& target, int want_status) {
    auto r = net::HttpGet(server_->port(), target);
    EXPECT_TRUE(r.ok()) << r.status().message();
    if (!r.ok()) return json();
    EXPECT_EQ(r->status, want_status) << target << ": " << r->body;
    if (want_status == 200) {
      EXPECT_EQ(r->Header("Cache-Control"), "no-cache");
    }
    return json::parse(r->body, nullptr, /*allow_exceptions=*/false);
  }

  // A: on time (closed, never flagged).  B: mes does not pick it up (flagged at +3m, its
  // receipt was due at +2m30s), then moves on at +4m and closes.  C: flagged the same way and
  // never heard of again.  A and B share a partner.
  void Fill() {
    const std::string p1 = "pse:k1:aaaaaaaaaaaaaaaaaaaaaa", p2 = "pse:k1:bbbbbbbbbbbbbbbbbbbbbb";
    ASSERT_TRUE(engine_
                    ->Apply({Span("A", "00000000000000a1", kT0, "crm", "SUBMITTED", p1),
                             Span("B", "00000000000000b1", kT0, "crm", "SUBMITTED", p1),
                             Span("C", "00000000000000c1", kT0, "crm", "SUBMITTED", p2)})
                    .ok());
    clock_.Advance(std::chrono::seconds(60));
    ASSERT_TRUE(
        engine_
            ->Apply({Span("A", "00000000000000a2", kT0 + 60 * kSec, "mes", "PRICE_CALCULATED"),
                     Span("A", "00000000000000a3", kT0 + 60 * kSec, "crm", "CLOSED")})
            .ok());
    clock_.Advance(std::chrono::seconds(120));  // +3m
    ASSERT_EQ(engine_->Tick(clock_.Now()), 2u);
    clock_.Advance(std::chrono::seconds(60));  // +4m
    ASSERT_TRUE(
        engine_
            ->Apply({Span("B", "00000000000000b2", kT0 + 240 * kSec, "mes", "PRICE_CALCULATED"),
                     Span("B", "00000000000000b3", kT0 + 240 * kSec, "crm", "CLOSED")})
            .ok());
  }

  ordertrace::ManualClock clock_{kT0};
  metrics::Registry registry_;
  std::unique_ptr<journey::JourneyStore> store_;
  std::unique_ptr<journey::Engine> engine_;
  AllowAll auth_;
  ApiGuard guard_{auth_, nullptr};
  std::unique_ptr<net::HttpServer> server_;
};

TEST_F(KpiApiTest, FiguresOfKnownJourneys) {
  Fill();
  clock_.Advance(std::chrono::hours(13));  // C silent for more than half the 24 h window
  const json j = GetJson("/api/v1/kpi", 200);
  EXPECT_EQ(j["window_seconds"], 86400);
  EXPECT_EQ(j["lost_after_seconds"], 43200);

  const json& lag = j["detection_lag_seconds"];
  EXPECT_EQ(lag["count"], 2);
  EXPECT_NEAR(lag["p50"].get<double>(), 30, 1e-6);  // due +2m30s, flagged +3m
  EXPECT_NEAR(lag["max"].get<double>(), 30, 1e-6);
  EXPECT_EQ(lag["p99"], lag["max"]);

  const json& stuck = j["time_stuck_seconds"];
  EXPECT_EQ(stuck["episodes"], 1);  // B's, ended at +4m
  EXPECT_EQ(stuck["ongoing"], 1);   // C's
  EXPECT_NEAR(stuck["p50"].get<double>(), 90, 1e-6);
  EXPECT_NEAR(stuck["total"].get<double>(), 90 + (13 * 3600 + 240 - 150), 1e-3);

  EXPECT_EQ(j["orders"]["started"], 3);
  EXPECT_EQ(j["orders"]["closed"], 2);
  EXPECT_EQ(j["orders"]["open"], 1);
  EXPECT_EQ(j["orders"]["stuck"], 2);
  EXPECT_EQ(j["orders"]["lost"], 1);
  EXPECT_NEAR(j["orders"]["lost_share"].get<double>(), 1.0 / 3, 1e-9);
  EXPECT_NEAR(j["orders"]["closed_share"].get<double>(), 2.0 / 3, 1e-9);

  const json& by_stage = j["by_stage"];
  ASSERT_EQ(by_stage.size(), 6u) << by_stage.dump(1);  // the rules' stages; no "none"
  const json& submitted = by_stage[0];
  EXPECT_EQ(submitted["stage"], "SUBMITTED");
  EXPECT_EQ(submitted["reached"], 3);
  EXPECT_EQ(submitted["stuck"], 2);
  EXPECT_EQ(submitted["lost"], 1);
  EXPECT_NEAR(submitted["lead_time_p50_seconds"].get<double>(), 60, 1e-6);   // A
  EXPECT_NEAR(submitted["lead_time_p95_seconds"].get<double>(), 240, 1e-6);  // B
  EXPECT_EQ(by_stage[1]["stage"], "PRICE_CALCULATED");
  EXPECT_EQ(by_stage[1]["reached"], 2);
  EXPECT_NEAR(by_stage[1]["lead_time_p50_seconds"].get<double>(), 0, 1e-6);  // then CLOSED
  EXPECT_EQ(by_stage[5]["stage"], "CLOSED");
  EXPECT_EQ(by_stage[5]["lead_time_p50_seconds"], nullptr);

  ASSERT_GE(j["by_service"].size(), 1u);
  EXPECT_EQ(j["by_service"][0], (json{{"service", "mes"}, {"stuck", 2}, {"lost", 1}}));

  const json& partners = j["partners"];
  ASSERT_EQ(partners.size(), 2u);
  EXPECT_EQ(partners[0], (json{{"partner", "pse:k1:aaaaaaaaaaaaaaaaaaaaaa"},
                               {"orders", 2},
                               {"closed", 2},
                               {"on_time", 1},
                               {"on_time_share", 0.5}}));
  EXPECT_EQ(partners[1]["on_time_share"], 0.0);  // flagged, not closed: late for sure

  // The time stuck histogram observed B's episode when it ended.
  const std::string text = registry_.Serialize();
  EXPECT_NE(text.find("ordertrace_journey_time_stuck_seconds_count{kind=\"not_received\"} 1"),
            std::string::npos)
      << text;
}

// The KPIs' Prometheus side: lost orders by stage (no span for 24 h), counted by a Tick.
TEST_F(KpiApiTest, LostOrdersGauge) {
  Fill();
  clock_.Advance(std::chrono::hours(25));
  engine_->Tick(clock_.Now());
  const std::string text = registry_.Serialize();
  EXPECT_NE(text.find("ordertrace_journey_lost_orders{stage=\"SUBMITTED\"} 1"), std::string::npos)
      << text;
  EXPECT_NE(text.find("ordertrace_journey_lost_orders{stage=\"CLOSED\"} 0"), std::string::npos);
  EXPECT_EQ(text.find("pse:"), std::string::npos);  // no partner in any label
}

// An answer is reused for KpiOptions::reuse_for (30 s), per window.
TEST_F(KpiApiTest, AnswersAreReusedForHalfAMinute) {
  EXPECT_EQ(GetJson("/api/v1/kpi", 200)["orders"]["started"], 0);
  ASSERT_TRUE(
      engine_->Apply({Span("D", "00000000000000d1", clock_.Now(), "crm", "SUBMITTED")}).ok());
  clock_.Advance(std::chrono::seconds(10));
  EXPECT_EQ(GetJson("/api/v1/kpi", 200)["orders"]["started"], 0);
  EXPECT_EQ(GetJson("/api/v1/kpi?window=23h", 200)["orders"]["started"], 1);
  clock_.Advance(std::chrono::seconds(21));
  EXPECT_EQ(GetJson("/api/v1/kpi", 200)["orders"]["started"], 1);
}

TEST_F(KpiApiTest, ShorterWindowsSeeLess) {
  Fill();
  clock_.Advance(std::chrono::hours(2));
  const json j = GetJson("/api/v1/kpi?window=1h", 200);
  EXPECT_EQ(j["orders"]["started"], 0);
  EXPECT_EQ(j["orders"]["closed_share"], nullptr);
  EXPECT_EQ(j["detection_lag_seconds"]["count"], 0);
  EXPECT_EQ(j["detection_lag_seconds"]["p50"], nullptr);
  EXPECT_EQ(j["time_stuck_seconds"]["episodes"], 0);
  EXPECT_EQ(j["time_stuck_seconds"]["ongoing"], 1);  // C, still stuck
  EXPECT_NEAR(j["time_stuck_seconds"]["total"].get<double>(), 3600, 1e-6);
  EXPECT_EQ(j["partners"], json::array());
}

TEST_F(KpiApiTest, RejectsWindowsOutsideTheRange) {
  for (const char* q : {"window=30m", "window=31d", "window=day", "window=-1h", "x=1"}) {
    EXPECT_EQ(GetJson(std::string("/api/v1/kpi?") + q, 400)["status"], 400) << q;
  }
  EXPECT_NE(GetJson("/api/v1/kpi?window=31d", 400)["error"].get<std::string>().find("1h to 30d"),
            std::string::npos);
  EXPECT_EQ(GetJson("/api/v1/kpi?window=30d", 200)["window_seconds"], 30 * 86400);
}

}  // namespace
}  // namespace ordertrace::api
