#include "api/bearer_authorizer.h"

#include <atomic>

#include "common/log.h"

namespace ordertrace::api {
namespace {

bool IEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

std::string StringClaim(const nlohmann::json& claims, const char* name) {
  auto it = claims.find(name);
  return it != claims.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace

AuthResult BearerAuthorizer::Authorize(const net::HttpRequest& req, std::string_view action) const {
  auth::Principal who;
  who.method = "none";
  size_t headers = 0;
  std::string_view value;
  for (const auto& [name, v] : req.headers) {
    if (name == "authorization") {
      ++headers;
      value = v;
    }
  }
  if (headers == 0) return AuthResult::Deny(401, "", "no_token", who);
  who.method = "bearer";
  if (headers > 1) {
    return AuthResult::Deny(400, "invalid_request", "invalid_request:several_authorization", who);
  }
  // "Bearer" 1*SP b64token (RFC 6750 §2.1); the scheme is case-insensitive.
  const size_t space = value.find(' ');
  if (space == std::string_view::npos || !IEquals(value.substr(0, space), "bearer")) {
    who.method = "none";
    return AuthResult::Deny(401, "", "no_token:other_scheme", who);
  }
  std::string_view token = value.substr(space);
  while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
  if (token.empty()) return AuthResult::Deny(401, "invalid_token", "invalid_token:empty", who);

  const auth::AccessCheck check = CheckToken(token);
  switch (check.outcome) {
    case auth::AccessCheck::Outcome::kUnavailable:
      return AuthResult::Deny(503, "", check.reason, who);
    case auth::AccessCheck::Outcome::kInvalid:
      return AuthResult::Deny(401, "invalid_token", check.reason, who);
    case auth::AccessCheck::Outcome::kForbidden:
      return AuthResult::Deny(403, "insufficient_scope", check.reason, check.principal);
    case auth::AccessCheck::Outcome::kAllowed:
      break;
  }
  who = check.principal;
  // An empty action asks only for an allowed role (GET /api/v1/me).
  if (!action.empty() && !roles_.Allows(who.roles, action)) {
    return AuthResult::Deny(403, "insufficient_scope", "action_not_allowed", who);
  }
  return AuthResult::Allow(std::move(who));
}

auth::AccessCheck BearerAuthorizer::CheckToken(std::string_view token) const {
  auth::AccessCheck c;
  c.principal.method = "bearer";
  const std::shared_ptr<const auth::KeySet> keys = keys_.Keys();
  if (!keys) {
    c.outcome = auth::AccessCheck::Outcome::kUnavailable;
    c.reason = "no_keys";
    return c;
  }
  auth::JwtResult checked = verifier_.Verify(token, *keys, clock_.Now());
  if (!checked.ok()) {
    if (checked.error == auth::JwtError::kUnknownKey) keys_.OnUnknownKid();
    c.outcome = auth::AccessCheck::Outcome::kInvalid;
    c.reason = std::string("invalid_token:") + auth::JwtErrorName(checked.error);
    return c;
  }
  const nlohmann::json& claims = checked.jwt.claims;
  auth::Principal& who = c.principal;
  who.sub = StringClaim(claims, "sub");
  who.iss = StringClaim(claims, "iss");
  who.name = StringClaim(claims, "preferred_username");
  if (who.name.empty()) who.name = StringClaim(claims, "name");
  who.client_id = StringClaim(claims, "client_id");
  if (who.client_id.empty()) who.client_id = StringClaim(claims, "azp");
  // exp is a checked number; seconds to nanoseconds, saturating.
  const double exp = claims.at("exp").get<double>();
  c.expires = exp >= 9.2e9 ? INT64_MAX : static_cast<Nanos>(exp * 1e9);
  auth::RoleGrant grant = roles_.Map(claims);
  who.roles = grant.roles;
  if (who.roles.empty()) {
    if (grant.groups_overage) {
      // Entra left the groups out (over 200): the token cannot say whether the user is in one.
      static std::atomic<bool> hinted{false};
      if (!hinted.exchange(true)) {
        log::Warn(
            "OIDC: a token carries the Entra groups overage marker (_claim_names.groups) instead "
            "of groups; assign app roles to the users and read /roles (auth.roles.claims)",
            {{"sub", who.sub}});
      }
      c.outcome = auth::AccessCheck::Outcome::kForbidden;
      c.reason = "groups_overage";
      return c;
    }
    c.outcome = auth::AccessCheck::Outcome::kForbidden;
    c.reason = "missing_role";
    return c;
  }
  c.outcome = auth::AccessCheck::Outcome::kAllowed;
  return c;
}

}  // namespace ordertrace::api
