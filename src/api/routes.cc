#include "api/routes.h"

#include <string>

namespace ordertrace::api {

const char* Readiness::Name(State s) {
  switch (s) {
    case State::kStarting:
      return "starting";
    case State::kReady:
      return "ready";
    case State::kDraining:
      return "draining";
  }
  return "unknown";
}

net::HttpHandler HealthzHandler() {
  return [](net::HttpRequest&, net::HttpResponse& res) {
    res.status = 200;
    res.body = "ok";
  };
}

net::HttpHandler ReadyzHandler(const Readiness* readiness) {
  return [readiness](net::HttpRequest&, net::HttpResponse& res) {
    const Readiness::State state = readiness->state();
    res.status = state == Readiness::State::kReady ? 200 : 503;
    res.body = Readiness::Name(state);
  };
}

net::HttpHandler MetricsHandler(const metrics::Registry* registry) {
  return [registry](net::HttpRequest&, net::HttpResponse& res) {
    res.status = 200;
    res.content_type = kMetricsContentType;
    res.body = registry->Serialize();
  };
}

void RegisterRoutes(net::HttpServer& server, const Readiness& readiness,
                    const metrics::Registry& registry) {
  server.Route("GET", "/healthz", HealthzHandler());
  server.Route("GET", "/readyz", ReadyzHandler(&readiness));
  server.Route("GET", "/metrics", MetricsHandler(&registry));
  server.Route("GET", "/", [](net::HttpRequest&, net::HttpResponse& res) {
    res.body =
        "ordertrace gateway\n"
        "  GET /healthz  liveness\n"
        "  GET /readyz   readiness (503 while starting or draining)\n"
        "  GET /metrics  Prometheus metrics\n";
  });
}

}  // namespace ordertrace::api
