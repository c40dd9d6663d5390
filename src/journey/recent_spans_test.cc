#include "journey/recent_spans.h"

#include <gtest/gtest.h>

#include <string>

namespace ordertrace::journey {
namespace {

SpanRecord Span(int i) {
  SpanRecord r;
  r.order_id = "ORD-" + std::to_string(i);
  r.trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
  r.span_id = "00f067aa0ba902b" + std::to_string(i % 10);
  r.service = "crm";
  r.name = "publish mes.orders";
  r.start_ns = 1000 + i;
  r.end_ns = 2000 + i;
  r.message_id = "m" + std::to_string(i);
  r.hop = HopRole::kSend;
  return r;
}

TEST(RecentSpansTest, AnAddedSpanIsFoundAgain) {
  RecentSpans recent(64);
  const uint64_t f = RecentSpans::Fingerprint(Span(1));
  EXPECT_NE(f, 0u);
  EXPECT_FALSE(recent.Contains(f));
  recent.Add(f);
  EXPECT_TRUE(recent.Contains(f));
  EXPECT_EQ(RecentSpans::Fingerprint(Span(1)), f);  // the same content, the same fingerprint
  EXPECT_FALSE(recent.Contains(RecentSpans::Fingerprint(Span(2))));
}

TEST(RecentSpansTest, EveryFieldCounts) {
  const uint64_t base = RecentSpans::Fingerprint(Span(1));
  auto differs = [&](auto change) {
    SpanRecord r = Span(1);
    change(r);
    return RecentSpans::Fingerprint(r) != base;
  };
  EXPECT_TRUE(differs([](SpanRecord& r) { r.order_id += "x"; }));
  EXPECT_TRUE(differs([](SpanRecord& r) { r.trace_id[0] = '5'; }));
  EXPECT_TRUE(differs([](SpanRecord& r) { r.span_id[0] = '1'; }));
  EXPECT_TRUE(differs([](SpanRecord& r) { r.parent_span_id = "a"; }));
  EXPECT_TRUE(differs([](SpanRecord& r) { r.service = "mes"; }));
  EXPECT_TRUE(differs([](SpanRecord& r) { r.name = "x"; }));
  EXPECT_TRUE(differs([](SpanRecord& r) { ++r.start_ns; }));
  EXPECT_TRUE(differs([](SpanRecord& r) { ++r.end_ns; }));
  EXPECT_TRUE(differs([](SpanRecord& r) { r.otel_status = 2; }));
  EXPECT_TRUE(differs([](SpanRecord& r) { r.step = StepStatus::kFail; }));
  EXPECT_TRUE(differs([](SpanRecord& r) { r.error = "timeout"; }));
  EXPECT_TRUE(differs([](SpanRecord& r) { r.stage = "SUBMITTED"; }));
  EXPECT_TRUE(differs([](SpanRecord& r) { r.heartbeat = true; }));
  EXPECT_TRUE(differs([](SpanRecord& r) { r.hop = HopRole::kProcess; }));
  EXPECT_TRUE(differs([](SpanRecord& r) { r.message_id += "x"; }));
  EXPECT_TRUE(differs([](SpanRecord& r) { r.exchange = "e"; }));
  EXPECT_TRUE(differs([](SpanRecord& r) { r.routing_key = "k"; }));
  EXPECT_TRUE(differs([](SpanRecord& r) { r.queue = "q"; }));
  EXPECT_TRUE(differs([](SpanRecord& r) { r.links = {"0011223344556677"}; }));
  EXPECT_TRUE(differs([](SpanRecord& r) { r.partner = "p"; }));
  // Field boundaries count: the same bytes split differently are another span.
  SpanRecord a = Span(1), b = Span(1);
  a.exchange = "ab";
  a.routing_key = "c";
  b.exchange = "a";
  b.routing_key = "bc";
  EXPECT_NE(RecentSpans::Fingerprint(a), RecentSpans::Fingerprint(b));
}

TEST(RecentSpansTest, KeepsTheLatestHalfToWholeCapacity) {
  constexpr size_t kCapacity = 1000;
  RecentSpans recent(kCapacity);
  for (int i = 0; i < 10000; ++i) recent.Add(RecentSpans::Fingerprint(Span(i)));
  EXPECT_LE(recent.size(), kCapacity);
  // The latest capacity/2 are always there, the oldest are gone.
  for (int i = 10000 - static_cast<int>(kCapacity / 2); i < 10000; ++i) {
    EXPECT_TRUE(recent.Contains(RecentSpans::Fingerprint(Span(i)))) << i;
  }
  for (int i = 0; i < 1000; ++i) {
    EXPECT_FALSE(recent.Contains(RecentSpans::Fingerprint(Span(i)))) << i;
  }
  EXPECT_LE(recent.bytes(), 2 * 1024 * sizeof(uint64_t));
  recent.Clear();
  EXPECT_EQ(recent.size(), 0u);
  EXPECT_FALSE(recent.Contains(RecentSpans::Fingerprint(Span(9999))));
}

TEST(RecentSpansTest, CapacityZeroRemembersNothing) {
  RecentSpans recent(0);
  const uint64_t f = RecentSpans::Fingerprint(Span(1));
  recent.Add(f);
  EXPECT_FALSE(recent.Contains(f));
  EXPECT_EQ(recent.bytes(), 0u);
}

}  // namespace
}  // namespace ordertrace::journey
