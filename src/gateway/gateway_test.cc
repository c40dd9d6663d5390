#include "gateway/gateway.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <boost/asio/ip/tcp.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "api/routes.h"
#include "net/http_client.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.grpc.pb.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.pb.h"
#include "support/otlp_requests.h"

namespace ordertrace::gateway {
namespace {

namespace pb = opentelemetry::proto;
using tcp = boost::asio::ip::tcp;
using namespace std::chrono_literals;

struct Reply {
  int status = 0;
  std::string body;
};

Reply Request(uint16_t port, const char* method, const std::string& target,
              const std::string& body = {}, const std::string& content_type = {}) {
  net::Url url;
  url.scheme = "http";
  url.host = "127.0.0.1";
  url.port = port;
  net::HttpConnection connection(url, nullptr, /*keep_alive=*/false);
  net::HeaderList headers;
  if (!content_type.empty()) headers.emplace_back("Content-Type", content_type);
  net::HttpOutcome out = connection.Send(method, target, body, headers, 10s, uint64_t{64} << 20);
  EXPECT_TRUE(out.ok()) << method << " " << target << ": " << out.failure->Describe();
  return {out.reply.status, out.reply.body};
}

pb::collector::trace::v1::ExportTraceServiceRequest SampleRequest(int spans) {
  testing_support::RequestBuilder req;
  req.Resource("crm").Scope();
  for (int i = 0; i < spans; ++i) {
    req.Add(testing_support::SpanBuilder("POST /orders")
                .Ids(std::string(15, '\x11') + static_cast<char>(i + 1),
                     std::string(7, '\x22') + static_cast<char>(i + 1))
                .Times(1'700'000'000'000'000'000ull, 1'700'000'000'010'000'000ull)
                .Attr("order.id", "O-" + std::to_string(i)));
  }
  return std::move(req).Build();
}

class GatewayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("ordertrace_gateway_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    config_.listen.otlp_grpc = "127.0.0.1:0";
    config_.listen.otlp_http = "127.0.0.1:0";
    config_.listen.http = "127.0.0.1:0";
    config_.data_dir = (dir_ / "data").string();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::filesystem::path dir_;
  config::Config config_;
};

// Polls /metrics until `needle` shows up (the pipeline runs asynchronously).
bool MetricsShow(uint16_t port, const std::string& needle) {
  for (int i = 0; i < 200; ++i) {
    if (Request(port, "GET", "/metrics").body.find(needle) != std::string::npos) {
      return true;
    }
    std::this_thread::sleep_for(10ms);
  }
  return false;
}

TEST_F(GatewayTest, ServesBothProtocolsAndDrains) {
  Gateway gw(config_);
  ASSERT_TRUE(gw.Start().ok());
  EXPECT_TRUE(std::filesystem::is_directory(config_.data_dir));
  ASSERT_NE(gw.http_port(), 0);
  ASSERT_NE(gw.otlp_http_port(), 0);
  ASSERT_NE(gw.otlp_grpc_port(), 0);

  EXPECT_EQ(Request(gw.http_port(), "GET", "/healthz").body, "ok");
  Reply ready = Request(gw.http_port(), "GET", "/readyz");
  EXPECT_EQ(ready.status, 200);

  Reply posted = Request(gw.otlp_http_port(), "POST", "/v1/traces",
                         SampleRequest(3).SerializeAsString(), "application/x-protobuf");
  EXPECT_EQ(posted.status, 200) << posted.body;

  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(gw.otlp_grpc_port()),
                                     grpc::InsecureChannelCredentials());
  auto stub = pb::collector::trace::v1::TraceService::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 10s);
  pb::collector::trace::v1::ExportTraceServiceResponse response;
  grpc::Status st = stub->Export(&ctx, SampleRequest(2), &response);
  EXPECT_TRUE(st.ok()) << st.error_message();

  const uint16_t api = gw.http_port();
  EXPECT_TRUE(MetricsShow(api, "ordertrace_receiver_accepted_spans_total{protocol=\"grpc\"} 2"));
  EXPECT_TRUE(
      MetricsShow(api, "ordertrace_receiver_accepted_spans_total{protocol=\"http_protobuf\"} 3"));
  // Journeys are on by default: the batches went through the ingest log to its consumer.
  EXPECT_TRUE(
      MetricsShow(api, "ordertrace_ingest_log_consumed_spans_total{consumer=\"journeys\"} 5"));
  EXPECT_TRUE(
      std::filesystem::is_directory(std::filesystem::path(config_.data_dir) / "ingest-log"));
  const std::string metrics = Request(api, "GET", "/metrics").body;
  EXPECT_NE(metrics.find("ordertrace_build_info{version=\"" + std::string(Version()) + "\"} 1"),
            std::string::npos);
  EXPECT_NE(metrics.find("ordertrace_uptime_seconds "), std::string::npos);
  EXPECT_NE(metrics.find("process_resident_memory_bytes "), std::string::npos);

