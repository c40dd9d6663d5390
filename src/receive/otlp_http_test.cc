#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>
#include <zlib.h>

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <mutex>
#include <string>
#include <vector>

#include "common/metrics.h"
#include "google/rpc/status.pb.h"
#include "net/http_client.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.pb.h"
#include "receive/otlp_receivers.h"
#include "support/otlp_requests.h"
#include "support/recording_sink.h"

namespace ordertrace::receive {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace collector = opentelemetry::proto::collector::trace::v1;
namespace trace = opentelemetry::proto::trace::v1;
using namespace std::chrono_literals;

using FakeSink = testing_support::RecordingSink;

const std::string kTraceId("\x5b\x8e\xfF\xf7\x98\x03\x81\x03\xd2\x69\xb6\x33\x81\x3f\xc6\x0c", 16);
const std::string kSpanId("\xee\xe1\x9b\x7e\xc3\xc1\xb1\x74", 8);
const std::string kParentId("\xee\xe1\x9b\x7e\xc3\xc1\xb1\x73", 8);
constexpr uint64_t kStart = 1544712660000000000ULL;
constexpr uint64_t kEnd = 1544712661000000000ULL;

// One span per trace id, named "POST /orders/<i>".
collector::ExportTraceServiceRequest MakeRequest(std::vector<std::string> trace_ids = {kTraceId}) {
  testing_support::RequestBuilder req;
  req.Resource("crm").Scope("ordertrace-test", "1.0");
  for (size_t i = 0; i < trace_ids.size(); ++i) {
    req.Add(testing_support::SpanBuilder("POST /orders/" + std::to_string(i))
                .Ids(trace_ids[i], kSpanId, kParentId)
                .Kind(trace::Span::SPAN_KIND_SERVER)
                .Times(kStart, kEnd)
                .Attr("order.id", "ORD-42")
                .Attr("http.response.status_code", 503)
                .Status(trace::Status::STATUS_CODE_ERROR, "boom"));
  }
  return std::move(req).Build();
}

// The same request as MakeRequest() with one span, in OTLP/JSON (hex ids, integer enums,
// 64-bit integers as strings), written by hand as a client would send it.
const char* kJsonRequest = R"({
  "resourceSpans": [{
    "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "crm"}}]},
    "scopeSpans": [{
      "scope": {"name": "ordertrace-test", "version": "1.0"},
      "spans": [{
        "traceId": "5b8efff798038103d269b633813fc60c",
        "spanId": "eee19b7ec3c1b174",
        "parentSpanId": "eee19b7ec3c1b173",
        "name": "POST /orders/0",
        "kind": 2,
        "startTimeUnixNano": "1544712660000000000",
        "endTimeUnixNano": "1544712661000000000",
        "attributes": [
          {"key": "order.id", "value": {"stringValue": "ORD-42"}},
          {"key": "http.response.status_code", "value": {"intValue": "503"}}
        ],
        "status": {"code": 2, "message": "boom"},
        "someFutureField": {"ignored": true}
      }]
    }]
  }]
})";

std::string Gzip(const std::string& in) {
  z_stream zs{};
  deflateInit2(&zs, Z_BEST_SPEED, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&zs, in.size()), '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

class OtlpHttpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    net::HttpServerOptions o;
    o.name = "otlp_http";
    o.max_body_bytes = 64 * 1024;
    server_ = std::make_unique<net::HttpServer>(o);
    OtlpReceiverOptions ro;
    ro.max_body_bytes = o.max_body_bytes;
    RegisterOtlpHttp(*server_, ro, &sink_, &metrics_);
    ASSERT_TRUE(server_->Start().ok());
  }
  void TearDown() override { server_->Shutdown(1s); }

  // The answer as a Beast response, for the assertions on its fields.
  http::response<http::string_body> Post(const std::string& body, const std::string& content_type,
                                         const std::string& content_encoding = "",
                                         const char* method = "POST") {
    net::Url url;
    url.scheme = "http";
    url.host = "127.0.0.1";
    url.port = server_->port();
    net::HttpConnection connection(url);
    net::HeaderList headers;
    if (!content_type.empty()) headers.emplace_back("Content-Type", content_type);
    if (!content_encoding.empty()) headers.emplace_back("Content-Encoding", content_encoding);
    net::HttpOutcome out = connection.Send(method, "/v1/traces", body, headers, 10s, 64 << 20);
    EXPECT_TRUE(out.ok()) << out.failure->Describe();
    http::response<http::string_body> res;
    res.result(static_cast<unsigned>(out.reply.status));
    for (const auto& [name, value] : out.reply.headers) res.insert(name, value);
    res.body() = std::move(out.reply.body);
    return res;
  }

  std::string Metrics() { return registry_.Serialize(); }
  bool HasMetric(const std::string& line) {
    return Metrics().find(line + "\n") != std::string::npos;
  }

  metrics::Registry registry_;
  ReceiverMetrics metrics_{registry_};
  FakeSink sink_;
  std::unique_ptr<net::HttpServer> server_;
};

