#include "journey/attribution/attributor.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "journey/rules/rules.h"
#include "otlp/decoder.h"
#include "support/otlp_requests.h"

namespace ordertrace::journey {
namespace {

using opentelemetry::proto::trace::v1::Span;
using testing_support::IdFromHex;
using testing_support::RequestBuilder;
using testing_support::SpanBuilder;

constexpr Nanos kSecond = 1'000'000'000;
constexpr Nanos kT0 = 1'767'600'000 * kSecond;

std::string TraceHex(int n) {
  char buf[33];
  std::snprintf(buf, sizeof buf, "%032x", 0xa000 + n);
  return buf;
}
std::string SpanHex(int n) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016x", 0xb000 + n);
  return buf;
}

// A span of the test's scenario: ids are small numbers (trace, span, parent, links).
struct TestSpan {
  TestSpan(std::string service, std::string name, int trace = 1, int span = 0, int parent = 0,
           std::string order = {}, std::vector<std::pair<int, int>> links = {}, std::string op = {},
           std::string message_id = {})
      : service(std::move(service)),
        name(std::move(name)),
        trace(trace),
        span(span),
        parent(parent),
        order(std::move(order)),
        links(std::move(links)),
        op(std::move(op)),
        message_id(std::move(message_id)) {}
  std::string service;
  std::string name;
  int trace;
  int span;
  int parent;  // 0: root
  std::string order;
  std::vector<std::pair<int, int>> links;  // (trace, span)
  std::string op;                          // messaging.operation.type
  std::string message_id;
};

SpanBuilder Build(const TestSpan& t) {
  SpanBuilder b(t.name);
  b.Ids(IdFromHex(TraceHex(t.trace)), IdFromHex(SpanHex(t.span)),
        t.parent != 0 ? IdFromHex(SpanHex(t.parent)) : std::string());
  b.Times(kT0 + t.span * 1000, kT0 + t.span * 1000 + 500);
  if (!t.order.empty()) b.Attr("order.id", t.order);
  if (!t.op.empty()) {
    b.Attr("messaging.system", "rabbitmq");
    b.Attr("messaging.operation.type", t.op);
    b.Attr("messaging.destination.name", "orders:order.submitted");
    b.Attr("messaging.rabbitmq.destination.routing_key", "order.submitted");
    b.Kind(t.op == "process" ? Span::SPAN_KIND_CONSUMER : Span::SPAN_KIND_PRODUCER);
  }
  if (!t.message_id.empty()) b.Attr("messaging.message.id", t.message_id);
  for (auto [trace, span] : t.links) b.Link(IdFromHex(TraceHex(trace)), IdFromHex(SpanHex(span)));
  return b;
}

std::shared_ptr<const otlp::SpanBatch> Batch(const std::vector<TestSpan>& spans) {
  RequestBuilder r;
  for (const TestSpan& s : spans) {
    r.Resource(s.service);
    r.Add(Build(s));
  }
  auto batch =
      otlp::DecodeExportRequest(r.Serialized(), otlp::Protocol::kHttpProtobuf, otlp::Limits{});
  EXPECT_TRUE(batch.ok()) << batch.status().message();
  return std::move(batch).value();
}

class AttributorTest : public ::testing::Test {
 protected:
  explicit AttributorTest(AttributionOptions o = Options())
      : rules_(std::make_shared<Rules>(DefaultRules())),
        extractor_(rules_),
        attributor_(o, nullptr) {}
  static AttributionOptions Options() {
    AttributionOptions o;
    o.wait = Duration(10000);
    return o;
  }

  // Feeds one batch at `now`; returns span id (hex) → order id of the records it gave.
  std::map<std::string, std::string> Feed(const std::vector<TestSpan>& spans, Nanos now = kT0) {
    std::vector<SpanRecord> out;
    attributor_.Process(Batch(spans), extractor_, now, &out, nullptr);
    return Orders(out);
  }
  std::map<std::string, std::string> Expire(Nanos now) {
    std::vector<SpanRecord> out;
    attributor_.Expire(now, extractor_, &out);
    return Orders(out);
  }
  static std::map<std::string, std::string> Orders(const std::vector<SpanRecord>& records) {
    std::map<std::string, std::string> m;
    for (const SpanRecord& r : records) m[r.span_id] = r.order_id;
    return m;
  }

