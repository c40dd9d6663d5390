// BrowserSignIn against a scripted identity provider (a token endpoint on a real HttpServer that
// checks PKCE and the client's credentials) and a verifier fake whose tokens name their own
// subject, role and expiry.  The end-to-end sign-in against a real OpenID provider is
// tests/oidc/.
#include "auth/browser_signin.h"

#include <gtest/gtest.h>

#include <map>
#include <mutex>
#include <string>

#include "common/url.h"
#include "net/http_client.h"

namespace ordertrace::auth {
namespace {

constexpr Nanos kSecond = 1'000'000'000;

// Access tokens look like "at|<sub>|<role>|<exp seconds>".
class FakeVerifier : public SignInVerifier {
 public:
  std::string token_url;
  Result<OidcEndpoints> Endpoints() const override {
    OidcEndpoints e;
    e.authorization = "https://idp.example/authorize";
    e.token = token_url;
    e.end_session = "https://idp.example/session/end";
    return e;
  }
  Status VerifyIdToken(std::string_view id_token, std::string_view nonce) const override {
    if (id_token == "id|" + std::string(nonce)) return Status::Ok();
    return Status::InvalidArgument("nonce mismatch");
  }
  AccessCheck CheckAccessToken(std::string_view token) const override {
    AccessCheck c;
    std::vector<std::string> parts;
    size_t pos = 0;
    std::string t(token);
    while (true) {
      size_t bar = t.find('|', pos);
      parts.push_back(t.substr(pos, bar == std::string::npos ? bar : bar - pos));
      if (bar == std::string::npos) break;
      pos = bar + 1;
    }
    if (parts.size() != 4 || parts[0] != "at") return c;
    c.principal.sub = parts[1];
    c.principal.iss = "https://idp.example";
    c.expires = std::stoll(parts[3]) * kSecond;
    if (parts[2] == "Developer" || parts[2] == "DevOps") {
      c.principal.roles = {parts[2]};
      c.outcome = AccessCheck::Outcome::kAllowed;
    } else {
      c.outcome = AccessCheck::Outcome::kForbidden;
      c.reason = "missing_role";
    }
    return c;
  }
};

// The IdP's token endpoint: codes it issued (with their PKCE challenge and nonce), the client's
// credentials, and refresh tokens.
struct ScriptedIdp {
  std::mutex mu;
  struct Code {
    std::string challenge, nonce, sub, role;
  };
  std::map<std::string, Code> codes;
  std::map<std::string, std::string> refresh;  // refresh token → role now granted
  int token_calls = 0;
  Nanos exp_seconds = 0;

