// Attack tokens against the JWT verifier (issue 14 "Done when", research tests 1-14): every
// token is minted here with OpenSSL keys made at test start, checked against an in-memory JWKS
// with a manual clock.
#include "auth/jwt_verifier.h"

#include <gtest/gtest.h>

#include <string>

#include "common/base64.h"
#include "support/jwt_mint.h"

namespace ordertrace::auth {
namespace {

using nlohmann::json;
using testing_support::HmacJwt;
using testing_support::MintJwt;
using testing_support::TestKey;

constexpr Nanos kSec = 1'000'000'000;
constexpr int64_t kNow = 1'790'000'000;  // seconds
constexpr char kIssuer[] = "https://idp.example/realms/corp";
constexpr char kAudience[] = "urn:ordertrace:api";

// Keys are slow to make: once per test binary.
struct Keys {
  TestKey rsa = TestKey::Rsa(2048);
  TestKey rsa_small = TestKey::Rsa(1024);
  TestKey ec = TestKey::EcP256();
  TestKey attacker_rsa = TestKey::Rsa(2048);
  TestKey attacker_ec = TestKey::EcP256();
};
const Keys& K() {
  static const Keys* keys = new Keys();
  return *keys;
}

class JwtVerifierTest : public ::testing::Test {
 protected:
  void SetUp() override {
    JwtVerifierOptions o;
    o.issuer = kIssuer;
    o.audience = kAudience;
    auto v = JwtVerifier::Create(o);
    ASSERT_TRUE(v.ok()) << v.status().message();
    verifier_ = std::make_unique<JwtVerifier>(std::move(v).value());
    json jwks = {
        {"keys", {K().rsa.Jwk("rsa-1"), K().ec.Jwk("ec-1"), K().rsa_small.Jwk("small-1")}}};
    std::vector<std::string> skipped;
    auto set = KeySet::Parse(jwks.dump(), &skipped);
    ASSERT_TRUE(set.ok()) << set.status().message();
    keys_ = std::move(set).value();
    ASSERT_EQ(keys_.keys().size(), 2u);  // the 1024-bit key is left out
    ASSERT_EQ(skipped.size(), 1u);
    EXPECT_NE(skipped[0].find("2048"), std::string::npos) << skipped[0];
  }

  static json Header(const std::string& alg, const std::string& kid) {
    json h = {{"alg", alg}, {"typ", "at+jwt"}};
    if (!kid.empty()) h["kid"] = kid;
    return h;
  }
  static json Claims() {
    return {{"iss", kIssuer},    {"aud", kAudience}, {"sub", "alice"},
            {"exp", kNow + 300}, {"iat", kNow - 10}, {"client_id", "svc-ops"}};
  }
  std::string Rs(const json& claims = Claims()) {
    return MintJwt(Header("RS256", "rsa-1"), claims, K().rsa);
  }

  JwtResult Verify(const std::string& token, Nanos now = kNow * kSec) {
    return verifier_->Verify(token, keys_, now);
  }
  void ExpectRefused(const std::string& token, JwtError want, const std::string& what) {
    JwtResult r = Verify(token);
    EXPECT_FALSE(r.ok()) << what;
    if (!r.ok()) {
      EXPECT_EQ(JwtErrorName(r.error), std::string(JwtErrorName(want))) << what << ": " << r.reason;
    }
  }

