#include "jaeger/query_proxy.h"

#include <algorithm>
#include <array>
#include <charconv>

#include "common/log.h"
#include "common/url.h"
#include "jaeger/query_endpoint.h"

namespace ordertrace::jaeger {
namespace {

constexpr std::string_view kPrefix = "/jaeger";

char ToLower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (ToLower(a[i]) != ToLower(b[i])) return false;
  }
  return true;
}

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

// Cut to `max` bytes at a UTF-8 character boundary, "…" marking the cut.
std::string Bounded(std::string_view s, size_t max = QueryProxy::kMaxAuditValueBytes) {
  if (s.size() <= max) return std::string(s);
  size_t n = max;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return std::string(s.substr(0, n)) + "\xE2\x80\xA6";
}

// The request headers Jaeger may see: content negotiation and cache validators.  Nothing that
// identifies the caller to Jaeger (Cookie, Authorization) and nothing hop-by-hop.
constexpr std::array<std::string_view, 5> kRequestHeaders = {
    "Accept", "Accept-Encoding", "Accept-Language", "If-None-Match", "If-Modified-Since"};

// Jaeger's response headers passed back (Content-Type travels as HttpResponse::content_type;
// Content-Length and Transfer-Encoding are the listener's own).
constexpr std::array<std::string_view, 4> kResponseHeaders = {"Content-Encoding", "ETag",
                                                              "Last-Modified", "Vary"};

// The search parameters the audit keeps, v1 and v3 names, and the field each becomes.
struct SearchParam {
  std::string_view name;
  std::string_view field;
};
constexpr std::array<SearchParam, 9> kSearchParams = {{
    {"service", "service"},
    {"query.service_name", "service"},
    {"operation", "operation"},
    {"query.operation_name", "operation"},
    {"tags", "tags"},
    {"query.attributes", "tags"},
    {"limit", "limit"},
    {"query.num_traces", "limit"},
    {"traceID", "trace_ids"},
}};

// The one path segment after `prefix` ("/jaeger/api/traces/" + "abc"), or "" when the path is
// not that shape.
std::string_view SegmentAfter(std::string_view path, std::string_view prefix) {
  if (!StartsWith(path, prefix)) return {};
  std::string_view rest = path.substr(prefix.size());
  if (rest.empty() || rest.find('/') != std::string_view::npos) return {};
  return rest;
}

std::string Decoded(std::string_view raw) {
  std::string out;
  if (!url::PercentDecode(raw, &out)) return std::string(raw);
  return out;
}

}  // namespace

Result<std::unique_ptr<QueryProxy>> QueryProxy::Create(QueryProxyOptions options,
                                                       metrics::Registry* registry) {
  QueryEndpoint endpoint;  // unconfigured: /jaeger/ answers 404 saying so
  if (!options.query_url.empty()) {
    auto resolved = ResolveQueryEndpoint(options.query_url, options.ca_file);
    if (!resolved.ok()) return resolved.status();
    endpoint = std::move(resolved).value();
  }
  return std::unique_ptr<QueryProxy>(new QueryProxy(std::move(options), std::move(endpoint.url),
                                                    std::move(endpoint.base_path),
                                                    std::move(endpoint.tls), registry));
}

QueryProxy::QueryProxy(QueryProxyOptions options, net::Url url, std::string base_path,
                       std::shared_ptr<const net::TlsClientContext> tls,
                       metrics::Registry* registry)
    : options_(std::move(options)),
      configured_(!options_.query_url.empty()),
      url_(std::move(url)),
      base_path_(std::move(base_path)),
      tls_(std::move(tls)) {
  if (registry) {
    requests_ = &registry->AddCounter(
        "ordertrace_jaeger_proxy_requests_total",
        "Requests to /jaeger/ that reached the proxy (signed in, allowed), by result: ok (Jaeger "
        "answered 1xx-3xx), client_error (4xx), upstream_error (Jaeger unreachable or 5xx), "
        "timeout, too_large, busy (too many waiting for Jaeger).",
        {"result"});
    duration_ = &registry
                     ->AddHistogram("ordertrace_jaeger_proxy_request_duration_seconds",
                                    "Time to Jaeger's whole answer, per proxied request.")
                     .With({});
  }
}

QueryProxy::~QueryProxy() = default;

void QueryProxy::Count(const char* result) {
  if (requests_) requests_->With({result}).Inc();
}

