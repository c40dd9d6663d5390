#include "auth/browser_signin.h"

#include <nlohmann/json.hpp>
#include <utility>
#include <vector>

#include "common/log.h"
#include "common/url.h"
#include "net/http_client.h"
#include "net/url.h"

namespace ordertrace::auth {
namespace {

using nlohmann::json;

void Page(net::HttpResponse& res, int status, std::string text) {
  res.status = status;
  res.content_type = "text/plain; charset=utf-8";
  res.body = std::move(text);
  res.headers.emplace_back("Cache-Control", "no-store");
}

void Redirect(net::HttpResponse& res, int status, const std::string& location) {
  res.status = status;
  res.content_type = "text/plain; charset=utf-8";
  res.body.clear();
  res.headers.emplace_back("Location", location);
  res.headers.emplace_back("Cache-Control", "no-store");
}

std::string FormField(std::string_view name, std::string_view value) {
  return std::string(name) + "=" + url::PercentEncode(value);
}

// The value of a query parameter, "" when absent or malformed.
std::string QueryParam(const net::HttpRequest& req, std::string_view name) {
  url::QueryParams params;
  std::string error;
  if (!url::ParseQuery(req.query, &params, &error)) return "";
  return params.Get(name).value_or("");
}

// An error code from the IdP shown to the user: only the characters RFC 6749 allows in `error`
// (%x20-21 / %x23-5B / %x5D-7E), at most 64 of them; the description is not echoed.
std::string SafeErrorCode(std::string_view code) {
  std::string out;
  for (char c : code.substr(0, 64)) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
        c == '-' || c == '.') {
      out += c;
    }
  }
  return out.empty() ? "unknown" : out;
}

}  // namespace

struct BrowserSignIn::Tokens {
  std::string access_token, refresh_token, id_token;
};

BrowserSignIn::BrowserSignIn(SignInOptions options, const SignInVerifier& verifier,
                             const Clock& clock, audit::AuditSink* audit,
                             metrics::Registry* registry)
    : options_(std::move(options)),
      verifier_(verifier),
      clock_(clock),
      audit_(audit),
      logins_(clock, options_.login),
      sessions_(clock, options_.session) {
  net::UrlOptions uo;
  uo.what = "auth.signin.redirect_uri";
  auto u = net::ParseUrl(options_.redirect_uri, uo);
  if (u.ok()) origin_ = u->Origin();
  if (registry != nullptr) {
    events_ =
        &registry->AddCounter("ordertrace_signin_events_total",
                              "Browser sign-in events by kind and outcome.", {"event", "outcome"});
    SessionStore* sessions = &sessions_;
    registry->AddCallbackGauge("ordertrace_signin_sessions", "Browser sessions signed in.",
                               [sessions] { return static_cast<double>(sessions->size()); });
  }
}

BrowserSignIn::~BrowserSignIn() { Stop(); }

void BrowserSignIn::Register(net::HttpServer& server) {
  server.Route("GET", "/auth/login",
               [this](net::HttpRequest& req, net::HttpResponse& res) { Login(req, res); });
  server.Route("GET", "/auth/callback",
               [this](net::HttpRequest& req, net::HttpResponse& res) { Callback(req, res); });
  server.Route("POST", "/auth/logout",
               [this](net::HttpRequest& req, net::HttpResponse& res) { Logout(req, res); });
}

void BrowserSignIn::Start() {
  refresher_.Start("signin-refresh", options_.refresh_interval, [this] { RefreshNow(); });
}

void BrowserSignIn::Stop() { refresher_.Stop(); }

void BrowserSignIn::Audit(const net::HttpRequest& req, std::string event, std::string outcome,
                          std::string reason, const Principal& who, int status) const {
  if (events_ != nullptr) events_->With({event, outcome}).Inc();
  if (audit_ == nullptr) return;
  audit::AuditEvent e;
  e.event = std::move(event);
  e.outcome = std::move(outcome);
  e.reason = std::move(reason);
  e.actor = who;
  e.source = audit::SourceOf(req.peer, req.forwarded_for);  // set only by a trusted proxy
  e.http.method = req.method;
  e.http.route = req.path;  // the /auth/* routes are fixed paths
  e.http.status = status;
  e.user_agent = std::string(req.Header("user-agent"));
  audit_->Record(e);
}

