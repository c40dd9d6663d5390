// libordertrace's exporter against the gateway's real OTLP/HTTP receiver: what the library
// sends arrives field by field; retries on 503 honour Retry-After.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <vector>

#include "common/metrics.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.pb.h"
#include "ordertrace/tracer.h"
#include "receive/otlp_receivers.h"

namespace ordertrace {
namespace {

using namespace std::chrono_literals;
namespace collector = opentelemetry::proto::collector::trace::v1;
namespace pb = opentelemetry::proto::trace::v1;
namespace common = opentelemetry::proto::common::v1;

// Captures batches; refuses the first `refuse` of them with 503 (Retry-After: 1).
class CaptureSink : public pipeline::BatchSink {
 public:
  Status Accept(std::shared_ptr<const otlp::SpanBatch> batch) noexcept override {
    std::lock_guard<std::mutex> lock(mu_);
    ++calls_;
    if (refuse_ > 0) {
      --refuse_;
      return Status::Unavailable("not now", 1000);
    }
    batches_.push_back(std::move(batch));
    return Status::Ok();
  }
  void Refuse(int n) {
    std::lock_guard<std::mutex> lock(mu_);
    refuse_ = n;
  }
  std::vector<std::shared_ptr<const otlp::SpanBatch>> batches() {
    std::lock_guard<std::mutex> lock(mu_);
    return batches_;
  }
  int calls() {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_;
  }

 private:
  std::mutex mu_;
  int refuse_ = 0;
  int calls_ = 0;
  std::vector<std::shared_ptr<const otlp::SpanBatch>> batches_;
};

class ExportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<receive::HttpServer>(receive::HttpServerOptions{});
    receive::RegisterOtlpHttp(*server_, receive::OtlpReceiverOptions{}, &sink_, &metrics_);
    ASSERT_TRUE(server_->Start().ok());
  }
  void TearDown() override { server_->Shutdown(1s); }

  TracerOptions Options() {
    TracerOptions o;
    o.service_name = "crm";
    o.resource_attributes = {{"deployment.environment", "test"}};
    o.exporter.endpoint = "http://127.0.0.1:" + std::to_string(server_->port()) + "/v1/traces";
    o.exporter.headers = {{"x-tenant", "t1"}};
    o.exporter.timeout = 5s;
    o.schedule_delay = 1h;  // exports on ForceFlush/Shutdown only
    return o;
  }

  // All spans received, parsed with libprotobuf (the reference decoder).
  std::vector<collector::ExportTraceServiceRequest> Received() {
    std::vector<collector::ExportTraceServiceRequest> out;
    for (const auto& b : sink_.batches()) {
      EXPECT_FALSE(b->modified()) << "the receiver refused or repaired something";
      collector::ExportTraceServiceRequest req;
      EXPECT_TRUE(req.ParseFromArray(b->wire().data(), static_cast<int>(b->wire().size())));
      out.push_back(std::move(req));
    }
    return out;
  }

  metrics::Registry registry_;
  receive::ReceiverMetrics metrics_{registry_};
  CaptureSink sink_;
  std::unique_ptr<receive::HttpServer> server_;
};

std::string Bytes(const auto& id) {
  return std::string(reinterpret_cast<const char*>(id.data()), id.size());
}

const common::AnyValue* Find(const google::protobuf::RepeatedPtrField<common::KeyValue>& kvs,
                             const std::string& key) {
  for (const auto& kv : kvs) {
    if (kv.key() == key) return &kv.value();
  }
  return nullptr;
}

