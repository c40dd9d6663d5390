// Browser sign-in state kept by the gateway (the backend-for-frontend pattern of
// draft-ietf-oauth-browser-based-apps): the browser holds only an opaque, HttpOnly cookie; the
// tokens stay here.
//
//   PendingLogins  one entry per sign-in in progress (GET /auth/login → the IdP → GET
//                  /auth/callback): the OAuth `state`, the OIDC `nonce`, the PKCE verifier and the
//                  path to return to, found again by a random cookie set at /auth/login and bound
//                  to the state the IdP sends back.  Entries live 10 minutes and are used once.
//   SessionStore   signed-in sessions behind `__Host-ordertrace_session`: the principal, the
//                  tokens for the refresh, an idle and an absolute timeout.
//
// Both keep only SHA-256 of the cookie values (a memory dump or a debug endpoint never yields a
// usable cookie) and are bounded: when full, the entry closest to its end goes first.
//
// Helpers for the flow: random tokens, the PKCE S256 challenge (RFC 7636), cookie parsing and
// Set-Cookie lines, and the check that keeps `return_to` on the gateway's own paths (no open
// redirect).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "auth/principal.h"
#include "common/clock.h"
#include "common/status.h"
#include "common/thread_annotations.h"

namespace ordertrace::auth {

inline constexpr char kSessionCookie[] = "__Host-ordertrace_session";
inline constexpr char kLoginCookie[] = "__Host-ordertrace_login";

// `bytes` random bytes from OpenSSL's CSPRNG, base64url without padding.  Unavailable when the
// generator fails (then nothing may be signed in).
Result<std::string> RandomUrlToken(size_t bytes = 32);

// base64url(SHA-256(verifier)) without padding: the PKCE code_challenge for method S256.
std::string PkceChallengeS256(std::string_view verifier);

// Lowercase hex SHA-256, the key under which a cookie value is kept.
std::string Sha256Hex(std::string_view data);

// The value of cookie `name` in a Cookie request header ("a=1; b=2"), or nullopt.  A name that
// occurs twice is ambiguous (a cookie injected from a sibling domain can shadow ours): nullopt.
std::optional<std::string_view> CookieValue(std::string_view cookie_header, std::string_view name);

// A Set-Cookie value for a `__Host-` cookie: Path=/, Secure, HttpOnly, SameSite=Lax, no Domain;
// Max-Age=`max_age` seconds (0 deletes the cookie).
std::string HostCookie(std::string_view name, std::string_view value, std::chrono::seconds max_age);

// `return_to` when it is one of the gateway's own paths ("/ui/orders/A-1?x=y"), else "/".
// Refused: anything not starting with exactly one '/', a scheme or authority ("//evil",
// "/\\evil", "https://evil"), control characters, backslashes, over 2 KiB.
std::string SafeReturnPath(std::string_view return_to);

// One sign-in in progress.
struct PendingLogin {
  std::string state;          // sent to the IdP, compared on the way back
  std::string nonce;          // must come back inside the ID token
  std::string code_verifier;  // PKCE
  std::string return_to;      // a SafeReturnPath
  Nanos created = 0;
};

struct PendingLoginOptions {
  std::chrono::milliseconds lifetime{std::chrono::minutes(10)};
  size_t max_entries = 10000;  // sign-ins in progress at once; the oldest goes when full
};

// Thread-safety: every method may be called from any thread.
class PendingLogins {
 public:
  PendingLogins(const Clock& clock, PendingLoginOptions options);

  // Starts a sign-in: fresh state, nonce and verifier for `return_to`.  Returns the login cookie
  // value (the browser keeps it) and the entry; Unavailable when no randomness is available.
  struct Started {
    std::string cookie;
    PendingLogin login;
  };
  Result<Started> Start(std::string_view return_to);

  // Ends the sign-in that `cookie` began, once: the entry is removed whatever the outcome.
  // NotFound when there is none (unknown, used, or expired); InvalidArgument when the IdP's
  // `state` differs from the one sent (compared in constant time).
  Result<PendingLogin> Finish(std::string_view cookie, std::string_view state);

  size_t size() const;

 private:
  void DropExpiredLocked(Nanos now) REQUIRES(mu_);
  const Clock& clock_;
  const PendingLoginOptions options_;
  mutable Mutex mu_;
  std::unordered_map<std::string, PendingLogin> by_hash_ GUARDED_BY(mu_);
};

// One signed-in browser.
struct Session {
  Principal principal;
  std::string access_token;   // for the refresh's role check; never sent to the browser
  std::string refresh_token;  // "" when the IdP issued none: the session ends with the token
  std::string id_token;       // the hint for RP-initiated logout
  Nanos access_expires = 0;   // when access_token expires (the refresh is due before)
  Nanos created = 0;
  Nanos last_seen = 0;
};

struct SessionOptions {
  std::chrono::milliseconds idle_timeout{std::chrono::minutes(30)};
  std::chrono::milliseconds absolute_timeout{std::chrono::hours(10)};
  size_t max_sessions = 10000;  // the one closest to its absolute end goes when full
};

// Thread-safety: every method may be called from any thread.
class SessionStore {
 public:
  SessionStore(const Clock& clock, SessionOptions options);

  // Stores `session` under a new random id (a new id at every sign-in: no fixation) and returns
  // the cookie value.  Unavailable when no randomness is available.
  Result<std::string> Create(Session session);

  // The session behind `cookie`, its idle clock restarted; nullopt for an unknown cookie.  A
  // session that timed out (idle or absolute) is removed and reported once with `expired` set,
  // so that the caller can audit the expiry.
  struct Touched {
    std::optional<Session> session;
    bool expired = false;
  };
  Touched Touch(std::string_view cookie);

  // Replaces the tokens and principal after a refresh (false: the session is gone).
  bool Update(std::string_view cookie_hash, const Session& session);

  // Ends the session (logout); its id is never valid again.  Returns the session when it existed.
  std::optional<Session> Remove(std::string_view cookie);

  // Sessions whose access token expires before `before`, with their cookie hashes: the refresher
  // renews them ahead of time so that a request never waits for the IdP.
  struct Due {
    std::string cookie_hash;
    Session session;
  };
  std::vector<Due> RefreshDue(Nanos before) const;

  // Ends the session known by its hash (a refresh failed or the roles were withdrawn).
  void RemoveByHash(std::string_view cookie_hash);

  // Removes timed-out sessions; returns how many.
  size_t Expire();

  size_t size() const;

 private:
  bool ExpiredLocked(const Session& s, Nanos now) const REQUIRES(mu_);
  const Clock& clock_;
  const SessionOptions options_;
  mutable Mutex mu_;
  std::unordered_map<std::string, Session> by_hash_ GUARDED_BY(mu_);
};

}  // namespace ordertrace::auth
