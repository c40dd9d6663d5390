// OtlpExporter against real upstreams: the gateway's own OTLP/HTTP and OTLP/gRPC receivers
// (with a scripted BatchSink), scripted HTTP and gRPC servers for answers the receivers never
// give, a listener that never answers, and TLS servers with throwaway certificates made by the
// openssl command line.

#include "forward/exporter/exporter.h"

#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/metrics.h"
#include "google/rpc/status.pb.h"
#include "net/http_server.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.pb.h"
#include "receive/otlp_receivers.h"
#include "support/otlp_requests.h"
#include "support/recording_sink.h"

namespace ordertrace::forward {
namespace {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;
namespace http = beast::http;
namespace collector = opentelemetry::proto::collector::trace::v1;
namespace trace = opentelemetry::proto::trace::v1;
using tcp = asio::ip::tcp;
using Kind = ExportResult::Kind;
using namespace std::chrono_literals;

// ---------------------------------------------------------------------------------------------
// Requests

const std::string kTraceId("\x5b\x8e\xff\xf7\x98\x03\x81\x03\xd2\x69\xb6\x33\x81\x3f\xc6\x0c", 16);
const std::string kSpanId("\xee\xe1\x9b\x7e\xc3\xc1\xb1\x74", 8);
const std::string kMalformed("\x0a\xff\xff\xff\xff\x0f garbage", 14);

// One span per trace id, named "span <i>".
std::string MakeRequest(std::vector<std::string> trace_ids = {kTraceId}) {
  testing_support::RequestBuilder req;
  req.Resource("crm").Scope("ordertrace-test");
  for (size_t i = 0; i < trace_ids.size(); ++i) {
    req.Add(testing_support::SpanBuilder("span " + std::to_string(i))
                .Ids(trace_ids[i], kSpanId)
                .Kind(trace::Span::SPAN_KIND_SERVER)
                .Times(1700000000000000000ULL, 1700000001000000000ULL)
                .Attr("order.id", "ORD-" + std::to_string(i)));
  }
  return req.Serialized();
}

std::string Describe(const ExportResult& r) {
  const char* kind = r.kind == Kind::kOk          ? "ok"
                     : r.kind == Kind::kRetryable ? "retryable"
                                                  : "permanent";
  return std::string(kind) + " code=" + r.code + " reason=" + r.reason +
         " retry_after_ms=" + std::to_string(r.retry_after_ms);
}

std::unique_ptr<OtlpExporter> MustCreate(const ExporterOptions& o) {
  auto created = OtlpExporter::Create(o);
  EXPECT_TRUE(created.ok()) << created.status().ToString();
  if (!created.ok()) return nullptr;
  return std::move(created).value();
}

ExporterOptions Options(const std::string& url, std::chrono::milliseconds timeout = 5s) {
  ExporterOptions o;
  o.url = url;
  o.timeout = timeout;
  return o;
}

// A port nothing listens on (bound, read, released).
uint16_t FreePort() {
  asio::io_context ioc;
  tcp::acceptor acceptor(ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  return acceptor.local_endpoint().port();
}

// ---------------------------------------------------------------------------------------------
// The gateway's own receivers as the upstream

using FakeSink = testing_support::RecordingSink;

class ReceiversTest : public ::testing::Test {
 protected:
  void SetUp() override {
    net::HttpServerOptions o;
    o.name = "upstream_http";
    o.idle_timeout = idle_timeout_;
    http_ = std::make_unique<net::HttpServer>(o);
    receive::RegisterOtlpHttp(*http_, receive::OtlpReceiverOptions{}, &sink_, &metrics_);
    ASSERT_TRUE(http_->Start().ok());
    grpc_ = std::make_unique<receive::OtlpGrpcReceiver>(receive::OtlpReceiverOptions{}, &sink_,
                                                        &metrics_);
    Status s = grpc_->Start("127.0.0.1", 0);
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  void TearDown() override {
    http_->Shutdown(1s);
    grpc_->Shutdown(1s);
  }

  std::string HttpUrl() {
    return "http://127.0.0.1:" + std::to_string(http_->port()) + "/v1/traces";
  }
  std::string GrpcUrl() { return "grpc://127.0.0.1:" + std::to_string(grpc_->port()); }
  std::vector<std::string> Urls() { return {HttpUrl(), GrpcUrl()}; }

  std::chrono::milliseconds idle_timeout_{60000};
  metrics::Registry registry_;
  receive::ReceiverMetrics metrics_{registry_};
  FakeSink sink_;
  std::unique_ptr<net::HttpServer> http_;
  std::unique_ptr<receive::OtlpGrpcReceiver> grpc_;
};

TEST_F(ReceiversTest, ExportIsAcceptedAndTheSinkReceivesTheSpans) {
  for (const std::string& url : Urls()) {
    SCOPED_TRACE(url);
    auto exporter = MustCreate(Options(url));
    ASSERT_TRUE(exporter);
    ExportResult r = exporter->Export(MakeRequest({kTraceId, kTraceId}));
    EXPECT_EQ(r.kind, Kind::kOk) << Describe(r);
    EXPECT_EQ(r.code, url.starts_with("http") ? "200" : "OK");
    EXPECT_EQ(r.rejected_spans, 0);
    EXPECT_EQ(r.retry_after_ms, -1);
  }
  auto batches = sink_.batches();
  ASSERT_EQ(batches.size(), 2u);
  EXPECT_EQ(batches[0]->protocol(), otlp::Protocol::kHttpProtobuf);
  EXPECT_EQ(batches[1]->protocol(), otlp::Protocol::kGrpc);
  for (const auto& b : batches) {
    ASSERT_EQ(b->spans().size(), 2u);
    EXPECT_EQ(otlp::ToHex(b->spans()[0].trace_id), "5b8efff798038103d269b633813fc60c");
    EXPECT_EQ(b->spans()[1].name, "span 1");
    EXPECT_EQ(b->resources().at(b->spans()[0].resource).service_name, "crm");
  }
}

TEST_F(ReceiversTest, SchemeNames) {
  EXPECT_STREQ(MustCreate(Options(HttpUrl()))->scheme(), "http");
  EXPECT_STREQ(MustCreate(Options(GrpcUrl()))->scheme(), "grpc");
}

TEST_F(ReceiversTest, GzipExportIsAccepted) {
  for (const std::string& url : Urls()) {
    SCOPED_TRACE(url);
    ExporterOptions o = Options(url);
    o.gzip = true;
    auto exporter = MustCreate(o);
    ASSERT_TRUE(exporter);
    ExportResult r = exporter->Export(MakeRequest({kTraceId, kTraceId, kTraceId}));
    EXPECT_EQ(r.kind, Kind::kOk) << Describe(r);
  }
  auto batches = sink_.batches();
  ASSERT_EQ(batches.size(), 2u);
  EXPECT_EQ(batches[0]->spans().size(), 3u);
  EXPECT_EQ(batches[1]->spans().size(), 3u);
}

TEST_F(ReceiversTest, RefusedSpanIsReportedAsPartialSuccess) {
  for (const std::string& url : Urls()) {
    SCOPED_TRACE(url);
    auto exporter = MustCreate(Options(url));
    ASSERT_TRUE(exporter);
    ExportResult r = exporter->Export(MakeRequest({kTraceId, std::string(16, '\0')}));
    EXPECT_EQ(r.kind, Kind::kOk) << Describe(r);
    EXPECT_EQ(r.rejected_spans, 1);
    EXPECT_NE(r.partial_message.find("trace"), std::string::npos) << r.partial_message;
  }
  EXPECT_EQ(sink_.SpanNames(), (std::vector<std::string>{"span 0", "span 0"}));
}

TEST_F(ReceiversTest, ThrottledSinkIsRetryableWithTheUpstreamsDelay) {
  sink_.RefuseWith(Status::ResourceExhausted("ingest queue full", 2500));
  auto http = MustCreate(Options(HttpUrl()));
  ExportResult r = http->Export(MakeRequest());
  EXPECT_EQ(r.kind, Kind::kRetryable) << Describe(r);
  EXPECT_EQ(r.code, "429");
  EXPECT_EQ(r.retry_after_ms, 3000);  // Retry-After: 3 (whole seconds, rounded up)
  EXPECT_EQ(r.reason, "http 429: ingest queue full");

  auto grpc = MustCreate(Options(GrpcUrl()));
  r = grpc->Export(MakeRequest());
  EXPECT_EQ(r.kind, Kind::kRetryable) << Describe(r);
  EXPECT_EQ(r.code, "RESOURCE_EXHAUSTED");
  EXPECT_EQ(r.retry_after_ms, 2500);  // RetryInfo
  EXPECT_EQ(r.reason, "grpc RESOURCE_EXHAUSTED: ingest queue full");
  EXPECT_TRUE(sink_.batches().empty());
}

TEST_F(ReceiversTest, UnavailableSinkIsRetryable) {
  sink_.RefuseWith(Status::Unavailable("shutting down", 5000));
  auto http = MustCreate(Options(HttpUrl()));
  ExportResult r = http->Export(MakeRequest());
  EXPECT_EQ(r.kind, Kind::kRetryable) << Describe(r);
  EXPECT_EQ(r.code, "503");
  EXPECT_EQ(r.retry_after_ms, 5000);

  auto grpc = MustCreate(Options(GrpcUrl()));
  r = grpc->Export(MakeRequest());
  EXPECT_EQ(r.kind, Kind::kRetryable) << Describe(r);
  EXPECT_EQ(r.code, "UNAVAILABLE");
  EXPECT_EQ(r.retry_after_ms, 5000);
}

TEST_F(ReceiversTest, MalformedRequestIsPermanent) {
  auto http = MustCreate(Options(HttpUrl()));
  ExportResult r = http->Export(kMalformed);
  EXPECT_EQ(r.kind, Kind::kPermanent) << Describe(r);
  EXPECT_EQ(r.code, "400");
  EXPECT_EQ(r.retry_after_ms, -1);
  EXPECT_NE(r.reason.find("http 400: malformed OTLP protobuf"), std::string::npos) << r.reason;

  auto grpc = MustCreate(Options(GrpcUrl()));
  r = grpc->Export(kMalformed);
  EXPECT_EQ(r.kind, Kind::kPermanent) << Describe(r);
  EXPECT_EQ(r.code, "INVALID_ARGUMENT");
  EXPECT_NE(r.reason.find("grpc INVALID_ARGUMENT: malformed OTLP protobuf"), std::string::npos)
      << r.reason;
  EXPECT_TRUE(sink_.batches().empty());

  // The connection stays usable after an error answer.
  EXPECT_EQ(http->Export(MakeRequest()).kind, Kind::kOk);
  EXPECT_EQ(grpc->Export(MakeRequest()).kind, Kind::kOk);
}

TEST_F(ReceiversTest, WrongPathIsPermanent) {
  auto http = MustCreate(Options("http://127.0.0.1:" + std::to_string(http_->port()) + "/v2/x"));
  ExportResult r = http->Export(MakeRequest());
  EXPECT_EQ(r.kind, Kind::kPermanent) << Describe(r);
  EXPECT_EQ(r.code, "404");
}

TEST_F(ReceiversTest, DefaultPathIsV1Traces) {
  for (const char* suffix : {"", "/"}) {
    auto http = MustCreate(Options("http://127.0.0.1:" + std::to_string(http_->port()) + suffix));
    EXPECT_EQ(http->Export(MakeRequest()).kind, Kind::kOk) << suffix;
  }
  EXPECT_EQ(sink_.batches().size(), 2u);
}

TEST_F(ReceiversTest, ManyExportsOverOneExporter) {
  for (const std::string& url : Urls()) {
    auto exporter = MustCreate(Options(url));
    for (int i = 0; i < 20; ++i) ASSERT_EQ(exporter->Export(MakeRequest()).kind, Kind::kOk) << i;
  }
  EXPECT_EQ(sink_.batches().size(), 40u);
}

class IdleReceiversTest : public ReceiversTest {
 protected:
  IdleReceiversTest() { idle_timeout_ = 100ms; }
};

// The upstream closes the idle keep-alive connection; the next export reconnects instead of
// reporting an error.
TEST_F(IdleReceiversTest, ClosedKeepAliveConnectionIsReplaced) {
  auto http = MustCreate(Options(HttpUrl()));
  ASSERT_EQ(http->Export(MakeRequest()).kind, Kind::kOk);
  std::this_thread::sleep_for(400ms);
  ExportResult r = http->Export(MakeRequest());
  EXPECT_EQ(r.kind, Kind::kOk) << Describe(r);
  EXPECT_EQ(sink_.batches().size(), 2u);
}

// The upstream goes away and comes back on the same port.
TEST_F(ReceiversTest, UpstreamRestartIsRetryableThenOk) {
  auto http = MustCreate(Options(HttpUrl(), 2s));
  ASSERT_EQ(http->Export(MakeRequest()).kind, Kind::kOk);
  const uint16_t port = http_->port();
  http_->Shutdown(1s);
  ExportResult r = http->Export(MakeRequest());
  EXPECT_EQ(r.kind, Kind::kRetryable) << Describe(r);
  EXPECT_EQ(r.code, "connect_error") << Describe(r);

  net::HttpServerOptions o;
  o.port = port;
  http_ = std::make_unique<net::HttpServer>(o);
  receive::RegisterOtlpHttp(*http_, receive::OtlpReceiverOptions{}, &sink_, &metrics_);
  ASSERT_TRUE(http_->Start().ok());
  r = http->Export(MakeRequest());
  EXPECT_EQ(r.kind, Kind::kOk) << Describe(r);
  EXPECT_EQ(sink_.batches().size(), 2u);
}

// gRPC backs off between reconnection attempts; the exporter caps that at 5 s so that a
// restarted upstream is found again promptly.
TEST_F(ReceiversTest, GrpcUpstreamRestartIsFoundAgain) {
  auto grpc = MustCreate(Options(GrpcUrl(), 2s));
  ASSERT_EQ(grpc->Export(MakeRequest()).kind, Kind::kOk);
  const uint16_t port = grpc_->port();
  grpc_->Shutdown(1s);
  ExportResult r = grpc->Export(MakeRequest());
  EXPECT_EQ(r.kind, Kind::kRetryable) << Describe(r);
  EXPECT_EQ(r.code, "UNAVAILABLE");
  std::this_thread::sleep_for(1500ms);  // let the backoff grow
  EXPECT_EQ(grpc->Export(MakeRequest()).kind, Kind::kRetryable);

  grpc_ = std::make_unique<receive::OtlpGrpcReceiver>(receive::OtlpReceiverOptions{}, &sink_,
                                                      &metrics_);
  Status s = grpc_->Start("127.0.0.1", port);
  ASSERT_TRUE(s.ok()) << s.ToString();
  const auto t0 = std::chrono::steady_clock::now();
  while (grpc->Export(MakeRequest()).kind != Kind::kOk) {
    ASSERT_LT(std::chrono::steady_clock::now() - t0, 7s) << "not reconnected";
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(sink_.batches().size(), 2u);
}

// ---------------------------------------------------------------------------------------------
// Nothing listening, or a listener that never answers

TEST(OtlpExporterTest, NothingListeningIsRetryable) {
  const uint16_t port = FreePort();
  const std::string http_url = "http://127.0.0.1:" + std::to_string(port) + "/v1/traces";
  auto http = MustCreate(Options(http_url, 5s));
  const auto t0 = std::chrono::steady_clock::now();
  ExportResult r = http->Export(MakeRequest());
  EXPECT_EQ(r.kind, Kind::kRetryable) << Describe(r);
  EXPECT_EQ(r.code, "connect_error");
  EXPECT_NE(r.reason.find("refused"), std::string::npos) << r.reason;

  auto grpc = MustCreate(Options("grpc://127.0.0.1:" + std::to_string(port), 5s));
  r = grpc->Export(MakeRequest());
  EXPECT_EQ(r.kind, Kind::kRetryable) << Describe(r);
  EXPECT_EQ(r.code, "UNAVAILABLE");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 4s);  // refused at once, not at the timeout
}

TEST(OtlpExporterTest, UnresolvableHostIsRetryable) {
  auto http = MustCreate(Options("http://no-such-host.invalid:4318/v1/traces", 5s));
  ExportResult r = http->Export(MakeRequest());
  EXPECT_EQ(r.kind, Kind::kRetryable) << Describe(r);
  EXPECT_TRUE(r.code == "connect_error" || r.code == "timeout") << Describe(r);
}

// The kernel completes the TCP handshake for a listening socket's backlog even though nobody
// accepts: the request is sent and no answer ever comes.
TEST(OtlpExporterTest, SilentUpstreamTimesOutWithinTheTimeout) {
  asio::io_context ioc;
  tcp::acceptor silent(ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  const std::string port = std::to_string(silent.local_endpoint().port());
  for (const std::string& url : {"http://127.0.0.1:" + port, "grpc://127.0.0.1:" + port}) {
    SCOPED_TRACE(url);
    auto exporter = MustCreate(Options(url, 300ms));
    const auto t0 = std::chrono::steady_clock::now();
    ExportResult r = exporter->Export(MakeRequest());
    const auto took = std::chrono::steady_clock::now() - t0;
    EXPECT_EQ(r.kind, Kind::kRetryable) << Describe(r);
    EXPECT_EQ(r.code, url.starts_with("http") ? "timeout" : "DEADLINE_EXCEEDED");
    EXPECT_GE(took, 250ms);
    EXPECT_LT(took, 2s);
  }
}

// A server that answers something other than HTTP, then closes.
TEST(OtlpExporterTest, NotAnHttpAnswerIsRetryableProtocolError) {
  asio::io_context ioc;
  tcp::acceptor acceptor(ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  const uint16_t port = acceptor.local_endpoint().port();
  std::thread server([&] {
    tcp::socket s(ioc);
    boost::system::error_code ec;
    acceptor.accept(s, ec);
    if (ec) return;
    asio::write(s, asio::buffer(std::string("SSH-2.0-OpenSSH_9.2\r\n\r\n")), ec);
    std::this_thread::sleep_for(100ms);
  });
  auto http = MustCreate(Options("http://127.0.0.1:" + std::to_string(port), 2s));
  ExportResult r = http->Export(MakeRequest());
  server.join();
  EXPECT_EQ(r.kind, Kind::kRetryable) << Describe(r);
  EXPECT_EQ(r.code, "protocol_error") << Describe(r);
}

// ---------------------------------------------------------------------------------------------
// A scripted HTTP upstream: records requests, answers as told.

struct RecordedRequest {
  std::string path;
  std::string query;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;  // gunzipped
  size_t received_bytes = 0;
  std::string peer;
  std::string Header(const std::string& name) const {
    for (const auto& [k, v] : headers) {
      if (k == name) return v;
    }
    return "";
  }
};

class ScriptedHttp {
 public:
  explicit ScriptedHttp(const std::string& path = "/v1/traces", size_t max_body_bytes = 16 << 20) {
    net::HttpServerOptions options;
    options.max_body_bytes = max_body_bytes;
    server_ = std::make_unique<net::HttpServer>(options);
    server_->Route("POST", path, [this](net::HttpRequest& req, net::HttpResponse& res) {
      std::lock_guard<std::mutex> lock(mu_);
      requests_.push_back(
          {req.path, req.query, req.headers, req.body, req.received_bytes, req.peer});
      res = answer_;
    });
    EXPECT_TRUE(server_->Start().ok());
  }
  ~ScriptedHttp() { server_->Shutdown(1s); }

  void Answer(int status, std::string body = "", std::string content_type = "",
              std::vector<std::pair<std::string, std::string>> headers = {}) {
    std::lock_guard<std::mutex> lock(mu_);
    answer_.status = status;
    answer_.body = std::move(body);
    answer_.content_type = content_type.empty() ? "application/x-protobuf" : content_type;
    answer_.headers = std::move(headers);
  }
  std::vector<RecordedRequest> requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }
  uint16_t port() const { return server_->port(); }
  std::string Url(const std::string& path = "/v1/traces") {
    return "http://127.0.0.1:" + std::to_string(port()) + path;
  }

 private:
  std::mutex mu_;
  net::HttpResponse answer_{200, "application/x-protobuf", {}, "", nullptr, std::nullopt};
  std::vector<RecordedRequest> requests_;
  std::unique_ptr<net::HttpServer> server_;
};

std::string RpcStatus(int code, const std::string& message, int retry_ms = -1) {
  google::rpc::Status status;
  status.set_code(code);
  status.set_message(message);
  if (retry_ms >= 0) {
    google::rpc::RetryInfo retry;
    retry.mutable_retry_delay()->set_seconds(retry_ms / 1000);
    retry.mutable_retry_delay()->set_nanos((retry_ms % 1000) * 1000000);
    status.add_details()->PackFrom(retry);
  }
  return status.SerializeAsString();
}

TEST(OtlpHttpExporterTest, HeadersContentTypeAndGzipArrive) {
  ScriptedHttp upstream("/custom/traces");
  ExporterOptions o = Options(upstream.Url("/custom/traces?tenant=a"));
  o.headers = {{"Authorization", "Bearer s3cret"}, {"X-Scope-OrgID", "orders"}};
  o.gzip = true;
  auto exporter = MustCreate(o);
  const std::string request = MakeRequest({kTraceId, kTraceId, kTraceId, kTraceId});
  ExportResult r = exporter->Export(request);
  ASSERT_EQ(r.kind, Kind::kOk) << Describe(r);

  auto reqs = upstream.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].path, "/custom/traces");
  EXPECT_EQ(reqs[0].query, "tenant=a");
  EXPECT_EQ(reqs[0].Header("authorization"), "Bearer s3cret");
  EXPECT_EQ(reqs[0].Header("x-scope-orgid"), "orders");
  EXPECT_EQ(reqs[0].Header("content-type"), "application/x-protobuf");
  EXPECT_EQ(reqs[0].Header("content-encoding"), "gzip");
  EXPECT_EQ(reqs[0].Header("user-agent"), "ordertrace");
  EXPECT_EQ(reqs[0].Header("host"), "127.0.0.1:" + std::to_string(upstream.port()));
  EXPECT_EQ(reqs[0].body, request);  // the server gunzipped it
  EXPECT_LT(reqs[0].received_bytes, request.size());
}

TEST(OtlpHttpExporterTest, WithoutGzipTheBodyIsSentAsIs) {
  ScriptedHttp upstream;
  auto exporter = MustCreate(Options(upstream.Url()));
  const std::string request = MakeRequest();
  ASSERT_EQ(exporter->Export(request).kind, Kind::kOk);
  auto reqs = upstream.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].Header("content-encoding"), "");
  EXPECT_EQ(reqs[0].received_bytes, request.size());
  EXPECT_EQ(reqs[0].body, request);
}

TEST(OtlpHttpExporterTest, KeepAliveConnectionIsReused) {
  ScriptedHttp upstream;
  auto exporter = MustCreate(Options(upstream.Url()));
  for (int i = 0; i < 3; ++i) ASSERT_EQ(exporter->Export(MakeRequest()).kind, Kind::kOk);
  auto reqs = upstream.requests();
  ASSERT_EQ(reqs.size(), 3u);
  EXPECT_EQ(reqs[0].peer, reqs[1].peer);
  EXPECT_EQ(reqs[1].peer, reqs[2].peer);
}

TEST(OtlpHttpExporterTest, RetryableStatusesAndRetryAfter) {
  ScriptedHttp upstream;
  auto exporter = MustCreate(Options(upstream.Url()));

  upstream.Answer(429, RpcStatus(8, "slow down"), "", {{"Retry-After", "7"}});
  ExportResult r = exporter->Export(MakeRequest());
  EXPECT_EQ(r.kind, Kind::kRetryable) << Describe(r);
  EXPECT_EQ(r.retry_after_ms, 7000);
  EXPECT_EQ(r.reason, "http 429: slow down");

  // An HTTP-date, about 10 s from now.
  char date[64];
  const std::time_t later = std::time(nullptr) + 10;
  std::tm tm{};
  gmtime_r(&later, &tm);
  std::strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  upstream.Answer(503, "", "text/plain", {{"Retry-After", date}});
  r = exporter->Export(MakeRequest());
  EXPECT_EQ(r.kind, Kind::kRetryable) << Describe(r);
  EXPECT_EQ(r.code, "503");
  EXPECT_GT(r.retry_after_ms, 7000) << date;
  EXPECT_LE(r.retry_after_ms, 10000) << date;

  // A date in the past: retry now.
  upstream.Answer(503, "", "", {{"Retry-After", "Sun, 06 Nov 1994 08:49:37 GMT"}});
  EXPECT_EQ(exporter->Export(MakeRequest()).retry_after_ms, 0);

  // No Retry-After: the RetryInfo of the body, else none.
  upstream.Answer(502, RpcStatus(14, "bad gateway", 1500));
  r = exporter->Export(MakeRequest());
  EXPECT_EQ(r.kind, Kind::kRetryable) << Describe(r);
  EXPECT_EQ(r.retry_after_ms, 1500);
  upstream.Answer(504, "<html>gateway timeout</html>", "text/html");
  r = exporter->Export(MakeRequest());
  EXPECT_EQ(r.kind, Kind::kRetryable) << Describe(r);
  EXPECT_EQ(r.code, "504");
  EXPECT_EQ(r.retry_after_ms, -1);
  EXPECT_EQ(r.reason, "http 504");

  upstream.Answer(429, "", "", {{"Retry-After", "99999999999"}});
  EXPECT_EQ(exporter->Export(MakeRequest()).retry_after_ms, 24 * 3600 * 1000);  // clamped

  upstream.Answer(429, "", "", {{"Retry-After", "soon"}});
  EXPECT_EQ(exporter->Export(MakeRequest()).retry_after_ms, -1);
}

TEST(OtlpHttpExporterTest, OtherStatusesArePermanent) {
  ScriptedHttp upstream;
  auto exporter = MustCreate(Options(upstream.Url()));
  struct Case {
    int status;
    std::string body, content_type, reason;
  };
  const std::vector<Case> cases = {
      {401, RpcStatus(16, "bad token"), "application/x-protobuf", "http 401: bad token"},
      {403, R"({"code": 7, "message": "no such tenant", "details": []})", "application/json",
       "http 403: no such tenant"},
      {413, "request entity too large\n", "text/plain", "http 413: request entity too large"},
      {500, "\x08\x0d\x12", "application/x-protobuf", "http 500"},  // truncated Status: ignored
      {501, "", "", "http 501"},
      {301, "", "", "http 301 (redirects are not followed)"},
      {408, "", "", "http 408"},
  };
  for (const Case& c : cases) {
    upstream.Answer(c.status, c.body, c.content_type);
    ExportResult r = exporter->Export(MakeRequest());
    EXPECT_EQ(r.kind, Kind::kPermanent) << c.status << " " << Describe(r);
    EXPECT_EQ(r.code, std::to_string(c.status));
    EXPECT_EQ(r.reason, c.reason);
    EXPECT_EQ(r.retry_after_ms, -1);
  }
}

// The upstream answers 413 as soon as it has read the headers and stops reading: the exporter
// reads the answer while still sending, instead of failing on the write.
TEST(OtlpHttpExporterTest, EarlyAnswerToAnOversizeRequestIsRead) {
  ScriptedHttp upstream("/v1/traces", /*max_body_bytes=*/1024);
  auto exporter = MustCreate(Options(upstream.Url()));
  for (size_t size : {size_t{2} << 20, size_t{24} << 20}) {
    ExportResult r = exporter->Export(std::string(size, 'x'));
    EXPECT_EQ(r.kind, Kind::kPermanent) << size << " " << Describe(r);
    EXPECT_EQ(r.code, "413");
    EXPECT_NE(r.reason.find("exceeds the limit of 1024 bytes"), std::string::npos) << r.reason;
  }
  EXPECT_TRUE(upstream.requests().empty());
  EXPECT_EQ(exporter->Export("").kind, Kind::kOk);  // a new connection
}

TEST(OtlpHttpExporterTest, SuccessAnswers) {
  ScriptedHttp upstream;
  auto exporter = MustCreate(Options(upstream.Url()));
  collector::ExportTraceServiceResponse partial;
  partial.mutable_partial_success()->set_rejected_spans(3);
  partial.mutable_partial_success()->set_error_message("3 spans too old");

  upstream.Answer(200, partial.SerializeAsString());
  ExportResult r = exporter->Export(MakeRequest());
  EXPECT_EQ(r.kind, Kind::kOk) << Describe(r);
  EXPECT_EQ(r.rejected_spans, 3);
  EXPECT_EQ(r.partial_message, "3 spans too old");

  upstream.Answer(200, R"({"partialSuccess": {"rejectedSpans": "2", "errorMessage": "x"}})",
                  "application/json");
  r = exporter->Export(MakeRequest());
  EXPECT_EQ(r.kind, Kind::kOk) << Describe(r);
  EXPECT_EQ(r.rejected_spans, 2);

  upstream.Answer(202, "not protobuf at all \xff", "text/plain");
  r = exporter->Export(MakeRequest());
  EXPECT_EQ(r.kind, Kind::kOk) << Describe(r);
  EXPECT_EQ(r.code, "202");
  EXPECT_EQ(r.rejected_spans, 0);
}

// ---------------------------------------------------------------------------------------------
// A scripted gRPC upstream: records calls (metadata, method, request), answers as told.

class ScriptedGrpc : public grpc::CallbackGenericService {
 public:
  struct Call {
    std::string method;
    std::multimap<std::string, std::string> metadata;
    std::string request;
  };

