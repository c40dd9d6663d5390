// What an order is waiting for, and, when it is stuck, where it stopped.
//
// Expectations() is the one place the lifecycle rules are interpreted: the engine uses it to
// schedule and flag, the diagnosis to explain.  Diagnose() answers "where is order X?" from the
// stored journey (DESIGN.md, "Diagnosis"): the stage and the time in it against the deadline,
// what was expected next and from which service, the last span, the open message hops with
// their exchange / routing key / queue, the heartbeats (alive but slow, or silent since when),
// the trace ids with links to Jaeger, and a one-line summary in plain words.
//
// Thread-safety: pure functions.
#pragma once

#include <array>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "journey/rules.h"
#include "journey/types.h"

namespace ordertrace::journey {

// One thing the current stage expects.  `due_ns` is the deadline without the grace period.
struct Expectation {
  StuckKind kind = StuckKind::kNone;  // what missing it means
  Nanos due_ns = 0;
  Duration allowed{0};     // the rule's time (within, heartbeat, within_receipt ...)
  std::string_view stage;  // kNextOverdue: the stage expected next
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
  bool expected = false;   // the stage asks for heartbeats
  Duration interval{0};
  Nanos last_ns = 0;       // latest heartbeat in this stage (0: none)
  bool alive = false;      // a heartbeat (or the milestone) within interval + grace of now
};

struct Diagnosis {
  StuckKind kind = StuckKind::kNone;
  std::string summary;
  std::string stage;
  Nanos stage_since_ns = 0;
  Duration in_stage{0};
  Duration allowed{0};     // the rule's time for what was missed
  Nanos deadline_ns = 0;   // when it was due (without grace)
  std::string expected;    // in words: "milestone PRICE_CALCULATED", "a span from mes", ...
  std::string expected_stage;
  std::string expected_service;
  std::optional<SpanRecord> last_span;
  std::vector<Hop> open_hops;
  HeartbeatInfo heartbeat;
  std::vector<std::string> trace_ids;     // of the order's spans, latest first
  std::vector<std::string> jaeger_links;  // {jaeger_ui}/trace/{trace_id}, same order
};

// "1h 5m", "42s", "2d 3h": a duration for people.
std::string HumanDuration(Duration d);

// The one-line summary of a stuck order from its row alone (what the engine stores when it
// flags); "" when the row is not stuck.
std::string SummaryLine(const OrderRow& row, const Rules& rules, Nanos now);

// The diagnosis of a stuck order (nullopt when journey.order is not stuck).
std::optional<Diagnosis> Diagnose(const Journey& journey, const Rules& rules, Nanos now,
                                  std::string_view jaeger_ui);

// {jaeger_ui}/trace/{trace_id}, without a doubled slash.
std::string JaegerLink(std::string_view jaeger_ui, std::string_view trace_id);

}  // namespace ordertrace::journey
