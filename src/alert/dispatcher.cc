#include "alert/dispatcher.h"

#include <algorithm>
#include <chrono>
#include <thread>
#include <unordered_set>
#include <utility>

#include "common/log.h"
#include "common/text_format.h"
#include "common/url.h"
#include "journey/diagnosis.h"

namespace ordertrace::alert {
namespace {

Nanos ToNanos(Duration d) { return std::chrono::nanoseconds(d).count(); }

std::string OtelStatusName(uint8_t s) { return s == 2 ? "ERROR" : s == 1 ? "OK" : "UNSET"; }

}  // namespace

AlertDispatcher::AlertDispatcher(DispatcherOptions options,
                                 std::vector<std::unique_ptr<Sink>> sinks,
                                 journey::JourneyStore& store, RulesFn rules, const Clock& clock,
                                 metrics::Registry* registry)
    : options_(std::move(options)),
      sinks_(std::move(sinks)),
      store_(store),
      rules_(std::move(rules)),
      clock_(clock) {
  if (registry == nullptr) {
    own_registry_ = std::make_unique<metrics::Registry>();
    registry = own_registry_.get();
  }
  dropped_total_ = &registry
                        ->AddCounter("ordertrace_alerts_dropped_total",
                                     "Flags and clears the alert queue had no room for (the "
                                     "firing set is then rebuilt from the store).")
                        .With({});
  sent_total_ =
      &registry->AddCounter("ordertrace_alerts_sent_total", "Alerts delivered, by sink.", {"sink"});
  failed_total_ = &registry->AddCounter("ordertrace_alerts_failed_total",
                                        "Alerts not delivered after retries, by sink.", {"sink"});
  not_repeated_total_ =
      &registry
           ->AddCounter("ordertrace_alerts_not_repeated_total",
                        "Notifications not sent again to the sinks that do not resend (the "
                        "webhook) after a restart: recorded as already sent before it.")
           .With({});
  marks_errors_total_ =
      &registry
           ->AddCounter("ordertrace_alerts_notified_log_errors_total",
                        "Records of notifications sent to the webhook that could not be written, "
                        "or read back at start (malformed lines skipped).")
           .With({});
  for (const auto& s : sinks_) {  // the series exist from the start, at 0
    sent_total_->With({s->name()});
    failed_total_->With({s->name()});
    if (!s->resends()) ++non_resending_;
  }
  if (!options_.notified_path.empty() && non_resending_ > 0) {
    marks_ = std::make_unique<NotifiedLog>(options_.notified_path);
  }
  registry->AddCallbackGauge("ordertrace_alerts_firing", "Per-order alerts firing.",
                             [this] { return static_cast<double>(firing_count_.load()); });
  registry->AddCallbackGauge("ordertrace_alerts_storms",
                             "Stage and service groups in a storm (one grouped alert each).",
                             [this] { return static_cast<double>(storm_count_.load()); });
}

AlertDispatcher::~AlertDispatcher() { Stop(); }

void AlertDispatcher::OnStuck(const journey::OrderRow& row) {
  {
    std::lock_guard lock(mu_);
    if (queue_.size() >= options_.queue_capacity) {
      dropped_total_->Inc();
      resync_.store(true);
      return;
    }
    queue_.push_back(Event{true, row});
  }
  sender_.Wake();
}

void AlertDispatcher::OnCleared(const journey::OrderRow& row) {
  {
    std::lock_guard lock(mu_);
    if (queue_.size() >= options_.queue_capacity) {
      dropped_total_->Inc();
      resync_.store(true);
      return;
    }
    queue_.push_back(Event{false, row});
  }
  sender_.Wake();
}

void AlertDispatcher::OnVerdicts(const std::vector<journey::OrderRow>& stuck,
                                 const std::vector<journey::OrderRow>& cleared) {
  {
    std::lock_guard lock(mu_);
    for (const auto* rows : {&stuck, &cleared}) {
      for (const journey::OrderRow& row : *rows) {
        if (queue_.size() >= options_.queue_capacity) {
          dropped_total_->Inc();
          resync_.store(true);
          continue;
        }
        queue_.push_back(Event{rows == &stuck, row});
      }
    }
  }
  sender_.Wake();
}

void AlertDispatcher::FireSystem(const std::string& key, Alert alert) {
  {
    std::lock_guard lock(mu_);
    system_queue_.push_back(SystemEvent{key, true, std::move(alert), 0});
  }
  sender_.Wake();
}

void AlertDispatcher::ResolveSystem(const std::string& key, Nanos at) {
  {
    std::lock_guard lock(mu_);
    system_queue_.push_back(SystemEvent{key, false, Alert(), at});
  }
  sender_.Wake();
}

void AlertDispatcher::Start() {
  if (started_) return;
  started_ = true;
  resync_.store(true);  // the first Poll() rebuilds the firing set from the store
  // A pass every tick (due re-sends), or sooner when an event is queued.
  const auto tick = std::min<Duration>(Duration(1000), options_.resend_interval);
  sender_.Start("alert dispatcher", tick, [this] { Pass(); });
}

void AlertDispatcher::Stop() {
  {
    std::lock_guard lock(mu_);
    if (stop_) return;
    stop_ = true;
    stop_deadline_ = std::chrono::steady_clock::now() + options_.stop_timeout;
  }
  sender_.Stop();  // interrupts a group wait or a retry backoff; the current pass finishes
  // The last pass, on this thread now that the sender's is joined: what is queued is sent
  // (attempts end at the stop deadline).
  if (started_) Poll();
}

bool AlertDispatcher::stopping() const {
  std::lock_guard lock(mu_);
  return stop_;
}

void AlertDispatcher::Pass() {
  bool group_wait = false;
  {
    std::lock_guard lock(mu_);
    group_wait = !stop_ && !queue_.empty() && options_.group_wait.count() > 0;
  }
  // Flags arriving together go out together.
  if (group_wait) sender_.SleepFor(options_.group_wait);
  Poll();
}

std::string AlertDispatcher::GroupKey(const std::string& stage, const std::string& service) {
  return stage + '\x1f' + service;
}

std::string AlertDispatcher::ServiceOf(const journey::OrderRow& row) {
  if (!row.expected_service.empty()) return row.expected_service;
  if (!row.last_service.empty()) return row.last_service;
  return "unknown";
}

std::string AlertDispatcher::SeverityOf(const journey::Rules& rules,
                                        const std::string& stage) const {
  const int i = rules.StageIndex(stage);
  if (i < 0) return "warning";
  return rules.stages[static_cast<size_t>(i)].severity;
}

uint64_t AlertDispatcher::sent_total() const {
  uint64_t n = 0;
  sent_total_->ForEach(
      [&n](const std::vector<std::string>&, const metrics::Counter& c) { n += c.Value(); });
  return n;
}

Status AlertDispatcher::Rebuild() {
  if (!marks_loaded_) LoadMarks();
  std::unordered_map<std::string, journey::OrderRow> stuck;
  journey::OrderQuery q;
  q.stuck = true;
  q.limit = 1000;
  for (;;) {
    auto page = store_.ListOrders(q);
    if (!page.ok()) return page.status();
    for (auto& row : page.value().orders) stuck.emplace(row.order_id, std::move(row));
    if (page.value().next_cursor.empty()) break;
    q.cursor = page.value().next_cursor;
  }
  // As events, handled by the next Poll() like the engine's own.
  std::vector<Event> events;
  for (const auto& [id, f] : firing_) {
    if (stuck.count(id) == 0) events.push_back(Event{false, f.row});
  }
  // Episodes the sinks that do not resend heard as firing and that are neither firing here nor
  // stuck in the store: they ended while the gateway was down (or their resolve failed).
  ended_marks_.clear();
  for (const auto& [key, e] : notified_.episodes) {
    auto f = firing_.find(e.order_id);
    auto s = stuck.find(e.order_id);
    if ((f == firing_.end() || f->second.row.stuck_since_ns != e.stuck_since) &&
        (s == stuck.end() || s->second.stuck_since_ns != e.stuck_since)) {
      ended_marks_.push_back(e);
    }
  }
  restore_storms_ = !notified_.storms.empty();
  for (auto& [id, row] : stuck) {
    auto it = firing_.find(id);
    if (it == firing_.end() || it->second.row.stage != row.stage ||
        it->second.row.stuck_since_ns != row.stuck_since_ns) {
      events.push_back(Event{true, std::move(row)});
    }
  }
  {
    std::lock_guard lock(mu_);
    // Ahead of the queued events: they happened after what the store says, or are repeats.
    for (auto it = events.rbegin(); it != events.rend(); ++it) queue_.push_front(std::move(*it));
  }
  return Status::Ok();
}

void AlertDispatcher::Flag(const journey::OrderRow& row, Nanos now, Outgoing* out) {
  const std::string service = ServiceOf(row);
  if (auto it = firing_.find(row.order_id); it != firing_.end()) {
    if (it->second.row.stage == row.stage && ServiceOf(it->second.row) == service &&
        it->second.row.stuck_since_ns == row.stuck_since_ns) {
      return;  // the same episode again (a rebuild, a repeat)
    }
    Clear(row.order_id, now, out);  // a new episode: the old alert ends
  }
  const std::string key = GroupKey(row.stage, service);
  Group& g = groups_[key];
  g.stage = row.stage;
  g.service = service;
  ++g.stuck;
  // Notified before a restart: stuck, but not news (it is no flag within the storm window).
  const bool notified =
      notified_.episodes.count(std::make_pair(row.order_id, row.stuck_since_ns)) != 0;
  if (!notified) g.flags.push_back(now);
  const Nanos horizon = now - ToNanos(options_.storm_window);
  while (!g.flags.empty() && g.flags.front() <= horizon) g.flags.pop_front();
  Firing f;
  f.row = row;
  f.group = key;
  f.notified = notified;
  firing_[row.order_id] = std::move(f);
  if (!g.storm && options_.storm_threshold > 0 && g.flags.size() > options_.storm_threshold) {
    g.example_order_id = row.order_id;
    // The engine hands rows without their summary line (built here, only when shown).
    g.example_summary = row.summary;
    if (g.example_summary.empty()) {
      if (const auto rules = rules_()) g.example_summary = journey::SummaryLine(row, *rules, now);
    }
    StartStorm(&g, now);
  }
  pending_fire_.push_back(row.order_id);
}

void AlertDispatcher::Clear(const std::string& order_id, Nanos now, Outgoing* out) {
  auto it = firing_.find(order_id);
  if (it == firing_.end()) return;
  Firing& f = it->second;
  if (f.sent) {
    Alert a = f.alert;
    a.resolved = true;
    a.ends_at = now;
    MarkAction m;
    if (auto n = notified_.episodes.find(std::make_pair(order_id, f.row.stuck_since_ns));
        n != notified_.episodes.end()) {
      m.kind = MarkAction::Kind::kResolved;
      m.episode = std::move(n->second);
      notified_.episodes.erase(n);  // put back if the resolve is not delivered
    }
    out->Add(std::move(a), std::move(m));
  } else if (auto n = notified_.episodes.find(std::make_pair(order_id, f.row.stuck_since_ns));
             n != notified_.episodes.end()) {
    // Told before a restart, cleared before its alert was built again: resolved all the same.
    MarkAction m;
    m.kind = MarkAction::Kind::kResolved;
    m.episode = std::move(n->second);
    notified_.episodes.erase(n);
    const auto rules = rules_();
    Alert a = EndedAlert(m.episode, rules ? *rules : journey::Rules(), now);
    out->Add(std::move(a), std::move(m));
  }
  if (auto g = groups_.find(f.group); g != groups_.end() && g->second.stuck > 0) {
    --g->second.stuck;
  }
  firing_.erase(it);
}

void AlertDispatcher::StartStorm(Group* g, Nanos now) {
  g->storm = true;
  g->storm_sent = false;
  g->sent_count = 0;
  g->webhook_count = 0;
  g->storm_alert = Alert();
  g->storm_alert.starts_at = now;
  g->storm_notified = false;
  if (auto m = notified_.storms.find(std::make_pair(g->stage, g->service));
      m != notified_.storms.end()) {
    // Notified before a restart: the same storm goes on (its startsAt; the count the sinks
    // that do not resend were last told).
    g->storm_notified = true;
    g->storm_alert.starts_at = m->second.starts_at;
    g->webhook_count = m->second.count;
    log::Info("alert storm taken up after a restart", {{"stage", g->stage},
                                                       {"service", g->service},
                                                       {"stuck", static_cast<uint64_t>(g->stuck)},
                                                       {"since", Rfc3339(m->second.starts_at)}});
    return;
  }
  log::Warn("alert storm: per-order alerts held back, one grouped alert instead",
            {{"stage", g->stage},
             {"service", g->service},
             {"flagged_within_window", static_cast<uint64_t>(g->flags.size())},
             {"threshold", static_cast<uint64_t>(options_.storm_threshold)}});
}

Alert AlertDispatcher::StormAlert(const Group& g, const journey::Rules& rules) const {
  Alert a = g.storm_alert;  // keeps starts_at
  a.storm = true;
  a.stage = g.stage;
  a.service = g.service;
  a.severity = SeverityOf(rules, g.stage);
  a.count = g.stuck;
  a.runbook_url = options_.runbook_url;
  a.example_order_id = g.example_order_id;
  if (!options_.ui.empty()) {
    a.ui_url = options_.ui + "/stuck?stage=" + url::PercentEncode(g.stage) +
               "&service=" + url::PercentEncode(g.service);
  }
  a.summary = std::to_string(g.stuck) + " orders stuck at " + g.stage + " waiting for " + g.service;
  a.description = std::to_string(g.stuck) + " orders are stuck at " + g.stage + " waiting for " +
                  g.service + " (more than " + std::to_string(options_.storm_threshold) +
                  " flagged within " + HumanDuration(options_.storm_window) +
                  "). Per-order alerts for this stage and service are held back while the "
                  "storm lasts; GET /api/v1/orders?stuck=true&stage=" +
                  g.stage + "&service=" + g.service + " lists the orders.";
  if (!g.example_order_id.empty()) {
    a.description += " Example: order " + g.example_order_id +
                     (g.example_summary.empty() ? "" : ": " + g.example_summary);
  }
  return a;
}

Alert AlertDispatcher::OrderAlert(journey::OrderRow* flagged, const journey::Rules& rules,
                                  Nanos now) {
  std::optional<journey::Diagnosis> d;
  auto journey = store_.GetJourney(flagged->order_id, 200);
  if (journey.ok() && journey.value()) {
    journey::Journey j = std::move(*journey.value());
    // The stored row is fresher than the flag's: spans that arrived since (within group_wait)
    // may have set the stage (a publish exported before its order's milestone span is flagged
    // with no stage yet).  While it is still stuck, the alert describes it.
    if (j.order.stuck != journey::StuckKind::kNone) {
      *flagged = j.order;
    } else {
      j.order = *flagged;  // moved on meanwhile: the clear is queued; describe the episode
    }
    d = journey::Diagnose(j, rules, now, options_.jaeger_ui, options_.broker);
  } else if (!journey.ok()) {
    log::Warn("alert without its diagnosis: journey not readable",
              {{"order_id", flagged->order_id}, {"error", journey.status().message()}});
  }
  const journey::OrderRow& row = *flagged;
  Alert a;
  a.order_id = row.order_id;
  a.stage = row.stage;
  a.service = ServiceOf(row);
  a.severity = SeverityOf(rules, row.stage);
  a.kind = journey::StuckKindName(row.stuck);
  a.summary = row.summary;
  a.starts_at = row.stuck_since_ns;
  a.stage_since = row.stage_ns;
  a.runbook_url = options_.runbook_url;
  if (!options_.ui.empty()) a.ui_url = options_.ui + "/orders/" + url::PercentEncode(row.order_id);
  std::string description = "Order " + row.order_id + " is stuck in " + row.stage;
  if (d) {
    if (!d->summary.empty()) a.summary = d->summary;
    a.expected = d->expected;
    a.expected_stage = d->expected_stage;
    a.in_stage_seconds = std::chrono::duration_cast<std::chrono::seconds>(d->in_stage).count();
    a.allowed_seconds = std::chrono::duration_cast<std::chrono::seconds>(d->allowed).count();
    a.deadline = d->deadline_ns;
    a.jaeger_links = d->jaeger_links;
    a.jaeger_search_link = d->jaeger_search_link;
    if (d->last_span) {
      a.last_span_service = d->last_span->service;
      a.last_span_name = d->last_span->name;
      a.last_span_status = OtelStatusName(d->last_span->otel_status);
      a.last_span_error = d->last_span->error;
    }
    for (const auto& h : d->open_hops) {
      a.open_hops.push_back(
          {h.message_id, h.exchange, h.routing_key, h.queue, h.send_service, h.published_ns});
    }
    a.heartbeat_expected = d->heartbeat.expected;
    a.heartbeat_alive = d->heartbeat.alive;
    a.last_heartbeat = d->heartbeat.last_ns;
    description += " for " + HumanDuration(d->in_stage);
    if (d->allowed.count() > 0) description += " (allowed " + HumanDuration(d->allowed) + ")";
    if (!d->expected.empty()) {
      description += "; expected " + d->expected;
      if (!a.service.empty() && a.service != "unknown") description += " from " + a.service;
    }
    description += ".";
    if (d->last_span) {
      description += " Last span: " + a.last_span_service + " '" + a.last_span_name + "' " +
                     a.last_span_status +
                     (a.last_span_error.empty() ? "" : " " + a.last_span_error) + ".";
    }
    if (!d->open_hops.empty()) {
      description += " " + std::to_string(d->open_hops.size()) +
                     " published message(s) not processed, e.g. " + d->open_hops[0].message_id +
                     " to " + d->open_hops[0].exchange + " with routing key " +
                     d->open_hops[0].routing_key + ".";
      if (!d->open_hop_broker.empty() && !d->open_hop_broker[0].empty()) {
        description += " Broker: " + d->open_hop_broker[0] + ".";
      }
    }
    if (!d->broker.empty()) description += " " + d->broker + ".";
  } else {
    description += "; expected from " + a.service + ".";
  }
  a.description = std::move(description);
  if (a.summary.empty()) a.summary = journey::SummaryLine(row, rules, now);
  if (a.summary.empty()) a.summary = "order " + row.order_id + " stuck in " + row.stage;
  return a;
}

void AlertDispatcher::Poll() {
  const Nanos now = clock_.Now();
  if (!marks_loaded_) LoadMarks();  // Rebuild does it first, unless a test polls without one
  if (resync_.exchange(false)) {
    if (Status s = Rebuild(); !s.ok()) {
      log::Error("alerts: cannot read the stuck orders from the store; retrying",
                 {{"error", s.message()}});
      resync_.store(true);
    }
  }
  std::deque<Event> events;
  std::deque<SystemEvent> system_events;
  {
    std::lock_guard lock(mu_);
    events.swap(queue_);
    system_events.swap(system_queue_);
  }
  const std::shared_ptr<const journey::Rules> rules = rules_();
  Outgoing out;
  for (SystemEvent& e : system_events) {
    auto it = system_firing_.find(e.key);
    if (e.fire) {
      if (it != system_firing_.end()) e.alert.starts_at = it->second.alert.starts_at;
      if (e.alert.runbook_url.empty()) e.alert.runbook_url = options_.runbook_url;
      out.Add(e.alert);
      system_firing_[e.key] =
          SystemFiring{std::move(e.alert), now + ToNanos(options_.resend_interval)};
    } else if (it != system_firing_.end()) {
      Alert a = it->second.alert;
      a.resolved = true;
      a.ends_at = e.at != 0 ? e.at : now;
      out.Add(std::move(a));
      system_firing_.erase(it);
    }
  }
  for (auto& [key, f] : system_firing_) {
    if (f.next_resend <= now) {
      out.resends.push_back(f.alert);
      f.next_resend = now + ToNanos(options_.resend_interval);
    }
  }
  // Episodes that ended while the gateway was down (Rebuild): resolved to every sink.
  for (NotifiedEpisode& e : ended_marks_) {
    auto n = notified_.episodes.find(std::make_pair(e.order_id, e.stuck_since));
    if (n == notified_.episodes.end()) continue;
    MarkAction m;
    m.kind = MarkAction::Kind::kResolved;
    m.episode = std::move(n->second);
    notified_.episodes.erase(n);
    Alert a = EndedAlert(m.episode, *rules, now);  // before `m` is moved from
    out.Add(std::move(a), std::move(m));
  }
  ended_marks_.clear();
  for (Event& e : events) {
    if (e.stuck) {
      Flag(e.row, now, &out);
    } else {
      Clear(e.row.order_id, now, &out);
    }
  }
  // Storms notified before a restart: taken up again; the rule below ends them if they calmed
  // down meanwhile.
  if (restore_storms_) {
    restore_storms_ = false;
    for (const auto& [key, m] : notified_.storms) {
      Group& g = groups_[GroupKey(m.stage, m.service)];
      if (g.storm) continue;
      g.stage = m.stage;
      g.service = m.service;
      StartStorm(&g, now);
    }
  }

  // Storms: started, grown, calmed down.
  const Nanos horizon = now - ToNanos(options_.storm_window);
  for (auto it = groups_.begin(); it != groups_.end();) {
    Group& g = it->second;
    while (!g.flags.empty() && g.flags.front() <= horizon) g.flags.pop_front();
    if (g.storm && g.flags.size() <= options_.storm_threshold &&
        g.stuck <= options_.storm_threshold) {
      if (g.storm_sent || g.storm_notified) {
        Alert a = StormAlert(g, *rules);
        a.resolved = true;
        a.ends_at = now;
        out.Add(std::move(a), StormEndedMark(g));
      }
      g.storm = false;
      g.storm_notified = false;
      log::Info("alert storm over; per-order alerts resume",
                {{"stage", g.stage},
                 {"service", g.service},
                 {"still_stuck", static_cast<uint64_t>(g.stuck)}});
      for (auto& [id, f] : firing_) {
        if (f.group == it->first && !f.sent) pending_fire_.push_back(id);
      }
    }
    if (g.storm) {
      Alert a = StormAlert(g, *rules);
      if (!g.storm_sent && !g.storm_notified) {
        out.Add(a, StormMark(g, g.stuck));
        g.storm_sent = true;
        g.sent_count = g.webhook_count = g.stuck;
        g.next_resend = now + ToNanos(options_.resend_interval);
      } else if (!g.storm_sent || g.next_resend <= now || g.sent_count != g.stuck) {
        // Taken up after a restart (the resending sinks get the same alert again), a count
        // changed, or due.
        if (!g.storm_sent) not_repeated_total_->Inc();
        out.updates.push_back(a);
        g.storm_sent = true;
        g.sent_count = g.stuck;
        g.next_resend = now + ToNanos(options_.resend_interval);
        if (g.stuck >= 2 * g.webhook_count) {  // grown a lot: tell the chat/ticket sinks too
          out.webhook_updates.push_back(a);
          out.webhook_update_marks.push_back(StormMark(g, g.stuck));
          g.webhook_count = g.stuck;
        }
      }
    }
    if (!g.storm && g.stuck == 0 && g.flags.empty()) {
      it = groups_.erase(it);
    } else {
      ++it;
    }
  }

  // New per-order alerts (not held back by a storm).
  std::unordered_set<std::string> done;
  for (const std::string& id : pending_fire_) {
    auto it = firing_.find(id);
    if (it == firing_.end() || it->second.sent || !done.insert(id).second) continue;
    auto g = groups_.find(it->second.group);
    Firing& f = it->second;
    // Held back by a storm, unless notified before a restart (then it stays firing, as an
    // alert sent before the storm was recognised does).
    if (g != groups_.end() && g->second.storm && !f.notified) continue;
    f.alert = OrderAlert(&f.row, *rules, now);
    f.sent = true;
    f.next_resend = now + ToNanos(options_.resend_interval);
    if (f.notified) {  // the same alert again, to the sinks that resend only
      out.resends.push_back(f.alert);
      not_repeated_total_->Inc();
    } else {
      out.Add(f.alert, FiringMark(f));
    }
  }
  pending_fire_.clear();

  // Re-sends of firing alerts.
  size_t sent = 0, held = 0;
  for (auto& [id, f] : firing_) {
    if (!f.sent) {
      ++held;
      continue;
    }
    ++sent;
    if (f.next_resend <= now) {
      out.resends.push_back(f.alert);
      f.next_resend = now + ToNanos(options_.resend_interval);
    }
  }
  size_t storms = 0;
  for (const auto& [key, g] : groups_) storms += g.storm ? 1 : 0;
  firing_count_.store(sent);
  held_count_.store(held);
  storm_count_.store(storms);

  // A mark is recorded once every sink that does not resend has the alert, right after the
  // last one's 2xx (the batch of such a sink: `all`, then `webhook_updates`).
  auto mark_of = [&out](size_t i) -> MarkAction& {
    return i < out.all_marks.size() ? out.all_marks[i]
                                    : out.webhook_update_marks[i - out.all_marks.size()];
  };
  std::vector<size_t> delivered(out.all.size() + out.webhook_updates.size(), 0);
  for (auto& sink : sinks_) {
    std::vector<Alert> batch = out.all;
    if (sink->resends()) {
      batch.insert(batch.end(), out.updates.begin(), out.updates.end());
      batch.insert(batch.end(), out.resends.begin(), out.resends.end());
      if (!batch.empty()) Deliver(*sink, batch);
      continue;
    }
    batch.insert(batch.end(), out.webhook_updates.begin(), out.webhook_updates.end());
    if (batch.empty()) continue;
    Deliver(*sink, batch, [&](size_t begin, size_t end) {
      for (size_t i = begin; i < end; ++i) {
        if (++delivered[i] == non_resending_) Record(mark_of(i));
      }
    });
  }
  for (size_t i = 0; i < delivered.size(); ++i) {
    MarkAction& m = mark_of(i);
    // A resolve not delivered: still recorded as firing, resolved again by the next rebuild
    // (at the latest after a restart).
    if (delivered[i] < non_resending_ && m.kind == MarkAction::Kind::kResolved) {
      notified_.episodes.emplace(std::make_pair(m.episode.order_id, m.episode.stuck_since),
                                 std::move(m.episode));
    }
  }
  CompactMarks(false);
}

void AlertDispatcher::LoadMarks() {
  marks_loaded_ = true;
  if (!marks_) return;
  NotifiedParseStats stats;
  if (Status s = marks_->Load(&notified_, &stats); !s.ok()) {
    marks_errors_total_->Inc();
    log::Error(
        "alerts: cannot read what the webhook was told before the restart; it may hear "
        "of firing alerts again, and nothing is recorded from now on",
        {{"path", marks_->path()}, {"error", s.message()}});
    marks_.reset();
    notified_ = NotifiedState();
    return;
  }
  std::vector<std::string> urls;
  for (const auto& sink : sinks_) {
    if (!sink->resends()) urls.push_back(sink->url());
  }
  const std::string sinks = NotifiedLog::Fingerprint(urls);
  if (!notified_.sinks.empty() && notified_.sinks != sinks) {
    log::Info(
        "alerts: the webhook changed since its notifications were recorded: it is told of "
        "every stuck order again",
        {{"path", marks_->path()}});
    notified_ = NotifiedState();
  }
  notified_.sinks = sinks;
  if (stats.skipped > 0) {
    marks_errors_total_->Inc(stats.skipped);
    log::Warn(
        "alerts: lines of the record of webhook notifications skipped (treated as not "
        "notified: the webhook may hear of those alerts again)",
        {{"path", marks_->path()},
         {"skipped", static_cast<uint64_t>(stats.skipped)},
         {"first_line", static_cast<uint64_t>(stats.first_bad)},
         {"error", stats.first_error}});
  }
  CompactMarks(true);  // no torn line left for the appends to follow
}

AlertDispatcher::MarkAction AlertDispatcher::FiringMark(const Firing& f) const {
  MarkAction m;
  if (!marks_) return m;
  m.kind = MarkAction::Kind::kFiring;
  m.episode.order_id = f.row.order_id;
  m.episode.stuck_since = f.row.stuck_since_ns;
  m.episode.stage = f.alert.stage;
  m.episode.service = f.alert.service;
  return m;
}

AlertDispatcher::MarkAction AlertDispatcher::StormMark(const Group& g, size_t count) const {
  MarkAction m;
  if (!marks_) return m;
  m.kind = MarkAction::Kind::kStorm;
  m.storm.stage = g.stage;
  m.storm.service = g.service;
  m.storm.starts_at = g.storm_alert.starts_at;
  m.storm.count = count;
  return m;
}

AlertDispatcher::MarkAction AlertDispatcher::StormEndedMark(const Group& g) {
  MarkAction m;
  auto n = notified_.storms.find(std::make_pair(g.stage, g.service));
  if (n == notified_.storms.end() || n->second.starts_at != g.storm_alert.starts_at) return m;
  m.kind = MarkAction::Kind::kStormEnded;
  m.storm = std::move(n->second);
  notified_.storms.erase(n);
  return m;
}

void AlertDispatcher::Record(const MarkAction& m) {
  if (!marks_) return;
  Status s;
  switch (m.kind) {
    case MarkAction::Kind::kNone:
      return;
    case MarkAction::Kind::kFiring:
      notified_.episodes[std::make_pair(m.episode.order_id, m.episode.stuck_since)] = m.episode;
      s = marks_->AppendFiring(m.episode);
      break;
    case MarkAction::Kind::kResolved:
      s = marks_->AppendResolved(m.episode);
      break;
    case MarkAction::Kind::kStorm:
      notified_.storms[std::make_pair(m.storm.stage, m.storm.service)] = m.storm;
      s = marks_->AppendStorm(m.storm);
      break;
    case MarkAction::Kind::kStormEnded:
      s = marks_->AppendStormEnded(m.storm);
      break;
  }
  if (!s.ok()) {
    // Counted every time, logged once per pass at most (a full disk fails every record).
    marks_errors_total_->Inc();
    if (!mark_error_logged_) {
      mark_error_logged_ = true;
      log::Error(
          "alerts: cannot record a webhook notification; after a restart the webhook may "
          "hear of it again",
          {{"path", marks_->path()}, {"error", s.message()}});
    }
  }
}

void AlertDispatcher::CompactMarks(bool always) {
  mark_error_logged_ = false;
  if (!marks_) return;
  const size_t live = notified_.episodes.size() + notified_.storms.size();
  if (!always && marks_->records() <= 2 * live + 64) return;
  if (Status s = marks_->Rewrite(notified_); !s.ok()) {
    marks_errors_total_->Inc();
    if (!compact_failed_) {  // logged again only after a success
      log::Error("alerts: cannot compact the record of webhook notifications",
                 {{"path", marks_->path()}, {"error", s.message()}});
    }
    compact_failed_ = true;
    return;
  }
  compact_failed_ = false;
}

Alert AlertDispatcher::EndedAlert(const NotifiedEpisode& e, const journey::Rules& rules,
                                  Nanos now) const {
  Alert a;
  a.resolved = true;
  a.order_id = e.order_id;
  a.stage = e.stage;
  a.service = e.service;
  a.severity = SeverityOf(rules, e.stage);
  a.starts_at = e.stuck_since;
  a.ends_at = now;
  a.runbook_url = options_.runbook_url;
  if (!options_.ui.empty()) a.ui_url = options_.ui + "/orders/" + url::PercentEncode(e.order_id);
  a.summary = "order " + e.order_id + " no longer stuck in " + e.stage;
  a.description = "Order " + e.order_id + " is no longer stuck in " + e.stage +
                  " (it moved on, or its expectation was met, around a restart of the "
                  "gateway); stuck since " +
                  Rfc3339(e.stuck_since) + ".";
  return a;
}

void AlertDispatcher::Deliver(Sink& sink, const std::vector<Alert>& alerts,
                              const std::function<void(size_t, size_t)>& delivered) {
  // While stopping, attempts end at the stop deadline.
  auto past_stop_deadline = [this] {
    std::lock_guard lock(mu_);
    return stop_ && std::chrono::steady_clock::now() >= stop_deadline_;
  };
  const size_t step = std::max<size_t>(1, sink.max_batch());
  for (size_t at = 0; at < alerts.size(); at += step) {
    const std::vector<Alert> chunk(
        alerts.begin() + static_cast<std::ptrdiff_t>(at),
        alerts.begin() + static_cast<std::ptrdiff_t>(std::min(alerts.size(), at + step)));
    Duration backoff = options_.retry_initial;
    SendResult r;
    int attempt = 0;
    while (!past_stop_deadline()) {
      ++attempt;
      r = sink.Send(chunk);
      if (r.ok || !r.retryable || attempt >= options_.max_attempts) break;
      std::chrono::steady_clock::time_point sleep_until{};
      if (!stopping()) sender_.SleepFor(backoff);  // Stop() interrupts it
      {
        std::lock_guard lock(mu_);
        if (stop_) {
          sleep_until = std::min(stop_deadline_, std::chrono::steady_clock::now() + backoff);
        }
      }
      if (sleep_until != std::chrono::steady_clock::time_point{}) {
        std::this_thread::sleep_until(sleep_until);
      }
      backoff = std::min(backoff * 2, options_.retry_max);
    }
    if (r.ok) {
      if (delivered) delivered(at, at + chunk.size());
      sent_total_->With({sink.name()}).Inc(chunk.size());
      continue;
    }
    failed_total_->With({sink.name()}).Inc(chunk.size());
    log::Warn("alerts not delivered",
              {{"sink", sink.name()},
               {"url", sink.url()},
               {"alerts", static_cast<uint64_t>(chunk.size())},
               {"attempts", static_cast<int64_t>(attempt)},
               {"error", attempt == 0 ? std::string("stop deadline passed") : r.error}});
  }
}

}  // namespace ordertrace::alert
