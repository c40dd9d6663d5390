// A small blocking HTTP/1.1 GET client on Boost.Beast, for the CLI (`ordertrace order`,
// `ordertrace stuck` ask the gateway's API), the broker monitor (RabbitMQ's management API,
// with HTTP Basic auth) and tests.
//
// Thread-safety: free functions; each call uses its own connection.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace ordertrace::receive {

struct HttpReply {
  int status = 0;
  std::string content_type;
  std::string body;
};

struct HttpGetOptions {
  // For the whole request: resolve, connect, write, read.  The call returns Unavailable
  // ("timed out after 5000ms") when it passes, so a hung peer cannot block the caller.
  std::chrono::milliseconds timeout{10000};
  std::vector<std::pair<std::string, std::string>> headers;  // e.g. {"Authorization", "Basic …"}
  uint64_t max_body_bytes = uint64_t{64} << 20;  // a larger body is an error naming the limit
};

// GET `target` ("/api/v1/orders?stuck=true") from `base_url` ("http://127.0.0.1:8080").
// Errors (bad URL, refused connection, timeout, a body over the limit) come back as
// Unavailable/InvalidArgument with the address in the message; any HTTP status is a successful
// reply.
Result<HttpReply> HttpGet(std::string_view base_url, std::string_view target,
                          const HttpGetOptions& options);
Result<HttpReply> HttpGet(std::string_view base_url, std::string_view target,
                          std::chrono::milliseconds timeout = std::chrono::milliseconds(10000));

// The same against 127.0.0.1:`port` (tests).
Result<HttpReply> HttpGet(uint16_t port, std::string_view target);

// "Basic " + base64(user ":" password), the Authorization header of HTTP Basic auth (RFC 7617).
std::string BasicAuthorization(std::string_view user, std::string_view password);

}  // namespace ordertrace::receive
