// The access audit: one JSON line per API request (allowed or denied), sign-in, sign-in failure,
// logout, session expiry, refused connection and config reload, in its own file (0600, opened
// O_APPEND, reopened on SIGHUP so logrotate can move it).  docs/security.md lists the fields.
//
// Never in a line: a token, cookie, Authorization header, ID token, response body or cursor; the
// writer of an AuditEvent fills only the fields below, and every string is JSON-escaped.
//
// Thread-safety: Record() and Reopen() may be called from any thread.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "auth/principal.h"
#include "common/metrics.h"
#include "common/status.h"

namespace ordertrace::audit {

struct AuditEvent {
  // api_request | sign_in | sign_in_failed | logout | session_expired | connection_refused |
  // config_reload
  std::string event = "api_request";
  std::string outcome = "allowed";  // allowed | denied | error
  std::string reason;               // why denied or failed ("missing_role", "invalid_token", ...)
  std::string request_id;           // also sent as X-Request-Id (a UUID)
  auth::Principal actor;
  struct Source {
    std::string ip;
    uint16_t port = 0;
    std::string forwarded_for;  // only from a trusted proxy; "" otherwise
  } source;
  struct Http {
    std::string method;
    std::string route;  // the route pattern, "/api/v1/orders/{id}", never the raw target
    int status = 0;
    double latency_ms = 0;
  } http;
  // What was asked for: {"type","order"},{"id","A-1"} or list filters {"stuck","true"}, ...
  std::vector<std::pair<std::string, std::string>> resource;
  std::string user_agent;  // untrusted; truncated when written
};

// Where audit events go: the AuditLog file, or a recording fake in unit tests (the API's
// guard takes a nullable AuditSink*).
// The audit's source from a request's peer ("ip:port" or "[v6]:port", as net::HttpServer writes
// it) and the client a trusted proxy named ("" otherwise).  A port that is not one is 0.
AuditEvent::Source SourceOf(const std::string& peer, std::string forwarded_for);

class AuditSink {
 public:
  virtual ~AuditSink() = default;
  // Never throws and never blocks long: called on the API's request thread.
  virtual void Record(const AuditEvent& event) = 0;
};

class AuditLog : public AuditSink {
 public:
  // Opens (creates 0600) `path` for appending; an error names the file (audit.file).  An
  // existing file is set to 0600 too.  With `registry`, failed writes are counted in
  // ordertrace_audit_write_errors_total.
  static Result<std::unique_ptr<AuditLog>> Open(const std::string& path,
                                                metrics::Registry* registry = nullptr);
  ~AuditLog() override;
  // Appends one line with `ts` (RFC 3339 ms, UTC) and the event's fields.  A write failure is
  // counted and logged once per episode, never thrown.  An event without a request_id gets a
  // random UUID as its audit_id.  The http object is left out when the event has no method.
  void Record(const AuditEvent& event) override;
  // The line Record() writes for `event` at `now` (without the newline); for tests.
  static std::string Format(const AuditEvent& event, std::chrono::system_clock::time_point now);
  // The user agent is cut to this many bytes.
  static constexpr size_t kMaxUserAgentBytes = 256;
  // Reopens the file at its path (after logrotate moved it); the old descriptor is closed.
  Status Reopen();

 private:
  AuditLog() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ordertrace::audit
