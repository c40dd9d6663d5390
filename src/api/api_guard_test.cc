// The API's guard with the OIDC bearer authorizer over a real HttpServer: RFC 6750 answers,
// roles, X-Request-Id and one audit event per request (a recording sink), with tokens minted
// in the test and a fixed key set; and the lookup of a partner's orders, whose clear form needs
// a second action (ApiGuard::Check).
#include "api/api_guard.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <boost/asio.hpp>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <regex>
#include <sstream>
#include <thread>

#include "api/bearer_authorizer.h"
#include "api/journey_api.h"
#include "journey/store/memory/memory_store.h"
#include "net/http_client.h"
#include "redact/pseudonym.h"
#include "redact/value_redactor.h"
#include "support/jwt_mint.h"

namespace ordertrace::api {
namespace {

namespace fs = std::filesystem;
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
    guard_ = std::make_unique<ApiGuard>(*authorizer_, audit_sink_, &registry_);
    store_ = journey::NewMemoryStore();
    engine_ = std::make_unique<journey::Engine>(
        std::make_shared<journey::Rules>(journey::DefaultRules()), *store_, clock_, nullptr);
    server_ = std::make_unique<net::HttpServer>(net::HttpServerOptions{});
    RegisterJourneyRoutes(*server_, *engine_, *guard_, journey_options_);
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
  audit::AuditSink* audit_sink_ = &audit_;  // where the guard writes (set before Start())
  JourneyApiOptions journey_options_;       // the journey routes' (set before Start())
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

TEST_F(ApiGuardTest, ADescriberNamesWhatWasAskedForEvenWhenRefused) {
  int handled = 0;
  const net::HttpHandler h = guard_->Wrap(
      "/jaeger/{path}", "traces.read",
      [](const net::HttpRequest& req, audit::AuditEvent& event) {
        event.http.route = "/jaeger/api/traces/{id}";
        event.resource.emplace_back("trace_id", req.path.substr(req.path.rfind('/') + 1));
      },
      [&handled](net::HttpRequest&, net::HttpResponse& res, audit::AuditEvent&) {
        ++handled;
        res.body = "trace";
      });
  auto call = [&h](const std::string& authorization) {
    net::HttpRequest req;
    req.method = "GET";
    req.path = "/jaeger/api/traces/abc";
    req.peer = "127.0.0.1:5000";
    if (!authorization.empty()) req.headers.emplace_back("authorization", authorization);
    net::HttpResponse res;
    h(req, res);
    return res.status;
  };
  EXPECT_EQ(call(""), 401);
  EXPECT_EQ(call("Bearer " + Token({{"roles", {"Sales"}}})), 403);
  EXPECT_EQ(call("Bearer " + Token({{"roles", {"Developer"}}})), 200);
  EXPECT_EQ(handled, 1);
  auto events = audit_.Take();
  ASSERT_EQ(events.size(), 3u);
  for (const auto& e : events) {
    EXPECT_EQ(e.http.route, "/jaeger/api/traces/{id}");
    EXPECT_EQ(e.resource, (std::vector<std::pair<std::string, std::string>>{{"trace_id", "abc"}}));
  }
  EXPECT_EQ(events[0].outcome, "denied");
  EXPECT_EQ(events[1].outcome, "denied");
  EXPECT_EQ(events[2].outcome, "allowed");
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

// ?include=jaeger reads the order's traces back from Jaeger: it needs traces.read besides
// orders.read, checked before anything is read, and audited with what was asked.
// The board's routes (summary, rules, the list with its new filters) need orders.list: a
// role with orders.read alone is refused, before anything is read, and audited.
TEST_F(ApiGuardTest, BoardRoutesNeedOrdersList) {
  auth::RoleOptions roles;
  roles.actions = {{"Developer", {"orders.read"}}, {"DevOps", {"orders.read", "orders.list"}}};
  Start(roles);
  (void)audit_.Take();
  const std::string dev = Token({{"roles", {"Developer"}}});
  const std::string ops = Token({{"roles", {"DevOps"}}});
  for (const std::string target : {"/api/v1/summary", "/api/v1/rules",
                                   "/api/v1/orders?stuck=true&sort=stuck_since&kind=silent"}) {
    net::HttpReply r = GetWith(dev, target);
    EXPECT_EQ(r.status, 403) << target << " " << r.body;
    EXPECT_EQ(json::parse(r.body)["error"], "forbidden: your roles do not allow orders.list");
    EXPECT_TRUE(r.Header("ETag").empty()) << target;
    r = GetWith(ops, target);
    EXPECT_EQ(r.status, 200) << target << " " << r.body;
    EXPECT_FALSE(r.Header("ETag").empty()) << target;
  }
  const auto events = audit_.Take();
  ASSERT_EQ(events.size(), 6u);
  EXPECT_EQ(events[0].http.route, "/api/v1/summary");
  EXPECT_EQ(events[0].outcome, "denied");
  EXPECT_EQ(events[0].reason, "action_not_allowed");
  EXPECT_EQ(events[1].outcome, "allowed");
  EXPECT_EQ(events[2].http.route, "/api/v1/rules");
  using Entry = std::pair<std::string, std::string>;
  EXPECT_EQ(
      events[5].resource,
      (std::vector<Entry>{
          {"type", "order_list"}, {"stuck", "true"}, {"sort", "stuck_since"}, {"kind", "silent"}}));
}

TEST_F(ApiGuardTest, IncludeJaegerNeedsTracesRead) {
  std::atomic<int> read_backs{0};
  journey_options_.jaeger_read_back = [&read_backs](const journey::Journey& j) {
    ++read_backs;
    return json{{"traces", json::array()}, {"order", j.order.order_id}};
  };
  auth::RoleOptions roles;
  roles.actions = {{"Developer", {"orders.read"}}, {"DevOps", {"orders.read", "traces.read"}}};
  Start(roles);
  journey::SpanRecord span;
  span.order_id = "A-1";
  span.trace_id = "0af7651916cd43dd8448eb211c80319c";
  span.span_id = "00000000000000a1";
  span.service = "crm";
  span.start_ns = kNow * kSec;
  span.end_ns = span.start_ns + kSec;
  ASSERT_TRUE(engine_->Apply({span}).ok());
  (void)audit_.Take();

  const std::string dev = Token({{"roles", {"Developer"}}});
  EXPECT_EQ(GetWith(dev, "/api/v1/orders/A-1").status, 200);  // without it: orders.read only
  net::HttpReply r = GetWith(dev, "/api/v1/orders/A-1?include=jaeger");
  EXPECT_EQ(r.status, 403) << r.body;
  EXPECT_EQ(json::parse(r.body)["error"], "forbidden: your roles do not allow traces.read");
  EXPECT_EQ(GetWith(dev, "/api/v1/orders/NOPE?include=jaeger").status, 403);  // not 404
  EXPECT_EQ(read_backs, 0);
  r = GetWith(Token({{"roles", {"DevOps"}}}), "/api/v1/orders/A-1?include=jaeger");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body)["jaeger"]["order"], "A-1");
  EXPECT_EQ(read_backs, 1);

