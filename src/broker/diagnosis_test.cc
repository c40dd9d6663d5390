// The broker's part of an order's diagnosis: per open hop, the queue's state (or why there is
// none), and the attribution of a stage's delay to a broker outage.
#include "journey/diagnosis.h"

#include <gtest/gtest.h>

#include "api/journey_api.h"
#include "broker/monitor.h"
#include "common/text_format.h"
#include "journey/rules/rules.h"

namespace ordertrace::broker {
namespace {

using journey::BrokerView;

constexpr Nanos kSec = 1'000'000'000;
constexpr Nanos kT0 = 1795701731 * kSec;  // 2026-11-26T14:02:11Z

// An order stuck in PRICE_CALCULATED (the CRM did not process it), with one open hop.
journey::Journey StuckOrder(Nanos stage_ns, Nanos now) {
  journey::Journey j;
  journey::OrderRow& r = j.order;
  r.order_id = "ORD-1";
  r.stage = "PRICE_CALCULATED";
  r.stage_start_ns = stage_ns - kSec;
  r.stage_ns = stage_ns;
  r.first_ns = stage_ns - 3600 * kSec;
  r.last_ns = stage_ns;
  r.stuck = journey::StuckKind::kNotProcessed;
  r.stuck_since_ns = now - kSec;
  r.expected_service = "crm";
  journey::Hop h;
  h.order_id = "ORD-1";
  h.send_span_id = "00000000000000a1";
  h.send_service = "mes";
  h.message_id = "m-1";
  h.exchange = "orders";
  h.routing_key = "price.calculated";
  h.published_ns = stage_ns;
  j.hops.push_back(h);
  return j;
}

class FakeView : public BrokerView {
 public:
  std::string DescribeHop(const journey::Hop& hop, Nanos) const override {
    return "queue for " + hop.routing_key;
  }
  std::vector<Outage> OutagesSince(Nanos from) const override {
    std::vector<Outage> out;
    for (const auto& o : outages) {
      if (o.end_ns == 0 || o.end_ns >= from) out.push_back(o);
    }
    return out;
  }
  std::vector<Outage> outages;
};

TEST(BrokerDiagnosisTest, Helpers) {
  EXPECT_EQ(WithThousands(0), "0");
  EXPECT_EQ(WithThousands(999), "999");
  EXPECT_EQ(WithThousands(1204), "1,204");
  EXPECT_EQ(WithThousands(1234567), "1,234,567");
  EXPECT_EQ(ClockTime(kT0, kT0 + 60 * kSec), "14:02:11Z");
  // Across midnight the date is kept.
  EXPECT_EQ(ClockTime(kT0, kT0 + 12 * 3600 * kSec), "2026-11-26T14:02:11Z");
}

TEST(BrokerDiagnosisTest, AttributionSentences) {
  using O = BrokerView::Outage;
  const Nanos now = kT0 + 300 * kSec;
  EXPECT_EQ(journey::BrokerAttribution({}, now), "");
  EXPECT_EQ(journey::BrokerAttribution({O{kT0, kT0 + 29 * kSec, "connection refused"}}, now),
            "RabbitMQ was unreachable 14:02:11Z\u201314:02:40Z (29s) during this stage");
  EXPECT_EQ(journey::BrokerAttribution({O{kT0, 0, "connection refused"}}, kT0 + 125 * kSec),
            "RabbitMQ has been unreachable since 14:02:11Z (2m 5s, connection refused), during "
            "this stage");
  EXPECT_EQ(journey::BrokerAttribution(
                {O{kT0, kT0 + 10 * kSec, "a"}, O{kT0 + 60 * kSec, kT0 + 70 * kSec, "b"},
                 O{kT0 + 100 * kSec, 0, "c"}},
                kT0 + 130 * kSec),
            "RabbitMQ has been unreachable since 14:03:51Z (30s, c), during this stage (+2 more "
            "outages)");
}

TEST(BrokerDiagnosisTest, WithoutABrokerNothingChanges) {
  const Nanos now = kT0 + 600 * kSec;
  const auto rules = journey::DefaultRules();
  auto plain = journey::Diagnose(StuckOrder(kT0, now), rules, now, "http://j");
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->broker, "");
  ASSERT_EQ(plain->open_hop_broker.size(), 1u);
  EXPECT_EQ(plain->open_hop_broker[0], "");
  EXPECT_EQ(plain->summary.find("queue"), std::string::npos);
}

TEST(BrokerDiagnosisTest, OutagesOfThisStageOnly) {
  const Nanos stage = kT0 + 100 * kSec;  // the order entered the stage at 14:03:51Z
  const Nanos now = stage + 600 * kSec;
  const auto rules = journey::DefaultRules();
  FakeView view;
  // Ended before the stage began: not this stage's problem.
  view.outages = {{kT0, kT0 + 50 * kSec, "connection refused"}};
  auto d = journey::Diagnose(StuckOrder(stage, now), rules, now, "http://j", &view);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->broker, "");
  EXPECT_EQ(d->open_hop_broker[0], "queue for price.calculated");
  // Began before the stage and ended inside it.
  view.outages = {{kT0, stage + 29 * kSec, "connection refused"}};
  d = journey::Diagnose(StuckOrder(stage, now), rules, now, "http://j", &view);
  EXPECT_EQ(d->broker,
            "RabbitMQ was unreachable 14:02:11Z\u201314:04:20Z (2m 9s) during this "
            "stage");
  // The summary carries the hop's queue state and the attribution, so alerts do.
  EXPECT_NE(d->summary.find("never processed; queue for price.calculated; RabbitMQ was "
                            "unreachable 14:02:11Z"),
            std::string::npos)
      << d->summary;
}

