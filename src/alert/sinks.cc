#include "alert/sinks.h"

#include <openssl/ssl.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cctype>
#include <optional>

namespace ordertrace::alert {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;

struct ParsedUrl {
  bool tls = false;
  std::string host;
  std::string port;
  std::string target;  // path, "/" when none
};

Result<ParsedUrl> ParseUrl(std::string_view url) {
  ParsedUrl p;
  std::string_view rest = url;
  auto starts = [&](std::string_view prefix) {
    if (rest.size() < prefix.size()) return false;
    for (size_t i = 0; i < prefix.size(); ++i) {
      if (std::tolower(static_cast<unsigned char>(rest[i])) != prefix[i]) return false;
    }
    return true;
  };
  if (starts("https://")) {
    p.tls = true;
    rest.remove_prefix(8);
  } else if (starts("http://")) {
    rest.remove_prefix(7);
  } else {
    return Status::InvalidArgument("expected an http:// or https:// URL, got '" + std::string(url) +
                                   "'");
  }
  const size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  p.target = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  p.port = p.tls ? "443" : "80";
  if (!authority.empty() && authority.front() == '[') {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) {
      return Status::InvalidArgument("bad IPv6 address in '" + std::string(url) + "'");
    }
    p.host = std::string(authority.substr(1, close - 1));
    if (close + 1 < authority.size()) {
      if (authority[close + 1] != ':') {
        return Status::InvalidArgument("bad address in '" + std::string(url) + "'");
      }
      p.port = std::string(authority.substr(close + 2));
    }
  } else if (const size_t colon = authority.rfind(':'); colon != std::string_view::npos) {
    p.host = std::string(authority.substr(0, colon));
    p.port = std::string(authority.substr(colon + 1));
  } else {
    p.host = std::string(authority);
  }
  if (p.host.empty()) return Status::InvalidArgument("no host in '" + std::string(url) + "'");
  if (p.port.empty() || p.port.size() > 5 ||
      p.port.find_first_not_of("0123456789") != std::string::npos || std::stoi(p.port) == 0 ||
      std::stoi(p.port) > 65535) {
    return Status::InvalidArgument("bad port in '" + std::string(url) + "'");
  }
  return p;
}

// Runs the io_context until the pending operation completes; the stream's expiry bounds it.
void RunUntilDone(net::io_context& io) {
  io.restart();
  io.run();
}

template <typename Stream>
Result<HttpPostReply> Exchange(net::io_context& io, Stream& stream, beast::tcp_stream& lowest,
                               http::request<http::string_body>& req,
                               std::chrono::steady_clock::time_point deadline,
                               const std::string& where) {
  beast::error_code ec;
  lowest.expires_at(deadline);
  http::async_write(stream, req, [&](beast::error_code e, size_t) { ec = e; });
  RunUntilDone(io);
  if (ec) {
    return Status::Unavailable(
        where + ": " + (ec == beast::error::timeout ? "timeout" : "write: " + ec.message()));
  }
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(1 << 20);
  lowest.expires_at(deadline);
  http::async_read(stream, buffer, parser, [&](beast::error_code e, size_t) { ec = e; });
  RunUntilDone(io);
  if (ec) {
    return Status::Unavailable(where + ": " +
                               (ec == beast::error::timeout ? "timeout" : "read: " + ec.message()));
  }
  auto& res = parser.get();
  return HttpPostReply{static_cast<int>(res.result_int()), std::move(res.body())};
}

SendResult Classify(const Result<HttpPostReply>& reply) {
  SendResult r;
  if (!reply.ok()) {
    r.error = reply.status().message();
    r.retryable = reply.status().code() != StatusCode::kInvalidArgument;
    return r;
  }
  const int status = reply.value().status;
  if (status >= 200 && status < 300) {
    r.ok = true;
    return r;
  }
  std::string body = reply.value().body.substr(0, 300);
  while (!body.empty() && std::isspace(static_cast<unsigned char>(body.back()))) body.pop_back();
  r.error = "http " + std::to_string(status) + (body.empty() ? "" : ": " + body);
  r.retryable = status >= 500 || status == 408 || status == 429;
  return r;
}

class AlertmanagerSink : public Sink {
 public:
  AlertmanagerSink(std::string base_url, std::chrono::milliseconds timeout)
      : url_(std::move(base_url)), timeout_(timeout) {
    while (!url_.empty() && url_.back() == '/') url_.pop_back();
    post_url_ = url_ + "/api/v2/alerts";
  }
  const std::string& name() const override { return name_; }
  const std::string& url() const override { return url_; }
  size_t max_batch() const override { return 500; }
  bool resends() const override { return true; }
  SendResult Send(const std::vector<Alert>& alerts) override {
    return Classify(HttpPost(post_url_, AlertmanagerBody(alerts),
                             {{"Content-Type", "application/json"}}, timeout_));
  }

