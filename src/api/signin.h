// The API's side of browser sign-in (auth/browser_signin.h): the verifier the sign-in flow uses
// (the OIDC client's endpoints and keys, ID tokens for this client, access tokens exactly as a
// bearer token is checked), the Authorizer that accepts a session cookie besides a bearer token,
// and GET /api/v1/me.
//
//   GET /api/v1/me   who the caller is: {"sub", "iss", "name", "auth", "roles", "actions"}
//                    (auth: session | bearer | anonymous); behind the guard like every route,
//                    for any user with an allowed role.
//
// Thread-safety: the verifier and authorizer are const-callable from any thread; the objects
// they refer to must outlive them.
#pragma once

#include <string>
#include <vector>

#include "api/api_guard.h"
#include "api/bearer_authorizer.h"
#include "auth/browser_signin.h"
#include "auth/jwt_verifier.h"
#include "auth/oidc_client.h"
#include "auth/roles.h"
#include "common/clock.h"

namespace ordertrace::api {

class OidcSignInVerifier : public auth::SignInVerifier {
 public:
  // `id_tokens` checks signatures, iss, aud = the client id, exp/iat (jwt_verifier.h); nonce and
  // azp are checked here.
  OidcSignInVerifier(const auth::OidcClient& oidc, auth::JwtVerifier id_tokens,
                     const BearerAuthorizer& bearer, const Clock& clock, std::string client_id)
      : oidc_(oidc),
        id_tokens_(std::move(id_tokens)),
        bearer_(bearer),
        clock_(clock),
        client_id_(std::move(client_id)) {}

  Result<auth::OidcEndpoints> Endpoints() const override { return oidc_.Endpoints(); }
  Status VerifyIdToken(std::string_view id_token, std::string_view nonce) const override;
  auth::AccessCheck CheckAccessToken(std::string_view token) const override {
    return bearer_.CheckToken(token);
  }

 private:
  const auth::OidcClient& oidc_;
  const auth::JwtVerifier id_tokens_;
  const BearerAuthorizer& bearer_;
  const Clock& clock_;
  const std::string client_id_;
};

// A request with the session cookie is that session's user (its roles were read at sign-in and
// at each refresh); any other request goes to the bearer check.  An action of "" asks only for an
// allowed role (GET /api/v1/me).
class SessionAuthorizer : public Authorizer {
 public:
  SessionAuthorizer(auth::BrowserSignIn& signin, const BearerAuthorizer& bearer)
      : signin_(signin), bearer_(bearer) {}
  AuthResult Authorize(const net::HttpRequest& req, std::string_view action) const override;

 private:
  auth::BrowserSignIn& signin_;
  const BearerAuthorizer& bearer_;
};

// Registers GET /api/v1/me.  `roles` (null without sign-in: every action is listed) says which
// actions the caller's roles allow.
void RegisterMeRoute(net::HttpServer& server, const ApiGuard& guard, const auth::RoleMapper* roles);

}  // namespace ordertrace::api
