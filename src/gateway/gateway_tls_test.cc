// The gateway's listeners over TLS (listen.tls.*), the loopback rule and the certificate
// reload.  Certificates are made by openssl in the test's directory (tests/support/tls_files.h).
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "api/routes.h"
#include "gateway/gateway.h"
#include "net/http_client.h"
#include "net/tls.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.grpc.pb.h"
#include "support/otlp_requests.h"
#include "support/tls_files.h"

namespace ordertrace::gateway {
namespace {

namespace pb = opentelemetry::proto;
using namespace std::chrono_literals;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

class GatewayTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("ordertrace_gateway_tls_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    ASSERT_TRUE(files_.Make(dir_.string())) << "openssl could not make the test certificates";
    config_.listen.otlp_grpc = "127.0.0.1:0";
    config_.listen.otlp_http = "127.0.0.1:0";
    config_.listen.http = "127.0.0.1:0";
    config_.data_dir = (dir_ / "data").string();
    config_.journeys.enabled = false;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  config::Config::Listen::Tls ServerTls(bool mtls = false) {
    config::Config::Listen::Tls tls;
    tls.cert_file = files_.server_cert;
    tls.key_file = files_.server_key;
    if (mtls) tls.client_ca_file = files_.ca_cert;
    return tls;
  }

  net::HttpOutcome Https(uint16_t port, const char* method, const std::string& target,
                         const std::string& body = {}, const net::HeaderList& headers = {}) {
    net::TlsOptions trust;
    trust.ca_file = files_.ca_cert;
    auto tls = net::TlsClientContext::Create(trust);
    EXPECT_TRUE(tls.ok());
    net::Url url;
    url.scheme = "https";
    url.host = "127.0.0.1";
    url.port = port;
    net::HttpConnection connection(url, *tls, /*keep_alive=*/false);
    return connection.Send(method, target, body, headers, 10s, uint64_t{64} << 20);
  }

  // Writes a new certificate (common name "server-2") over the server's files.
  bool ReplaceServerCertificate() {
    if (!files_.MakeServerCert("server2", "server-2")) return false;
    std::error_code ec;
    std::filesystem::copy_file(dir_ / "server2.crt", files_.server_cert,
                               std::filesystem::copy_options::overwrite_existing, ec);
    if (!ec) {
      std::filesystem::copy_file(dir_ / "server2.key", files_.server_key,
                                 std::filesystem::copy_options::overwrite_existing, ec);
    }
    return !ec;
  }

  grpc::Status GrpcExport(uint16_t port, bool client_cert) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = ReadAll(files_.ca_cert);
    if (client_cert) {
      ssl.pem_cert_chain = ReadAll(files_.client_cert);
      ssl.pem_private_key = ReadAll(files_.client_key);
    }
    grpc::ChannelArguments args;
    args.SetSslTargetNameOverride("localhost");
    auto channel = grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(port),
                                             grpc::SslCredentials(ssl), args);
    auto stub = pb::collector::trace::v1::TraceService::NewStub(channel);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 10s);
    pb::collector::trace::v1::ExportTraceServiceResponse response;
    testing_support::RequestBuilder req;
    req.Resource("crm").Scope();
    req.Add(testing_support::SpanBuilder("POST /orders")
                .Ids(std::string(16, '\x11'), std::string(8, '\x22'))
                .Times(1'700'000'000'000'000'000ull, 1'700'000'000'010'000'000ull));
    return stub->Export(&ctx, std::move(req).Build(), &response);
  }

  std::filesystem::path dir_;
  testing_support::TlsFiles files_;
  config::Config config_;
};

TEST_F(GatewayTlsTest, AllThreeListenersServeTls) {
  config_.listen.tls.http = ServerTls();
  config_.listen.tls.otlp_http = ServerTls();
  config_.listen.tls.otlp_grpc = ServerTls();
  Gateway gw(config_);
  Status started = gw.Start();
  ASSERT_TRUE(started.ok()) << started.message();

  net::HttpOutcome health = Https(gw.http_port(), "GET", "/healthz");
  ASSERT_TRUE(health.ok()) << health.failure->Describe();
  EXPECT_EQ(health.reply.status, 200);
  EXPECT_EQ(health.reply.Header("strict-transport-security"), "max-age=31536000");

  testing_support::RequestBuilder req;
  req.Resource("crm").Scope();
  req.Add(testing_support::SpanBuilder("POST /orders")
              .Ids(std::string(16, '\x33'), std::string(8, '\x44'))
              .Times(1'700'000'000'000'000'000ull, 1'700'000'000'010'000'000ull));
  net::HttpOutcome posted =
      Https(gw.otlp_http_port(), "POST", "/v1/traces", std::move(req).Build().SerializeAsString(),
            {{"Content-Type", "application/x-protobuf"}});
  ASSERT_TRUE(posted.ok()) << posted.failure->Describe();
  EXPECT_EQ(posted.reply.status, 200) << posted.reply.body;

  grpc::Status st = GrpcExport(gw.otlp_grpc_port(), /*client_cert=*/false);
  EXPECT_TRUE(st.ok()) << st.error_message();
  gw.Stop();
}