TEST(BrokerDiagnosisTest, RealMonitorInTheDiagnosis) {
  const Nanos stage = kT0;
  const Nanos now = stage + 600 * kSec;
  ordertrace::ManualClock clock(now);
  MonitorOptions o;
  o.management.url = "http://127.0.0.1:15672";
  BrokerMonitor m(o, clock, nullptr);
  Snapshot s;
  s.queues = {{"/", "crm.prices", 1204, 3, 0, 0, 0, 0}};
  s.exchanges = {{"/", "orders", "direct"}};
  s.bindings = {{"/", "orders", "crm.prices", "queue", "price.calculated"}};
  m.Record(s, stage + 10 * kSec);
  m.Record(Status::Unavailable("connection refused"), stage + 20 * kSec);
  m.Record(s, stage + 49 * kSec);
  const auto rules = journey::DefaultRules();
  auto d = journey::Diagnose(StuckOrder(stage, now), rules, now, "http://j", &m);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->open_hop_broker[0], "queue crm.prices: 1,204 ready, 3 unacked, 0 consumers");
  EXPECT_EQ(d->broker, "RabbitMQ was unreachable 14:02:31Z\u201314:03:00Z (29s) during this stage");
  EXPECT_NE(d->summary.find("; queue crm.prices: 1,204 ready, 3 unacked, 0 consumers"),
            std::string::npos)
      << d->summary;
  // Down now: the hop says so.
  m.Record(Status::Unavailable("connection refused"), now - 5 * kSec);
  d = journey::Diagnose(StuckOrder(stage, now), rules, now, "http://j", &m);
  EXPECT_EQ(d->open_hop_broker[0], "RabbitMQ unreachable since 14:12:06Z (connection refused)");
  EXPECT_EQ(d->broker,
            "RabbitMQ has been unreachable since 14:12:06Z (5s, connection refused), during this "
            "stage (+1 more outage)");
  // Said once in the summary.
  const std::string& summary = d->summary;
  EXPECT_EQ(summary.find("unreachable since"), summary.rfind("unreachable since")) << summary;
}

TEST(BrokerDiagnosisTest, ApiJson) {
  const Nanos now = kT0 + 600 * kSec;
  const auto rules = journey::DefaultRules();
  const journey::Journey j = StuckOrder(kT0, now);
  auto plain = journey::Diagnose(j, rules, now, "http://j");
  nlohmann::json out = api::OrderJson(j, plain, "http://j");
  EXPECT_TRUE(out["diagnosis"]["broker"].is_null());
  EXPECT_TRUE(out["diagnosis"]["open_hops"][0]["broker"].is_null());
  FakeView view;
  view.outages = {{kT0 + 10 * kSec, kT0 + 39 * kSec, "connection refused"}};
  auto with = journey::Diagnose(j, rules, now, "http://j", &view);
  out = api::OrderJson(j, with, "http://j");
  EXPECT_EQ(out["diagnosis"]["open_hops"][0]["broker"], "queue for price.calculated");
  EXPECT_EQ(out["diagnosis"]["broker"],
            "RabbitMQ was unreachable 14:02:21Z\u201314:02:50Z (29s) during this stage");
  EXPECT_EQ(out["summary"], with->summary);
}

}  // namespace
}  // namespace ordertrace::broker
