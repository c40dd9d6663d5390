// HttpServer's guards: the allowlist at accept, X-Forwarded-For from trusted proxies only, the
// API security headers and the verified client certificate handed to handlers.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <mutex>
#include <string>
#include <vector>

#include "net/http_client.h"
#include "net/http_server.h"
#include "support/tls_files.h"

namespace ordertrace::net {
namespace {

using namespace std::chrono_literals;

std::shared_ptr<const CidrSet> Set(const std::vector<std::string>& cidrs) {
  auto set = CidrSet::Parse(cidrs);
  EXPECT_TRUE(set.ok());
  return std::make_shared<const CidrSet>(std::move(set).value());
}

class HttpServerGuardTest : public ::testing::Test {
 protected:
  void TearDown() override {
    if (server_) server_->Shutdown(1s);
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  // A server whose GET /who answers "<forwarded_for>|<tls common name>".
  void Start(HttpServerOptions o) {
    o.on_refused = [this](const RefusedPeer& p) {
      std::lock_guard<std::mutex> lock(mu_);
      refused_.push_back(p);
    };
    server_ = std::make_unique<HttpServer>(o);
    server_->Route("GET", "/who", [](HttpRequest& req, HttpResponse& res) {
      res.body = req.forwarded_for + "|" + (req.tls_peer.verified ? req.tls_peer.common_name : "");
    });
    server_->Route("GET", "/framed", [](HttpRequest&, HttpResponse& res) {
      res.headers.emplace_back("Content-Security-Policy", "default-src 'none'");
    });
    ASSERT_TRUE(server_->Start().ok());
  }

  HttpOutcome Get(const std::string& target, const HeaderList& headers = {},
                  std::shared_ptr<const TlsClientContext> tls = nullptr,
                  const std::string& host = "127.0.0.1") {
    Url url;
    url.scheme = tls ? "https" : "http";
    url.host = host;
    url.port = server_->port();
    HttpConnection connection(url, tls, /*keep_alive=*/false);
    return connection.Send("GET", target, "", headers, 5s, 1 << 20);
  }

  std::vector<RefusedPeer> Refused() {
    std::lock_guard<std::mutex> lock(mu_);
    return refused_;
  }

  std::filesystem::path dir_;
  std::unique_ptr<HttpServer> server_;
  std::mutex mu_;
  std::vector<RefusedPeer> refused_;
};

TEST_F(HttpServerGuardTest, APeerOutsideTheAllowlistIsClosedAtAccept) {
  HttpServerOptions o;
  o.allow = Set({"10.0.0.0/8", "fd00::/8"});
  Start(o);
  HttpOutcome out = Get("/who");
  EXPECT_FALSE(out.ok());
  const auto refused = Refused();
  ASSERT_EQ(refused.size(), 1u);
  EXPECT_EQ(refused[0].ip, "127.0.0.1");
  EXPECT_NE(refused[0].port, 0);
  EXPECT_EQ(refused[0].forwarded_for, "");
}

TEST_F(HttpServerGuardTest, APeerInsideTheAllowlistIsServed) {
  HttpServerOptions o;
  o.allow = Set({"127.0.0.0/8"});
  Start(o);
  HttpOutcome out = Get("/who");
  ASSERT_TRUE(out.ok()) << out.failure->Describe();
  EXPECT_EQ(out.reply.status, 200);
  EXPECT_TRUE(Refused().empty());
}

TEST_F(HttpServerGuardTest, AnIpv4MappedPeerOnADualStackListenerIsCheckedAsIpv4) {
  HttpServerOptions o;
  o.host = "::";  // dual-stack: an IPv4 client arrives as ::ffff:127.0.0.1
  o.allow = Set({"127.0.0.0/8"});
  Start(o);
  HttpOutcome out = Get("/who");
  ASSERT_TRUE(out.ok()) << out.failure->Describe();
  EXPECT_EQ(out.reply.status, 200);
}

TEST_F(HttpServerGuardTest, AnIpv4MappedPeerOutsideTheListIsReportedAsIpv4) {
  HttpServerOptions o;
  o.host = "::";
  o.allow = Set({"::1"});
  Start(o);
  EXPECT_FALSE(Get("/who").ok());
  const auto refused = Refused();
  ASSERT_EQ(refused.size(), 1u);
  EXPECT_EQ(refused[0].ip, "127.0.0.1");
}

TEST_F(HttpServerGuardTest, Ipv6PeersAreCheckedAsIpv6) {
  HttpServerOptions o;
  o.host = "::1";
  o.allow = Set({"::1/128"});
  Start(o);
  HttpOutcome out = Get("/who", {}, nullptr, "::1");
  ASSERT_TRUE(out.ok()) << out.failure->Describe();
  EXPECT_EQ(out.reply.status, 200);
  server_->Shutdown(1s);

  o.allow = Set({"127.0.0.0/8"});
  Start(o);
  EXPECT_FALSE(Get("/who", {}, nullptr, "::1").ok());
  const auto refused = Refused();
  ASSERT_EQ(refused.size(), 1u);
  EXPECT_EQ(refused[0].ip, "::1");
}

TEST_F(HttpServerGuardTest, ForwardedForIsBelievedOnlyFromATrustedProxy) {
  HttpServerOptions o;
  o.trusted_proxies = Set({"10.0.0.0/8"});  // not us
  Start(o);
  HttpOutcome out = Get("/who", {{"X-Forwarded-For", "192.0.2.5"}});
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out.reply.body, "|");
}

TEST_F(HttpServerGuardTest, ATrustedProxysClientIsCheckedAgainstTheAllowlist) {
  HttpServerOptions o;
  o.allow = Set({"127.0.0.1", "192.0.2.0/24"});
  o.trusted_proxies = Set({"127.0.0.1"});
  Start(o);
  // The right-most address that is not a trusted proxy is the client.
  HttpOutcome out = Get("/who", {{"X-Forwarded-For", "198.51.100.7, 192.0.2.5, 127.0.0.1"}});
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out.reply.status, 200);
  EXPECT_EQ(out.reply.body, "192.0.2.5|");
  // Without the header the proxy itself is the client.
  out = Get("/who");
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out.reply.status, 200);
  EXPECT_EQ(out.reply.body, "|");