  std::unique_ptr<JwtVerifier> verifier_;
  KeySet keys_;
};

TEST_F(JwtVerifierTest, AcceptsRs256Ps256Es256) {
  JwtResult r = Verify(Rs());
  ASSERT_TRUE(r.ok()) << r.reason;
  EXPECT_EQ(r.jwt.claims["sub"], "alice");
  EXPECT_EQ(r.jwt.kid, "rsa-1");
  EXPECT_TRUE(Verify(MintJwt(Header("PS256", "rsa-1"), Claims(), K().rsa)).ok());
  JwtResult es = Verify(MintJwt(Header("ES256", "ec-1"), Claims(), K().ec));
  EXPECT_TRUE(es.ok()) << es.reason;
  json aud_array = Claims();
  aud_array["aud"] = json::array({"account", kAudience});
  EXPECT_TRUE(Verify(Rs(aud_array)).ok());
}

TEST_F(JwtVerifierTest, AlgNoneInAnyCaseIsRefused) {
  for (std::string alg : {"none", "None", "NONE", "nOnE"}) {
    json h = {{"alg", alg}, {"typ", "at+jwt"}, {"kid", "rsa-1"}};
    const std::string input = testing_support::SigningInput(h, Claims());
    ExpectRefused(input + ".", JwtError::kAlgorithm, alg + " empty signature");
    ExpectRefused(input + "." + Base64UrlEncode("sig"), JwtError::kAlgorithm, alg + " signature");
    ExpectRefused(input, JwtError::kMalformed, alg + " two segments");
  }
}

TEST_F(JwtVerifierTest, Hs256WithThePublicKeyAsSecretIsRefused) {
  for (const std::string& secret :
       {K().rsa.PublicPem(), K().rsa.PublicDer(), K().rsa.RawModulus()}) {
    for (std::string alg : {"HS256", "HS384", "HS512", "hs256"}) {
      ExpectRefused(HmacJwt(Header(alg, "rsa-1"), Claims(), secret), JwtError::kAlgorithm, alg);
      ExpectRefused(HmacJwt(Header(alg, ""), Claims(), secret), JwtError::kAlgorithm, alg);
    }
  }
}

TEST_F(JwtVerifierTest, AlgorithmAndKeyTypeMismatchesAreRefused) {
  // RS256 header naming the EC key; ES256 header naming the RSA key.
  ExpectRefused(MintJwt(Header("RS256", "ec-1"), Claims(), K().rsa), JwtError::kKey, "RS256/EC");
  ExpectRefused(MintJwt(Header("ES256", "rsa-1"), Claims(), K().ec), JwtError::kKey, "ES256/RSA");
  // PS256 signature under an RS256 header and the reverse: the padding is bound to the alg.
  ExpectRefused(MintJwt(Header("RS256", "rsa-1"), Claims(), K().rsa, "PS256"), JwtError::kSignature,
                "RS256 header, PSS signature");
  ExpectRefused(MintJwt(Header("PS256", "rsa-1"), Claims(), K().rsa, "RS256"), JwtError::kSignature,
                "PS256 header, PKCS1 signature");
  // PS256 not configured: refused even with a good signature.
  JwtVerifierOptions o = verifier_->options();
  o.algorithms = {"RS256"};
  auto rs_only = JwtVerifier::Create(o);
  ASSERT_TRUE(rs_only.ok());
  EXPECT_FALSE(
      rs_only->Verify(MintJwt(Header("PS256", "rsa-1"), Claims(), K().rsa), keys_, kNow * kSec)
          .ok());
  // A JWK whose alg says RS256 does not verify PS256.
  auto pinned = KeySet::Parse(json{{"keys", {K().rsa.Jwk("rsa-1", "RS256")}}}.dump());
  ASSERT_TRUE(pinned.ok());
  EXPECT_FALSE(
      verifier_->Verify(MintJwt(Header("PS256", "rsa-1"), Claims(), K().rsa), *pinned, kNow * kSec)
          .ok());
  EXPECT_TRUE(verifier_->Verify(Rs(), *pinned, kNow * kSec).ok());
  // Configuring none or HS256 is refused outright.
  for (std::string bad : {"none", "HS256", "RS512"}) {
    o.algorithms = {bad};
    EXPECT_FALSE(JwtVerifier::Create(o).ok()) << bad;
  }
}

TEST_F(JwtVerifierTest, AttackerKeysAreNeverUsed) {
  // Signed by another key under the real kid.
  ExpectRefused(MintJwt(Header("RS256", "rsa-1"), Claims(), K().attacker_rsa), JwtError::kSignature,
                "attacker RSA under rsa-1");
  ExpectRefused(MintJwt(Header("ES256", "ec-1"), Claims(), K().attacker_ec), JwtError::kSignature,
                "attacker EC under ec-1");
  // The attacker's key embedded as jwk, or pointed at with jku / x5u / x5c: never read.
  json h = Header("RS256", "rsa-1");
  h["jwk"] = K().attacker_rsa.Jwk("rsa-1");
  h["jku"] = "http://127.0.0.1:1/jwks.json";
  h["x5u"] = "http://127.0.0.1:1/cert.pem";
  h["x5c"] = json::array({Base64UrlEncode(K().attacker_rsa.PublicDer())});
  ExpectRefused(MintJwt(h, Claims(), K().attacker_rsa), JwtError::kSignature, "embedded jwk");
  json no_kid = Header("RS256", "");
  no_kid["jwk"] = K().attacker_rsa.Jwk("");
  ExpectRefused(MintJwt(no_kid, Claims(), K().attacker_rsa), JwtError::kSignature, "jwk, no kid");
  // With the real key the same headers verify: they are ignored, not trusted.
  EXPECT_TRUE(Verify(MintJwt(h, Claims(), K().rsa)).ok());
}

TEST_F(JwtVerifierTest, UnknownAndHostileKidsAreUnknownKeys) {
  for (std::string kid : std::vector<std::string>{"../../etc/passwd", std::string(10000, 'k'),
                                                  "' OR 1=1 --", "rsa-2"}) {
    JwtResult r = Verify(MintJwt(Header("RS256", kid), Claims(), K().rsa));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error, JwtError::kUnknownKey);
    EXPECT_EQ(r.reason.find(kid), std::string::npos) << "the reason must not echo the kid";
  }
  // Without a kid: only when exactly one key fits the alg.
  EXPECT_TRUE(Verify(MintJwt(Header("RS256", ""), Claims(), K().rsa)).ok());
  auto two = KeySet::Parse(json{{"keys", {K().rsa.Jwk("a"), K().attacker_rsa.Jwk("b")}}}.dump());
  ASSERT_TRUE(two.ok());
  JwtResult r =
      verifier_->Verify(MintJwt(Header("RS256", ""), Claims(), K().rsa), *two, kNow * kSec);
  EXPECT_EQ(r.error, JwtError::kKey);
}

TEST_F(JwtVerifierTest, TimeClaimsAtTheLeewayBoundaries) {
  const int64_t leeway = 60;
  json c = Claims();
  c["exp"] = kNow - leeway - 1;
  ExpectRefused(Rs(c), JwtError::kExpired, "exp now-leeway-1");
  c["exp"] = kNow - leeway;
  ExpectRefused(Rs(c), JwtError::kExpired, "exp now-leeway");
  c["exp"] = kNow - leeway + 1;
  EXPECT_TRUE(Verify(Rs(c)).ok()) << "exp now-leeway+1";
  for (json bad : {json("1790000300"), json(1e300), json(-5), json(nullptr), json(true)}) {
    c["exp"] = bad;
    ExpectRefused(Rs(c), JwtError::kClaims, "exp " + bad.dump());
  }
  c.erase("exp");
  ExpectRefused(Rs(c), JwtError::kClaims, "no exp");
  c = Claims();
  c["nbf"] = kNow + leeway + 1;
  ExpectRefused(Rs(c), JwtError::kNotYetValid, "nbf now+leeway+1");
  c["nbf"] = kNow + leeway;
  EXPECT_TRUE(Verify(Rs(c)).ok()) << "nbf now+leeway";
  c = Claims();
  c["iat"] = kNow + leeway + 1;
  ExpectRefused(Rs(c), JwtError::kNotYetValid, "iat in the future");
  c["iat"] = kNow + leeway;
  EXPECT_TRUE(Verify(Rs(c)).ok()) << "iat now+leeway";
  c["iat"] = "yesterday";
  ExpectRefused(Rs(c), JwtError::kClaims, "iat a string");
}

TEST_F(JwtVerifierTest, IssuerAudienceSubject) {
  for (json iss : {json(std::string(kIssuer) + "/"), json("https://IDP.example/realms/corp"),
                   json("https://idp.example/realms/other"), json(nullptr)}) {
    json c = Claims();
    c["iss"] = iss;
    ExpectRefused(Rs(c), JwtError::kIssuer, "iss " + iss.dump());
  }
  json c = Claims();
  c.erase("iss");
  ExpectRefused(Rs(c), JwtError::kIssuer, "no iss");
  for (json aud : {json("account"), json::array({"account", "other"}), json::array(),
                   json(std::string(kAudience) + " "), json(42)}) {
    c = Claims();
    c["aud"] = aud;
    ExpectRefused(Rs(c), JwtError::kAudience, "aud " + aud.dump());
  }
  c = Claims();
  c.erase("aud");
  ExpectRefused(Rs(c), JwtError::kAudience, "no aud");
  for (json sub : {json(""), json(7)}) {
    c = Claims();
    c["sub"] = sub;
    ExpectRefused(Rs(c), JwtError::kClaims, "sub " + sub.dump());
  }
  c.erase("sub");
  ExpectRefused(Rs(c), JwtError::kClaims, "no sub");
}

TEST_F(JwtVerifierTest, IdTokenUsedAsAccessTokenIsRefused) {
  // An ID token of the UI client: typ JWT, aud the client id, a nonce.
  json h = {{"alg", "RS256"}, {"typ", "JWT"}, {"kid", "rsa-1"}};
  json c = Claims();
  c["aud"] = "ordertrace-ui";
  c["azp"] = "ordertrace-ui";
  c["nonce"] = "n-0S6_WzA2Mj";
  ExpectRefused(MintJwt(h, c, K().rsa), JwtError::kType, "ID token, strict typ");
  // Even where typ JWT is accepted (Keycloak, Entra), the audience refuses it.
  JwtVerifierOptions o = verifier_->options();
  o.accepted_typ = {"at+jwt", "application/at+jwt", "JWT"};
  auto lax = JwtVerifier::Create(o);
  ASSERT_TRUE(lax.ok());
  JwtResult r = lax->Verify(MintJwt(h, c, K().rsa), keys_, kNow * kSec);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error, JwtError::kAudience);
}