  ~ScriptedGrpc() override { Stop(); }

  // Starts on 127.0.0.1:0 with `credentials` (insecure by default).
  uint16_t Start(std::shared_ptr<grpc::ServerCredentials> credentials = nullptr) {
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0",
                             credentials ? credentials : grpc::InsecureServerCredentials(), &port);
    builder.RegisterCallbackGenericService(this);
    server_ = builder.BuildAndStart();
    EXPECT_TRUE(server_ != nullptr);
    EXPECT_NE(port, 0);
    return static_cast<uint16_t>(port);
  }
  void Stop() {
    if (server_) {
      server_->Shutdown(std::chrono::system_clock::now() + 1s);
      server_->Wait();
      server_.reset();
    }
  }

  void Answer(grpc::Status status, std::string response = "") {
    std::lock_guard<std::mutex> lock(mu_);
    status_ = std::move(status);
    response_ = std::move(response);
  }
  std::vector<Call> calls() {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_;
  }

  grpc::ServerGenericBidiReactor* CreateReactor(grpc::GenericCallbackServerContext* ctx) override {
    return new Reactor(this, ctx);
  }

 private:
  class Reactor : public grpc::ServerGenericBidiReactor {
   public:
    Reactor(ScriptedGrpc* owner, grpc::GenericCallbackServerContext* ctx) : owner_(owner) {
      call_.method = ctx->method();
      for (const auto& [k, v] : ctx->client_metadata()) {
        call_.metadata.emplace(std::string(k.data(), k.size()), std::string(v.data(), v.size()));
      }
      StartRead(&request_);
    }
    void OnReadDone(bool ok) override {
      std::vector<grpc::Slice> slices;
      if (ok && request_.Dump(&slices).ok()) {
        for (const auto& s : slices) {
          call_.request.append(reinterpret_cast<const char*>(s.begin()), s.size());
        }
      }
      grpc::Status status;
      std::string response;
      {
        std::lock_guard<std::mutex> lock(owner_->mu_);
        owner_->calls_.push_back(call_);
        status = owner_->status_;
        response = owner_->response_;
      }
      if (status.ok()) {
        grpc::Slice slice(response);
        response_ = grpc::ByteBuffer(&slice, 1);
        StartWriteAndFinish(&response_, grpc::WriteOptions(), status);
      } else {
        Finish(status);
      }
    }
    void OnDone() override { delete this; }

