// Browser sign-in through the corporate IdP: the gateway as a confidential OpenID Connect client
// (authorization code + PKCE S256 + state + nonce, RFC 9700) that keeps the tokens server-side
// and gives the browser only a session cookie (docs/security.md, "Browser sign-in").
//
//   GET  /auth/login?return_to=/path   starts a sign-in: a login cookie, then 302 to the IdP
//   GET  /auth/callback?code&state     checks state (against the login cookie), exchanges the code
//                                      at the token endpoint, checks the ID token (nonce) and the
//                                      access token's roles, then 303 to return_to with the
//                                      session cookie; 403 for a user without an allowed role
//   POST /auth/logout                  same-origin only (Origin check): ends the session, clears
//                                      the cookie, 303 to the IdP's end_session_endpoint
//                                      (RP-Initiated Logout 1.0) or to "/"
//
// A background refresher renews each session's access token before it expires (refresh token
// grant) and re-reads the roles: a user whose roles were withdrawn at the IdP loses the session
// at the next refresh, and no API request ever waits for the IdP.  Token exchanges run on the API
// listener's threads, at most `max_concurrent_exchanges` at once (more get 503), each bounded by
// `timeout`.
//
// Thread-safety: Register() and Start() before the server starts; handlers and Authenticate()
// run concurrently on the server's threads; Stop() from the owner.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "audit/audit_log.h"
#include "auth/oidc_client.h"
#include "auth/principal.h"
#include "auth/session.h"
#include "common/clock.h"
#include "common/metrics.h"
#include "common/status.h"
#include "common/worker.h"
#include "net/http_server.h"
#include "net/tls.h"

namespace ordertrace::auth {

// The verdict on an access token, as the API's bearer check gives it.
struct AccessCheck {
  enum class Outcome {
    kAllowed,      // valid, with an allowed role
    kForbidden,    // valid, but no allowed role
    kInvalid,      // not a valid access token for this API
    kUnavailable,  // the IdP's keys are not known yet
  };
  Outcome outcome = Outcome::kInvalid;
  Principal principal;  // for kAllowed and kForbidden
  Nanos expires = 0;    // the token's exp, Unix nanoseconds
  std::string reason;   // for the audit and the log ("expired", "missing_role", ...)
};

// What the sign-in needs from the OIDC client (discovery, keys, roles).
class SignInVerifier {
 public:
  virtual ~SignInVerifier() = default;
  // The IdP's endpoints; Unavailable while discovery has not succeeded.
  virtual Result<OidcEndpoints> Endpoints() const = 0;
  // Checks an ID token for this client: signature with the IdP's keys, `iss`, `aud` contains the
  // client id (and `azp` is it when present), `exp`/`iat`, and `nonce` equal to the one sent.
  virtual Status VerifyIdToken(std::string_view id_token, std::string_view nonce) const = 0;
  // Checks an access token exactly as a bearer token on the API is checked.
  virtual AccessCheck CheckAccessToken(std::string_view access_token) const = 0;
};

struct SignInOptions {
  std::string client_id;
  std::string client_secret;  // client_secret_basic; never logged
  // The callback's absolute URL as registered at the IdP ("https://gw.example/auth/callback");
  // its origin is the only Origin a logout is accepted from.
  std::string redirect_uri;
  std::string post_logout_redirect_uri;  // "" : none is sent
  std::string scope = "openid profile";
  std::string resource;  // RFC 8707 resource indicator sent with the request; "" none
  std::chrono::milliseconds timeout{5000};  // per request to the token endpoint
  // The CA to trust for the IdP (null: the system's), as for discovery.
  std::shared_ptr<const net::TlsClientContext> tls;
  std::chrono::milliseconds refresh_ahead{30000};  // renew this long before the token expires
  std::chrono::milliseconds refresh_interval{5000};
  size_t max_concurrent_exchanges = 4;
  SessionOptions session;
  PendingLoginOptions login;
};

class BrowserSignIn {
 public:
  // `verifier`, `clock` and `registry` must outlive this; `audit` may be null.
  BrowserSignIn(SignInOptions options, const SignInVerifier& verifier, const Clock& clock,
                audit::AuditSink* audit, metrics::Registry* registry);
  ~BrowserSignIn();

  // Registers /auth/login, /auth/callback and /auth/logout on `server`.
  void Register(net::HttpServer& server);

  // The session behind the request's cookie.  nullopt: the request carries no session cookie
  // (the caller tries other methods); an error: a cookie that names no live session (unknown,
  // timed out or its token could not be renewed), to be answered 401.
  std::optional<Result<Principal>> Authenticate(const net::HttpRequest& req);

  // Starts and stops the refresher.
  void Start();
  void Stop();
  // One round of the refresher, on the calling thread (the refresher's body; tests).
  void RefreshNow();

  SessionStore& sessions() { return sessions_; }

 private:
  void Login(net::HttpRequest& req, net::HttpResponse& res);
  void Callback(net::HttpRequest& req, net::HttpResponse& res);
  void Logout(net::HttpRequest& req, net::HttpResponse& res);
  struct Tokens;
  Result<Tokens> PostToken(const std::string& form) const;
  void Audit(const net::HttpRequest& req, std::string event, std::string outcome,
             std::string reason, const Principal& who, int status) const;

  const SignInOptions options_;
  const SignInVerifier& verifier_;
  const Clock& clock_;
  audit::AuditSink* const audit_;
  std::string origin_;  // scheme://host[:port] of redirect_uri
  PendingLogins logins_;
  SessionStore sessions_;
  std::atomic<size_t> exchanges_{0};
  Worker refresher_;
  metrics::Family<metrics::Counter>* events_ = nullptr;
};

}  // namespace ordertrace::auth
