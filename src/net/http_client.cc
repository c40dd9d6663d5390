#include "net/http_client.h"

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <exception>
#include <type_traits>

#include "common/log.h"

namespace ordertrace::net {
namespace {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using SteadyClock = std::chrono::steady_clock;
using Request = http::request<http::span_body<const char>>;
using Parser = http::response_parser<http::string_body>;
using StreamParser = http::response_parser<http::buffer_body>;

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

bool IsStaleConnectionError(const boost::system::error_code& ec) {
  return ec == http::error::end_of_stream || ec == asio::error::eof ||
         ec == asio::error::connection_reset || ec == asio::error::broken_pipe ||
         ec == asio::error::connection_aborted || ec == ssl::error::stream_truncated;
}

HttpFailure Failure(HttpFailure::Kind kind, HttpFailure::Step step, std::string detail) {
  HttpFailure f;
  f.kind = kind;
  f.step = step;
  f.detail = std::move(detail);
  return f;
}

}  // namespace

std::string_view HttpReply::Header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (EqualsIgnoreCase(key, name)) return value;
  }
  return {};
}

const char* StepName(HttpFailure::Step step) {
  switch (step) {
    case HttpFailure::Step::kResolve:
      return "resolve";
    case HttpFailure::Step::kConnect:
      return "connect";
    case HttpFailure::Step::kHandshake:
      return "TLS handshake";
    case HttpFailure::Step::kWrite:
      return "write";
    case HttpFailure::Step::kRead:
      return "read";
  }
  return "request";
}

std::string HttpFailure::Describe() const {
  switch (kind) {
    case Kind::kTimeout:
      return std::string(StepName(step)) + " timed out after " + std::to_string(timeout.count()) +
             "ms";
    case Kind::kTooLarge:
      return "response body larger than " + std::to_string(max_body_bytes) + " bytes";
    default:
      return std::string(StepName(step)) + ": " + detail;
  }
}

// The connection: the private io_context, the resolver and the open stream (plain or TLS).
struct HttpConnection::Impl {
  Impl(Url u, std::shared_ptr<const TlsClientContext> t, bool k)
      : url(std::move(u)), tls_context(std::move(t)), keep_alive(k) {}

  // A failure, and whether it came from a reused connection the peer had closed before it
  // answered anything (worth one immediate retry).
  struct Broken {
    HttpFailure failure;
    bool stale = false;
  };

  const Url url;
  std::shared_ptr<const TlsClientContext> tls_context;  // https only
  const bool keep_alive;
  // Declared before everything that uses it, so it is destroyed last.
  asio::io_context ioc{1};
  tcp::resolver resolver{ioc};
  std::unique_ptr<beast::tcp_stream> plain;                   // the open connection (http)
  std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> tls;  // ... (https)
  beast::flat_buffer buffer;
  // The answer being read by ReadBody (after SendStreaming); empty when none.
  std::optional<StreamParser> streamed;
  SteadyClock::time_point stream_deadline;
  std::chrono::milliseconds stream_timeout{0};
  uint64_t stream_limit = 0;
  uint64_t stream_read = 0;
  bool stream_reuse = false;

  bool Connected() const { return url.tls() ? tls != nullptr : plain != nullptr; }

  void Close() {
    boost::system::error_code ignored;
    if (plain) plain->socket().close(ignored);
    if (tls) beast::get_lowest_layer(*tls).socket().close(ignored);
    // Completes anything the close cancelled, so no handler outlives its operation's state.
    ioc.restart();
    ioc.poll();
    plain.reset();
    tls.reset();
    buffer.clear();
    streamed.reset();
  }

  // Runs the io_context until `done`; every socket operation is bounded by the stream's
  // expiry, so this returns by the deadline.
  void RunUntil(const bool& done) {
    ioc.restart();
    while (!done) {
      if (ioc.run_one() == 0) break;
    }
  }

  Broken IoFailure(const boost::system::error_code& ec, HttpFailure::Step step) const {
    if (ec == beast::error::timeout) return {Failure(HttpFailure::Kind::kTimeout, step, ""), false};
    const bool stale = IsStaleConnectionError(ec);
    // An OpenSSL error after the handshake, e.g. the server's alert refusing our certificate
    // (TLS 1.3 checks the client certificate after the client considers the handshake done).
    const bool tls_error = !stale && ec.category() == asio::error::get_ssl_category();
    return {Failure(tls_error ? HttpFailure::Kind::kTls : HttpFailure::Kind::kConnect, step,
                    ec.message()),
            stale};
  }