   private:
    ScriptedGrpc* owner_;
    Call call_;
    grpc::ByteBuffer request_;
    grpc::ByteBuffer response_;
  };

  std::mutex mu_;
  grpc::Status status_;
  std::string response_;
  std::vector<Call> calls_;
  std::unique_ptr<grpc::Server> server_;
};

TEST(OtlpGrpcExporterTest, MethodMetadataAndBytesArrive) {
  ScriptedGrpc upstream;
  const uint16_t port = upstream.Start();
  ExporterOptions o = Options("grpc://127.0.0.1:" + std::to_string(port));
  o.headers = {{"Authorization", "Bearer s3cret"}, {"x-tenant", "orders"}};
  o.gzip = true;
  auto exporter = MustCreate(o);
  const std::string request = MakeRequest({kTraceId, kTraceId});
  ExportResult r = exporter->Export(request);
  ASSERT_EQ(r.kind, Kind::kOk) << Describe(r);
  EXPECT_EQ(r.rejected_spans, 0);  // an empty response is a full success

  auto calls = upstream.calls();
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].method, "/opentelemetry.proto.collector.trace.v1.TraceService/Export");
  EXPECT_EQ(calls[0].request, request);  // byte for byte, after gzip on the wire
  auto find = [&](const std::string& key) {
    auto it = calls[0].metadata.find(key);
    return it == calls[0].metadata.end() ? std::string("<none>") : it->second;
  };
  EXPECT_EQ(find("authorization"), "Bearer s3cret");
  EXPECT_EQ(find("x-tenant"), "orders");
  EXPECT_EQ(find("user-agent").rfind("ordertrace", 0), 0u) << find("user-agent");
}