  const auto events = audit_.Take();
  ASSERT_EQ(events.size(), 4u);
  using Entry = std::pair<std::string, std::string>;
  EXPECT_EQ(events[0].resource, (std::vector<Entry>{{"type", "order"}, {"id", "A-1"}}));
  EXPECT_EQ(events[1].outcome, "denied");
  EXPECT_EQ(events[1].reason, "action_not_allowed");
  EXPECT_EQ(events[1].resource,
            (std::vector<Entry>{{"type", "order"}, {"id", "A-1"}, {"include", "jaeger"}}));
  EXPECT_EQ(events[3].outcome, "allowed");
  EXPECT_EQ(events[3].resource,
            (std::vector<Entry>{{"type", "order"}, {"id", "A-1"}, {"include", "jaeger"}}));
}

// Finding a partner's orders (journey_api.h): by pseudonym for every reader, by clear id for a
// role with orders.lookup_partner only (DevOps by default), hashed under every retained key, and
// audited (to a real audit file here) without the clear value.  The partners are stored as the
// redactor (ValueRedactor) makes them from a partner.id attribute.
//
// The clear partner ids of these tests: none may appear in an answer or the audit.
constexpr char kAcme[] = "ACME-4711";
constexpr char kBuyer[] = "Buyer@Example.COM";

redact::PseudonymKey Key(const std::string& id, char fill) {
  redact::PseudonymKey k;
  k.id = id;
  k.secret = std::string(32, fill);
  return k;
}

std::shared_ptr<const redact::Pseudonymizer> Pseudonymizer(std::vector<redact::PseudonymKey> keys) {
  auto p = redact::Pseudonymizer::Create(std::move(keys));
  EXPECT_TRUE(p.ok()) << p.status().ToString();
  return p.ok() ? std::move(p).value() : nullptr;
}

// What the redactor writes for partner.id = `clear` under `pseudonymizer`.
std::string Redacted(std::shared_ptr<const redact::Pseudonymizer> pseudonymizer,
                     const std::string& clear) {
  auto redactor = redact::ValueRedactor::Create({}, "order.id", std::move(pseudonymizer));
  EXPECT_TRUE(redactor.ok());
  std::string out;
  EXPECT_EQ((*redactor)->RedactAttribute(kPartnerIdKey, clear, &out), redact::Action::kChanged);
  return out;
}

journey::SpanRecord Span(const std::string& order, const std::string& span_id,
                         const std::string& partner, Nanos start) {
  journey::SpanRecord r;
  r.order_id = order;
  r.trace_id = "0af7651916cd43dd8448eb211c80319c";
  r.span_id = span_id;
  r.service = "crm";
  r.name = "submit";
  r.start_ns = start;
  r.end_ns = start + kSec;
  r.stage = "SUBMITTED";
  r.partner = partner;
  return r;
}

class PartnerLookupTest : public ApiGuardTest {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "ordertrace-partner-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    auto audit = audit::AuditLog::Open((dir_ / "audit.log").string());
    ASSERT_TRUE(audit.ok()) << audit.status().ToString();
    audit_file_ = std::move(audit).value();
    audit_sink_ = audit_file_.get();

