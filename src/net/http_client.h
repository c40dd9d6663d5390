// The gateway's one HTTP/1.1 client, on Boost.Beast: GET and POST over http:// and https://
// (OpenSSL, the server verified by default against the system's CAs or a CA file, with SNI),
// request headers, a body limit for the answer, and a timeout for the whole request
// (resolve, connect, TLS handshake, write, read).
//
// Two shapes:
//   - HttpGet / HttpPost: one request on its own connection, errors as a Status (the CLI's
//     API calls, the broker monitor's management API, the alert sinks, tests);
//   - HttpConnection: a keep-alive connection reused across requests, with failures kept
//     apart by kind (the forward exporter, `ordertrace send`: batches posted back to back),
//     whose answer may also be read piece by piece (SendStreaming, ReadBody: the Jaeger proxy).
//
// Every call runs its socket operations on a private io_context, asynchronously, so that the
// deadline bounds them all: a peer that accepts and never answers cannot hang the caller.
//
// Thread-safety: the free functions may be called from any thread (each call has its own
// connection); an HttpConnection is used by one thread at a time.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"
#include "net/tls.h"
#include "net/url.h"

namespace ordertrace::net {

using HeaderList = std::vector<std::pair<std::string, std::string>>;

struct HttpReply {
  int status = 0;
  std::string content_type;
  std::string body;
  HeaderList headers;  // as received (names as the server wrote them)

  // Case-insensitive header lookup; "" when absent.
  std::string_view Header(std::string_view name) const;
};

// Why a request got no answer.
struct HttpFailure {
  enum class Kind {
    kConnect,   // resolve, refused, reset, closed: the network or the peer went away
    kTimeout,   // the deadline passed
    kTls,       // handshake or certificate verification failed, or a TLS alert later
    kProtocol,  // the peer's answer is not HTTP/1.x
    kTooLarge,  // the answer's body is over the limit
    kInternal,  // the client's own failure
  };
  enum class Step { kResolve, kConnect, kHandshake, kWrite, kRead };
  Kind kind = Kind::kInternal;
  Step step = Step::kConnect;
  std::string detail;                    // the system's or OpenSSL's words: "Connection refused",
                                         // "certificate verify failed (hostname mismatch)"
  std::chrono::milliseconds timeout{0};  // the request's timeout, for kTimeout
  uint64_t max_body_bytes = 0;           // the limit, for kTooLarge

  // "connect: Connection refused", "read timed out after 300ms", "response body larger than
  // 1048576 bytes".
  std::string Describe() const;
};

const char* StepName(HttpFailure::Step step);  // "resolve", "connect", "handshake", ...

struct HttpOptions {
  // For the whole request: resolve, connect, handshake, write, read.
  std::chrono::milliseconds timeout{10000};
  HeaderList headers;  // e.g. {"Authorization", "Basic ..."}; replace defaults of the same name
  uint64_t max_body_bytes = uint64_t{64} << 20;  // of the answer; a larger one is kTooLarge
  // https only; nullptr: TlsClientContext::Default() (the system's CAs, verification on).
  std::shared_ptr<const TlsClientContext> tls;
};

// One request or the reason it got no answer.
struct HttpOutcome {
  bool ok() const { return !failure.has_value(); }
  HttpReply reply;  // any status is a reply
  std::optional<HttpFailure> failure;
};

// The next piece of an answer read with HttpConnection::SendStreaming / ReadBody.
struct HttpBodyPiece {
  bool ok() const { return !failure.has_value(); }
  std::string data;                    // the bytes read (may be empty with `end`)
  bool end = false;                    // the body is complete; `data`, if any, is its last piece
  std::optional<HttpFailure> failure;  // the rest could not be read; the connection is closed
};

class HttpConnection {
 public:
  // `url` gives the peer (scheme, host, port); each Send names its own target.  With
  // `keep_alive` the connection stays open between requests while the peer allows it.
  explicit HttpConnection(Url url, std::shared_ptr<const TlsClientContext> tls = nullptr,
                          bool keep_alive = true);
  ~HttpConnection();
  HttpConnection(const HttpConnection&) = delete;
  HttpConnection& operator=(const HttpConnection&) = delete;

  // Sends `method` ("GET", "HEAD", "POST") for `target` with `body` (not copied; Content-Length is
  // set for a non-empty body or a POST) and the Host header, plus `headers`.  Writes and reads
  // at once: a peer may answer (413, 401) before it has read the whole request.  A reused
  // connection that the peer had closed before answering is reconnected once, within the
  // same deadline.
  HttpOutcome Send(std::string_view method, std::string_view target, std::string_view body,
                   const HeaderList& headers, std::chrono::milliseconds timeout,
                   uint64_t max_body_bytes);

  // Like Send without a request body, but returns as soon as the answer's status and headers
  // are in (reply.body stays empty); the body is then read piece by piece with ReadBody, all
  // within the same `timeout` (one deadline for the whole request).  A Content-Length over
  // `max_body_bytes` is kTooLarge here, before any of the body is read; a body without one is
  // counted as it is read.
  HttpOutcome SendStreaming(std::string_view method, std::string_view target,
                            const HeaderList& headers, std::chrono::milliseconds timeout,
                            uint64_t max_body_bytes);
  // After a successful SendStreaming: true while some of the body remains to be read (false
  // for an answer without a body: a HEAD's, a 204, a 304, Content-Length: 0).
  bool body_pending() const;
  // The next piece of the streamed answer's body: at most `max_bytes`, as soon as any arrived.
  // At the end (end == true) the connection stays open for the next request when both sides
  // allow it.  A failure (kTimeout: the request's deadline passed; kTooLarge: more than its
  // max_body_bytes; kConnect, kTls, kProtocol: the peer broke off) closes the connection.
  // Memory: the piece plus Beast's read buffer, whatever the size of the body.  A Send,
  // SendStreaming or Close before the end closes the connection (the rest is not read).
  HttpBodyPiece ReadBody(size_t max_bytes);

  // Closes the connection (the next Send reconnects).
  void Close();
  bool connected() const;
  const Url& url() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// GET `target` ("/api/v1/orders?stuck=true") from the origin of `base_url`
// ("http://127.0.0.1:8080"; a path in it is ignored).  Errors: a bad URL (InvalidArgument), or
// Unavailable "GET <url>: <HttpFailure::Describe()>"; any HTTP status is a reply.
Result<HttpReply> HttpGet(std::string_view base_url, std::string_view target,
                          const HttpOptions& options);
Result<HttpReply> HttpGet(std::string_view base_url, std::string_view target,
                          std::chrono::milliseconds timeout = std::chrono::milliseconds(10000));
// The same against 127.0.0.1:`port` (tests).
Result<HttpReply> HttpGet(uint16_t port, std::string_view target);

// POSTs `body` to `url` (http(s)://HOST[:PORT][/path][?query]).  Errors as HttpGet's.
Result<HttpReply> HttpPost(std::string_view url, std::string_view body, const HttpOptions& options);

// "Basic " + base64(user ":" password), the Authorization header of HTTP Basic auth (RFC 7617).
std::string BasicAuthorization(std::string_view user, std::string_view password);

}  // namespace ordertrace::net