TEST_F(ExportTest, SpansArriveFieldByFieldAsSent) {
  TracerProvider provider(Options());
  SpanContext remote_parent{NewTraceId(), NewSpanId(), kTraceFlagSampled, "vendor=abc", true};
  SpanContext link_ctx{NewTraceId(), NewSpanId(), kTraceFlagSampled, "l=1", true};
  SpanContext parent_ctx, child_ctx;
  {
    StartOptions o;
    o.kind = SpanKind::kConsumer;
    o.parent = &remote_parent;
    o.start_time_unix_nano = 1'700'000'000'000'000'000ULL;
    o.links.push_back(Link{link_ctx, {{"link.reason", std::string("producer")}}});
    Span span(provider, "process orders", o);
    parent_ctx = span.context();
    span.SetAttribute("order.id", "ORD-42");
    span.SetAttribute("retries", int64_t{-3});
    span.SetAttribute("price", 12.5);
    span.SetAttribute("ordertrace.heartbeat", false);
    span.SetAttribute("tags", std::vector<std::string>{"a", "", "c"});
    span.SetAttribute("empty", "");
    span.AddEvent("checkpoint", {{"step", int64_t{2}}, {"ok", true}});
    span.RecordException("std::runtime_error", "disk full");
    span.SetStatus(SpanStatus::kError, "boom");
    {
      Scope scope(span);
      StartOptions co;
      co.kind = SpanKind::kClient;
      co.start_time_unix_nano = 1'700'000'000'100'000'000ULL;
      Span child(provider, "GET /price", co);
      child_ctx = child.context();
      child.SetStatus(SpanStatus::kOk);
      child.End(1'700'000'000'200'000'000ULL);
    }
    span.End(1'700'000'001'000'000'000ULL);
  }
  ASSERT_TRUE(provider.ForceFlush(10s));
  EXPECT_EQ(provider.stats().exported, 2u);

  auto reqs = Received();
  ASSERT_EQ(reqs.size(), 1u);
  const auto& req = reqs[0];
  ASSERT_EQ(req.resource_spans_size(), 1);
  const auto& rs = req.resource_spans(0);
  const auto& res = rs.resource().attributes();
  ASSERT_NE(Find(res, "service.name"), nullptr);
  EXPECT_EQ(Find(res, "service.name")->string_value(), "crm");
  EXPECT_EQ(Find(res, "deployment.environment")->string_value(), "test");
  EXPECT_EQ(Find(res, "telemetry.sdk.name")->string_value(), "libordertrace");
  EXPECT_EQ(Find(res, "telemetry.sdk.language")->string_value(), "cpp");
  EXPECT_FALSE(Find(res, "telemetry.sdk.version")->string_value().empty());
  ASSERT_EQ(rs.scope_spans_size(), 1);
  EXPECT_EQ(rs.scope_spans(0).scope().name(), "libordertrace");
  ASSERT_EQ(rs.scope_spans(0).spans_size(), 2);

  const pb::Span& c = rs.scope_spans(0).spans(0);  // the child ended first
  EXPECT_EQ(c.name(), "GET /price");
  EXPECT_EQ(c.trace_id(), Bytes(remote_parent.trace_id));
  EXPECT_EQ(c.span_id(), Bytes(child_ctx.span_id));
  EXPECT_EQ(c.parent_span_id(), Bytes(parent_ctx.span_id));
  EXPECT_EQ(c.kind(), pb::Span::SPAN_KIND_CLIENT);
  EXPECT_EQ(c.start_time_unix_nano(), 1'700'000'000'100'000'000ULL);
  EXPECT_EQ(c.end_time_unix_nano(), 1'700'000'000'200'000'000ULL);
  EXPECT_EQ(c.status().code(), pb::Status::STATUS_CODE_OK);
  EXPECT_EQ(c.flags(), 0x101u);  // sampled, parent known to be local

  const pb::Span& s = rs.scope_spans(0).spans(1);
  EXPECT_EQ(s.name(), "process orders");
  EXPECT_EQ(s.trace_id(), Bytes(remote_parent.trace_id));
  EXPECT_EQ(s.span_id(), Bytes(parent_ctx.span_id));
  EXPECT_EQ(s.parent_span_id(), Bytes(remote_parent.span_id));
  EXPECT_EQ(s.trace_state(), "vendor=abc");
  EXPECT_EQ(s.flags(), 0x301u);  // sampled, remote parent
  EXPECT_EQ(s.kind(), pb::Span::SPAN_KIND_CONSUMER);
  EXPECT_EQ(s.start_time_unix_nano(), 1'700'000'000'000'000'000ULL);
  EXPECT_EQ(s.end_time_unix_nano(), 1'700'000'001'000'000'000ULL);
  EXPECT_EQ(s.attributes_size(), 7);
  EXPECT_EQ(Find(s.attributes(), "order.id")->string_value(), "ORD-42");
  EXPECT_EQ(Find(s.attributes(), "retries")->int_value(), -3);
  EXPECT_EQ(Find(s.attributes(), "price")->double_value(), 12.5);
  ASSERT_EQ(Find(s.attributes(), "ordertrace.heartbeat")->value_case(),
            common::AnyValue::kBoolValue);
  EXPECT_FALSE(Find(s.attributes(), "ordertrace.heartbeat")->bool_value());
  const auto& tags = Find(s.attributes(), "tags")->array_value();
  ASSERT_EQ(tags.values_size(), 3);
  EXPECT_EQ(tags.values(0).string_value(), "a");
  EXPECT_EQ(tags.values(1).value_case(), common::AnyValue::kStringValue);
  EXPECT_EQ(tags.values(2).string_value(), "c");
  ASSERT_EQ(Find(s.attributes(), "empty")->value_case(), common::AnyValue::kStringValue);
  EXPECT_EQ(Find(s.attributes(), "error.type")->string_value(), "std::runtime_error");
  ASSERT_EQ(s.events_size(), 2);
  EXPECT_EQ(s.events(0).name(), "checkpoint");
  EXPECT_GT(s.events(0).time_unix_nano(), 0u);
  EXPECT_EQ(Find(s.events(0).attributes(), "step")->int_value(), 2);
  EXPECT_TRUE(Find(s.events(0).attributes(), "ok")->bool_value());
  EXPECT_EQ(s.events(1).name(), "exception");
  EXPECT_EQ(Find(s.events(1).attributes(), "exception.type")->string_value(), "std::runtime_error");
  EXPECT_EQ(Find(s.events(1).attributes(), "exception.message")->string_value(), "disk full");
  ASSERT_EQ(s.links_size(), 1);
  EXPECT_EQ(s.links(0).trace_id(), Bytes(link_ctx.trace_id));
  EXPECT_EQ(s.links(0).span_id(), Bytes(link_ctx.span_id));
  EXPECT_EQ(s.links(0).trace_state(), "l=1");
  EXPECT_EQ(s.links(0).flags(), 0x301u);
  EXPECT_EQ(Find(s.links(0).attributes(), "link.reason")->string_value(), "producer");
  EXPECT_EQ(s.status().code(), pb::Status::STATUS_CODE_ERROR);
  EXPECT_EQ(s.status().message(), "boom");
  EXPECT_EQ(s.dropped_attributes_count(), 0u);

  // The gateway's own decoder agrees.
  const auto batch = sink_.batches()[0];
  ASSERT_EQ(batch->spans().size(), 2u);
  EXPECT_EQ(batch->resources()[0].service_name, "crm");
  EXPECT_EQ(batch->spans()[1].name, "process orders");
  EXPECT_EQ(otlp::ToHex(batch->spans()[1].span_id), ToHex(parent_ctx.span_id));
}

