// QueryClient: reads traces back from Jaeger's query service, through its v1 HTTP API (the one
// the Jaeger UI uses, under the query service's base_path):
//
//   GET {jaeger.query_url}/api/traces/{trace_id}?start={µs}&end={µs}
//
// For GET /api/v1/orders/{id}?include=jaeger (docs/api.md): the order's spans as Jaeger holds
// them, which the journey store does not keep (attributes, events, links, resources).  The
// bounds come from the order's own span times, widened by `margin` for clock skew between the
// services and the gateway; they let a store that partitions by time (Elasticsearch, OpenSearch)
// read fewer indices, and are a hint only to the others.
//
// One read-back, GetTraces(), asks for a few traces at a time (`parallel`, each worker on one
// keep-alive connection) and is bounded as a whole: `timeout` for all its requests (a trace not
// yet asked when it passes is reported as not asked), and `max_response_bytes` for Jaeger's
// answers together (each request may read what is left of it).
//
// Jaeger's answers are untrusted: a size limit, a nesting limit before parsing, a shape check
// after it; anything else is a failed trace with a reason, never an exception or a crash.  Error
// messages name the failure ("Jaeger is not reachable: connect: Connection refused"), never a
// header or a body of the request.
//
// Thread-safety: a QueryClient is immutable after Create(); GetTrace() and GetTraces() may be
// called from any number of threads at once (each call has its own connections).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "net/tls.h"
#include "net/url.h"

namespace ordertrace::jaeger {

struct QueryClientOptions {
  // Jaeger's query service, its base_path included: http://127.0.0.1:16686/jaeger.
  std::string query_url;
  std::chrono::milliseconds timeout{30000};          // one read-back, all its requests
  uint64_t max_response_bytes = uint64_t{64} << 20;  // Jaeger's answers in one read-back
  std::string ca_file;                               // https: trust these CAs ("" system's)
  size_t parallel = 4;                               // requests at a time (1..16)
  // Added before the first and after the last span time of a trace in the bounds sent.
  std::chrono::milliseconds margin{std::chrono::hours(1)};
};

// One trace to read back, with the times the journey saw in it (0: unknown, no bound sent).
struct TraceQuery {
  std::string trace_id;  // as stored: 32 lowercase hex
  Nanos first_ns = 0;
  Nanos last_ns = 0;
};

struct TraceAnswer {
  enum class Outcome {
    kFound,     // spans and processes are Jaeger's
    kMissing,   // Jaeger does not hold the trace (never stored, or gone by its TTL)
    kFailed,    // the request or the answer failed: `error`
    kNotAsked,  // the read-back's time or size budget was spent before it: `error`
  };
  std::string trace_id;
  Outcome outcome = Outcome::kFailed;
  nlohmann::json spans = nlohmann::json::array();       // Jaeger's v1 span objects
  nlohmann::json processes = nlohmann::json::object();  // Jaeger's v1 processes, by key
  std::string error;
  uint64_t bytes = 0;  // of Jaeger's answer
};

class QueryClient {
 public:
  // Checks the options: the URL (http or https, no query or fragment), the CA file (read now),
  // `parallel`.  InvalidArgument naming the problem.
  static Result<std::unique_ptr<QueryClient>> Create(QueryClientOptions options);

  // Reads `traces` back, in their order (the answers are in the same order).
  std::vector<TraceAnswer> GetTraces(const std::vector<TraceQuery>& traces) const;
  TraceAnswer GetTrace(const TraceQuery& trace) const;

  const QueryClientOptions& options() const { return options_; }

 private:
  QueryClient(QueryClientOptions options, net::Url url, std::string base_path,
              std::shared_ptr<const net::TlsClientContext> tls);

  // The request target for `trace`: {base_path}/api/traces/{id}?start=&end=.
  std::string TargetOf(const TraceQuery& trace) const;

  const QueryClientOptions options_;
  const net::Url url_;
  const std::string base_path_;  // "/jaeger", or "" at the root
  const std::shared_ptr<const net::TlsClientContext> tls_;
};

// The answer of GET /api/traces/{id}, as the client judges it: HTTP `status` and `body`.  200 with
// {"data": [{"spans": [...], "processes": {...}}]}: found; 200 with no data, or 404 with Jaeger's
// JSON errors: missing; anything else (another status, a 404 that is not Jaeger's, malformed
// JSON, nesting deeper than 64, the wrong shape): failed with the reason.  Exposed for tests and
// the fuzz target.
TraceAnswer ParseTraceAnswer(std::string_view trace_id, int status, std::string_view body);

}  // namespace ordertrace::jaeger
