// Order helpers and LongOperation: attributes, step statuses, and heartbeats (with a short
// interval) captured by an in-memory exporter.
#include "ordertrace/order.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "support/memory_exporter.h"

namespace ordertrace {
namespace {

using namespace std::chrono_literals;

using testing_support::MemoryExporter;

struct Fixture {
  Fixture() {
    TracerOptions o;
    o.schedule_delay = 10ms;
    auto e = std::make_unique<MemoryExporter>();
    exporter = e.get();
    provider = std::make_unique<TracerProvider>(std::move(o), std::move(e));
  }
  std::vector<SpanData> Flush() {
    EXPECT_TRUE(provider->ForceFlush(5s));
    return exporter->spans();
  }
  MemoryExporter* exporter;
  std::unique_ptr<TracerProvider> provider;
};

const AttributeValue* Find(const SpanData& s, std::string_view key) {
  for (const Attribute& a : s.attributes)
    if (a.key == key) return &a.value;
  return nullptr;
}

std::optional<std::string> Str(const SpanData& s, std::string_view key) {
  const AttributeValue* v = Find(s, key);
  if (v == nullptr || !std::holds_alternative<std::string>(*v)) return std::nullopt;
  return std::get<std::string>(*v);
}

int ThreadCount() {
  int n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/task")) ++n;
  return n;
}

TEST(OrderHelpers, SetAttributes) {
  Fixture f;
  {
    Span span(*f.provider, "approve");
    SetOrder(span, "ORD-1");
    Milestone(span, "APPROVED");
    SetPartner(span, "partner-7");
    SetEndUser(span, "alice");
    SetOrder(span, "");  // ignored
    Milestone(span, "");
    SetStepStatus(span, StepStatus::kOk);
  }
  auto spans = f.Flush();
  ASSERT_EQ(spans.size(), 1u);
  EXPECT_EQ(Str(spans[0], "order.id"), "ORD-1");
  EXPECT_EQ(Str(spans[0], "order.stage"), "APPROVED");
  EXPECT_EQ(Str(spans[0], "partner.id"), "partner-7");
  EXPECT_EQ(Str(spans[0], "enduser.id"), "alice");
  EXPECT_EQ(Str(spans[0], "order.step.status"), "OK");
  EXPECT_EQ(spans[0].status, SpanStatus::kOk);
  EXPECT_EQ(Find(spans[0], "error.type"), nullptr);
}

TEST(OrderHelpers, StepStatuses) {
  EXPECT_STREQ(StepStatusName(StepStatus::kOk), "OK");
  EXPECT_STREQ(StepStatusName(StepStatus::kFail), "FAIL");
  EXPECT_STREQ(StepStatusName(StepStatus::kTimeout), "TIMEOUT");
  EXPECT_STREQ(StepStatusName(StepStatus::kRetry), "RETRY");

  Fixture f;
  {
    Span fail(*f.provider, "fail");
    SetStepStatus(fail, StepStatus::kFail, "db_unavailable", "connection refused");
    Span fail_default(*f.provider, "fail default");
    SetStepStatus(fail_default, StepStatus::kFail);
    Span timeout(*f.provider, "timeout");
    SetStepStatus(timeout, StepStatus::kTimeout, {}, "no answer in 5m");
    Span retry(*f.provider, "retry");
    SetStepStatus(retry, StepStatus::kRetry);
  }
  auto spans = f.Flush();
  ASSERT_EQ(spans.size(), 4u);
  std::map<std::string, SpanData> by_name;
  for (auto& s : spans) by_name[s.name] = s;
  EXPECT_EQ(Str(by_name["fail"], "order.step.status"), "FAIL");
  EXPECT_EQ(Str(by_name["fail"], "error.type"), "db_unavailable");
  EXPECT_EQ(by_name["fail"].status, SpanStatus::kError);
  EXPECT_EQ(by_name["fail"].status_message, "connection refused");
  EXPECT_EQ(Str(by_name["fail default"], "error.type"), "_OTHER");
  EXPECT_EQ(Str(by_name["timeout"], "order.step.status"), "TIMEOUT");
  EXPECT_EQ(Str(by_name["timeout"], "error.type"), "timeout");
  EXPECT_EQ(by_name["timeout"].status, SpanStatus::kError);
  EXPECT_EQ(Str(by_name["retry"], "order.step.status"), "RETRY");
  EXPECT_EQ(by_name["retry"].status, SpanStatus::kUnset);
  EXPECT_EQ(Find(by_name["retry"], "error.type"), nullptr);
}

TEST(OrderHelpers, NoopSpanIsSafe) {
  Span span("unconfigured");  // the global provider is a no-op
  SetOrder(span, "ORD-1");
  Milestone(span, "SUBMITTED");
  SetStepStatus(span, StepStatus::kFail, "x", "y");
  SetPartner(span, "p");
  SetEndUser(span, "u");
  EXPECT_FALSE(span.recording());
}

TEST(LongOperation, EmitsHeartbeatsThenTheFinalSpan) {
  Fixture f;
  SpanContext parent{NewTraceId(), NewSpanId(), kTraceFlagSampled, "", true};
  LongOperationOptions o;
  o.order_id = "ORD-42";
  o.heartbeat_interval = 50ms;
  o.parent = &parent;
  o.provider = f.provider.get();
  LongOperation op("price calculation", o);
  ASSERT_TRUE(op.span().recording());
  op.span().SetAttribute("mes.items", 12);  // the owner's thread, while heartbeats run
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (op.heartbeats() < 3 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(5ms);
  ASSERT_GE(op.heartbeats(), 3u);
  // Heartbeats are exported while the operation still runs.
  auto before_end = f.Flush();
  ASSERT_GE(before_end.size(), 3u);
  for (const SpanData& s : before_end) EXPECT_EQ(s.name, "price calculation heartbeat");

  op.End("PRICE_CALCULATED", StepStatus::kOk);
  const uint64_t beats = op.heartbeats();
  std::this_thread::sleep_for(150ms);
  EXPECT_EQ(op.heartbeats(), beats);     // stopped
  op.End("IGNORED", StepStatus::kFail);  // idempotent

  auto spans = f.Flush();
  ASSERT_EQ(spans.size(), beats + 1);
  const SpanData& final_span = spans.back();
  EXPECT_EQ(final_span.name, "price calculation");
  EXPECT_EQ(final_span.trace_id, parent.trace_id);
  EXPECT_EQ(final_span.parent_span_id, parent.span_id);
  EXPECT_EQ(Str(final_span, "order.id"), "ORD-42");
  EXPECT_EQ(Str(final_span, "order.stage"), "PRICE_CALCULATED");
  EXPECT_EQ(Str(final_span, "order.step.status"), "OK");
  EXPECT_EQ(final_span.status, SpanStatus::kOk);
  EXPECT_EQ(Find(final_span, kHeartbeatKey), nullptr);

  int64_t seq = 0;
  for (size_t i = 0; i + 1 < spans.size(); ++i) {
    const SpanData& hb = spans[i];
    EXPECT_EQ(hb.name, "price calculation heartbeat");
    EXPECT_EQ(hb.trace_id, final_span.trace_id);
    EXPECT_EQ(hb.parent_span_id, final_span.span_id);  // child of the operation span
    const AttributeValue* flag = Find(hb, kHeartbeatKey);
    ASSERT_NE(flag, nullptr);
    EXPECT_EQ(std::get<bool>(*flag), true);
    EXPECT_EQ(Str(hb, "order.id"), "ORD-42");
    const AttributeValue* n = Find(hb, "ordertrace.heartbeat.sequence");
    ASSERT_NE(n, nullptr);
    EXPECT_EQ(std::get<int64_t>(*n), ++seq);
    EXPECT_LE(hb.end_time_unix_nano - hb.start_time_unix_nano, 1'000'000'000u);  // short
    EXPECT_GE(hb.start_time_unix_nano, final_span.start_time_unix_nano);
    EXPECT_LE(hb.end_time_unix_nano, final_span.end_time_unix_nano);
  }
}

TEST(LongOperation, EndsBeforeTheFirstHeartbeat) {
  Fixture f;
  LongOperationOptions o;
  o.heartbeat_interval = 60s;  // the default; End() must not wait for it
  o.provider = f.provider.get();
  o.root = true;
  const auto t0 = std::chrono::steady_clock::now();
  {
    LongOperation op("quick", o);
    op.End("SHIPPED", StepStatus::kTimeout, {}, "carrier did not confirm");
  }
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);
  auto spans = f.Flush();
  ASSERT_EQ(spans.size(), 1u);
  EXPECT_FALSE(spans[0].has_parent);
  EXPECT_EQ(Str(spans[0], "order.step.status"), "TIMEOUT");
  EXPECT_EQ(Str(spans[0], "error.type"), "timeout");
  EXPECT_EQ(spans[0].status, SpanStatus::kError);
  EXPECT_EQ(spans[0].status_message, "carrier did not confirm");
  EXPECT_EQ(Find(spans[0], "order.id"), nullptr);
}

TEST(LongOperation, DestructorEndsWithoutStatus) {
  Fixture f;
  LongOperationOptions o;
  o.heartbeat_interval = 20ms;
  o.provider = f.provider.get();
  o.order_id = "ORD-9";
  { LongOperation op("abandoned", o); }
  auto spans = f.Flush();
  ASSERT_GE(spans.size(), 1u);
  EXPECT_EQ(spans.back().name, "abandoned");
  EXPECT_EQ(Find(spans.back(), "order.step.status"), nullptr);
  EXPECT_EQ(spans.back().status, SpanStatus::kUnset);
}

TEST(LongOperation, NoThreadWhenNotRecording) {
  const int before = ThreadCount();
  LongOperationOptions o;
  o.heartbeat_interval = 10ms;
  LongOperation op("unconfigured", o);  // global provider: a no-op
  EXPECT_EQ(ThreadCount(), before);
  EXPECT_FALSE(op.span().recording());
  std::this_thread::sleep_for(30ms);
  EXPECT_EQ(op.heartbeats(), 0u);
  op.End("SUBMITTED", StepStatus::kOk);

  TracerOptions off;
  off.sampler = Sampler::kAlwaysOff;
  TracerProvider unsampled(off, std::make_unique<MemoryExporter>());
  const int with_provider = ThreadCount();
  o.provider = &unsampled;
  LongOperation op2("unsampled", o);
  EXPECT_EQ(ThreadCount(), with_provider);
  EXPECT_TRUE(op2.context().valid());  // the decision still propagates
}

}  // namespace
}  // namespace ordertrace
