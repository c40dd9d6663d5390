// Verification of signed JWTs (JWS compact serialization) per RFC 8725 (JWT best practices)
// and RFC 9068 (JWT access tokens), on OpenSSL 3 and nlohmann::json.
//
// Why not a JWT library: Debian 12's libjwt (1.10) has no PS256, no JWKS and no claim checks,
// and cpp-jwt (1.4) has no PS*, no JWKS and accepts `none`; both had algorithm-confusion
// reports in 2024 (HS256 signed with the RSA public key verified: libjwt#200, cpp-jwt#102).
// jwt-cpp is not packaged.  Here the algorithm is bound to the key type by construction, so
// that class of bug cannot happen.
//
// What Verify() checks, in order (any failure refuses the token, with a reason for the log and
// the audit, never for the client):
//   - at most max_token_bytes; exactly three segments (a JWE's five are refused); each strict
//     base64url (no padding, no '+' '/', no whitespace);
//   - header and payload are JSON objects, no duplicate member names, shallow nesting;
//   - `crit` is refused; `jku`, `x5u`, `jwk`, `x5c` are never used;
//   - `alg` is one of the configured algorithms, a subset of RS256, PS256, ES256 (`none` and
//     HS* never, whatever the configuration);
//   - the key: by `kid` among the keys whose type fits the algorithm (RSA for RS/PS, EC P-256
//     for ES256) and whose JWK `alg` is absent or equal; without a `kid` only when exactly one
//     key fits;
//   - the signature (EVP_DigestVerify; PS256 with MGF1-SHA256 and a 32-byte salt; ES256 only
//     as 64 bytes r‖s with r, s in [1, n-1]);
//   - header `typ` among accepted_typ (case-insensitive; "" in the list accepts a token
//     without typ); `iss` exactly the issuer; `aud` (string or array) contains the audience;
//     `exp` required, now < exp + leeway; `nbf` and `iat`, when present, ≤ now + leeway;
//     `sub` a non-empty string.
//
// An ID-token check (browser sign-in) reuses this with audience = the client id and
// accepted_typ = {"", "JWT"}, then checks `nonce` and `azp` on the returned claims.
//
// Thread-safety: Verify() is const and may be called from any thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "auth/jwks.h"
#include "common/clock.h"
#include "common/status.h"

namespace ordertrace::auth {

// The algorithms that can ever be configured.
bool IsSupportedAlgorithm(std::string_view alg);  // RS256 | PS256 | ES256

struct JwtVerifierOptions {
  std::string issuer;    // `iss` must equal it byte for byte
  std::string audience;  // `aud` must contain it
  std::vector<std::string> algorithms = {"RS256", "PS256", "ES256"};
  std::vector<std::string> accepted_typ = {"at+jwt", "application/at+jwt"};
  std::chrono::seconds leeway{60};
  size_t max_token_bytes = 16 * 1024;
};

struct VerifiedJwt {
  nlohmann::json header;  // an object
  nlohmann::json claims;  // an object; iss, aud, exp, sub checked
  std::string alg, kid;
};

// Why a token was refused, for metrics and the audit's `reason` (bounded set).
enum class JwtError {
  kMalformed,    // size, segments, base64url, JSON, duplicates, crit
  kAlgorithm,    // alg not allowed
  kUnknownKey,   // no key with that kid (the OIDC client may refetch the JWKS)
  kKey,          // no fitting key (type, alg, or no kid and not exactly one candidate)
  kSignature,    // the signature does not verify
  kType,         // typ not accepted
  kIssuer,       // iss
  kAudience,     // aud
  kExpired,      // exp
  kNotYetValid,  // nbf, iat in the future
  kClaims,       // exp missing or not a number, sub missing, ...
};
const char* JwtErrorName(JwtError e);  // "malformed", "algorithm", "unknown_key", ...

struct JwtResult {
  bool ok() const { return !error_set; }
  bool error_set = false;
  JwtError error = JwtError::kMalformed;
  std::string reason;  // human words, never the token or its claims' values
  VerifiedJwt jwt;     // when ok()
};

class JwtVerifier {
 public:
  // Validates the options (issuer and audience non-empty, algorithms supported); errors name
  // the option.
  static Result<JwtVerifier> Create(JwtVerifierOptions options);

  JwtResult Verify(std::string_view token, const KeySet& keys, Nanos now) const;

  const JwtVerifierOptions& options() const { return options_; }

 private:
  explicit JwtVerifier(JwtVerifierOptions options) : options_(std::move(options)) {}
  JwtVerifierOptions options_;
};

}  // namespace ordertrace::auth
