// Browser sign-in end to end: a real `ordertrace serve` over HTTPS as a confidential OpenID
// Connect client of a real OpenID provider (npm oidc-provider 8.8.1 on loopback,
// tests/oidc/provider.mjs, with its development login and consent pages), and a browser played by
// Node's fetch with a cookie jar (tests/oidc/signin_flow.mjs): the authorization request (PKCE
// S256, state, nonce), the callback and its `__Host-` session cookie, the API with the cookie,
// users without an allowed role, a tampered state, a replayed callback, an open-redirect attempt,
// the refresher, the logout's Origin check, the access audit, and that no cookie, code, token or
// client secret reaches the gateway's log or the audit log.
//
// Needs node and tests/oidc/node_modules (tests/oidc/setup); skips with the reason when they
// are missing, or fails when ORDERTRACE_REQUIRE_INTEROP=1 (scripts/test).
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "net/http_client.h"
#include "net/tls.h"
#include "support/alertmanager_process.h"  // FreePort
#include "support/gateway_process.h"
#include "support/oidc_provider_process.h"
#include "support/run_command.h"
#include "support/tls_files.h"

namespace ordertrace {
namespace {

using nlohmann::json;
using testing_support::GatewayProcess;
using testing_support::OidcProviderProcess;

constexpr char kSession[] = "__Host-ordertrace_session";
constexpr char kLogin[] = "__Host-ordertrace_login";

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) out.push_back(line);
  }
  return out;
}

// What signin_flow.mjs printed: one JSON object per step.
struct Flow {
  int exit_code = -1;
  std::string output;
  std::vector<json> steps;

  // The `nth` step named `name`, or an empty object.
  json Step(const std::string& name, int nth = 0) const {
    for (const json& s : steps) {
      if (s.value("step", "") == name && nth-- == 0) return s;
    }
    return json::object();
  }
};

// The Set-Cookie line for `name` in a step's set_cookie list, or an empty object.
json SetCookie(const json& step, const std::string& name) {
  if (!step.contains("set_cookie")) return json::object();
  for (const json& c : step["set_cookie"]) {
    if (c.value("name", "") == name) return c;
  }
  return json::object();
}

bool HasAttribute(const json& cookie, const std::string& attribute) {
  if (!cookie.contains("attributes")) return false;
  for (const json& a : cookie["attributes"]) {
    if (a.get<std::string>() == attribute) return true;
  }
  return false;
}

bool HasAttributeNamed(const json& cookie, const std::string& prefix) {
  if (!cookie.contains("attributes")) return false;
  for (const json& a : cookie["attributes"]) {
    std::string s = a.get<std::string>();
    for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (s.rfind(prefix, 0) == 0) return true;
  }
  return false;
}

class SigninTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string missing = OidcProviderProcess::MissingPrerequisite();
    if (!missing.empty()) {
      if (OidcProviderProcess::Required()) FAIL() << missing;
      GTEST_SKIP() << missing;
    }
    dir_ = OidcProviderProcess::FreshDir(
        "ordertrace_signin_" + std::to_string(::getpid()) + "_" +
        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_ / "tls");
    ASSERT_TRUE(tls_.Make((dir_ / "tls").string()));
    port_ = testing_support::FreePort();
    origin_ = "https://127.0.0.1:" + std::to_string(port_);
    // A secret of this test only, so that the grep for it below means something.
    client_secret_ =
        "ui-secret-" + std::to_string(::getpid()) + "-" + std::to_string(port_) + "-not-for-logs";
    WriteSecretFile(client_secret_);
    idp_ = std::make_unique<OidcProviderProcess>(dir_);
  }
  void TearDown() override {
    gateway_.reset();
    idp_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);  // with the secrets files
  }

  // The client secret file the gateway reads (0600).
  void WriteSecretFile(const std::string& secret) {
    std::ofstream(dir_ / "client_secret") << secret << "\n";
    ::chmod((dir_ / "client_secret").c_str(), 0600);
  }

  // The IdP with the UI client (access tokens living `ttl` seconds), then the gateway.
  void Start(const std::string& shape = "keycloak", int ttl = 300) {
    idp_->set_env({"OIDC_UI_REDIRECT=" + origin_ + "/auth/callback",
                   "OIDC_UI_POST_LOGOUT=" + origin_ + "/", "OIDC_UI_SECRET=" + client_secret_,
                   "OIDC_UI_AT_TTL=" + std::to_string(ttl),
                   "OIDC_TOKENS_FILE=" + (dir_ / "issued_tokens").string(),
                   "OIDC_ROLES_FILE=" + (dir_ / "roles.json").string()});
    ASSERT_TRUE(idp_->Start({"k1"}, shape)) << idp_->Log();
    config_ = (dir_ / "gateway.yaml").string();
    std::ofstream(config_) << "listen:\n"
                              "  http: 127.0.0.1:"
                           << port_
                           << "\n"
                              "  tls:\n"
                              "    http: {cert_file: "
                           << tls_.server_cert << ", key_file: " << tls_.server_key
                           << "}\n"
                              "auth:\n"
                              "  oidc: {issuer: "
                           << idp_->issuer()
                           << ", audience: urn:ordertrace:api, allow_insecure_loopback: true}\n"
                              "  roles: {claims: [/realm_access/roles, /roles, /role, /groups]}\n"
                              "  signin:\n"
                              "    client_id: ordertrace-ui\n"
                              "    client_secret_file: "
                           << (dir_ / "client_secret").string() << "\n    redirect_uri: " << origin_
                           << "/auth/callback\n    post_logout_redirect_uri: " << origin_
                           << "/\n    resource: urn:ordertrace:api\n"
                           << extra_config_;
    gateway_ = std::make_unique<GatewayProcess>("signin");
    gateway_->set_http_address("127.0.0.1:" + std::to_string(port_));
    ASSERT_TRUE(gateway_->Start({"--config", config_})) << gateway_->Log();
  }

  // Runs signin_flow.mjs as `user` with `args` (options and steps).
  Flow Browse(const std::string& user, const std::vector<std::string>& args = {}) {
    std::string command =
        "env NODE_EXTRA_CA_CERTS='" + tls_.ca_cert + "' '" + OidcProviderProcess::FindNode() +
        "' '" + OidcProviderProcess::SourceDir() + "/signin_flow.mjs' --gateway " + origin_ +
        " --user " + user + " --secrets-file '" + (dir_ / "seen_by_browser").string() + "'";
    for (const std::string& a : args) command += " '" + a + "'";
    testing_support::CommandResult r = testing_support::RunCommand(command + " 2>&1");
    Flow f;
    f.exit_code = r.exit_code;
    f.output = r.out;
    for (const std::string& line : Lines(r.out)) {
      json j = json::parse(line, nullptr, false);
      if (j.is_object()) f.steps.push_back(std::move(j));
    }
    return f;
  }

  // GET `target` from the gateway as a browser without a session would, with `accept`.
  net::HttpReply GetWithoutSession(const std::string& target, const std::string& accept) {
    net::TlsOptions tls;
    tls.ca_file = tls_.ca_cert;
    auto ctx = net::TlsClientContext::Create(tls);
    EXPECT_TRUE(ctx.ok()) << ctx.status().ToString();
    if (!ctx.ok()) return net::HttpReply{};
    net::HttpOptions o;
    o.timeout = std::chrono::milliseconds(5000);
    o.tls = ctx.value();
    o.headers = {{"Accept", accept}};
    auto r = net::HttpGet(origin_, target, o);
    EXPECT_TRUE(r.ok()) << target << ": " << r.status().ToString();
    return r.ok() ? r.value() : net::HttpReply{};
  }

  std::vector<json> AuditLines() const {
    std::vector<json> out;
    for (const std::string& line : Lines(ReadFile(gateway_->data_dir() / "audit.log"))) {
      json j = json::parse(line, nullptr, false);
      if (j.is_object()) out.push_back(std::move(j));
    }
    return out;
  }
  int CountAudit(const std::string& event, const std::string& outcome, const std::string& sub,
                 const std::string& reason = "") const {
    int n = 0;
    for (const json& j : AuditLines()) {
      if (j.value("event", "") != event || j.value("outcome", "") != outcome) continue;
      if (!sub.empty() && j.value("/actor/sub"_json_pointer, "") != sub) continue;
      if (!reason.empty() && j.value("reason", "") != reason) continue;
      ++n;
    }
    return n;
  }

  // No cookie value, code, state, token or the client secret that this test's flows saw (the
  // browser's and the IdP's records of them) appears in the gateway's log or the audit log.
  void ExpectNoSecretsInLogs() {
    std::vector<std::string> secrets = Lines(ReadFile(dir_ / "seen_by_browser"));
    const std::vector<std::string> tokens = Lines(ReadFile(dir_ / "issued_tokens"));
    ASSERT_FALSE(tokens.empty()) << "the IdP issued no token";
    for (const std::string& t : tokens) {
      secrets.push_back(t);
      const size_t dot = t.rfind('.');
      if (dot != std::string::npos) secrets.push_back(t.substr(dot + 1));  // a JWT's signature
    }
    secrets.push_back(client_secret_);
    std::string logs = gateway_->Log() + ReadFile(gateway_->data_dir() / "audit.log");
    for (const auto& entry : std::filesystem::directory_iterator(gateway_->dir())) {
      if (entry.path().extension() == ".log") logs += ReadFile(entry.path());
    }
    ASSERT_FALSE(logs.empty());
    int checked = 0;
    for (const std::string& s : secrets) {
      if (s.size() < 16) continue;
      ++checked;
      EXPECT_EQ(logs.find(s), std::string::npos) << "a secret of " << s.size() << " characters";
    }
    EXPECT_GT(checked, 3);
  }

  std::filesystem::path dir_;
  testing_support::TlsFiles tls_;
  uint16_t port_ = 0;
  std::string origin_;
  std::string client_secret_;
  std::string config_;
  std::string extra_config_;  // more YAML for the gateway's config (top-level sections)
  std::unique_ptr<OidcProviderProcess> idp_;
  std::unique_ptr<GatewayProcess> gateway_;
};

