#include "auth/jwt_verifier.h"

#include <openssl/bn.h>
#include <openssl/ecdsa.h>
#include <openssl/rsa.h>

#include <algorithm>
#include <cmath>
#include <memory>

#include "auth/openssl_ptr.h"
#include "auth/strict_json.h"
#include "common/base64.h"

namespace ordertrace::auth {
namespace {

using nlohmann::json;

// The order n of P-256's base point (SEC 2), for the r, s range check.
constexpr char kP256OrderHex[] = "FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551";
// NumericDate values beyond this (year 2255) are refused, so that seconds × 1e9 fits Nanos.
constexpr double kMaxNumericDate = 9.0e9;

JwtResult Fail(JwtError e, std::string reason) {
  JwtResult r;
  r.error_set = true;
  r.error = e;
  r.reason = std::move(reason);
  return r;
}

bool KeyFits(const Jwk& k, std::string_view alg) {
  const bool rsa_alg = alg == "RS256" || alg == "PS256";
  if (rsa_alg && k.type != Jwk::Type::kRsa) return false;
  if (alg == "ES256" && k.type != Jwk::Type::kEcP256) return false;
  return k.alg.empty() || k.alg == alg;
}

// ES256's JWS form (r‖s, 32 bytes each) as the DER that EVP_DigestVerify takes; false when the
// length is wrong or r or s is outside [1, n-1] (CVE-2022-21449 accepted r = s = 0).
bool EcdsaRawToDer(std::string_view raw, std::string* der) {
  if (raw.size() != 64) return false;
  BIGNUM* order_raw = nullptr;
  if (BN_hex2bn(&order_raw, kP256OrderHex) == 0) return false;
  OpenSslPtr<BIGNUM> order(order_raw);
  OpenSslPtr<BIGNUM> r(BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data()), 32, nullptr));
  OpenSslPtr<BIGNUM> s(
      BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data() + 32), 32, nullptr));
  if (!r || !s) return false;
  for (const BIGNUM* v : {r.get(), s.get()}) {
    if (BN_is_zero(v) || BN_cmp(v, order.get()) >= 0) return false;
  }
  OpenSslPtr<ECDSA_SIG> sig(ECDSA_SIG_new());
  if (!sig || ECDSA_SIG_set0(sig.get(), r.get(), s.get()) != 1) return false;
  (void)r.release();  // owned by sig now
  (void)s.release();
  unsigned char* out = nullptr;
  const int len = i2d_ECDSA_SIG(sig.get(), &out);
  if (len <= 0) return false;
  der->assign(reinterpret_cast<char*>(out), static_cast<size_t>(len));
  OPENSSL_free(out);
  return true;
}

bool VerifySignature(const Jwk& key, std::string_view alg, std::string_view signing_input,
                     std::string_view signature) {
  std::string der;
  if (alg == "ES256") {
    if (!EcdsaRawToDer(signature, &der)) return false;
    signature = der;
  } else if (signature.size() != static_cast<size_t>((key.bits + 7) / 8)) {
    return false;  // RSA signatures are exactly the modulus length
  }
  OpenSslPtr<EVP_MD_CTX> ctx(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;
  if (!ctx || EVP_DigestVerifyInit(ctx.get(), &pctx, EVP_sha256(), nullptr, key.key.get()) != 1) {
    return false;
  }
  if (alg == "PS256") {
    if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) <= 0 ||
        EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) <= 0 ||
        EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 32) <= 0) {
      return false;
    }
  } else if (alg == "RS256") {
    if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) <= 0) return false;
  }
  return EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()),
                          signature.size(),
                          reinterpret_cast<const unsigned char*>(signing_input.data()),
                          signing_input.size()) == 1;
}

// A NumericDate claim as Unix nanoseconds; false when it is not a number in [0, 2255].
bool NumericDate(const json& v, Nanos* out) {
  if (!v.is_number()) return false;
  const double d = v.get<double>();
  if (!std::isfinite(d) || d < 0 || d > kMaxNumericDate) return false;
  *out = static_cast<Nanos>(d * 1e9);
  return true;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

}  // namespace

