// The journey module's value types: what the gateway keeps about an order.
//
// An order's journey is built from facts extracted from accepted spans (facts.h): the spans
// that carry the order's id, the milestones they reached, and the message hops (a RabbitMQ
// publish and the processing of the same message).  The types here are plain values shared by
// the fact extractor, the engine, the stores and the API.
//
// Times are Unix nanoseconds from the spans (event time), never the gateway's arrival time, so
// late and out-of-order arrival give the same journey.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "ordertrace/conventions.h"

namespace ordertrace::journey {

// order.step.status is ordertrace::StepStatus (ordertrace/conventions.h, shared with
// libordertrace): kUnset for a span without it.

// The part a span plays in a message hop (messaging.operation.type, or the span kind).
enum class HopRole : uint8_t { kNone = 0, kSend, kProcess };
const char* HopRoleName(HopRole r);  // "", "send", "process"

// One span as a journey keeps it: compact, strings owned.  Values are stored as they arrive:
// redaction (src/redact/) runs in front of the journeys, so personal data is pseudonymised
// already.
struct SpanRecord {
  std::string order_id;  // "" only for a process span matched to its order through the message
  std::string trace_id;  // 32 lowercase hex
  std::string span_id;   // 16 lowercase hex
  std::string parent_span_id;  // 16 hex, "" for a root span
  std::string service;         // resource service.name
  std::string name;            // span name (operation)
  Nanos start_ns = 0;
  Nanos end_ns = 0;
  uint8_t otel_status = 0;  // 0 unset, 1 ok, 2 error
  StepStatus step = StepStatus::kUnset;
  std::string error;  // error.type, else the exception event, else the error status message
  std::string stage;  // milestone this span reached ("" none); a stage name of the rules
  bool heartbeat = false;
  HopRole hop = HopRole::kNone;
  std::string message_id;          // messaging.message.id
  std::string exchange;            // from messaging.destination.name "{exchange}:{routing_key}"
  std::string routing_key;         // messaging.rabbitmq.destination.routing_key
  std::string queue;               // messaging.destination.subscription.name or rabbitmq queue
  std::vector<std::string> links;  // span ids (16 hex) this span links to (hop matching)
  // The span's partner.id (a pseudonym when redaction is on; "" none).  The engine folds it into
  // the order (OrderRow::partner); stores do not keep it per span (GetJourney's spans have "").
  std::string partner;

  bool operator==(const SpanRecord&) const = default;
};

// partner.id values longer than this are not kept as the order's partner (a pseudonym is about
// 30 bytes; a longer value is no id, and would only bloat the orders index).
inline constexpr size_t kMaxPartnerBytes = 256;

// The first time an order reached a stage (a milestone seen twice counts once: the earliest).
struct Milestone {
  std::string order_id;
  std::string stage;
  Nanos at_ns = 0;  // end of the span that reached it
  std::string service;
  std::string trace_id;
  std::string span_id;

  bool operator==(const Milestone&) const = default;
};

// A message hop: a publish (send span) and the processing of the same message.  Keyed by the
// send span's id; the process side arrives later (or earlier) and fills the rest.
struct Hop {
  std::string order_id;
  std::string send_span_id;  // key
  std::string send_trace_id;
  std::string send_service;
  std::string message_id;
  std::string exchange;
  std::string routing_key;
  std::string queue;
  Nanos published_ns = 0;  // 0 when only the process side is known (not stored as open)
  Nanos processed_ns = 0;  // 0 while open
  std::string process_service;
  std::string process_span_id;
  std::string process_trace_id;

  bool open() const { return processed_ns == 0; }
  bool operator==(const Hop&) const = default;
};

// Why an order is stuck (the first expectation it missed).
enum class StuckKind : uint8_t {
  kNone = 0,
  kNextOverdue,        // the next milestone did not arrive within its deadline
  kNotReceived,        // the named service never picked the order up (received_by)
  kNotProcessed,       // the named service never processed the stage (processed_by)
  kSilent,             // no heartbeat within the interval
  kMessageUnprocessed  // a published message was not processed within messages.processed_within
};
const char* StuckKindName(StuckKind k);  // "", "next_overdue", "not_received", ...

// An order's current state, one row per order in the store.  The engine derives it from the
// facts (commutatively: the same set of facts in any order gives the same row) and adds the
// detector's verdict.
struct OrderRow {
  std::string order_id;
  std::string stage;         // highest stage reached in rule order; "" before any milestone
  Nanos stage_start_ns = 0;  // start of the earliest span that reached `stage`
  Nanos stage_ns = 0;        // its end: when the order entered the stage
  Nanos first_ns = 0;        // earliest span start of the order
  Nanos last_ns = 0;         // latest span end of the order
  Nanos last_heartbeat_ns = 0;
  // Latest span start per service that acted on the order (received_by / processed_by).
  std::vector<std::pair<std::string, Nanos>> services;
  std::string last_service;  // service of the latest span (by end time)
  uint32_t spans = 0;        // spans stored for the order
  uint32_t open_hops = 0;
  bool closed = false;  // reached a stage with no expectations (terminal)
  // Detector verdict.  stuck_since_ns is when the missed deadline (plus grace) passed.
  StuckKind stuck = StuckKind::kNone;
  Nanos stuck_since_ns = 0;
  Nanos deadline_ns = 0;         // the pending deadline (plus grace), 0 when none
  std::string expected_service;  // who is expected to act next ("" unknown)
  std::string summary;           // the diagnosis' one line while stuck
  // The order's partner: partner.id of the earliest span (by start time) that carried one, a
  // pseudonym when redaction is on; "" when no span carried one.  Stores merge it rather than
  // replace it (store/semantics.h KeepPartner): a row written without a partner keeps the stored
  // one, so the engine need not remember it (the rows it hands listeners may lack it).
  std::string partner;
  Nanos partner_ns = 0;  // start of that span; orders the candidates (earliest wins)

  bool operator==(const OrderRow&) const = default;
};

// Everything the store has about one order, for the journey view.
struct Journey {
  OrderRow order;
  std::vector<Milestone> milestones;  // by at_ns
  std::vector<SpanRecord> spans;      // by start_ns; at most the query's max_spans (latest kept)
  std::vector<Hop> hops;              // by published_ns
  bool spans_truncated = false;
};

// One stuck episode of an order: flagged by the detector, cleared when the order moved on (or
// its expectation was met).  The KPIs (api/kpi_api.h) read them back by time: detection lag
// (flagged_ns - due_ns) and time stuck (cleared_ns, or now while ongoing, - due_ns).
// Keyed by (order_id, flagged_ns).  The engine writes a flag with every field but cleared_ns,
// and a clear as {order_id, cleared_ns} alone (flagged_ns 0): the store then ends every open
// episode of the order (the engine keeps no episode in memory).
struct StuckEpisode {
  std::string order_id;
  std::string stage;  // the stage the order was stuck in ("" before any milestone)
  StuckKind kind = StuckKind::kNone;
  std::string expected_service;  // who was expected to act ("" unknown)
  Nanos due_ns = 0;              // the missed deadline plus grace (OrderRow::stuck_since_ns)
  Nanos flagged_ns = 0;          // when the detector flagged it
  Nanos cleared_ns = 0;          // 0 while ongoing

  bool operator==(const StuckEpisode&) const = default;
};

}  // namespace ordertrace::journey