Result<std::string> QueryProxy::UpstreamTarget(std::string_view base_path, std::string_view path,
                                               std::string_view query) {
  if (!StartsWith(path, kPrefix) || (path.size() > kPrefix.size() && path[kPrefix.size()] != '/')) {
    return Status::InvalidArgument("not a path under /jaeger");
  }
  const std::string_view rest = path.substr(kPrefix.size());  // "" or "/..."
  // No dot segment, written or escaped: Jaeger would resolve it to a path outside its base.
  std::string_view segments = rest;
  while (!segments.empty()) {
    segments.remove_prefix(1);  // the '/'
    const size_t slash = segments.find('/');
    const std::string segment = Decoded(segments.substr(0, slash));
    if (segment == "." || segment == "..") {
      return Status::InvalidArgument("a path with a '.' or '..' segment is not served");
    }
    segments = slash == std::string_view::npos ? std::string_view() : segments.substr(slash);
  }
  std::string target(base_path);
  while (!target.empty() && target.back() == '/') target.pop_back();
  target += rest;
  if (target.empty()) target = "/";
  if (!query.empty()) {
    target += '?';
    target += query;
  }
  return target;
}

net::HeaderList QueryProxy::UpstreamHeaders(const net::HttpRequest& req,
                                            const std::string& request_id) {
  net::HeaderList out;
  for (std::string_view name : kRequestHeaders) {
    for (const auto& [key, value] : req.headers) {
      if (EqualsIgnoreCase(key, name)) out.emplace_back(std::string(name), value);
    }
  }
  // The client as the gateway knows it: the address a trusted proxy named, else the peer's.
  std::string client = req.forwarded_for;
  if (client.empty()) {
    client = audit::SourceOf(req.peer, "").ip;
  }
  if (!client.empty()) out.emplace_back("X-Forwarded-For", client);
  if (!request_id.empty()) out.emplace_back("X-Request-Id", request_id);
  return out;
}

net::HeaderList QueryProxy::DownstreamHeaders(const net::HttpReply& reply, std::string_view path,
                                              std::string_view base_path) {
  net::HeaderList out;
  for (std::string_view name : kResponseHeaders) {
    for (const auto& [key, value] : reply.headers) {
      if (EqualsIgnoreCase(key, name)) out.emplace_back(std::string(name), value);
    }
  }
  // The API's answers keep the listener's Cache-Control: no-store (trace data stays out of
  // shared caches); the UI's assets may be cached as Jaeger says.
  if (!StartsWith(path, "/jaeger/api/")) {
    const std::string_view cache = reply.Header("Cache-Control");
    if (!cache.empty()) out.emplace_back("Cache-Control", std::string(cache));
  }
  // A redirect inside Jaeger's base path comes back under /jaeger; one elsewhere is dropped
  // (it would point at Jaeger's own address).
  const std::string_view location = reply.Header("Location");
  if (!location.empty()) {
    std::string base(base_path);
    while (!base.empty() && base.back() == '/') base.pop_back();
    std::string_view loc = location;
    const size_t scheme = loc.find("://");
    if (scheme != std::string_view::npos && scheme < loc.find('/')) {
      const size_t slash = loc.find('/', scheme + 3);
      loc = slash == std::string_view::npos ? std::string_view("/") : loc.substr(slash);
    }
    if (!loc.empty() && loc.front() != '/') {
      out.emplace_back("Location", std::string(location));  // relative: stays where it is
    } else if (StartsWith(loc, base) &&
               (loc.size() == base.size() || loc[base.size()] == '/' || loc[base.size()] == '?')) {
      out.emplace_back("Location", std::string(kPrefix) + std::string(loc.substr(base.size())));
    }
  }
  return out;
}

QueryProxy::Asked QueryProxy::Describe(std::string_view path, std::string_view query) {
  Asked asked;
  const std::string_view trace_patterns[][2] = {
      {"/jaeger/api/traces/", "/jaeger/api/traces/{id}"},
      {"/jaeger/api/v3/traces/", "/jaeger/api/v3/traces/{id}"},
      {"/jaeger/trace/", "/jaeger/trace/{id}"},
  };
  for (const auto& [prefix, route] : trace_patterns) {
    const std::string_view id = SegmentAfter(path, prefix);
    if (id.empty()) continue;
    asked.route = std::string(route);
    asked.resource.emplace_back("type", "trace");
    asked.resource.emplace_back("trace_id", Bounded(Decoded(id), 64));
    return asked;
  }
  if (path == "/jaeger/api/traces" || path == "/jaeger/api/v3/traces" || path == "/jaeger/search") {
    asked.route = std::string(path);
    asked.resource.emplace_back("type", "search");
    url::QueryParams params;
    std::string error;
    if (!url::ParseQuery(query, &params, &error)) {
      asked.resource.emplace_back("query", "unreadable: " + error);
      return asked;
    }
    for (const SearchParam& p : kSearchParams) {
      std::string joined;
      for (const auto& [name, value] : params.params) {
        if (name != p.name) continue;
        if (!joined.empty()) joined += ',';
        joined += value;
      }
      if (joined.empty()) continue;
      bool merged = false;
      for (auto& [field, value] : asked.resource) {
        if (field == p.field) {  // a v1 and a v3 name for the same field: keep both
          value = Bounded(value + "," + joined);
          merged = true;
        }
      }
      if (!merged) asked.resource.emplace_back(std::string(p.field), Bounded(joined));
    }
    return asked;
  }
  asked.route = std::string(kProxyRoute);
  asked.resource.emplace_back("path", Bounded(Decoded(path)));
  return asked;
}

