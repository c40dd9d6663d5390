// From a verified token's claims to the gateway's roles and what they may do.
//
// The IdP's role values are read at configured JSON Pointers (RFC 6901), several unioned;
// each may hold an array of strings or a single string (ADFS), anything else is ignored.  The
// defaults read Keycloak (/realm_access/roles, /resource_access/<client>/roles), Entra app
// roles (/roles) and plain /groups.  `map` turns IdP values into the gateway's roles (exact,
// case-sensitive), `allowed` keeps only the roles that may use the API at all, and `actions`
// lists what each role may do (orders.read, orders.list, broker.read for both; DevOps alone
// also orders.lookup_partner, the lookup of a partner's orders by its clear id).
//
// Entra replaces `groups` with an overage marker (`_claim_names.groups`) past 200 groups; such
// a token is refused with a hint to use app roles (a Graph lookup is out of scope).
//
// Thread-safety: immutable after Create(); Map() and Allows() may be called from any thread.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace ordertrace::auth {

struct RoleOptions {
  // JSON Pointers; empty: DefaultRoleClaims(client).
  std::vector<std::string> claims;
  // Keycloak client whose resource_access roles the defaults read ("" leaves it out).
  std::string client;
  // Gateway role -> IdP values that grant it.  Empty: each allowed role maps to itself.
  std::vector<std::pair<std::string, std::vector<std::string>>> map;
  std::vector<std::string> allowed = {"Developer", "DevOps"};
  // Gateway role -> actions.  Empty: DefaultActions().
  std::vector<std::pair<std::string, std::vector<std::string>>> actions;
};

std::vector<std::string> DefaultRoleClaims(std::string_view client);
std::vector<std::pair<std::string, std::vector<std::string>>> DefaultActions();

struct RoleGrant {
  std::vector<std::string> roles;  // gateway roles, allowed ones only, in `allowed` order
  bool groups_overage = false;     // Entra `_claim_names.groups` present
};

class RoleMapper {
 public:
  // Errors name the option ("claims: '/a~2' is not a JSON Pointer").
  static Result<RoleMapper> Create(RoleOptions options);

  RoleGrant Map(const nlohmann::json& claims) const;
  // Whether any of `roles` may do `action`.
  bool Allows(const std::vector<std::string>& roles, std::string_view action) const;
  const RoleOptions& options() const { return options_; }

 private:
  RoleOptions options_;
  std::vector<nlohmann::json::json_pointer> pointers_;
};

}  // namespace ordertrace::auth