TEST_F(SigninTest, DeveloperSignsInWithPkceAndTheSessionCookieReadsTheApi) {
  Start("keycloak");
  const Flow f = Browse("alice", {"get:/api/v1/orders", "get:/api/v1/me"});
  ASSERT_EQ(f.exit_code, 0) << f.output << gateway_->Log();

  // /auth/login: a login cookie and the authorization request of a confidential client.
  const json login = f.Step("login");
  EXPECT_EQ(login.value("status", 0), 302) << login;
  EXPECT_EQ(login["location"].get<std::string>().rfind(idp_->issuer() + "/", 0), 0u) << login;
  const json authorize = login["authorize"];
  EXPECT_EQ(authorize.value("response_type", ""), "code");
  EXPECT_EQ(authorize.value("client_id", ""), "ordertrace-ui");
  EXPECT_EQ(authorize.value("redirect_uri", ""), origin_ + "/auth/callback");
  EXPECT_EQ(authorize.value("resource", ""), "urn:ordertrace:api");
  EXPECT_EQ(authorize.value("code_challenge_method", ""), "S256");
  EXPECT_EQ(authorize.value("code_challenge_length", 0), 43);  // base64url of SHA-256
  EXPECT_GE(authorize.value("state_length", 0), 22);           // 128 bits or more
  EXPECT_GE(authorize.value("nonce_length", 0), 22);
  const json login_cookie = SetCookie(login, kLogin);
  EXPECT_TRUE(HasAttribute(login_cookie, "Secure")) << login;
  EXPECT_TRUE(HasAttribute(login_cookie, "HttpOnly")) << login;
  EXPECT_EQ(login["stored"][0], "stored") << login;

  // The IdP's pages, then the callback: 303 to return_to with the session cookie.
  EXPECT_EQ(f.Step("idp_login").value("status", 0), 200) << f.output;
  EXPECT_EQ(f.Step("idp_consent").value("status", 0), 200) << f.output;
  const json callback = f.Step("callback");
  EXPECT_EQ(callback.value("status", 0), 303) << callback;
  EXPECT_EQ(callback.value("location", ""), "/ui/stuck") << callback;
  const json session = SetCookie(callback, kSession);
  ASSERT_FALSE(session.empty()) << callback;
  EXPECT_GE(session.value("value_length", 0), 32);
  for (const char* attribute : {"Secure", "HttpOnly", "SameSite=Lax", "Path=/"}) {
    EXPECT_TRUE(HasAttribute(session, attribute)) << attribute << " " << session;
  }
  EXPECT_FALSE(HasAttributeNamed(session, "domain")) << session;
  EXPECT_TRUE(HasAttributeNamed(SetCookie(callback, kLogin), "max-age=0")) << callback;
  EXPECT_TRUE(callback.value("session", false)) << "the browser refused the cookie: " << callback;

  // The API with the cookie only.
  const json orders = f.Step("get", 0);
  EXPECT_EQ(orders.value("status", 0), 200) << orders;
  const json me = f.Step("get", 1);
  ASSERT_EQ(me.value("status", 0), 200) << me;
  EXPECT_EQ(me["json"].value("sub", ""), "alice") << me;
  EXPECT_EQ(me["json"].value("iss", ""), idp_->issuer()) << me;
  EXPECT_EQ(me["json"].value("name", ""), "Alice Developer") << me;
  EXPECT_EQ(me["json"].value("auth", ""), "session") << me;
  EXPECT_EQ(me["json"]["roles"], json::array({"Developer"})) << me;
  EXPECT_FALSE(me["json"]["actions"].empty()) << me;
  EXPECT_NE(me.value("hsts", "").find("max-age="), std::string::npos) << me;

  EXPECT_EQ(CountAudit("sign_in", "allowed", "alice"), 1);
  EXPECT_GE(CountAudit("api_request", "allowed", "alice"), 2);
  ExpectNoSecretsInLogs();
}

