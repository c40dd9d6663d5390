// A small HTTP/1.1 server on Boost.Beast: exact-path routes, keep-alive, a body limit (413),
// gzip request bodies decoded within the same limit, and a graceful shutdown that finishes
// in-flight requests; HTTPS when given a TlsServerContext (net/tls.h), whose certificate can be
// replaced while running (SetTls, for new connections); an allowlist of client networks checked
// at accept and X-Forwarded-For believed from trusted proxies only.  Used by the OTLP/HTTP
// receiver and by the API/health/metrics listener.
//
// Thread-safety: Route(), OnReject() and Guard() before Start(); handlers run concurrently on
// the server's threads and must be thread-safe.  SetTls() may be called from any thread.
// Shutdown() may be called from any thread, once.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"
#include "net/cidr.h"
#include "net/tls.h"

namespace ordertrace::net {

struct HttpRequest {
  std::string method;                                        // "GET", "POST", ...
  std::string path;                                          // target without the query string
  std::string query;                                         // after '?', undecoded
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::string body;           // already gunzipped when Content-Encoding was gzip
  std::string peer;           // "ip:port"
  size_t received_bytes = 0;  // body bytes as received, before Content-Encoding decoding
  // The verified client certificate (mTLS); verified == false without one.
  TlsPeer tls_peer;
  // The client address a trusted proxy (HttpServerOptions::trusted_proxies) named in
  // X-Forwarded-For (the right-most hop that is not a trusted proxy); "" when the peer is not a
  // trusted proxy or sent none.  Never taken from an untrusted peer.
  std::string forwarded_for;

  // Case-insensitive header lookup; "" when absent.
  std::string_view Header(std::string_view lower_name) const;
};

// One pull from a streamed response body (HttpResponse::body_source).
struct BodyChunk {
  enum class Kind {
    kData,   // `data` is the next piece (empty: nothing yet, pull again)
    kEnd,    // the body is complete
    kError,  // the body cannot be completed: the connection closes, the answer truncated
  };
  Kind kind = Kind::kEnd;
  std::string data;
};

// Produces a streamed body piece by piece.  Pulled on the connection's server thread, one pull
// at a time, after the headers went out; a pull may block (it holds that thread meanwhile).
// Destroying the function releases the source: after the end (before its last bytes are
// written), after an error, when the client went away or its write timed out, unpulled for a
// HEAD, 1xx, 204 or 304, and at shutdown.
using BodySource = std::function<BodyChunk()>;

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";  // "": no Content-Type (a 304)
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // A streamed body instead of `body` (then ignored).  The headers go out first, then each
  // piece as it is pulled, each write within HttpServerOptions::read_timeout (a client that
  // stops reading is closed, and the source released).  Framing: Content-Length when
  // `content_length` is set (the pieces must add up to exactly that), else chunked (HTTP/1.1)
  // or the end of the connection (HTTP/1.0).  After a kError or a length mismatch the status
  // cannot change any more: the connection closes without the terminating chunk, so the client
  // sees a truncated answer (a chunked body without its last chunk, or fewer bytes than the
  // length), never a complete-looking one.  A complete streamed answer keeps the connection
  // alive.  A HEAD, 1xx, 204 or 304 answer goes without a body and the source is never pulled
  // (a HEAD carries `content_length` when set).
  BodySource body_source;
  std::optional<uint64_t> content_length;  // with body_source only
};

// A connection or request refused by the allowlist (HttpServerOptions::allow).
struct RefusedPeer {
  std::string ip;  // the TCP peer
  uint16_t port = 0;
  std::string forwarded_for;  // the refused client a trusted proxy named; "" at accept
};

using HttpHandler = std::function<void(HttpRequest& req, HttpResponse& res)>;

// Called for a request to a hooked path that the server answers itself before any handler
// runs: 413 (body, or decoded body, over the limit), 415 (unknown Content-Encoding) or 400
// (corrupt gzip/deflate body).  `req` carries the method, path, headers and received_bytes;
// its body is empty.  `res` arrives filled in (status and a text reason); the hook may count
// the request and rewrite the body and content type, e.g. into the protocol's error format.
using HttpRejectHook = std::function<void(const HttpRequest& req, HttpResponse& res)>;