TEST(OtlpGrpcExporterTest, StatusClassification) {
  ScriptedGrpc upstream;
  const uint16_t port = upstream.Start();
  auto exporter = MustCreate(Options("grpc://127.0.0.1:" + std::to_string(port)));
  using C = grpc::StatusCode;
  struct Case {
    C code;
    bool retry_info;
    Kind kind;
    const char* name;
  };
  const std::vector<Case> cases = {
      {C::UNAVAILABLE, false, Kind::kRetryable, "UNAVAILABLE"},
      {C::DEADLINE_EXCEEDED, false, Kind::kRetryable, "DEADLINE_EXCEEDED"},
      {C::CANCELLED, false, Kind::kRetryable, "CANCELLED"},
      {C::ABORTED, false, Kind::kRetryable, "ABORTED"},
      {C::OUT_OF_RANGE, false, Kind::kRetryable, "OUT_OF_RANGE"},
      {C::DATA_LOSS, false, Kind::kRetryable, "DATA_LOSS"},
      {C::RESOURCE_EXHAUSTED, true, Kind::kRetryable, "RESOURCE_EXHAUSTED"},
      {C::RESOURCE_EXHAUSTED, false, Kind::kPermanent, "RESOURCE_EXHAUSTED"},
      {C::INVALID_ARGUMENT, false, Kind::kPermanent, "INVALID_ARGUMENT"},
      {C::UNAUTHENTICATED, false, Kind::kPermanent, "UNAUTHENTICATED"},
      {C::PERMISSION_DENIED, false, Kind::kPermanent, "PERMISSION_DENIED"},
      {C::UNIMPLEMENTED, false, Kind::kPermanent, "UNIMPLEMENTED"},
      {C::INTERNAL, false, Kind::kPermanent, "INTERNAL"},
      {C::UNKNOWN, false, Kind::kPermanent, "UNKNOWN"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string details =
        c.retry_info ? RpcStatus(static_cast<int>(c.code), "msg", 1250) : "";
    upstream.Answer(grpc::Status(c.code, "msg", details));
    ExportResult r = exporter->Export(MakeRequest());
    EXPECT_EQ(r.kind, c.kind) << Describe(r);
    EXPECT_EQ(r.code, c.name);
    EXPECT_EQ(r.reason.rfind(std::string("grpc ") + c.name + ": msg", 0), 0u) << r.reason;
    EXPECT_EQ(r.retry_after_ms, c.kind == Kind::kRetryable && c.retry_info ? 1250 : -1);
  }
  // RetryInfo on UNAVAILABLE is honoured too.
  upstream.Answer(grpc::Status(C::UNAVAILABLE, "later", RpcStatus(14, "later", 30000)));
  EXPECT_EQ(exporter->Export(MakeRequest()).retry_after_ms, 30000);
  // Unreadable details are ignored.
  upstream.Answer(grpc::Status(C::UNAVAILABLE, "later", "\xff\xff"));
  ExportResult r = exporter->Export(MakeRequest());
  EXPECT_EQ(r.kind, Kind::kRetryable);
  EXPECT_EQ(r.retry_after_ms, -1);
}

TEST(OtlpGrpcExporterTest, PartialSuccessAndUnreadableResponses) {
  ScriptedGrpc upstream;
  const uint16_t port = upstream.Start();
  auto exporter = MustCreate(Options("grpc://127.0.0.1:" + std::to_string(port)));
  collector::ExportTraceServiceResponse partial;
  partial.mutable_partial_success()->set_rejected_spans(4);
  partial.mutable_partial_success()->set_error_message("4 spans too large");
  upstream.Answer(grpc::Status::OK, partial.SerializeAsString());
  ExportResult r = exporter->Export(MakeRequest());
  EXPECT_EQ(r.kind, Kind::kOk) << Describe(r);
  EXPECT_EQ(r.rejected_spans, 4);
  EXPECT_EQ(r.partial_message, "4 spans too large");

  upstream.Answer(grpc::Status::OK, "\xff\xff\xff");
  r = exporter->Export(MakeRequest());
  EXPECT_EQ(r.kind, Kind::kOk) << Describe(r);
  EXPECT_EQ(r.rejected_spans, 0);
}

// ---------------------------------------------------------------------------------------------
// URL and option validation

std::string CreateError(const ExporterOptions& o) {
  auto created = OtlpExporter::Create(o);
  EXPECT_FALSE(created.ok()) << o.url;
  if (created.ok()) return "";
  EXPECT_EQ(created.status().code(), StatusCode::kInvalidArgument);
  return created.status().message();
}
std::string CreateError(const std::string& url) { return CreateError(Options(url)); }

TEST(OtlpExporterCreateTest, BadUrlsAreRefusedWithTheReason) {
  EXPECT_EQ(CreateError("ftp://x"),
            "upstream URL 'ftp://x': scheme must be grpc, grpcs, http or https");
  EXPECT_EQ(CreateError(""), "upstream URL is empty");
  EXPECT_EQ(CreateError("localhost:4317"),
            "upstream URL 'localhost:4317': no scheme: expected grpc://host:port, "
            "grpcs://host:port, http://host:port/v1/traces or https://host:port/v1/traces");
  EXPECT_EQ(CreateError("grpc://jaeger"),
            "upstream URL 'grpc://jaeger': the port is missing (grpc://host:port, e.g. :4317)");
  EXPECT_EQ(CreateError("grpc://jaeger:0"),
            "upstream URL 'grpc://jaeger:0': port '0' is not a number from 1 to 65535");
  EXPECT_EQ(CreateError("http://jaeger:65536"),
            "upstream URL 'http://jaeger:65536': port '65536' is not a number from 1 to 65535");
  EXPECT_EQ(CreateError("http://jaeger:/v1/traces"),
            "upstream URL 'http://jaeger:/v1/traces': port '' is not a number from 1 to 65535");
  EXPECT_EQ(CreateError("http://jaeger:43x8"),
            "upstream URL 'http://jaeger:43x8': port '43x8' is not a number from 1 to 65535");
  EXPECT_EQ(CreateError("grpc://:4317"), "upstream URL 'grpc://:4317': the host is missing");
  EXPECT_EQ(CreateError("grpcs://jaeger:4317/v1/traces"),
            "upstream URL 'grpcs://jaeger:4317/v1/traces': a gRPC URL has no path or query "
            "(got '/v1/traces')");
  EXPECT_EQ(CreateError("http://jaeger:4318/v1/traces#frag"),
            "upstream URL 'http://jaeger:4318/v1/traces#frag': a fragment (#...) is not allowed");
  EXPECT_EQ(CreateError("http://::1:4318"),
            "upstream URL 'http://::1:4318': an IPv6 address needs brackets, e.g. "
            "grpc://[::1]:4317");
  EXPECT_EQ(CreateError("http://[::1:4318"),
            "upstream URL 'http://[::1:4318': unterminated IPv6 address ('[' without ']')");
  EXPECT_EQ(CreateError("http://[jaeger]:4318"),
            "upstream URL 'http://[jaeger]:4318': 'jaeger' is not an IPv6 address");
  EXPECT_EQ(CreateError("http://jae ger:4318"),
            "upstream URL 'http://jae ger:4318': contains a space, a control or a non-ASCII "
            "character");
  EXPECT_EQ(CreateError("http://jae$ger:4318"),
            "upstream URL 'http://jae$ger:4318': invalid character '$' in the host");
  // Credentials are refused and never echoed.
  const std::string message = CreateError("https://admin:hunter2@jaeger:4318/v1/traces");
  EXPECT_EQ(message,
            "upstream URL 'https://<redacted>@jaeger:4318/v1/traces': credentials in the URL are "
            "not supported: set an authorization header instead");
  EXPECT_EQ(message.find("hunter2"), std::string::npos);
}

TEST(OtlpExporterCreateTest, GoodUrls) {
  struct Case {
    const char* url;
    const char* scheme;
  };
  for (const Case& c :
       {Case{"grpc://jaeger:4317", "grpc"}, Case{"GRPCS://jaeger:4317/", "grpcs"},
        Case{"grpc://[::1]:4317", "grpc"}, Case{"http://jaeger", "http"},
        Case{"http://jaeger:4318/v1/traces", "http"},
        Case{"https://jaeger.example.com/otlp/v1/traces?x=1", "https"},
        Case{"http://[fe80::1%25eth0]:4318", "http"}, Case{"http://127.0.0.1:4318", "http"}}) {
    auto created = OtlpExporter::Create(Options(c.url));
    ASSERT_TRUE(created.ok()) << c.url << ": " << created.status().ToString();
    EXPECT_STREQ(created.value()->scheme(), c.scheme) << c.url;
  }
}

TEST(OtlpExporterCreateTest, BadOptionsAreRefused) {
  ExporterOptions o = Options("grpc://jaeger:4317");
  o.ca_file = "/etc/ssl/certs/ca-certificates.crt";
  EXPECT_EQ(CreateError(o),
            "upstream URL 'grpc://jaeger:4317': ca_file, cert_file and key_file need grpcs://");
  o = Options("https://jaeger:4318");
  o.cert_file = "/tmp/client.pem";
  EXPECT_EQ(CreateError(o),
            "upstream TLS: cert_file and key_file go together (the client certificate for mTLS)");
  o = Options("https://jaeger:4318");
  o.ca_file = "/nonexistent/ca.pem";
  EXPECT_EQ(CreateError(o),
            "cannot read the CA file '/nonexistent/ca.pem': No such file or directory");
  o = Options("http://jaeger:4318", 0ms);
  EXPECT_EQ(CreateError(o), "upstream timeout must be positive (got 0 ms)");

  o = Options("http://jaeger:4318");
  o.headers = {{"Content-Length", "3"}};
  EXPECT_EQ(CreateError(o),
            "upstream header 'Content-Length' is set by the exporter and cannot be configured");
  o.headers = {{"X Tenant", "a"}};
  EXPECT_EQ(CreateError(o), "upstream header 'X Tenant': invalid character ' ' in the name");
  o.headers = {{"x-tenant", "a\r\nInjected: yes"}};
  EXPECT_EQ(CreateError(o), "upstream header 'x-tenant': the value holds a control character");
  o.headers = {{"", "a"}};
  EXPECT_EQ(CreateError(o), "upstream header with an empty name");
  o = Options("grpc://jaeger:4317");
  o.headers = {{"grpc-timeout", "1S"}};
  EXPECT_EQ(CreateError(o),
            "upstream header 'grpc-timeout' is set by the exporter and cannot be configured");
  o.headers = {{"x:y", "1"}};
  EXPECT_EQ(CreateError(o), "upstream header 'x:y': invalid character ':' in the name");
  o.headers = {{"x-trace-bin", std::string("\x00\x01", 2)}, {"X-Tenant", "a"}};
  EXPECT_TRUE(OtlpExporter::Create(o).ok());
}

// ---------------------------------------------------------------------------------------------
// TLS: a throwaway CA, a server certificate for localhost and 127.0.0.1, one for another name,
// and a client certificate, all made by the openssl command line.

class Pki {
 public:
  static Pki& Get() {
    static Pki pki;  // made once, on first use, for the whole test run
    return pki;
  }
  ~Pki() {
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }
  bool ok() const { return ok_; }
  const std::string& error() const { return error_; }
  std::string Path(const std::string& name) const { return dir_ + "/" + name; }
  static std::string Read(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }

 private:
  Pki() {
    char tmpl[] = "/tmp/otlp_exporter_test.XXXXXX";
    if (mkdtemp(tmpl) == nullptr) {
      error_ = "mkdtemp failed";
      return;
    }
    dir_ = tmpl;
    const std::string ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    ok_ = Write("server.ext",
                "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n") &&
          Write("other.ext", "subjectAltName=DNS:elsewhere.test\nextendedKeyUsage=serverAuth\n") &&
          Write("client.ext", "extendedKeyUsage=clientAuth\n") &&
          Run("openssl req -x509 " + ec +
              " -keyout ca.key -out ca.pem -days 2 -subj '/CN=ordertrace test CA'") &&
          Run("openssl req -x509 " + ec +
              " -keyout rogue-ca.key -out rogue-ca.pem -days 2 -subj '/CN=rogue CA'") &&
          Issue("server", "/CN=localhost") && Issue("other", "/CN=elsewhere.test") &&
          Issue("client", "/CN=ordertrace-gateway");
  }
  bool Write(const std::string& name, const std::string& text) {
    std::ofstream out(Path(name));
    out << text;
    return static_cast<bool>(out);
  }
  bool Run(const std::string& command) {
    const std::string full = "cd '" + dir_ + "' && " + command + " >>openssl.log 2>&1";
    if (std::system(full.c_str()) == 0) return true;
    error_ = "failed: " + command + "\n" + Read(Path("openssl.log")) +
             "\n(the tests need the openssl command line: Debian package openssl)";
    return false;
  }
  bool Issue(const std::string& name, const std::string& subject) {
    return Run("openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout " +
               name + ".key -out " + name + ".csr -subj '" + subject + "'") &&
           Run("openssl x509 -req -in " + name +
               ".csr -CA ca.pem -CAkey ca.key -CAcreateserial"
               " -days 2 -out " +
               name + ".pem -extfile " + name + ".ext");
  }

  bool ok_ = false;
  std::string error_;
  std::string dir_;
};

// A minimal HTTPS/1.1 server: TLS handshake, then answers every POST with 200 and an empty
// ExportTraceServiceResponse, keep-alive; records request bodies and headers.  One thread per
// connection.
class TlsHttpServer {
 public:
  TlsHttpServer(const std::string& cert, const std::string& key, const std::string& client_ca = "")
      : context_(ssl::context::tls_server),
        acceptor_(ioc_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)),
        port_(acceptor_.local_endpoint().port()) {
    context_.use_certificate_chain_file(cert);
    context_.use_private_key_file(key, ssl::context::pem);
    if (!client_ca.empty()) {
      context_.load_verify_file(client_ca);
      context_.set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
    }
    accept_thread_ = std::thread([this] { AcceptLoop(); });
  }
  ~TlsHttpServer() {
    stopping_ = true;
    {
      // Unblock accept() with a connection of our own.
      asio::io_context ioc;
      tcp::socket s(ioc);
      boost::system::error_code ec;
      s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port_), ec);
      accept_thread_.join();
    }
    // Unblock every connection's read; a connection removes its descriptor before closing it.
    std::vector<std::thread> threads;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (int fd : fds_) ::shutdown(fd, SHUT_RDWR);
      threads.swap(threads_);
    }
    for (auto& t : threads) t.join();
  }
  uint16_t port() const { return port_; }
  std::vector<RecordedRequest> requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }
  int handshakes_failed() const { return handshakes_failed_; }

 private:
  void AcceptLoop() {
    for (;;) {
      tcp::socket socket(ioc_);
      boost::system::error_code ec;
      acceptor_.accept(socket, ec);
      if (stopping_) return;
      if (ec) continue;
      timeval tv{5, 0};  // a stuck test must not hang the suite
      ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      std::lock_guard<std::mutex> lock(mu_);
      fds_.push_back(socket.native_handle());
      threads_.emplace_back([this, s = std::move(socket)]() mutable { Serve(std::move(s)); });
    }
  }
  void Serve(tcp::socket socket) {
    const int fd = socket.native_handle();
    ssl::stream<tcp::socket> stream(std::move(socket), context_);
    ServeTls(stream);
    std::lock_guard<std::mutex> lock(mu_);
    fds_.erase(std::find(fds_.begin(), fds_.end(), fd));
  }  // closes the socket, after its descriptor left fds_
  void ServeTls(ssl::stream<tcp::socket>& stream) {
    boost::system::error_code ec;
    stream.handshake(ssl::stream_base::server, ec);
    if (ec) {
      ++handshakes_failed_;
      return;
    }
    beast::flat_buffer buffer;
    for (;;) {
      http::request<http::string_body> req;
      http::read(stream, buffer, req, ec);
      if (ec) return;
      RecordedRequest rec;
      rec.path = std::string(req.target());
      rec.body = req.body();
      for (const auto& field : req) {
        std::string name(field.name_string());
        for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        rec.headers.emplace_back(name, std::string(field.value()));
      }
      {
        std::lock_guard<std::mutex> lock(mu_);
        requests_.push_back(std::move(rec));
      }
      http::response<http::string_body> res{http::status::ok, req.version()};
      res.set(http::field::content_type, "application/x-protobuf");
      res.keep_alive(req.keep_alive());
      res.prepare_payload();
      http::write(stream, res, ec);
      if (ec || !req.keep_alive()) return;
    }
  }

  asio::io_context ioc_;
  ssl::context context_;
  tcp::acceptor acceptor_;
  const uint16_t port_;
  std::atomic<bool> stopping_{false};
  std::atomic<int> handshakes_failed_{0};
  std::thread accept_thread_;
  std::mutex mu_;
  std::vector<int> fds_;
  std::vector<std::thread> threads_;
  std::vector<RecordedRequest> requests_;
};

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!pki_.ok()) FAIL() << pki_.error();
  }
  std::string P(const std::string& name) { return pki_.Path(name); }
  Pki& pki_ = Pki::Get();
};

