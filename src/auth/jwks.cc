#include "auth/jwks.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/param_build.h>

#include <array>

#include "auth/openssl_ptr.h"
#include "auth/strict_json.h"
#include "common/base64.h"

namespace ordertrace::auth {
namespace {

using nlohmann::json;

constexpr int kMinRsaBits = 2048;

// A JWK member that must be a base64url string when present.
bool Member(const json& jwk, const char* name, std::string* decoded) {
  auto it = jwk.find(name);
  if (it == jwk.end() || !it->is_string()) return false;
  return Base64UrlDecode(it->get_ref<const std::string&>(), decoded);
}

Result<std::shared_ptr<EVP_PKEY>> FromData(const char* type, OSSL_PARAM_BLD* bld) {
  OpenSslPtr<OSSL_PARAM> params(OSSL_PARAM_BLD_to_param(bld));
  OpenSslPtr<EVP_PKEY_CTX> ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
  EVP_PKEY* key = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) <= 0 ||
      EVP_PKEY_fromdata(ctx.get(), &key, EVP_PKEY_PUBLIC_KEY, params.get()) <= 0) {
    return Status::InvalidArgument("OpenSSL refused the key parameters");
  }
  return std::shared_ptr<EVP_PKEY>(key, OpenSslFree());
}

Result<Jwk> RsaKey(const json& jwk, Jwk out) {
  std::string n, e;
  if (!Member(jwk, "n", &n) || !Member(jwk, "e", &e) || n.empty() || e.empty()) {
    return Status::InvalidArgument("RSA key without base64url n and e");
  }
  OpenSslPtr<BIGNUM> bn_n(BN_bin2bn(reinterpret_cast<const unsigned char*>(n.data()),
                                    static_cast<int>(n.size()), nullptr));
  OpenSslPtr<BIGNUM> bn_e(BN_bin2bn(reinterpret_cast<const unsigned char*>(e.data()),
                                    static_cast<int>(e.size()), nullptr));
  if (!bn_n || !bn_e) return Status::Internal("out of memory");
  out.bits = BN_num_bits(bn_n.get());
  if (out.bits < kMinRsaBits) {
    return Status::InvalidArgument("RSA modulus of " + std::to_string(out.bits) +
                                   " bits (at least 2048 required)");
  }
  if (out.bits > 16384) return Status::InvalidArgument("RSA modulus over 16384 bits");
  if (!BN_is_odd(bn_e.get()) || BN_is_one(bn_e.get())) {
    return Status::InvalidArgument("RSA exponent is not an odd number above 1");
  }
  OpenSslPtr<OSSL_PARAM_BLD> bld(OSSL_PARAM_BLD_new());
  if (!bld || !OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, bn_n.get()) ||
      !OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, bn_e.get())) {
    return Status::Internal("out of memory");
  }
  auto key = FromData("RSA", bld.get());
  if (!key.ok()) return key.status();
  out.type = Jwk::Type::kRsa;
  out.key = std::move(key).value();
  return out;
}

Result<Jwk> EcKey(const json& jwk, Jwk out) {
  auto crv = jwk.find("crv");
  if (crv == jwk.end() || !crv->is_string() || *crv != "P-256") {
    return Status::InvalidArgument("EC key on a curve other than P-256");
  }
  std::string x, y;
  if (!Member(jwk, "x", &x) || !Member(jwk, "y", &y) || x.size() != 32 || y.size() != 32) {
    return Status::InvalidArgument("EC key without 32-byte base64url x and y");
  }
  std::string point = "\x04" + x + y;  // uncompressed SEC1 point
  OpenSslPtr<OSSL_PARAM_BLD> bld(OSSL_PARAM_BLD_new());
  if (!bld ||
      !OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) ||
      !OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                        point.size())) {
    return Status::Internal("out of memory");
  }
  auto key = FromData("EC", bld.get());
  if (!key.ok()) return Status::InvalidArgument("EC point is not on P-256");
  // fromdata does not promise a full check of the point; an invalid-curve key must not verify.
  OpenSslPtr<EVP_PKEY_CTX> check(EVP_PKEY_CTX_new_from_pkey(nullptr, key.value().get(), nullptr));
  if (!check || EVP_PKEY_public_check(check.get()) != 1) {
    return Status::InvalidArgument("EC point is not on P-256");
  }
  out.type = Jwk::Type::kEcP256;
  out.bits = 256;
  out.key = std::move(key).value();
  return out;
}

Result<Jwk> JwkOf(const json& jwk) {
  if (!jwk.is_object()) return Status::InvalidArgument("not a JSON object");
  Jwk out;
  auto kid = jwk.find("kid");
  if (kid != jwk.end()) {
    if (!kid->is_string()) return Status::InvalidArgument("kid is not a string");
    out.kid = kid->get<std::string>();
  }
  auto use = jwk.find("use");
  if (use != jwk.end() && (!use->is_string() || *use != "sig")) {
    return Status::InvalidArgument("use is not \"sig\"");
  }
  auto alg = jwk.find("alg");
  if (alg != jwk.end()) {
    if (!alg->is_string()) return Status::InvalidArgument("alg is not a string");
    out.alg = alg->get<std::string>();
  }
  auto kty = jwk.find("kty");
  if (kty == jwk.end() || !kty->is_string()) return Status::InvalidArgument("no kty");
  if (*kty == "RSA") return RsaKey(jwk, std::move(out));
  if (*kty == "EC") return EcKey(jwk, std::move(out));
  return Status::InvalidArgument("kty " + std::string(*kty == "oct" ? "oct" : "other") +
                                 " is not RSA or EC");
}

}  // namespace

Result<KeySet> KeySet::Parse(std::string_view json_text, std::vector<std::string>* skipped) {
  json doc;
  std::string error;
  if (!ParseStrictJson(json_text, &doc, &error, 8)) {
    return Status::InvalidArgument("JWKS: " + error);
  }
  if (!doc.is_object() || !doc.contains("keys") || !doc["keys"].is_array()) {
    return Status::InvalidArgument("JWKS: expected an object with a \"keys\" array");
  }
  KeySet set;
  size_t index = 0;
  for (const json& k : doc["keys"]) {
    auto jwk = JwkOf(k);
    if (jwk.ok()) {
      set.keys_.push_back(std::move(jwk).value());
    } else if (skipped) {
      skipped->push_back("key " + std::to_string(index) + ": " + jwk.status().message());
    }
    ++index;
  }
  return set;
}

KeySet KeySet::Of(std::vector<Jwk> keys) {
  KeySet set;
  set.keys_ = std::move(keys);
  return set;
}

bool KeySet::HasKid(std::string_view kid) const {
  for (const Jwk& k : keys_) {
    if (k.kid == kid) return true;
  }
  return false;
}

Result<Jwk> ParseJwk(const std::string& jwk_json) {
  json doc;
  std::string error;
  if (!ParseStrictJson(jwk_json, &doc, &error, 4)) return Status::InvalidArgument(error);
  return JwkOf(doc);
}

}  // namespace ordertrace::auth
