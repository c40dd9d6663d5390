#include "api/api_guard.h"

#include <openssl/rand.h>

#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "common/log.h"

namespace ordertrace::api {
namespace {

constexpr size_t kMaxUserAgent = 256;

const char* ResultName(const AuthResult& r) {
  if (r.allowed()) return "allowed";
  switch (r.status) {
    case 400:
      return "invalid_request";
    case 401:
      return r.error.empty() ? "no_token" : "invalid_token";
    case 403:
      return "forbidden";
    default:
      return "unavailable";
  }
}

void Refuse(const AuthResult& r, std::string_view action, net::HttpResponse& res) {
  using nlohmann::json;
  res.status = r.status;
  res.content_type = "application/json";
  res.headers.emplace_back("Cache-Control", "no-store");
  std::string message;
  switch (r.status) {
    case 400:
      message = "invalid_request: send one Authorization header";
      break;
    case 401:
      message = r.error.empty() ? "authentication required: send Authorization: Bearer <token>"
                                : "invalid_token";
      break;
    case 403:
      message = "forbidden: your roles do not allow " + std::string(action);
      break;
    default:
      message = "sign-in is not available yet: the identity provider's keys could not be fetched";
      res.headers.emplace_back("Retry-After", "5");
      break;
  }
  std::string challenge = "Bearer realm=\"ordertrace\"";
  if (!r.error.empty()) challenge += ", error=\"" + r.error + "\"";
  if (r.status != 503) res.headers.emplace_back("WWW-Authenticate", challenge);
  res.body = json{{"error", message}, {"status", r.status}}.dump();
}

}  // namespace

AuthResult AuthResult::Allow(auth::Principal p) {
  AuthResult r;
  r.principal = std::move(p);
  return r;
}

AuthResult AuthResult::Deny(int status, std::string error, std::string reason, auth::Principal p) {
  AuthResult r;
  r.status = status;
  r.error = std::move(error);
  r.reason = std::move(reason);
  r.principal = std::move(p);
  return r;
}

AuthResult AllowAll::Authorize(const net::HttpRequest&, std::string_view) const {
  auth::Principal p;
  p.method = "anonymous";
  return AuthResult::Allow(std::move(p));
}

std::string NewRequestId() {
  unsigned char b[16];
  if (RAND_bytes(b, sizeof b) != 1) {
    // The CSPRNG failing is not a reason to refuse the request; the id need only be unique.
    static std::atomic<uint64_t> fallback{0};
    const uint64_t n =
        fallback.fetch_add(1) ^
        static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
    for (int i = 0; i < 16; ++i) b[i] = static_cast<unsigned char>(n >> ((i % 8) * 8));
  }
  b[6] = static_cast<unsigned char>((b[6] & 0x0F) | 0x40);  // version 4
  b[8] = static_cast<unsigned char>((b[8] & 0x3F) | 0x80);  // RFC 4122 variant
  char out[37];
  std::snprintf(out, sizeof out,
                "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
                b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
                b[15]);
  return out;
}

ApiGuard::ApiGuard(const Authorizer& auth, audit::AuditSink* audit, metrics::Registry* registry)
    : auth_(auth), audit_(audit) {
  if (registry) {
    auth_total_ = &registry->AddCounter("ordertrace_api_auth_total",
                                        "API requests by how the caller authenticated and the "
                                        "outcome of the check.",
                                        {"method", "result"});
  }
}

metrics::Counter& ApiGuard::Count(const std::string& method, const std::string& result) const {
  return auth_total_->With({method, result});
}

net::HttpHandler ApiGuard::Wrap(std::string route, std::string action,
                                GuardedHandler handler) const {
  return Wrap(std::move(route), std::move(action), nullptr, std::move(handler));
}

net::HttpHandler ApiGuard::Wrap(std::string route, std::string action, Describer describe,
                                GuardedHandler handler) const {
  return [this, route = std::move(route), action = std::move(action),
          describe = std::move(describe),
          handler = std::move(handler)](net::HttpRequest& req, net::HttpResponse& res) {
    const auto began = std::chrono::steady_clock::now();
    audit::AuditEvent event;
    event.event = "api_request";
    event.request_id = NewRequestId();
    event.source = audit::SourceOf(req.peer, req.forwarded_for);  // set only by a trusted proxy
    event.http.method = req.method;
    event.http.route = route;
    event.user_agent = std::string(req.Header("user-agent").substr(0, kMaxUserAgent));
    if (describe) describe(req, event);

    AuthResult decision = auth_.Authorize(req, action);
    event.actor = decision.principal;
    if (auth_total_) {
      const std::string method =
          decision.principal.method.empty() ? "none" : decision.principal.method;
      Count(method, ResultName(decision)).Inc();
    }
    if (decision.allowed()) {
      handler(req, res, event);
      // A handler's own refusal (Check()) stays "denied".
      if (event.outcome != "denied") event.outcome = res.status >= 500 ? "error" : "allowed";
    } else {
      Refuse(decision, action, res);
      event.outcome = decision.status == 503 ? "error" : "denied";
      event.reason = decision.reason;
      log::Debug("API request refused", {{"request_id", event.request_id},
                                         {"route", route},
                                         {"status", decision.status},
                                         {"reason", decision.reason}});
    }
    res.headers.emplace_back("X-Request-Id", event.request_id);
    event.http.status = res.status;
    event.http.latency_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - began).count();
    if (audit_) audit_->Record(event);
  };
}

bool ApiGuard::Check(const net::HttpRequest& req, std::string_view action, net::HttpResponse& res,
                     audit::AuditEvent& event) const {
  const AuthResult decision = auth_.Authorize(req, action);
  if (decision.allowed()) return true;
  res = net::HttpResponse{};
  Refuse(decision, action, res);
  event.outcome = decision.status == 503 ? "error" : "denied";
  event.reason = decision.reason;
  log::Debug("API request refused", {{"request_id", event.request_id},
                                     {"route", event.http.route},
                                     {"action", std::string(action)},
                                     {"status", decision.status},
                                     {"reason", decision.reason}});
  return false;
}

}  // namespace ordertrace::api
