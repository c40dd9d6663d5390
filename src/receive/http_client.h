// A small blocking HTTP/1.1 GET client on Boost.Beast, for the CLI (`ordertrace order`,
// `ordertrace stuck` ask the gateway's API) and for tests.
//
// Thread-safety: free functions; each call uses its own connection.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace ordertrace::receive {

struct HttpReply {
  int status = 0;
  std::string content_type;
  std::string body;
};

// GET `target` ("/api/v1/orders?stuck=true") from `base_url` ("http://127.0.0.1:8080").
// Errors (bad URL, refused connection, timeout) come back as Unavailable/InvalidArgument with
// the address in the message; any HTTP status is a successful reply.
Result<HttpReply> HttpGet(std::string_view base_url, std::string_view target,
                          std::chrono::milliseconds timeout = std::chrono::milliseconds(10000));

// The same against 127.0.0.1:`port` (tests).
Result<HttpReply> HttpGet(uint16_t port, std::string_view target);

}  // namespace ordertrace::receive