  void Handle(net::HttpRequest& req, net::HttpResponse& res) {
    std::lock_guard<std::mutex> lock(mu);
    ++token_calls;
    res.content_type = "application/json";
    if (req.Header("authorization") != net::BasicAuthorization("ui", "s3cret")) {
      res.status = 401;
      res.body = R"({"error":"invalid_client"})";
      return;
    }
    url::QueryParams form;
    std::string error;
    ASSERT_TRUE(url::ParseQuery(req.body, &form, &error));
    const std::string grant = form.Get("grant_type").value_or("");
    std::string sub, role;
    if (grant == "authorization_code") {
      auto it = codes.find(form.Get("code").value_or(""));
      if (it == codes.end() ||
          PkceChallengeS256(form.Get("code_verifier").value_or("")) != it->second.challenge ||
          form.Get("redirect_uri").value_or("") != "https://gw.example/auth/callback") {
        res.status = 400;
        res.body = R"({"error":"invalid_grant"})";
        return;
      }
      sub = it->second.sub;
      role = it->second.role;
      const std::string nonce = it->second.nonce;
      codes.erase(it);  // a code works once
      refresh["rt-" + sub] = role;
      res.body = "{\"access_token\":\"at|" + sub + "|" + role + "|" + std::to_string(exp_seconds) +
                 "\",\"id_token\":\"id|" + nonce + "\",\"refresh_token\":\"rt-" + sub +
                 "\",\"token_type\":\"Bearer\",\"expires_in\":60}";
      return;
    }
    if (grant == "refresh_token") {
      auto it = refresh.find(form.Get("refresh_token").value_or(""));
      if (it == refresh.end()) {
        res.status = 400;
        res.body = R"({"error":"invalid_grant"})";
        return;
      }
      sub = it->first.substr(3);
      res.body = "{\"access_token\":\"at|" + sub + "|" + it->second + "|" +
                 std::to_string(exp_seconds) + "\",\"token_type\":\"Bearer\"}";
      return;
    }
    res.status = 400;
    res.body = R"({"error":"unsupported_grant_type"})";
  }
};

class BrowserSignInTest : public ::testing::Test {
 protected:
  void SetUp() override {
    net::HttpServerOptions io;
    io.name = "idp";
    idp_server_ = std::make_unique<net::HttpServer>(io);
    idp_server_->Route("POST", "/token", [this](net::HttpRequest& req, net::HttpResponse& res) {
      idp_.Handle(req, res);
    });
    ASSERT_TRUE(idp_server_->Start().ok());
    verifier_.token_url = "http://127.0.0.1:" + std::to_string(idp_server_->port()) + "/token";
    idp_.exp_seconds = clock_.Now() / kSecond + 300;

    SignInOptions o;
    o.client_id = "ui";
    o.client_secret = "s3cret";
    o.redirect_uri = "https://gw.example/auth/callback";
    o.post_logout_redirect_uri = "https://gw.example/";
    o.refresh_ahead = std::chrono::seconds(60);
    signin_ = std::make_unique<BrowserSignIn>(o, verifier_, clock_, nullptr, nullptr);
    net::HttpServerOptions go;
    go.name = "gw";
    gw_ = std::make_unique<net::HttpServer>(go);
    signin_->Register(*gw_);
    gw_->Route("GET", "/whoami", [this](net::HttpRequest& req, net::HttpResponse& res) {
      auto who = signin_->Authenticate(req);
      if (!who) {
        res.status = 401;
        res.body = "no cookie";
      } else if (!who->ok()) {
        res.status = 401;
        res.body = who->status().message();
      } else {
        res.body = (*who)->sub + " " + (*who)->method;
      }
    });
    ASSERT_TRUE(gw_->Start().ok());
  }
  void TearDown() override {
    gw_->Shutdown();
    idp_server_->Shutdown();
  }

  net::HttpReply Get(const std::string& target, const std::string& cookie = "") {
    net::HttpOptions o;
    if (!cookie.empty()) o.headers = {{"Cookie", cookie}};
    auto r = net::HttpGet("http://127.0.0.1:" + std::to_string(gw_->port()), target, o);
    EXPECT_TRUE(r.ok()) << r.status().message();
    return r.ok() ? *r : net::HttpReply{};
  }
  net::HttpReply Logout(const std::string& cookie, const std::string& origin) {
    net::HttpOptions o;
    o.headers = {{"Cookie", cookie}};
    if (!origin.empty()) o.headers.emplace_back("Origin", origin);
    auto r =
        net::HttpPost("http://127.0.0.1:" + std::to_string(gw_->port()) + "/auth/logout", "", o);
    EXPECT_TRUE(r.ok()) << r.status().message();
    return r.ok() ? *r : net::HttpReply{};
  }

  static std::string CookieOf(const net::HttpReply& r, const std::string& name) {
    for (const auto& [k, v] : r.headers) {
      if (k == "Set-Cookie" && v.rfind(name + "=", 0) == 0) {
        return v.substr(name.size() + 1, v.find(';') - name.size() - 1);
      }
    }
    return "";
  }
  static std::string Param(const std::string& location, const std::string& name) {
    url::QueryParams q;
    std::string error;
    EXPECT_TRUE(url::ParseQuery(location.substr(location.find('?') + 1), &q, &error));
    return q.Get(name).value_or("");
  }