  // Resolves, connects and (https) handshakes; nullopt on success.
  std::optional<Broken> Connect(SteadyClock::time_point deadline) {
    using Step = HttpFailure::Step;
    using Kind = HttpFailure::Kind;
    // The resolver runs getaddrinfo on a background thread that no timer can interrupt: wait
    // for it until the deadline only.  Its handler owns its state, so a late answer is
    // harmless.
    struct Resolution {
      bool done = false;
      boost::system::error_code ec;
      tcp::resolver::results_type results;
    };
    auto resolution = std::make_shared<Resolution>();
    resolver.async_resolve(
        url.host, std::to_string(url.port),
        [resolution](const boost::system::error_code& ec, tcp::resolver::results_type results) {
          resolution->done = true;
          resolution->ec = ec;
          resolution->results = std::move(results);
        });
    ioc.restart();
    while (!resolution->done) {
      if (ioc.run_one_until(deadline) == 0) break;
    }
    if (!resolution->done) {
      resolver.cancel();
      return Broken{Failure(Kind::kTimeout, Step::kResolve, ""), false};
    }
    if (resolution->ec) {
      return Broken{Failure(Kind::kConnect, Step::kResolve, resolution->ec.message()), false};
    }

    auto stream = std::make_unique<beast::tcp_stream>(ioc);
    stream->expires_at(deadline);
    bool done = false;
    boost::system::error_code ec;
    stream->async_connect(resolution->results,
                          [&](const boost::system::error_code& e, const tcp::endpoint&) {
                            ec = e;
                            done = true;
                          });
    RunUntil(done);
    if (!done) return Broken{Failure(Kind::kInternal, Step::kConnect, "connect did not complete")};
    if (ec) {
      boost::system::error_code ignored;
      stream->socket().close(ignored);
      Broken b = IoFailure(ec, Step::kConnect);
      b.stale = false;
      return b;
    }
    boost::system::error_code ignored;
    stream->socket().set_option(tcp::no_delay(true), ignored);

    if (!url.tls()) {
      plain = std::move(stream);
      return std::nullopt;
    }
    if (tls_context == nullptr) tls_context = TlsClientContext::Default();
    if (tls_context == nullptr) {
      return Broken{Failure(Kind::kTls, Step::kHandshake, "no TLS context (see the log)")};
    }
    tls = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(std::move(*stream),
                                                                 tls_context->context());
    SSL* ssl_handle = tls->native_handle();
    PrepareTlsClient(ssl_handle, url.host, url.HostIsIp());
    done = false;
    beast::get_lowest_layer(*tls).expires_at(deadline);
    tls->async_handshake(ssl::stream_base::client, [&](const boost::system::error_code& e) {
      ec = e;
      done = true;
    });
    RunUntil(done);
    if (!done || ec) {
      Broken broken;
      if (!done) {
        broken.failure = Failure(Kind::kInternal, Step::kHandshake, "did not complete");
      } else if (ec == beast::error::timeout) {
        broken.failure = Failure(Kind::kTimeout, Step::kHandshake, "");
      } else {
        std::string detail = ec.message();
        const long verify = SSL_get_verify_result(ssl_handle);
        if (verify != X509_V_OK) {
          detail += std::string(" (") + X509_verify_cert_error_string(verify) + ")";
        }
        broken.failure = Failure(Kind::kTls, Step::kHandshake, std::move(detail));
      }
      Close();
      return broken;
    }
    return std::nullopt;
  }

  // A read that failed: timed out, not HTTP, or the connection broke.  `sent`: whether the
  // request went out in full (a timeout before that is the write's).
  Broken ReadFailure(const boost::system::error_code& ec, bool sent, bool got_some) const {
    using Step = HttpFailure::Step;
    using Kind = HttpFailure::Kind;
    if (ec == beast::error::timeout) {
      return Broken{Failure(Kind::kTimeout, sent ? Step::kRead : Step::kWrite, ""), false};
    }
    const bool http_error =
        ec.category() == http::make_error_code(http::error::end_of_stream).category();
    if (http_error && ec != http::error::end_of_stream && ec != http::error::partial_message) {
      // Not an HTTP answer, or a broken one.
      return Broken{Failure(Kind::kProtocol, Step::kRead, ec.message()), false};
    }
    Broken b = IoFailure(ec, Step::kRead);
    b.stale = b.stale && !got_some;
    return b;
  }