TEST_F(SigninTest, DevOpsIsAllowedSalesAndNoRoleGetNoSession) {
  Start("entra");
  const Flow dave = Browse("dave", {"get:/api/v1/orders", "get:/api/v1/me"});
  ASSERT_EQ(dave.exit_code, 0) << dave.output << gateway_->Log();
  EXPECT_EQ(dave.Step("callback").value("status", 0), 303) << dave.output;
  EXPECT_EQ(dave.Step("get", 0).value("status", 0), 200) << dave.output;
  EXPECT_EQ(dave.Step("get", 1)["json"]["roles"], json::array({"DevOps"})) << dave.output;

  for (const std::string user : {"sam", "nora"}) {
    const Flow f = Browse(user, {"get:/api/v1/orders"});
    ASSERT_EQ(f.exit_code, 0) << f.output;
    const json callback = f.Step("callback");
    EXPECT_EQ(callback.value("status", 0), 403) << user << callback;
    EXPECT_TRUE(SetCookie(callback, kSession).empty()) << user << callback;
    EXPECT_FALSE(callback.value("session", true)) << user;
    EXPECT_EQ(f.Step("get").value("status", 0), 401) << user << f.output;  // no session
    EXPECT_EQ(CountAudit("sign_in_failed", "denied", user, "missing_role"), 1) << user;
  }
  EXPECT_EQ(CountAudit("sign_in", "allowed", "dave"), 1);
  ExpectNoSecretsInLogs();
}