TEST_F(TlsTest, HttpsWithTheCaFileSucceeds) {
  TlsHttpServer server(P("server.pem"), P("server.key"));
  const std::string request = MakeRequest();
  // By name (SNI, host name check) and by address (IP subjectAltName).
  for (const char* host : {"localhost", "127.0.0.1"}) {
    ExporterOptions o =
        Options(std::string("https://") + host + ":" + std::to_string(server.port()));
    o.ca_file = P("ca.pem");
    o.headers = {{"authorization", "Bearer t"}};
    auto exporter = MustCreate(o);
    ASSERT_TRUE(exporter);
    EXPECT_STREQ(exporter->scheme(), "https");
    for (int i = 0; i < 2; ++i) {
      ExportResult r = exporter->Export(request);
      EXPECT_EQ(r.kind, Kind::kOk) << host << " " << Describe(r);
    }
  }
  auto reqs = server.requests();
  ASSERT_EQ(reqs.size(), 4u);
  EXPECT_EQ(reqs[0].path, "/v1/traces");
  EXPECT_EQ(reqs[0].body, request);
  EXPECT_EQ(reqs[0].Header("authorization"), "Bearer t");
  EXPECT_EQ(reqs[0].Header("host"), "localhost:" + std::to_string(server.port()));
}

// Without the CA file the system's trust store does not know the throwaway CA: the handshake
// fails, classified retryable ("tls_error"), so that a certificate problem never dead-letters
// good data; the forwarder keeps retrying while the operator fixes it.
TEST_F(TlsTest, HttpsWithoutTheCaFileFailsRetryable) {
  TlsHttpServer server(P("server.pem"), P("server.key"));
  for (const char* ca : {"", "rogue-ca.pem"}) {
    ExporterOptions o = Options("https://localhost:" + std::to_string(server.port()));
    if (*ca != '\0') o.ca_file = P(ca);
    auto exporter = MustCreate(o);
    ExportResult r = exporter->Export(MakeRequest());
    EXPECT_EQ(r.kind, Kind::kRetryable) << Describe(r);
    EXPECT_EQ(r.code, "tls_error");
    EXPECT_NE(r.reason.find("certificate verify failed"), std::string::npos) << r.reason;
  }
  EXPECT_TRUE(server.requests().empty());
}