 private:
  const std::string name_ = "alertmanager";
  std::string url_, post_url_;
  std::chrono::milliseconds timeout_;
};

class WebhookSink : public Sink {
 public:
  WebhookSink(std::string url, std::string secret, std::chrono::milliseconds timeout)
      : url_(std::move(url)), secret_(std::move(secret)), timeout_(timeout) {}
  const std::string& name() const override { return name_; }
  const std::string& url() const override { return url_; }
  size_t max_batch() const override { return 1; }
  bool resends() const override { return false; }
  SendResult Send(const std::vector<Alert>& alerts) override {
    for (const Alert& a : alerts) {
      const std::string body = WebhookBody(a);
      std::vector<std::pair<std::string, std::string>> headers{
          {"Content-Type", "application/json"}};
      if (!secret_.empty()) {
        headers.emplace_back(kSignatureHeader, "sha256=" + HmacSha256Hex(secret_, body));
      }
      SendResult r = Classify(HttpPost(url_, body, headers, timeout_));
      if (!r.ok) return r;
    }
    SendResult ok;
    ok.ok = true;
    return ok;
  }

 private:
  const std::string name_ = "webhook";
  std::string url_, secret_;
  std::chrono::milliseconds timeout_;
};

}  // namespace

Status ValidateHttpUrl(std::string_view url) {
  auto p = ParseUrl(url);
  return p.ok() ? Status::Ok() : p.status();
}

Result<HttpPostReply> HttpPost(std::string_view url, std::string_view body,
                               const std::vector<std::pair<std::string, std::string>>& headers,
                               std::chrono::milliseconds timeout) {
  auto parsed = ParseUrl(url);
  if (!parsed.ok()) return parsed.status();
  const ParsedUrl& p = parsed.value();
  const std::string where = "POST " + std::string(url);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  try {
    net::io_context io;
    beast::error_code ec;
    tcp::resolver resolver(io);
    tcp::resolver::results_type endpoints;
    resolver.async_resolve(p.host, p.port, [&](beast::error_code e, tcp::resolver::results_type r) {
      ec = e;
      endpoints = std::move(r);
    });
    RunUntilDone(io);
    if (ec) return Status::Unavailable(where + ": resolve: " + ec.message());

    http::request<http::string_body> req{http::verb::post, p.target, 11};
    const bool default_port = p.port == (p.tls ? "443" : "80");
    const std::string host_header =
        (p.host.find(':') != std::string::npos ? "[" + p.host + "]" : p.host) +
        (default_port ? "" : ":" + p.port);
    req.set(http::field::host, host_header);
    req.set(http::field::user_agent, "ordertrace-alerts");
    for (const auto& [name, value] : headers) req.set(name, value);
    req.body() = std::string(body);
    req.keep_alive(false);
    req.prepare_payload();

    beast::tcp_stream tcp_stream(io);
    tcp_stream.expires_at(deadline);
    tcp_stream.async_connect(endpoints, [&](beast::error_code e, const tcp::endpoint&) { ec = e; });
    RunUntilDone(io);
    if (ec) {
      return Status::Unavailable(
          where + ": " +
          (ec == beast::error::timeout ? "connect timeout" : "connect: " + ec.message()));
    }
    if (!p.tls) {
      auto reply = Exchange(io, tcp_stream, tcp_stream, req, deadline, where);
      tcp_stream.socket().shutdown(tcp::socket::shutdown_both, ec);
      return reply;
    }
    ssl::context ctx(ssl::context::tls_client);
    ctx.set_default_verify_paths();
    ctx.set_verify_mode(ssl::verify_peer);
    beast::ssl_stream<beast::tcp_stream> stream(std::move(tcp_stream), ctx);
    if (!SSL_set_tlsext_host_name(stream.native_handle(), p.host.c_str())) {
      return Status::Unavailable(where + ": TLS: cannot set the server name");
    }
    stream.set_verify_callback(ssl::host_name_verification(p.host));
    beast::get_lowest_layer(stream).expires_at(deadline);
    stream.async_handshake(ssl::stream_base::client, [&](beast::error_code e) { ec = e; });
    RunUntilDone(io);
    if (ec) {
      return Status::Unavailable(
          where + ": " + (ec == beast::error::timeout ? "TLS timeout" : "TLS: " + ec.message()));
    }
    return Exchange(io, stream, beast::get_lowest_layer(stream), req, deadline, where);
  } catch (const std::exception& e) {
    return Status::Unavailable(where + ": " + e.what());
  }
}

std::unique_ptr<Sink> NewAlertmanagerSink(std::string base_url, std::chrono::milliseconds timeout) {
  return std::make_unique<AlertmanagerSink>(std::move(base_url), timeout);
}

std::unique_ptr<Sink> NewWebhookSink(std::string url, std::string secret,
                                     std::chrono::milliseconds timeout) {
  return std::make_unique<WebhookSink>(std::move(url), std::move(secret), timeout);
}

}  // namespace ordertrace::alert