  // Sends the request and reads the answer (the header only for a StreamParser: ReadBody reads
  // the body), full duplex.  `sent` tells whether the request went out in full; if not, the
  // connection cannot be reused.
  template <class Stream, class P>
  std::optional<Broken> RoundTrip(Stream& stream, Request& req, P& parser, uint64_t max_body_bytes,
                                  SteadyClock::time_point deadline, bool* sent) {
    constexpr bool kWhole = std::is_same_v<P, Parser>;
    using Step = HttpFailure::Step;
    using Kind = HttpFailure::Kind;
    auto& lowest = beast::get_lowest_layer(stream);
    lowest.expires_at(deadline);
    bool wrote = false;
    bool read = false;
    bool too_large = false;
    boost::system::error_code write_ec;
    boost::system::error_code ec;
    http::async_write(stream, req, [&](const boost::system::error_code& e, std::size_t) {
      write_ec = e;
      wrote = true;
    });
    // The header first: a Content-Length over the limit fails before any body is read.
    http::async_read_header(
        stream, buffer, parser, [&](const boost::system::error_code& e, std::size_t) {
          if (e) {
            ec = e;
            read = true;
            return;
          }
          if (parser.content_length() && *parser.content_length() > max_body_bytes) {
            too_large = true;
            read = true;
            return;
          }
          if constexpr (kWhole) {
            http::async_read(stream, buffer, parser,
                             [&](const boost::system::error_code& e2, std::size_t) {
                               ec = e2;
                               read = true;
                             });
          } else {
            read = true;  // the body is ReadBody's
          }
        });
    RunUntil(read);
    if (!wrote) {
      lowest.cancel();  // the write's handler must run before `req` goes away
      RunUntil(wrote);
    }
    *sent = wrote && !write_ec;
    if (!read || !wrote)
      return Broken{Failure(Kind::kInternal, Step::kRead, "I/O did not complete")};
    bool over = too_large || ec == http::error::body_limit;
    if constexpr (kWhole) {
      over = over || (!ec && parser.get().body().size() > max_body_bytes);  // chunked or to EOF
    }
    if (over) {
      Broken b{Failure(Kind::kTooLarge, Step::kRead, "body limit exceeded"), false};
      b.failure.max_body_bytes = max_body_bytes;
      return b;
    }
    if (!ec) return std::nullopt;
    return ReadFailure(ec, *sent, parser.got_some());
  }

  Request MakeRequest(std::string_view method, std::string_view target, std::string_view body,
                      const HeaderList& headers) const {
    Request req{http::string_to_verb(beast::string_view(method.data(), method.size())),
                beast::string_view(target.data(), target.size()), 11};
    req.set(http::field::host, url.HostHeader());
    for (const auto& [key, value] : headers) req.set(key, value);
    req.body() = beast::span<const char>(body.data(), body.size());  // no copy
    req.keep_alive(keep_alive);
    req.prepare_payload();
    return req;
  }

  template <class Body>
  static void FillReply(const http::response<Body>& res, HttpReply* reply) {
    reply->status = static_cast<int>(res.result_int());
    const auto type = res[http::field::content_type];
    reply->content_type.assign(type.data(), type.size());
    for (const auto& field : res) {
      reply->headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
    }
  }

  // Sends the request and reads the answer's header into `parser` (with its body for a Parser),
  // reconnecting once for a stale keep-alive connection.  Fills out.reply's status and headers
  // or out.failure; `reuse` tells whether the connection may serve another request afterwards.
  template <class P>
  void Exchange(Request& req, std::optional<P>& parser, SteadyClock::time_point deadline,
                std::chrono::milliseconds timeout, uint64_t max_body_bytes, HttpOutcome& out,
                bool* reuse) {
    for (int attempt = 0;; ++attempt) {
      const bool reused = Connected();
      if (!reused) {
        if (auto broken = Connect(deadline)) {
          out.failure = std::move(broken->failure);
          break;
        }
      }
      parser.emplace();
      // The limit is checked in RoundTrip (Beast's own applies to synchronous reads); this
      // keeps the parser from buffering far past it.
      parser->body_limit(max_body_bytes + 1);
      // The answer to a HEAD has the GET's headers (Content-Length too) but no body.
      if (req.method() == http::verb::head) parser->skip(true);
      bool sent = false;
      std::optional<Broken> broken =
          url.tls() ? RoundTrip(*tls, req, *parser, max_body_bytes, deadline, &sent)
                    : RoundTrip(*plain, req, *parser, max_body_bytes, deadline, &sent);
      if (!broken) {
        FillReply(parser->get(), &out.reply);
        *reuse = keep_alive && sent && parser->get().keep_alive();
        return;
      }
      Close();
      if (!(broken->stale && reused && attempt == 0 && SteadyClock::now() < deadline)) {
        out.failure = std::move(broken->failure);
        break;
      }
      log::Debug("the peer closed the keep-alive connection; reconnecting",
                 {{"peer", url.Authority()}});
    }
    out.failure->timeout = timeout;
    if (out.failure->kind == HttpFailure::Kind::kTooLarge) {
      out.failure->max_body_bytes = max_body_bytes;
    }
  }