TEST_F(TlsTest, HttpsHostNameMismatchFails) {
  TlsHttpServer server(P("other.pem"), P("other.key"));  // a certificate for elsewhere.test
  ExporterOptions o = Options("https://localhost:" + std::to_string(server.port()));
  o.ca_file = P("ca.pem");
  auto exporter = MustCreate(o);
  ExportResult r = exporter->Export(MakeRequest());
  EXPECT_EQ(r.kind, Kind::kRetryable) << Describe(r);
  EXPECT_EQ(r.code, "tls_error");
  EXPECT_NE(r.reason.find("hostname mismatch"), std::string::npos) << r.reason;
  EXPECT_TRUE(server.requests().empty());
}

TEST_F(TlsTest, HttpsMutualTls) {
  TlsHttpServer server(P("server.pem"), P("server.key"), P("ca.pem"));
  ExporterOptions o = Options("https://localhost:" + std::to_string(server.port()));
  o.ca_file = P("ca.pem");
  {
    auto exporter = MustCreate(o);
    ExportResult r = exporter->Export(MakeRequest());
    EXPECT_EQ(r.kind, Kind::kRetryable) << Describe(r);  // no client certificate
    EXPECT_EQ(r.code, "tls_error") << Describe(r);
  }
  o.cert_file = P("client.pem");
  o.key_file = P("client.key");
  auto exporter = MustCreate(o);
  ExportResult r = exporter->Export(MakeRequest());
  EXPECT_EQ(r.kind, Kind::kOk) << Describe(r);
  EXPECT_EQ(server.requests().size(), 1u);
}

