// The gateway's own HTTP endpoints on the --http listener: liveness, readiness and Prometheus
// metrics.  The journey API (api/journey_api.h) registers its routes on the same server.
//
//   GET /healthz  200 "ok" while the process runs (liveness: restart me if this fails)
//   GET /readyz   200 "ready" once the receivers listen; 503 "starting" / "draining" otherwise
//                 (readiness: send me traffic only on 200)
//   GET /metrics  Prometheus text exposition format 0.0.4 (optionally behind a static token)
//   GET /         a short index of the above (and of the web UI at /ui/ when it is served)
//
// Thread-safety: handlers run concurrently on the server's threads; Readiness is atomic.
#pragma once

#include <atomic>

#include "common/metrics.h"
#include "net/http_server.h"

namespace ordertrace::api {

inline constexpr char kMetricsContentType[] = "text/plain; version=0.0.4; charset=utf-8";

// The gateway's readiness, set by its lifecycle and read by GET /readyz.
class Readiness {
 public:
  enum class State { kStarting, kReady, kDraining };
  void Set(State s) noexcept { state_.store(s, std::memory_order_release); }
  State state() const noexcept { return state_.load(std::memory_order_acquire); }
  static const char* Name(State s);  // "starting", "ready", "draining"

 private:
  std::atomic<State> state_{State::kStarting};
};

net::HttpHandler HealthzHandler();
net::HttpHandler ReadyzHandler(const Readiness* readiness);
// With `token_sha256` (64 lower-case hex digits, auth.metrics_token_sha256) the scrape must
// send `Authorization: Bearer <token>` whose SHA-256 matches (compared in constant time), else
// 401; "" leaves /metrics open (it carries no order ids or personal data).
net::HttpHandler MetricsHandler(const metrics::Registry* registry, std::string token_sha256 = "");

// Registers the routes above on `server` (before its Start()).  `readiness` and `registry`
// must outlive the server.  `ui`: the index names the web UI (src/ui serves it).
void RegisterRoutes(net::HttpServer& server, const Readiness& readiness,
                    const metrics::Registry& registry, std::string metrics_token_sha256 = "",
                    bool ui = false);

}  // namespace ordertrace::api
