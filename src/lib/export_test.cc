// libordertrace's exporter against the gateway's real OTLP/HTTP receiver: what the library
// sends arrives field by field; retries on 503 honour Retry-After; over HTTPS the server is
// verified (CA file, host or address check), mTLS presents the client certificate, and the
// headers (a bearer token) still arrive.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "common/metrics.h"
#include "internal.h"
#include "net/http_server.h"
#include "net/tls.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.pb.h"
#include "ordertrace/order.h"
#include "ordertrace/tracer.h"
#include "receive/otlp_receivers.h"
#include "support/tls_files.h"

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
    server_ = std::make_unique<net::HttpServer>(net::HttpServerOptions{});
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
  std::unique_ptr<net::HttpServer> server_;
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

// What the exporter is handed, kept as deep copies, and passed on to the real OTLP/HTTP exporter:
// the reference the gateway's view is compared with, field by field.
class TeeExporter : public SpanExporter {
 public:
  TeeExporter(ExporterOptions o, std::vector<std::pair<std::string, std::string>> resource)
      : inner_(MakeOtlpHttpExporter(std::move(o), std::move(resource))) {}
  ExportResult Export(const std::vector<std::unique_ptr<SpanData>>& spans) noexcept override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (const auto& s : spans) sent_.push_back(*s);
    }
    return inner_->Export(spans);
  }
  void Shutdown() noexcept override { inner_->Shutdown(); }
  std::vector<SpanData> sent() {
    std::lock_guard<std::mutex> lock(mu_);
    return sent_;
  }

 private:
  std::unique_ptr<SpanExporter> inner_;
  std::mutex mu_;
  std::vector<SpanData> sent_;
};

// An attribute as the gateway's decoder (otlp::SpanBatch) sees it, in the library's terms.
AttributeValue FromView(const otlp::AnyValueView& v) {
  switch (v.type) {
    case otlp::ValueType::kString:
      return std::string(v.str);
    case otlp::ValueType::kInt:
      return v.int_value;
    case otlp::ValueType::kDouble:
      return v.double_value;
    case otlp::ValueType::kBool:
      return v.bool_value;
    case otlp::ValueType::kArray: {
      std::vector<std::string> out;
      otlp::ForEachArrayValue(v, 1u << 20, [&](const otlp::AnyValueView& e) {
        EXPECT_EQ(e.type, otlp::ValueType::kString);
        out.emplace_back(e.str);
      });
      return out;
    }
    default:
      ADD_FAILURE() << "unexpected value type " << static_cast<int>(v.type);
      return std::string("?");
  }
}

template <typename Ref>
std::vector<Attribute> AttributesOf(const otlp::SpanBatch& b, const Ref& ref) {
  std::vector<Attribute> out;
  b.ForEachAttribute(ref, [&](const otlp::KeyValueView& kv) {
    out.push_back(Attribute{std::string(kv.key), FromView(kv.value)});
  });
  return out;
}

void ExpectSameAttributes(const std::vector<Attribute>& got, const std::vector<Attribute>& want,
                          const std::string& where) {
  ASSERT_EQ(got.size(), want.size()) << where;
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(got[i].key, want[i].key) << where << " attribute " << i;
    EXPECT_EQ(got[i].value.index(), want[i].value.index()) << where << " " << want[i].key;
    EXPECT_TRUE(got[i].value == want[i].value) << where << " " << want[i].key;
  }
}