TEST_F(SigninTest, TamperedStateForgedOrCancelledAndReplayedCallbacksAreRefused) {
  Start();
  const Flow tampered = Browse("alice", {"--tamper-state", "get:/api/v1/orders"});
  ASSERT_EQ(tampered.exit_code, 0) << tampered.output << gateway_->Log();
  const json callback = tampered.Step("callback");
  EXPECT_EQ(callback.value("status", 0), 400) << callback;
  EXPECT_TRUE(SetCookie(callback, kSession).empty()) << callback;
  EXPECT_EQ(tampered.Step("get").value("status", 0), 401);
  EXPECT_EQ(CountAudit("sign_in_failed", "denied", "", "state_mismatch"), 1);

  // A callback without the login cookie (a victim's browser sent to finish an attacker's
  // sign-in): refused, no session.
  const Flow csrf = Browse("alice", {"--no-login-cookie", "get:/api/v1/orders"});
  ASSERT_EQ(csrf.exit_code, 0) << csrf.output;
  EXPECT_EQ(csrf.Step("callback").value("status", 0), 400) << csrf.output;
  EXPECT_TRUE(SetCookie(csrf.Step("callback"), kSession).empty()) << csrf.output;
  EXPECT_EQ(csrf.Step("get").value("status", 0), 401);
  EXPECT_EQ(CountAudit("sign_in_failed", "denied", "", "no_login_cookie"), 1);

  // The user cancels at the IdP: it calls back with error=access_denied.
  const Flow cancelled = Browse("alice", {"--cancel"});
  ASSERT_EQ(cancelled.exit_code, 0) << cancelled.output;
  EXPECT_EQ(cancelled.Step("idp_cancel").value("status", 0), 200) << cancelled.output;
  EXPECT_EQ(cancelled.Step("callback").value("status", 0), 400) << cancelled.output;
  EXPECT_TRUE(SetCookie(cancelled.Step("callback"), kSession).empty()) << cancelled.output;
  EXPECT_NE(cancelled.Step("callback").value("body", "").find("access_denied"), std::string::npos)
      << cancelled.output;
  EXPECT_EQ(CountAudit("sign_in_failed", "denied", "", "idp_error"), 1);

  // The same callback URL with the same login cookie, after a successful sign-in: the pending
  // login was used once and is gone (and the code too).
  const Flow replayed = Browse("alice", {"replay", "get:/api/v1/me"});
  ASSERT_EQ(replayed.exit_code, 0) << replayed.output;
  EXPECT_EQ(replayed.Step("callback").value("status", 0), 303) << replayed.output;
  const json replay = replayed.Step("replay");
  EXPECT_EQ(replay.value("status", 0), 400) << replay;
  EXPECT_TRUE(SetCookie(replay, kSession).empty()) << replay;
  EXPECT_EQ(replayed.Step("get").value("status", 0), 200);  // the first session is unharmed
  EXPECT_EQ(CountAudit("sign_in", "allowed", "alice"), 1);
  ExpectNoSecretsInLogs();
}

