#include "net/http_server.h"

#include <time.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <charconv>
#include <climits>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

#include "common/gzip.h"
#include "common/log.h"
#include "net/tls.h"

namespace ordertrace::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

constexpr size_t kHeaderLimit = 64 * 1024;
constexpr size_t kReadChunk = 4096;
// After an error response the server half-closes and discards what the client still sends
// (up to this much, for up to kLingerTime), so that the client reads the response instead
// of a connection reset caused by closing with unread data.
constexpr size_t kMaxLingerBytes = 4 << 20;
constexpr std::chrono::milliseconds kLingerTime{1000};

// Timeouts are deadlines that each connection stores and one timer per server checks (see
// HttpServer::Impl::Sweep), not a timer armed per read and write: Asio arms the kernel's
// timerfd (timerfd_settime) whenever a new timer becomes the earliest, which with a timer per
// operation happened on nearly every request.  The check runs every timeout / kSweepsPerTimeout
// (the shortest timeout in force), between kMinSweep and kMaxSweep apart, so a timeout fires
// at most that much late.
constexpr int64_t kSweepsPerTimeout = 8;
constexpr std::chrono::milliseconds kMinSweep{10};
constexpr std::chrono::milliseconds kMaxSweep{250};
constexpr int64_t kNoDeadline = INT64_MAX;

// Milliseconds of CLOCK_MONOTONIC_COARSE: the kernel's last tick, which the vDSO serves without
// reading a clock source, hence never a system call, even on virtual machines whose clock
// source the vDSO cannot read.  A tick (1-10 ms) is fine-grained enough for timeouts.
int64_t CoarseNowMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

// Boost 1.74's beast::string_view is boost::string_view.
std::string_view SV(beast::string_view s) { return {s.data(), s.size()}; }

char ToLower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = ToLower(c);
  return out;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (ToLower(a[i]) != ToLower(b[i])) return false;
  }
  return true;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Applies the request's Content-Encoding to `body` in place.
Status DecodeContentEncoding(std::string_view header, size_t limit, std::string* body) {
  const std::string coding = Lower(Trim(header));
  if (coding.empty() || coding == "identity") return Status::Ok();
  if (body->empty()) return Status::Ok();  // nothing was compressed
  std::string out;
  if (coding == "gzip" || coding == "x-gzip") {
    Status s = Inflate(*body, InflateFormat::kGzip, limit, "gzip", &out);
    if (!s.ok()) return s;
  } else if (coding == "deflate") {
    // RFC 9110 "deflate" is the zlib format; some clients send raw deflate.
    Status s = Inflate(*body, InflateFormat::kZlib, limit, "deflate", &out);
    if (s.code() == StatusCode::kInvalidArgument)
      s = Inflate(*body, InflateFormat::kRawDeflate, limit, "deflate", &out);
    if (!s.ok()) return s;
  } else {
    return Status::Unsupported("unsupported Content-Encoding \"" + std::string(Trim(header)) +
                               "\": use gzip, deflate or identity");
  }
  *body = std::move(out);
  return Status::Ok();
}

int HttpStatusFor(const Status& s) {
  switch (s.code()) {
    case StatusCode::kTooLarge:
      return 413;
    case StatusCode::kUnsupported:
      return 415;
    case StatusCode::kInvalidArgument:
      return 400;
    default:
      return 500;
  }
}

}  // namespace

std::string_view HttpRequest::Header(std::string_view lower_name) const {
  for (const auto& [name, value] : headers) {
    if (EqualsIgnoreCase(name, lower_name)) return value;
  }
  return {};
}

struct HttpServer::Impl {
  // A connection, plain or TLS; the shutdown's view of it.
  class SessionBase {
   public:
    virtual ~SessionBase() = default;
    // Runs fn on the session's strand (from any thread).
    virtual void Post(void (SessionBase::*fn)()) = 0;
    // Shutdown: closes the connection if it is between requests.
    virtual void CloseIfIdle() = 0;
    // Shutdown after the drain deadline: closes whatever the connection was doing.
    virtual void ForceClose() = 0;
    // The sweep found the deadline passed: closes the connection if it still has.
    virtual void OnDeadline() = 0;

    // When the connection's current step (handshake, idle wait, request, write, linger) times
    // out, in CoarseNowMs() terms; kNoDeadline while a handler runs.  Written on the session's
    // strand, read by the sweep (under the server's `mu`, which keeps the session alive).
    std::atomic<int64_t> deadline_ms{kNoDeadline};
  };
  template <class Stream>
  class Session;

  explicit Impl(HttpServerOptions o)
      : options(std::move(o)),
        tls_enabled(options.tls != nullptr),
        tls(options.tls),
        sweep_interval(SweepInterval(options)),
        loops(MakeLoops(options)),
        acceptor(asio::make_strand(*loops[0])),
        accept_retry(acceptor.get_executor()),
        sweep_timer(acceptor.get_executor()) {}

  static std::chrono::milliseconds SweepInterval(const HttpServerOptions& o) {
    std::chrono::milliseconds shortest = std::min({o.idle_timeout, o.read_timeout, kLingerTime});
    if (o.tls) shortest = std::min(shortest, o.handshake_timeout);
    return std::clamp(shortest / kSweepsPerTimeout, kMinSweep, kMaxSweep);
  }

