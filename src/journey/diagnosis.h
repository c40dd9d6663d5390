// What an order is waiting for, and, when it is stuck, where it stopped.
//
// Expectations() is the one place the lifecycle rules are interpreted: the engine uses it to
// schedule and flag, the diagnosis to explain.  Diagnose() answers "where is order X?" from the
// stored journey (docs/api.md, "diagnosis"): the stage and the time in it against the deadline,
// what was expected next and from which service, the last span, the open message hops with
// their exchange / routing key / queue, the heartbeats (alive but slow, or silent since when),
// the trace ids with links to Jaeger, and a one-line summary in plain words.  With a BrokerView
// (the RabbitMQ management API, src/broker), each open hop also says what the broker holds for
// it ("queue crm.prices: 1,204 ready, 3 unacked, 0 consumers"), and an outage of the broker
// during the order's current stage is named as a likely cause.
//
// Thread-safety: pure functions (a BrokerView is safe to call from any thread).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "journey/jaeger_links.h"
#include "journey/rules/rules.h"
#include "journey/types.h"

namespace ordertrace::journey {

// One thing the current stage expects.  `due_ns` is the deadline without the grace period.
struct Expectation {
  StuckKind kind = StuckKind::kNone;  // what missing it means
  Nanos due_ns = 0;
  Duration allowed{0};       // the rule's time (within, heartbeat, within_receipt ...)
  std::string_view stage;    // kNextOverdue: the stage expected next
  std::string_view service;  // kNotReceived / kNotProcessed: the service expected to act
  bool met = false;          // already satisfied by the facts
};

struct Expectations {
  std::array<Expectation, 4> items;  // next, heartbeat, received_by, processed_by
  size_t size = 0;
  const Expectation* begin() const { return items.data(); }
  const Expectation* end() const { return items.data() + size; }
};

// The facts the rules look at, for one order.
struct OrderFacts {
  int stage = -1;  // index into rules.stages, -1: no milestone yet (nothing is expected)
  Nanos stage_start_ns = 0;
  Nanos stage_ns = 0;
  Nanos last_heartbeat_ns = 0;
  // Latest span start of a service (0 if never), for received_by / processed_by.
  Nanos (*seen)(const void* ctx, std::string_view service) = nullptr;
  const void* seen_ctx = nullptr;
};

Expectations ExpectationsOf(const Rules& rules, const OrderFacts& facts);

// The missed expectation that decides the verdict at `now`: the unmet one whose due + grace is
// earliest among those ≤ now; nullptr when none is missed.
const Expectation* FirstMissed(const Expectations& e, Duration grace, Nanos now);

struct HeartbeatInfo {
  bool expected = false;  // the stage asks for heartbeats
  Duration interval{0};
  Nanos last_ns = 0;   // latest heartbeat in this stage (0: none)
  bool alive = false;  // a heartbeat (or the milestone) within interval + grace of now
};

// What the diagnosis may learn from the message broker.  broker::BrokerMonitor implements it
// (src/broker/monitor.h); the journeys do not depend on that module.  Diagnose() takes a
// nullable pointer: nullptr means no broker is configured, and nothing is said about it.
//
// Thread-safety: implementations must be safe to call from any thread (the API and the alert
// sender diagnose concurrently).
class BrokerView {
 public:
  virtual ~BrokerView() = default;
  // One sentence about where the hop's message sits: the state of the queue(s) its exchange
  // and routing key lead to, that no queue is bound (the message was dropped), or that the
  // broker is unreachable.  "" when nothing is known (no successful poll yet).
  virtual std::string DescribeHop(const Hop& hop, Nanos now) const = 0;
  // A period during which the broker's management API did not answer.
  struct Outage {
    Nanos start_ns = 0;  // the first failed poll
    Nanos end_ns = 0;    // the first successful poll after it; 0 while still unreachable
    std::string error;   // the latest error ("connection refused", "HTTP 401 ...")
  };
  // Outages that overlap [from_ns, now], oldest first (a bounded history).
  virtual std::vector<Outage> OutagesSince(Nanos from_ns) const = 0;
  // A number that changes whenever what the two calls above answer may have changed (a poll
  // saw other queue counts, bindings or reachability): part of the API's ETags.  Read it before
  // the calls.  Lock-free; the default never changes (a view whose answers are fixed).
  virtual uint64_t generation() const { return 0; }
};

// The attribution sentence for outages overlapping the current stage ("" when none):
//   "RabbitMQ was unreachable 14:02:11Z–14:02:40Z (29s) during this stage"
//   "RabbitMQ has been unreachable since 14:02:11Z (2m 5s, connection refused), during this stage"
// With several, the ongoing or latest one is named and the others counted.
std::string BrokerAttribution(const std::vector<BrokerView::Outage>& outages, Nanos now);

struct Diagnosis {
  StuckKind kind = StuckKind::kNone;
  std::string summary;
  std::string stage;
  Nanos stage_since_ns = 0;
  Duration in_stage{0};
  Duration allowed{0};    // the rule's time for what was missed
  Nanos deadline_ns = 0;  // when it was due (without grace)
  std::string expected;   // in words: "milestone PRICE_CALCULATED", "a span from mes", ...
  std::string expected_stage;
  std::string expected_service;
  std::optional<SpanRecord> last_span;
  std::vector<Hop> open_hops;
  // Per open hop (same index), the broker's view of it (BrokerView::DescribeHop); "" unknown or
  // no broker configured.
  std::vector<std::string> open_hop_broker;
  // The broker outage(s) during the current stage (BrokerAttribution); "" when none.
  std::string broker;
  HeartbeatInfo heartbeat;
  std::vector<std::string> trace_ids;     // of the order's spans, latest first
  std::vector<std::string> jaeger_links;  // {jaeger_ui}/trace/{trace_id}, same order
  // All of them on one page of the Jaeger UI (JaegerSearchLink: the latest
  // kMaxTracesPerSearchLink); "" when the order has no spans.
  std::string jaeger_search_link;
};

// The one-line summary of a stuck order from its row alone (what the engine stores when it
// flags); "" when the row is not stuck.
std::string SummaryLine(const OrderRow& row, const Rules& rules, Nanos now);

// The diagnosis of a stuck order (nullopt when journey.order is not stuck).  `broker` may be
// nullptr (no broker configured).
std::optional<Diagnosis> Diagnose(const Journey& journey, const Rules& rules, Nanos now,
                                  std::string_view jaeger_ui, const BrokerView* broker = nullptr);

}  // namespace ordertrace::journey
