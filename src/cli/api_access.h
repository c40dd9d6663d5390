// How the CLI's API commands (`order`, `stuck`, `watch`) reach a gateway whose API is behind
// sign-in and HTTPS: a bearer token from --token-file (its first line, trimmed) or, without the
// flag, the environment variable ORDERTRACE_TOKEN; a CA file to trust for https:// from
// --ca-file or ORDERTRACE_CA_FILE (the flag wins, as for the token).  The token goes only in the
// Authorization header: never in a message, and never over plain http:// to a host that is not
// loopback (refused: a token in clear text on the network is a token given away).
//
// Thread-safety: ApiAccess is a plain value; an ApiClient is immutable after Make() and its
// Get() and PostJson() may be called from any thread.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"
#include "net/http_client.h"

namespace ordertrace::cli {

// The flags; empty: not given.
struct ApiAccess {
  std::string token_file;
  std::string ca_file;
};

class ApiClient {
 public:
  // Resolves the token and CA file (flags, then `getenv`, default std::getenv) for the API at
  // `api`.  InvalidArgument naming the file or variable, never the token: "--token-file
  // '/x': No such file or directory", "--token-file '/x' is empty", "--ca-file '/c': ...",
  // "refusing to send the token over plain http:// to 10.0.0.5: use https://".
  static Result<ApiClient> Make(const std::string& api, const ApiAccess& access,
                                const std::function<const char*(const char*)>& getenv = nullptr);

  // GET `target` from the API (Accept: application/json, Authorization when there is a token).
  Result<net::HttpReply> Get(std::string_view target,
                             std::chrono::milliseconds timeout = std::chrono::seconds(10)) const;
  // POST `json_body` (Content-Type: application/json) to `target`, as Get() asks.
  Result<net::HttpReply> PostJson(
      std::string_view target, std::string_view json_body,
      std::chrono::milliseconds timeout = std::chrono::seconds(10)) const;

  bool has_token() const { return has_token_; }

 private:
  std::string api_;
  net::HttpOptions options_;
  bool has_token_ = false;
};

// What a refusal of the API means for the user, or "" for other statuses: 401 "the API wants a
// token: --token-file or ORDERTRACE_TOKEN" (or, when one was sent, that it was not accepted),
// 403 the user lacks the Developer or DevOps role, 503 the API cannot check sign-ins now.
std::string ExplainRefusal(int status, bool sent_token);

}  // namespace ordertrace::cli
