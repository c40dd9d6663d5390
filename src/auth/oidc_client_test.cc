// The OIDC client's discovery and key cache against a small JWKS server on loopback (the real
// provider, oidc-provider, is in tests/oidc), with a manual clock driving Tick().
#include "auth/oidc_client.h"

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>

#include "net/http_server.h"
#include "support/jwt_mint.h"

namespace ordertrace::auth {
namespace {

using nlohmann::json;
using testing_support::TestKey;

constexpr Nanos kSec = 1'000'000'000;

class FakeProvider {
 public:
  FakeProvider() {
    net::HttpServerOptions o;
    server_ = std::make_unique<net::HttpServer>(o);
    server_->Route("GET", "/realm/.well-known/openid-configuration",
                   [this](net::HttpRequest&, net::HttpResponse& res) {
                     std::lock_guard<std::mutex> lock(mu_);
                     res.content_type = "application/json";
                     res.body =
                         json{{"issuer", issuer_override_.empty() ? issuer() : issuer_override_},
                              {"jwks_uri", origin() + "/realm/jwks"}}
                             .dump();
                   });
    server_->Route("GET", "/realm/jwks", [this](net::HttpRequest&, net::HttpResponse& res) {
      ++jwks_requests;
      std::lock_guard<std::mutex> lock(mu_);
      res.status = jwks_status_;
      res.content_type = "application/json";
      res.body = jwks_.dump();
    });
    EXPECT_TRUE(server_->Start().ok());
  }
  std::string origin() const { return "http://127.0.0.1:" + std::to_string(server_->port()); }
  std::string issuer() const { return origin() + "/realm"; }
  // A vector, not a json: `json{one_key}` is that object under clang but an array of one under
  // GCC (nlohmann's brace-initialisation ambiguity).
  void SetKeys(std::vector<json> keys) {
    std::lock_guard<std::mutex> lock(mu_);
    jwks_ = json{{"keys", json(std::move(keys))}};
  }
  void SetJwksStatus(int s) {
    std::lock_guard<std::mutex> lock(mu_);
    jwks_status_ = s;
  }
  void SetIssuerOverride(std::string s) {
    std::lock_guard<std::mutex> lock(mu_);
    issuer_override_ = std::move(s);
  }
  std::atomic<int> jwks_requests{0};

 private:
  std::unique_ptr<net::HttpServer> server_;
  std::mutex mu_;
  json jwks_ = json{{"keys", json::array()}};
  int jwks_status_ = 200;
  std::string issuer_override_;
};

const TestKey& K1() {
  static const TestKey* k = new TestKey(TestKey::Rsa(2048));
  return *k;
}
const TestKey& K2() {
  static const TestKey* k = new TestKey(TestKey::EcP256());
  return *k;
}

class OidcClientTest : public ::testing::Test {
 protected:
  std::unique_ptr<OidcClient> Client(const std::string& issuer) {
    OidcClientOptions o;
    o.issuer = issuer;
    o.allow_insecure_loopback = true;
    o.timeout = std::chrono::milliseconds(2000);
    auto c = OidcClient::Create(o, clock_, &registry_);
    EXPECT_TRUE(c.ok()) << c.status().message();
    return c.ok() ? std::move(c).value() : nullptr;
  }
  ManualClock clock_{1'790'000'000 * kSec};
  metrics::Registry registry_;
  FakeProvider idp_;
};

TEST_F(OidcClientTest, DiscoversAndCachesKeysAndRefetchesWithinBounds) {
  idp_.SetKeys({K1().Jwk("k1")});
  auto c = Client(idp_.issuer());
  ASSERT_TRUE(c);
  EXPECT_EQ(c->Keys(), nullptr);
  (void)c->Tick();
  ASSERT_NE(c->Keys(), nullptr);
  EXPECT_TRUE(c->Keys()->HasKid("k1"));
  EXPECT_EQ(idp_.jwks_requests.load(), 1);

  // k2 appears; unknown-kid requests inside the cooldown fetch nothing, however many.
  idp_.SetKeys({K1().Jwk("k1"), K2().Jwk("k2")});
  for (int i = 0; i < 1000; ++i) c->OnUnknownKid();
  (void)c->Tick();
  EXPECT_EQ(idp_.jwks_requests.load(), 1);
  // When the cooldown ends, one fetch serves them all (no new request needed).
  clock_.Advance(std::chrono::seconds(31));
  (void)c->Tick();
  (void)c->Tick();
  EXPECT_EQ(idp_.jwks_requests.load(), 2);
  for (int i = 0; i < 1000; ++i) c->OnUnknownKid();
  (void)c->Tick();
  EXPECT_EQ(idp_.jwks_requests.load(), 2);
  EXPECT_TRUE(c->Keys()->HasKid("k2"));

  // A failed fetch keeps the last good set.
  idp_.SetJwksStatus(500);
  clock_.Advance(std::chrono::minutes(11));
  (void)c->Tick();
  EXPECT_EQ(idp_.jwks_requests.load(), 3);
  EXPECT_TRUE(c->Keys()->HasKid("k2"));
  // ... and retries after the cooldown, not at once.
  (void)c->Tick();
  EXPECT_EQ(idp_.jwks_requests.load(), 3);
  idp_.SetJwksStatus(200);
  idp_.SetKeys({K2().Jwk("k2")});
  clock_.Advance(std::chrono::seconds(31));
  (void)c->Tick();
  EXPECT_EQ(idp_.jwks_requests.load(), 4);
  EXPECT_FALSE(c->Keys()->HasKid("k1"));
  EXPECT_NE(registry_.Serialize().find("ordertrace_oidc_jwks_fetch_total{result=\"error\"} 1"),
            std::string::npos)
      << registry_.Serialize();
}

TEST_F(OidcClientTest, IssuerMustBeIdentical) {
  idp_.SetKeys({K1().Jwk("k1")});
  idp_.SetIssuerOverride(idp_.issuer() + "/");
  auto c = Client(idp_.issuer());
  (void)c->Tick();
  EXPECT_EQ(c->Keys(), nullptr);
  EXPECT_EQ(idp_.jwks_requests.load(), 0);
}

TEST_F(OidcClientTest, NoKeysUntilTheProviderAnswersThenRecovers) {
  idp_.SetKeys({K1().Jwk("k1")});
  idp_.SetJwksStatus(503);
  auto c = Client(idp_.issuer());
  (void)c->Tick();
  EXPECT_EQ(c->Keys(), nullptr);
  idp_.SetJwksStatus(200);
  clock_.Advance(std::chrono::seconds(2));
  (void)c->Tick();
  ASSERT_NE(c->Keys(), nullptr);
}

TEST(OidcClientUrlTest, HttpsRequiredExceptExplicitLoopback) {
  EXPECT_TRUE(CheckFetchUrl("https://idp.example/realms/x", false, "issuer").ok());
  EXPECT_FALSE(CheckFetchUrl("http://idp.example/realms/x", true, "issuer").ok());
  EXPECT_FALSE(CheckFetchUrl("http://127.0.0.1:8080", false, "issuer").ok());
  EXPECT_TRUE(CheckFetchUrl("http://127.0.0.1:8080", true, "issuer").ok());
  EXPECT_TRUE(CheckFetchUrl("http://[::1]:8080", true, "issuer").ok());
  EXPECT_FALSE(CheckFetchUrl("ftp://idp.example", true, "issuer").ok());
  ManualClock clock;
  OidcClientOptions o;
  o.issuer = "http://idp.example";
  EXPECT_FALSE(OidcClient::Create(o, clock, nullptr).ok());
}

}  // namespace
}  // namespace ordertrace::auth
