// The gateway's `/jaeger/`: a read-only reverse proxy to Jaeger's query service (its UI and HTTP
// API, run with `base_path: /jaeger` on loopback), so that traces are reached only through the
// gateway's sign-in.  Jaeger has no login of its own (docs/security.md).
//
// It runs behind the API guard (api/api_guard.h, action traces.read): the guard authenticates,
// authorizes and writes the one audit line per request; Describe() puts what was asked for (a
// trace id, a search's service, operation, tags and limit, or the path) on that line, before the
// authorization, so that a refused request's line says it too.
//
//   /jaeger/<rest>?<query>  ->  {query_url's path}/<rest>?<query>   (GET and HEAD only)
//
// Request headers: only a safe list goes upstream (Accept, Accept-Encoding, Accept-Language,
// If-None-Match, If-Modified-Since), plus X-Forwarded-For and the request id; never Cookie or
// Authorization (the session and the token stay in the gateway).  Response headers: Content-Type,
// Content-Encoding, ETag, Last-Modified, Vary, Location (mapped back under /jaeger/) and, outside
// /jaeger/api/, Cache-Control; never Set-Cookie nor a hop-by-hop header.
//
// Streamed: Jaeger's status and headers are passed on as soon as they arrive, then its body
// piece by piece (kChunkBytes at most) as it is read, through the listener's streamed response
// (HttpResponse::body_source), so a request holds at most one piece of the body, whatever its
// size.  The whole request keeps one deadline (timeout) and the body one limit
// (max_response_bytes): a Content-Length over it is a 502 before any byte; a body that passes
// it, or the timeout, half-way is cut off: the connection to the client closes without the end
// of the answer, so the client sees it truncated, never complete (counted too_large / timeout,
// logged; the audit line was written when the answer started).  At most max_concurrent
// requests use Jaeger at a time, from the request until Jaeger's answer has been read to its
// end or dropped (each pull holds one of the API's threads while it waits for Jaeger), the next
// get 503 with Retry-After, so a slow Jaeger cannot take /healthz and /metrics with it.
//
// Answers of its own: 502 "Jaeger is not reachable: <reason>" (refused, reset, TLS, not HTTP),
// 502 "Jaeger's answer is larger than N bytes" (by its Content-Length), 504 on the timeout
// before Jaeger's headers, 400 for a path with a dot segment, 404 "the Jaeger query service is
// not configured (jaeger.query_url)" without a URL.
//
// Metrics: ordertrace_jaeger_proxy_requests_total{result} (ok | client_error | upstream_error |
// timeout | too_large | busy) and ordertrace_jaeger_proxy_request_duration_seconds.
//
// Thread-safety: Handle() may be called from any thread, concurrently.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "audit/audit_log.h"
#include "common/metrics.h"
#include "common/status.h"
#include "common/thread_annotations.h"
#include "net/http_client.h"
#include "net/http_server.h"
#include "net/tls.h"
#include "net/url.h"

namespace ordertrace::jaeger {

struct QueryProxyOptions {
  // Jaeger's query service with its base path: http://127.0.0.1:16686/jaeger.  "": not
  // configured (every request gets 404 saying so).
  std::string query_url;
  std::chrono::milliseconds timeout{30000};  // per request: connect, write, read to the end
  uint64_t max_response_bytes = uint64_t{64} << 20;
  std::string ca_file;     // https query_url: the CA to verify Jaeger with; "": system CAs
  int max_concurrent = 4;  // requests using Jaeger at once (until its answer ends); then 503
};

// The route patterns written to the audit (event.http.route).
inline constexpr std::string_view kProxyRoute = "/jaeger/{path}";

class QueryProxy {
 public:
  // Checks the URL and reads the CA file; InvalidArgument naming jaeger.query_url or
  // jaeger.ca_file.  `registry` may be null (no metrics).
  static Result<std::unique_ptr<QueryProxy>> Create(QueryProxyOptions options,
                                                    metrics::Registry* registry);
  ~QueryProxy();

  // One request under /jaeger (method GET or HEAD; the server answers 405 to the others), in
  // the guard's handler shape: fills `res`, and `event.reason` when Jaeger gave no answer.
  void Handle(net::HttpRequest& req, net::HttpResponse& res, audit::AuditEvent& event);

  bool configured() const { return configured_; }

  // ---- the pieces, pure, for tests ----

  // The upstream target for a request path under /jaeger ("/jaeger", "/jaeger/api/traces/1")
  // and its raw query, given query_url's path ("/jaeger", "" for none).  InvalidArgument for a
  // path not under /jaeger or with a "." or ".." segment (also percent-encoded).
  static Result<std::string> UpstreamTarget(std::string_view base_path, std::string_view path,
                                            std::string_view query);
  // The request headers sent to Jaeger (names as sent).
  static net::HeaderList UpstreamHeaders(const net::HttpRequest& req,
                                         const std::string& request_id);
  // The response headers passed back from Jaeger's answer for the request path `path`
  // (Location mapped from `base_path` back to /jaeger).  Content-Type travels apart.
  static net::HeaderList DownstreamHeaders(const net::HttpReply& reply, std::string_view path,
                                           std::string_view base_path);
  // What the request asks for, for the audit: the route pattern and the resource pairs.
  struct Asked {
    std::string route;
    std::vector<std::pair<std::string, std::string>> resource;
  };
  static Asked Describe(std::string_view path, std::string_view query);
  // Values in the audit are cut to this many bytes (a "…" marks the cut).
  static constexpr size_t kMaxAuditValueBytes = 256;
  // The largest piece of Jaeger's body read and written at once.
  static constexpr size_t kChunkBytes = 64 * 1024;

 private:
  QueryProxy(QueryProxyOptions options, net::Url url, std::string base_path,
             std::shared_ptr<const net::TlsClientContext> tls, metrics::Registry* registry);

  class Upstream;

  // A keep-alive connection to Jaeger from the idle pool, or a new one.
  std::unique_ptr<net::HttpConnection> TakeConnection() EXCLUDES(mu_);
  void ReturnConnection(std::unique_ptr<net::HttpConnection> c) EXCLUDES(mu_);
  void Count(const char* result);

  const QueryProxyOptions options_;
  const bool configured_;
  const net::Url url_;
  const std::string base_path_;  // query_url's path without a trailing '/'
  const std::shared_ptr<const net::TlsClientContext> tls_;
  std::atomic<int> in_flight_{0};
  Mutex mu_;
  std::vector<std::unique_ptr<net::HttpConnection>> idle_ GUARDED_BY(mu_);
  metrics::Family<metrics::Counter>* requests_ = nullptr;
  metrics::Histogram* duration_ = nullptr;
};

// Registers GET and HEAD for /jaeger and /jaeger/* on the API listener, each through `wrap`
// (the gateway passes the guard: guard.Wrap(route, "traces.read", describe, handler), which
// runs `describe` first and `handler` only for an allowed caller).  `proxy` must outlive the
// server.
using ProxyHandler =
    std::function<void(net::HttpRequest& req, net::HttpResponse& res, audit::AuditEvent& event)>;
using ProxyDescriber = std::function<void(const net::HttpRequest& req, audit::AuditEvent& event)>;
using GuardWrapper = std::function<net::HttpHandler(std::string route, ProxyDescriber describe,
                                                    ProxyHandler handler)>;
void RegisterQueryProxy(net::HttpServer& server, QueryProxy& proxy, const GuardWrapper& wrap);

}  // namespace ordertrace::jaeger