TEST_F(TlsTest, BadTlsFilesAreRefusedAtCreate) {
  ExporterOptions o = Options("https://localhost:4318");
  o.ca_file = P("server.ext");  // not PEM
  EXPECT_NE(CreateError(o).find("CA file '" + P("server.ext") + "' holds no usable PEM"),
            std::string::npos);
  o = Options("grpcs://localhost:4317");
  o.cert_file = P("client.pem");
  o.key_file = P("server.key");
  EXPECT_EQ(CreateError(o), "client key file '" + P("server.key") +
                                "' does not match the certificate in '" + P("client.pem") + "'");
  o.key_file = P("client.ext");
  EXPECT_EQ(CreateError(o),
            "client key file '" + P("client.ext") + "' holds no usable PEM private key");
  o.cert_file = P("client.key");
  o.key_file = P("client.key");
  EXPECT_NE(CreateError(o).find("client certificate file '" + P("client.key") +
                                "' holds no usable PEM certificate"),
            std::string::npos);
}

// The gRPC TLS tests connect to 127.0.0.1 (the certificate's IP subjectAltName), not to
// "localhost": Debian 12's c-ares 1.18.1 leaks the name of every "localhost" lookup
// (c-ares/c-ares#439), which fails the LeakSanitizer build.
std::shared_ptr<grpc::ServerCredentials> GrpcServerTls(Pki& pki, bool require_client_cert) {
  grpc::SslServerCredentialsOptions options(
      require_client_cert ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                          : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  options.pem_key_cert_pairs.push_back(
      {Pki::Read(pki.Path("server.key")), Pki::Read(pki.Path("server.pem"))});
  if (require_client_cert) options.pem_root_certs = Pki::Read(pki.Path("ca.pem"));
  return grpc::SslServerCredentials(options);
}

TEST_F(TlsTest, GrpcsWithTheCaFileSucceedsWithoutFailsRetryable) {
  ScriptedGrpc upstream;
  const uint16_t port = upstream.Start(GrpcServerTls(pki_, false));
  ExporterOptions o = Options("grpcs://127.0.0.1:" + std::to_string(port));
  o.ca_file = P("ca.pem");
  o.headers = {{"authorization", "Bearer t"}};
  auto exporter = MustCreate(o);
  EXPECT_STREQ(exporter->scheme(), "grpcs");
  const std::string request = MakeRequest();
  ExportResult r = exporter->Export(request);
  EXPECT_EQ(r.kind, Kind::kOk) << Describe(r);
  auto calls = upstream.calls();
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].request, request);
  EXPECT_EQ(calls[0].metadata.find("authorization")->second, "Bearer t");

  // gRPC reports a failed handshake as UNAVAILABLE: retryable, like tls_error over HTTPS.
  o.ca_file = P("rogue-ca.pem");
  auto untrusting = MustCreate(o);
  r = untrusting->Export(request);
  EXPECT_EQ(r.kind, Kind::kRetryable) << Describe(r);
  EXPECT_EQ(r.code, "UNAVAILABLE");
  EXPECT_EQ(upstream.calls().size(), 1u);
}

TEST_F(TlsTest, GrpcsMutualTls) {
  ScriptedGrpc upstream;
  const uint16_t port = upstream.Start(GrpcServerTls(pki_, true));
  ExporterOptions o = Options("grpcs://127.0.0.1:" + std::to_string(port));
  o.ca_file = P("ca.pem");
  auto anonymous = MustCreate(o);
  ExportResult r = anonymous->Export(MakeRequest());
  EXPECT_EQ(r.kind, Kind::kRetryable) << Describe(r);
  EXPECT_EQ(r.code, "UNAVAILABLE");

  o.cert_file = P("client.pem");
  o.key_file = P("client.key");
  auto exporter = MustCreate(o);
  r = exporter->Export(MakeRequest());
  EXPECT_EQ(r.kind, Kind::kOk) << Describe(r);
  EXPECT_EQ(upstream.calls().size(), 1u);
}

}  // namespace
}  // namespace ordertrace::forward
