#include "journey/diagnosis.h"

#include <algorithm>
#include <unordered_set>

#include "common/text_format.h"

namespace ordertrace::journey {
namespace {

Nanos ToNanos(Duration d) { return std::chrono::nanoseconds(d).count(); }
Duration ToDuration(Nanos n) {
  return std::chrono::duration_cast<Duration>(std::chrono::nanoseconds(std::max<Nanos>(n, 0)));
}

// 2026-11-26T11:02:03Z: seconds are enough in a sentence.
std::string IsoTime(Nanos t) { return Rfc3339(t, /*millis=*/false); }

Nanos SeenIn(const void* ctx, std::string_view service) {
  const auto* row = static_cast<const OrderRow*>(ctx);
  for (const auto& [s, t] : row->services) {
    if (s == service) return t;
  }
  return 0;
}

OrderFacts FactsOf(const OrderRow& row, const Rules& rules) {
  OrderFacts f;
  f.stage = rules.StageIndex(row.stage);
  f.stage_start_ns = row.stage_start_ns;
  f.stage_ns = row.stage_ns;
  f.last_heartbeat_ns = row.last_heartbeat_ns;
  f.seen = &SeenIn;
  f.seen_ctx = &row;
  return f;
}

// The expectation behind a row's verdict: the missed one of the row's kind, else the first
// missed one.
const Expectation* MissedOfKind(const Expectations& ex, const OrderRow& row, const Rules& rules,
                                Nanos now) {
  const Nanos grace = ToNanos(rules.grace);
  const Expectation* best = nullptr;
  for (const Expectation& e : ex) {
    if (e.met || e.kind != row.stuck || e.due_ns + grace > now) continue;
    if (best == nullptr || e.due_ns < best->due_ns) best = &e;
  }
  return best != nullptr ? best : FirstMissed(ex, rules.grace, now);
}

}  // namespace

Expectations ExpectationsOf(const Rules& rules, const OrderFacts& f) {
  Expectations out;
  if (f.stage < 0 || static_cast<size_t>(f.stage) >= rules.stages.size()) return out;
  const StageRule& r = rules.stages[f.stage];
  auto add = [&](Expectation e) { out.items[out.size++] = e; };
  if (r.next >= 0 && static_cast<size_t>(r.next) < rules.stages.size()) {
    Expectation e;
    e.kind = StuckKind::kNextOverdue;
    e.due_ns = f.stage_ns + ToNanos(r.within);
    e.allowed = r.within;
    e.stage = rules.stages[r.next].name;
    e.service = r.next_by;
    add(e);
  }
  if (r.heartbeat.count() > 0) {
    Expectation e;
    e.kind = StuckKind::kSilent;
    e.due_ns = std::max(f.stage_ns, f.last_heartbeat_ns) + ToNanos(r.heartbeat);
    e.allowed = r.heartbeat;
    add(e);
  }
  auto by_service = [&](StuckKind kind, const std::string& service, Duration within) {
    if (service.empty()) return;
    Expectation e;
    e.kind = kind;
    e.due_ns = f.stage_ns + ToNanos(within);
    e.allowed = within;
    e.service = service;
    const Nanos seen = f.seen != nullptr ? f.seen(f.seen_ctx, service) : 0;
    e.met = seen != 0 && seen >= f.stage_start_ns;
    add(e);
  };
  by_service(StuckKind::kNotReceived, r.received_by, r.within_receipt);
  by_service(StuckKind::kNotProcessed, r.processed_by, r.within_processing);
  return out;
}

const Expectation* FirstMissed(const Expectations& ex, Duration grace, Nanos now) {
  const Nanos g = ToNanos(grace);
  const Expectation* first = nullptr;
  for (const Expectation& e : ex) {
    if (e.met || e.due_ns + g > now) continue;
    if (first == nullptr || e.due_ns < first->due_ns) first = &e;
  }
  return first;
}

std::string SummaryLine(const OrderRow& row, const Rules& rules, Nanos now) {
  if (row.stuck == StuckKind::kNone) return "";
  const OrderFacts f = FactsOf(row, rules);
  const Expectations ex = ExpectationsOf(rules, f);
  const Expectation* e = MissedOfKind(ex, row, rules, std::max(now, row.stuck_since_ns));
  std::string s = "order " + row.order_id + " stuck in " + (row.stage.empty() ? "?" : row.stage) +
                  " for " + HumanDuration(ToDuration(now - row.stage_ns));
  switch (row.stuck) {
    case StuckKind::kNextOverdue:
      if (e != nullptr) {
        s += ": " + std::string(e->stage) + " not reached within " + HumanDuration(e->allowed);
      }
      if (!row.expected_service.empty()) s += "; expected from " + row.expected_service;
      break;
    case StuckKind::kNotReceived:
      if (e != nullptr) {
        s += ": " + std::string(e->service) + " has not picked it up (expected within " +
             HumanDuration(e->allowed) + ")";
      }
      break;
    case StuckKind::kNotProcessed:
      if (e != nullptr) {
        s += ": " + std::string(e->service) + " has not processed it (expected within " +
             HumanDuration(e->allowed) + ")";
      }
      break;
    case StuckKind::kSilent: {
      const Nanos last = std::max(row.stage_ns, row.last_heartbeat_ns);
      s += ": silent, no heartbeat since " + IsoTime(last) + " (" +
           HumanDuration(ToDuration(now - last)) + " ago";
      if (e != nullptr) s += ", expected every " + HumanDuration(e->allowed);
      s += ")";
      break;
    }
    case StuckKind::kMessageUnprocessed:
      s += ": a published message was not processed within " +
           HumanDuration(rules.message_processed_within);
      break;
    case StuckKind::kNone:
      break;
  }
  // Heartbeats still coming while a deadline passed: alive but slow.
  if (row.stuck != StuckKind::kSilent && f.stage >= 0 &&
      rules.stages[f.stage].heartbeat.count() > 0 && row.last_heartbeat_ns >= row.stage_ns &&
      now - row.last_heartbeat_ns <
          ToNanos(rules.stages[f.stage].heartbeat) + ToNanos(rules.grace)) {
    s += "; alive but slow (last heartbeat " +
         HumanDuration(ToDuration(now - row.last_heartbeat_ns)) + " ago)";
  }
  return s;
}

std::string BrokerAttribution(const std::vector<BrokerView::Outage>& outages, Nanos now) {
  if (outages.empty()) return "";
  // The ongoing outage if there is one, else the latest.
  const BrokerView::Outage* named = &outages.back();
  for (const auto& o : outages) {
    if (o.end_ns == 0) named = &o;
  }
  std::string s;
  if (named->end_ns == 0) {
    s = "RabbitMQ has been unreachable since " + ClockTime(named->start_ns, now) + " (" +
        HumanDuration(ToDuration(now - named->start_ns)) +
        (named->error.empty() ? "" : ", " + named->error) + "), during this stage";
  } else {
    s = "RabbitMQ was unreachable " + ClockTime(named->start_ns, now) + "\u2013" +
        ClockTime(named->end_ns, now) + " (" +
        HumanDuration(ToDuration(named->end_ns - named->start_ns)) + ") during this stage";
  }
  if (outages.size() > 1) {
    s += " (+" + std::to_string(outages.size() - 1) + " more outage" +
         (outages.size() > 2 ? "s" : "") + ")";
  }
  return s;
}

std::optional<Diagnosis> Diagnose(const Journey& journey, const Rules& rules, Nanos now,
                                  std::string_view jaeger_ui, const BrokerView* broker) {
  const OrderRow& row = journey.order;
  if (row.stuck == StuckKind::kNone) return std::nullopt;
  Diagnosis d;
  d.kind = row.stuck;
  d.stage = row.stage;
  d.stage_since_ns = row.stage_ns;
  d.in_stage = ToDuration(now - row.stage_ns);
  const OrderFacts f = FactsOf(row, rules);
  const Expectations ex = ExpectationsOf(rules, f);
  if (const Expectation* e = MissedOfKind(ex, row, rules, std::max(now, row.stuck_since_ns))) {
    d.allowed = e->allowed;
    d.deadline_ns = e->due_ns;
    d.expected_stage = std::string(e->stage);
    d.expected_service = e->service.empty() ? row.expected_service : std::string(e->service);
    switch (e->kind) {
      case StuckKind::kNextOverdue:
        d.expected = "milestone " + d.expected_stage;
        break;
      case StuckKind::kNotReceived:
        d.expected = "a span from " + d.expected_service + " (receipt)";
        break;
      case StuckKind::kNotProcessed:
        d.expected = "a span from " + d.expected_service + " (processing)";
        break;
      case StuckKind::kSilent:
        d.expected = "a heartbeat every " + HumanDuration(e->allowed);
        break;
      default:
        break;
    }
  } else {
    d.expected_service = row.expected_service;
  }
  if (row.stuck == StuckKind::kMessageUnprocessed) {
    d.allowed = rules.message_processed_within;
    d.expected = "processing of the published message(s)";
  }

  // Heartbeats.
  if (f.stage >= 0) {
    const StageRule& r = rules.stages[f.stage];
    d.heartbeat.expected = r.heartbeat.count() > 0;
    d.heartbeat.interval = r.heartbeat;
  }
  if (row.last_heartbeat_ns >= row.stage_ns) d.heartbeat.last_ns = row.last_heartbeat_ns;
  if (d.heartbeat.expected) {
    const Nanos last = std::max(row.stage_ns, row.last_heartbeat_ns);
    // Alive until the moment the detector flags silence (due + grace <= now).
    d.heartbeat.alive = now - last < ToNanos(d.heartbeat.interval) + ToNanos(rules.grace);
  }

  // The last span, open hops, traces.
  const SpanRecord* last = nullptr;
  for (const SpanRecord& s : journey.spans) {
    if (last == nullptr || s.end_ns > last->end_ns) last = &s;
  }
  if (last != nullptr) d.last_span = *last;
  for (const Hop& h : journey.hops) {
    if (h.open() && h.published_ns != 0) d.open_hops.push_back(h);
  }
  d.open_hop_broker.resize(d.open_hops.size());
  if (broker != nullptr) {
    for (size_t i = 0; i < d.open_hops.size(); ++i) {
      d.open_hop_broker[i] = broker->DescribeHop(d.open_hops[i], now);
    }
    // The stage began when the order entered it; before its first milestone, at its first span.
    const Nanos stage_began = row.stage_ns != 0 ? row.stage_ns : row.first_ns;
    d.broker = BrokerAttribution(broker->OutagesSince(stage_began), now);
  }
  std::vector<const SpanRecord*> by_end;
  for (const SpanRecord& s : journey.spans) by_end.push_back(&s);
  std::sort(by_end.begin(), by_end.end(),
            [](const SpanRecord* a, const SpanRecord* b) { return a->end_ns > b->end_ns; });
  std::unordered_set<std::string> seen;
  for (const SpanRecord* s : by_end) {
    if (seen.insert(s->trace_id).second) {
      d.trace_ids.push_back(s->trace_id);
      d.jaeger_links.push_back(JaegerLink(jaeger_ui, s->trace_id));
    }
  }
  d.jaeger_search_link = JaegerSearchLink(jaeger_ui, d.trace_ids);

  // The summary: the row's line, then where the last trace of activity is.
  d.summary = SummaryLine(row, rules, now);
  if (!d.open_hops.empty()) {
    const Hop& h = d.open_hops.front();
    d.summary += "; message " + (h.message_id.empty() ? h.send_span_id : h.message_id) +
                 " published to " + (h.exchange.empty() ? "(default exchange)" : h.exchange) +
                 (h.routing_key.empty() ? "" : " with routing key " + h.routing_key) +
                 (h.queue.empty() ? "" : " (queue " + h.queue + ")") + " " +
                 HumanDuration(ToDuration(now - h.published_ns)) + " ago, never processed";
    if (d.open_hops.size() > 1) {
      d.summary += " (+" + std::to_string(d.open_hops.size() - 1) + " more)";
    }
    // While the broker is down, the hop's sentence and the attribution say the same: once.
    const std::string& hop_broker = d.open_hop_broker.front();
    const bool repeats_outage =
        !d.broker.empty() && hop_broker.rfind("RabbitMQ unreachable", 0) == 0;
    if (!hop_broker.empty() && !repeats_outage) d.summary += "; " + hop_broker;
  }
  if (!d.broker.empty()) d.summary += "; " + d.broker;
  if (d.last_span) {
    const SpanRecord& s = *d.last_span;
    d.summary += "; last span: " + s.service + " '" + s.name + "' " +
                 (s.otel_status == 2   ? "ERROR"
                  : s.otel_status == 1 ? "OK"
                                       : "UNSET");
    if (s.step != StepStatus::kUnset) d.summary += std::string(" step ") + StepStatusName(s.step);
    if (!s.error.empty()) d.summary += " (" + s.error + ")";
    d.summary += " at " + IsoTime(s.end_ns);
  }
  return d;
}

}  // namespace ordertrace::journey