    // Rotated once: k2 current, k1 retained (its pseudonyms are still recognised and searched).
    old_keys_ = Pseudonymizer({Key("k1", 'a')});
    current_ = Pseudonymizer({Key("k2", 'b'), Key("k1", 'a')});
    acme_new_ = Redacted(current_, kAcme);
    acme_old_ = Redacted(old_keys_, kAcme);
    buyer_ = Redacted(current_, kBuyer);
    other_ = Redacted(current_, "GLOBEX-1");
    StartServer(true);
  }
  void TearDown() override {
    server_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // The API (with or without redaction) on a fresh engine holding the test's orders.
  void StartServer(bool redaction) {
    journey_options_.pseudonymizer = nullptr;
    if (redaction) journey_options_.pseudonymizer = [this] { return current_; };
    Start(auth::RoleOptions{});
    const Nanos t = kNow * kSec;
    ASSERT_TRUE(engine_
                    ->Apply({Span("O-1", "00000000000000a1", acme_new_, t),
                             Span("O-2", "00000000000000a2", acme_old_, t),
                             Span("O-3", "00000000000000a3", other_, t),
                             Span("O-4", "00000000000000a4", buyer_, t),
                             Span("O-5", "00000000000000a5", "", t),
                             Span("O-6", "00000000000000a6", acme_new_, t)})
                    .ok());
  }

  net::HttpReply Get(const std::string& role, const std::string& target) {
    net::HttpReply r = GetWith(Token({{"roles", {role}}}), target);
    replies_ += r.body + "\n";
    return r;
  }
  net::HttpReply Post(const std::string& role, const std::string& target, const std::string& body,
                      const std::string& type = "application/json") {
    net::HttpOptions o;
    o.headers = {{"Authorization", "Bearer " + Token({{"roles", {role}}})}, {"Content-Type", type}};
    auto r = net::HttpPost("http://127.0.0.1:" + std::to_string(server_->port()) + target, body, o);
    EXPECT_TRUE(r.ok()) << r.status().message();
    if (r.ok()) replies_ += r.value().body + "\n";
    return r.ok() ? r.value() : net::HttpReply{};
  }
  static std::vector<std::string> Ids(const net::HttpReply& r) {
    std::vector<std::string> ids;
    const json j = json::parse(r.body, nullptr, false);
    if (!j.is_object() || !j["orders"].is_array()) {
      ADD_FAILURE() << "no order list: " << r.body;
      return ids;
    }
    for (const json& o : j["orders"]) ids.push_back(o["order_id"].get<std::string>());
    return ids;
  }
  // The audit file's lines, as JSON.
  std::vector<json> AuditLines() {
    std::ifstream in(dir_ / "audit.log");
    std::vector<json> lines;
    for (std::string line; std::getline(in, line);) lines.push_back(json::parse(line));
    return lines;
  }
  std::string AuditText() {
    std::ifstream in(dir_ / "audit.log");
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
  // The value of `key` in an audit line's resource object ("" when absent).
  static std::string ResourceOf(const json& line, const std::string& key) {
    const auto r = line.find("resource");
    if (r == line.end() || !r->is_object() || !r->contains(key)) return "";
    return (*r)[key].get<std::string>();
  }

  fs::path dir_;
  std::unique_ptr<audit::AuditLog> audit_file_;
  std::shared_ptr<const redact::Pseudonymizer> old_keys_, current_;
  std::string acme_new_, acme_old_, buyer_, other_;
  std::string replies_;  // every answer's body
};

TEST_F(PartnerLookupTest, ThePartnerIsInTheOrderAndTheList) {
  net::HttpReply r = Get("Developer", "/api/v1/orders/O-1");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body)["partner"], acme_new_);
  r = Get("Developer", "/api/v1/orders?limit=10");
  ASSERT_EQ(r.status, 200) << r.body;
  const json list = json::parse(r.body);
  ASSERT_EQ(list["orders"].size(), 6u);
  EXPECT_EQ(list["orders"][2]["partner"], other_);
  EXPECT_TRUE(list["orders"][4]["partner"].is_null());  // O-5: no partner.id
}