std::unique_ptr<net::HttpConnection> QueryProxy::TakeConnection() {
  {
    MutexLock lock(mu_);
    if (!idle_.empty()) {
      auto c = std::move(idle_.back());
      idle_.pop_back();
      return c;
    }
  }
  return std::make_unique<net::HttpConnection>(url_, tls_, /*keep_alive=*/true);
}

void QueryProxy::ReturnConnection(std::unique_ptr<net::HttpConnection> c) {
  if (!c->connected()) return;
  MutexLock lock(mu_);
  if (idle_.size() < static_cast<size_t>(std::max(1, options_.max_concurrent))) {
    idle_.push_back(std::move(c));
  }
}

// One request's hold on Jaeger: its connection and its place among max_concurrent, from the
// request until Jaeger's answer is over (read to its end, failed, or dropped because the client
// went away or asked with HEAD); then counted once, timed, and the place released.  Used by one
// thread at a time: the handler, then the listener pulling the body on the connection's strand.
class QueryProxy::Upstream {
 public:
  Upstream(QueryProxy& proxy, std::unique_ptr<net::HttpConnection> connection,
           std::string request_id)
      : proxy_(proxy),
        connection_(std::move(connection)),
        request_id_(std::move(request_id)),
        began_(std::chrono::steady_clock::now()) {}
  ~Upstream() { End(result_, /*keep_connection=*/false); }
  Upstream(const Upstream&) = delete;
  Upstream& operator=(const Upstream&) = delete;

  net::HttpConnection& connection() { return *connection_; }
  // Jaeger answered: the result counted unless the body then fails.
  void Answered(const char* result) { result_ = result; }

  // Over: the connection back to the pool (Jaeger's answer read whole) or closed.
  void End(const char* result, bool keep_connection) {
    if (ended_) return;
    ended_ = true;
    if (keep_connection) {
      proxy_.ReturnConnection(std::move(connection_));
    } else {
      connection_->Close();
    }
    connection_.reset();
    proxy_.Count(result);
    if (proxy_.duration_) {
      proxy_.duration_->Observe(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - began_).count());
    }
    proxy_.in_flight_.fetch_sub(1);
  }

  // The listener's pull: the next piece of Jaeger's body.  Ends the hold with the last piece,
  // before the listener writes it.
  net::BodyChunk Next() {
    net::BodyChunk out;
    if (ended_) return out;  // kEnd
    net::HttpBodyPiece piece = connection_->ReadBody(kChunkBytes);
    if (!piece.ok()) {
      const net::HttpFailure& f = *piece.failure;
      const char* result = f.kind == net::HttpFailure::Kind::kTimeout    ? "timeout"
                           : f.kind == net::HttpFailure::Kind::kTooLarge ? "too_large"
                                                                         : "upstream_error";
      log::Warn("Jaeger query proxy: Jaeger's answer broke off; the client gets it truncated",
                {{"request_id", request_id_},
                 {"jaeger", proxy_.url_.Authority()},
                 {"error", f.kind == net::HttpFailure::Kind::kTimeout
                               ? "not read in full within " +
                                     std::to_string(proxy_.options_.timeout.count()) +
                                     "ms (jaeger.timeout)"
                               : f.Describe()}});
      End(result, false);
      out.kind = net::BodyChunk::Kind::kError;
      return out;
    }
    if (piece.end) End(result_, true);
    if (!piece.end || !piece.data.empty()) {
      out.kind = net::BodyChunk::Kind::kData;
      out.data = std::move(piece.data);
    }
    return out;
  }

 private:
  QueryProxy& proxy_;
  std::unique_ptr<net::HttpConnection> connection_;
  const std::string request_id_;
  const std::chrono::steady_clock::time_point began_;
  const char* result_ = "upstream_error";
  bool ended_ = false;
};