  gw.Stop();
  EXPECT_EQ(gw.readiness().state(), api::Readiness::State::kDraining);
  const std::string after = gw.registry().Serialize();
  EXPECT_NE(after.find("ordertrace_ingest_log_appends_total 2\n"), std::string::npos) << after;
  EXPECT_NE(after.find("ordertrace_ingest_log_consumer_lag_records{consumer=\"journeys\"} 0\n"),
            std::string::npos)
      << after;
  gw.Stop();  // idempotent
}

// With neither journeys nor forwarding there is no log: the in-memory queue and the span log.
TEST_F(GatewayTest, WithoutJourneysOrForwardingThereIsNoLog) {
  config_.journeys.enabled = false;
  Gateway gw(config_);
  ASSERT_TRUE(gw.Start().ok());
  Reply posted = Request(gw.otlp_http_port(), "POST", "/v1/traces",
                         SampleRequest(3).SerializeAsString(), "application/x-protobuf");
  EXPECT_EQ(posted.status, 200) << posted.body;
  EXPECT_TRUE(MetricsShow(gw.http_port(), "ordertrace_pipeline_spans_total 3"));
  gw.Stop();
  const std::string after = gw.registry().Serialize();
  EXPECT_NE(after.find("ordertrace_pipeline_batches_total 1\n"), std::string::npos) << after;
  EXPECT_NE(after.find("ordertrace_pipeline_queue_batches 0\n"), std::string::npos) << after;
  EXPECT_EQ(after.find("ordertrace_ingest_log_"), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(std::filesystem::path(config_.data_dir) / "ingest-log"));
}

TEST_F(GatewayTest, PortInUseNamesTheKeyAndFlag) {
  boost::asio::io_context io;
  tcp::acceptor taken(io, tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0));
  const std::string address = "127.0.0.1:" + std::to_string(taken.local_endpoint().port());

  for (std::string config::Config::Listen::*key :
       {&config::Config::Listen::otlp_grpc, &config::Config::Listen::otlp_http,
        &config::Config::Listen::http}) {
    config::Config c = config_;
    c.listen.*key = address;
    Gateway gw(c);
    Status s = gw.Start();
    ASSERT_FALSE(s.ok());
    const std::string name = key == &config::Config::Listen::otlp_grpc   ? "listen.otlp_grpc"
                             : key == &config::Config::Listen::otlp_http ? "listen.otlp_http"
                                                                         : "listen.http";
    EXPECT_NE(s.message().find(name), std::string::npos) << s.message();
    EXPECT_NE(s.message().find(address), std::string::npos) << s.message();
    EXPECT_NE(s.message().find("in use"), std::string::npos) << s.message();
  }
}

TEST_F(GatewayTest, UnusableDataDirIsAnError) {
  std::filesystem::create_directories(dir_);
  std::ofstream(dir_ / "file") << "x";
  config_.data_dir = (dir_ / "file" / "data").string();
  Gateway gw(config_);
  Status s = gw.Start();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("data_dir / --data"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find(config_.data_dir), std::string::npos) << s.message();
}

TEST_F(GatewayTest, AnAttributionWaitAsLongAsTheGraceIsAnError) {
  config_.journeys.attribution.wait = 30s;  // the default rules' grace
  Gateway gw(config_);
  Status s = gw.Start();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("journeys.attribution.wait (30000 ms) must be shorter than the "
                             "rules' grace (30000 ms)"),
            std::string::npos)
      << s.message();
}

