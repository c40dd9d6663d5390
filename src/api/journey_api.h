// The journey API on the --http listener (docs/api.md):
//
//   GET /api/v1/orders/{id}   the order's journey: stage, stuck, diagnosis (null unless
//                             stuck), milestones, spans, hops.  404 + JSON error when unknown.
//   GET /api/v1/orders?stuck=true|false&stage=S&service=S&limit=N&cursor=C
//                             {"orders": [...], "next_cursor": "..." | null}
//   GET /api/v1/broker        RabbitMQ as the broker monitor sees it (docs/broker.md); 404 when
//                             no broker is configured.  Never affects /readyz.
//
// Every route runs behind the ApiGuard (api/api_guard.h): request id, sign-in, the action's
// role check and one audit event per request.  Actions: orders.read, orders.list, broker.read.
//
// Thread-safety: handlers run concurrently; the engine and store are thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "api/api_guard.h"
#include "common/status.h"
#include "journey/diagnosis.h"
#include "journey/engine.h"
#include "net/http_server.h"

namespace ordertrace::api {

struct JourneyApiOptions {
  std::string jaeger_ui = "http://localhost:16686";
  uint32_t max_spans = 1000;  // spans in one order view
  size_t max_limit = 1000;    // largest page of the list
  size_t default_limit = 100;
  // The broker's view for diagnoses; nullptr without a broker.  Must outlive the server.
  const journey::BrokerView* broker = nullptr;
};

// Registers the routes above.  `engine` and `guard` must outlive the server.
void RegisterJourneyRoutes(net::HttpServer& server, journey::Engine& engine, const ApiGuard& guard,
                           JourneyApiOptions options);

// GET /api/v1/broker: `status_json` returns the body (BrokerMonitor::StatusJson), or is empty
// when no broker is configured (then 404 with the config key to set).
void RegisterBrokerRoute(net::HttpServer& server, const ApiGuard& guard,
                         std::function<std::string()> status_json);

// JSON of one order's journey and of a list entry (exposed for tests and the CLI's --json).
nlohmann::json OrderJson(const journey::Journey& journey,
                         const std::optional<journey::Diagnosis>& diagnosis,
                         std::string_view jaeger_ui);
nlohmann::json OrderSummaryJson(const journey::OrderRow& row);

}  // namespace ordertrace::api