TEST_F(JwtVerifierTest, TypIsConfigurable) {
  json c = Claims();
  auto with_typ = [&](const json& typ) {
    json h = Header("RS256", "rsa-1");
    if (typ.is_null()) {
      h.erase("typ");
    } else {
      h["typ"] = typ;
    }
    return MintJwt(h, c, K().rsa);
  };
  EXPECT_TRUE(Verify(with_typ("at+jwt")).ok());
  EXPECT_TRUE(Verify(with_typ("application/at+jwt")).ok());
  EXPECT_TRUE(Verify(with_typ("AT+JWT")).ok());
  ExpectRefused(with_typ("JWT"), JwtError::kType, "JWT under strict config");
  ExpectRefused(with_typ(nullptr), JwtError::kType, "no typ");
  ExpectRefused(with_typ(3), JwtError::kType, "typ a number");
  JwtVerifierOptions o = verifier_->options();
  o.accepted_typ.push_back("JWT");
  auto lax = JwtVerifier::Create(o);
  ASSERT_TRUE(lax.ok());
  EXPECT_TRUE(lax->Verify(with_typ("JWT"), keys_, kNow * kSec).ok());
}

TEST_F(JwtVerifierTest, TamperedAndSplicedTokensAreRefused) {
  const std::string good = Rs();
  const size_t d1 = good.find('.'), d2 = good.rfind('.');
  json c = Claims();
  c["roles"] = json::array({"DevOps"});
  const std::string other = Rs(c);
  // Payload with a role added, original signature.
  std::string tampered = good.substr(0, d1 + 1) + Base64UrlEncode(c.dump()) + good.substr(d2);
  ExpectRefused(tampered, JwtError::kSignature, "payload changed");
  // Another token's signature spliced in.
  ExpectRefused(good.substr(0, d2) + other.substr(other.rfind('.')), JwtError::kSignature,
                "spliced signature");
  ExpectRefused(good.substr(0, d2 + 1), JwtError::kSignature, "signature stripped");
  // A flipped bit in the signature.
  std::string sig;
  ASSERT_TRUE(Base64UrlDecode(good.substr(d2 + 1), &sig));
  sig[10] = static_cast<char>(sig[10] ^ 1);
  ExpectRefused(good.substr(0, d2 + 1) + Base64UrlEncode(sig), JwtError::kSignature, "bit flip");
}

