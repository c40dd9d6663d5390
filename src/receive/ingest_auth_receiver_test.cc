// Ingest authentication on the real receivers: OTLP/HTTP on an HttpServer and OTLP/gRPC, with
// bearer tokens and with client certificates (mTLS, certificates made by openssl in the test's
// own directory).
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "common/metrics.h"
#include "google/rpc/status.pb.h"
#include "net/http_client.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.grpc.pb.h"
#include "receive/otlp_receivers.h"
#include "support/otlp_requests.h"
#include "support/recording_sink.h"
#include "support/tls_files.h"

namespace ordertrace::receive {
namespace {

namespace collector = opentelemetry::proto::collector::trace::v1;
using namespace std::chrono_literals;

const std::string kCrmToken = "crm-token-0123456789abcdef0123456789ab";
const std::string kOpsToken = "ops-token-0123456789abcdef0123456789ab";

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

using testing_support::OneSpanRequest;

std::shared_ptr<const IngestAuthenticator> BearerAuth() {
  IngestAuthOptions o;
  o.mode = IngestAuthMode::kBearer;
  IngestAuthOptions::Token crm;
  crm.name = "crm";
  crm.sha256 = Sha256Hex(kCrmToken);
  crm.services = {"crm"};
  IngestAuthOptions::Token ops;
  ops.name = "ops";
  ops.sha256 = Sha256Hex(kOpsToken);
  o.tokens = {crm, ops};
  auto a = IngestAuthenticator::Create(o);
  EXPECT_TRUE(a.ok());
  return std::make_shared<const IngestAuthenticator>(std::move(a).value());
}

// client-1 (tests/support/tls_files.h) may send as crm.
std::shared_ptr<const IngestAuthenticator> MtlsAuth() {
  IngestAuthOptions o;
  o.mode = IngestAuthMode::kMtls;
  IngestAuthOptions::Identity crm;
  crm.name = "crm";
  crm.subject = "client-1";
  crm.services = {"crm"};
  o.identities = {crm};
  auto a = IngestAuthenticator::Create(o);
  EXPECT_TRUE(a.ok());
  return std::make_shared<const IngestAuthenticator>(std::move(a).value());
}

class IngestAuthReceiverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("ordertrace_ingest_auth_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override {
    if (http_) http_->Shutdown(1s);
    if (grpc_) grpc_->Shutdown(1s);
    std::filesystem::remove_all(dir_);
  }

  // Both receivers with `auth`; over mTLS (client certificates of the test CA) when `mtls`.
  void Start(std::shared_ptr<const IngestAuthenticator> auth, bool mtls = false) {
    std::shared_ptr<const net::TlsServerContext> tls;
    if (mtls) {
      ASSERT_TRUE(files_.Make(dir_.string()));
      ASSERT_TRUE(files_.MakeServerCert("stranger", "unknown-client"));
      net::TlsServerOptions o;
      o.cert_file = files_.server_cert;
      o.key_file = files_.server_key;
      o.client_ca_file = files_.ca_cert;
      auto context = net::TlsServerContext::Create(o);
      ASSERT_TRUE(context.ok()) << context.status().message();
      tls = *context;
    }
    OtlpReceiverOptions ro;
    ro.auth = std::move(auth);
    net::HttpServerOptions ho;
    ho.name = "otlp_http";
    ho.tls = tls;
    http_ = std::make_unique<net::HttpServer>(ho);
    RegisterOtlpHttp(*http_, ro, &sink_, &metrics_);
    ASSERT_TRUE(http_->Start().ok());
    grpc_ = std::make_unique<OtlpGrpcReceiver>(ro, &sink_, &metrics_);
    Status s = grpc_->Start("127.0.0.1", 0, tls);
    ASSERT_TRUE(s.ok()) << s.message();
  }

  net::HttpOutcome Post(const std::string& body, const net::HeaderList& extra = {},
                        const std::string& client = "") {
    net::Url url;
    url.scheme = client.empty() ? "http" : "https";
    url.host = "127.0.0.1";
    url.port = http_->port();
    std::shared_ptr<const net::TlsClientContext> tls;
    if (!client.empty()) {
      net::TlsOptions o;
      o.ca_file = files_.ca_cert;
      o.cert_file = dir_.string() + "/" + client + ".crt";
      o.key_file = dir_.string() + "/" + client + ".key";
      auto context = net::TlsClientContext::Create(o);
      EXPECT_TRUE(context.ok()) << context.status().message();
      tls = *context;
    }
    net::HttpConnection connection(url, tls, /*keep_alive=*/false);
    net::HeaderList headers{{"Content-Type", "application/x-protobuf"}};
    headers.insert(headers.end(), extra.begin(), extra.end());
    net::HttpOutcome out = connection.Send("POST", "/v1/traces", body, headers, 10s, 1 << 20);
    EXPECT_TRUE(out.ok()) << out.failure->Describe();
    return out;
  }

  grpc::Status Export(const std::string& service, const std::string& authorization = "",
                      const std::string& client = "") {
    std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
    grpc::ChannelArguments args;
    if (!client.empty()) {
      grpc::SslCredentialsOptions ssl;
      ssl.pem_root_certs = ReadAll(files_.ca_cert);
      ssl.pem_cert_chain = ReadAll(dir_.string() + "/" + client + ".crt");
      ssl.pem_private_key = ReadAll(dir_.string() + "/" + client + ".key");
      credentials = grpc::SslCredentials(ssl);
      args.SetSslTargetNameOverride("localhost");
    }
    auto channel =
        grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(grpc_->port()), credentials, args);
    auto stub = collector::TraceService::NewStub(channel);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 10s);
    if (!authorization.empty()) ctx.AddMetadata("authorization", authorization);
    collector::ExportTraceServiceRequest req;
    EXPECT_TRUE(req.ParseFromString(OneSpanRequest(service)));
    collector::ExportTraceServiceResponse res;
    return stub->Export(&ctx, req, &res);
  }

  bool HasMetric(const std::string& line) {
    return registry_.Serialize().find(line + "\n") != std::string::npos;
  }

  std::filesystem::path dir_;
  testing_support::TlsFiles files_;
  metrics::Registry registry_;
  ReceiverMetrics metrics_{registry_};
  testing_support::RecordingSink sink_;
  std::unique_ptr<net::HttpServer> http_;
  std::unique_ptr<OtlpGrpcReceiver> grpc_;
};

