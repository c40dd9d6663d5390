// What GET /api/v1/flow and GET /api/v1/kpi share: the `window` query parameter, percentiles
// of a sample, and the JSON answer with its ETag (docs/api.md).
//
// Thread-safety: pure functions.
#pragma once

#include <chrono>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "api/api_guard.h"
#include "common/clock.h"
#include "common/status.h"
#include "common/thread_annotations.h"
#include "net/http_server.h"

namespace ordertrace::api {

// The accepted windows of a route: `min`..`max`, `fallback` when the query has none.
struct WindowRange {
  Duration min;
  Duration max;
  Duration fallback;
};

// Parses the query string: `window=<duration>` (ParseDuration: 30m, 1h, 7d ...) within `range`,
// and nothing else.  nullopt after answering 400 (naming the accepted form) for anything else.
std::optional<Duration> ParseWindowQuery(const std::string& query, const WindowRange& range,
                                         net::HttpResponse& res);

// The q-quantile (0 < q <= 1) of `values` by the nearest-rank method; null when empty.  Sorts
// `values`.
nlohmann::json Quantile(std::vector<double>& values, double q);

// Seconds between two Unix-nanosecond times.
inline double Seconds(Nanos from, Nanos to) { return static_cast<double>(to - from) / 1e9; }

// The last answer per key (the window, and whatever else it depends on), reused for `reuse_for`:
// however many clients poll, a window's answer is computed at most once per that time (the scans
// behind it cost about a second per 200k orders, docs/benchmarks.md "Flow and KPI").  A request
// arriving while its answer is computed waits for that computation rather than starting another.
//
// Thread-safety: Get() from any thread.
class AnswerCache {
 public:
  explicit AnswerCache(Duration reuse_for) : reuse_for_(reuse_for) {}
  Result<nlohmann::json> Get(const std::string& key, Nanos now,
                             const std::function<Result<nlohmann::json>()>& compute) EXCLUDES(mu_);

 private:
  const Duration reuse_for_;
  Mutex mu_;
  std::map<std::string, std::pair<Nanos, nlohmann::json>> answers_ GUARDED_BY(mu_);
};

// Answers `body` as JSON with `Cache-Control: no-cache` and an ETag; 304 without a body when the
// request's If-None-Match names it (api/etag.h).  The ETag hashes the body without its "as_of"
// (and the request's path and query): the answers are reused per window (AnswerCache) and their
// figures move as the window slides, so Engine::revision() alone would give stale 304s.
void AnswerJson(const net::HttpRequest& req, net::HttpResponse& res, nlohmann::json body);

// A windowed route: GET `path` behind `guard` (action orders.list) parses ?window= within
// `range`, records resource type `type` and the window in the audit, and answers
// compute(window, now) through an AnswerCache of `reuse_for`, keyed by the window and what
// `extra_key` returns (an empty function: nothing else).  A failed computation is 500.
struct WindowedRoute {
  std::string path;
  std::string type;
  WindowRange range;
  Duration reuse_for;
  std::function<std::string()> extra_key;
  std::function<Result<nlohmann::json>(Duration window, Nanos now)> compute;
};
void RegisterWindowedRoute(net::HttpServer& server, const ApiGuard& guard, const Clock& clock,
                           WindowedRoute route);

// 4xx/5xx {"error": ..., "status": N}.
void AnswerError(net::HttpResponse& res, int status, const std::string& message);

}  // namespace ordertrace::api
