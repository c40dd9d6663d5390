// The one gate in front of every journey and broker API route: it gives the request an id
// (a UUID v4, returned as X-Request-Id and written to the audit), asks the Authorizer who the
// caller is and whether they may do the route's action, answers refusals per RFC 6750, and
// records one audit event per request, allowed or denied.
//
//   no token                 401  WWW-Authenticate: Bearer realm="ordertrace"
//   bad token                401  WWW-Authenticate: Bearer realm="ordertrace",
//   error="invalid_token"
//                                 (why it was bad goes to the audit and the debug log only)
//   two Authorization        400  error="invalid_request"
//   valid, no allowed role   403  error="insufficient_scope"
//   no keys ever fetched     503  Retry-After (the IdP has not answered since the start)
//
// Metrics: ordertrace_api_auth_total{method,result} (method: anonymous|bearer|none; result:
// allowed|no_token|invalid_token|invalid_request|forbidden|unavailable).
//
// Thread-safety: Wrap() before the server starts; the handlers it returns run concurrently.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "audit/audit_log.h"
#include "auth/principal.h"
#include "common/metrics.h"
#include "net/http_server.h"

namespace ordertrace::api {

// What an Authorizer decided for one request.
struct AuthResult {
  bool allowed() const { return status == 200; }
  int status = 200;           // 200 allowed; 400, 401, 403 or 503 refused
  std::string error;          // RFC 6750 error code for WWW-Authenticate ("" with no token)
  std::string reason;         // for the audit and logs: "no_token", "invalid_token:expired", ...
  auth::Principal principal;  // as far as known (a 403 knows the user, a 401 only the method)

  static AuthResult Allow(auth::Principal p);
  static AuthResult Deny(int status, std::string error, std::string reason, auth::Principal p = {});
};

// Decides whether a request may do an action ("orders.read", "orders.list", "broker.read").
class Authorizer {
 public:
  virtual ~Authorizer() = default;
  virtual AuthResult Authorize(const net::HttpRequest& req, std::string_view action) const = 0;
};

// No sign-in: the loopback-only default when no OIDC issuer is configured (a non-loopback API
// listener refuses to start without one: config::CheckListenerExposure).
class AllowAll : public Authorizer {
 public:
  AuthResult Authorize(const net::HttpRequest&, std::string_view) const override;
};

// A handler behind the guard: it may add what was asked for to `event.resource` (an order id,
// list filters); the guard fills in everything else.
using GuardedHandler =
    std::function<void(net::HttpRequest& req, net::HttpResponse& res, audit::AuditEvent& event)>;

class ApiGuard {
 public:
  // `auth` must outlive the guard; `audit` and `registry` may be null (no audit, no metrics).
  explicit ApiGuard(const Authorizer& auth, audit::AuditSink* audit = nullptr,
                    metrics::Registry* registry = nullptr);

  // The handler for `route` (the pattern written to the audit, "/api/v1/orders/{id}") that
  // runs `handler` only when the caller may do `action`.  The guard must outlive the server.
  net::HttpHandler Wrap(std::string route, std::string action, GuardedHandler handler) const;
  // The same, with `describe` run first, before the authorization: it may set what was asked
  // for (`event.resource`, a finer `event.http.route`) so that a refused request's audit line
  // names it too (a trace id asked for by someone without traces.read).
  using Describer = std::function<void(const net::HttpRequest& req, audit::AuditEvent& event)>;
  net::HttpHandler Wrap(std::string route, std::string action, Describer describe,
                        GuardedHandler handler) const;

  // A second action inside a wrapped handler, for what only some requests of a route ask (a
  // clear partner id in GET /api/v1/orders needs orders.lookup_partner besides orders.list).
  // Allowed: true.  Refused: `res` is answered as Wrap() answers a refusal (403
  // insufficient_scope, ...), `event` is marked denied with the reason (Wrap keeps that), and
  // false.  ordertrace_api_auth_total counts each request once, at the route's own check.
  bool Check(const net::HttpRequest& req, std::string_view action, net::HttpResponse& res,
             audit::AuditEvent& event) const;

 private:
  metrics::Counter& Count(const std::string& method, const std::string& result) const;

  const Authorizer& auth_;
  audit::AuditSink* audit_;
  metrics::Family<metrics::Counter>* auth_total_ = nullptr;
};

// A random UUID v4 (RAND_bytes), for request ids.
std::string NewRequestId();

}  // namespace ordertrace::api