  HttpOutcome Send(std::string_view method, std::string_view target, std::string_view body,
                   const HeaderList& headers, std::chrono::milliseconds timeout,
                   uint64_t max_body_bytes) {
    if (streamed) Close();  // a streamed answer not read to its end: the rest is dropped
    const SteadyClock::time_point deadline = SteadyClock::now() + timeout;
    Request req = MakeRequest(method, target, body, headers);
    HttpOutcome out;
    std::optional<Parser> parser;
    bool reuse = false;
    Exchange(req, parser, deadline, timeout, max_body_bytes, out, &reuse);
    if (out.ok()) {
      out.reply.body = std::move(parser->get().body());
      if (!reuse) Close();
    }
    return out;
  }

  HttpOutcome SendStreaming(std::string_view method, std::string_view target,
                            const HeaderList& headers, std::chrono::milliseconds timeout,
                            uint64_t max_body_bytes) {
    if (streamed) Close();
    const SteadyClock::time_point deadline = SteadyClock::now() + timeout;
    Request req = MakeRequest(method, target, {}, headers);
    HttpOutcome out;
    bool reuse = false;
    Exchange(req, streamed, deadline, timeout, max_body_bytes, out, &reuse);
    if (!out.ok()) return out;
    stream_deadline = deadline;
    stream_timeout = timeout;
    stream_limit = max_body_bytes;
    stream_read = 0;
    stream_reuse = reuse;
    if (streamed->is_done()) FinishStream();  // no body: a HEAD's, 204, 304, Content-Length 0
    return out;
  }

  // The streamed answer was read to its end: keep the connection for the next request, or not.
  void FinishStream() {
    streamed.reset();
    if (!stream_reuse) Close();
  }

  HttpBodyPiece ReadBody(size_t max_bytes) {
    HttpBodyPiece out;
    if (!streamed) {
      out.end = true;
      return out;
    }
    if (streamed->is_done()) {
      FinishStream();
      out.end = true;
      return out;
    }
    // Not zero-filled: only the bytes read are copied out.
    const size_t room = std::max<size_t>(max_bytes, 1);
    const std::unique_ptr<char[]> data(new char[room]);
    while (true) {
      auto& body = streamed->get().body();
      body.data = data.get();
      body.size = room;
      bool done = false;
      boost::system::error_code ec;
      auto on_read = [&](const boost::system::error_code& e, std::size_t) {
        ec = e;
        done = true;
      };
      if (url.tls()) {
        beast::get_lowest_layer(*tls).expires_at(stream_deadline);
        http::async_read_some(*tls, buffer, *streamed, on_read);
      } else {
        plain->expires_at(stream_deadline);
        http::async_read_some(*plain, buffer, *streamed, on_read);
      }
      RunUntil(done);
      if (!done) {
        Close();
        out.failure =
            Failure(HttpFailure::Kind::kInternal, HttpFailure::Step::kRead, "I/O did not complete");
        return out;
      }
      if (ec == http::error::need_buffer) ec = {};  // the piece is full
      const size_t got = room - streamed->get().body().size;
      stream_read += got;
      if (stream_read > stream_limit || ec == http::error::body_limit) {
        Close();
        out.failure =
            Failure(HttpFailure::Kind::kTooLarge, HttpFailure::Step::kRead, "body limit exceeded");
        out.failure->max_body_bytes = stream_limit;
        return out;
      }
      if (ec) {
        out.failure = ReadFailure(ec, true, true).failure;
        out.failure->timeout = stream_timeout;
        Close();
        return out;
      }
      if (got > 0 || streamed->is_done()) {
        out.data.assign(data.get(), got);
        if (streamed->is_done()) {
          FinishStream();
          out.end = true;
        }
        return out;
      }
      // Only framing so far (a chunk's size line): read on.
    }
  }
};

HttpConnection::HttpConnection(Url url, std::shared_ptr<const TlsClientContext> tls,
                               bool keep_alive)
    : impl_(std::make_unique<Impl>(std::move(url), std::move(tls), keep_alive)) {}

HttpConnection::~HttpConnection() {
  if (impl_) impl_->Close();
}

