// The API's guard with the OIDC bearer authorizer over a real HttpServer: RFC 6750 answers,
// roles, X-Request-Id and one audit event per request (a recording sink), with tokens minted
// in the test and a fixed key set.
#include "api/api_guard.h"

#include <gtest/gtest.h>

#include <boost/asio.hpp>
#include <mutex>
#include <regex>
#include <thread>

#include "api/bearer_authorizer.h"
#include "api/journey_api.h"
#include "journey/store/memory/memory_store.h"
#include "net/http_client.h"
#include "support/jwt_mint.h"

namespace ordertrace::api {
namespace {

using nlohmann::json;
using testing_support::MintJwt;
using testing_support::TestKey;

constexpr Nanos kSec = 1'000'000'000;
constexpr int64_t kNow = 1'790'000'000;
constexpr char kIssuer[] = "https://idp.example/realms/corp";
constexpr char kAudience[] = "urn:ordertrace:api";

class RecordingAudit : public audit::AuditSink {
 public:
  void Record(const audit::AuditEvent& e) override {
    std::lock_guard<std::mutex> lock(mu_);
    events.push_back(e);
  }
  std::vector<audit::AuditEvent> Take() {
    std::lock_guard<std::mutex> lock(mu_);
    return std::exchange(events, {});
  }

 private:
  std::mutex mu_;
  std::vector<audit::AuditEvent> events;
};

class CountingKeys : public auth::KeySource {
 public:
  std::shared_ptr<const auth::KeySet> Keys() const override { return keys; }
  void OnUnknownKid() const override { ++unknown; }
  std::shared_ptr<const auth::KeySet> keys;
  mutable std::atomic<int> unknown{0};
};

const TestKey& Rsa() {
  static const TestKey* k = new TestKey(TestKey::Rsa(2048));
  return *k;
}

class ApiGuardTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(auth::RoleOptions{}); }

  void Start(auth::RoleOptions roles) {
    server_.reset();
    auto set = auth::KeySet::Parse(json{{"keys", {Rsa().Jwk("k1")}}}.dump());
    ASSERT_TRUE(set.ok());
    keys_.keys = std::make_shared<const auth::KeySet>(std::move(set).value());
    auth::JwtVerifierOptions v;
    v.issuer = kIssuer;
    v.audience = kAudience;
    auto verifier = auth::JwtVerifier::Create(v);
    auto mapper = auth::RoleMapper::Create(std::move(roles));
    ASSERT_TRUE(verifier.ok() && mapper.ok());
    authorizer_ = std::make_unique<BearerAuthorizer>(std::move(verifier).value(),
                                                     std::move(mapper).value(), keys_, clock_);
    guard_ = std::make_unique<ApiGuard>(*authorizer_, &audit_, &registry_);
    store_ = journey::NewMemoryStore();
    engine_ = std::make_unique<journey::Engine>(
        std::make_shared<journey::Rules>(journey::DefaultRules()), *store_, clock_, nullptr);
    server_ = std::make_unique<net::HttpServer>(net::HttpServerOptions{});
    RegisterJourneyRoutes(*server_, *engine_, *guard_, {});
    RegisterBrokerRoute(*server_, *guard_, [] { return std::string("{}"); });
    // Where an attacker's jku / x5u point: nothing may ever ask.
    server_->Route("GET", "/attacker/*", [this](net::HttpRequest&, net::HttpResponse& res) {
      ++attacker_fetches_;
      res.body = "{}";
    });
    ASSERT_TRUE(server_->Start().ok());
  }

  static std::string Token(const json& extra, const std::string& kid = "k1") {
    json claims = {{"iss", kIssuer},    {"aud", kAudience}, {"sub", "alice"},
                   {"exp", kNow + 300}, {"iat", kNow},      {"client_id", "svc-ops"}};
    claims.update(extra);
    return MintJwt(json{{"alg", "RS256"}, {"typ", "at+jwt"}, {"kid", kid}}, claims, Rsa());
  }

  net::HttpReply Get(const std::string& target, net::HeaderList headers = {}) {
    net::HttpOptions o;
    o.headers = std::move(headers);
    auto r = net::HttpGet("http://127.0.0.1:" + std::to_string(server_->port()), target, o);
    EXPECT_TRUE(r.ok()) << r.status().message();
    return r.ok() ? r.value() : net::HttpReply{};
  }
  net::HttpReply GetWith(const std::string& token, const std::string& target = "/api/v1/orders") {
    return Get(target, {{"Authorization", "Bearer " + token}});
  }

  // Sends `request` as is and returns the answer's status line.
  std::string RawStatusLine(const std::string& request) {
    boost::asio::io_context io;
    boost::asio::ip::tcp::socket socket(io);
    socket.connect({boost::asio::ip::make_address("127.0.0.1"), server_->port()});
    boost::asio::write(socket, boost::asio::buffer(request));
    boost::asio::streambuf buf;
    boost::system::error_code ec;
    boost::asio::read_until(socket, buf, "\r\n", ec);
    std::string line{std::istreambuf_iterator<char>(&buf), {}};
    return line.substr(0, line.find("\r\n"));
  }