// Spans made through the public API (every kind, remote/local/no parent, attributes of every
// type, events, links, both statuses, an exception, the order helpers and a LongOperation with
// heartbeats) reach the gateway's real OTLP/HTTP receiver; the gateway's own decoder (the view
// journeys, the span log and forwarding use) shows every field exactly as the exporter was
// handed it; the resource and scope too.
TEST_F(ExportTest, GatewaySeesEveryFieldOfEverySpanAsSent) {
  TracerOptions o = Options();
  const std::vector<std::pair<std::string, std::string>> resource{
      {"service.name", "crm"}, {"deployment.environment", "test"}, {"service.version", "1.2.3"}};
  auto tee = std::make_unique<TeeExporter>(o.exporter, resource);
  TeeExporter* tee_ptr = tee.get();
  TracerProvider provider(o, std::move(tee));

  const SpanContext remote{NewTraceId(), NewSpanId(), kTraceFlagSampled, "congo=t61rcWkgMzE", true};
  const SpanContext linked{NewTraceId(), NewSpanId(), 0, "", true};  // not sampled, no state
  {
    StartOptions so;
    so.kind = SpanKind::kServer;
    so.parent = &remote;
    Span request(provider, "POST /api/orders", so);
    Scope scope(request);
    SetOrder(request, "ORD-7");
    Milestone(request, "SUBMITTED");
    SetPartner(request, "partner-9");
    SetEndUser(request, "user-3");
    request.SetAttribute("http.request.method", "POST");
    request.SetAttribute("http.response.status_code", 201);
    request.SetAttribute("order.total", -0.125);
    request.SetAttribute("order.express", true);
    request.SetAttribute("order.items", std::vector<std::string>{"bolt", "", "nut \xC3\xA9"});
    request.SetAttribute("big", int64_t{-9'223'372'036'854'775'807LL});
    request.AddEvent("validated", {{"rules", int64_t{12}}, {"strict", false}, {"ratio", 0.5}});
    request.AddEvent("no attributes");
    request.AddLink(linked, {{"link.kind", std::string("follows")}});
    {
      LongOperationOptions lo;
      lo.order_id = "ORD-7";
      lo.heartbeat_interval = std::chrono::milliseconds(20);
      lo.provider = &provider;
      LongOperation calc("price calculation", lo);
      std::this_thread::sleep_for(std::chrono::milliseconds(70));
      calc.End("PRICE_CALCULATED", StepStatus::kOk);
    }
    for (SpanKind kind :
         {SpanKind::kInternal, SpanKind::kClient, SpanKind::kProducer, SpanKind::kConsumer}) {
      StartOptions co;
      co.kind = kind;
      co.links.push_back(Link{remote, {}});
      Span child(provider, "child " + std::to_string(static_cast<int>(kind)), co);
      if (kind == SpanKind::kClient) {
        child.RecordException("std::system_error", "connection refused");
        SetStepStatus(child, StepStatus::kFail, "connect", "connection refused");
      }
      if (kind == SpanKind::kProducer) SetStepStatus(child, StepStatus::kRetry);
    }
    SetStepStatus(request, StepStatus::kOk);
  }
  {
    StartOptions ro;
    ro.root = true;
    ro.start_time_unix_nano = 1'000;
    Span root(provider, "", ro);  // an empty name is still a name
    root.End(2'000);
  }
  ASSERT_TRUE(provider.ForceFlush(10s));
  const std::vector<SpanData> sent = tee_ptr->sent();
  ASSERT_GE(sent.size(), 9u);  // request, calculation, >= 2 heartbeats, 4 children, root
  EXPECT_EQ(provider.stats().exported, sent.size());

  std::map<std::string, const SpanData*> by_id;
  for (const SpanData& d : sent) by_id[ToHex(d.span_id)] = &d;
  size_t seen = 0;
  for (const auto& batch : sink_.batches()) {
    ASSERT_FALSE(batch->modified()) << "the receiver refused, repaired or cut something";
    ASSERT_EQ(batch->resources().size(), 1u);
    ASSERT_EQ(batch->scopes().size(), 1u);
    const otlp::ResourceRef& r = batch->resources()[0];
    EXPECT_EQ(r.service_name, "crm");
    std::vector<Attribute> want_resource;
    for (const auto& [k, v] : resource) want_resource.push_back(Attribute{k, v});
    ExpectSameAttributes(AttributesOf(*batch, r), want_resource, "resource");
    const otlp::ScopeRef& sc = batch->scopes()[0];
    EXPECT_EQ(sc.name, "libordertrace");
    EXPECT_EQ(sc.version, internal::kSdkVersion);
    EXPECT_EQ(sc.attributes, 0u);

    for (const otlp::SpanRef& got : batch->spans()) {
      const std::string id = otlp::ToHex(got.span_id);
      ASSERT_EQ(by_id.count(id), 1u) << "a span the exporter was not handed: " << id;
      const SpanData& want = *by_id[id];
      const std::string where = "span '" + want.name + "'";
      ++seen;
      EXPECT_EQ(otlp::ToHex(got.trace_id), ToHex(want.trace_id)) << where;
      EXPECT_EQ(otlp::ToHex(got.parent_span_id), ToHex(want.parent_span_id)) << where;
      EXPECT_EQ(got.has_parent(), want.has_parent) << where;
      EXPECT_EQ(got.trace_state, want.trace_state) << where;
      EXPECT_EQ(got.flags, want.trace_flags | 0x100u | (want.parent_remote ? 0x200u : 0u)) << where;
      EXPECT_EQ(got.name, want.name) << where;
      EXPECT_EQ(got.kind, static_cast<uint8_t>(want.kind)) << where;
      EXPECT_EQ(got.start_time_unix_nano, want.start_time_unix_nano) << where;
      EXPECT_EQ(got.end_time_unix_nano, want.end_time_unix_nano) << where;
      EXPECT_EQ(got.status_code, static_cast<uint8_t>(want.status)) << where;
      EXPECT_EQ(got.status_message, want.status_message) << where;
      EXPECT_EQ(got.dropped_attributes, want.dropped_attributes) << where;
      EXPECT_EQ(got.dropped_events, want.dropped_events) << where;
      EXPECT_EQ(got.dropped_links, want.dropped_links) << where;
      ExpectSameAttributes(AttributesOf(*batch, got), want.attributes, where);

      size_t e = 0;
      EXPECT_EQ(got.events, want.events.size()) << where;
      batch->ForEachEvent(got, [&](const otlp::EventView& ev) {
        ASSERT_LT(e, want.events.size()) << where;
        const Event& we = want.events[e];
        EXPECT_EQ(ev.name, we.name) << where;
        EXPECT_EQ(ev.time_unix_nano, we.time_unix_nano) << where;
        ExpectSameAttributes(AttributesOf(*batch, ev), we.attributes, where + " event " + we.name);
        ++e;
      });
      EXPECT_EQ(e, want.events.size()) << where;

      size_t l = 0;
      EXPECT_EQ(got.links, want.links.size()) << where;
      batch->ForEachLink(got, [&](const otlp::LinkView& lv) {
        ASSERT_LT(l, want.links.size()) << where;
        const Link& wl = want.links[l];
        EXPECT_EQ(otlp::ToHex(lv.trace_id), ToHex(wl.context.trace_id)) << where;
        EXPECT_EQ(otlp::ToHex(lv.span_id), ToHex(wl.context.span_id)) << where;
        EXPECT_EQ(lv.trace_state, wl.context.trace_state) << where;
        EXPECT_EQ(lv.flags, wl.context.trace_flags | 0x100u | (wl.context.remote ? 0x200u : 0u))
            << where;
        ExpectSameAttributes(AttributesOf(*batch, lv), wl.attributes, where + " link");
        ++l;
      });
      EXPECT_EQ(l, want.links.size()) << where;
    }
  }
  EXPECT_EQ(seen, sent.size());

  // And what was handed over is what the API was asked for (spot checks of the reference).
  const SpanData* request = nullptr;
  int heartbeats = 0;
  for (const SpanData& d : sent) {
    if (d.name == "POST /api/orders") request = &d;
    if (d.name == "price calculation heartbeat") ++heartbeats;
  }
  ASSERT_NE(request, nullptr);
  EXPECT_GE(heartbeats, 2);
  EXPECT_EQ(ToHex(request->parent_span_id), ToHex(remote.span_id));
  EXPECT_TRUE(request->parent_remote);
  EXPECT_EQ(request->trace_state, "congo=t61rcWkgMzE");
  EXPECT_EQ(request->status, SpanStatus::kOk);
  EXPECT_EQ(request->events.size(), 2u);
  EXPECT_EQ(request->links.size(), 1u);
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
  o.exporter.endpoint = "ftp://user:pw@127.0.0.1:4318/v1/traces";
  std::vector<std::string> errors;
  o.exporter.on_error = [&errors](const std::string& e) { errors.push_back(e); };
  TracerProvider provider(o);
  Span(provider, "x").End();
  ASSERT_TRUE(provider.ForceFlush(10s));
  Span(provider, "y").End();
  ASSERT_TRUE(provider.ForceFlush(10s));
  EXPECT_EQ(provider.stats().dropped_export_failed, 2u);
  ASSERT_EQ(errors.size(), 1u);  // once per reason
  EXPECT_NE(errors[0].find("not an http:// or https:// URL (scheme 'ftp')"), std::string::npos)
      << errors[0];
  EXPECT_EQ(errors[0].find("pw"), std::string::npos) << errors[0];
  EXPECT_NE(CheckExporterOptions(o.exporter), "");
}

// --- HTTPS -----------------------------------------------------------------------------------

// The gateway's OTLP/HTTP receiver behind TLS (certificates made by openssl), plus a route that
// records the Authorization header each export brings.
class HttpsExportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("ordertrace_export_tls_" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    ASSERT_TRUE(files_.Make(dir_.string())) << "openssl failed";
  }
  void TearDown() override {
    if (server_) server_->Shutdown(1s);
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  // Starts the server on `host`; with `client_ca`, it requires client certificates (mTLS).
  void Start(const std::string& client_ca = "", const std::string& host = "127.0.0.1") {
    net::TlsServerOptions tls;
    tls.cert_file = files_.server_cert;
    tls.key_file = files_.server_key;
    tls.client_ca_file = client_ca;
    auto context = net::TlsServerContext::Create(tls);
    ASSERT_TRUE(context.ok()) << context.status().message();
    net::HttpServerOptions options;
    options.host = host;
    options.tls = context.value();
    server_ = std::make_unique<net::HttpServer>(options);
    receive::RegisterOtlpHttp(*server_, receive::OtlpReceiverOptions{}, &sink_, &metrics_);
    server_->Route("POST", "/bearer/v1/traces",
                   [this](net::HttpRequest& req, net::HttpResponse& res) {
                     std::lock_guard<std::mutex> lock(mu_);
                     authorizations_.emplace_back(req.Header("authorization"));
                     res.status = 200;
                     res.content_type = "application/x-protobuf";
                   });
    ASSERT_TRUE(server_->Start().ok());
  }

  TracerOptions Options(const std::string& host = "127.0.0.1") {
    TracerOptions o;
    o.service_name = "crm";
    o.exporter.endpoint = "https://" + host + ":" + std::to_string(server_->port()) + "/v1/traces";
    o.exporter.certificate_file = files_.ca_cert;
    o.exporter.timeout = 5s;
    o.exporter.max_attempts = 1;
    o.exporter.on_error = [this](const std::string& e) {
      std::lock_guard<std::mutex> lock(mu_);
      errors_.push_back(e);
    };
    o.schedule_delay = 1h;
    return o;
  }

  // Ends one span, flushes; true when it was exported.
  bool ExportOne(TracerOptions o) {
    TracerProvider provider(std::move(o));
    Span(provider, "checkout").End();
    EXPECT_TRUE(provider.ForceFlush(10s));
    return provider.stats().exported == 1;
  }

  std::string Errors() {
    std::lock_guard<std::mutex> lock(mu_);
    std::string all;
    for (const auto& e : errors_) all += e + "\n";
    return all;
  }

  std::filesystem::path dir_;
  testing_support::TlsFiles files_;
  metrics::Registry registry_;
  receive::ReceiverMetrics metrics_{registry_};
  CaptureSink sink_;
  std::unique_ptr<net::HttpServer> server_;
  std::mutex mu_;
  std::vector<std::string> errors_, authorizations_;
};

TEST_F(HttpsExportTest, TrustsTheCaFileAndSpansArrive) {
  Start();
  EXPECT_TRUE(ExportOne(Options())) << Errors();
  ASSERT_EQ(sink_.batches().size(), 1u);
  EXPECT_EQ(sink_.batches()[0]->spans().size(), 1u);
  EXPECT_EQ(Errors(), "");
  // By name too: the certificate's SAN has localhost, and the name goes as SNI.
  EXPECT_TRUE(ExportOne(Options("localhost"))) << Errors();
}

TEST_F(HttpsExportTest, BearerHeaderArrivesOverHttps) {
  Start();
  TracerOptions o = Options();
  o.exporter.endpoint =
      "https://127.0.0.1:" + std::to_string(server_->port()) + "/bearer/v1/traces";
  o.exporter.headers = {{"Authorization", "Bearer s3cret-token"}};
  EXPECT_TRUE(ExportOne(o)) << Errors();
  std::lock_guard<std::mutex> lock(mu_);
  ASSERT_EQ(authorizations_.size(), 1u);
  EXPECT_EQ(authorizations_[0], "Bearer s3cret-token");
}

TEST_F(HttpsExportTest, TheEnvironmentVariablesConfigureTls) {
  Start(files_.ca_cert);
  const std::string endpoint = "https://localhost:" + std::to_string(server_->port());
  std::map<std::string, std::string> env = {
      {"OTEL_EXPORTER_OTLP_ENDPOINT", endpoint},
      {"OTEL_EXPORTER_OTLP_CERTIFICATE", files_.foreign_ca_cert},  // the TRACES_ one wins
      {"OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", files_.ca_cert},
      {"OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", files_.client_cert},
      {"OTEL_EXPORTER_OTLP_CLIENT_KEY", files_.client_key},
      {"OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%20abc"},
  };
  TracerOptions o = TracerOptionsFromEnv([&env](const char* name) -> const char* {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  });
  o.schedule_delay = 1h;
  EXPECT_EQ(CheckExporterOptions(o.exporter), "");
  EXPECT_TRUE(ExportOne(o));
  EXPECT_EQ(sink_.batches().size(), 1u);
}

TEST_F(HttpsExportTest, MutualTlsWithTheClientCertificate) {
  Start(files_.ca_cert);
  TracerOptions o = Options();
  o.exporter.client_certificate_file = files_.client_cert;
  o.exporter.client_key_file = files_.client_key;
  EXPECT_TRUE(ExportOne(o)) << Errors();
  EXPECT_EQ(sink_.batches().size(), 1u);
}

TEST_F(HttpsExportTest, MutualTlsServerRefusesAnExporterWithoutClientCertificate) {
  Start(files_.ca_cert);
  EXPECT_FALSE(ExportOne(Options()));
  EXPECT_EQ(sink_.batches().size(), 0u);
  EXPECT_NE(Errors().find("failed"), std::string::npos) << Errors();
  // A certificate of another CA is refused as well.
  TracerOptions foreign = Options();
  foreign.exporter.client_certificate_file = files_.foreign_client_cert;
  foreign.exporter.client_key_file = files_.foreign_client_key;
  EXPECT_FALSE(ExportOne(foreign));
  EXPECT_EQ(sink_.batches().size(), 0u);
}

TEST_F(HttpsExportTest, AServerOfAnotherCaIsRefused) {
  Start();
  TracerOptions o = Options();
  o.exporter.certificate_file = files_.foreign_ca_cert;
  EXPECT_FALSE(ExportOne(o));
  EXPECT_EQ(sink_.batches().size(), 0u);
  EXPECT_NE(Errors().find("certificate verify failed"), std::string::npos) << Errors();
  // Without a CA file, the system's trust store does not know the test CA either.
  TracerOptions system = Options();
  system.exporter.certificate_file.clear();
  EXPECT_FALSE(ExportOne(system));
  EXPECT_EQ(sink_.batches().size(), 0u);
}

TEST_F(HttpsExportTest, AnAddressTheCertificateDoesNotNameIsRefused) {
  Start("", "127.0.0.2");  // the certificate names localhost and 127.0.0.1 only
  EXPECT_FALSE(ExportOne(Options("127.0.0.2")));
  EXPECT_EQ(sink_.batches().size(), 0u);
  EXPECT_NE(Errors().find("certificate verify failed"), std::string::npos) << Errors();
}

TEST_F(HttpsExportTest, BadFilesAreNamedNeverShown) {
  Start();
  TracerOptions o = Options();
  o.exporter.certificate_file = (dir_ / "missing-ca.pem").string();
  EXPECT_EQ(
      CheckExporterOptions(o.exporter),
      "cannot read the CA file '" + o.exporter.certificate_file + "': No such file or directory");
  EXPECT_FALSE(ExportOne(o));
  EXPECT_NE(Errors().find("missing-ca.pem"), std::string::npos) << Errors();

  const std::string not_pem = (dir_ / "not-pem.txt").string();
  std::ofstream(not_pem) << "SECRET-CONTENT\n";
  o.exporter.certificate_file = not_pem;
  const std::string ca_error = CheckExporterOptions(o.exporter);
  EXPECT_NE(ca_error.find("not-pem.txt"), std::string::npos) << ca_error;
  EXPECT_EQ(ca_error.find("SECRET"), std::string::npos) << ca_error;

  o.exporter.certificate_file = files_.ca_cert;
  o.exporter.client_certificate_file = files_.client_cert;
  EXPECT_NE(CheckExporterOptions(o.exporter).find("without client_key_file"), std::string::npos);
  o.exporter.client_key_file = not_pem;
  const std::string key_error = CheckExporterOptions(o.exporter);
  EXPECT_NE(key_error.find("not-pem.txt"), std::string::npos) << key_error;
  EXPECT_EQ(key_error.find("SECRET"), std::string::npos) << key_error;
  o.exporter.client_key_file = files_.foreign_client_key;  // another certificate's key
  EXPECT_NE(CheckExporterOptions(o.exporter).find("matching the certificate"), std::string::npos);
  EXPECT_EQ(Errors().find("SECRET"), std::string::npos);
}

}  // namespace
}  // namespace ordertrace