TEST_F(PartnerLookupTest, ByPseudonymForEveryReaderUnderAnyRetainedKey) {
  EXPECT_EQ(Ids(Get("Developer", "/api/v1/orders?partner=" + acme_new_)),
            (std::vector<std::string>{"O-1", "O-6"}));
  // A pseudonym of the retained key (made before the rotation).
  EXPECT_EQ(Ids(Get("Developer", "/api/v1/orders?partner=" + acme_old_)),
            (std::vector<std::string>{"O-2"}));
  // Composes with the other filters and the paging.
  net::HttpReply r = Get("Developer", "/api/v1/orders?stuck=false&limit=1&partner=" + acme_new_);
  EXPECT_EQ(Ids(r), (std::vector<std::string>{"O-1"}));
  const std::string cursor = json::parse(r.body)["next_cursor"].get<std::string>();
  EXPECT_EQ(
      Ids(Get("Developer", "/api/v1/orders?limit=1&cursor=" + cursor + "&partner=" + acme_new_)),
      (std::vector<std::string>{"O-6"}));
  EXPECT_TRUE(Ids(Get("Developer", "/api/v1/orders?stuck=true&partner=" + acme_new_)).empty());
  // A pseudonym of a key this gateway does not hold is searched as it is (nothing matches).
  EXPECT_TRUE(
      Ids(Get("Developer", "/api/v1/orders?partner=pse:zz:AAAAAAAAAAAAAAAAAAAAAA")).empty());
  // No clear lookup happened: the audit names the pseudonym searched.
  const auto lines = AuditLines();
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(ResourceOf(lines[0], "partner"), acme_new_) << lines[0];
  EXPECT_EQ(AuditText().find("clear_id"), std::string::npos);
}