TEST_F(SigninTest, TheClientSecretFromTheEnvironmentWinsAndAWrongOneIsRefused) {
  // The file holds a wrong secret; ORDERTRACE_OIDC_CLIENT_SECRET (inherited by the gateway) the
  // right one.
  const std::string wrong = "wrong-secret-" + std::to_string(::getpid()) + "-not-for-logs";
  WriteSecretFile(wrong);
  ::setenv("ORDERTRACE_OIDC_CLIENT_SECRET", client_secret_.c_str(), 1);
  Start();
  ::unsetenv("ORDERTRACE_OIDC_CLIENT_SECRET");
  const Flow ok = Browse("alice", {"get:/api/v1/me"});
  ASSERT_EQ(ok.exit_code, 0) << ok.output << gateway_->Log();
  EXPECT_EQ(ok.Step("callback").value("status", 0), 303) << ok.output;
  EXPECT_EQ(ok.Step("get").value("status", 0), 200) << ok.output;

  // The file's secret alone: the IdP refuses the code exchange (client authentication).
  ASSERT_TRUE(gateway_->Start({"--config", config_})) << gateway_->Log();
  const Flow refused = Browse("alice", {"get:/api/v1/me"});
  ASSERT_EQ(refused.exit_code, 0) << refused.output;
  EXPECT_EQ(refused.Step("callback").value("status", 0), 400) << refused.output;
  EXPECT_TRUE(SetCookie(refused.Step("callback"), kSession).empty()) << refused.output;
  EXPECT_EQ(refused.Step("get").value("status", 0), 401) << refused.output;
  EXPECT_EQ(CountAudit("sign_in_failed", "denied", "", "code_refused"), 1);
  const std::string log = gateway_->Log() + ReadFile(gateway_->data_dir() / "audit.log");
  EXPECT_EQ(log.find(wrong), std::string::npos);
  ExpectNoSecretsInLogs();
}

TEST_F(SigninTest, ReturnToOutsideTheGatewayLandsOnTheRoot) {
  Start();
  for (const std::string target :
       {"https://evil.example/x", "//evil.example/x", "/\\evil.example"}) {
    const Flow f = Browse("alice", {"--return-to", target});
    ASSERT_EQ(f.exit_code, 0) << f.output << gateway_->Log();
    EXPECT_EQ(f.Step("callback").value("status", 0), 303) << target << f.output;
    EXPECT_EQ(f.Step("callback").value("location", ""), "/") << target << f.output;
  }
  const Flow own = Browse("alice", {"--return-to", "/ui/orders/A-1?x=y"});
  EXPECT_EQ(own.Step("callback").value("location", ""), "/ui/orders/A-1?x=y") << own.output;
}

// Jaeger's pages under /jaeger/ (issue 16): a signed-out browser opening one is sent to sign in
// and back; Jaeger's API and the journey API keep their 401 for clients; a session reaches
// /jaeger/ like the journey API (here without jaeger.query_url: the guarded 404 saying so).
TEST_F(SigninTest, ASignedOutBrowserOpeningJaegerIsSentToSignInAndBack) {
  Start();
  auto get = [this](const std::string& target, const std::string& accept) {
    return GetWithoutSession(target, accept);
  };
  const net::HttpReply page = get("/jaeger/search?traceID=ab&traceID=cd", "text/html,*/*;q=0.8");
  EXPECT_EQ(page.status, 302) << page.body;
  EXPECT_EQ(page.Header("Location"),
            "/auth/login?return_to=%2Fjaeger%2Fsearch%3FtraceID%3Dab%26traceID%3Dcd");
  EXPECT_EQ(get("/jaeger/api/traces/ab", "text/html").status, 401);
  EXPECT_EQ(get("/jaeger/search", "application/json").status, 401);
  EXPECT_EQ(get("/api/v1/orders", "text/html").status, 401);
  // The redirect is still a refused access in the audit.
  EXPECT_GE(CountAudit("api_request", "denied", "", "no_token"), 4);

  const Flow f =
      Browse("alice", {"--return-to", "/jaeger/search?traceID=ab", "get:/jaeger/api/services"});
  ASSERT_EQ(f.exit_code, 0) << f.output << gateway_->Log();
  EXPECT_EQ(f.Step("callback").value("location", ""), "/jaeger/search?traceID=ab") << f.output;
  const json services = f.Step("get", 0);
  EXPECT_EQ(services.value("status", 0), 404) << services;  // signed in; Jaeger not configured
  EXPECT_GE(CountAudit("api_request", "allowed", "alice"), 1);
}