// Checks the one span of MakeRequest() as the pipeline sees it.
void ExpectTheSpan(const otlp::SpanBatch& batch) {
  ASSERT_EQ(batch.spans().size(), 1u);
  const otlp::SpanRef& span = batch.spans()[0];
  EXPECT_EQ(otlp::ToHex(span.trace_id), "5b8efff798038103d269b633813fc60c");
  EXPECT_EQ(otlp::ToHex(span.span_id), "eee19b7ec3c1b174");
  EXPECT_EQ(otlp::ToHex(span.parent_span_id), "eee19b7ec3c1b173");
  EXPECT_EQ(span.name, "POST /orders/0");
  EXPECT_EQ(span.kind, 2);
  EXPECT_EQ(span.start_time_unix_nano, kStart);
  EXPECT_EQ(span.end_time_unix_nano, kEnd);
  EXPECT_EQ(span.status_code, 2);
  EXPECT_EQ(span.status_message, "boom");
  EXPECT_EQ(batch.resources().at(span.resource).service_name, "crm");
  EXPECT_EQ(batch.scopes().at(span.scope).name, "ordertrace-test");
  EXPECT_EQ(batch.scopes().at(span.scope).version, "1.0");
  otlp::AnyValueView v;
  ASSERT_TRUE(batch.FindAttribute(span, "order.id", &v));
  EXPECT_EQ(v.type, otlp::ValueType::kString);
  EXPECT_EQ(v.str, "ORD-42");
  ASSERT_TRUE(batch.FindAttribute(span, "http.response.status_code", &v));
  EXPECT_EQ(v.type, otlp::ValueType::kInt);
  EXPECT_EQ(v.int_value, 503);
}

TEST_F(OtlpHttpTest, ProtobufRequestIsAcceptedAndHandedOn) {
  auto res = Post(MakeRequest().SerializeAsString(), "application/x-protobuf");
  ASSERT_EQ(res.result_int(), 200) << res.body();
  EXPECT_EQ(res[http::field::content_type], "application/x-protobuf");
  collector::ExportTraceServiceResponse response;
  ASSERT_TRUE(response.ParseFromString(res.body()));
  EXPECT_FALSE(response.has_partial_success());

  auto batches = sink_.batches();
  ASSERT_EQ(batches.size(), 1u);
  EXPECT_EQ(batches[0]->protocol(), otlp::Protocol::kHttpProtobuf);
  ExpectTheSpan(*batches[0]);
}

TEST_F(OtlpHttpTest, JsonRequestIsAcceptedAndAnsweredInJson) {
  auto res = Post(kJsonRequest, "application/json; charset=utf-8");
  ASSERT_EQ(res.result_int(), 200) << res.body();
  EXPECT_EQ(res[http::field::content_type], "application/json");
  EXPECT_EQ(res.body(), "{}");

  auto batches = sink_.batches();
  ASSERT_EQ(batches.size(), 1u);
  EXPECT_EQ(batches[0]->protocol(), otlp::Protocol::kHttpJson);
  ExpectTheSpan(*batches[0]);
  EXPECT_TRUE(HasMetric(R"(ordertrace_receiver_accepted_spans_total{protocol="http_json"} 1)"));
}

TEST_F(OtlpHttpTest, GzipProtobufRequestIsAccepted) {
  const std::string body = Gzip(MakeRequest().SerializeAsString());
  auto res = Post(body, "application/x-protobuf", "gzip");
  ASSERT_EQ(res.result_int(), 200) << res.body();
  ASSERT_EQ(sink_.batches().size(), 1u);
  ExpectTheSpan(*sink_.batches()[0]);
  EXPECT_TRUE(HasMetric(R"(ordertrace_receiver_request_bytes_total{protocol="http_protobuf"} )" +
                        std::to_string(body.size())));
}

TEST_F(OtlpHttpTest, RefusedSpanIsReportedAsPartialSuccess) {
  const std::string zero(16, '\0');
  auto res = Post(MakeRequest({kTraceId, zero}).SerializeAsString(), "application/x-protobuf");
  ASSERT_EQ(res.result_int(), 200) << res.body();
  collector::ExportTraceServiceResponse response;
  ASSERT_TRUE(response.ParseFromString(res.body()));
  ASSERT_TRUE(response.has_partial_success());
  EXPECT_EQ(response.partial_success().rejected_spans(), 1);
  EXPECT_NE(response.partial_success().error_message().find("trace"), std::string::npos)
      << response.partial_success().error_message();

  auto batches = sink_.batches();
  ASSERT_EQ(batches.size(), 1u);
  ExpectTheSpan(*batches[0]);
  EXPECT_TRUE(HasMetric(R"(ordertrace_receiver_accepted_spans_total{protocol="http_protobuf"} 1)"));
  EXPECT_TRUE(HasMetric(
      R"(ordertrace_receiver_refused_spans_total{protocol="http_protobuf",reason="invalid_trace_id"} 1)"));
}