  // Runs /auth/login, plays the IdP's part for `sub` with `role`, and returns the callback's
  // answer; the login cookie and state are left in *login_cookie / *state.
  net::HttpReply SignIn(const std::string& sub, const std::string& role,
                        const std::string& return_to = "/ui/stuck") {
    net::HttpReply login = Get("/auth/login?return_to=" + url::PercentEncode(return_to));
    EXPECT_EQ(login.status, 302);
    const std::string location(login.Header("Location"));
    EXPECT_EQ(location.rfind("https://idp.example/authorize?", 0), 0u) << location;
    EXPECT_EQ(Param(location, "code_challenge_method"), "S256");
    EXPECT_EQ(Param(location, "client_id"), "ui");
    EXPECT_EQ(Param(location, "response_type"), "code");
    last_state_ = Param(location, "state");
    last_login_cookie_ = CookieOf(login, kLoginCookie);
    EXPECT_FALSE(last_state_.empty());
    EXPECT_FALSE(Param(location, "nonce").empty());
    {
      std::lock_guard<std::mutex> lock(idp_.mu);
      idp_.codes["code-" + sub] = {Param(location, "code_challenge"), Param(location, "nonce"), sub,
                                   role};
    }
    return Get("/auth/callback?code=code-" + sub + "&state=" + url::PercentEncode(last_state_),
               std::string(kLoginCookie) + "=" + last_login_cookie_);
  }

