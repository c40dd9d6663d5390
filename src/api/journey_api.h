// The journey API on the --http listener (docs/api.md):
//
//   GET /api/v1/orders/{id}   the order's journey: stage, stuck, diagnosis (null unless
//                             stuck), milestones, spans, hops.  404 + JSON error when unknown.
//   GET /api/v1/orders?stuck=true|false&stage=S&service=S&limit=N&cursor=C
//                             {"orders": [...], "next_cursor": "..." | null}
//   GET /api/v1/broker        RabbitMQ as the broker monitor sees it (docs/broker.md); 404 when
//                             no broker is configured.  Never affects /readyz.
//
// Every route asks the Authorizer first: it is the one place sign-in and roles plug in (the
// security issue adds OIDC there); until then AllowAll is used on a loopback listener.
//
// Thread-safety: handlers run concurrently; the engine and store are thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"
#include "journey/diagnosis.h"
#include "journey/engine.h"
#include "net/http_server.h"

namespace ordertrace::api {

// Decides whether a request may read journeys.  Returns OK, or an error whose code maps to the
// HTTP status (kUnauthenticated-like errors as 401/403 come with the security issue).
class Authorizer {
 public:
  virtual ~Authorizer() = default;
  // `action` names what is asked: "orders.read", "orders.list".
  virtual Status Authorize(const net::HttpRequest& req, std::string_view action) const = 0;
};

class AllowAll : public Authorizer {
 public:
  Status Authorize(const net::HttpRequest&, std::string_view) const override {
    return Status::Ok();
  }
};

struct JourneyApiOptions {
  std::string jaeger_ui = "http://localhost:16686";
  uint32_t max_spans = 1000;  // spans in one order view
  size_t max_limit = 1000;    // largest page of the list
  size_t default_limit = 100;
  // The broker's view for diagnoses; nullptr without a broker.  Must outlive the server.
  const journey::BrokerView* broker = nullptr;
};

// Registers the routes above.  `engine` and `auth` must outlive the server.
void RegisterJourneyRoutes(net::HttpServer& server, journey::Engine& engine, const Authorizer& auth,
                           JourneyApiOptions options);

// GET /api/v1/broker: `status_json` returns the body (BrokerMonitor::StatusJson), or is empty
// when no broker is configured (then 404 with the config key to set).
void RegisterBrokerRoute(net::HttpServer& server, const Authorizer& auth,
                         std::function<std::string()> status_json);

// JSON of one order's journey and of a list entry (exposed for tests and the CLI's --json).
nlohmann::json OrderJson(const journey::Journey& journey,
                         const std::optional<journey::Diagnosis>& diagnosis,
                         std::string_view jaeger_ui);
nlohmann::json OrderSummaryJson(const journey::OrderRow& row);

}  // namespace ordertrace::api
