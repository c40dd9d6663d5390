// The gateway's API sign-in wiring, in process: a Gateway configured with auth.oidc.* against a
// small discovery + JWKS server on loopback (the real provider is in tests/oidc).  The API
// answers 503 to tokens while the IdP is down, /readyz stays 200, and it recovers without a
// restart; roles decide; the metrics count.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "common/clock.h"
#include "gateway/gateway.h"
#include "net/http_client.h"
#include "net/http_server.h"
#include "support/jwt_mint.h"

namespace ordertrace::gateway {
namespace {

using nlohmann::json;
using testing_support::TestKey;

TEST(GatewayAuthTest, ApiNeedsATokenAndServesWhileTheIdpIsDown) {
  const TestKey key = TestKey::EcP256();
  std::atomic<bool> idp_up{false};
  net::HttpServer idp(net::HttpServerOptions{});
  std::string issuer;
  idp.Route("GET", "/.well-known/openid-configuration",
            [&](net::HttpRequest&, net::HttpResponse& res) {
              res.status = idp_up ? 200 : 503;
              res.content_type = "application/json";
              res.body = json{{"issuer", issuer}, {"jwks_uri", issuer + "/jwks"}}.dump();
            });
  idp.Route("GET", "/jwks", [&](net::HttpRequest&, net::HttpResponse& res) {
    res.status = idp_up ? 200 : 503;
    res.content_type = "application/json";
    res.body = json{{"keys", {key.Jwk("ec-1")}}}.dump();
  });
  ASSERT_TRUE(idp.Start().ok());
  issuer = "http://127.0.0.1:" + std::to_string(idp.port());

  const auto dir = std::filesystem::temp_directory_path() /
                   ("ordertrace_gateway_auth_test_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  config::Config c;
  c.listen.otlp_grpc = "127.0.0.1:0";
  c.listen.otlp_http = "127.0.0.1:0";
  c.listen.http = "127.0.0.1:0";
  c.data_dir = (dir / "data").string();
  std::filesystem::create_directories(dir / "ui");
  std::ofstream(dir / "ui" / "index.html") << "<!doctype html>\n";
  c.ui.dir = (dir / "ui").string();
  c.auth.oidc.issuer = issuer;
  c.auth.oidc.audience = "urn:ordertrace:api";
  c.auth.oidc.allow_insecure_loopback = true;
  c.auth.oidc.jwks_cooldown = std::chrono::seconds(1);
  Gateway gw(c);
  ASSERT_TRUE(gw.Start().ok());
  const std::string api = "http://127.0.0.1:" + std::to_string(gw.http_port());

  const int64_t now = ordertrace::SystemClock().Now() / 1'000'000'000;
  auto token = [&](const std::string& role) {
    return testing_support::MintJwt(json{{"alg", "ES256"}, {"typ", "at+jwt"}, {"kid", "ec-1"}},
                                    json{{"iss", issuer},
                                         {"aud", "urn:ordertrace:api"},
                                         {"sub", "alice"},
                                         {"exp", now + 600},
                                         {"roles", {role}}},
                                    key);
  };
  auto get = [&](const std::string& target, const std::string& bearer) {
    net::HttpOptions o;
    o.timeout = std::chrono::milliseconds(3000);
    if (!bearer.empty()) o.headers = {{"Authorization", "Bearer " + bearer}};
    auto r = net::HttpGet(api, target, o);
    EXPECT_TRUE(r.ok()) << r.status().message();
    return r.ok() ? r.value() : net::HttpReply{};
  };

  // The IdP is down: tokens get 503, no token 401, readiness is unaffected.
  EXPECT_EQ(get("/api/v1/orders", token("Developer")).status, 503);
  net::HttpReply none = get("/api/v1/orders", "");
  EXPECT_EQ(none.status, 401);
  EXPECT_EQ(none.Header("WWW-Authenticate"), "Bearer realm=\"ordertrace\"");
  EXPECT_EQ(none.Header("X-Request-Id").size(), 36u);
  EXPECT_EQ(get("/readyz", "").status, 200);

  // It comes back: the gateway recovers by itself.
  idp_up = true;
  bool served = false;
  for (int i = 0; i < 100 && !served; ++i) {
    served = get("/api/v1/orders", token("Developer")).status == 200;
    if (!served) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(served);
  EXPECT_EQ(get("/api/v1/orders", token("DevOps")).status, 200);
  EXPECT_EQ(get("/api/v1/orders", token("Sales")).status, 403);
  const std::string metrics = get("/metrics", "").body;
  EXPECT_NE(metrics.find("ordertrace_api_auth_total{method=\"bearer\",result=\"allowed\"} 2"),
            std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("ordertrace_api_auth_total{method=\"bearer\",result=\"forbidden\"} 1"),
            std::string::npos);
  EXPECT_NE(metrics.find("ordertrace_oidc_jwks_fetch_total{result=\"ok\"} 1"), std::string::npos);
  // The web UI is as closed as the API: a token with a role opens it; without one 401 (no
  // browser sign-in here to send anyone to), with a role that has no access 403.
  const net::HttpReply ui = get("/ui/stuck", "");
  EXPECT_EQ(ui.status, 401);
  EXPECT_NE(ui.body.find("auth.signin"), std::string::npos) << ui.body;
  EXPECT_EQ(get("/ui/stuck", token("Developer")).status, 200);
  EXPECT_EQ(get("/ui/stuck", token("Sales")).status, 403);
  gw.Stop();
  idp.Shutdown();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace ordertrace::gateway
