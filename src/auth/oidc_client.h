// The OpenID provider as the API's bearer-token check sees it: the issuer's discovery document
// ({issuer}/.well-known/openid-configuration, whose `issuer` must be identical: OIDC Discovery
// §4.3) and the JWKS at its jwks_uri, fetched and cached by a background worker, never on the
// API's request thread (the API listener has one thread: a slow IdP must not stall it).
//
// The cache (after panva/jose's createRemoteJWKSet): keys live `max_age` (10 min), then the
// worker refetches; a token with an unknown `kid` is refused at once and asks for a refetch,
// which happens at most once per `cooldown` (30 s) however many such tokens arrive (single
// flight: one worker; a request inside the cooldown is served when it ends).  A failed fetch keeps
// the last good set; until a first set arrives the API answers 503 (HasKeys() false) and the worker
// retries with a backoff (1 s doubling to the cooldown).  Only https URLs, plain http only to a
// loopback host with allow_insecure_loopback (tests); TLS verified, timeout 5 s, bodies ≤ 1 MiB.
//
// Metrics: ordertrace_oidc_jwks_fetch_total{result="ok|error"}.
//
// Thread-safety: Keys(), HasKeys() and OnUnknownKid() from any thread (the API's); Start() and
// Stop() from the owner; Tick() runs on the worker (tests call it directly instead of Start()).
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>

#include "auth/jwks.h"
#include "common/clock.h"
#include "common/metrics.h"
#include "common/status.h"
#include "common/thread_annotations.h"
#include "common/worker.h"

namespace ordertrace::auth {

// Where a verifier gets the issuer's current keys.  The OIDC client is one; unit tests use a
// fixed set.
class KeySource {
 public:
  virtual ~KeySource() = default;
  // The current set; nullptr while none was ever fetched.
  virtual std::shared_ptr<const KeySet> Keys() const = 0;
  // A token named a kid the set lacks: the source may refetch (never blocking the caller).
  virtual void OnUnknownKid() const {}
};

class StaticKeySource : public KeySource {
 public:
  explicit StaticKeySource(std::shared_ptr<const KeySet> keys) : keys_(std::move(keys)) {}
  std::shared_ptr<const KeySet> Keys() const override { return keys_; }

 private:
  std::shared_ptr<const KeySet> keys_;
};

// Where the provider's browser-facing endpoints are (from its discovery document).
struct OidcEndpoints {
  std::string authorization;  // authorization_endpoint
  std::string token;          // token_endpoint
  std::string end_session;    // end_session_endpoint; "" when the provider has none
};

struct OidcClientOptions {
  std::string issuer;
  bool allow_insecure_loopback = false;
  std::string ca_file;  // "" : the system's CAs
  std::chrono::milliseconds timeout{5000};
  uint64_t max_body_bytes = 1 << 20;
  std::chrono::milliseconds max_age{600000};
  std::chrono::milliseconds cooldown{30000};
};

// Checks that `url` may be fetched under `options` (https, or http to loopback when allowed);
// errors name what is wrong ("jwks_uri: http is allowed only ...").
Status CheckFetchUrl(std::string_view url, bool allow_insecure_loopback, std::string_view what);

class OidcClient : public KeySource {
 public:
  // `clock` and `registry` must outlive the client.  Errors: a bad issuer URL or CA file.
  static Result<std::unique_ptr<OidcClient>> Create(OidcClientOptions options, const Clock& clock,
                                                    metrics::Registry* registry);
  ~OidcClient() override;

  // Starts the worker: the first fetch happens at once, on the worker.
  void Start();
  void Stop();

  std::shared_ptr<const KeySet> Keys() const override;
  void OnUnknownKid() const override;
  // The endpoints for browser sign-in; Unavailable until discovery succeeded.
  Result<OidcEndpoints> Endpoints() const;

  // One round of the worker: fetches when the keys are missing, old, or asked for (and the
  // cooldown allows it); returns how long to wait before the next round.
  std::chrono::nanoseconds Tick();

  uint64_t fetches() const { return fetches_.load(); }  // fetch attempts (discovery + JWKS)

 private:
  OidcClient(OidcClientOptions options, const Clock& clock, metrics::Registry* registry);
  Status Fetch();

  const OidcClientOptions options_;
  const Clock& clock_;
  metrics::Counter* fetch_ok_ = nullptr;
  metrics::Counter* fetch_error_ = nullptr;
  std::shared_ptr<const void> tls_;  // net::TlsClientContext, kept opaque to this header
  mutable Worker worker_;            // Wake() from OnUnknownKid() (const: the KeySource interface)

  mutable Mutex mu_;
  std::shared_ptr<const KeySet> keys_ GUARDED_BY(mu_);
  OidcEndpoints endpoints_ GUARDED_BY(mu_);
  mutable std::atomic<bool> refetch_wanted_{false};
  std::atomic<uint64_t> fetches_{0};
  // Worker-only state.
  std::string jwks_uri_;  // from discovery; "" until it succeeded
  Nanos last_attempt_ = 0;
  Nanos last_success_ = 0;
  bool attempted_ = false;
  bool refetch_pending_ = false;  // an unknown kid was seen; fetch once the cooldown allows
  std::chrono::milliseconds backoff_{1000};
};

}  // namespace ordertrace::auth