  // The event loops: one per thread with loop_per_thread, else one that every thread runs.
  static std::vector<std::unique_ptr<asio::io_context>> MakeLoops(const HttpServerOptions& o) {
    const int threads = std::max(1, o.threads);
    std::vector<std::unique_ptr<asio::io_context>> made;
    for (int i = 0; i < (o.loop_per_thread ? threads : 1); ++i) {
      // A concurrency hint of 1 lets Asio skip waking other threads for work it queues.
      made.push_back(std::make_unique<asio::io_context>(o.loop_per_thread ? 1 : threads));
    }
    return made;
  }
  // The executor of the next connection: the next loop in turn, or a strand of the shared one.
  asio::any_io_executor NextConnectionExecutor() {
    if (!options.loop_per_thread) return asio::make_strand(*loops[0]);
    return loops[next_loop++ % loops.size()]->get_executor();
  }

  void DoAccept();
  // Closes the connections whose deadline passed, then runs again after sweep_interval while
  // there are connections.  On the acceptor's strand.
  void Sweep();
  // Starts the sweep if it is not running.  With `mu` held.
  void ArmSweep();
  void OnAccept(beast::error_code ec, tcp::socket socket);
  // Runs fn on each live session's strand.
  void ForEachSession(void (SessionBase::*fn)());
  std::shared_ptr<const TlsServerContext> CurrentTls() {
    std::lock_guard<std::mutex> lock(tls_mu);
    return tls;
  }
  size_t SessionCount() {
    std::lock_guard<std::mutex> lock(mu);
    return sessions.size();
  }

  struct RouteEntry {
    std::vector<std::pair<std::string, HttpHandler>> methods;
    HttpRejectHook reject_hook;
    HttpGuard guard;
  };

  const HttpServerOptions options;
  std::unordered_map<std::string, RouteEntry> routes;  // written before Start() only
  std::vector<std::string> prefix_routes;              // patterns ending in '*', longest first

  // The route for a path: exact, else the longest prefix pattern.
  std::unordered_map<std::string, RouteEntry>::iterator FindRoute(const std::string& path) {
    auto it = routes.find(path);
    if (it != routes.end()) return it;
    for (const std::string& pattern : prefix_routes) {
      if (path.compare(0, pattern.size() - 1, pattern, 0, pattern.size() - 1) == 0) {
        return routes.find(pattern);
      }
    }
    return routes.end();
  }
  std::atomic<bool> stopping{false};
  std::atomic<uint16_t> port{0};
  const bool tls_enabled;

  std::mutex tls_mu;
  std::shared_ptr<const TlsServerContext> tls;  // guarded by tls_mu; for new connections

  std::mutex lifecycle_mu;
  bool started = false;
  bool shut_down = false;

  std::mutex mu;
  std::condition_variable sessions_changed;
  std::unordered_map<SessionBase*, std::weak_ptr<SessionBase>> sessions;  // guarded by mu
  bool sweep_armed = false;                                               // guarded by mu
  const std::chrono::milliseconds sweep_interval;

  // Declared after everything a session touches: sessions still queued in a loop are
  // destroyed with it, and their destructors use `mu` and `sessions`.  loops[0] also runs the
  // acceptor and the sweep.
  std::vector<std::unique_ptr<asio::io_context>> loops;
  // With loop_per_thread: keeps each loop running while it has no connection (until Shutdown).
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> loop_guards;
  size_t next_loop = 0;             // on the acceptor's strand
  tcp::acceptor acceptor;           // on its own strand
  asio::steady_timer accept_retry;  // same strand as the acceptor
  asio::steady_timer sweep_timer;   // same strand as the acceptor
  std::vector<std::thread> threads;
};

