// The gateway's listeners over TLS (listen.tls.*), the loopback rule and the certificate
// reload (the OTLP/gRPC one on a real SIGHUP, with the audit file reopened); ingest
// authentication over TLS, the allowlists (with their metric and audit lines) and the API's
// security headers.  Certificates are made by openssl in the test's directory
// (tests/support/tls_files.h).
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "api/routes.h"
#include "gateway/gateway.h"
#include "gateway/running_gateway_for_test.h"
#include "net/http_client.h"
#include "net/tls.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.grpc.pb.h"
#include "receive/ingest_auth.h"
#include "support/otlp_requests.h"
#include "support/tls_files.h"

namespace ordertrace::gateway {
namespace {

namespace pb = opentelemetry::proto;
using namespace std::chrono_literals;

const std::string kToken = "gw-token-7f3c1a9e5b2d4c6f8a0b1c2d3e4f5a6b";

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::vector<std::string> Lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

using testing_support::OneSpanRequest;

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

  net::HttpOutcome Send(uint16_t port, bool tls, const char* method, const std::string& target,
                        const std::string& body = {}, const net::HeaderList& headers = {}) {
    std::shared_ptr<const net::TlsClientContext> context;
    if (tls) {
      net::TlsOptions trust;
      trust.ca_file = files_.ca_cert;
      auto made = net::TlsClientContext::Create(trust);
      EXPECT_TRUE(made.ok());
      context = *made;
    }
    net::Url url;
    url.scheme = tls ? "https" : "http";
    url.host = "127.0.0.1";
    url.port = port;
    net::HttpConnection connection(url, context, /*keep_alive=*/false);
    return connection.Send(method, target, body, headers, 10s, uint64_t{64} << 20);
  }
  net::HttpOutcome Https(uint16_t port, const char* method, const std::string& target,
                         const std::string& body = {}, const net::HeaderList& headers = {}) {
    return Send(port, /*tls=*/true, method, target, body, headers);
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
    return GrpcExport(port, /*tls=*/true, "crm", "", client_cert);
  }
  grpc::Status GrpcExport(uint16_t port, bool tls, const std::string& service,
                          const std::string& authorization = "", bool client_cert = false) {
    std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
    grpc::ChannelArguments args;
    if (tls) {
      grpc::SslCredentialsOptions ssl;
      ssl.pem_root_certs = ReadAll(files_.ca_cert);
      if (client_cert) {
        ssl.pem_cert_chain = ReadAll(files_.client_cert);
        ssl.pem_private_key = ReadAll(files_.client_key);
      }
      credentials = grpc::SslCredentials(ssl);
      args.SetSslTargetNameOverride("localhost");
    }
    auto channel =
        grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(port), credentials, args);
    auto stub = pb::collector::trace::v1::TraceService::NewStub(channel);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 10s);
    if (!authorization.empty()) ctx.AddMetadata("authorization", authorization);
    pb::collector::trace::v1::ExportTraceServiceRequest req;
    EXPECT_TRUE(req.ParseFromString(OneSpanRequest(service)));
    pb::collector::trace::v1::ExportTraceServiceResponse response;
    return stub->Export(&ctx, req, &response);
  }

  void BearerIngest() {
    config_.ingest.auth.mode = "bearer";
    config::Config::Ingest::Auth::Token t;
    t.name = "crm";
    t.sha256 = receive::Sha256Hex(kToken);
    t.services = {"crm"};
    config_.ingest.auth.tokens = {t};
  }

  std::string AuditPath() const { return (dir_ / "data" / "audit.log").string(); }

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
  RunningGateway running(gw);
  ASSERT_TRUE(running.WaitReady());
  EXPECT_EQ(testing_support::ServerCommonName(gw.http_port(), files_.ca_cert), "server-1");

  ASSERT_TRUE(ReplaceServerCertificate());
  ASSERT_TRUE(running.Hup());
  std::string served;
  for (int i = 0; i < 500 && served != "server-2"; ++i) {
    std::this_thread::sleep_for(10ms);
    served = testing_support::ServerCommonName(gw.http_port(), files_.ca_cert);
  }
  EXPECT_EQ(served, "server-2");
  Status result = running.Stop();
  EXPECT_TRUE(result.ok()) << result.ToString();
}