bool IsSupportedAlgorithm(std::string_view alg) {
  return alg == "RS256" || alg == "PS256" || alg == "ES256";
}

const char* JwtErrorName(JwtError e) {
  switch (e) {
    case JwtError::kMalformed:
      return "malformed";
    case JwtError::kAlgorithm:
      return "algorithm";
    case JwtError::kUnknownKey:
      return "unknown_key";
    case JwtError::kKey:
      return "key";
    case JwtError::kSignature:
      return "signature";
    case JwtError::kType:
      return "typ";
    case JwtError::kIssuer:
      return "issuer";
    case JwtError::kAudience:
      return "audience";
    case JwtError::kExpired:
      return "expired";
    case JwtError::kNotYetValid:
      return "not_yet_valid";
    case JwtError::kClaims:
      return "claims";
  }
  return "malformed";
}

Result<JwtVerifier> JwtVerifier::Create(JwtVerifierOptions options) {
  if (options.issuer.empty()) return Status::InvalidArgument("issuer: required");
  if (options.audience.empty()) return Status::InvalidArgument("audience: required");
  if (options.algorithms.empty()) return Status::InvalidArgument("algorithms: empty");
  for (const std::string& a : options.algorithms) {
    if (!IsSupportedAlgorithm(a)) {
      return Status::InvalidArgument("algorithms: '" + a +
                                     "' is not supported (RS256, PS256, ES256; never none or HS*)");
    }
  }
  if (options.accepted_typ.empty()) return Status::InvalidArgument("accepted_typ: empty");
  for (std::string& t : options.accepted_typ) t = Lower(t);
  if (options.leeway.count() < 0 || options.leeway > std::chrono::hours(1)) {
    return Status::InvalidArgument("leeway: expected 0s..1h");
  }
  return JwtVerifier(std::move(options));
}