void BrowserSignIn::Login(net::HttpRequest& req, net::HttpResponse& res) {
  auto endpoints = verifier_.Endpoints();
  if (!endpoints.ok()) {
    Page(res, 503, "sign-in is not available yet: the identity provider has not answered\n");
    res.headers.emplace_back("Retry-After", "5");
    return;
  }
  auto started = logins_.Start(QueryParam(req, "return_to"));
  if (!started.ok()) {
    Page(res, 503, "sign-in is not available: " + started.status().message() + "\n");
    return;
  }
  const PendingLogin& l = started->login;
  std::string location = endpoints->authorization;
  location += location.find('?') == std::string::npos ? '?' : '&';
  location +=
      FormField("response_type", "code") + "&" + FormField("client_id", options_.client_id) + "&" +
      FormField("redirect_uri", options_.redirect_uri) + "&" + FormField("scope", options_.scope) +
      "&" + FormField("state", l.state) + "&" + FormField("nonce", l.nonce) + "&" +
      FormField("code_challenge", PkceChallengeS256(l.code_verifier)) + "&" +
      FormField("code_challenge_method", "S256");
  if (!options_.resource.empty()) location += "&" + FormField("resource", options_.resource);
  Redirect(res, 302, location);
  const auto lifetime = std::chrono::duration_cast<std::chrono::seconds>(options_.login.lifetime);
  res.headers.emplace_back("Set-Cookie", HostCookie(kLoginCookie, started->cookie, lifetime));
}

Result<BrowserSignIn::Tokens> BrowserSignIn::PostToken(const std::string& form) const {
  auto endpoints = verifier_.Endpoints();
  if (!endpoints.ok()) return endpoints.status();
  net::HttpOptions o;
  o.timeout = options_.timeout;
  o.max_body_bytes = 1 << 20;
  o.tls = options_.tls;
  // client_secret_basic: id and secret form-encoded, then Basic (RFC 6749 §2.3.1).
  o.headers = {
      {"Authorization", net::BasicAuthorization(url::PercentEncode(options_.client_id),
                                                url::PercentEncode(options_.client_secret))},
      {"Content-Type", "application/x-www-form-urlencoded"},
      {"Accept", "application/json"}};
  auto reply = net::HttpPost(endpoints->token, form, o);
  if (!reply.ok()) return Status::Unavailable("token endpoint: " + reply.status().message());
  json body;
  try {
    body = json::parse(reply->body);
  } catch (const json::exception&) {
    return Status::InvalidArgument("token endpoint: the answer (HTTP " +
                                   std::to_string(reply->status) + ") is not JSON");
  }
  if (reply->status != 200 || !body.is_object()) {
    std::string error = "unknown";
    if (body.is_object() && body.contains("error") && body["error"].is_string()) {
      error = SafeErrorCode(body["error"].get<std::string>());
    }
    return Status::InvalidArgument("token endpoint refused (HTTP " + std::to_string(reply->status) +
                                   ", error " + error + ")");
  }
  Tokens t;
  auto take = [&body](const char* key, std::string* out) {
    auto it = body.find(key);
    if (it != body.end() && it->is_string()) *out = it->get<std::string>();
  };
  take("access_token", &t.access_token);
  take("refresh_token", &t.refresh_token);
  take("id_token", &t.id_token);
  if (t.access_token.empty()) return Status::InvalidArgument("token endpoint: no access_token");
  return t;
}