// The web UI (issue 17, ui.dir here): a signed-out browser opening a deep link is sent to sign
// in and back to it, the percent-encoded order id and the query intact; the UI's scripts need
// the session too (401 without, never a redirect); a user without an allowed role gets no session
// and so no UI.
TEST_F(SigninTest, ASignedOutBrowserOpeningTheUiIsSentToSignInAndBack) {
  std::filesystem::create_directories(dir_ / "ui" / "assets");
  std::ofstream(dir_ / "ui" / "index.html") << "<!doctype html><title>ordertrace</title>\n";
  std::ofstream(dir_ / "ui" / "assets" / "app-1.js") << "console.log(1);\n";
  extra_config_ = "ui:\n  dir: " + (dir_ / "ui").string() + "\n";
  Start();
  auto get = [this](const std::string& target, const std::string& accept) {
    return GetWithoutSession(target, accept);
  };
  const std::string deep_link = "/ui/orders/ORD%2F42?tab=spans&stage=QUOTED";
  // The provider's origin joins the CSP once the gateway has read its discovery document, which
  // the gateway fetches in the background after it starts listening: ask again until then (at
  // most 15 s; the assertion below still fails if it never comes).
  net::HttpReply page = get(deep_link, "text/html,*/*;q=0.8");
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  while (page.Header("Content-Security-Policy").find("form-action 'self' http") ==
             std::string::npos &&
         std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    page = get(deep_link, "text/html,*/*;q=0.8");
  }
  EXPECT_EQ(page.status, 302) << page.body;
  EXPECT_EQ(page.Header("Location"),
            "/auth/login?return_to=%2Fui%2Forders%2FORD%252F42%3Ftab%3Dspans%26stage%3DQUOTED");
  EXPECT_EQ(page.Header("Content-Security-Policy").find("default-src 'none'"), 0u);
  // The logout form's redirect to the provider's end_session_endpoint passes the CSP.
  EXPECT_NE(page.Header("Content-Security-Policy").find("form-action 'self' http://127.0.0.1:"),
            std::string::npos)
      << page.Header("Content-Security-Policy");
  EXPECT_EQ(page.Header("Strict-Transport-Security"), "max-age=31536000");
  for (const char* accept : {"*/*", "text/html"}) {
    const net::HttpReply script = get("/ui/assets/app-1.js", accept);
    EXPECT_EQ(script.status, 401) << accept;
    EXPECT_EQ(script.Header("Location"), "") << accept;
  }

  const Flow f = Browse("alice", {"--return-to", deep_link, "get:" + deep_link,
                                  "get:/ui/assets/app-1.js", "get:/ui/assets/missing-2.js"});
  ASSERT_EQ(f.exit_code, 0) << f.output << gateway_->Log();
  EXPECT_EQ(f.Step("callback").value("location", ""), deep_link) << f.output;
  EXPECT_EQ(f.Step("get", 0).value("status", 0), 200) << f.output;
  EXPECT_EQ(f.Step("get", 1).value("status", 0), 200) << f.output;
  EXPECT_EQ(f.Step("get", 2).value("status", 0), 404) << f.output;

  const Flow sam = Browse("sam", {"--return-to", "/ui/stuck", "get:/ui/stuck"});
  ASSERT_EQ(sam.exit_code, 0) << sam.output;
  EXPECT_EQ(sam.Step("callback").value("status", 0), 403) << sam.output;
  EXPECT_NE(sam.Step("get").value("status", 0), 200) << sam.output;
}