// One connection: reads requests one after another (keep-alive), runs the handler on the
// connection's strand, writes the response (a streamed one piece by piece, pulling each from
// its source on the strand).  All members are touched only on the strand (with
// loop_per_thread: the connection's loop, which one thread runs), except deadline_ms.
// Stream is beast::tcp_stream (plain) or beast::ssl_stream<beast::tcp_stream> (TLS, handshake
// first).
template <class Stream>
class HttpServer::Impl::Session : public HttpServer::Impl::SessionBase,
                                  public std::enable_shared_from_this<Session<Stream>> {
 public:
  static constexpr bool kTls = !std::is_same_v<Stream, beast::tcp_stream>;

  Session(tcp::socket socket, HttpServer::Impl* server, IpAddress ip) requires(!kTls)
      : server_(server), stream_(std::move(socket)), peer_ip_(ip) {}
  Session(tcp::socket socket, HttpServer::Impl* server, IpAddress ip,
          std::shared_ptr<const TlsServerContext> tls) requires(kTls)
      : server_(server),
        tls_(std::move(tls)),
        stream_(std::move(socket), tls_->context()),
        peer_ip_(ip) {}

  ~Session() {
    std::lock_guard<std::mutex> lock(server_->mu);
    server_->sessions.erase(this);
    server_->sessions_changed.notify_all();
  }

  // Called once, right after construction (not yet on the strand).
  void Start() {
    beast::error_code ec;
    auto ep = Socket().remote_endpoint(ec);
    if (!ec) {
      peer_ = ep.address().to_string() + ":" + std::to_string(ep.port());
      peer_port_ = ep.port();
    }
    Socket().set_option(tcp::no_delay(true), ec);
    {
      std::lock_guard<std::mutex> lock(server_->mu);
      server_->sessions.emplace(this, std::weak_ptr<SessionBase>(this->shared_from_this()));
      server_->ArmSweep();
    }
    if constexpr (kTls) {
      asio::dispatch(stream_.get_executor(), [self = this->shared_from_this()] {
        self->state_ = State::kIdle;  // a shutdown may close a connection still shaking hands
        self->SetDeadline(self->options().handshake_timeout);
        self->stream_.async_handshake(asio::ssl::stream_base::server,
                                      [self](beast::error_code ec) { self->OnHandshake(ec); });
      });
    } else {
      asio::dispatch(stream_.get_executor(),
                     [self = this->shared_from_this()] { self->WaitForRequest(); });
    }
  }

  void Post(void (SessionBase::*fn)()) override {
    asio::post(stream_.get_executor(), [self = this->shared_from_this(), fn] { ((*self).*fn)(); });
  }

  void CloseIfIdle() override {
    if (state_ == State::kIdle) CloseNow();
  }
  void ForceClose() override { CloseNow(); }
  void OnDeadline() override {
    if (state_ == State::kClosed || deadline_ms.load(std::memory_order_relaxed) > CoarseNowMs()) {
      return;  // the connection moved on to its next step meanwhile
    }
    log::Debug("http connection timed out", {{"server", options().name}, {"peer", peer_}});
    // Closing the socket ends the pending read or write with an error, whose handler sees
    // state_ kClosed and stops.
    CloseNow();
  }

 private:
  enum class State { kIdle, kBusy, kLingering, kClosed };

  const HttpServerOptions& options() const { return server_->options; }
  beast::tcp_stream& Lowest() { return beast::get_lowest_layer(stream_); }
  // The current step must finish within `timeout` (checked by the server's sweep).
  void SetDeadline(std::chrono::milliseconds timeout) {
    deadline_ms.store(CoarseNowMs() + timeout.count(), std::memory_order_relaxed);
  }
  void ClearDeadline() { deadline_ms.store(kNoDeadline, std::memory_order_relaxed); }
  tcp::socket& Socket() { return Lowest().socket(); }

  void OnHandshake(beast::error_code ec) {
    if (state_ == State::kClosed) return;
    if (ec) {  // timeout, a client below the minimum version, no or a refused client certificate
      log::Debug("TLS handshake failed",
                 {{"server", options().name}, {"peer", peer_}, {"error", ec.message()}});
      CloseNow();
      return;
    }
    if constexpr (kTls) tls_peer_ = PeerOf(stream_.native_handle());
    WaitForRequest();
  }

  void WaitForRequest() {
    if (state_ == State::kClosed) return;
    if (server_->stopping.load()) {
      CloseNow();
      return;
    }
    parser_.emplace();
    head_ = false;
    direct_body_ = false;
    parser_->body_limit(options().max_body_bytes);
    parser_->header_limit(kHeaderLimit);
    if (buffer_.size() > 0) {  // a pipelined request is already buffered
      state_ = State::kBusy;
      ReadHeader();
      return;
    }
    state_ = State::kIdle;
    SetDeadline(options().idle_timeout);
    stream_.async_read_some(buffer_.prepare(kReadChunk),
                            [self = this->shared_from_this()](beast::error_code ec, size_t n) {
                              self->OnFirstBytes(ec, n);
                            });
  }

  void OnFirstBytes(beast::error_code ec, size_t n) {
    if (state_ == State::kClosed) return;
    if (ec) {  // idle timeout, the client closed, or shutdown
      CloseNow();
      return;
    }
    buffer_.commit(n);
    state_ = State::kBusy;
    ReadHeader();
  }

  void ReadHeader() {
    // The whole request must arrive within read_timeout of its first bytes.
    SetDeadline(options().read_timeout);
    http::async_read_header(
        stream_, buffer_, *parser_,
        [self = this->shared_from_this()](beast::error_code ec, size_t) { self->OnHeader(ec); });
  }

  void OnHeader(beast::error_code ec) {
    if (state_ == State::kClosed) return;
    if (ec) {
      OnReadError(ec);
      return;
    }
    const auto& req = parser_->get();
    if (req.version() >= 11 && EqualsIgnoreCase(SV(req[http::field::expect]), "100-continue") &&
        !parser_->is_done()) {
      static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      asio::async_write(stream_, asio::buffer(kContinue.data(), kContinue.size()),
                        [self = this->shared_from_this()](beast::error_code ec, size_t) {
                          if (self->state_ == State::kClosed) return;
                          if (ec) {
                            self->CloseNow();
                            return;
                          }
                          self->ReadBody();
                        });
      return;
    }
    ReadBody();
  }

  void ReadBody() {
    if (parser_->is_done()) {  // no body (a GET): nothing to read
      OnBody({});
      return;
    }
    const auto length = parser_->content_length();
    if (!length || parser_->chunked() || *length > options().max_body_bytes) {
      // Chunked (or without a length): Beast's parser reads and decodes the chunks.
      http::async_read(
          stream_, buffer_, *parser_,
          [self = this->shared_from_this()](beast::error_code ec, size_t) { self->OnBody(ec); });
      return;
    }
    // A Content-Length body is read straight into the string the request hands on (and the
    // decoded batch keeps), in as few reads as the socket allows: each read asks for all that is
    // still missing, where Beast's parser reads 64 KiB at a time into buffer_ and copies.
    // buffer_ may already hold the start of the body (read with the header); nothing after the
    // body is read, so a pipelined request stays in the socket for the next round.
    const size_t want = static_cast<size_t>(*length);
    body_.resize(want);
    const size_t have = std::min(want, buffer_.size());
    asio::buffer_copy(asio::buffer(body_.data(), have), buffer_.data());
    buffer_.consume(have);
    direct_body_ = true;
    if (have == want) {
      OnBody({});
      return;
    }
    asio::async_read(
        stream_, asio::buffer(body_.data() + have, want - have),
        [self = this->shared_from_this()](beast::error_code ec, size_t) { self->OnBody(ec); });
  }

  void OnBody(beast::error_code ec) {
    if (state_ == State::kClosed) return;
    if (ec) {
      OnReadError(ec);
      return;
    }
    // No timeout while the handler runs: it is not the client's time.
    ClearDeadline();
    try {
      Handle();
    } catch (const std::exception& e) {
      // Handler exceptions are caught in RunRoute; this is the server's own failure (out of
      // memory, a header Beast refused): drop the connection, keep the server.
      log::Error("http request failed", {{"server", options().name}, {"error", e.what()}});
      CloseNow();
    }
  }

  void OnReadError(beast::error_code ec) {
    version_ = parser_ && parser_->is_header_done() && parser_->get().version() == 10 ? 10 : 11;
    if (ec == http::error::body_limit) {
      HttpRequest req = HeaderOnlyRequest();
      const std::string_view length = req.Header("content-length");
      std::from_chars(length.data(), length.data() + length.size(), req.received_bytes);
      HttpResponse out;
      Text(out, 413,
           "request body exceeds the limit of " + std::to_string(options().max_body_bytes) +
               " bytes");
      RunRejectHook(req, out);
      Respond(std::move(out), /*close=*/true);
      return;
    }
    if (ec == http::error::header_limit) {
      SendError(431, "request header fields exceed the limit of " + std::to_string(kHeaderLimit) +
                         " bytes");
      return;
    }
    const bool parse_error =
        ec.category() == http::make_error_code(http::error::bad_method).category() &&
        ec != http::error::end_of_stream && ec != http::error::partial_message;
    if (parse_error) {
      log::Debug("malformed HTTP request",
                 {{"server", options().name}, {"peer", peer_}, {"error", ec.message()}});
      SendError(400, "malformed HTTP request: " + ec.message());
      return;
    }
    // Timeout, connection reset, the client went away mid-request: nothing to answer.
    CloseNow();
  }

  // The request so far, without its body.  Also used when the body limit was hit: Beast checks
  // Content-Length against it after all fields are parsed, but before is_header_done().
  HttpRequest HeaderOnlyRequest() const {
    HttpRequest req;
    if (!parser_ || parser_->get().target().empty()) return req;
    const auto& breq = parser_->get();
    req.method = std::string(breq.method_string());
    SplitTarget(SV(breq.target()), &req);
    for (const auto& field : breq) {
      req.headers.emplace_back(Lower(SV(field.name_string())), std::string(SV(field.value())));
    }
    req.peer = peer_;
    req.tls_peer = tls_peer_;
    return req;
  }

  static void SplitTarget(std::string_view target, HttpRequest* req) {
    // absolute-form ("http://host/path"), as some proxies send it
    if (!target.empty() && target.front() != '/') {
      const size_t scheme = target.find("://");
      if (scheme != std::string_view::npos) {
        const size_t slash = target.find('/', scheme + 3);
        target = slash == std::string_view::npos ? std::string_view("/") : target.substr(slash);
      }
    }
    const size_t q = target.find('?');
    req->path = std::string(target.substr(0, q));
    req->query = q == std::string_view::npos ? std::string() : std::string(target.substr(q + 1));
  }

  void RunRejectHook(const HttpRequest& req, HttpResponse& out) {
    if (req.path.empty()) return;
    auto it = server_->FindRoute(req.path);
    if (it == server_->routes.end() || !it->second.reject_hook) return;
    const int status = out.status;
    try {
      it->second.reject_hook(req, out);
    } catch (const std::exception& e) {
      log::Error("http reject hook failed", {{"server", options().name}, {"error", e.what()}});
      out = HttpResponse{};
      Text(out, status, "request refused");
    } catch (...) {
      log::Error("http reject hook failed", {{"server", options().name}});
      out = HttpResponse{};
      Text(out, status, "request refused");
    }
  }

  void Handle() {
    auto& breq = parser_->get();
    const bool keep_alive = breq.keep_alive();
    version_ = breq.version() == 10 ? 10 : 11;
    head_ = breq.method() == http::verb::head;

    HttpRequest req = HeaderOnlyRequest();
    req.body = direct_body_ ? std::move(body_) : std::move(breq.body());
    req.received_bytes = req.body.size();
    body_ = std::string();
    direct_body_ = false;

    HttpResponse out;
    if (!CheckForwarded(req)) {
      Text(out, 403, "client address not allowed");
      Respond(std::move(out), /*close=*/true);
      return;
    }
    RunRoute(req, out);
    Respond(std::move(out), !keep_alive || server_->stopping.load());
  }

  // Fills req.forwarded_for when the peer is a trusted proxy, and applies the allowlist to the
  // client it names; false (reported to on_refused) when that client is not allowed.
  bool CheckForwarded(HttpRequest& req) {
    const auto& trusted = options().trusted_proxies;
    if (!trusted || trusted->empty() || !trusted->Contains(peer_ip_)) return true;
    std::vector<std::string_view> values;
    for (const auto& [name, value] : req.headers) {
      if (name == "x-forwarded-for") values.push_back(value);
    }
    if (values.empty()) return true;
    auto client = ForwardedClient(values, *trusted);
    const auto& allow = options().allow;
    const bool checked = allow && !allow->empty();
    if (client.ok()) req.forwarded_for = client->ToString();
    if (!checked) return true;
    if (client.ok() ? allow->Contains(*client) : client.status().code() == StatusCode::kNotFound) {
      return true;
    }
    log::Debug("forwarded client refused",
               {{"server", options().name}, {"peer", peer_}, {"client", req.forwarded_for}});
    if (options().on_refused) {
      RefusedPeer refused;
      refused.ip = peer_ip_.ToString();
      refused.port = peer_port_;
      refused.forwarded_for = client.ok() ? req.forwarded_for : "unreadable";
      options().on_refused(refused);
    }
    return false;
  }

  void RunRoute(HttpRequest& req, HttpResponse& out) {
    auto it = server_->FindRoute(req.path);
    if (req.path.empty() || req.path.front() != '/') {
      Text(out, 400, "request target must be a path");
      return;
    }
    if (it == server_->routes.end()) {
      Text(out, 404, "no such path: " + req.path);
      return;
    }
    const HttpHandler* handler = nullptr;
    std::string allow;
    for (const auto& [method, h] : it->second.methods) {
      if (method == req.method) handler = &h;
      allow += (allow.empty() ? "" : ", ") + method;
    }
    if (handler == nullptr) {
      Text(out, 405,
           "method " + req.method + " not allowed on " + req.path + "; allowed: " + allow);
      out.headers.emplace_back("Allow", allow);
      return;
    }
    if (it->second.guard) {
      bool pass = false;
      try {
        pass = it->second.guard(req, out);
      } catch (const std::exception& e) {
        log::Error("http guard failed", {{"server", options().name}, {"error", e.what()}});
        out = HttpResponse{};
        Text(out, 500, "internal error");
      }
      if (!pass) return;
    }
    if (Status s = DecodeContentEncoding(req.Header("content-encoding"), options().max_body_bytes,
                                         &req.body);
        !s.ok()) {
      const int status = HttpStatusFor(s);
      Text(out, status, s.message());
      if (status == 500) {
        log::Error("http body decoding failed",
                   {{"server", options().name}, {"path", req.path}, {"error", s.message()}});
      } else {
        req.body.clear();
        RunRejectHook(req, out);
      }
      return;
    }
    try {
      (*handler)(req, out);
    } catch (const std::exception& e) {
      log::Error("http handler failed", {{"server", options().name},
                                         {"method", req.method},
                                         {"path", req.path},
                                         {"error", e.what()}});
      out = HttpResponse{};
      Text(out, 500, "internal error");
    } catch (...) {
      log::Error("http handler failed", {{"server", options().name},
                                         {"method", req.method},
                                         {"path", req.path},
                                         {"error", "unknown exception"}});
      out = HttpResponse{};
      Text(out, 500, "internal error");
    }
  }

  static void Text(HttpResponse& out, int status, std::string reason) {
    out.status = status;
    out.content_type = "text/plain; charset=utf-8";
    out.body = std::move(reason);
    out.body += "\n";
  }

  // Answers a request that could not be read in full, and closes the connection.
  void SendError(int status, std::string reason) {
    HttpResponse out;
    Text(out, status, std::move(reason));
    Respond(std::move(out), /*close=*/true);
  }

  // The status line and headers of `out`, the listener's own headers added.
  template <class Body>
  void FillHeader(http::response<Body>& res, const HttpResponse& out, unsigned status) {
    res.version(version_);
    res.result(status);
    if (!out.content_type.empty()) res.set(http::field::content_type, out.content_type);
    for (const auto& [name, value] : out.headers) res.insert(name, value);
    if (kTls && options().hsts) res.set(http::field::strict_transport_security, "max-age=31536000");
    if (options().security_headers) {
      auto set_default = [&res](const char* name, const char* value) {
        if (res.find(name) == res.end()) res.set(name, value);
      };
      set_default("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'");
      set_default("X-Content-Type-Options", "nosniff");
      set_default("Referrer-Policy", "no-referrer");
      set_default("Cache-Control", "no-store");
    }
  }

  void Respond(HttpResponse out, bool close) {
    const unsigned status =
        static_cast<unsigned>(out.status >= 100 && out.status <= 599 ? out.status : 500);
    // No body for these (RFC 9110 6.4.1, 9.3.2): a streamed one is released unpulled.
    const bool bodiless = head_ || status < 200 || status == 204 || status == 304;
    if (out.body_source && !bodiless) {
      RespondStreamed(std::move(out), status, close);
      return;
    }
    const bool streamed = static_cast<bool>(out.body_source);
    out.body_source = nullptr;
    if (streamed) out.body.clear();
    res_ = {};
    FillHeader(res_, out, status);
    res_.body() = std::move(out.body);
    res_.keep_alive(!close);
    res_.prepare_payload();
    // HEAD (RFC 9110 9.3.2): the GET's headers, Content-Length included, and no body.
    if (head_ && streamed) {
      if (out.content_length) {
        res_.content_length(*out.content_length);
      } else {
        res_.content_length(boost::none);  // unknown until the GET's body is produced
      }
    }
    if (head_) res_.body().clear();
    SetDeadline(options().read_timeout);
    http::async_write(stream_, res_,
                      [self = this->shared_from_this(), close](beast::error_code ec, size_t) {
                        self->OnWrite(ec, close);
                      });
  }

  // A streamed answer (HttpResponse::body_source): the headers, then each piece as pulled.
  void RespondStreamed(HttpResponse out, unsigned status, bool close) {
    stream_res_.emplace();
    FillHeader(*stream_res_, out, status);
    stream_left_ = out.content_length;
    if (out.content_length) {
      stream_res_->content_length(*out.content_length);
    } else if (version_ >= 11) {
      stream_res_->chunked(true);
    } else {
      close = true;  // HTTP/1.0 has no chunks: the end of the connection ends the body
    }
    stream_res_->keep_alive(!close);
    stream_res_->body().data = nullptr;
    stream_res_->body().size = 0;
    stream_res_->body().more = true;
    source_ = std::move(out.body_source);
    stream_close_ = close;
    stream_ended_ = false;
    serializer_.emplace(*stream_res_);
    SetDeadline(options().read_timeout);
    http::async_write_header(
        stream_, *serializer_,
        [self = this->shared_from_this()](beast::error_code ec, size_t) { self->OnPiece(ec); });
  }

  // A write of the streamed answer finished: the next piece, or the next request.
  void OnPiece(beast::error_code ec) {
    if (state_ == State::kClosed) return;
    if (ec == http::error::need_buffer) ec = {};  // the piece went out; the body has more
    if (ec) {  // the write timed out (a client that stopped reading) or the client went away
      log::Debug("streamed response not delivered",
                 {{"server", options().name}, {"peer", peer_}, {"error", ec.message()}});
      EndStream();
      CloseNow();
      return;
    }
    if (stream_ended_) {
      const bool close = stream_close_;
      EndStream();
      if (close) {
        CloseGracefully();
      } else {
        WaitForRequest();
      }
      return;
    }
    WriteNextPiece();
  }

  void WriteNextPiece() {
    BodyChunk chunk;
    do {
      chunk = Pull();
    } while (chunk.kind == BodyChunk::Kind::kData && chunk.data.empty());
    auto& body = stream_res_->body();
    if (chunk.kind == BodyChunk::Kind::kData &&
        (!stream_left_ || chunk.data.size() <= *stream_left_)) {
      if (stream_left_) *stream_left_ -= chunk.data.size();
      piece_ = std::move(chunk.data);
      body.data = piece_.data();
      body.size = piece_.size();
      body.more = true;
    } else if (chunk.kind == BodyChunk::Kind::kEnd && (!stream_left_ || *stream_left_ == 0)) {
      source_ = nullptr;  // released before the last bytes go out
      stream_ended_ = true;
      body.data = nullptr;
      body.size = 0;
      body.more = false;
    } else {
      // The status went out already: close without the terminating chunk (or short of the
      // Content-Length), so that the client sees the answer truncated.
      log::Debug("streamed response cut off",
                 {{"server", options().name},
                  {"peer", peer_},
                  {"reason", chunk.kind == BodyChunk::Kind::kError ? "the source failed"
                                                                   : "not the Content-Length"}});
      EndStream();
      CloseNow();
      return;
    }
    SetDeadline(options().read_timeout);
    http::async_write(
        stream_, *serializer_,
        [self = this->shared_from_this()](beast::error_code ec, size_t) { self->OnPiece(ec); });
  }

  BodyChunk Pull() {
    try {
      return source_();
    } catch (const std::exception& e) {
      log::Error("streamed response body failed",
                 {{"server", options().name}, {"error", e.what()}});
    } catch (...) {
      log::Error("streamed response body failed", {{"server", options().name}});
    }
    BodyChunk failed;
    failed.kind = BodyChunk::Kind::kError;
    return failed;
  }

  void EndStream() {
    source_ = nullptr;
    serializer_.reset();
    stream_res_.reset();
    std::string().swap(piece_);
    stream_left_.reset();
    stream_ended_ = false;
  }

  void OnWrite(beast::error_code ec, bool close) {
    if (state_ == State::kClosed) return;
    if (ec) {
      CloseNow();
      return;
    }
    if (close) {
      CloseGracefully();
      return;
    }
    res_ = {};
    WaitForRequest();
  }

  // Half-closes and drains what the client still sends (see kMaxLingerBytes), then closes.
  void CloseGracefully() {
    state_ = State::kLingering;
    beast::error_code ec;
    Socket().shutdown(tcp::socket::shutdown_send, ec);
    if (ec) {
      CloseNow();
      return;
    }
    SetDeadline(kLingerTime);
    Linger();
  }

  void Linger() {
    // On the TCP stream even with TLS: the bytes are discarded, not decrypted.
    Lowest().async_read_some(asio::buffer(discard_),
                             [self = this->shared_from_this()](beast::error_code ec, size_t n) {
                               if (self->state_ == State::kClosed) return;
                               self->lingered_ += n;
                               if (ec || self->lingered_ > kMaxLingerBytes) {
                                 self->CloseNow();
                               } else {
                                 self->Linger();
                               }
                             });
  }

  void CloseNow() {
    if (state_ == State::kClosed) return;
    state_ = State::kClosed;
    ClearDeadline();  // nothing left for the sweep to do
    Lowest().close();
  }

  HttpServer::Impl* server_;
  std::shared_ptr<const TlsServerContext> tls_;  // keeps the context alive for stream_
  Stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::string body_;          // a Content-Length body read past the parser (ReadBody)
  bool direct_body_ = false;  // the request's body is body_, not the parser's
  http::response<http::string_body> res_;
  // The streamed answer being written (HttpResponse::body_source); the serializer refers to
  // stream_res_, so it is declared after it.
  std::optional<http::response<http::buffer_body>> stream_res_;
  std::optional<http::response_serializer<http::buffer_body>> serializer_;
  BodySource source_;
  std::string piece_;                    // the piece being written
  std::optional<uint64_t> stream_left_;  // bytes still owed under a Content-Length
  bool stream_close_ = false;            // close the connection after the streamed answer
  bool stream_ended_ = false;            // the last write of the streamed answer is under way
  std::string peer_;
  const IpAddress peer_ip_;  // IPv4-mapped addresses as IPv4
  uint16_t peer_port_ = 0;
  TlsPeer tls_peer_;  // set after the handshake
  State state_ = State::kBusy;
  unsigned version_ = 11;  // of the request being answered
  bool head_ = false;      // the request being answered is a HEAD
  size_t lingered_ = 0;
  char discard_[kReadChunk];
};