  ManualClock clock_{1'700'000'000 * kSecond};
  FakeVerifier verifier_;
  ScriptedIdp idp_;
  std::unique_ptr<net::HttpServer> idp_server_, gw_;
  std::unique_ptr<BrowserSignIn> signin_;
  std::string last_state_, last_login_cookie_;
};

TEST_F(BrowserSignInTest, DeveloperSignsInGetsASessionAndReturnsWhereTheyWere) {
  net::HttpReply cb = SignIn("alice", "Developer", "/ui/orders/A-1");
  ASSERT_EQ(cb.status, 303) << cb.body;
  EXPECT_EQ(cb.Header("Location"), "/ui/orders/A-1");
  std::string set_cookie;
  for (const auto& [k, v] : cb.headers) {
    if (k == "Set-Cookie" && v.rfind(kSessionCookie, 0) == 0) set_cookie = v;
  }
  EXPECT_NE(set_cookie.find("; Path=/; Secure; HttpOnly; SameSite=Lax"), std::string::npos);
  EXPECT_EQ(set_cookie.find("Domain"), std::string::npos);
  const std::string session = CookieOf(cb, kSessionCookie);
  ASSERT_FALSE(session.empty());
  EXPECT_EQ(Get("/whoami", std::string(kSessionCookie) + "=" + session).body, "alice session");
  // The tokens never reach the browser.
  EXPECT_EQ(cb.body.find("at|"), std::string::npos);
  EXPECT_EQ(session.find("at|"), std::string::npos);
}

TEST_F(BrowserSignInTest, SalesUserIsRefusedWithoutASession) {
  net::HttpReply cb = SignIn("sam", "Sales");
  EXPECT_EQ(cb.status, 403);
  EXPECT_TRUE(CookieOf(cb, kSessionCookie).empty());
  EXPECT_EQ(signin_->sessions().size(), 0u);
}

TEST_F(BrowserSignInTest, StateMismatchReplayAndMissingCookieAre400) {
  net::HttpReply login = Get("/auth/login");
  const std::string cookie = CookieOf(login, kLoginCookie);
  EXPECT_EQ(
      Get("/auth/callback?code=x&state=forged", std::string(kLoginCookie) + "=" + cookie).status,
      400);
  EXPECT_EQ(Get("/auth/callback?code=x&state=whatever").status, 400);  // no login cookie
  // A good sign-in, then its callback replayed: the login is spent.
  ASSERT_EQ(SignIn("alice", "Developer").status, 303);
  EXPECT_EQ(Get("/auth/callback?code=code-alice&state=" + url::PercentEncode(last_state_),
                std::string(kLoginCookie) + "=" + last_login_cookie_)
                .status,
            400);
  // The IdP's own error is shown as a code, never echoing its description.
  net::HttpReply err = Get("/auth/callback?error=access_denied&error_description=%3Cscript%3E");
  EXPECT_EQ(err.status, 400);
  EXPECT_EQ(err.body.find("<script>"), std::string::npos);
}

TEST_F(BrowserSignInTest, ReturnToStaysOnOwnPaths) {
  net::HttpReply cb = SignIn("alice", "Developer", "https://evil.example/");
  ASSERT_EQ(cb.status, 303);
  EXPECT_EQ(cb.Header("Location"), "/");
  cb = SignIn("dave", "DevOps", "//evil.example/x");
  ASSERT_EQ(cb.status, 303);
  EXPECT_EQ(cb.Header("Location"), "/");
}

TEST_F(BrowserSignInTest, LogoutNeedsOurOriginThenEndsTheSession) {
  const std::string cookie =
      std::string(kSessionCookie) + "=" + CookieOf(SignIn("alice", "Developer"), kSessionCookie);
  EXPECT_EQ(Logout(cookie, "").status, 403);
  EXPECT_EQ(Logout(cookie, "https://evil.example").status, 403);
  EXPECT_EQ(Get("/whoami", cookie).status, 200);  // refused logouts leave the session alone
  net::HttpReply out = Logout(cookie, "https://gw.example");
  EXPECT_EQ(out.status, 303);
  const std::string location(out.Header("Location"));
  EXPECT_EQ(location.rfind("https://idp.example/session/end?", 0), 0u) << location;
  EXPECT_FALSE(Param(location, "id_token_hint").empty());
  EXPECT_EQ(Param(location, "post_logout_redirect_uri"), "https://gw.example/");
  EXPECT_EQ(Get("/whoami", cookie).status, 401);
}

TEST_F(BrowserSignInTest, SessionsTimeOut) {
  const std::string cookie =
      std::string(kSessionCookie) + "=" + CookieOf(SignIn("alice", "Developer"), kSessionCookie);
  clock_.Set(clock_.Now() + 31 * 60 * kSecond);  // idle 30 min by default
  EXPECT_EQ(Get("/whoami", cookie).status, 401);
}

TEST_F(BrowserSignInTest, RefreshRenewsAndRereadsRoles) {
  idp_.exp_seconds = clock_.Now() / kSecond + 40;  // within refresh_ahead (60 s)
  const std::string alice =
      std::string(kSessionCookie) + "=" + CookieOf(SignIn("alice", "Developer"), kSessionCookie);
  const std::string dave =
      std::string(kSessionCookie) + "=" + CookieOf(SignIn("dave", "DevOps"), kSessionCookie);
  {
    std::lock_guard<std::mutex> lock(idp_.mu);
    idp_.exp_seconds = clock_.Now() / kSecond + 3600;
    idp_.refresh["rt-dave"] = "Sales";  // DevOps withdrawn at the IdP
  }
  signin_->RefreshNow();
  EXPECT_EQ(Get("/whoami", alice).body, "alice session");
  // Past the first token's expiry: alice's renewed token keeps her in; dave lost his role.
  clock_.Set(clock_.Now() + 120 * kSecond);
  EXPECT_EQ(Get("/whoami", alice).status, 200);
  EXPECT_EQ(Get("/whoami", dave).status, 401);
}

TEST_F(BrowserSignInTest, ATokenThatCouldNotBeRenewedEndsTheSession) {
  idp_.exp_seconds = clock_.Now() / kSecond + 40;
  const std::string alice =
      std::string(kSessionCookie) + "=" + CookieOf(SignIn("alice", "Developer"), kSessionCookie);
  {
    std::lock_guard<std::mutex> lock(idp_.mu);
    idp_.refresh.clear();  // the refresh token was revoked
  }
  signin_->RefreshNow();
  EXPECT_EQ(Get("/whoami", alice).status, 401);
}

}  // namespace
}  // namespace ordertrace::auth
