// Alerts about stuck orders, and the sinks they go to (docs/alerting.md).
//
//   Alert     one notification: a stuck order (alertname OrderStuck) or a storm of them at one
//             stage and service (OrderStuckStorm), firing or resolved
//   Sink      where alerts go: Alertmanager's API v2 (sinks.h: AlertmanagerSink, re-sent while
//             firing) or a generic JSON webhook (WebhookSink, one POST per event)
//   encoders  the JSON each sink sends, and the webhook's HMAC-SHA256 signature
//
// Label and annotation names never contain dots: Alertmanager refuses `order.id` with 400.
//
// Thread-safety: value types and pure functions; a Sink is used by one thread at a time (the
// dispatcher's sender).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"
#include "common/text_format.h"
#include "journey/types.h"

namespace ordertrace::alert {

inline constexpr char kOrderStuck[] = "OrderStuck";
inline constexpr char kOrderStuckStorm[] = "OrderStuckStorm";
// The message broker's management API does not answer (docs/broker.md); a system alert.
inline constexpr char kBrokerUnreachable[] = "BrokerUnreachable";

struct Alert {
  bool resolved = false;
  // A system alert (BrokerUnreachable): not about an order.  Its labels are alertname,
  // severity and `labels`; the order fields stay empty.
  std::string system;  // the alertname; "" for OrderStuck / OrderStuckStorm
  std::vector<std::pair<std::string, std::string>> labels;  // system alerts only
  bool storm = false;    // OrderStuckStorm (count orders), else OrderStuck (one order)
  std::string order_id;  // "" for a storm
  std::string stage;     // the stage the order is stuck in
  std::string service;   // the service expected to act next ("unknown" when none is known)
  std::string severity;  // per stage, from the rules
  std::string kind;      // StuckKindName: next_overdue, not_received, ... ("" for a storm)
  std::string summary;   // the diagnosis line
  std::string description;
  std::string runbook_url;
  std::vector<std::string> jaeger_links;  // latest trace first
  std::string jaeger_search_link;         // all of the order's traces on one page ("" none)
  // The order's page in the web UI ({ui}/orders/{id}); a storm: the board filtered to its stage
  // and service; "" when the gateway serves no UI.
  std::string ui_url;
  Nanos starts_at = 0;           // the order's stuck_since (a storm: when it began)
  Nanos ends_at = 0;             // resolved: when it moved on; 0 while firing
  Nanos stage_since = 0;         // when the order entered the stage
  Nanos deadline = 0;            // when it was due (without grace)
  size_t count = 0;              // a storm: orders stuck in the group
  std::string example_order_id;  // a storm: one of its orders

  // Details of the diagnosis for the webhook (empty when unknown).
  std::string expected;  // "milestone PRICE_CALCULATED", "a span from mes" ...
  std::string expected_stage;
  int64_t in_stage_seconds = 0;
  int64_t allowed_seconds = 0;
  std::string last_span_service, last_span_name, last_span_status, last_span_error;
  struct OpenHop {
    std::string message_id, exchange, routing_key, queue, send_service;
    Nanos published_at = 0;
  };
  std::vector<OpenHop> open_hops;
  bool heartbeat_expected = false;
  bool heartbeat_alive = false;
  Nanos last_heartbeat = 0;

  const char* alertname() const {
    return !system.empty() ? system.c_str() : storm ? kOrderStuckStorm : kOrderStuck;
  }
  // The link an alert leads with: the order's traces together, else its latest trace.
  std::string jaeger_url() const {
    if (!jaeger_search_link.empty()) return jaeger_search_link;
    return jaeger_trace_url();
  }
  std::string jaeger_trace_url() const { return jaeger_links.empty() ? "" : jaeger_links.front(); }
};

// BrokerUnreachable for the management API at `broker` (HOST:PORT), unreachable since
// `since` with `error`: labels alertname, broker, severity=critical; annotations summary and
// description with the error.
Alert BrokerUnreachableAlert(const std::string& broker, const std::string& error, Nanos since);

// Times are written with ordertrace::Rfc3339 (common/text_format.h): "2024-05-01T12:00:00.123Z".

// The JSON array Alertmanager's POST /api/v2/alerts takes.
std::string AlertmanagerBody(const std::vector<Alert>& alerts);

// The webhook's JSON object for one alert (schema in docs/alerting.md, "Webhook").
std::string WebhookBody(const Alert& alert);

// Lowercase hex HMAC-SHA256 of `body` with `secret` (OpenSSL).
std::string HmacSha256Hex(std::string_view secret, std::string_view body);

// Outcome of one attempt to deliver alerts.
struct SendResult {
  bool ok = false;
  bool retryable = true;  // false: the receiver refused the alerts (HTTP 4xx but 408/429)
  std::string error;      // "http 400: ...", "connect: refused", "timeout" ...
};

class Sink {
 public:
  virtual ~Sink() = default;
  // For metrics and logs: "alertmanager", "webhook".  Sinks of one kind share a name (an HA
  // pair of Alertmanagers is counted as one sink; logs name the URL).
  virtual const std::string& name() const = 0;
  virtual const std::string& url() const = 0;
  // Alerts per Send(): Alertmanager takes arrays, the webhook one event per request.
  virtual size_t max_batch() const = 0;
  // True: firing alerts are sent again every resend interval (Alertmanager resolves an alert
  // it has not heard of within its resolve_timeout).  False: one notification per event.
  virtual bool resends() const = 0;
  virtual SendResult Send(const std::vector<Alert>& alerts) = 0;
};

}  // namespace ordertrace::alert