TEST_F(JwtVerifierTest, MalformedEs256SignaturesAreRefused) {
  const json h = Header("ES256", "ec-1");
  const std::string input = testing_support::SigningInput(h, Claims());
  // DER instead of r‖s.
  ExpectRefused(input + "." + Base64UrlEncode(K().ec.Sign("ES256-DER", input)),
                JwtError::kSignature, "DER signature");
  const std::string good = K().ec.Sign("ES256", input);
  const std::string zero(32, '\0');
  // P-256's order n, and n itself + the good s: out of range.
  std::string n_bytes;
  const std::string n_hex = "FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551";
  for (size_t i = 0; i < n_hex.size(); i += 2) {
    n_bytes.push_back(static_cast<char>(std::stoi(n_hex.substr(i, 2), nullptr, 16)));
  }
  const std::string all_ff(32, '\xff');
  for (const auto& [sig, what] :
       std::vector<std::pair<std::string, std::string>>{{zero + zero, "r=s=0"},
                                                        {zero + good.substr(32), "r=0"},
                                                        {good.substr(0, 32) + zero, "s=0"},
                                                        {n_bytes + good.substr(32), "r=n"},
                                                        {good.substr(0, 32) + n_bytes, "s=n"},
                                                        {all_ff + good.substr(32), "r>n"},
                                                        {good.substr(0, 63), "63 bytes"},
                                                        {good + "x", "65 bytes"}}) {
    ExpectRefused(input + "." + Base64UrlEncode(sig), JwtError::kSignature, what);
  }
  EXPECT_TRUE(Verify(input + "." + Base64UrlEncode(good)).ok());
}