TEST_F(GatewayTlsTest, GrpcMutualTlsNeedsAClientCertificate) {
  config_.listen.tls.otlp_grpc = ServerTls(/*mtls=*/true);
  Gateway gw(config_);
  ASSERT_TRUE(gw.Start().ok());
  EXPECT_FALSE(GrpcExport(gw.otlp_grpc_port(), /*client_cert=*/false).ok());
  grpc::Status st = GrpcExport(gw.otlp_grpc_port(), /*client_cert=*/true);
  EXPECT_TRUE(st.ok()) << st.error_message();
  gw.Stop();
}

TEST_F(GatewayTlsTest, NonLoopbackWithoutTlsRefusesToStart) {
  config_.listen.otlp_http = "0.0.0.0:0";
  Gateway gw(config_);
  Status s = gw.Start();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message().rfind("listen.otlp_http: 0.0.0.0:0 is not a loopback address", 0), 0u)
      << s.message();
}

TEST_F(GatewayTlsTest, UnreadableCertificateIsAStartupErrorNamingTheKey) {
  config_.listen.tls.otlp_http = ServerTls();
  config_.listen.tls.otlp_http.key_file = files_.client_key;  // not the certificate's key
  Gateway gw(config_);
  Status s = gw.Start();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message().rfind("listen.tls.otlp_http: key file", 0), 0u) << s.message();
  EXPECT_EQ(s.message().find("PRIVATE KEY"), std::string::npos);
}

TEST_F(GatewayTlsTest, ReloadServesTheReplacedCertificateAndKeepsItOnABadFile) {
  config_.listen.tls.http = ServerTls();
  Gateway gw(config_);
  ASSERT_TRUE(gw.Start().ok());
  EXPECT_EQ(testing_support::ServerCommonName(gw.http_port(), files_.ca_cert), "server-1");

  ASSERT_TRUE(ReplaceServerCertificate());
  Status reloaded = gw.ReloadTls();
  ASSERT_TRUE(reloaded.ok()) << reloaded.message();
  EXPECT_EQ(testing_support::ServerCommonName(gw.http_port(), files_.ca_cert), "server-2");

  std::ofstream(files_.server_cert) << "not a certificate\n";
  Status bad = gw.ReloadTls();
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.message().rfind("listen.tls.http: certificate file", 0), 0u) << bad.message();
  EXPECT_EQ(testing_support::ServerCommonName(gw.http_port(), files_.ca_cert), "server-2");
  gw.Stop();
}

TEST_F(GatewayTlsTest, SighupServesTheReplacedCertificate) {
  config_.listen.tls.http = ServerTls();
  Gateway gw(config_);
  Status result = Status::Internal("not run");
  std::thread runner([&] { result = gw.Run(); });
  for (int i = 0; i < 500 && gw.readiness().state() != api::Readiness::State::kReady; ++i) {
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_EQ(gw.readiness().state(), api::Readiness::State::kReady);
  EXPECT_EQ(testing_support::ServerCommonName(gw.http_port(), files_.ca_cert), "server-1");

  ASSERT_TRUE(ReplaceServerCertificate());
  // To the runner thread only: it blocks SIGHUP, so the signal waits for its sigtimedwait.
  ASSERT_EQ(pthread_kill(runner.native_handle(), SIGHUP), 0);
  std::string served;
  for (int i = 0; i < 500 && served != "server-2"; ++i) {
    std::this_thread::sleep_for(10ms);
    served = testing_support::ServerCommonName(gw.http_port(), files_.ca_cert);
  }
  EXPECT_EQ(served, "server-2");
  gw.RequestStop();
  runner.join();
  EXPECT_TRUE(result.ok()) << result.ToString();
}

}  // namespace
}  // namespace ordertrace::gateway
