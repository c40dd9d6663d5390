#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <future>
#include <mutex>
#include <string>
#include <vector>

#include "common/metrics.h"
#include "google/rpc/status.pb.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.grpc.pb.h"
#include "receive/otlp_receivers.h"
#include "support/otlp_requests.h"
#include "support/recording_sink.h"

namespace ordertrace::receive {
namespace {

namespace collector = opentelemetry::proto::collector::trace::v1;
namespace trace = opentelemetry::proto::trace::v1;
using namespace std::chrono_literals;

constexpr const char* kExport = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

using FakeSink = testing_support::RecordingSink;

const std::string kTraceId("\x0a\xf7\x65\x19\x16\xcd\x43\xdd\x84\x48\xeb\x21\x1c\x80\x31\x9c", 16);
const std::string kSpanId("\xb7\xad\x6b\x71\x69\x20\x33\x31", 8);

collector::ExportTraceServiceRequest MakeRequest(std::vector<std::string> trace_ids = {kTraceId}) {
  testing_support::RequestBuilder req;
  req.Resource("mes").Scope("price-calculator");
  for (const auto& id : trace_ids) {
    req.Add(testing_support::SpanBuilder("calculate price")
                .Ids(id, kSpanId)
                .Kind(trace::Span::SPAN_KIND_CONSUMER)
                .Times(1700000000000000000ULL, 1700000001500000000ULL)
                .Attr("order.stage", "PRICE_CALCULATED")
                .Event("heartbeat", 1700000000500000000ULL));
  }
  return std::move(req).Build();
}

class OtlpGrpcTest : public ::testing::Test {
 protected:
  void StartReceiver(size_t max_body_bytes = 1 << 20) {
    OtlpReceiverOptions o;
    o.max_body_bytes = max_body_bytes;
    receiver_ = std::make_unique<OtlpGrpcReceiver>(o, &sink_, &metrics_);
    Status s = receiver_->Start("127.0.0.1", 0);
    ASSERT_TRUE(s.ok()) << s.ToString();
    ASSERT_NE(receiver_->port(), 0);
    channel_ = grpc::CreateChannel("127.0.0.1:" + std::to_string(receiver_->port()),
                                   grpc::InsecureChannelCredentials());
    stub_ = collector::TraceService::NewStub(channel_);
  }
  void SetUp() override { StartReceiver(); }
  void TearDown() override {
    if (receiver_) receiver_->Shutdown(1s);
  }

  grpc::Status Export(const collector::ExportTraceServiceRequest& req,
                      collector::ExportTraceServiceResponse* res, bool gzip = false) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 10s);
    if (gzip) ctx.set_compression_algorithm(GRPC_COMPRESS_GZIP);
    return stub_->Export(&ctx, req, res);
  }

  // Calls `method` with raw request bytes through the generic stub.
  grpc::Status RawCall(const std::string& method, const std::string& bytes) {
    grpc::GenericStub stub(channel_);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 10s);
    grpc::Slice slice(bytes);
    grpc::ByteBuffer request(&slice, 1);
    grpc::ByteBuffer response;
    std::promise<grpc::Status> done;
    stub.UnaryCall(&ctx, method, grpc::StubOptions(), &request, &response,
                   [&done](grpc::Status s) { done.set_value(std::move(s)); });
    return done.get_future().get();
  }

  bool HasMetric(const std::string& line) {
    return registry_.Serialize().find(line + "\n") != std::string::npos;
  }

  metrics::Registry registry_;
  ReceiverMetrics metrics_{registry_};
  FakeSink sink_;
  std::unique_ptr<OtlpGrpcReceiver> receiver_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<collector::TraceService::Stub> stub_;
};