void BrowserSignIn::Callback(net::HttpRequest& req, net::HttpResponse& res) {
  const Principal nobody;
  const std::string idp_error = QueryParam(req, "error");
  if (!idp_error.empty()) {
    Audit(req, "sign_in_failed", "denied", "idp_error", nobody, 400);
    Page(res, 400,
         "sign-in failed at the identity provider (" + SafeErrorCode(idp_error) +
             "). Start again at /auth/login\n");
    return;
  }
  const auto cookie = CookieValue(req.Header("cookie"), kLoginCookie);
  if (!cookie || cookie->empty()) {
    Audit(req, "sign_in_failed", "denied", "no_login_cookie", nobody, 400);
    Page(res, 400, "no sign-in in progress in this browser. Start again at /auth/login\n");
    return;
  }
  auto login = logins_.Finish(*cookie, QueryParam(req, "state"));
  // The login cookie is spent whatever happens next.
  res.headers.emplace_back("Set-Cookie", HostCookie(kLoginCookie, "", std::chrono::seconds(0)));
  if (!login.ok()) {
    const bool mismatch = login.status().code() == StatusCode::kInvalidArgument;
    Audit(req, "sign_in_failed", "denied", mismatch ? "state_mismatch" : "no_pending_login", nobody,
          400);
    Page(res, 400, login.status().message() + ". Start again at /auth/login\n");
    return;
  }
  const std::string code = QueryParam(req, "code");
  if (code.empty()) {
    Audit(req, "sign_in_failed", "denied", "no_code", nobody, 400);
    Page(res, 400, "the identity provider sent no code. Start again at /auth/login\n");
    return;
  }
  if (exchanges_.fetch_add(1) >= options_.max_concurrent_exchanges) {
    exchanges_.fetch_sub(1);
    Audit(req, "sign_in_failed", "error", "busy", nobody, 503);
    Page(res, 503, "too many sign-ins at once; try again in a moment\n");
    res.headers.emplace_back("Retry-After", "1");
    return;
  }
  auto tokens =
      PostToken(FormField("grant_type", "authorization_code") + "&" + FormField("code", code) +
                "&" + FormField("redirect_uri", options_.redirect_uri) + "&" +
                FormField("code_verifier", login->code_verifier));
  exchanges_.fetch_sub(1);
  if (!tokens.ok()) {
    const bool down = tokens.status().code() == StatusCode::kUnavailable;
    log::Warn("browser sign-in: code exchange failed", {{"error", tokens.status().message()}});
    Audit(req, "sign_in_failed", down ? "error" : "denied",
          down ? "idp_unreachable" : "code_refused", nobody, down ? 503 : 400);
    Page(res, down ? 503 : 400,
         std::string(down ? "the identity provider cannot be reached"
                          : "the identity provider refused the sign-in") +
             ". Start again at /auth/login\n");
    return;
  }
  if (tokens->id_token.empty()) {
    Audit(req, "sign_in_failed", "denied", "no_id_token", nobody, 400);
    Page(res, 400, "the identity provider sent no ID token (is the openid scope allowed?)\n");
    return;
  }
  if (Status s = verifier_.VerifyIdToken(tokens->id_token, login->nonce); !s.ok()) {
    log::Warn("browser sign-in: ID token refused", {{"error", s.message()}});
    Audit(req, "sign_in_failed", "denied", "invalid_id_token", nobody, 401);
    Page(res, 401, "the sign-in could not be verified. Start again at /auth/login\n");
    return;
  }
  const AccessCheck check = verifier_.CheckAccessToken(tokens->access_token);
  if (check.outcome == AccessCheck::Outcome::kForbidden) {
    Principal who = check.principal;
    who.method = "session";
    Audit(req, "sign_in_failed", "denied", "missing_role", who, 403);
    Page(res, 403,
         "signed in, but this account has none of the roles allowed to read traces "
         "(Developer or DevOps). Ask for one at your identity provider.\n");
    return;
  }
  if (check.outcome != AccessCheck::Outcome::kAllowed) {
    log::Warn("browser sign-in: access token refused", {{"reason", check.reason}});
    const bool unavailable = check.outcome == AccessCheck::Outcome::kUnavailable;
    Audit(req, "sign_in_failed", unavailable ? "error" : "denied",
          check.reason.empty() ? "invalid_token" : check.reason, nobody, unavailable ? 503 : 401);
    Page(res, unavailable ? 503 : 401,
         "the access token could not be verified. Start again at /auth/login\n");
    return;
  }
  Session session;
  session.principal = check.principal;
  session.principal.method = "session";
  session.access_token = std::move(tokens->access_token);
  session.refresh_token = std::move(tokens->refresh_token);
  session.id_token = std::move(tokens->id_token);
  session.access_expires = check.expires;
  auto id = sessions_.Create(session);
  if (!id.ok()) {
    Audit(req, "sign_in_failed", "error", "no_randomness", session.principal, 503);
    Page(res, 503, "sign-in is not available: " + id.status().message() + "\n");
    return;
  }
  Audit(req, "sign_in", "allowed", "", session.principal, 303);
  Redirect(res, 303, login->return_to);
  const auto absolute =
      std::chrono::duration_cast<std::chrono::seconds>(options_.session.absolute_timeout);
  res.headers.emplace_back("Set-Cookie", HostCookie(kSessionCookie, *id, absolute));
}