  std::atomic<int> attacker_fetches_{0};
  ManualClock clock_{kNow * kSec};
  CountingKeys keys_;
  RecordingAudit audit_;
  metrics::Registry registry_;
  std::unique_ptr<BearerAuthorizer> authorizer_;
  std::unique_ptr<ApiGuard> guard_;
  std::unique_ptr<journey::JourneyStore> store_;
  std::unique_ptr<journey::Engine> engine_;
  std::unique_ptr<net::HttpServer> server_;
};

TEST_F(ApiGuardTest, NoTokenIs401WithTheBearerChallenge) {
  net::HttpReply r = Get("/api/v1/orders");
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(r.Header("WWW-Authenticate"), "Bearer realm=\"ordertrace\"");
  EXPECT_TRUE(std::regex_match(std::string(r.Header("X-Request-Id")),
                               std::regex("[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-"
                                          "[0-9a-f]{12}")))
      << r.Header("X-Request-Id");
  // A token in the query string is not read (RFC 6750 §2.3); another scheme is no token.
  EXPECT_EQ(Get("/api/v1/orders?access_token=" + Token({{"roles", {"Developer"}}})).status, 401);
  EXPECT_EQ(Get("/api/v1/orders", {{"Authorization", "Basic YTpi"}}).status, 401);
  auto events = audit_.Take();
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].outcome, "denied");
  EXPECT_EQ(events[0].reason, "no_token");
  EXPECT_EQ(events[0].http.status, 401);
  EXPECT_EQ(events[0].http.route, "/api/v1/orders");
  EXPECT_EQ(events[0].source.ip, "127.0.0.1");
  EXPECT_EQ(events[0].request_id, std::string(r.Header("X-Request-Id")));
}

TEST_F(ApiGuardTest, BadTokensAre401InvalidTokenWithoutDetail) {
  json expired = {{"roles", {"Developer"}}, {"exp", kNow - 3600}};
  for (const std::string& token :
       {Token(expired), Token({{"roles", {"Developer"}}, {"aud", "other"}}), std::string("x.y.z"),
        std::string("garbage")}) {
    net::HttpReply r = GetWith(token);
    EXPECT_EQ(r.status, 401);
    EXPECT_EQ(r.Header("WWW-Authenticate"), "Bearer realm=\"ordertrace\", error=\"invalid_token\"");
    EXPECT_EQ(json::parse(r.body)["error"], "invalid_token");
  }
  auto events = audit_.Take();
  ASSERT_EQ(events.size(), 4u);
  EXPECT_EQ(events[0].reason, "invalid_token:expired");
  EXPECT_EQ(events[1].reason, "invalid_token:audience");
  EXPECT_EQ(events[0].actor.method, "bearer");
}

TEST_F(ApiGuardTest, RolesDecide) {
  struct Case {
    json claims;
    int status;
    std::string reason;
  };
  const std::vector<Case> cases = {
      {{{"roles", {"Developer"}}}, 200, ""},
      {{{"roles", {"DevOps"}}}, 200, ""},
      {{{"realm_access", {{"roles", {"offline_access", "DevOps"}}}}}, 200, ""},
      {{{"roles", {"Sales"}}}, 403, "missing_role"},
      {{{"sub", "nora"}}, 403, "missing_role"},
      {{{"roles", {"developer"}}}, 403, "missing_role"},
      {{{"_claim_names", {{"groups", "src1"}}}}, 403, "groups_overage"},
  };
  for (const Case& c : cases) {
    net::HttpReply r = GetWith(Token(c.claims));
    EXPECT_EQ(r.status, c.status) << c.claims.dump() << " " << r.body;
    if (c.status == 403) {
      EXPECT_EQ(r.Header("WWW-Authenticate"),
                "Bearer realm=\"ordertrace\", error=\"insufficient_scope\"");
    }
    auto events = audit_.Take();
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0].reason, c.reason);
    EXPECT_EQ(events[0].outcome, c.status == 200 ? "allowed" : "denied");
  }
  // Allowed: the audit knows who, from where, and what was asked.
  EXPECT_EQ(GetWith(Token({{"roles", {"DevOps"}}}), "/api/v1/orders/A-1").status, 404);
  EXPECT_EQ(GetWith(Token({{"roles", {"DevOps"}}}), "/api/v1/broker").status, 200);
  EXPECT_EQ(GetWith(Token({{"roles", {"DevOps"}}}), "/api/v1/orders?stuck=true&limit=5").status,
            200);
  auto events = audit_.Take();
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].actor.sub, "alice");
  EXPECT_EQ(events[0].actor.iss, kIssuer);
  EXPECT_EQ(events[0].actor.client_id, "svc-ops");
  EXPECT_EQ(events[0].actor.method, "bearer");
  EXPECT_EQ(events[0].actor.roles, std::vector<std::string>{"DevOps"});
  EXPECT_EQ(events[0].http.route, "/api/v1/orders/{id}");
  EXPECT_EQ(events[0].http.status, 404);
  EXPECT_EQ(events[0].outcome, "allowed");
  ASSERT_EQ(events[0].resource.size(), 2u);
  EXPECT_EQ(events[0].resource[1], (std::pair<std::string, std::string>("id", "A-1")));
  EXPECT_EQ(events[1].http.route, "/api/v1/broker");
  EXPECT_EQ(events[2].resource.size(), 3u);
  const std::string metrics = registry_.Serialize();
  EXPECT_NE(metrics.find("ordertrace_api_auth_total{method=\"bearer\",result=\"forbidden\"} 4"),
            std::string::npos)
      << metrics;
}

