#include "api/signin.h"

#include <algorithm>
#include <nlohmann/json.hpp>

namespace ordertrace::api {
namespace {

using nlohmann::json;

std::string StringClaim(const json& claims, const char* name) {
  auto it = claims.find(name);
  return it != claims.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace

Status OidcSignInVerifier::VerifyIdToken(std::string_view id_token, std::string_view nonce) const {
  const std::shared_ptr<const auth::KeySet> keys = oidc_.Keys();
  if (!keys) return Status::Unavailable("the identity provider's keys are not known yet");
  auth::JwtResult checked = id_tokens_.Verify(id_token, *keys, clock_.Now());
  if (!checked.ok()) {
    if (checked.error == auth::JwtError::kUnknownKey) oidc_.OnUnknownKid();
    return Status::InvalidArgument(std::string("ID token: ") + auth::JwtErrorName(checked.error));
  }
  const json& claims = checked.jwt.claims;
  // OIDC Core 3.1.3.7: the nonce sent must come back; with several audiences `azp` must be
  // present, and when present it must be this client.
  if (StringClaim(claims, "nonce") != nonce || nonce.empty()) {
    return Status::InvalidArgument("ID token: the nonce does not match");
  }
  const std::string azp = StringClaim(claims, "azp");
  auto aud = claims.find("aud");
  const bool several = aud != claims.end() && aud->is_array() && aud->size() > 1;
  if ((several && azp.empty()) || (!azp.empty() && azp != client_id_)) {
    return Status::InvalidArgument("ID token: azp is not this client");
  }
  return Status::Ok();
}

AuthResult SessionAuthorizer::Authorize(const net::HttpRequest& req,
                                        std::string_view action) const {
  auto session = signin_.Authenticate(req);
  if (!session) return bearer_.Authorize(req, action);
  auth::Principal who;
  who.method = "session";
  if (!session->ok())
    return AuthResult::Deny(401, "", "session:" + session->status().message(), who);
  who = **session;
  if (!action.empty() && !bearer_.roles().Allows(who.roles, action)) {
    return AuthResult::Deny(403, "insufficient_scope", "action_not_allowed", who);
  }
  return AuthResult::Allow(std::move(who));
}

void RegisterMeRoute(net::HttpServer& server, const ApiGuard& guard,
                     const auth::RoleMapper* roles) {
  server.Route(
      "GET", "/api/v1/me",
      guard.Wrap("/api/v1/me", "",
                 [roles](net::HttpRequest&, net::HttpResponse& res, audit::AuditEvent& event) {
                   const auth::Principal& who = event.actor;
                   std::vector<std::string> actions;
                   const auto all = roles ? roles->options().actions : auth::DefaultActions();
                   for (const auto& [role, granted] : all) {
                     if (roles &&
                         std::find(who.roles.begin(), who.roles.end(), role) == who.roles.end()) {
                       continue;
                     }
                     for (const std::string& a : granted) {
                       if (std::find(actions.begin(), actions.end(), a) == actions.end()) {
                         actions.push_back(a);
                       }
                     }
                   }
                   json body{{"sub", who.sub},     {"iss", who.iss},     {"name", who.name},
                             {"auth", who.method}, {"roles", who.roles}, {"actions", actions}};
                   res.status = 200;
                   res.content_type = "application/json";
                   res.body = body.dump(-1, ' ', false, json::error_handler_t::replace);
                   res.headers.emplace_back("Cache-Control", "no-store");
                 }));
}

}  // namespace ordertrace::api
