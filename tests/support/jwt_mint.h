// JwtMint: signing keys made with OpenSSL at test start (RSA of any size, EC P-256) and JWTs
// signed with them, for the attack-token tests of auth/jwt_verifier and the API, and for the
// token-check benchmark.  The keys export their public half as a JWK (n/e, x/y) and, for the
// algorithm-confusion cases, as PEM, DER and the raw modulus.  Header-only.
//
// Thread-safety: a TestKey is immutable after it is made and may be used from any thread.
#pragma once

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "auth/jwks.h"
#include "common/base64.h"

namespace ordertrace::testing_support {

class TestKey {
 public:
  static TestKey Rsa(int bits) {
    TestKey k;
    k.key_.reset(EVP_RSA_gen(static_cast<unsigned>(bits)), EVP_PKEY_free);
    k.rsa_ = true;
    return k;
  }
  static TestKey EcP256() {
    TestKey k;
    k.key_.reset(EVP_EC_gen("P-256"), EVP_PKEY_free);
    return k;
  }
  bool ok() const { return key_ != nullptr; }
  bool rsa() const { return rsa_; }
  EVP_PKEY* pkey() const { return key_.get(); }

  // The public JWK, with `kid` and `alg` members when non-empty.
  nlohmann::json Jwk(const std::string& kid, const std::string& alg = "") const {
    nlohmann::json j;
    if (rsa_) {
      j["kty"] = "RSA";
      j["n"] = Base64UrlEncode(Bn(OSSL_PKEY_PARAM_RSA_N));
      j["e"] = Base64UrlEncode(Bn(OSSL_PKEY_PARAM_RSA_E));
    } else {
      j["kty"] = "EC";
      j["crv"] = "P-256";
      j["x"] = Base64UrlEncode(Bn(OSSL_PKEY_PARAM_EC_PUB_X, 32));
      j["y"] = Base64UrlEncode(Bn(OSSL_PKEY_PARAM_EC_PUB_Y, 32));
    }
    if (!kid.empty()) j["kid"] = kid;
    if (!alg.empty()) j["alg"] = alg;
    return j;
  }

  std::string PublicPem() const {
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
    PEM_write_bio_PUBKEY(bio.get(), key_.get());
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<size_t>(n));
  }
  std::string PublicDer() const {
    unsigned char* out = nullptr;
    const int n = i2d_PUBKEY(key_.get(), &out);
    std::string der(reinterpret_cast<char*>(out), static_cast<size_t>(n));
    OPENSSL_free(out);
    return der;
  }
  std::string RawModulus() const { return Bn(OSSL_PKEY_PARAM_RSA_N); }

  // The JWS signature of `input` under `alg` (RS256, PS256, ES256 as r‖s; "ES256-DER" as the
  // DER that OpenSSL makes).
  std::string Sign(const std::string& alg, const std::string& input) const {
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    EVP_PKEY_CTX* pctx = nullptr;
    EVP_DigestSignInit(ctx.get(), &pctx, EVP_sha256(), nullptr, key_.get());
    if (alg == "PS256") {
      EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING);
      EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256());
      EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 32);
    }
    size_t len = 0;
    EVP_DigestSign(ctx.get(), nullptr, &len, reinterpret_cast<const unsigned char*>(input.data()),
                   input.size());
    std::string sig(len, '\0');
    EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len,
                   reinterpret_cast<const unsigned char*>(input.data()), input.size());
    sig.resize(len);
    if (alg != "ES256") return sig;
    // DER ECDSA-Sig-Value to JWS r‖s.
    const unsigned char* p = reinterpret_cast<const unsigned char*>(sig.data());
    ECDSA_SIG* es = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(sig.size()));
    std::string raw(64, '\0');
    BN_bn2binpad(ECDSA_SIG_get0_r(es), reinterpret_cast<unsigned char*>(raw.data()), 32);
    BN_bn2binpad(ECDSA_SIG_get0_s(es), reinterpret_cast<unsigned char*>(raw.data()) + 32, 32);
    ECDSA_SIG_free(es);
    return raw;
  }

 private:
  std::string Bn(const char* name, int pad = 0) const {
    BIGNUM* bn = nullptr;
    EVP_PKEY_get_bn_param(key_.get(), name, &bn);
    std::string out(static_cast<size_t>(pad > 0 ? pad : BN_num_bytes(bn)), '\0');
    BN_bn2binpad(bn, reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(out.size()));
    BN_free(bn);
    return out;
  }

  std::shared_ptr<EVP_PKEY> key_;
  bool rsa_ = false;
};

// "b64(header).b64(claims)", the JWS signing input.
inline std::string SigningInput(const nlohmann::json& header, const nlohmann::json& claims) {
  return Base64UrlEncode(header.dump()) + "." + Base64UrlEncode(claims.dump());
}

// A compact JWS of `claims` with `header` (its alg is the caller's), signed with `key` under
// `sign_alg` (defaults to header.alg).
inline std::string MintJwt(const nlohmann::json& header, const nlohmann::json& claims,
                           const TestKey& key, const std::string& sign_alg = "") {
  const std::string input = SigningInput(header, claims);
  const std::string alg = sign_alg.empty() ? header.value("alg", "") : sign_alg;
  return input + "." + Base64UrlEncode(key.Sign(alg, input));
}

// HS256 over the signing input with `secret` (the algorithm-confusion attack).
inline std::string HmacJwt(const nlohmann::json& header, const nlohmann::json& claims,
                           const std::string& secret) {
  const std::string input = SigningInput(header, claims);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &len);
  return input + "." + Base64UrlEncode(std::string(reinterpret_cast<char*>(mac), len));
}

}  // namespace ordertrace::testing_support