TEST_F(PartnerLookupTest, ClearIdAsDevOpsIsHashedUnderEveryKeyAndAudited) {
  net::HttpReply r = Get("DevOps", std::string("/api/v1/orders?partner=") + kAcme);
  ASSERT_EQ(r.status, 200) << r.body;
  // The orders of the current key's pseudonym and of the retained key's.
  EXPECT_EQ(Ids(r), (std::vector<std::string>{"O-1", "O-2", "O-6"}));
  EXPECT_EQ(json::parse(r.body)["partner_pseudonyms"], (json{acme_new_, acme_old_}));
  // An e-mail-like partner id is hashed as the redactor hashes it (as an e-mail, lower-cased).
  r = Get("DevOps", "/api/v1/orders?partner=Buyer%40Example.COM");
  EXPECT_EQ(Ids(r), (std::vector<std::string>{"O-4"}));
  // An unknown partner: an empty list, still audited.
  EXPECT_TRUE(Ids(Get("DevOps", "/api/v1/orders?partner=NOBODY")).empty());

  const auto lines = AuditLines();
  ASSERT_EQ(lines.size(), 3u);
  for (const json& line : lines) {
    EXPECT_EQ(line["outcome"], "allowed") << line;
    EXPECT_EQ(ResourceOf(line, "partner_lookup"), "clear_id") << line;
  }
  EXPECT_EQ(ResourceOf(lines[0], "partner_pseudonyms"), acme_new_ + "," + acme_old_) << lines[0];
  const std::string audit = AuditText();
  for (const std::string& clear :
       {std::string(kAcme), std::string(kBuyer), std::string("buyer@example.com"),
        std::string("Buyer%40"), std::string("NOBODY")}) {
    EXPECT_EQ(audit.find(clear), std::string::npos) << clear << " in the audit:\n" << audit;
    EXPECT_EQ(replies_.find(clear), std::string::npos) << clear << " in an answer:\n" << replies_;
  }
}

TEST_F(PartnerLookupTest, ClearIdAsDeveloperIs403AndAudited) {
  net::HttpReply r = Get("Developer", std::string("/api/v1/orders?partner=") + kAcme);
  EXPECT_EQ(r.status, 403) << r.body;
  EXPECT_EQ(r.Header("WWW-Authenticate"),
            "Bearer realm=\"ordertrace\", error=\"insufficient_scope\"");
  EXPECT_EQ(json::parse(r.body)["error"],
            "forbidden: your roles do not allow orders.lookup_partner");
  r = Post("Developer", "/api/v1/orders/lookup-partner", json{{"partner", kAcme}}.dump());
  EXPECT_EQ(r.status, 403) << r.body;
  const auto lines = AuditLines();
  ASSERT_EQ(lines.size(), 2u);
  for (const json& line : lines) {
    EXPECT_EQ(line["outcome"], "denied") << line;
    EXPECT_EQ(line["reason"], "action_not_allowed") << line;
    EXPECT_EQ(ResourceOf(line, "partner_lookup"), "clear_id") << line;
    EXPECT_EQ(ResourceOf(line, "partner_pseudonyms"), "") << line;  // nothing was searched
  }
  EXPECT_EQ(AuditText().find(kAcme), std::string::npos);
  EXPECT_EQ(replies_.find(kAcme), std::string::npos);
}

