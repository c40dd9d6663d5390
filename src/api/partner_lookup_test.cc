// Finding a partner's orders (journey_api.h): by pseudonym for every reader, by clear id for a
// role with orders.lookup_partner only (DevOps by default), hashed under every retained key, and
// audited without the clear value.  A real HttpServer, the OIDC bearer authorizer with tokens
// minted in the test, the audit written to a real file, and the partners stored as the redactor
// (ValueRedactor) makes them from a partner.id attribute.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "api/bearer_authorizer.h"
#include "api/journey_api.h"
#include "audit/audit_log.h"
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
// The clear partner ids of the test: none may appear in an answer or the audit.
constexpr char kAcme[] = "ACME-4711";
constexpr char kBuyer[] = "Buyer@Example.COM";

const TestKey& Rsa() {
  static const TestKey* k = new TestKey(TestKey::Rsa(2048));
  return *k;
}

class StaticKeys : public auth::KeySource {
 public:
  std::shared_ptr<const auth::KeySet> Keys() const override { return keys; }
  void OnUnknownKid() const override {}
  std::shared_ptr<const auth::KeySet> keys;
};

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

class PartnerLookupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "ordertrace-partner-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    auto audit = audit::AuditLog::Open((dir_ / "audit.log").string());
    ASSERT_TRUE(audit.ok()) << audit.status().ToString();
    audit_ = std::move(audit).value();

    // Rotated once: k2 current, k1 retained (its pseudonyms are still recognised and searched).
    old_keys_ = Pseudonymizer({Key("k1", 'a')});
    current_ = Pseudonymizer({Key("k2", 'b'), Key("k1", 'a')});
    acme_new_ = Redacted(current_, kAcme);
    acme_old_ = Redacted(old_keys_, kAcme);
    buyer_ = Redacted(current_, kBuyer);
    other_ = Redacted(current_, "GLOBEX-1");

    auto set = auth::KeySet::Parse(json{{"keys", {Rsa().Jwk("k1")}}}.dump());
    ASSERT_TRUE(set.ok());
    keys_.keys = std::make_shared<const auth::KeySet>(std::move(set).value());
    auth::JwtVerifierOptions v;
    v.issuer = kIssuer;
    v.audience = kAudience;
    auto verifier = auth::JwtVerifier::Create(v);
    auto mapper = auth::RoleMapper::Create(auth::RoleOptions{});
    ASSERT_TRUE(verifier.ok() && mapper.ok());
    authorizer_ = std::make_unique<BearerAuthorizer>(std::move(verifier).value(),
                                                     std::move(mapper).value(), keys_, clock_);
    guard_ = std::make_unique<ApiGuard>(*authorizer_, audit_.get());
    store_ = journey::NewMemoryStore();
    engine_ = std::make_unique<journey::Engine>(
        std::make_shared<journey::Rules>(journey::DefaultRules()), *store_, clock_, nullptr);
    const Nanos t = kNow * kSec;
    ASSERT_TRUE(engine_
                    ->Apply({Span("O-1", "00000000000000a1", acme_new_, t),
                             Span("O-2", "00000000000000a2", acme_old_, t),
                             Span("O-3", "00000000000000a3", other_, t),
                             Span("O-4", "00000000000000a4", buyer_, t),
                             Span("O-5", "00000000000000a5", "", t),
                             Span("O-6", "00000000000000a6", acme_new_, t)})
                    .ok());
    StartServer(true);
  }
  void TearDown() override {
    server_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  void StartServer(bool redaction) {
    server_.reset();
    server_ = std::make_unique<net::HttpServer>(net::HttpServerOptions{});
    JourneyApiOptions o;
    if (redaction) {
      o.pseudonymizer = [this] { return current_; };
    }
    RegisterJourneyRoutes(*server_, *engine_, *guard_, o);
    ASSERT_TRUE(server_->Start().ok());
  }

  static std::string Token(const std::string& role) {
    json claims = {{"iss", kIssuer},    {"aud", kAudience}, {"sub", "alice"},
                   {"exp", kNow + 300}, {"iat", kNow},      {"roles", {role}}};
    return MintJwt(json{{"alg", "RS256"}, {"typ", "at+jwt"}, {"kid", "k1"}}, claims, Rsa());
  }
  std::string Base() const { return "http://127.0.0.1:" + std::to_string(server_->port()); }

  net::HttpReply Get(const std::string& role, const std::string& target) {
    net::HttpOptions o;
    o.headers = {{"Authorization", "Bearer " + Token(role)}};
    auto r = net::HttpGet(Base(), target, o);
    EXPECT_TRUE(r.ok()) << r.status().message();
    if (r.ok()) replies_ += r.value().body + "\n";
    return r.ok() ? r.value() : net::HttpReply{};
  }
  net::HttpReply Post(const std::string& role, const std::string& target, const std::string& body,
                      const std::string& type = "application/json") {
    net::HttpOptions o;
    o.headers = {{"Authorization", "Bearer " + Token(role)}, {"Content-Type", type}};
    auto r = net::HttpPost(Base() + target, body, o);
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
  ManualClock clock_{kNow * kSec};
  StaticKeys keys_;
  std::unique_ptr<audit::AuditLog> audit_;
  std::shared_ptr<const redact::Pseudonymizer> old_keys_, current_;
  std::string acme_new_, acme_old_, buyer_, other_;
  std::unique_ptr<BearerAuthorizer> authorizer_;
  std::unique_ptr<ApiGuard> guard_;
  std::unique_ptr<journey::JourneyStore> store_;
  std::unique_ptr<journey::Engine> engine_;
  std::unique_ptr<net::HttpServer> server_;
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
  EXPECT_EQ(json::parse(r.body)["next_cursor"], "O-1");
  EXPECT_EQ(Ids(Get("Developer", "/api/v1/orders?limit=1&cursor=O-1&partner=" + acme_new_)),
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

TEST_F(PartnerLookupTest, ClearIdInAPostBodyStaysOutOfTheUrl) {
  net::HttpReply r =
      Post("DevOps", "/api/v1/orders/lookup-partner?limit=2", json{{"partner", kAcme}}.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Ids(r), (std::vector<std::string>{"O-1", "O-2"}));
  EXPECT_EQ(json::parse(r.body)["next_cursor"], "O-2");
  r = Post("DevOps", "/api/v1/orders/lookup-partner?limit=2&cursor=O-2",
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

}  // namespace
}  // namespace ordertrace::api