JwtResult JwtVerifier::Verify(std::string_view token, const KeySet& keys, Nanos now) const {
  if (token.size() > options_.max_token_bytes) {
    return Fail(JwtError::kMalformed,
                "token longer than " + std::to_string(options_.max_token_bytes) + " bytes");
  }
  const size_t dot1 = token.find('.');
  const size_t dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
    return Fail(JwtError::kMalformed, "not three dot-separated segments");
  }
  const std::string_view signing_input = token.substr(0, dot2);
  std::string header_text, payload_text, signature;
  if (!Base64UrlDecode(token.substr(0, dot1), &header_text) ||
      !Base64UrlDecode(token.substr(dot1 + 1, dot2 - dot1 - 1), &payload_text) ||
      !Base64UrlDecode(token.substr(dot2 + 1), &signature)) {
    return Fail(JwtError::kMalformed, "a segment is not strict base64url");
  }
  JwtResult result;
  VerifiedJwt& jwt = result.jwt;
  std::string error;
  if (!ParseStrictJson(header_text, &jwt.header, &error) || !jwt.header.is_object()) {
    return Fail(JwtError::kMalformed, "header: " + (error.empty() ? "not an object" : error));
  }
  const json& h = jwt.header;
  if (h.contains("crit")) return Fail(JwtError::kMalformed, "header has crit");
  auto alg = h.find("alg");
  if (alg == h.end() || !alg->is_string()) return Fail(JwtError::kAlgorithm, "no alg");
  jwt.alg = alg->get<std::string>();
  // Exact, case-sensitive: "none", "None", "HS256" ... never match a configured algorithm.
  if (!IsSupportedAlgorithm(jwt.alg) ||
      std::find(options_.algorithms.begin(), options_.algorithms.end(), jwt.alg) ==
          options_.algorithms.end()) {
    return Fail(JwtError::kAlgorithm, "alg not allowed");
  }
  auto kid = h.find("kid");
  const bool has_kid = kid != h.end();
  if (has_kid) {
    if (!kid->is_string()) return Fail(JwtError::kMalformed, "kid is not a string");
    jwt.kid = kid->get<std::string>();
  }
  // Typ before the payload: a mistyped token (an ID token, a logout token) is refused early.
  std::string typ;
  if (auto t = h.find("typ"); t != h.end()) {
    if (!t->is_string()) return Fail(JwtError::kType, "typ is not a string");
    typ = Lower(t->get<std::string>());
  }
  if (std::find(options_.accepted_typ.begin(), options_.accepted_typ.end(), typ) ==
      options_.accepted_typ.end()) {
    return Fail(JwtError::kType, "typ not accepted");
  }

  // The key, chosen only among the issuer's keys that fit the algorithm.
  const Jwk* key = nullptr;
  if (has_kid) {
    bool kid_known = false;
    for (const Jwk& k : keys.keys()) {
      if (k.kid != jwt.kid) continue;
      kid_known = true;
      if (KeyFits(k, jwt.alg)) {
        key = &k;
        break;
      }
    }
    if (!kid_known) return Fail(JwtError::kUnknownKey, "no key with this kid");
    if (!key) return Fail(JwtError::kKey, "the key with this kid does not fit alg");
  } else {
    size_t fitting = 0;
    for (const Jwk& k : keys.keys()) {
      if (KeyFits(k, jwt.alg)) {
        key = &k;
        ++fitting;
      }
    }
    if (fitting != 1) {
      return Fail(JwtError::kKey, "no kid, and " + std::to_string(fitting) + " keys fit alg");
    }
  }
  if (!VerifySignature(*key, jwt.alg, signing_input, signature)) {
    return Fail(JwtError::kSignature, "signature does not verify");
  }

  // Claims, only after the signature: nothing unsigned is interpreted.
  if (!ParseStrictJson(payload_text, &jwt.claims, &error) || !jwt.claims.is_object()) {
    return Fail(JwtError::kMalformed, "payload: " + (error.empty() ? "not an object" : error));
  }
  const json& c = jwt.claims;
  auto iss = c.find("iss");
  if (iss == c.end() || !iss->is_string() || *iss != options_.issuer) {
    return Fail(JwtError::kIssuer, iss == c.end() ? "no iss" : "iss is not the issuer");
  }
  auto aud = c.find("aud");
  bool audience_ok = false;
  if (aud != c.end() && aud->is_string()) {
    audience_ok = *aud == options_.audience;
  } else if (aud != c.end() && aud->is_array()) {
    for (const json& a : *aud)
      audience_ok = audience_ok || (a.is_string() && a == options_.audience);
  }
  if (!audience_ok) {
    return Fail(JwtError::kAudience, aud == c.end() ? "no aud" : "aud lacks the audience");
  }
  const Nanos leeway =
      std::chrono::duration_cast<std::chrono::nanoseconds>(options_.leeway).count();
  Nanos exp = 0;
  auto exp_it = c.find("exp");
  if (exp_it == c.end() || !NumericDate(*exp_it, &exp)) {
    return Fail(JwtError::kClaims, "exp missing or not a NumericDate");
  }
  if (!(now < exp + leeway)) return Fail(JwtError::kExpired, "expired");
  for (const char* name : {"nbf", "iat"}) {
    auto it = c.find(name);
    if (it == c.end()) continue;
    Nanos t = 0;
    if (!NumericDate(*it, &t)) {
      return Fail(JwtError::kClaims, std::string(name) + " is not a NumericDate");
    }
    if (now < t - leeway) {
      return Fail(JwtError::kNotYetValid, std::string(name) + " is in the future");
    }
  }
  auto sub = c.find("sub");
  if (sub == c.end() || !sub->is_string() || sub->get_ref<const std::string&>().empty()) {
    return Fail(JwtError::kClaims, "sub missing");
  }
  return result;
}

}  // namespace ordertrace::auth
