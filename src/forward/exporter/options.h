// What the OTLP exporters share: the upstream URL and headers checked against the rules of
// each transport, and the pieces of answer classification common to OTLP/gRPC and OTLP/HTTP
// (retry delays, partial success).  Internal to forward/exporter/.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"
#include "forward/exporter/exporter.h"
#include "net/url.h"

namespace google::rpc {
class Status;
}

namespace ordertrace::forward {

inline constexpr const char* kUserAgent = "ordertrace";
// Retry delays beyond this are clamped (and an int of milliseconds cannot overflow).
inline constexpr int64_t kMaxRetryAfterMs = 24LL * 3600 * 1000;

// The upstream: grpc://host:port, grpcs://host:port (TLS), http(s)://host[:port][/path]
// (the path defaults to /v1/traces).
struct Upstream {
  net::Url url;  // url.target: the HTTP request target; "" for gRPC
  bool grpc = false;
};

// InvalidArgument "upstream URL '<url, credentials redacted>': <what is wrong>".
Result<Upstream> ParseUpstream(const std::string& url);

// Checks the configured headers against the transport's rules (names are tokens, gRPC
// metadata keys are lower-case, no control characters, no framing headers the exporter sets
// itself) and returns them with lower-case names.
Result<std::vector<std::pair<std::string, std::string>>> CheckHeaders(
    const std::vector<std::pair<std::string, std::string>>& headers, bool grpc);

int ClampRetryAfter(int64_t ms);
ExportResult Retryable(std::string code, std::string reason, int retry_after_ms = -1);
ExportResult Permanent(std::string code, std::string reason);

// Fills partial success from an ExportTraceServiceResponse (protobuf or JSON); an unreadable
// answer is logged and otherwise ignored (the upstream did accept the request).
void ReadPartialSuccess(const std::string& body, bool json, ExportResult& r);

// The retry delay of a google.rpc.RetryInfo among a google.rpc.Status's details; -1 if none.
int RetryDelayMs(const google::rpc::Status& status);

std::string Lower(std::string_view s);

}  // namespace ordertrace::forward