void QueryProxy::Handle(net::HttpRequest& req, net::HttpResponse& res, audit::AuditEvent& event) {
  auto text = [&res](int status, std::string body) {
    res.status = status;
    res.content_type = "text/plain; charset=utf-8";
    res.body = std::move(body) + "\n";
  };
  if (!configured_) {
    text(404, "the Jaeger query service is not configured (jaeger.query_url)");
    Count("client_error");
    return;
  }
  auto target = UpstreamTarget(base_path_, req.path, req.query);
  if (!target.ok()) {
    text(400, target.status().message());
    Count("client_error");
    return;
  }
  const int limit = std::max(1, options_.max_concurrent);
  if (in_flight_.fetch_add(1) >= limit) {
    in_flight_.fetch_sub(1);
    text(503, "too many requests are waiting for Jaeger (" + std::to_string(limit) +
                  "); try again shortly");
    res.headers.emplace_back("Retry-After", "1");
    event.reason = "jaeger_busy";
    Count("busy");
    return;
  }
  // From here the request holds its place until Jaeger's answer is over (Upstream).
  auto upstream = std::make_shared<Upstream>(*this, TakeConnection(), event.request_id);
  // HEAD goes upstream as GET: the listener answers HEAD with the GET's headers and length
  // and never pulls the body (the connection to Jaeger is then closed).
  net::HttpOutcome out =
      upstream->connection().SendStreaming("GET", *target, UpstreamHeaders(req, event.request_id),
                                           options_.timeout, options_.max_response_bytes);
  if (!out.ok()) {
    const net::HttpFailure& f = *out.failure;
    const char* result = "upstream_error";
    switch (f.kind) {
      case net::HttpFailure::Kind::kTimeout:
        text(504, "Jaeger did not answer within " + std::to_string(options_.timeout.count()) +
                      "ms (jaeger.timeout)");
        event.reason = "jaeger_timeout";
        result = "timeout";
        break;
      case net::HttpFailure::Kind::kTooLarge:
        text(502, "Jaeger's answer is larger than " + std::to_string(options_.max_response_bytes) +
                      " bytes (jaeger.max_response_bytes)");
        event.reason = "jaeger_too_large";
        result = "too_large";
        break;
      default:
        text(502, "Jaeger is not reachable: " + f.Describe());
        event.reason = "jaeger_unreachable";
        break;
    }
    log::Warn(
        "Jaeger query proxy: no answer from Jaeger",
        {{"request_id", event.request_id}, {"jaeger", url_.Authority()}, {"error", f.Describe()}});
    upstream->End(result, /*keep_connection=*/false);
    return;
  }
  const net::HttpReply& reply = out.reply;
  res.status = reply.status;
  // As Jaeger sent it, none included: a 304 with a Content-Type would re-type the cached file.
  res.content_type = reply.content_type;
  res.headers = DownstreamHeaders(reply, req.path, base_path_);
  const char* result = reply.status < 400   ? "ok"
                       : reply.status < 500 ? "client_error"
                                            : "upstream_error";
  upstream->Answered(result);
  if (!upstream->connection().body_pending()) {  // a 304, an empty body
    upstream->End(result, /*keep_connection=*/true);
    return;
  }
  // Jaeger's length when it sent one (the bytes pass unchanged, Content-Encoding included),
  // else the listener sends the body chunked.
  const std::string_view length = reply.Header("Content-Length");
  uint64_t n = 0;
  if (!length.empty() && std::from_chars(length.data(), length.data() + length.size(), n).ptr ==
                             length.data() + length.size()) {
    res.content_length = n;
  }
  res.body_source = [upstream] { return upstream->Next(); };
}

void RegisterQueryProxy(net::HttpServer& server, QueryProxy& proxy, const GuardWrapper& wrap) {
  ProxyDescriber describe = [](const net::HttpRequest& req, audit::AuditEvent& event) {
    QueryProxy::Asked asked = QueryProxy::Describe(req.path, req.query);
    event.http.route = std::move(asked.route);
    for (auto& kv : asked.resource) event.resource.push_back(std::move(kv));
  };
  ProxyHandler handle = [&proxy](net::HttpRequest& req, net::HttpResponse& res,
                                 audit::AuditEvent& event) { proxy.Handle(req, res, event); };
  for (const char* path : {"/jaeger", "/jaeger/*"}) {
    for (const char* method : {"GET", "HEAD"}) {
      server.Route(method, path, wrap(std::string(kProxyRoute), describe, handle));
    }
  }
}

}  // namespace ordertrace::jaeger