TEST_F(JwtVerifierTest, SmallRsaKeyIsNeverUsed) {
  ExpectRefused(MintJwt(Header("RS256", "small-1"), Claims(), K().rsa_small), JwtError::kUnknownKey,
                "1024-bit key");
  auto only_small = KeySet::Parse(json{{"keys", {K().rsa_small.Jwk("")}}}.dump());
  ASSERT_TRUE(only_small.ok());
  EXPECT_TRUE(only_small->keys().empty());
}

TEST_F(JwtVerifierTest, MalformedTokensAreRefused) {
  const std::string good = Rs();
  // crit
  json h = Header("RS256", "rsa-1");
  h["crit"] = json::array({"exp"});
  h["exp"] = kNow + 300;
  ExpectRefused(MintJwt(h, Claims(), K().rsa), JwtError::kMalformed, "crit");
  // Duplicate members, in the payload and in the header (built by hand: json cannot hold them).
  auto hand_made = [&](const std::string& header, const std::string& payload) {
    const std::string input = Base64UrlEncode(header) + "." + Base64UrlEncode(payload);
    return input + "." + Base64UrlEncode(K().rsa.Sign("RS256", input));
  };
  const std::string hdr = R"({"alg":"RS256","typ":"at+jwt","kid":"rsa-1"})";
  const std::string exp = std::to_string(kNow + 300);
  const std::string base = R"("iss":")" + std::string(kIssuer) + R"(","sub":"alice","exp":)" + exp;
  EXPECT_TRUE(Verify(hand_made(hdr, "{" + base + R"(,"aud":"urn:ordertrace:api"})")).ok());
  ExpectRefused(hand_made(hdr, "{" + base + R"(,"aud":"x","aud":"urn:ordertrace:api"})"),
                JwtError::kMalformed, "duplicate aud");
  ExpectRefused(hand_made(hdr, "{" + base + R"(,"aud":"urn:ordertrace:api","exp":1})"),
                JwtError::kMalformed, "duplicate exp");
  ExpectRefused(hand_made(R"({"alg":"RS256","alg":"none","typ":"at+jwt","kid":"rsa-1"})",
                          "{" + base + R"(,"aud":"urn:ordertrace:api"})"),
                JwtError::kMalformed, "duplicate alg");
  // Nested objects keep their own member names.
  EXPECT_TRUE(
      Verify(hand_made(hdr, "{" + base + R"(,"aud":"urn:ordertrace:api","a":{"x":1},"b":{"x":1}})"))
          .ok());
  // Padded, standard-alphabet and whitespace base64.
  const size_t d1 = good.find('.');
  ExpectRefused(good.substr(0, d1) + "=" + good.substr(d1), JwtError::kMalformed, "padding");
  std::string std_alphabet = good;
  for (char& ch : std_alphabet) ch = ch == '-' ? '+' : ch == '_' ? '/' : ch;
  if (std_alphabet != good) ExpectRefused(std_alphabet, JwtError::kMalformed, "+/ alphabet");
  ExpectRefused(good.substr(0, d1) + " " + good.substr(d1), JwtError::kMalformed, "space");
  ExpectRefused(good + "\n", JwtError::kMalformed, "newline");
  // JWE (5 parts), 4 parts, 1 part, empty.
  ExpectRefused(good + ".a.b", JwtError::kMalformed, "JWE");
  ExpectRefused(good + ".a", JwtError::kMalformed, "4 parts");
  ExpectRefused("abc", JwtError::kMalformed, "1 part");
  ExpectRefused("", JwtError::kMalformed, "empty");
  ExpectRefused("..", JwtError::kMalformed, "empty segments");
  // Oversize: 16 KiB + 1 and 1 MiB.
  json big = Claims();
  big["pad"] = std::string(16 * 1024, 'x');
  ExpectRefused(Rs(big), JwtError::kMalformed, "over 16 KiB");
  ExpectRefused(std::string(1 << 20, 'a'), JwtError::kMalformed, "1 MiB");
  // Deep nesting in the payload (within the size limit) and 100k '[' (over it).
  ExpectRefused(hand_made(hdr, "{" + base + R"(,"aud":"urn:ordertrace:api","d":)" +
                                   std::string(5000, '[') + std::string(5000, ']') + "}"),
                JwtError::kMalformed, "deep nesting");
  ExpectRefused(hand_made(hdr, std::string(100000, '[')), JwtError::kMalformed, "100k [");
  // Header or payload not an object; not UTF-8.
  ExpectRefused(hand_made("[]", "{" + base + "}"), JwtError::kMalformed, "header array");
  ExpectRefused(hand_made(hdr, R"("just a string")"), JwtError::kMalformed, "payload string");
  ExpectRefused(hand_made(hdr, "{" + base + ",\"aud\":\"\xff\xfe\"}"), JwtError::kMalformed,
                "payload not UTF-8");
  // kid not a string.
  ExpectRefused(hand_made(R"({"alg":"RS256","typ":"at+jwt","kid":7})", "{" + base + "}"),
                JwtError::kMalformed, "kid number");
}

TEST(Base64UrlTest, StrictDecoding) {
  std::string out;
  EXPECT_TRUE(Base64UrlDecode("", &out));
  EXPECT_TRUE(Base64UrlDecode("YQ", &out));
  EXPECT_EQ(out, "a");
  EXPECT_FALSE(Base64UrlDecode("YR", &out)) << "non-zero unused bits";
  EXPECT_FALSE(Base64UrlDecode("YQ==", &out));
  EXPECT_FALSE(Base64UrlDecode("Y", &out));
  EXPECT_FALSE(Base64UrlDecode("a+b/", &out));
  EXPECT_TRUE(Base64UrlDecode("a-b_", &out));
  for (std::string s :
       std::vector<std::string>{"", "a", "ab", "abc", "abcd", std::string("\0\xff\x10", 3)}) {
    EXPECT_TRUE(Base64UrlDecode(Base64UrlEncode(s), &out));
    EXPECT_EQ(out, s);
  }
}

}  // namespace
}  // namespace ordertrace::auth