// POST lookup-partner takes the list's filters, sorts and cursors as GET does.
TEST_F(PartnerLookupTest, LookupTakesTheListsFiltersAndSorts) {
  net::HttpReply r =
      Post("DevOps", "/api/v1/orders/lookup-partner?limit=2", json{{"partner", kAcme}}.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  const std::string cursor = json::parse(r.body)["next_cursor"].get<std::string>();
  // No ETag: a POST.
  r = Post("DevOps",
           "/api/v1/orders/lookup-partner?sort=-stage_since&stage=SUBMITTED&stuck=false&limit=1",
           json{{"partner", kAcme}}.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Ids(r).size(), 1u);
  EXPECT_EQ(json::parse(r.body)["total"], 3);
  EXPECT_TRUE(r.Header("ETag").empty());
  r = Post("DevOps",
           "/api/v1/orders/lookup-partner?sort=-stage_since&stage=SUBMITTED&stuck=false&cursor=" +
               cursor,
           json{{"partner", kAcme}}.dump());
  EXPECT_EQ(r.status, 400) << r.body;  // a cursor of another sort
  r = Post("DevOps", "/api/v1/orders/lookup-partner?kind=silent", json{{"partner", kAcme}}.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_TRUE(Ids(r).empty());
}

TEST_F(PartnerLookupTest, ClearIdInAPostBodyStaysOutOfTheUrl) {
  net::HttpReply r =
      Post("DevOps", "/api/v1/orders/lookup-partner?limit=2", json{{"partner", kAcme}}.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Ids(r), (std::vector<std::string>{"O-1", "O-2"}));
  const std::string cursor = json::parse(r.body)["next_cursor"].get<std::string>();
  EXPECT_EQ(json::parse(r.body)["total"], 3);
  r = Post("DevOps", "/api/v1/orders/lookup-partner?limit=2&cursor=" + cursor,
           json{{"partner", kAcme}}.dump());
  EXPECT_EQ(Ids(r), (std::vector<std::string>{"O-6"}));
  // A pseudonym in the body is fine for any reader.
  r = Post("Developer", "/api/v1/orders/lookup-partner", json{{"partner", acme_old_}}.dump());
  EXPECT_EQ(Ids(r), (std::vector<std::string>{"O-2"}));
  const auto lines = AuditLines();
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0]["http"]["route"], "/api/v1/orders/lookup-partner") << lines[0];
  EXPECT_EQ(ResourceOf(lines[0], "partner_lookup"), "clear_id") << lines[0];

  // Refusals never quote the body.
  struct Case {
    std::string target, body, type;
    int status;
  };
  const std::vector<Case> cases = {
      {"/api/v1/orders/lookup-partner", json{{"partner", kAcme}}.dump(), "text/plain", 415},
      {"/api/v1/orders/lookup-partner", std::string("{\"partner\": \"") + kAcme + "\"",
       "application/json", 400},
      {"/api/v1/orders/lookup-partner", json{{"partner", kAcme}, {"x", 1}}.dump(),
       "application/json", 400},
      {"/api/v1/orders/lookup-partner", json{{"partner", ""}}.dump(), "application/json", 400},
      {"/api/v1/orders/lookup-partner?partner=P", json{{"partner", kAcme}}.dump(),
       "application/json", 400},
  };
  for (const Case& c : cases) {
    r = Post("DevOps", c.target, c.body, c.type);
    EXPECT_EQ(r.status, c.status) << c.body << ": " << r.body;
  }
  EXPECT_EQ(replies_.find(kAcme), std::string::npos) << replies_;
  EXPECT_EQ(AuditText().find(kAcme), std::string::npos);
}

TEST_F(PartnerLookupTest, ErrorsNeverQuoteThePartner) {
  EXPECT_EQ(Get("DevOps", "/api/v1/orders?partner=").status, 400);
  EXPECT_EQ(
      Get("DevOps", std::string("/api/v1/orders?partner=") + kAcme + "&partner=" + kAcme).status,
      400);
  EXPECT_EQ(Get("DevOps", "/api/v1/orders?partner=" + std::string(300, 'x')).status, 400);
  EXPECT_EQ(Get("DevOps", std::string("/api/v1/orders?partner=") + kAcme + "%zz").status, 400);
  EXPECT_EQ(replies_.find(kAcme), std::string::npos) << replies_;
  EXPECT_EQ(replies_.find("xxxxxxxx"), std::string::npos) << replies_;
  EXPECT_EQ(AuditText().find(kAcme), std::string::npos);
}

TEST_F(PartnerLookupTest, WithoutRedactionAClearIdIsRefused) {
  StartServer(false);
  net::HttpReply r = Get("DevOps", std::string("/api/v1/orders?partner=") + kAcme);
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_NE(json::parse(r.body)["error"].get<std::string>().find("redaction.enabled"),
            std::string::npos)
      << r.body;
  // The role is checked first: a Developer learns only that it may not.
  EXPECT_EQ(Get("Developer", std::string("/api/v1/orders?partner=") + kAcme).status, 403);
  // Pseudonyms (from a gateway in front that redacts) are still searched as they are.
  EXPECT_EQ(Ids(Get("Developer", "/api/v1/orders?partner=" + acme_new_)),
            (std::vector<std::string>{"O-1", "O-6"}));
  EXPECT_EQ(replies_.find(kAcme), std::string::npos) << replies_;
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