TEST_F(GatewayTlsTest, IngestTokensOverTlsOnAnExposedAddress) {
  // 0.0.0.0 is allowed because both OTLP listeners have TLS and ingest authentication.
  config_.listen.otlp_http = "0.0.0.0:0";
  config_.listen.otlp_grpc = "0.0.0.0:0";
  config_.listen.tls.otlp_http = ServerTls();
  config_.listen.tls.otlp_grpc = ServerTls();
  BearerIngest();
  Gateway gw(config_);
  Status started = gw.Start();
  ASSERT_TRUE(started.ok()) << started.message();

  const net::HeaderList protobuf{{"Content-Type", "application/x-protobuf"}};
  net::HttpOutcome none =
      Send(gw.otlp_http_port(), true, "POST", "/v1/traces", OneSpanRequest("crm"), protobuf);
  ASSERT_TRUE(none.ok()) << none.failure->Describe();
  EXPECT_EQ(none.reply.status, 401);
  EXPECT_EQ(none.reply.Header("www-authenticate"), "Bearer");
  net::HeaderList with_token = protobuf;
  with_token.emplace_back("Authorization", "Bearer " + kToken);
  EXPECT_EQ(Send(gw.otlp_http_port(), true, "POST", "/v1/traces", OneSpanRequest("crm"), with_token)
                .reply.status,
            200);
  EXPECT_EQ(Send(gw.otlp_http_port(), true, "POST", "/v1/traces", OneSpanRequest("mes"), with_token)
                .reply.status,
            403);

  EXPECT_EQ(GrpcExport(gw.otlp_grpc_port(), true, "crm").error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(GrpcExport(gw.otlp_grpc_port(), true, "crm", "Bearer wrong").error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(GrpcExport(gw.otlp_grpc_port(), true, "mes", "Bearer " + kToken).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  grpc::Status ok = GrpcExport(gw.otlp_grpc_port(), true, "crm", "Bearer " + kToken);
  EXPECT_TRUE(ok.ok()) << ok.error_message();

  net::HttpOutcome metrics = Send(gw.http_port(), false, "GET", "/metrics");
  ASSERT_TRUE(metrics.ok());
  const std::string& m = metrics.reply.body;
  EXPECT_NE(m.find(R"(ordertrace_ingest_auth_total{listener="otlp_http",result="ok"} 1)"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find(R"(ordertrace_ingest_auth_total{listener="otlp_grpc",result="invalid"} 1)"),
            std::string::npos);
  EXPECT_NE(
      m.find(R"(ordertrace_ingest_auth_total{listener="otlp_grpc",result="forbidden_service"} 1)"),
      std::string::npos);
  // Neither the token nor a piece of it is in the metrics or the audit.
  EXPECT_EQ(m.find(kToken.substr(0, 8)), std::string::npos);
  EXPECT_EQ(ReadAll(AuditPath()).find(kToken.substr(0, 8)), std::string::npos);
  gw.Stop();
}

TEST_F(GatewayTlsTest, AnExposedOtlpListenerWithTlsButNoIngestAuthRefusesToStart) {
  config_.listen.otlp_grpc = "0.0.0.0:0";
  config_.listen.tls.otlp_grpc = ServerTls();
  Gateway gw(config_);
  Status s = gw.Start();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message().rfind("listen.otlp_grpc: 0.0.0.0:0 is not a loopback address and spans "
                              "sent to it are not authenticated",
                              0),
            0u)
      << s.message();
}

TEST_F(GatewayTlsTest, AllowlistsRefuseOnEveryListenerCountAndAudit) {
  config_.listen.allow.http = {"10.0.0.0/8"};
  config_.listen.allow.otlp_http = {"10.0.0.0/8"};
  config_.listen.allow.otlp_grpc = {"10.0.0.0/8"};
  Gateway gw(config_);
  ASSERT_TRUE(gw.Start().ok());
  EXPECT_FALSE(Send(gw.http_port(), false, "GET", "/healthz").ok());
  EXPECT_FALSE(Send(gw.otlp_http_port(), false, "POST", "/v1/traces", OneSpanRequest("crm"),
                    {{"Content-Type", "application/x-protobuf"}})
                   .ok());
  EXPECT_EQ(GrpcExport(gw.otlp_grpc_port(), false, "crm").error_code(),
            grpc::StatusCode::PERMISSION_DENIED);

  const std::string m = gw.registry().Serialize();
  for (const char* listener : {"http", "otlp_http", "otlp_grpc"}) {
    EXPECT_NE(m.find(std::string("ordertrace_connections_refused_total{listener=\"") + listener +
                     "\"} 1"),
              std::string::npos)
        << listener << "\n"
        << m;
  }
  gw.Stop();
  const auto lines = Lines(AuditPath());
  ASSERT_EQ(lines.size(), 3u);
  for (const std::string& line : lines) {
    EXPECT_NE(line.find("\"event\":\"connection_refused\""), std::string::npos) << line;
    EXPECT_NE(line.find("\"outcome\":\"denied\""), std::string::npos) << line;
    EXPECT_NE(line.find("\"ip\":\"127.0.0.1\""), std::string::npos) << line;
  }
}

TEST_F(GatewayTlsTest, RefusalsFloodingTheAuditAreCappedButAllCounted) {
  config_.listen.allow.otlp_grpc = {"10.0.0.0/8"};
  Gateway gw(config_);
  ASSERT_TRUE(gw.Start().ok());
  constexpr int kCalls = 60;
  for (int i = 0; i < kCalls; ++i) {
    EXPECT_EQ(GrpcExport(gw.otlp_grpc_port(), false, "crm").error_code(),
              grpc::StatusCode::PERMISSION_DENIED);
  }
  EXPECT_NE(
      gw.registry().Serialize().find(
          "ordertrace_connections_refused_total{listener=\"otlp_grpc\"} " + std::to_string(kCalls)),
      std::string::npos);
  gw.Stop();
  const auto lines = Lines(AuditPath());
  EXPECT_GE(lines.size(), 20u);
  EXPECT_LT(lines.size(), static_cast<size_t>(kCalls));
}

TEST_F(GatewayTlsTest, AllowedPeersAreServedAndTheApiSendsSecurityHeaders) {
  config_.listen.allow.http = {"127.0.0.0/8", "::1"};
  config_.listen.allow.otlp_grpc = {"127.0.0.1"};
  Gateway gw(config_);
  ASSERT_TRUE(gw.Start().ok());
  net::HttpOutcome health = Send(gw.http_port(), false, "GET", "/healthz");
  ASSERT_TRUE(health.ok());
  EXPECT_EQ(health.reply.status, 200);
  EXPECT_EQ(health.reply.Header("content-security-policy"),
            "default-src 'self'; frame-ancestors 'none'");
  EXPECT_EQ(health.reply.Header("x-content-type-options"), "nosniff");
  EXPECT_EQ(health.reply.Header("referrer-policy"), "no-referrer");
  EXPECT_EQ(health.reply.Header("cache-control"), "no-store");
  EXPECT_TRUE(GrpcExport(gw.otlp_grpc_port(), false, "crm").ok());
  // The OTLP listener is no browser's business: no API headers there.
  net::HttpOutcome otlp = Send(gw.otlp_http_port(), false, "POST", "/v1/traces",
                               OneSpanRequest("crm"), {{"Content-Type", "application/x-protobuf"}});
  ASSERT_TRUE(otlp.ok());
  EXPECT_EQ(otlp.reply.status, 200);
  EXPECT_EQ(otlp.reply.Header("content-security-policy"), "");
  gw.Stop();
}

TEST_F(GatewayTlsTest, SighupServesTheReplacedGrpcCertificateAndReopensTheAudit) {
  config_.listen.tls.otlp_grpc = ServerTls();
  Gateway gw(config_);
  RunningGateway running(gw);
  ASSERT_TRUE(running.WaitReady());
  EXPECT_EQ(testing_support::ServerCommonName(gw.otlp_grpc_port(), files_.ca_cert), "server-1");

  ASSERT_TRUE(ReplaceServerCertificate());
  std::filesystem::rename(AuditPath(), AuditPath() + ".1");  // logrotate
  ASSERT_TRUE(running.Hup());
  std::string served;
  for (int i = 0; i < 500 && served != "server-2"; ++i) {
    std::this_thread::sleep_for(10ms);
    served = testing_support::ServerCommonName(gw.otlp_grpc_port(), files_.ca_cert);
  }
  EXPECT_EQ(served, "server-2");
  grpc::Status ok = GrpcExport(gw.otlp_grpc_port(), true, "crm");
  EXPECT_TRUE(ok.ok()) << ok.error_message();
  Status result = running.Stop();
  EXPECT_TRUE(result.ok()) << result.ToString();
  const auto lines = Lines(AuditPath());
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].find("\"event\":\"config_reload\""), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find("\"outcome\":\"allowed\""), std::string::npos) << lines[0];
}

TEST_F(GatewayTlsTest, GrpcReloadKeepsMutualTls) {
  config_.listen.tls.otlp_grpc = ServerTls(/*mtls=*/true);
  Gateway gw(config_);
  ASSERT_TRUE(gw.Start().ok());
  ASSERT_TRUE(ReplaceServerCertificate());
  Status reloaded = gw.ReloadTls();
  ASSERT_TRUE(reloaded.ok()) << reloaded.message();
  std::this_thread::sleep_for(1500ms);  // the file watcher's period
  EXPECT_FALSE(GrpcExport(gw.otlp_grpc_port(), true, "crm", "", /*client_cert=*/false).ok());
  grpc::Status ok = GrpcExport(gw.otlp_grpc_port(), true, "crm", "", /*client_cert=*/true);
  EXPECT_TRUE(ok.ok()) << ok.error_message();

  std::ofstream(files_.server_cert) << "not a certificate\n";
  Status bad = gw.ReloadTls();
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.message().rfind("listen.tls.otlp_grpc: certificate file", 0), 0u) << bad.message();
  ok = GrpcExport(gw.otlp_grpc_port(), true, "crm", "", /*client_cert=*/true);
  EXPECT_TRUE(ok.ok()) << ok.error_message();
  gw.Stop();
}

}  // namespace
}  // namespace ordertrace::gateway
