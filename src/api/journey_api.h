// The journey API on the --http listener (docs/api.md):
//
//   GET /api/v1/orders/{id}   the order's journey: stage, stuck, diagnosis (null unless
//                             stuck), milestones, spans, hops, links to Jaeger.  404 + JSON
//                             error when unknown.
//       ?include=jaeger       adds "jaeger": the order's traces read back from Jaeger
//                             (jaeger/read_back.h); needs traces.read too (kTracesReadAction),
//                             and 409 when Jaeger's query service is not configured.  Jaeger
//                             down or slow is no error of the request: "jaeger"."error" says so.
//   GET /api/v1/orders?stuck=true|false&stage=S&service=S&kind=K&queue=Q&trace_id=T
//                      &message_id=M&partner=P&sort=O&limit=N&cursor=C&closed=false
//                             {"orders": [...], "total": N, "next_cursor": "..." | null,
//                              "unsettled": N}
//                             stage, service, kind and queue repeat (any of the values), the
//                             filters combine (all of them); sort: order_id (default),
//                             stuck_since, -stuck_since (stuck orders only), stage_since,
//                             -stage_since; the cursor (base64url) holds the sort's key and the
//                             order id of the page's last order, and is 400 with another sort.
//                             Each entry has its deadline and its oldest open hop with the
//                             broker's sentence for it.  "unsettled" > 0: verdicts of the
//                             last moments the filters, sort and total do not see yet (the
//                             rows are current); not cached.
//   POST /api/v1/orders/lookup-partner?<the same filters but partner>  {"partner": "P"}
//                             the same list, with the partner out of the URL (and so out of
//                             proxies' logs and browser histories)
//   GET /api/v1/summary       the board's figures from the engine's memory (Engine::Summary):
//                             totals, active / stuck / time in stage per stage in rule order,
//                             stuck orders per stage x expected service x kind.
//   GET /api/v1/rules         the lifecycle rules loaded, read-only.
//
// `partner` is a pseudonym (`pse:<key id>:...`, searched as it is) or a clear partner id: that
// needs the action orders.lookup_partner too (DevOps by default), and redaction on; the server
// hashes it under every retained key, answers with the orders of any of the pseudonyms (and
// `partner_pseudonyms`), and the audit line says a clear lookup happened and which pseudonyms
// were searched.  The clear value is never written anywhere: audit, logs, errors, answer.
//   GET /api/v1/broker        RabbitMQ as the broker monitor sees it (docs/broker.md); 404 when
//                             no broker is configured.  Never affects /readyz.
//
// Every route runs behind the ApiGuard (api/api_guard.h): request id, sign-in, the action's
// role check and one audit event per request.  Actions: orders.read, orders.list (the list,
// summary, rules), broker.read, orders.lookup_partner (kLookupPartnerAction), traces.read
// (kTracesReadAction).
//
// The GETs of the list, an order (without include=jaeger), summary and rules are conditional
// (api/etag.h): an ETag from the engine's revision (Engine::revision(); the rules' generation
// for rules), the broker's generation where broker sentences show, and the request's target;
// If-None-Match that matches is 304; Cache-Control: no-cache.
//
// Thread-safety: handlers run concurrently; the engine and store are thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "api/api_guard.h"
#include "common/clock.h"
#include "common/status.h"
#include "journey/diagnosis.h"
#include "journey/engine.h"
#include "net/http_server.h"
#include "redact/pseudonym.h"

namespace ordertrace::api {

// The action a lookup by a clear partner id needs besides orders.list.
inline constexpr char kLookupPartnerAction[] = "orders.lookup_partner";
// The action reading an order's traces back from Jaeger needs besides orders.read.
inline constexpr char kTracesReadAction[] = "traces.read";

struct JourneyApiOptions {
  std::string jaeger_ui = "http://localhost:16686";
  uint32_t max_spans = 1000;  // spans in one order view
  size_t max_limit = 1000;    // largest page of the list
  size_t default_limit = 100;
  // How long the list waits for stuck verdicts the store has taken but not yet indexed (the
  // SQLite store's verdict log after a burst of flags); past it the answer says how many are
  // left ("unsettled") and is not cached (journey::OrderQuery::settle_wait).
  Duration list_settle_wait = std::chrono::seconds(1);
  // The broker's view for diagnoses; nullptr without a broker.  Must outlive the server.
  const journey::BrokerView* broker = nullptr;
  // The current pseudonymizer (a key rotation replaces it), to recognise pseudonyms and to hash
  // a clear partner id under every retained key.  Unset, or returning null: redaction is off,
  // and a lookup by a clear id is refused.  Called on the API's threads.
  std::function<std::shared_ptr<const redact::Pseudonymizer>()> pseudonymizer;
  // The order's traces as Jaeger holds them, for ?include=jaeger (the gateway binds
  // jaeger::ReadBack to its QueryClient; the call waits for Jaeger, within jaeger.timeout).
  // Unset: Jaeger's query service is not configured (jaeger.query_url), and ?include=jaeger is
  // 409.  Called on the API's threads.
  std::function<nlohmann::json(const journey::Journey&)> jaeger_read_back;
  // Totals of other parts for GET /api/v1/summary: spans the receivers accepted and alerts the
  // dispatcher delivered, since start.  Unset, or returning nullopt: null in the answer (no
  // alert sink configured, say).  Called on the API's threads; must be cheap (every request).
  std::function<std::optional<uint64_t>()> spans_accepted_total;
  std::function<std::optional<uint64_t>()> alerts_sent_total;
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
