// Fuzz target for the API sign-in parsers (src/auth): every input is verified as a bearer token
// (auth/jwt_verifier.h) against a fixed key set, read as a JWKS document (auth/jwks.h) and as
// strict JSON (auth/strict_json.h).  Each must accept or refuse it with a reason, never crash,
// whatever a client (the token) or a provider (the JWKS) sends.
//
// Corpus: tests/fuzz/corpus/jwt.  See docs/fuzzing.md.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "auth/jwt_verifier.h"
#include "auth/strict_json.h"
#include "common/base64.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ordertrace::auth;
  static const KeySet* keys = [] {
    auto set = KeySet::Parse(R"({"keys":[{"kty":"EC","crv":"P-256","kid":"ec-1",)"
                             R"("x":"wDauJPUN47quW2cPepUygyHD2QufuRLrVErGzacyBAs",)"
                             R"("y":"uqeU5WtTWXvgA8a7OViyAS1mDr1WqmILgYgzaRukUJc"}]})");
    if (!set.ok()) std::abort();
    return new KeySet(std::move(set).value());
  }();
  static const JwtVerifier* verifier = [] {
    JwtVerifierOptions o;
    o.issuer = "https://idp.example";
    o.audience = "urn:ordertrace:api";
    o.accepted_typ.push_back("JWT");
    auto v = JwtVerifier::Create(o);
    if (!v.ok()) std::abort();
    return new JwtVerifier(std::move(v).value());
  }();
  std::string_view text(reinterpret_cast<const char*>(data), size);
  JwtResult r = verifier->Verify(text, *keys, 1'790'000'000'000'000'000);
  if (!r.ok() && r.reason.empty()) std::abort();
  std::vector<std::string> skipped;
  auto set = KeySet::Parse(text, &skipped);
  if (!set.ok() && set.status().message().empty()) std::abort();
  nlohmann::json j;
  std::string error;
  if (!ParseStrictJson(text, &j, &error) && error.empty()) std::abort();
  std::string decoded;
  (void)ordertrace::Base64UrlDecode(text, &decoded);  // any answer is fine; no crash
  return 0;
}
