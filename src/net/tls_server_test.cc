// HTTPS on HttpServer: TLS versions, mTLS, certificate replacement, and the context's errors.
// Certificates are made by openssl in a temp dir (tests/support/tls_files.h).
#include <gtest/gtest.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <unistd.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <filesystem>
#include <string>

#include "net/http_client.h"
#include "net/http_server.h"
#include "net/tls.h"
#include "support/tls_files.h"

namespace ordertrace::net {
namespace {

// Client options that trust `ca_file` and present no certificate.
TlsOptions TrustOnly(const std::string& ca_file) {
  TlsOptions o;
  o.ca_file = ca_file;
  return o;
}

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;

class TlsServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/ordertrace-tls-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
    ASSERT_TRUE(files_.Make(dir_)) << "openssl could not make the test certificates";
  }
  void TearDown() override {
    if (server_) server_->Shutdown();
    std::filesystem::remove_all(dir_);
  }

  std::shared_ptr<const TlsServerContext> Context(TlsServerOptions o) {
    auto context = TlsServerContext::Create(o);
    EXPECT_TRUE(context.ok()) << context.status().message();
    return context.ok() ? *context : nullptr;
  }
  TlsServerOptions ServerOptions(bool mtls = false) {
    TlsServerOptions o;
    o.cert_file = files_.server_cert;
    o.key_file = files_.server_key;
    if (mtls) o.client_ca_file = files_.ca_cert;
    return o;
  }

  void StartServer(std::shared_ptr<const TlsServerContext> tls, bool hsts = false) {
    HttpServerOptions o;
    o.name = "tls-test";
    o.tls = std::move(tls);
    o.hsts = hsts;
    o.threads = 1;
    server_ = std::make_unique<HttpServer>(o);
    server_->Route("GET", "/hello",
                   [](HttpRequest&, HttpResponse& res) { res.body = "hello over tls"; });
    ASSERT_TRUE(server_->Start().ok());
  }

  Result<HttpReply> Get(TlsOptions client) {
    auto tls = TlsClientContext::Create(client);
    if (!tls.ok()) return tls.status();
    HttpOptions o;
    o.tls = *tls;
    o.timeout = std::chrono::seconds(5);
    return HttpGet("https://127.0.0.1:" + std::to_string(server_->port()), "/hello", o);
  }

  // A raw handshake with `context`; on success the server certificate's common name.
  Result<std::string> Handshake(ssl::context& context) {
    asio::io_context ioc;
    ssl::stream<asio::ip::tcp::socket> stream(ioc, context);
    boost::system::error_code ec;
    stream.next_layer().connect({asio::ip::make_address("127.0.0.1"), server_->port()}, ec);
    if (ec) return Status::Unavailable("connect: " + ec.message());
    stream.handshake(ssl::stream_base::client, ec);
    if (ec) return Status::Unavailable("handshake: " + ec.message());
    X509* cert = SSL_get_peer_certificate(stream.native_handle());
    if (cert == nullptr) return Status::Internal("no server certificate");
    char cn[256] = {};
    X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn);
    X509_free(cert);
    // A TLS 1.3 server may refuse a client certificate only after the handshake: read once.
    const std::string request = "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    asio::write(stream, asio::buffer(request), ec);
    char buf[16];
    if (!ec) asio::read(stream, asio::buffer(buf), ec);
    if (ec) return Status::Unavailable("request: " + ec.message());
    return std::string(cn);
  }

  std::string dir_;
  testing_support::TlsFiles files_;
  std::unique_ptr<HttpServer> server_;
};

TEST_F(TlsServerTest, ServesHttpsWithHsts) {
  StartServer(Context(ServerOptions()), /*hsts=*/true);
  auto reply = Get(TrustOnly(files_.ca_cert));
  ASSERT_TRUE(reply.ok()) << reply.status().message();
  EXPECT_EQ(reply->status, 200);
  EXPECT_EQ(reply->body, "hello over tls");
  EXPECT_EQ(reply->Header("strict-transport-security"), "max-age=31536000");
}

TEST_F(TlsServerTest, ClientWithoutTheCaRefusesTheServer) {
  StartServer(Context(ServerOptions()));
  EXPECT_FALSE(Get(TrustOnly(files_.foreign_ca_cert)).ok());
}