// A publish span without order.id arrives before the order's span, its parent: it waits, then
// belongs to the order (its hop is the order's).
TEST_F(GatewayTest, ASpanWithoutOrderIdFindsItsOrderThroughItsParent) {
  config_.journeys.store = "memory";
  Gateway gw(config_);
  ASSERT_TRUE(gw.Start().ok());
  const std::string trace(16, '\x5a'), parent(8, '\x01'), child(8, '\x02');
  const uint64_t now =
      static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count());
  testing_support::RequestBuilder publish;
  publish.Resource("crm").Scope("io.opentelemetry.amqplib", "0.70.0");
  publish.Add(testing_support::SpanBuilder("publish orders")
                  .Ids(trace, child, parent)
                  .Kind(pb::trace::v1::Span::SPAN_KIND_PRODUCER)
                  .Times(now, now + 1000)
                  .Attr("messaging.system", "rabbitmq")
                  .Attr("messaging.operation", "publish")
                  .Attr("messaging.destination", "orders")
                  .Attr("messaging.rabbitmq.routing_key", "order.submitted"));
  testing_support::RequestBuilder order;
  order.Resource("crm").Scope();
  order.Add(testing_support::SpanBuilder("POST /orders")
                .Ids(trace, parent)
                .Times(now, now + 2000)
                .Attr("order.id", "GW-ATTR-1")
                .Attr("order.stage", "SUBMITTED"));
  const uint16_t api = gw.http_port();
  EXPECT_EQ(Request(gw.otlp_http_port(), "POST", "/v1/traces", publish.Serialized(),
                    "application/x-protobuf")
                .status,
            200);
  EXPECT_TRUE(MetricsShow(api, "ordertrace_attribution_pending_spans 1"));
  EXPECT_EQ(Request(gw.otlp_http_port(), "POST", "/v1/traces", order.Serialized(),
                    "application/x-protobuf")
                .status,
            200);
  EXPECT_TRUE(MetricsShow(api, "ordertrace_attribution_spans_total{via=\"parent\"} 1"));
  EXPECT_TRUE(MetricsShow(api, "ordertrace_attribution_pending_spans 0"));
  const Reply journey = Request(api, "GET", "/api/v1/orders/GW-ATTR-1");
  EXPECT_EQ(journey.status, 200);
  EXPECT_NE(journey.body.find("\"open_hops\":1"), std::string::npos) << journey.body;
  EXPECT_NE(journey.body.find("\"routing_key\":\"order.submitted\""), std::string::npos)
      << journey.body;
  EXPECT_NE(journey.body.find("\"name\":\"publish orders\""), std::string::npos) << journey.body;
  gw.Stop();
}

