#include "receive/http_client.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <exception>

namespace ordertrace::receive {
namespace {
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = boost::asio::ip::tcp;
}  // namespace

Result<HttpReply> HttpGet(std::string_view base_url, std::string_view target,
                          const HttpGetOptions& options) {
  std::string_view rest = base_url;
  if (rest.substr(0, 7) != "http://") {
    return Status::InvalidArgument("expected an http://HOST:PORT URL, got '" +
                                   std::string(base_url) + "' (https arrives with TLS on the API)");
  }
  rest.remove_prefix(7);
  while (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  if (rest.find('/') != std::string_view::npos) rest = rest.substr(0, rest.find('/'));
  std::string host(rest), port = "80";
  if (!host.empty() && host.front() == '[') {
    const size_t close = host.find(']');
    if (close == std::string::npos) return Status::InvalidArgument("bad IPv6 address in " + host);
    if (close + 1 < host.size() && host[close + 1] == ':') port = host.substr(close + 2);
    host = host.substr(1, close - 1);
  } else if (const size_t colon = host.rfind(':'); colon != std::string::npos) {
    port = host.substr(colon + 1);
    host = host.substr(0, colon);
  }
  if (host.empty()) return Status::InvalidArgument("no host in '" + std::string(base_url) + "'");
  const std::string where = "GET " + std::string(base_url) + std::string(target) + ": ";
  try {
    // Asynchronous operations on one thread: Beast's tcp_stream timeout applies to them (not to
    // its synchronous calls), so a peer that accepts and never answers cannot hang the caller.
    boost::asio::io_context io;
    tcp::resolver resolver(io);
    beast::tcp_stream stream(io);
    http::request<http::empty_body> req{http::verb::get, std::string(target), 11};
    req.set(http::field::host, host);
    req.set(http::field::accept, "application/json");
    for (const auto& [name, value] : options.headers) req.set(name, value);
    req.keep_alive(false);
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(options.max_body_bytes);
    beast::error_code result;
    const char* step = "resolve";
    bool done = false;
    auto fail = [&](const char* what, beast::error_code ec) {
      step = what;
      result = ec;
      done = true;
    };
    stream.expires_after(options.timeout);
    resolver.async_resolve(host, port, [&](beast::error_code ec, tcp::resolver::results_type r) {
      if (ec) return fail("resolve", ec);
      stream.async_connect(r, [&](beast::error_code ec, const tcp::endpoint&) {
        if (ec) return fail("connect", ec);
        http::async_write(stream, req, [&](beast::error_code ec, size_t) {
          if (ec) return fail("write", ec);
          // The header first: a Content-Length over the limit fails before any body is read
          // (the parser's own body_limit was not applied to async reads here, Boost 1.74).
          http::async_read_header(stream, buffer, parser, [&](beast::error_code ec, size_t) {
            if (ec) return fail("read", ec);
            if (parser.content_length() && *parser.content_length() > options.max_body_bytes) {
              return fail("read", http::error::body_limit);
            }
            http::async_read(stream, buffer, parser,
                             [&](beast::error_code ec, size_t) { fail("read", ec); });
          });
        });
      });
    });
    // The resolver has no timer of its own: the whole call is bounded here as well.
    io.run_for(options.timeout + std::chrono::milliseconds(100));
    if (!done) {
      return Status::Unavailable(where + "timed out after " +
                                 std::to_string(options.timeout.count()) + "ms");
    }
    if (result == beast::error::timeout) {
      return Status::Unavailable(where + std::string(step) + " timed out after " +
                                 std::to_string(options.timeout.count()) + "ms");
    }
    if (result == http::error::body_limit) {
      return Status::Unavailable(where + "response body larger than " +
                                 std::to_string(options.max_body_bytes) + " bytes");
    }
    if (result) return Status::Unavailable(where + step + ": " + result.message());
    auto& res = parser.get();
    if (res.body().size() > options.max_body_bytes) {  // chunked or read to EOF
      return Status::Unavailable(where + "response body larger than " +
                                 std::to_string(options.max_body_bytes) + " bytes");
    }
    beast::error_code ec;
    stream.socket().shutdown(tcp::socket::shutdown_both, ec);
    return HttpReply{static_cast<int>(res.result_int()),
                     std::string(res[http::field::content_type]), std::move(res.body())};
  } catch (const std::exception& e) {
    return Status::Unavailable(where + e.what());
  }
}

Result<HttpReply> HttpGet(std::string_view base_url, std::string_view target,
                          std::chrono::milliseconds timeout) {
  HttpGetOptions options;
  options.timeout = timeout;
  return HttpGet(base_url, target, options);
}

Result<HttpReply> HttpGet(uint16_t port, std::string_view target) {
  return HttpGet("http://127.0.0.1:" + std::to_string(port), target);
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

}  // namespace ordertrace::receive