void BrowserSignIn::Logout(net::HttpRequest& req, net::HttpResponse& res) {
  // CSRF: a logout only from our own pages.  Browsers send Origin on every POST; a request
  // without one, or from another origin, is refused (and leaves the session alone).
  const std::string_view origin = req.Header("origin");
  const std::string_view fetch_site = req.Header("sec-fetch-site");
  if (origin.empty() || origin != origin_ || (!fetch_site.empty() && fetch_site != "same-origin")) {
    Audit(req, "logout", "denied", "cross_origin", Principal(), 403);
    Page(res, 403, "logout is accepted only from the gateway's own pages\n");
    return;
  }
  Principal who;
  std::string id_token;
  if (auto cookie = CookieValue(req.Header("cookie"), kSessionCookie); cookie && !cookie->empty()) {
    if (auto session = sessions_.Remove(*cookie)) {
      who = session->principal;
      id_token = std::move(session->id_token);
    }
  }
  std::string location = "/";
  auto endpoints = verifier_.Endpoints();
  if (endpoints.ok() && !endpoints->end_session.empty()) {
    location = endpoints->end_session;
    location += location.find('?') == std::string::npos ? '?' : '&';
    location += FormField("client_id", options_.client_id);
    if (!id_token.empty()) location += "&" + FormField("id_token_hint", id_token);
    if (!options_.post_logout_redirect_uri.empty()) {
      location += "&" + FormField("post_logout_redirect_uri", options_.post_logout_redirect_uri);
    }
  }
  Audit(req, "logout", "allowed", who.sub.empty() ? "no_session" : "", who, 303);
  Redirect(res, 303, location);
  res.headers.emplace_back("Set-Cookie", HostCookie(kSessionCookie, "", std::chrono::seconds(0)));
}

std::optional<Result<Principal>> BrowserSignIn::Authenticate(const net::HttpRequest& req) {
  const auto cookie = CookieValue(req.Header("cookie"), kSessionCookie);
  if (!cookie) return std::nullopt;
  SessionStore::Touched t = sessions_.Touch(*cookie);
  if (t.expired) {
    Audit(req, "session_expired", "denied", "timeout", Principal(), 401);
    return Result<Principal>(Status::InvalidArgument("the session expired; sign in again"));
  }
  if (!t.session) return Result<Principal>(Status::InvalidArgument("no such session"));
  if (t.session->access_expires != 0 && clock_.Now() >= t.session->access_expires) {
    // The refresher could not renew the token in time: the IdP no longer vouches for the user.
    sessions_.Remove(*cookie);
    Audit(req, "session_expired", "denied", "token_not_renewed", t.session->principal, 401);
    return Result<Principal>(Status::InvalidArgument("the session's token expired; sign in again"));
  }
  return Result<Principal>(t.session->principal);
}

void BrowserSignIn::RefreshNow() {
  sessions_.Expire();
  const Nanos before =
      clock_.Now() +
      std::chrono::duration_cast<std::chrono::nanoseconds>(options_.refresh_ahead).count();
  for (SessionStore::Due& due : sessions_.RefreshDue(before)) {
    if (refresher_.stopping()) return;
    if (due.session.refresh_token.empty()) continue;  // ends when its token expires
    auto tokens = PostToken(FormField("grant_type", "refresh_token") + "&" +
                            FormField("refresh_token", due.session.refresh_token));
    net::HttpRequest none;
    if (!tokens.ok()) {
      if (tokens.status().code() == StatusCode::kUnavailable) continue;  // try again next round
      sessions_.RemoveByHash(due.cookie_hash);
      Audit(none, "session_expired", "denied", "refresh_refused", due.session.principal, 0);
      continue;
    }
    const AccessCheck check = verifier_.CheckAccessToken(tokens->access_token);
    if (check.outcome == AccessCheck::Outcome::kUnavailable) continue;
    if (check.outcome != AccessCheck::Outcome::kAllowed) {
      sessions_.RemoveByHash(due.cookie_hash);
      Audit(none, "session_expired", "denied",
            check.outcome == AccessCheck::Outcome::kForbidden ? "missing_role" : "invalid_token",
            due.session.principal, 0);
      continue;
    }
    Session renewed = due.session;
    renewed.principal = check.principal;
    renewed.principal.method = "session";
    renewed.access_token = std::move(tokens->access_token);
    if (!tokens->refresh_token.empty()) renewed.refresh_token = std::move(tokens->refresh_token);
    if (!tokens->id_token.empty()) renewed.id_token = std::move(tokens->id_token);
    renewed.access_expires = check.expires;
    sessions_.Update(due.cookie_hash, renewed);
    if (events_ != nullptr) events_->With({"refresh", "allowed"}).Inc();
  }
}

}  // namespace ordertrace::auth