TEST_F(SigninTest, LogoutOnlyFromTheGatewaysOriginThenTheCookieIsDead) {
  Start();
  const Flow f = Browse("alice", {"logout", "logout:https://evil.example", "get:/api/v1/me",
                                  "logout:" + origin_, "get-old:/api/v1/orders"});
  ASSERT_EQ(f.exit_code, 0) << f.output << gateway_->Log();
  const json no_origin = f.Step("logout", 0);
  EXPECT_EQ(no_origin.value("status", 0), 403) << no_origin;
  EXPECT_TRUE(no_origin.value("session", false)) << no_origin;  // the cookie stays
  EXPECT_EQ(f.Step("logout", 1).value("status", 0), 403) << f.output;
  EXPECT_EQ(f.Step("get").value("status", 0), 200) << "a refused logout ends nothing";

  const json logout = f.Step("logout", 2);
  EXPECT_EQ(logout.value("status", 0), 303) << logout;
  const std::string location = logout.value("location", "");
  EXPECT_EQ(location.rfind(idp_->issuer() + "/session/end?", 0), 0u) << location;
  for (const char* param : {"client_id", "id_token_hint", "post_logout_redirect_uri"}) {
    EXPECT_NE(location.find(param), std::string::npos) << param << " " << location;
  }
  EXPECT_TRUE(HasAttributeNamed(SetCookie(logout, kSession), "max-age=0")) << logout;
  EXPECT_FALSE(logout.value("session", true)) << logout;
  const json old = f.Step("get_old");
  EXPECT_EQ(old.value("status", 0), 401) << old;

  EXPECT_EQ(CountAudit("logout", "denied", "", "cross_origin"), 2);
  EXPECT_EQ(CountAudit("logout", "allowed", "alice"), 1);
  ExpectNoSecretsInLogs();
}

TEST_F(SigninTest, TheRefresherRenewsTheTokenAheadOfItsExpiry) {
  // Access tokens of 35 s: the gateway renews them 30 s ahead, at its next round (5 s).
  Start("keycloak", 35);
  const Flow f = Browse("alice", {"sleep:12000", "get:/api/v1/me"});
  ASSERT_EQ(f.exit_code, 0) << f.output << gateway_->Log();
  EXPECT_EQ(f.Step("callback").value("status", 0), 303) << f.output;
  // The code exchange issued access, refresh and ID token; each refresh three more.
  const size_t issued = Lines(ReadFile(dir_ / "issued_tokens")).size();
  EXPECT_GE(issued, 6u) << "no refresh seen\n" << gateway_->Log();
  const json me = f.Step("get");
  EXPECT_EQ(me.value("status", 0), 200) << me;
  EXPECT_EQ(me["json"]["roles"], json::array({"Developer"})) << me;
  ExpectNoSecretsInLogs();
  // SIGTERM ends the gateway cleanly, its refresher with it.
  const auto stop_began = std::chrono::steady_clock::now();
  EXPECT_EQ(gateway_->Stop(), 0) << gateway_->Log();
  EXPECT_LT(std::chrono::steady_clock::now() - stop_began, std::chrono::seconds(5));
}

TEST_F(SigninTest, RolesWithdrawnAtTheIdpEndTheSessionAtTheNextRefresh) {
  Start("keycloak", 35);
  // The browser signs in, waits past the refresh, then reads; meanwhile alice becomes Sales.
  auto flow = std::async(std::launch::async, [this] {
    return Browse("alice", {"get:/api/v1/me", "sleep:12000", "get:/api/v1/me"});
  });
  ASSERT_TRUE(testing_support::WaitFor(
      [&] { return Lines(ReadFile(dir_ / "issued_tokens")).size() >= 3; },
      std::chrono::seconds(10)));  // the code exchange's tokens: alice is signed in
  { std::ofstream(dir_ / "roles.json") << R"({"alice": ["Sales"]})"; }
  const Flow f = flow.get();
  ASSERT_EQ(f.exit_code, 0) << f.output << gateway_->Log();
  EXPECT_EQ(f.Step("get", 0).value("status", 0), 200) << f.output;
  EXPECT_EQ(f.Step("get", 1).value("status", 0), 401) << f.output;
  EXPECT_EQ(CountAudit("session_expired", "denied", "alice", "missing_role"), 1);
  ExpectNoSecretsInLogs();
}

}  // namespace
}  // namespace ordertrace