TEST_F(ApiGuardTest, SingleStringRolesAndMappedGroups) {
  auth::RoleOptions o;
  o.claims = {"/role", "/groups"};
  o.map = {{"Developer", {"1b2c3d4e-0000-4000-8000-000000000001"}}, {"DevOps", {"DevOps"}}};
  Start(o);
  EXPECT_EQ(GetWith(Token({{"role", "DevOps"}})).status, 200);
  EXPECT_EQ(GetWith(Token({{"groups", {"1b2c3d4e-0000-4000-8000-000000000001"}}})).status, 200);
  EXPECT_EQ(GetWith(Token({{"groups", {"Developer"}}})).status, 403);
}

TEST_F(ApiGuardTest, SchemeCaseTwoHeadersUnknownKidAndNoKeys) {
  const std::string t = Token({{"roles", {"Developer"}}});
  EXPECT_EQ(Get("/api/v1/orders", {{"Authorization", "bearer " + t}}).status, 200);
  EXPECT_EQ(Get("/api/v1/orders", {{"Authorization", "BEARER  " + t}}).status, 200);
  // Two Authorization headers (the client merges same names, so a raw request).
  const std::string two = RawStatusLine(
      "GET /api/v1/orders HTTP/1.1\r\nHost: x\r\n"
      "Authorization: Bearer " +
      t + "\r\nAuthorization: Bearer " + t + "\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(two, "HTTP/1.1 400 Bad Request");
  // An unknown kid: refused at once, the key source asked (it refetches in the background).
  EXPECT_EQ(GetWith(Token({{"roles", {"Developer"}}}, "k9")).status, 401);
  EXPECT_EQ(keys_.unknown.load(), 1);
  // No keys ever fetched: 503, not 401 (the token may well be good).
  keys_.keys = nullptr;
  net::HttpReply r = GetWith(t);
  EXPECT_EQ(r.status, 503);
  EXPECT_FALSE(r.Header("Retry-After").empty());
}

TEST_F(ApiGuardTest, EmbeddedKeysAndKeyUrlsAreNeverFetched) {
  const TestKey attacker = TestKey::Rsa(2048);
  const std::string base = "http://127.0.0.1:" + std::to_string(server_->port()) + "/attacker";
  json header = {{"alg", "RS256"},
                 {"typ", "at+jwt"},
                 {"kid", "k1"},
                 {"jku", base + "/jwks.json"},
                 {"x5u", base + "/cert.pem"},
                 {"jwk", attacker.Jwk("k1")}};
  json claims = {{"iss", kIssuer},
                 {"aud", kAudience},
                 {"sub", "mallory"},
                 {"exp", kNow + 300},
                 {"roles", {"DevOps"}}};
  EXPECT_EQ(GetWith(MintJwt(header, claims, attacker)).status, 401);
  header.erase("kid");
  EXPECT_EQ(GetWith(MintJwt(header, claims, attacker)).status, 401);
  header["kid"] = "attacker-kid";
  EXPECT_EQ(GetWith(MintJwt(header, claims, attacker)).status, 401);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(attacker_fetches_.load(), 0);
}

TEST_F(ApiGuardTest, NoSecretReachesTheAuditOrTheAnswer) {
  const std::string t = Token({{"roles", {"Sales"}}});
  net::HttpReply r = GetWith(t, "/api/v1/orders/A-1");
  EXPECT_EQ(r.status, 403);
  const std::string signature = t.substr(t.rfind('.') + 1);
  EXPECT_EQ(r.body.find(signature), std::string::npos);
  for (const audit::AuditEvent& e : audit_.Take()) {
    for (const std::string& field : {e.reason, e.actor.sub, e.actor.name, e.user_agent}) {
      EXPECT_EQ(field.find(signature), std::string::npos);
      EXPECT_EQ(field.find("Bearer"), std::string::npos);
    }
  }
}

TEST(AllowAllTest, AnonymousPrincipalAndRequestIds) {
  AllowAll allow;
  AuthResult r = allow.Authorize(net::HttpRequest{}, "orders.read");
  EXPECT_TRUE(r.allowed());
  EXPECT_EQ(r.principal.method, "anonymous");
  EXPECT_NE(NewRequestId(), NewRequestId());
}

}  // namespace
}  // namespace ordertrace::api
