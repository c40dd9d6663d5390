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
                          std::chrono::milliseconds timeout) {
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
  try {
    boost::asio::io_context io;
    tcp::resolver resolver(io);
    beast::tcp_stream stream(io);
    stream.expires_after(timeout);
    stream.connect(resolver.resolve(host, port));
    http::request<http::empty_body> req{http::verb::get, std::string(target), 11};
    req.set(http::field::host, host);
    req.set(http::field::accept, "application/json");
    req.keep_alive(false);
    http::write(stream, req);
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(64 << 20);
    http::read(stream, buffer, parser);
    auto& res = parser.get();
    beast::error_code ec;
    stream.socket().shutdown(tcp::socket::shutdown_both, ec);
    return HttpReply{static_cast<int>(res.result_int()), std::string(res[http::field::content_type]),
                     std::move(res.body())};
  } catch (const std::exception& e) {
    return Status::Unavailable("GET " + std::string(base_url) + std::string(target) + ": " +
                               e.what());
  }
}

Result<HttpReply> HttpGet(uint16_t port, std::string_view target) {
  return HttpGet("http://127.0.0.1:" + std::to_string(port), target);
}

}  // namespace ordertrace::receive