  out = Get("/who", {{"X-Forwarded-For", "192.0.2.5, 198.51.100.7"}});
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out.reply.status, 403);
  out = Get("/who", {{"X-Forwarded-For", "not-an-address"}});
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out.reply.status, 403);
  const auto refused = Refused();
  ASSERT_EQ(refused.size(), 2u);
  EXPECT_EQ(refused[0].ip, "127.0.0.1");
  EXPECT_EQ(refused[0].forwarded_for, "198.51.100.7");
  EXPECT_EQ(refused[1].forwarded_for, "unreadable");
}

TEST_F(HttpServerGuardTest, SecurityHeadersWhenAskedForAndTheHandlersOwnWins) {
  HttpServerOptions o;
  o.security_headers = true;
  Start(o);
  HttpOutcome out = Get("/who");
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out.reply.Header("content-security-policy"),
            "default-src 'self'; frame-ancestors 'none'");
  EXPECT_EQ(out.reply.Header("x-content-type-options"), "nosniff");
  EXPECT_EQ(out.reply.Header("referrer-policy"), "no-referrer");
  EXPECT_EQ(out.reply.Header("cache-control"), "no-store");
  out = Get("/nowhere");  // the server's own 404 too
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out.reply.status, 404);
  EXPECT_EQ(out.reply.Header("x-content-type-options"), "nosniff");
  out = Get("/framed");
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out.reply.Header("content-security-policy"), "default-src 'none'");
}

TEST_F(HttpServerGuardTest, NoSecurityHeadersByDefault) {
  Start(HttpServerOptions{});
  HttpOutcome out = Get("/who");
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out.reply.Header("content-security-policy"), "");
  EXPECT_EQ(out.reply.Header("x-content-type-options"), "");
}

class HttpServerGuardTlsTest : public HttpServerGuardTest {
 protected:
  void MakeFiles() {
    dir_ = std::filesystem::temp_directory_path() /
           ("ordertrace_http_guard_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    ASSERT_TRUE(files_.Make(dir_.string()));
  }
  std::shared_ptr<const TlsServerContext> ServerTls(bool mtls) {
    TlsServerOptions o;
    o.cert_file = files_.server_cert;
    o.key_file = files_.server_key;
    if (mtls) o.client_ca_file = files_.ca_cert;
    auto tls = TlsServerContext::Create(o);
    EXPECT_TRUE(tls.ok());
    return *tls;
  }
  std::shared_ptr<const TlsClientContext> ClientTls(bool with_cert) {
    TlsOptions o;
    o.ca_file = files_.ca_cert;
    if (with_cert) {
      o.cert_file = files_.client_cert;
      o.key_file = files_.client_key;
    }
    auto tls = TlsClientContext::Create(o);
    EXPECT_TRUE(tls.ok());
    return *tls;
  }
  testing_support::TlsFiles files_;
};

TEST_F(HttpServerGuardTlsTest, RefusedBeforeTheHandshake) {
  MakeFiles();
  HttpServerOptions o;
  o.tls = ServerTls(false);
  o.allow = Set({"10.0.0.0/8"});
  Start(o);
  EXPECT_EQ(testing_support::ServerCommonName(server_->port(), files_.ca_cert), "");
  EXPECT_EQ(Refused().size(), 1u);
}

TEST_F(HttpServerGuardTlsTest, HandlersSeeTheVerifiedClientCertificate) {
  MakeFiles();
  HttpServerOptions o;
  o.tls = ServerTls(true);
  Start(o);
  HttpOutcome out = Get("/who", {}, ClientTls(true));
  ASSERT_TRUE(out.ok()) << out.failure->Describe();
  EXPECT_EQ(out.reply.body, "|client-1");
}

TEST_F(HttpServerGuardTlsTest, NoClientCertificateNoPeer) {
  MakeFiles();
  HttpServerOptions o;
  o.tls = ServerTls(false);
  Start(o);
  HttpOutcome out = Get("/who", {}, ClientTls(true));  // offered but not asked for
  ASSERT_TRUE(out.ok()) << out.failure->Describe();
  EXPECT_EQ(out.reply.body, "|");
}

}  // namespace
}  // namespace ordertrace::net