TEST_F(TlsServerTest, RefusesTls11Clients) {
  StartServer(Context(ServerOptions()));
  ssl::context client(ssl::context::tls_client);
  SSL_CTX_set_min_proto_version(client.native_handle(), TLS1_VERSION);
  SSL_CTX_set_max_proto_version(client.native_handle(), TLS1_1_VERSION);
  // Debian's OpenSSL refuses TLS 1.1 at the default security level on the client side; level 0
  // lets the client offer it, so that the refusal comes from the server.
  SSL_CTX_set_cipher_list(client.native_handle(), "DEFAULT:@SECLEVEL=0");
  client.set_verify_mode(ssl::verify_none);
  auto result = Handshake(client);
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.status().message().find("handshake"), std::string::npos)
      << result.status().message();
}

TEST_F(TlsServerTest, MinimumVersion13RefusesTls12) {
  TlsServerOptions o = ServerOptions();
  o.min_version = TlsMinVersion::k13;
  StartServer(Context(o));
  ssl::context client(ssl::context::tls_client);
  SSL_CTX_set_max_proto_version(client.native_handle(), TLS1_2_VERSION);
  client.set_verify_mode(ssl::verify_none);
  EXPECT_FALSE(Handshake(client).ok());
  EXPECT_TRUE(Get(TrustOnly(files_.ca_cert)).ok());
}

TEST_F(TlsServerTest, MutualTlsNeedsAClientCertificateFromTheCa) {
  StartServer(Context(ServerOptions(/*mtls=*/true)));
  EXPECT_FALSE(Get(TrustOnly(files_.ca_cert)).ok()) << "no client certificate";
  EXPECT_FALSE(Get({.ca_file = files_.ca_cert,
                    .cert_file = files_.foreign_client_cert,
                    .key_file = files_.foreign_client_key})
                   .ok())
      << "a foreign CA's certificate";
  auto reply = Get(
      {.ca_file = files_.ca_cert, .cert_file = files_.client_cert, .key_file = files_.client_key});
  ASSERT_TRUE(reply.ok()) << reply.status().message();
  EXPECT_EQ(reply->status, 200);
}

TEST_F(TlsServerTest, ReplacedCertificateServesNewConnections) {
  StartServer(Context(ServerOptions()));
  ssl::context client(ssl::context::tls_client);
  client.load_verify_file(files_.ca_cert);
  client.set_verify_mode(ssl::verify_peer);
  auto before = Handshake(client);
  ASSERT_TRUE(before.ok()) << before.status().message();
  EXPECT_EQ(*before, "server-1");

  ASSERT_TRUE(files_.MakeServerCert("server2", "server-2"));
  TlsServerOptions o = ServerOptions();
  o.cert_file = dir_ + "/server2.crt";
  o.key_file = dir_ + "/server2.key";
  ASSERT_TRUE(server_->SetTls(Context(o)).ok());
  auto after = Handshake(client);
  ASSERT_TRUE(after.ok()) << after.status().message();
  EXPECT_EQ(*after, "server-2");
}

TEST_F(TlsServerTest, SetTlsNeedsATlsServer) {
  StartServer(nullptr);
  EXPECT_FALSE(server_->SetTls(Context(ServerOptions())).ok());
}

TEST_F(TlsServerTest, ContextErrorsNameTheFileNotItsContents) {
  TlsServerOptions o = ServerOptions();
  o.key_file = files_.client_key;  // another certificate's key
  auto mismatch = TlsServerContext::Create(o);
  ASSERT_FALSE(mismatch.ok());
  EXPECT_NE(mismatch.status().message().find("does not match"), std::string::npos);
  EXPECT_NE(mismatch.status().message().find(files_.client_key), std::string::npos);
  EXPECT_EQ(mismatch.status().message().find("PRIVATE KEY-----"), std::string::npos);

  o = ServerOptions();
  o.cert_file = dir_ + "/missing.crt";
  auto missing = TlsServerContext::Create(o);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("missing.crt"), std::string::npos);

  o = ServerOptions();
  o.key_file = files_.server_cert;  // no key in it
  auto no_key = TlsServerContext::Create(o);
  ASSERT_FALSE(no_key.ok());
  EXPECT_NE(no_key.status().message().find("no usable PEM private key"), std::string::npos);
  EXPECT_EQ(no_key.status().message().find("BEGIN"), std::string::npos);
}

}  // namespace
}  // namespace ordertrace::net
