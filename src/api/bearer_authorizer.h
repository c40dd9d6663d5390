// The API's OIDC bearer-token Authorizer: the token from `Authorization: Bearer` only (scheme
// case-insensitive; a token in the query string is ignored, RFC 6750 §2.3), verified against
// the issuer's current keys (auth/jwt_verifier.h), mapped to the gateway's roles and checked
// against the action (auth/roles.h).  The keys come from a KeySource (the OIDC client): it is
// only read here, never fetched; an unknown kid refuses the token at once and asks the source
// to refetch in the background.
//
// Thread-safety: Authorize() is const and may run on any thread; the verifier, roles, key
// source and clock must outlive it.
#pragma once

#include "api/api_guard.h"
#include "auth/browser_signin.h"
#include "auth/jwt_verifier.h"
#include "auth/oidc_client.h"
#include "auth/roles.h"
#include "common/clock.h"

namespace ordertrace::api {

class BearerAuthorizer : public Authorizer {
 public:
  BearerAuthorizer(auth::JwtVerifier verifier, auth::RoleMapper roles, const auth::KeySource& keys,
                   const Clock& clock)
      : verifier_(std::move(verifier)), roles_(std::move(roles)), keys_(keys), clock_(clock) {}

  AuthResult Authorize(const net::HttpRequest& req, std::string_view action) const override;

  // A token on its own, as Authorize() checks it but before any action: who it names, with which
  // roles, and until when (browser sign-in checks the access token it gets this way).
  auth::AccessCheck CheckToken(std::string_view token) const;

  const auth::RoleMapper& roles() const { return roles_; }
  const auth::KeySource& keys() const { return keys_; }

 private:
  const auth::JwtVerifier verifier_;
  const auth::RoleMapper roles_;
  const auth::KeySource& keys_;
  const Clock& clock_;
};

}  // namespace ordertrace::api