  std::shared_ptr<const Rules> rules_;
  FactExtractor extractor_;
  Attributor attributor_;
};

TEST_F(AttributorTest, ChildInheritsItsParentsOrderInOrder) {
  auto got = Feed({{"crm", "POST /orders", 1, 1, 0, "ORD-1"},
                   {"crm", "publish orders", 1, 2, 1, "", {}, "publish"}});
  EXPECT_EQ(got,
            (std::map<std::string, std::string>{{SpanHex(1), "ORD-1"}, {SpanHex(2), "ORD-1"}}));
  // A later batch: the consumer, child of the publish span (amqplib's shape).
  got = Feed({{"mes", "orders process", 1, 3, 2, "", {}, "process"}});
  EXPECT_EQ(got, (std::map<std::string, std::string>{{SpanHex(3), "ORD-1"}}));
  const AttributionStats s = attributor_.stats();
  EXPECT_EQ(s.attributed[static_cast<int>(AttributedVia::kCarried)], 1u);
  EXPECT_EQ(s.attributed[static_cast<int>(AttributedVia::kParent)], 2u);
  EXPECT_EQ(s.waited, 0u);
  EXPECT_EQ(s.pending_spans, 0u);
}

TEST_F(AttributorTest, ChildrenBeforeTheirAncestorWaitThenFollowIt) {
  // A chain arriving backwards: consumer, publish, HTTP client span, then the order span.
  // (A consumer goes to the engine at once without an order, for a message-id match.)
  EXPECT_EQ(Feed({{"mes", "orders process", 1, 4, 3, "", {}, "process"}}),
            (std::map<std::string, std::string>{{SpanHex(4), ""}}));
  EXPECT_TRUE(Feed({{"crm", "publish orders", 1, 3, 2, "", {}, "publish"}}).empty());
  EXPECT_TRUE(Feed({{"crm", "HTTP POST", 1, 2, 1}}).empty());
  EXPECT_EQ(attributor_.stats().pending_spans, 3u);
  auto got = Feed({{"crm", "POST /orders", 1, 1, 0, "ORD-7"}});
  EXPECT_EQ(got, (std::map<std::string, std::string>{{SpanHex(1), "ORD-7"},
                                                     {SpanHex(2), "ORD-7"},
                                                     {SpanHex(3), "ORD-7"},
                                                     {SpanHex(4), "ORD-7"}}));
  const AttributionStats s = attributor_.stats();
  EXPECT_EQ(s.waited, 3u);
  EXPECT_EQ(s.pending_spans, 0u);
  EXPECT_EQ(s.pending_bytes, 0u);
  EXPECT_TRUE(Expire(kT0 + 60 * kSecond).empty());
}

TEST_F(AttributorTest, ConsumerInANewTraceFollowsItsLink) {
  // RabbitMQ.Client 7: deliver starts trace 2 with a link to the publish span of trace 1; the
  // MES's own publish is a child of the deliver span.
  Feed({{"crm", "POST /orders", 1, 1, 0, "ORD-2"},
        {"crm", "publish x", 1, 2, 1, "", {}, "publish"}});
  auto got = Feed({{"mes", "deliver x", 2, 10, 0, "", {{1, 2}}, "process"},
                   {"mes", "publish price.calculated", 2, 11, 10, "", {}, "publish"}});
  EXPECT_EQ(got,
            (std::map<std::string, std::string>{{SpanHex(10), "ORD-2"}, {SpanHex(11), "ORD-2"}}));
  EXPECT_EQ(attributor_.stats().attributed[static_cast<int>(AttributedVia::kLink)], 1u);
}

TEST_F(AttributorTest, TheTraceRuleAppliesWhenTheWaitEnds) {
  // A root span without an order id (an HTTP server span) and its child that carries one.
  EXPECT_TRUE(Feed({{"crm", "GET /", 1, 1}}).empty());
  EXPECT_EQ(Feed({{"crm", "create", 1, 2, 1, "ORD-3"}}),
            (std::map<std::string, std::string>{{SpanHex(2), "ORD-3"}}));
  EXPECT_TRUE(Expire(kT0 + 9 * kSecond).empty()) << "not before its wait ends";
  EXPECT_EQ(Expire(kT0 + 10 * kSecond),
            (std::map<std::string, std::string>{{SpanHex(1), "ORD-3"}}));
  EXPECT_EQ(attributor_.stats().attributed[static_cast<int>(AttributedVia::kTrace)], 1u);
}

TEST_F(AttributorTest, ATraceWithTwoOrdersAttributesNothingByTheTraceRule) {
  Feed({{"crm", "batch job", 1, 1}});
  Feed({{"crm", "order a", 1, 2, 1, "A"}, {"crm", "order b", 1, 3, 1, "B"}});
  EXPECT_TRUE(Expire(kT0 + 10 * kSecond).empty());
  const AttributionStats s = attributor_.stats();
  EXPECT_EQ(s.given_up, 1u);
  EXPECT_EQ(s.ambiguous, 1u);
  EXPECT_EQ(s.pending_spans, 0u);
}

TEST_F(AttributorTest, AWaitingProcessSpanReachesTheEngineAtOnceWithoutAnOrder) {
  // The engine may close its hop by the message id: waiting would only delay that.
  EXPECT_EQ(Feed({{"mes", "q process", 5, 1, 9, "", {}, "process", "M-1"}}),
            (std::map<std::string, std::string>{{SpanHex(1), ""}}));
  EXPECT_EQ(attributor_.stats().pending_spans, 1u);
  // Its parent arrives: the span comes again, now with the order.
  EXPECT_EQ(Feed({{"crm", "publish", 5, 9, 0, "ORD-M", {}, "publish", "M-1"}}),
            (std::map<std::string, std::string>{{SpanHex(9), "ORD-M"}, {SpanHex(1), "ORD-M"}}));
  // Another one never gets an order: given up, nothing more is sent.
  EXPECT_EQ(Feed({{"mes", "q process", 6, 2, 8, "", {}, "process", "M-2"}}),
            (std::map<std::string, std::string>{{SpanHex(2), ""}}));
  EXPECT_TRUE(Expire(kT0 + 10 * kSecond).empty());
  EXPECT_EQ(attributor_.stats().given_up, 1u);
}

TEST_F(AttributorTest, AMessageTheEngineKnowsAttributesItsConsumerAfterARestart) {
  attributor_.SetPublishLookup(
      [](std::string_view send) { return send == SpanHex(2) ? std::string("ORD-R") : ""; });
  EXPECT_EQ(Feed({{"mes", "q process", 1, 3, 2, "", {}, "process"}}),
            (std::map<std::string, std::string>{{SpanHex(3), ""}}));
  EXPECT_EQ(Expire(kT0 + 10 * kSecond),
            (std::map<std::string, std::string>{{SpanHex(3), "ORD-R"}}));
  EXPECT_EQ(attributor_.stats().attributed[static_cast<int>(AttributedVia::kPublish)], 1u);
}

TEST_F(AttributorTest, RememberedSpansAreAncestorsLikeOthers) {
  otlp::TraceId t;
  otlp::SpanId s;
  ASSERT_TRUE(otlp::FromHex(TraceHex(1), t.data(), t.size()));
  ASSERT_TRUE(otlp::FromHex(SpanHex(1), s.data(), s.size()));
  attributor_.Remember(t, s, "ORD-M");
  EXPECT_EQ(Feed({{"mes", "work", 1, 2, 1}}),
            (std::map<std::string, std::string>{{SpanHex(2), "ORD-M"}}));
}

TEST_F(AttributorTest, AChildWhoseParentStillWaitsFollowsTheParent) {
  EXPECT_TRUE(Feed({{"mes", "child", 1, 2, 1}}, kT0).empty());
  // The parent (a root without an order id) arrives 5 s later; the order span 6 s later.
  EXPECT_TRUE(Feed({{"crm", "root", 1, 1}}, kT0 + 5 * kSecond).empty());
  Feed({{"crm", "order", 1, 3, 1, "ORD-5"}}, kT0 + 6 * kSecond);
  // The child's wait ends first: its parent still waits, so it follows the parent.
  EXPECT_TRUE(Expire(kT0 + 10 * kSecond).empty());
  EXPECT_EQ(attributor_.stats().pending_spans, 2u);
  EXPECT_EQ(Expire(kT0 + 15 * kSecond),
            (std::map<std::string, std::string>{{SpanHex(1), "ORD-5"}, {SpanHex(2), "ORD-5"}}));
  EXPECT_EQ(attributor_.stats().pending_spans, 0u);
}

TEST_F(AttributorTest, ASpanThatIsItsOwnParentIsGivenUpWhenItsWaitEnds) {
  EXPECT_TRUE(Feed({{"x", "self", 1, 3, 3}}).empty());
  EXPECT_TRUE(Expire(kT0 + 10 * kSecond).empty());
  EXPECT_EQ(attributor_.stats().given_up, 1u);
  EXPECT_EQ(attributor_.stats().pending_spans, 0u);
}

TEST_F(AttributorTest, ACycleOfParentsEndsWhenTheWaitsEnd) {
  Feed({{"x", "a", 1, 1, 3}, {"x", "b", 1, 2, 1}, {"x", "c", 1, 3, 2}});
  EXPECT_TRUE(Expire(kT0 + 10 * kSecond).empty());
  EXPECT_EQ(attributor_.stats().given_up, 3u);
  EXPECT_EQ(attributor_.stats().pending_spans, 0u);
}

TEST_F(AttributorTest, ACycleOfParentsEndsAtShutdown) {
  Feed({{"x", "a", 1, 1, 2}, {"x", "b", 1, 2, 1}});
  EXPECT_TRUE(Expire(Attributor::kForever).empty());
  EXPECT_EQ(attributor_.stats().given_up, 2u);
  EXPECT_EQ(attributor_.stats().pending_spans, 0u);
}

class SmallAttributorTest : public AttributorTest {
 protected:
  SmallAttributorTest() : AttributorTest(Small()) {}
  static AttributionOptions Small() {
    AttributionOptions o = Options();
    o.max_pending_spans = 10;
    return o;
  }
};

TEST_F(SmallAttributorTest, ThePendingSetIsBoundedAndCountsWhatItCutShort) {
  for (int i = 1; i <= 100; ++i) Feed({{"noise", "GET /health", 100 + i, i, 1000 + i}});
  const AttributionStats s = attributor_.stats();
  EXPECT_EQ(s.pending_spans, 10u);
  EXPECT_EQ(s.overflow, 90u);
  EXPECT_EQ(s.given_up, 90u);
  EXPECT_EQ(s.waited, 100u);
}

// Any arrival order of the same spans, in any split into requests, gives the same orders.
TEST_F(AttributorTest, RandomArrivalOrdersGiveTheSameAttribution) {
  const std::vector<TestSpan> scenario = {
      {"crm", "POST /orders", 1, 1, 0, ""},  // HTTP server root: the trace rule
      {"crm", "create order", 1, 2, 1, "ORD-9"},
      {"crm", "HTTP POST", 1, 3, 2},
      {"crm", "publish orders", 1, 4, 3, "", {}, "publish"},
      {"mes", "deliver", 2, 5, 0, "", {{1, 4}}, "process"},  // new trace, linked
      {"mes", "calculate", 2, 6, 5},
      {"mes", "publish price", 2, 7, 6, "", {}, "publish"},
      {"crm", "price process", 2, 8, 7, "", {}, "process"},
      {"crm", "noise", 3, 9, 0},  // a trace of no order: given up
  };
  auto run = [&](const std::vector<TestSpan>& order, std::mt19937* rng) {
    Attributor a(Options(), nullptr);
    std::vector<SpanRecord> out;
    size_t i = 0;
    while (i < order.size()) {
      const size_t n = rng == nullptr ? 1 : 1 + (*rng)() % 3;
      std::vector<TestSpan> part(order.begin() + i, order.begin() + std::min(order.size(), i + n));
      a.Process(Batch(part), extractor_, kT0, &out, nullptr);
      i += part.size();
    }
    a.Expire(kT0 + 10 * kSecond, extractor_, &out);
    EXPECT_EQ(a.stats().pending_spans, 0u);
    return Orders(out);
  };
  const auto in_order = run(scenario, nullptr);
  ASSERT_EQ(in_order.size(), 8u);
  for (const auto& [span, order] : in_order) EXPECT_EQ(order, "ORD-9") << span;
  std::mt19937 rng(13);
  for (int round = 0; round < 300; ++round) {
    std::vector<TestSpan> shuffled = scenario;
    std::shuffle(shuffled.begin(), shuffled.end(), rng);
    ASSERT_EQ(run(shuffled, &rng), in_order) << "round " << round;
  }
}

TEST(RecentOrdersTest, KeepsTheLatestHalfAndBoundsItsMemory) {
  RecentOrders r(1000);
  for (uint64_t k = 1; k <= 10000; ++k) r.Insert(k, "ORD-" + std::to_string(k / 20));
  EXPECT_LE(r.size(), 1000u);
  for (uint64_t k = 9501; k <= 10000; ++k) EXPECT_EQ(r.Find(k), "ORD-" + std::to_string(k / 20));
  EXPECT_TRUE(r.Find(1).empty());
  EXPECT_LE(r.bytes() / r.size(), 64u);
}

TEST(RecentOrdersTest, MergeMarksAKeyWithTwoOrdersAmbiguous) {
  RecentOrders r(100);
  EXPECT_TRUE(r.Merge(7, "A"));
  EXPECT_TRUE(r.Merge(7, "A"));
  EXPECT_FALSE(r.Merge(7, "B"));
  EXPECT_EQ(r.Find(7), RecentOrders::kAmbiguous);
  EXPECT_TRUE(r.Merge(7, "C"));  // stays ambiguous
  EXPECT_EQ(r.Find(7), RecentOrders::kAmbiguous);
}

}  // namespace
}  // namespace ordertrace::journey