TEST_F(OtlpHttpTest, PartialSuccessInJsonUsesCamelCase) {
  std::string json = kJsonRequest;
  json.replace(json.find("5b8efff798038103d269b633813fc60c"), 32, std::string(32, '0'));
  auto res = Post(json, "application/json");
  ASSERT_EQ(res.result_int(), 200) << res.body();
  collector::ExportTraceServiceResponse response;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(res.body(), &response).ok())
      << res.body();
  EXPECT_EQ(response.partial_success().rejected_spans(), 1);
  EXPECT_NE(res.body().find("\"partialSuccess\""), std::string::npos) << res.body();
  EXPECT_NE(res.body().find("\"rejectedSpans\""), std::string::npos) << res.body();
  EXPECT_TRUE(sink_.batches().empty());  // nothing left to hand on
}

TEST_F(OtlpHttpTest, MalformedProtobufGets400WithStatusBody) {
  auto res = Post(std::string("\x0a\xff\xff\xff\xff\x0f garbage", 14), "application/x-protobuf");
  ASSERT_EQ(res.result_int(), 400);
  EXPECT_EQ(res[http::field::content_type], "application/x-protobuf");
  google::rpc::Status status;
  ASSERT_TRUE(status.ParseFromString(res.body()));
  EXPECT_EQ(status.code(), 3);  // INVALID_ARGUMENT
  EXPECT_NE(status.message().find("malformed OTLP protobuf"), std::string::npos)
      << status.message();
  EXPECT_TRUE(sink_.batches().empty());
  EXPECT_TRUE(HasMetric(
      R"(ordertrace_receiver_refused_spans_total{protocol="http_protobuf",reason="malformed"} 1)"));
  EXPECT_TRUE(
      HasMetric(R"(ordertrace_receiver_requests_total{protocol="http_protobuf",code="400"} 1)"));
}

TEST_F(OtlpHttpTest, MalformedJsonGets400WithJsonStatusBody) {
  auto res = Post(R"({"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "xyz"}]}]}]})",
                  "application/json");
  ASSERT_EQ(res.result_int(), 400);
  EXPECT_EQ(res[http::field::content_type], "application/json");
  google::rpc::Status status;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(res.body(), &status).ok()) << res.body();
  EXPECT_EQ(status.code(), 3);
  EXPECT_NE(status.message().find("traceId"), std::string::npos) << status.message();
  EXPECT_TRUE(sink_.batches().empty());

  res = Post("{not json", "application/json");
  EXPECT_EQ(res.result_int(), 400);
}

TEST_F(OtlpHttpTest, WrongContentTypeGets415) {
  auto res = Post(MakeRequest().SerializeAsString(), "text/plain");
  ASSERT_EQ(res.result_int(), 415);
  google::rpc::Status status;
  ASSERT_TRUE(status.ParseFromString(res.body()));
  EXPECT_NE(status.message().find("text/plain"), std::string::npos) << status.message();
  EXPECT_EQ(Post("x", "").result_int(), 415);
  EXPECT_TRUE(sink_.batches().empty());
  EXPECT_TRUE(HasMetric(
      R"(ordertrace_receiver_refused_spans_total{protocol="http_protobuf",reason="unsupported"} 2)"));
}

TEST_F(OtlpHttpTest, OtherMethodGets405) {
  auto res = Post("", "", "", "GET");
  EXPECT_EQ(res.result_int(), 405);
  EXPECT_EQ(res[http::field::allow], "POST");
}

TEST_F(OtlpHttpTest, BodyOverLimitGets413WithStatusBody) {
  auto res = Post(std::string(100 * 1024, 'a'), "application/x-protobuf");
  ASSERT_EQ(res.result_int(), 413);
  google::rpc::Status status;
  ASSERT_TRUE(status.ParseFromString(res.body()));
  EXPECT_NE(status.message().find("limit of 65536 bytes"), std::string::npos) << status.message();
  EXPECT_TRUE(HasMetric(
      R"(ordertrace_receiver_refused_spans_total{protocol="http_protobuf",reason="too_large"} 1)"));
  EXPECT_TRUE(
      HasMetric(R"(ordertrace_receiver_requests_total{protocol="http_protobuf",code="413"} 1)"));
}

