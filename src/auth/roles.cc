#include "auth/roles.h"

#include <algorithm>
#include <set>

namespace ordertrace::auth {
namespace {

using nlohmann::json;

// RFC 6901 escaping of one reference token.
std::string EscapePointerToken(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '~') {
      out += "~0";
    } else if (c == '/') {
      out += "~1";
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

std::vector<std::string> DefaultRoleClaims(std::string_view client) {
  std::vector<std::string> v = {"/realm_access/roles"};
  if (!client.empty()) v.push_back("/resource_access/" + EscapePointerToken(client) + "/roles");
  v.push_back("/roles");
  v.push_back("/groups");
  return v;
}

std::vector<std::pair<std::string, std::vector<std::string>>> DefaultActions() {
  // traces.read: Jaeger's traces, through the gateway's /jaeger/ and an order's read-back.
  const std::vector<std::string> read = {"orders.read", "orders.list", "broker.read",
                                         "traces.read"};
  // A clear partner id's lookup (GET /api/v1/orders?partner=) re-identifies a partner's orders:
  // DevOps only.
  std::vector<std::string> devops = read;
  devops.push_back("orders.lookup_partner");
  return {{"Developer", read}, {"DevOps", devops}};
}

Result<RoleMapper> RoleMapper::Create(RoleOptions options) {
  RoleMapper m;
  if (options.claims.empty()) options.claims = DefaultRoleClaims(options.client);
  for (const std::string& p : options.claims) {
    if (p.empty() || p[0] != '/') {
      return Status::InvalidArgument("claims: '" + p + "' is not a JSON Pointer (starts with /)");
    }
    try {
      m.pointers_.emplace_back(p);
    } catch (const json::exception&) {
      return Status::InvalidArgument("claims: '" + p + "' is not a JSON Pointer");
    }
  }
  if (options.map.empty()) {
    for (const std::string& r : options.allowed) options.map.push_back({r, {r}});
  }
  if (options.actions.empty()) options.actions = DefaultActions();
  m.options_ = std::move(options);
  return m;
}

RoleGrant RoleMapper::Map(const json& claims) const {
  RoleGrant grant;
  std::set<std::string, std::less<>> values;
  for (const json::json_pointer& p : pointers_) {
    const json* v = nullptr;
    try {
      if (!claims.contains(p)) continue;
      v = &claims.at(p);
    } catch (const json::exception&) {
      continue;  // a pointer through a non-container, or an array index that is not a number
    }
    if (v->is_string()) {
      values.insert(v->get<std::string>());
    } else if (v->is_array()) {
      for (const json& e : *v) {
        if (e.is_string()) values.insert(e.get<std::string>());
      }
    }
  }
  for (const std::string& role : options_.allowed) {
    for (const auto& [gateway_role, idp_values] : options_.map) {
      if (gateway_role != role) continue;
      const bool granted = std::any_of(idp_values.begin(), idp_values.end(),
                                       [&](const std::string& v) { return values.count(v) > 0; });
      if (granted && std::find(grant.roles.begin(), grant.roles.end(), role) == grant.roles.end()) {
        grant.roles.push_back(role);
      }
    }
  }
  auto names = claims.find("_claim_names");
  grant.groups_overage = names != claims.end() && names->is_object() && names->contains("groups");
  return grant;
}

bool RoleMapper::Allows(const std::vector<std::string>& roles, std::string_view action) const {
  for (const std::string& role : roles) {
    for (const auto& [r, actions] : options_.actions) {
      if (r != role) continue;
      if (std::find(actions.begin(), actions.end(), action) != actions.end()) return true;
    }
  }
  return false;
}

}  // namespace ordertrace::auth