TEST_F(OtlpGrpcTest, ExportIsAcceptedAndHandedOn) {
  collector::ExportTraceServiceResponse res;
  grpc::Status s = Export(MakeRequest(), &res);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_FALSE(res.has_partial_success());

  auto batches = sink_.batches();
  ASSERT_EQ(batches.size(), 1u);
  const otlp::SpanBatch& batch = *batches[0];
  EXPECT_EQ(batch.protocol(), otlp::Protocol::kGrpc);
  ASSERT_EQ(batch.spans().size(), 1u);
  const otlp::SpanRef& span = batch.spans()[0];
  EXPECT_EQ(otlp::ToHex(span.trace_id), "0af7651916cd43dd8448eb211c80319c");
  EXPECT_EQ(otlp::ToHex(span.span_id), "b7ad6b7169203331");
  EXPECT_FALSE(span.has_parent());
  EXPECT_EQ(span.name, "calculate price");
  EXPECT_EQ(span.kind, 5);
  EXPECT_EQ(span.end_time_unix_nano - span.start_time_unix_nano, 1500000000u);
  EXPECT_EQ(batch.resources().at(span.resource).service_name, "mes");
  EXPECT_EQ(batch.scopes().at(span.scope).name, "price-calculator");
  otlp::AnyValueView v;
  ASSERT_TRUE(batch.FindAttribute(span, "order.stage", &v));
  EXPECT_EQ(v.str, "PRICE_CALCULATED");
  std::vector<std::string> events;
  batch.ForEachEvent(span, [&](const otlp::EventView& e) { events.emplace_back(e.name); });
  EXPECT_EQ(events, std::vector<std::string>{"heartbeat"});

  EXPECT_TRUE(HasMetric(R"(ordertrace_receiver_accepted_spans_total{protocol="grpc"} 1)"));
  EXPECT_TRUE(HasMetric(R"(ordertrace_receiver_requests_total{protocol="grpc",code="OK"} 1)"));
}

TEST_F(OtlpGrpcTest, GzipCompressedExportIsAccepted) {
  collector::ExportTraceServiceResponse res;
  grpc::Status s = Export(MakeRequest({kTraceId, kTraceId, kTraceId}), &res, /*gzip=*/true);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(sink_.batches().size(), 1u);
  EXPECT_EQ(sink_.batches()[0]->spans().size(), 3u);
}

TEST_F(OtlpGrpcTest, RefusedSpanIsReportedAsPartialSuccess) {
  collector::ExportTraceServiceResponse res;
  grpc::Status s = Export(MakeRequest({kTraceId, std::string(16, '\0')}), &res);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_TRUE(res.has_partial_success());
  EXPECT_EQ(res.partial_success().rejected_spans(), 1);
  EXPECT_FALSE(res.partial_success().error_message().empty());
  ASSERT_EQ(sink_.batches().size(), 1u);
  EXPECT_EQ(sink_.batches()[0]->spans().size(), 1u);
  EXPECT_TRUE(HasMetric(
      R"(ordertrace_receiver_refused_spans_total{protocol="grpc",reason="invalid_trace_id"} 1)"));
}

TEST_F(OtlpGrpcTest, MalformedBytesGetInvalidArgument) {
  grpc::Status s = RawCall(kExport, std::string("\x0a\x05\x12\x03\x12", 5));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("malformed OTLP protobuf"), std::string::npos)
      << s.error_message();
  EXPECT_TRUE(sink_.batches().empty());
  EXPECT_TRUE(HasMetric(
      R"(ordertrace_receiver_refused_spans_total{protocol="grpc",reason="malformed"} 1)"));
  EXPECT_TRUE(HasMetric(
      R"(ordertrace_receiver_requests_total{protocol="grpc",code="INVALID_ARGUMENT"} 1)"));
}

TEST_F(OtlpGrpcTest, RawBytesOfAValidRequestAreAccepted) {
  grpc::Status s = RawCall(kExport, MakeRequest().SerializeAsString());
  EXPECT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(sink_.batches().size(), 1u);
}