HttpOutcome HttpConnection::Send(std::string_view method, std::string_view target,
                                 std::string_view body, const HeaderList& headers,
                                 std::chrono::milliseconds timeout, uint64_t max_body_bytes) {
  try {
    return impl_->Send(method, target, body, headers, timeout, max_body_bytes);
  } catch (const std::exception& e) {
    impl_->Close();
    HttpOutcome out;
    out.failure = Failure(HttpFailure::Kind::kInternal, HttpFailure::Step::kConnect, e.what());
    return out;
  }
}

HttpOutcome HttpConnection::SendStreaming(std::string_view method, std::string_view target,
                                          const HeaderList& headers,
                                          std::chrono::milliseconds timeout,
                                          uint64_t max_body_bytes) {
  try {
    return impl_->SendStreaming(method, target, headers, timeout, max_body_bytes);
  } catch (const std::exception& e) {
    impl_->Close();
    HttpOutcome out;
    out.failure = Failure(HttpFailure::Kind::kInternal, HttpFailure::Step::kConnect, e.what());
    return out;
  }
}

bool HttpConnection::body_pending() const { return impl_->streamed.has_value(); }

HttpBodyPiece HttpConnection::ReadBody(size_t max_bytes) {
  try {
    return impl_->ReadBody(max_bytes);
  } catch (const std::exception& e) {
    impl_->Close();
    HttpBodyPiece out;
    out.failure = Failure(HttpFailure::Kind::kInternal, HttpFailure::Step::kRead, e.what());
    return out;
  }
}

void HttpConnection::Close() { impl_->Close(); }
bool HttpConnection::connected() const { return impl_->Connected(); }
const Url& HttpConnection::url() const { return impl_->url; }

namespace {

Result<HttpReply> OneRequest(std::string_view method, const Url& url, std::string_view target,
                             std::string_view body, const HeaderList& defaults,
                             const HttpOptions& options, const std::string& where) {
  HeaderList headers = defaults;
  for (const auto& [name, value] : options.headers) {
    bool replaced = false;
    for (auto& [key, v] : headers) {
      if (EqualsIgnoreCase(key, name)) {
        v = value;
        replaced = true;
      }
    }
    if (!replaced) headers.emplace_back(name, value);
  }
  HttpConnection connection(url, options.tls, /*keep_alive=*/false);
  HttpOutcome out =
      connection.Send(method, target, body, headers, options.timeout, options.max_body_bytes);
  if (!out.ok()) return Status::Unavailable(where + ": " + out.failure->Describe());
  return std::move(out.reply);
}

}  // namespace

Result<HttpReply> HttpGet(std::string_view base_url, std::string_view target,
                          const HttpOptions& options) {
  std::string_view trimmed = base_url;
  while (trimmed.size() > 1 && trimmed.back() == '/') trimmed.remove_suffix(1);
  auto url = ParseUrl(trimmed);
  if (!url.ok()) return url.status();
  return OneRequest("GET", url.value(), target, {}, {{"Accept", "application/json"}}, options,
                    "GET " + RedactUrl(url->Origin()) + std::string(target));
}

Result<HttpReply> HttpGet(std::string_view base_url, std::string_view target,
                          std::chrono::milliseconds timeout) {
  HttpOptions options;
  options.timeout = timeout;
  return HttpGet(base_url, target, options);
}

Result<HttpReply> HttpGet(uint16_t port, std::string_view target) {
  return HttpGet("http://127.0.0.1:" + std::to_string(port), target);
}

Result<HttpReply> HttpPost(std::string_view url_text, std::string_view body,
                           const HttpOptions& options) {
  auto url = ParseUrl(url_text);
  if (!url.ok()) return url.status();
  return OneRequest("POST", url.value(), url->RequestTarget(), body, {}, options,
                    "POST " + RedactUrl(url_text));
}

std::string BasicAuthorization(std::string_view user, std::string_view password) {
  static const char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const std::string in = std::string(user) + ":" + std::string(password);
  std::string out = "Basic ";
  for (size_t i = 0; i < in.size(); i += 3) {
    uint32_t v = static_cast<uint8_t>(in[i]) << 16;
    if (i + 1 < in.size()) v |= static_cast<uint8_t>(in[i + 1]) << 8;
    if (i + 2 < in.size()) v |= static_cast<uint8_t>(in[i + 2]);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += i + 1 < in.size() ? kAlphabet[(v >> 6) & 63] : '=';
    out += i + 2 < in.size() ? kAlphabet[v & 63] : '=';
  }
  return out;
}

}  // namespace ordertrace::net