// Redaction on (the default): the journey keeps the partner's pseudonym, never its id, and the
// API on loopback without sign-in (every action allowed) finds the order by the clear id.
TEST_F(GatewayTest, AnOrderIsFoundByItsPartnersClearIdAndKeepsOnlyThePseudonym) {
  config_.journeys.store = "memory";
  ASSERT_TRUE(config_.redaction.enabled);
  Gateway gw(config_);
  ASSERT_TRUE(gw.Start().ok());
  const std::string partner = "PARTNER-CANARY-" + std::to_string(::getpid());
  testing_support::RequestBuilder order;
  order.Resource("crm").Scope();
  order.Add(testing_support::SpanBuilder("POST /orders")
                .Ids(std::string(16, 'a'), std::string(8, 'b'))
                .Times(1'700'000'000'000'000'000ull, 1'700'000'000'010'000'000ull)
                .Attr("order.id", "GW-PARTNER-1")
                .Attr("order.stage", "SUBMITTED")
                .Attr("partner.id", partner));
  const uint16_t api = gw.http_port();
  EXPECT_EQ(Request(gw.otlp_http_port(), "POST", "/v1/traces", order.Serialized(),
                    "application/x-protobuf")
                .status,
            200);
  Reply journey;
  for (int i = 0; i < 200; ++i) {
    journey = Request(api, "GET", "/api/v1/orders/GW-PARTNER-1");
    if (journey.status == 200) break;
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_EQ(journey.status, 200) << journey.body;
  const auto j = nlohmann::json::parse(journey.body);
  const std::string pseudonym = j["partner"].get<std::string>();
  EXPECT_EQ(pseudonym.rfind("pse:", 0), 0u) << journey.body;
  EXPECT_EQ(journey.body.find(partner), std::string::npos) << journey.body;

  const Reply by_clear = Request(api, "POST", "/api/v1/orders/lookup-partner",
                                 nlohmann::json{{"partner", partner}}.dump(), "application/json");
  EXPECT_EQ(by_clear.status, 200) << by_clear.body;
  EXPECT_NE(by_clear.body.find("\"order_id\":\"GW-PARTNER-1\""), std::string::npos)
      << by_clear.body;
  EXPECT_EQ(by_clear.body.find(partner), std::string::npos) << by_clear.body;
  const Reply by_pseudonym = Request(api, "GET", "/api/v1/orders?partner=" + pseudonym);
  EXPECT_NE(by_pseudonym.body.find("\"order_id\":\"GW-PARTNER-1\""), std::string::npos)
      << by_pseudonym.body;
  const Reply other = Request(api, "GET", "/api/v1/orders?partner=SOMEONE-ELSE");
  EXPECT_EQ(other.status, 200) << other.body;
  EXPECT_EQ(other.body.find("GW-PARTNER-1"), std::string::npos) << other.body;
  gw.Stop();
}

// The consumer of a message published before a restart finds its order through its parent:
// the restarted gateway remembers the latest spans from the journey store.
TEST_F(GatewayTest, ARestartDoesNotForgetWhichOrderASpanBelongsTo) {
  const std::string trace(16, '\x6b'), order_span(8, '\x01'), publish(8, '\x02'),
      consume(8, '\x03');
  const uint64_t now =
      static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count());
  auto messaging = [](testing_support::SpanBuilder b, const char* op) {
    b.Attr("messaging.system", "rabbitmq")
        .Attr("messaging.operation.type", op)
        .Attr("messaging.destination.name", "orders:order.submitted")
        .Attr("messaging.rabbitmq.destination.routing_key", "order.submitted");
    return b;
  };
  {
    Gateway gw(config_);
    ASSERT_TRUE(gw.Start().ok());
    testing_support::RequestBuilder req;
    req.Resource("crm").Scope();
    req.Add(testing_support::SpanBuilder("POST /orders")
                .Ids(trace, order_span)
                .Times(now, now + 1000)
                .Attr("order.id", "GW-RESTART-1")
                .Attr("order.stage", "SUBMITTED"));
    req.Add(messaging(testing_support::SpanBuilder("publish orders")
                          .Ids(trace, publish, order_span)
                          .Kind(pb::trace::v1::Span::SPAN_KIND_PRODUCER)
                          .Times(now + 1000, now + 2000),
                      "publish"));
    EXPECT_EQ(Request(gw.otlp_http_port(), "POST", "/v1/traces", req.Serialized(),
                      "application/x-protobuf")
                  .status,
              200);
    EXPECT_TRUE(MetricsShow(gw.http_port(), "ordertrace_journey_open_hops 1"));
    gw.Stop();
  }
  Gateway gw(config_);
  ASSERT_TRUE(gw.Start().ok());
  testing_support::RequestBuilder req;
  req.Resource("mes").Scope("io.opentelemetry.pika", "0.50b0");
  req.Add(messaging(testing_support::SpanBuilder("order.submitted process")
                        .Ids(trace, consume, publish)
                        .Kind(pb::trace::v1::Span::SPAN_KIND_CONSUMER)
                        .Times(now + 3000, now + 4000),
                    "process"));
  EXPECT_EQ(
      Request(gw.otlp_http_port(), "POST", "/v1/traces", req.Serialized(), "application/x-protobuf")
          .status,
      200);
  // Attributed on arrival (no wait), through the parent remembered from the store.
  EXPECT_TRUE(MetricsShow(gw.http_port(), "ordertrace_attribution_spans_total{via=\"parent\"} 1"));
  EXPECT_TRUE(MetricsShow(gw.http_port(), "ordertrace_journey_open_hops 0"));
  // The gauge moves when the engine's memory does; the store write that the order view reads
  // follows it, so the view is polled until it has the processed hop (or 10 s passed).
  Reply journey;
  for (int i = 0; i < 1000; ++i) {
    journey = Request(gw.http_port(), "GET", "/api/v1/orders/GW-RESTART-1");
    if (journey.body.find("\"processor\":\"mes\"") != std::string::npos) break;
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_NE(journey.body.find("\"open_hops\":0"), std::string::npos) << journey.body;
  EXPECT_NE(journey.body.find("\"processor\":\"mes\""), std::string::npos) << journey.body;
  gw.Stop();
}

TEST_F(GatewayTest, RunReturnsAfterRequestStop) {
  Gateway gw(config_);
  Status result = Status::Internal("not run");
  std::thread runner([&] { result = gw.Run(); });
  for (int i = 0; i < 500 && gw.readiness().state() != api::Readiness::State::kReady; ++i) {
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_EQ(gw.readiness().state(), api::Readiness::State::kReady);
  gw.RequestStop();
  runner.join();
  EXPECT_TRUE(result.ok()) << result.ToString();
}

TEST_F(GatewayTest, RunDrainsOnSigterm) {
  Gateway gw(config_);
  Status result = Status::Internal("not run");
  std::thread runner([&] { result = gw.Run(); });
  for (int i = 0; i < 500 && gw.readiness().state() != api::Readiness::State::kReady; ++i) {
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_EQ(gw.readiness().state(), api::Readiness::State::kReady);
  // To the runner thread only: it blocks SIGTERM, so the signal waits for its sigtimedwait.
  ASSERT_EQ(pthread_kill(runner.native_handle(), SIGTERM), 0);
  runner.join();
  EXPECT_TRUE(result.ok()) << result.ToString();
  EXPECT_EQ(gw.readiness().state(), api::Readiness::State::kDraining);
}

}  // namespace
}  // namespace ordertrace::gateway