TEST_F(OtlpGrpcTest, UnknownMethodIsUnimplemented) {
  EXPECT_EQ(
      RawCall("/opentelemetry.proto.collector.metrics.v1.MetricsService/Export", "").error_code(),
      grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_EQ(RawCall("/no.Such/Method", "x").error_code(), grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_TRUE(sink_.batches().empty());
}

// Parses the RetryInfo out of a status's google.rpc.Status details.
google::rpc::RetryInfo RetryInfoOf(const grpc::Status& s) {
  google::rpc::Status details;
  EXPECT_TRUE(details.ParseFromString(s.error_details()));
  EXPECT_EQ(details.code(), static_cast<int>(s.error_code()));
  google::rpc::RetryInfo retry;
  EXPECT_EQ(details.details_size(), 1);
  if (details.details_size() == 1) {
    EXPECT_EQ(details.details(0).type_url(), "type.googleapis.com/google.rpc.RetryInfo");
    EXPECT_TRUE(details.details(0).UnpackTo(&retry));
  }
  return retry;
}

TEST_F(OtlpGrpcTest, ThrottledGetsResourceExhaustedWithRetryInfo) {
  sink_.RefuseWith(Status::ResourceExhausted("ingest queue full", 1500));
  collector::ExportTraceServiceResponse res;
  grpc::Status s = Export(MakeRequest({kTraceId, kTraceId}), &res);
  ASSERT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(s.error_message(), "ingest queue full");
  google::rpc::RetryInfo retry = RetryInfoOf(s);
  EXPECT_EQ(retry.retry_delay().seconds(), 1);
  EXPECT_EQ(retry.retry_delay().nanos(), 500000000);
  EXPECT_TRUE(HasMetric(R"(ordertrace_receiver_accepted_spans_total{protocol="grpc"} 0)"));
  EXPECT_TRUE(HasMetric(
      R"(ordertrace_receiver_refused_spans_total{protocol="grpc",reason="throttled"} 2)"));
}

TEST_F(OtlpGrpcTest, UnavailableSinkGetsUnavailableWithRetryInfo) {
  sink_.RefuseWith(Status::Unavailable("shutting down", 3000));
  collector::ExportTraceServiceResponse res;
  grpc::Status s = Export(MakeRequest(), &res);
  ASSERT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(RetryInfoOf(s).retry_delay().seconds(), 3);
  EXPECT_TRUE(HasMetric(
      R"(ordertrace_receiver_refused_spans_total{protocol="grpc",reason="unavailable"} 1)"));
}

TEST_F(OtlpGrpcTest, MessageOverTheLimitIsRefusedByGrpc) {
  receiver_->Shutdown(1s);
  StartReceiver(/*max_body_bytes=*/1024);
  auto req = MakeRequest();
  req.mutable_resource_spans(0)->mutable_scope_spans(0)->mutable_spans(0)->set_name(
      std::string(4096, 'n'));
  collector::ExportTraceServiceResponse res;
  EXPECT_EQ(Export(req, &res).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_TRUE(sink_.batches().empty());
  EXPECT_TRUE(Export(MakeRequest(), &res).ok());
}

TEST_F(OtlpGrpcTest, PortInUseIsAClearError) {
  OtlpGrpcReceiver second(OtlpReceiverOptions{}, &sink_, &metrics_);
  Status s = second.Start("127.0.0.1", receiver_->port());
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_EQ(s.message(), "cannot listen on 127.0.0.1:" + std::to_string(receiver_->port()) +
                             ": Address already in use");
}

TEST_F(OtlpGrpcTest, AfterShutdownCallsFail) {
  collector::ExportTraceServiceResponse res;
  ASSERT_TRUE(Export(MakeRequest(), &res).ok());
  receiver_->Shutdown(1s);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 2s);
  grpc::Status s = stub_->Export(&ctx, MakeRequest(), &res);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
  EXPECT_EQ(sink_.batches().size(), 1u);
}

// listen.allow.otlp_grpc: the peer of each call is checked (an IPv4 client of a dual-stack
// listener, "ipv6:[::ffff:127.0.0.1]:port", as the IPv4 address it is).
TEST(OtlpGrpcAllowlistTest, CallsFromOutsideAreRefusedAndReported) {
  for (const bool allowed : {true, false}) {
    metrics::Registry registry;
    ReceiverMetrics metrics(registry);
    FakeSink sink;
    OtlpReceiverOptions o;
    auto set = net::CidrSet::Parse({allowed ? "127.0.0.0/8" : "::1"});
    ASSERT_TRUE(set.ok());
    o.allow = std::make_shared<const net::CidrSet>(*set);
    std::vector<std::string> refused;
    std::mutex mu;
    o.on_refused = [&](const std::string& ip, uint16_t port) {
      std::lock_guard<std::mutex> lock(mu);
      refused.push_back(ip + (port != 0 ? "" : " without port"));
    };
    OtlpGrpcReceiver receiver(o, &sink, &metrics);
    ASSERT_TRUE(receiver.Start("::", 0).ok());
    auto stub = collector::TraceService::NewStub(grpc::CreateChannel(
        "127.0.0.1:" + std::to_string(receiver.port()), grpc::InsecureChannelCredentials()));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 10s);
    collector::ExportTraceServiceResponse res;
    grpc::Status st = stub->Export(&ctx, MakeRequest(), &res);
    receiver.Shutdown(1s);
    if (allowed) {
      EXPECT_TRUE(st.ok()) << st.error_message();
      EXPECT_TRUE(refused.empty());
    } else {
      EXPECT_EQ(st.error_code(), grpc::StatusCode::PERMISSION_DENIED);
      EXPECT_EQ(refused, std::vector<std::string>{"127.0.0.1"});
      EXPECT_TRUE(sink.batches().empty());
    }
  }
}

}  // namespace
}  // namespace ordertrace::receive