// Runs before a hooked path's body is decoded (Content-Encoding) and before its handler: returns
// false after filling `res` to answer the request without either (an authentication check that
// must not cost the server a gunzip of an unauthenticated body).  `req.body` is as received.
using HttpGuard = std::function<bool(const HttpRequest& req, HttpResponse& res)>;

struct HttpServerOptions {
  std::string name = "http";  // for logs and metrics
  std::string host = "127.0.0.1";
  uint16_t port = 0;                 // 0: pick a free port (see HttpServer::port())
  size_t max_body_bytes = 16 << 20;  // after gzip decoding too; over it: 413
  int threads = 2;
  // Each thread runs an event loop of its own and serves the connections given to it at accept
  // (in turn): no hand-off between threads (a futex wake-up and a context switch) on the way
  // from the socket to the handler and back, but a handler that blocks holds up the other
  // connections of its thread.  For listeners whose handlers never block (OTLP/HTTP); off: every
  // thread serves every connection, one at a time per connection (a strand).
  bool loop_per_thread = false;
  std::chrono::milliseconds idle_timeout{60000};  // keep-alive connections idle this long close
  std::chrono::milliseconds read_timeout{30000};  // a request must arrive in full within this
  // HTTPS when set (null: plain HTTP).  A connection's TLS handshake must finish within
  // handshake_timeout.
  std::shared_ptr<const TlsServerContext> tls;
  std::chrono::milliseconds handshake_timeout{10000};
  // With tls: every response carries Strict-Transport-Security: max-age=31536000.
  bool hsts = false;
  // Every response carries Content-Security-Policy: default-src 'self'; frame-ancestors 'none',
  // X-Content-Type-Options: nosniff, Referrer-Policy: no-referrer and Cache-Control: no-store
  // (the API listener: order ids must not leak through a Referer or a shared cache, and no page
  // may frame it).  A header the handler set itself is kept.
  bool security_headers = false;
  // The client networks allowed (listen.allow.<name>); null or empty: every peer.  A peer
  // outside them is closed right after accept, before any TLS handshake.  When a trusted proxy
  // forwards (X-Forwarded-For), the client it names must be allowed too, else the request gets
  // 403 and the connection closes; an unreadable X-Forwarded-For from a trusted proxy is refused
  // the same way.  Each refusal is reported to on_refused (on a server thread; keep it short).
  std::shared_ptr<const CidrSet> allow;
  // Peers whose X-Forwarded-For is believed (listen.trusted_proxies); null or empty: none.
  std::shared_ptr<const CidrSet> trusted_proxies;
  std::function<void(const RefusedPeer&)> on_refused;
};

class HttpServer {
 public:
  explicit HttpServer(HttpServerOptions options);
  ~HttpServer();  // calls Shutdown() if still running

  // Registers a handler for method + exact path, or for every path under a prefix when `path`
  // ends in '*' ("/api/v1/orders/*"; the longest matching prefix wins, an exact path wins over
  // any prefix).  A known path with another method gets 405, an unknown path 404.  A "HEAD"
  // route's handler fills the response as for GET; the server sends its headers and
  // Content-Length without the body (any answer to a HEAD goes without its body).
  void Route(std::string method, std::string path, HttpHandler handler);
  // Registers a hook for requests to `path` refused before their handler (see HttpRejectHook).
  // Before Start(), like Route().
  void OnReject(std::string path, HttpRejectHook hook);
  // Registers a guard for requests to `path` (see HttpGuard).  Before Start(), like Route().
  void Guard(std::string path, HttpGuard guard);

  // Binds and starts serving; returns InvalidArgument / Unavailable with the reason when the
  // address cannot be bound.
  Status Start();
  uint16_t port() const;  // the bound port, after Start()

  // Replaces the TLS context for connections accepted from now on (a certificate reload);
  // connections already open keep theirs.  InvalidArgument when the server was not started
  // with TLS or `tls` is null.
  Status SetTls(std::shared_ptr<const TlsServerContext> tls);

  // Stops accepting, lets requests in progress finish (up to `drain`), closes idle
  // keep-alive connections, joins the threads.  Not from a handler (it joins their threads).
  void Shutdown(std::chrono::milliseconds drain = std::chrono::milliseconds(5000));

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ordertrace::net
