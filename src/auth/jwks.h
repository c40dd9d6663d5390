// Public keys of an OpenID provider, read from its JWKS document (RFC 7517): RSA keys from the
// JWK's n/e and EC P-256 keys from x/y, built with OpenSSL 3's EVP_PKEY_fromdata.  Keys that
// cannot serve a signature check are left out with a reason, never guessed: symmetric (`oct`)
// keys, RSA moduli under 2048 bits, curves other than P-256, `use` other than `sig`, EC points
// not on the curve.  The JWK's x5c/x5u are never read (RFC 8725 §3.10: keys come from the
// configured issuer's jwks_uri only).
//
// Also the strict base64url decoder the JWT verifier shares (no padding, no '+' or '/', no
// whitespace, unused trailing bits zero).
//
// Thread-safety: a KeySet is immutable after Parse() and may be shared between threads (the
// verifier reads it while the OIDC client's worker builds the next one).
#pragma once

#include <openssl/evp.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace ordertrace::auth {

struct Jwk {
  enum class Type { kRsa, kEcP256 };
  Type type = Type::kRsa;
  std::string kid;  // "" when the JWK has none
  std::string alg;  // the JWK's `alg`; "" when absent (then any algorithm of its type fits)
  int bits = 0;     // RSA modulus bits; 256 for P-256
  std::shared_ptr<EVP_PKEY> key;
};

class KeySet {
 public:
  // Parses a JWKS document ({"keys": [...]}).  A document that is not such an object is an
  // error; single keys that are unusable are skipped and described in `skipped` (without key
  // material).  A set with no usable key is valid (and verifies nothing).
  static Result<KeySet> Parse(std::string_view json_text,
                              std::vector<std::string>* skipped = nullptr);
  // A set from keys already built (tests, benchmarks).
  static KeySet Of(std::vector<Jwk> keys);

  const std::vector<Jwk>& keys() const { return keys_; }
  bool HasKid(std::string_view kid) const;

 private:
  std::vector<Jwk> keys_;
};

// The public key of `jwk_json` (one JWK object), for tests that build a set by hand; the same
// rules as Parse().
Result<Jwk> ParseJwk(const std::string& jwk_json);

}  // namespace ordertrace::auth