TEST_F(IngestAuthReceiverTest, HttpBearer) {
  Start(BearerAuth());
  net::HttpOutcome none = Post(OneSpanRequest("crm"));
  EXPECT_EQ(none.reply.status, 401);
  EXPECT_EQ(none.reply.Header("www-authenticate"), "Bearer");
  google::rpc::Status body;
  ASSERT_TRUE(body.ParseFromString(none.reply.body));
  EXPECT_EQ(body.code(), 16);  // UNAUTHENTICATED

  // The credentials are checked before the body is decoded: a corrupt gzip body gets 401, not
  // 400, and an unauthenticated client cannot make the server inflate anything.
  EXPECT_EQ(Post("not gzip at all", {{"Content-Encoding", "gzip"}}).reply.status, 401);

  net::HttpOutcome wrong = Post(OneSpanRequest("crm"), {{"Authorization", "Bearer nope"}});
  EXPECT_EQ(wrong.reply.status, 401);
  EXPECT_EQ(wrong.reply.body.find("nope"), std::string::npos);

  net::HttpOutcome other =
      Post(OneSpanRequest("mes"), {{"Authorization", "Bearer " + kCrmToken}});  // bound to crm
  EXPECT_EQ(other.reply.status, 403);
  ASSERT_TRUE(body.ParseFromString(other.reply.body));
  EXPECT_EQ(body.code(), 7);  // PERMISSION_DENIED

  EXPECT_EQ(Post(OneSpanRequest("crm"), {{"Authorization", "bearer " + kCrmToken}}).reply.status,
            200);
  EXPECT_EQ(Post(OneSpanRequest("mes"), {{"Authorization", "Bearer " + kOpsToken}}).reply.status,
            200);
  EXPECT_EQ(sink_.batches().size(), 2u);

  EXPECT_TRUE(
      HasMetric(R"(ordertrace_ingest_auth_total{listener="otlp_http",result="missing"} 2)"));
  EXPECT_TRUE(
      HasMetric(R"(ordertrace_ingest_auth_total{listener="otlp_http",result="invalid"} 1)"));
  EXPECT_TRUE(HasMetric(
      R"(ordertrace_ingest_auth_total{listener="otlp_http",result="forbidden_service"} 1)"));
  EXPECT_TRUE(HasMetric(R"(ordertrace_ingest_auth_total{listener="otlp_http",result="ok"} 2)"));
  // No token, nor a prefix of one, in the metrics.
  EXPECT_EQ(registry_.Serialize().find("crm-token"), std::string::npos);
}

TEST_F(IngestAuthReceiverTest, GrpcBearer) {
  Start(BearerAuth());
  EXPECT_EQ(Export("crm").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(Export("crm", "Bearer nope").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(Export("mes", "Bearer " + kCrmToken).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  grpc::Status ok = Export("crm", "Bearer " + kCrmToken);
  EXPECT_TRUE(ok.ok()) << ok.error_message();
  EXPECT_TRUE(Export("anything", "BEARER " + kOpsToken).ok());
  EXPECT_EQ(sink_.batches().size(), 2u);
  EXPECT_TRUE(
      HasMetric(R"(ordertrace_ingest_auth_total{listener="otlp_grpc",result="missing"} 1)"));
  EXPECT_TRUE(
      HasMetric(R"(ordertrace_ingest_auth_total{listener="otlp_grpc",result="invalid"} 1)"));
  EXPECT_TRUE(HasMetric(
      R"(ordertrace_ingest_auth_total{listener="otlp_grpc",result="forbidden_service"} 1)"));
  EXPECT_TRUE(HasMetric(R"(ordertrace_ingest_auth_total{listener="otlp_grpc",result="ok"} 2)"));
  EXPECT_TRUE(
      HasMetric(R"(ordertrace_receiver_requests_total{protocol="grpc",code="UNAUTHENTICATED"} 2)"));
}

TEST_F(IngestAuthReceiverTest, HttpMtlsIdentity) {
  Start(MtlsAuth(), /*mtls=*/true);
  EXPECT_EQ(Post(OneSpanRequest("crm"), {}, "client").reply.status, 200);
  EXPECT_EQ(Post(OneSpanRequest("mes"), {}, "client").reply.status, 403);
  net::HttpOutcome stranger = Post(OneSpanRequest("crm"), {}, "stranger");  // same CA, unknown name
  EXPECT_EQ(stranger.reply.status, 401);
  EXPECT_EQ(stranger.reply.Header("www-authenticate"), "");
  EXPECT_EQ(sink_.batches().size(), 1u);
}

TEST_F(IngestAuthReceiverTest, GrpcMtlsIdentity) {
  Start(MtlsAuth(), /*mtls=*/true);
  grpc::Status ok = Export("crm", "", "client");
  EXPECT_TRUE(ok.ok()) << ok.error_message();
  EXPECT_EQ(Export("mes", "", "client").error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Export("crm", "", "stranger").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(sink_.batches().size(), 1u);
}

}  // namespace
}  // namespace ordertrace::receive