TEST_F(ExportTest, BatchesOfManySpansAndShutdownFlushes) {
  TracerOptions o = Options();
  o.max_queue_size = 10000;
  o.max_export_batch_size = 100;
  TracerProvider provider(o);
  for (int i = 0; i < 1000; ++i) {
    Span s(provider, "span " + std::to_string(i));
    s.SetAttribute("i", i);
  }
  provider.Shutdown();
  EXPECT_EQ(provider.stats().exported, 1000u);
  size_t spans = 0;
  for (const auto& r : Received()) spans += r.resource_spans(0).scope_spans(0).spans_size();
  EXPECT_EQ(spans, 1000u);
  EXPECT_EQ(sink_.batches().size(), 10u);
}

TEST_F(ExportTest, RetriesOn503HonouringRetryAfterThenSucceeds) {
  sink_.Refuse(1);  // 503, Retry-After: 1
  TracerOptions o = Options();
  o.exporter.initial_backoff = 10ms;
  TracerProvider provider(o);
  Span(provider, "retried").End();
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(provider.ForceFlush(10s));
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 900ms);  // waited for Retry-After
  EXPECT_EQ(sink_.calls(), 2);
  ASSERT_EQ(Received().size(), 1u);
  EXPECT_EQ(provider.stats().exported, 1u);
  EXPECT_EQ(provider.stats().dropped_export_failed, 0u);
}

TEST_F(ExportTest, GivesUpAfterMaxAttemptsAndCountsTheDrop) {
  sink_.Refuse(100);
  TracerOptions o = Options();
  o.exporter.max_attempts = 2;
  o.exporter.max_backoff = 20ms;  // caps Retry-After too
  TracerProvider provider(o);
  Span(provider, "lost").End();
  ASSERT_TRUE(provider.ForceFlush(10s));
  EXPECT_EQ(sink_.calls(), 2);
  EXPECT_EQ(provider.stats().dropped_export_failed, 1u);
  EXPECT_EQ(provider.stats().exported, 0u);
}

TEST_F(ExportTest, UnreachableEndpointNeverBlocksTheCaller) {
  TracerOptions o = Options();
  o.exporter.endpoint = "http://127.0.0.1:1/v1/traces";  // nothing listens on port 1
  o.exporter.max_attempts = 2;
  o.exporter.initial_backoff = 10ms;
  TracerProvider provider(o);
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 100; ++i) Span(provider, "x").End();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 100ms);
  ASSERT_TRUE(provider.ForceFlush(10s));
  EXPECT_EQ(provider.stats().dropped_export_failed, 100u);
}

TEST_F(ExportTest, ShutdownAbandonsRetriesAfterItsTimeout) {
  sink_.Refuse(100);  // 503 with Retry-After: 1, forever
  TracerOptions o = Options();
  o.exporter.max_attempts = 100;
  TracerProvider provider(o);
  Span(provider, "x").End();
  const auto t0 = std::chrono::steady_clock::now();
  provider.Shutdown(200ms);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 900ms);
  EXPECT_EQ(provider.stats().dropped_export_failed, 1u);
}

TEST_F(ExportTest, NonHttpEndpointIsRefusedWithoutCrashing) {
  TracerOptions o = Options();
  o.exporter.endpoint = "https://127.0.0.1:4318/v1/traces";  // TLS: not supported yet
  TracerProvider provider(o);
  Span(provider, "x").End();
  ASSERT_TRUE(provider.ForceFlush(10s));
  EXPECT_EQ(provider.stats().dropped_export_failed, 1u);
}

}  // namespace
}  // namespace ordertrace
