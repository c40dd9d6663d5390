// Random arrival orders of the same spans give identical journeys (issue 13's done-criterion
// for attribution).  One scenario's spans, most without order.id: a producer chain attributed
// through parents, a consumer trace started with a link (RabbitMQ.Client 7's deliver), the
// MES's own spans under it (one mapped to a stage, one a heartbeat), the CRM's consume span of
// the MES's publish, a span attributed by the trace rule, and a second order whose message is
// never consumed.  Each permutation shuffles the spans with a fixed seed, cuts them into random
// batches (each one OTLP request through the real decoder), and feeds them to a JourneyStage
// 100 ms apart, all within the attribution wait; then the waits end and the detector runs.
// The journeys (order rows, milestones, hops, the spans with their order ids), the engine's
// counters and the orders flagged must equal those of in-order arrival, on the memory store.
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "common/metrics.h"
#include "journey/attribution/attributor.h"
#include "journey/engine.h"
#include "journey/journey_stage.h"
#include "journey/rules/rules.h"
#include "journey/store/memory/memory_store.h"
#include "otlp/decoder.h"
#include "support/otlp_requests.h"

namespace ordertrace::journey {
namespace {

using opentelemetry::proto::trace::v1::Span_SpanKind;
using testing_support::RequestBuilder;
using testing_support::SpanBuilder;

constexpr Nanos kMs = 1'000'000;
constexpr Nanos kSecond = 1000 * kMs;
constexpr Nanos kStart = 1'767'600'000LL * kSecond;  // 2026-01-05T08:00:00Z
constexpr int kPermutations = 200;

constexpr char kRules[] = R"(
entity: {key: order.id}
stages: [SUBMITTED, PRICE_CALCULATED, APPROVED, CLOSED]
expect:
  SUBMITTED:        {next: PRICE_CALCULATED, within: 30m, heartbeat: 5m, received_by: mes, within_receipt: 2m}
  PRICE_CALCULATED: {processed_by: crm, within_processing: 5m, next: APPROVED, within: 24h}
  APPROVED:         {next: CLOSED, within: 4h, received_by: mes, within_receipt: 10m}
messages: {processed_within: 2m}
grace: 30s
mappings:
  - {service: mes, span: "publish price.calculated", stage: PRICE_CALCULATED}
  - {service: mes, span: "calculating *", heartbeat: true}
)";

// Deterministic ids from names.
std::string Id(const std::string& name, size_t bytes) {
  std::string out(bytes, '\0');
  uint64_t h = 1469598103934665603ULL;
  for (size_t i = 0; i < bytes; ++i) {
    for (unsigned char c : name) {
      h ^= c + i;
      h *= 1099511628211ULL;
    }
    out[i] = static_cast<char>(h >> 24);
  }
  return out;
}
std::string TraceId(const std::string& name) { return Id("trace:" + name, 16); }
std::string SpanId(const std::string& name) { return Id("span:" + name, 8); }

struct ScenarioSpan {
  std::string service;
  SpanBuilder span;
};

SpanBuilder Make(const std::string& trace, const std::string& id, const std::string& parent,
                 const std::string& name, Span_SpanKind kind, Nanos start_ms, Nanos end_ms) {
  SpanBuilder s(name);
  s.Ids(TraceId(trace), SpanId(id), parent.empty() ? "" : SpanId(parent));
  s.Kind(kind);
  s.Times(static_cast<uint64_t>(kStart + start_ms * kMs),
          static_cast<uint64_t>(kStart + end_ms * kMs));
  return s;
}

// The scenario, in the order the spans were produced (in-order arrival).
std::vector<ScenarioSpan> Scenario() {
  using K = opentelemetry::proto::trace::v1::Span;
  std::vector<ScenarioSpan> v;
  // A1's producer chain: the order span, an HTTP client span, amqplib's publish (no
  // messaging.operation, older attribute names).
  v.push_back({"crm", Make("A", "a-submit", "", "POST /orders", K::SPAN_KIND_SERVER, 0, 1000)
                          .Attr("order.id", "A1")
                          .Attr("order.stage", "SUBMITTED")
                          .Attr("partner.id", "pse:k1:partner-a-earliest")});
  // partner.id on a later span (attributed, no order.id): the earliest span's partner stays the
  // order's, though this one sorts first.
  v.push_back({"crm", Make("A", "a-http", "a-submit", "POST", K::SPAN_KIND_CLIENT, 200, 900)
                          .Attr("http.request.method", "POST")
                          .Attr("partner.id", "pse:k1:a-partner-later")});
  v.push_back(
      {"intake", Make("A", "a-pub", "a-http", "publish orders", K::SPAN_KIND_PRODUCER, 500, 510)
                     .Attr("messaging.system", "rabbitmq")
                     .Attr("messaging.destination", "orders")
                     .Attr("messaging.rabbitmq.routing_key", "order.submitted")});
  // A root span of A1's trace without order.id: the trace rule.
  v.push_back(
      {"audit", Make("A", "a-audit", "", "audit submission", K::SPAN_KIND_INTERNAL, 600, 700)});
  // The MES (RabbitMQ.Client 7.1): deliver in a new trace linked to the publish, its own work
  // and publish as children.
  SpanBuilder deliver =
      Make("M", "m-deliver", "", "deliver order.submitted", K::SPAN_KIND_CONSUMER, 5000, 9000);
  deliver.Link(TraceId("A"), SpanId("a-pub"))
      .Attr("messaging.system", "rabbitmq")
      .Attr("messaging.operation.type", "process")
      .Attr("messaging.operation.name", "deliver")
      .Attr("messaging.destination.name", "orders")
      .Attr("messaging.rabbitmq.destination.routing_key", "order.submitted")
      .Attr("messaging.rabbitmq.delivery_tag", 1);
  v.push_back({"mes", deliver});
  v.push_back({"mes", Make("M", "m-calc", "m-deliver", "calculating price", K::SPAN_KIND_INTERNAL,
                           6000, 8000)});
  v.push_back({"mes", Make("M", "m-price", "m-deliver", "publish price.calculated",
                           K::SPAN_KIND_PRODUCER, 8500, 8510)
                          .Attr("messaging.system", "rabbitmq")
                          .Attr("messaging.operation.type", "send")
                          .Attr("messaging.operation.name", "publish")
                          .Attr("messaging.destination.name", "orders")
                          .Attr("messaging.rabbitmq.destination.routing_key", "price.calculated")});
  // The CRM's consumer of the price, a child of the MES's publish.
  v.push_back({"crm", Make("M", "c-proc", "m-price", "process price.calculated",
                           K::SPAN_KIND_CONSUMER, 12000, 12500)
                          .Attr("messaging.system", "rabbitmq")
                          .Attr("messaging.operation.type", "process")
                          .Attr("messaging.destination.name", "orders")
                          .Attr("messaging.rabbitmq.destination.routing_key", "price.calculated")
                          .Attr("messaging.destination.subscription.name", "crm.prices")});
  // B1: approved, its message published by instrumentation and never consumed.
  v.push_back({"crm", Make("B", "b-approve", "", "approve order", K::SPAN_KIND_SERVER, 0, 1000)
                          .Attr("order.id", "B1")
                          .Attr("order.stage", "APPROVED")});
  v.push_back(
      {"crm", Make("B", "b-pub", "b-approve", "publish orders", K::SPAN_KIND_PRODUCER, 500, 510)
                  .Attr("partner.id", "pse:k1:partner-b")
                  .Attr("messaging.system", "rabbitmq")
                  .Attr("messaging.destination", "orders")
                  .Attr("messaging.rabbitmq.routing_key", "order.approved")});
  return v;
}

class FlagRecorder : public EngineListener {
 public:
  void OnStuck(const OrderRow& row) override {
    std::lock_guard lock(mu_);
    flagged.push_back(row.order_id);
  }
  void OnCleared(const OrderRow& row) override {
    std::lock_guard lock(mu_);
    cleared.push_back(row.order_id);
  }
  std::mutex mu_;
  std::vector<std::string> flagged, cleared;
};

// What must not depend on the arrival order, as text (a failure shows the difference).
std::string Describe(const Journey& j) {
  std::ostringstream o;
  const OrderRow& r = j.order;
  o << "order " << r.order_id << ": stage=" << r.stage << " stage_ns=" << r.stage_ns
    << " stage_start_ns=" << r.stage_start_ns << " first=" << r.first_ns << " last=" << r.last_ns
    << " heartbeat=" << r.last_heartbeat_ns << " last_service=" << r.last_service
    << " spans=" << r.spans << " open_hops=" << r.open_hops << " closed=" << r.closed
    << " stuck=" << StuckKindName(r.stuck) << " since=" << r.stuck_since_ns
    << " deadline=" << r.deadline_ns << " expected=" << r.expected_service
    << " summary=" << r.summary << " partner=" << r.partner << "@" << r.partner_ns
    << " stored_spans=" << j.spans.size() << "\n  services:";
  for (const auto& [service, at] : r.services) o << " " << service << "@" << at;
  o << "\n";
  for (const Milestone& m : j.milestones) {
    o << "  milestone " << m.stage << "@" << m.at_ns << " " << m.service << " " << m.span_id
      << "\n";
  }
  for (const Hop& h : j.hops) {
    o << "  hop " << h.send_span_id << " " << h.send_service << " " << h.message_id << " "
      << h.exchange << "/" << h.routing_key << "/" << h.queue << " published=" << h.published_ns
      << " processed=" << h.processed_ns << " by " << h.process_service << " " << h.process_span_id
      << "\n";
  }
  std::vector<std::string> spans;
  for (const SpanRecord& s : j.spans) {
    std::ostringstream so;
    so << "  span " << s.span_id << " order=" << s.order_id << " " << s.service << " '" << s.name
       << "' parent=" << s.parent_span_id << " stage=" << s.stage << " heartbeat=" << s.heartbeat
       << " hop=" << HopRoleName(s.hop) << " " << s.exchange << "/" << s.routing_key << "/"
       << s.queue << " links=" << s.links.size() << "\n";
    spans.push_back(so.str());
  }
  std::sort(spans.begin(), spans.end());  // the store orders by start time; ties are free
  for (const std::string& s : spans) o << s;
  return o.str();
}

struct Outcome {
  std::string after_waits;  // the journeys once every wait has ended
  std::string after_ticks;  // and after the detector ran past B1's deadline
};

// One run: `batches` are indexes into Scenario(), in arrival order.
Outcome Arrive(const std::vector<std::vector<size_t>>& batches) {
  auto parsed = ParseRules(kRules, "arrival_order_test rules");
  EXPECT_TRUE(parsed.ok()) << parsed.status().ToString();
  if (!parsed.ok()) return {};
  auto rules = std::make_shared<const Rules>(std::move(parsed).value());
  ManualClock clock;
  clock.Set(kStart + 13 * kSecond);  // every span has ended
  std::unique_ptr<JourneyStore> store = NewMemoryStore();
  Engine engine(rules, *store, clock, nullptr);
  FlagRecorder recorder;
  engine.AddListener(&recorder);
  EXPECT_TRUE(engine.Recover().ok());
  metrics::Registry registry;
  AttributionOptions options;
  options.wait = std::chrono::seconds(10);
  JourneyStage stage(engine, registry, options);

  const std::vector<ScenarioSpan> spans = Scenario();
  for (const std::vector<size_t>& batch : batches) {
    // One resource per service, in the order the services first appear in the batch.
    std::vector<std::pair<std::string, std::vector<const SpanBuilder*>>> by_service;
    for (size_t i : batch) {
      auto it = std::find_if(by_service.begin(), by_service.end(),
                             [&](const auto& e) { return e.first == spans[i].service; });
      if (it == by_service.end()) it = by_service.insert(by_service.end(), {spans[i].service, {}});
      it->second.push_back(&spans[i].span);
    }
    RequestBuilder req;
    for (const auto& [service, service_spans] : by_service) {
      req.Resource(service).Scope("arrival-order-test");
      for (const SpanBuilder* s : service_spans) req.Add(*s);
    }
    auto decoded = otlp::DecodeExportRequest(req.Serialized(), otlp::Protocol::kHttpProtobuf, {});
    EXPECT_TRUE(decoded.ok()) << decoded.status().ToString();
    if (!decoded.ok()) return {};
    stage.Process(decoded.value());
    stage.ExpireWaits(clock.Now());
    engine.Tick(clock.Now());
    clock.Set(clock.Now() + 100 * kMs);
  }

  auto snapshot = [&] {
    std::string out;
    for (const char* id : {"A1", "B1"}) {
      auto j = store->GetJourney(id);
      EXPECT_TRUE(j.ok()) << j.status().ToString();
      if (!j.ok()) return out;
      out += j.value() ? Describe(*j.value()) : std::string("order ") + id + ": unknown\n";
    }
    out += "engine: active=" + std::to_string(engine.active_orders()) +
           " open_hops=" + std::to_string(engine.open_hops()) +
           " stuck=" + std::to_string(engine.stuck_orders()) +
           " next_deadline=" + std::to_string(engine.NextDeadline()) + "\n";
    std::vector<std::string> flagged = recorder.flagged, cleared = recorder.cleared;
    std::sort(flagged.begin(), flagged.end());
    std::sort(cleared.begin(), cleared.end());
    out += "flagged:";
    for (const auto& f : flagged) out += " " + f;
    out += "\ncleared:";
    for (const auto& c : cleared) out += " " + c;
    return out + "\n";
  };

  Outcome outcome;
  // Every wait is over 10 s after the last batch; the deadlines are minutes away.
  clock.Set(kStart + 30 * kSecond);
  stage.ExpireWaits(clock.Now());
  engine.Tick(clock.Now());
  outcome.after_waits = snapshot();
  clock.Set(kStart + 10 * 60 * kSecond);
  stage.ExpireWaits(clock.Now());
  engine.Tick(clock.Now());
  outcome.after_ticks = snapshot();
  EXPECT_EQ(stage.attributor()->stats().pending_spans, 0u) << "spans still waiting";
  return outcome;
}

TEST(ArrivalOrderTest, InOrderArrivalAttributesTheWholeScenario) {
  // The baseline the permutations are compared with: one batch, in order.  It must be right
  // itself, or identical outcomes would prove nothing.
  std::vector<size_t> all(Scenario().size());
  for (size_t i = 0; i < all.size(); ++i) all[i] = i;
  const Outcome in_order = Arrive({all});
  const std::string& s = in_order.after_waits;
  EXPECT_NE(s.find("order A1: stage=PRICE_CALCULATED"), std::string::npos) << s;
  const std::string a1 = s.substr(0, s.find('\n'));
  EXPECT_NE(a1.find(" open_hops=0 "), std::string::npos) << a1;  // A1: both hops closed
  EXPECT_NE(a1.find(" stuck= "), std::string::npos) << a1;
  EXPECT_NE(s.find("stored_spans=8\n"), std::string::npos) << s;  // A1: every span
  EXPECT_NE(a1.find(" partner=pse:k1:partner-a-earliest@" + std::to_string(kStart) + " "),
            std::string::npos)
      << a1;
  EXPECT_NE(s.find("order B1: stage=APPROVED"), std::string::npos) << s;
  EXPECT_NE(s.find(" partner=pse:k1:partner-b@" + std::to_string(kStart + 500 * kMs) + " "),
            std::string::npos)
      << "B1's partner from its attributed publish span:\n"
      << s;
  EXPECT_NE(s.find("stored_spans=2\n"), std::string::npos) << s;  // B1: its own two
  EXPECT_EQ(s.find("order=B1 mes"), std::string::npos) << "an MES span given to B1:\n" << s;
  EXPECT_NE(s.find("'audit submission'"), std::string::npos) << "trace rule:\n" << s;
  EXPECT_NE(s.find("milestone PRICE_CALCULATED@" + std::to_string(kStart + 8510 * kMs) + " mes"),
            std::string::npos)
      << s;
  EXPECT_NE(s.find("processed=" + std::to_string(kStart + 5000 * kMs) + " by mes"),
            std::string::npos)
      << "A1's message processed by the MES's deliver:\n"
      << s;
  EXPECT_NE(s.find("processed=" + std::to_string(kStart + 12000 * kMs) + " by crm"),
            std::string::npos)
      << "the MES's price processed by the CRM:\n"
      << s;
  EXPECT_NE(s.find("flagged:\n"), std::string::npos) << s;
  EXPECT_NE(in_order.after_ticks.find("flagged: B1\n"), std::string::npos) << in_order.after_ticks;
  // The rows written when B1 was flagged carry no partner: the stored one stays.
  EXPECT_NE(in_order.after_ticks.find(" partner=pse:k1:partner-b@"), std::string::npos)
      << in_order.after_ticks;
}

TEST(ArrivalOrderTest, RandomArrivalOrdersGiveTheInOrderJourneys) {
  const size_t n = Scenario().size();
  std::vector<size_t> all(n);
  for (size_t i = 0; i < n; ++i) all[i] = i;
  const Outcome expected = Arrive({all});
  ASSERT_FALSE(expected.after_waits.empty());

  for (int seed = 1; seed <= kPermutations; ++seed) {
    std::mt19937 rng(static_cast<uint32_t>(seed));
    std::vector<size_t> order = all;
    std::shuffle(order.begin(), order.end(), rng);
    // Random cuts: 1 to n batches.
    std::vector<std::vector<size_t>> batches(1);
    std::bernoulli_distribution cut(0.4);
    for (size_t i = 0; i < n; ++i) {
      if (i > 0 && cut(rng)) batches.emplace_back();
      batches.back().push_back(order[i]);
    }
    std::string arrival;
    for (const auto& b : batches) {
      arrival += "[";
      for (size_t i : b) arrival += std::to_string(i) + (i == b.back() ? "" : " ");
      arrival += "] ";
    }
    SCOPED_TRACE("seed " + std::to_string(seed) + ", batches " + arrival);
    const Outcome got = Arrive(batches);
    EXPECT_EQ(got.after_waits, expected.after_waits);
    EXPECT_EQ(got.after_ticks, expected.after_ticks);
    if (HasFailure()) break;  // one permutation's difference is enough to read
  }
}

}  // namespace
}  // namespace ordertrace::journey