TEST_F(OtlpHttpTest, GzipBombGets413AndCorruptGzip400) {
  auto res = Post(Gzip(std::string(10 << 20, '\0')), "application/json", "gzip");
  ASSERT_EQ(res.result_int(), 413);
  EXPECT_EQ(res[http::field::content_type], "application/json");
  res = Post("\x1f\x8b garbage", "application/x-protobuf", "gzip");
  ASSERT_EQ(res.result_int(), 400);
  google::rpc::Status status;
  ASSERT_TRUE(status.ParseFromString(res.body()));
  EXPECT_NE(status.message().find("invalid gzip body"), std::string::npos) << status.message();
  EXPECT_EQ(Post("x", "application/x-protobuf", "zstd").result_int(), 415);
  EXPECT_TRUE(HasMetric(
      R"(ordertrace_receiver_refused_spans_total{protocol="http_json",reason="too_large"} 1)"));
}

TEST_F(OtlpHttpTest, ThrottledGets429WithRetryAfterAndCountsNothingAccepted) {
  sink_.RefuseWith(Status::ResourceExhausted("ingest queue full", 2500));
  auto res = Post(MakeRequest({kTraceId, kTraceId}).SerializeAsString(), "application/x-protobuf");
  ASSERT_EQ(res.result_int(), 429);
  EXPECT_EQ(res[http::field::retry_after], "3");
  google::rpc::Status status;
  ASSERT_TRUE(status.ParseFromString(res.body()));
  EXPECT_EQ(status.code(), 8);  // RESOURCE_EXHAUSTED
  EXPECT_EQ(status.message(), "ingest queue full");
  ASSERT_EQ(status.details_size(), 1);
  google::rpc::RetryInfo retry;
  ASSERT_TRUE(status.details(0).UnpackTo(&retry));
  EXPECT_EQ(retry.retry_delay().seconds(), 2);
  EXPECT_EQ(retry.retry_delay().nanos(), 500000000);

  EXPECT_TRUE(HasMetric(R"(ordertrace_receiver_accepted_spans_total{protocol="http_protobuf"} 0)"));
  EXPECT_TRUE(HasMetric(
      R"(ordertrace_receiver_refused_spans_total{protocol="http_protobuf",reason="throttled"} 2)"));
  EXPECT_TRUE(
      HasMetric(R"(ordertrace_receiver_requests_total{protocol="http_protobuf",code="429"} 1)"));
}

TEST_F(OtlpHttpTest, RetryAfterIsAtLeastOneSecond) {
  sink_.RefuseWith(Status::ResourceExhausted("full", 10));
  auto res = Post(kJsonRequest, "application/json");
  ASSERT_EQ(res.result_int(), 429);
  EXPECT_EQ(res[http::field::retry_after], "1");
  EXPECT_EQ(res[http::field::content_type], "application/json");
}

TEST_F(OtlpHttpTest, UnavailableGets503WithRetryAfter) {
  sink_.RefuseWith(Status::Unavailable("shutting down", 5000));
  auto res = Post(MakeRequest().SerializeAsString(), "application/x-protobuf");
  ASSERT_EQ(res.result_int(), 503);
  EXPECT_EQ(res[http::field::retry_after], "5");
  google::rpc::Status status;
  ASSERT_TRUE(status.ParseFromString(res.body()));
  EXPECT_EQ(status.code(), 14);  // UNAVAILABLE
  EXPECT_TRUE(HasMetric(
      R"(ordertrace_receiver_refused_spans_total{protocol="http_protobuf",reason="unavailable"} 1)"));
}

TEST_F(OtlpHttpTest, MetricsCountAcceptedSpansRequestsAndDurations) {
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(Post(MakeRequest({kTraceId, kTraceId}).SerializeAsString(), "application/x-protobuf")
                  .result_int(),
              200);
  }
  EXPECT_TRUE(HasMetric(R"(ordertrace_receiver_accepted_spans_total{protocol="http_protobuf"} 6)"));
  EXPECT_TRUE(
      HasMetric(R"(ordertrace_receiver_requests_total{protocol="http_protobuf",code="200"} 3)"));
  EXPECT_TRUE(HasMetric(
      R"(ordertrace_receiver_request_duration_seconds_count{protocol="http_protobuf"} 3)"));
  EXPECT_TRUE(HasMetric(R"(ordertrace_receiver_accepted_spans_total{protocol="grpc"} 0)"));
}

TEST_F(OtlpHttpTest, EmptyRequestIsOkAndNotHandedOn) {
  auto res = Post("", "application/x-protobuf");
  ASSERT_EQ(res.result_int(), 200) << res.body();
  EXPECT_TRUE(sink_.batches().empty());
}

}  // namespace
}  // namespace ordertrace::receive