void HttpServer::Impl::DoAccept() {
  acceptor.async_accept(NextConnectionExecutor(), [this](beast::error_code ec, tcp::socket socket) {
    OnAccept(ec, std::move(socket));
  });
}

void HttpServer::Impl::OnAccept(beast::error_code ec, tcp::socket socket) {
  if (stopping.load() || !acceptor.is_open()) {
    beast::error_code ignored;
    socket.close(ignored);
    return;
  }
  if (ec) {
    // Out of descriptors and the like: back off briefly instead of spinning.
    log::Warn("http accept failed", {{"server", options.name}, {"error", ec.message()}});
    accept_retry.expires_after(std::chrono::milliseconds(50));
    accept_retry.async_wait([this](beast::error_code wait_ec) {
      if (!wait_ec && !stopping.load()) DoAccept();
    });
    return;
  }
  // The allowlist before anything else, the TLS handshake included.
  beast::error_code peer_ec;
  const tcp::endpoint remote = socket.remote_endpoint(peer_ec);
  IpAddress ip;
  if (!peer_ec) {
    auto parsed = IpAddress::Parse(remote.address().to_string());
    if (parsed.ok()) ip = *parsed;
  }
  if (options.allow && !options.allow->empty() && (peer_ec || !options.allow->Contains(ip))) {
    log::Debug("connection refused by the allowlist",
               {{"server", options.name}, {"peer", peer_ec ? "?" : ip.ToString()}});
    if (options.on_refused) {  // before the close, which the client may be waiting for
      RefusedPeer refused;
      refused.ip = peer_ec ? std::string() : ip.ToString();
      refused.port = peer_ec ? 0 : remote.port();
      try {
        options.on_refused(refused);
      } catch (const std::exception& e) {
        log::Error("http refusal hook failed", {{"server", options.name}, {"error", e.what()}});
      }
    }
    beast::error_code ignored;
    socket.close(ignored);
    DoAccept();
    return;
  }
  if (tls_enabled) {
    std::make_shared<Session<beast::ssl_stream<beast::tcp_stream>>>(std::move(socket), this, ip,
                                                                    CurrentTls())
        ->Start();
  } else {
    std::make_shared<Session<beast::tcp_stream>>(std::move(socket), this, ip)->Start();
  }
  DoAccept();
}

