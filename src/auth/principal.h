// Who is making a request to the gateway's API, as the API's Authorizer (api/journey_api.h)
// established it: the subject and issuer of a verified token or session, the gateway's own roles
// it maps to, and how the caller authenticated.  Carried into the access audit (audit/audit_log.h).
//
// Thread-safety: a value type.
#pragma once

#include <string>
#include <vector>

namespace ordertrace::auth {

struct Principal {
  // How the caller authenticated: "anonymous" (no sign-in configured, loopback listener),
  // "bearer" (an OIDC access token), "session" (browser sign-in), "mtls", "static_token".
  std::string method = "anonymous";
  std::string sub;        // the token's `sub`; "" for anonymous
  std::string iss;        // the token's `iss`
  std::string name;       // a display name when the IdP gives one (`name`, `preferred_username`)
  std::string client_id;  // the OAuth client the token was issued to (`client_id` / `azp`)
  // The gateway's roles (Developer, DevOps) the IdP's values mapped to; never the IdP's raw
  // group ids.
  std::vector<std::string> roles;
};

}  // namespace ordertrace::auth