void HttpServer::Impl::ArmSweep() {
  if (sweep_armed) return;
  sweep_armed = true;
  asio::post(sweep_timer.get_executor(), [this] { Sweep(); });
}

void HttpServer::Impl::Sweep() {
  const int64_t now = CoarseNowMs();
  std::vector<std::shared_ptr<SessionBase>> due;
  {
    std::lock_guard<std::mutex> lock(mu);
    if (sessions.empty()) {  // armed again by the next connection
      sweep_armed = false;
      return;
    }
    for (auto& [ptr, weak] : sessions) {
      // `mu` keeps *ptr alive: a session's destructor takes it before anything is destroyed.
      if (ptr->deadline_ms.load(std::memory_order_relaxed) > now) continue;
      if (auto s = weak.lock()) due.push_back(std::move(s));
    }
  }
  for (auto& s : due) s->Post(&SessionBase::OnDeadline);
  sweep_timer.expires_after(sweep_interval);
  sweep_timer.async_wait([this](beast::error_code ec) {
    if (ec) {  // cancelled at shutdown
      std::lock_guard<std::mutex> lock(mu);
      sweep_armed = false;
      return;
    }
    Sweep();
  });
}

void HttpServer::Impl::ForEachSession(void (SessionBase::*fn)()) {
  std::vector<std::shared_ptr<SessionBase>> live;
  {
    std::lock_guard<std::mutex> lock(mu);
    for (auto& [ptr, weak] : sessions) {
      if (auto s = weak.lock()) live.push_back(std::move(s));
    }
  }
  for (auto& s : live) s->Post(fn);
}

HttpServer::HttpServer(HttpServerOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}

HttpServer::~HttpServer() { Shutdown(); }

void HttpServer::Route(std::string method, std::string path, HttpHandler handler) {
  if (!path.empty() && path.back() == '*' &&
      std::find(impl_->prefix_routes.begin(), impl_->prefix_routes.end(), path) ==
          impl_->prefix_routes.end()) {
    impl_->prefix_routes.push_back(path);
    std::sort(impl_->prefix_routes.begin(), impl_->prefix_routes.end(),
              [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  }
  impl_->routes[std::move(path)].methods.emplace_back(std::move(method), std::move(handler));
}

void HttpServer::OnReject(std::string path, HttpRejectHook hook) {
  impl_->routes[std::move(path)].reject_hook = std::move(hook);
}

void HttpServer::Guard(std::string path, HttpGuard guard) {
  impl_->routes[std::move(path)].guard = std::move(guard);
}

Status HttpServer::Start() {
  std::lock_guard<std::mutex> lifecycle(impl_->lifecycle_mu);
  if (impl_->started) return Status::Internal("http server already started");
  const auto& o = impl_->options;
  const std::string where = o.host + ":" + std::to_string(o.port);

  beast::error_code ec;
  tcp::endpoint endpoint;
  const auto address = asio::ip::make_address(o.host, ec);
  if (!ec) {
    endpoint = tcp::endpoint(address, o.port);
  } else {
    tcp::resolver resolver(*impl_->loops[0]);
    auto results = resolver.resolve(o.host, std::to_string(o.port), ec);
    if (ec || results.empty()) {
      return Status::InvalidArgument("cannot listen on " + where + ": cannot resolve host: " +
                                     (ec ? ec.message() : std::string("no address")));
    }
    endpoint = results.begin()->endpoint();
  }

  auto& acceptor = impl_->acceptor;
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    beast::error_code ignored;
    acceptor.close(ignored);
    return Status::Unavailable("cannot listen on " + where + ": " + ec.message());
  }
  impl_->port = acceptor.local_endpoint(ec).port();
  impl_->started = true;
  impl_->DoAccept();
  const int threads = std::max(1, o.threads);
  if (o.loop_per_thread) {
    for (auto& loop : impl_->loops) impl_->loop_guards.push_back(asio::make_work_guard(*loop));
  }
  for (int i = 0; i < threads; ++i) {
    asio::io_context* loop = impl_->loops[static_cast<size_t>(i) % impl_->loops.size()].get();
    impl_->threads.emplace_back([this, loop] {
      while (true) {
        try {
          loop->run();
          return;  // stopped, or no work left after Shutdown
        } catch (const std::exception& e) {
          // Completion handlers catch their own exceptions; this is a bug, but not a reason
          // to terminate or to lose the thread.
          log::Error("http server thread failed",
                     {{"server", impl_->options.name}, {"error", e.what()}});
        }
      }
    });
  }
  log::Info("http server listening",
            {{"server", o.name}, {"address", o.host + ":" + std::to_string(impl_->port.load())}});
  return Status::Ok();
}

uint16_t HttpServer::port() const { return impl_->port.load(); }

Status HttpServer::SetTls(std::shared_ptr<const TlsServerContext> tls) {
  if (!impl_->tls_enabled || tls == nullptr) {
    return Status::InvalidArgument("http server " + impl_->options.name +
                                   ": TLS can be replaced only on a server started with TLS");
  }
  std::lock_guard<std::mutex> lock(impl_->tls_mu);
  impl_->tls = std::move(tls);
  return Status::Ok();
}

void HttpServer::Shutdown(std::chrono::milliseconds drain) {
  {
    std::lock_guard<std::mutex> lifecycle(impl_->lifecycle_mu);
    if (!impl_->started || impl_->shut_down) return;
    impl_->shut_down = true;
  }
  Impl* impl = impl_.get();
  impl->stopping = true;
  asio::post(impl->acceptor.get_executor(), [impl] {
    beast::error_code ignored;
    impl->acceptor.close(ignored);
    impl->accept_retry.cancel();
  });
  impl->ForEachSession(&Impl::SessionBase::CloseIfIdle);

  const auto deadline = std::chrono::steady_clock::now() + drain;
  {
    std::unique_lock<std::mutex> lock(impl->mu);
    impl->sessions_changed.wait_until(lock, deadline, [impl] { return impl->sessions.empty(); });
  }
  if (size_t left = impl->SessionCount(); left > 0) {
    log::Warn("http server drain deadline passed; closing connections",
              {{"server", impl->options.name}, {"connections", static_cast<uint64_t>(left)}});
    impl->ForEachSession(&Impl::SessionBase::ForceClose);
    std::unique_lock<std::mutex> lock(impl->mu);
    impl->sessions_changed.wait_for(lock, std::chrono::seconds(1),
                                    [impl] { return impl->sessions.empty(); });
  }
  // The sweep stops by itself once no connection is left; it need not wait for its next round.
  asio::post(impl->acceptor.get_executor(), [impl] { impl->sweep_timer.cancel(); });
  for (auto& guard : impl->loop_guards) guard.reset();
  if (impl->SessionCount() > 0) {
    for (auto& loop : impl->loops) loop->stop();
  }
  for (auto& t : impl->threads) t.join();
  impl->threads.clear();
  log::Info("http server stopped", {{"server", impl->options.name}});
}

}  // namespace ordertrace::net
