#include "journey/engine.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <unordered_set>
#include <utility>

#include "common/log.h"
#include "journey/diagnosis.h"

namespace ordertrace::journey {

namespace {
constexpr uint32_t kNoPos = 0xffffffffu;
constexpr uint16_t kNoService = 0xffff;
constexpr size_t kMaxWatched = 4;  // the rules allow at most 4 watched services
constexpr uint8_t kFlagged = 1, kCleared = 2;
constexpr size_t kMaxPendingRetry = 1000000;  // records kept for a failing store before dropping
constexpr size_t kStuckKinds = static_cast<size_t>(StuckKind::kMessageUnprocessed) + 1;

// The service label of ordertrace_journey_stuck_orders_by_stage: the service the stage's rule
// expects for what was missed (a bounded set, from the rules), "unknown" when it names none.
std::string StuckServiceLabel(const StageRule* r, StuckKind kind) {
  if (r == nullptr) return "unknown";
  if (kind == StuckKind::kNotReceived && !r->received_by.empty()) return r->received_by;
  if (kind == StuckKind::kNotProcessed && !r->processed_by.empty()) return r->processed_by;
  for (const std::string* s : {&r->next_by, &r->received_by, &r->processed_by}) {
    if (!s->empty()) return *s;
  }
  return "unknown";
}

// Seconds to days: a stage lasts from a second (automated steps) to days (manufacturing).
std::vector<double> StageDurationBuckets() {
  return {1,    5,    15,    30,    60,    120,   300,    600,    1800,
          3600, 7200, 14400, 28800, 43200, 86400, 172800, 432000, 864000};
}

Nanos ToNanos(Duration d) { return std::chrono::nanoseconds(d).count(); }
Nanos SatAdd(Nanos a, Nanos b) { return a > Engine::kNever - b ? Engine::kNever : a + b; }

// Indexes an open hop by its message id; a publish of a message id already open (a retried
// publish) chains the earlier one.
template <typename Index, typename HopMap, typename HopEntry>
void IndexMessage(Index& by_message, const HopMap& hops, HopEntry* h) {
  auto [m, inserted] = by_message.try_emplace(h->second.message_id, h->first);
  if (!inserted && m->second != h->first) {
    if (hops.count(m->second)) h->second.earlier = m->second;
    m->second = h->first;
  }
}
}  // namespace

// The compact in-memory record of one active order (see the header's "Memory").
struct Engine::Active {
  Nanos stage_start_ns = 0;
  Nanos stage_ns = 0;
  Nanos first_ns = 0;
  Nanos last_ns = 0;
  Nanos last_heartbeat_ns = 0;
  Nanos deadline_ns = kNever;  // heap key: the next moment the verdict may change
  Nanos stuck_since_ns = 0;
  Nanos late_since_ns = 0;                // earliest deadline of a message still late
  std::array<Nanos, kMaxWatched> seen{};  // latest span start per watched service
  uint32_t heap_pos = kNoPos;
  uint16_t open_hops = 0;
  uint16_t late_hops = 0;
  uint16_t last_service = kNoService;
  int8_t stage = -1;
  StuckKind stuck = StuckKind::kNone;
  bool closed = false;
  bool touched = false;  // changed in the current Apply/Tick
  bool moved = false;    // reached a later stage in the current Apply
  uint8_t event = 0;     // kFlagged / kCleared in the current Apply/Tick: listeners hear it
};

struct Engine::OpenHop {
  std::string order_id;
  std::string message_id;
  // An earlier open publish of the same message id (a failed publish retried), "" none: the
  // processing of the message closes them all.
  std::string earlier;
  Nanos published_ns = 0;  // the publish span's end: SetRules recomputes the deadline from it
  Nanos deadline_ns = kNever;
  uint32_t heap_pos = kNoPos;
  bool late = false;  // its deadline fired (counted in the order's late_hops)
};

struct Engine::Orphan {
  std::vector<std::string> keys;  // "m:<message id>", "s:<span id>"
  SpanRecord process;             // the process span (without links)
};

// An indexed binary min-heap of map entries keyed by their deadline_ns.  Entries know their
// slot, so an update or removal is O(log n) and the heap holds one pointer per entry.
template <typename E>
class Engine::Heap {
 public:
  size_t size() const { return v_.size(); }
  E* top() const { return v_.empty() ? nullptr : v_[0]; }
  // Puts `e` where its deadline says: inserted, moved, or removed when the deadline is kNever.
  void Update(E* e) {
    auto& s = e->second;
    if (s.deadline_ns == kNever) {
      Remove(e);
      return;
    }
    if (s.heap_pos == kNoPos) {
      s.heap_pos = static_cast<uint32_t>(v_.size());
      v_.push_back(e);
    }
    SiftDown(SiftUp(s.heap_pos));
  }
  void Remove(E* e) {
    uint32_t i = e->second.heap_pos;
    if (i == kNoPos) return;
    e->second.heap_pos = kNoPos;
    E* last = v_.back();
    v_.pop_back();
    if (last == e) return;
    v_[i] = last;
    last->second.heap_pos = i;
    SiftDown(SiftUp(i));
  }
  void Clear() {
    for (E* e : v_) e->second.heap_pos = kNoPos;
    v_.clear();
  }

 private:
  static Nanos Key(const E* e) { return e->second.deadline_ns; }
  void Place(uint32_t i, E* e) {
    v_[i] = e;
    e->second.heap_pos = i;
  }
  uint32_t SiftUp(uint32_t i) {
    E* e = v_[i];
    while (i > 0) {
      uint32_t parent = (i - 1) / 2;
      if (Key(v_[parent]) <= Key(e)) break;
      Place(i, v_[parent]);
      i = parent;
    }
    Place(i, e);
    return i;
  }
  uint32_t SiftDown(uint32_t i) {
    E* e = v_[i];
    const uint32_t n = static_cast<uint32_t>(v_.size());
    for (;;) {
      uint32_t c = 2 * i + 1;
      if (c >= n) break;
      if (c + 1 < n && Key(v_[c + 1]) < Key(v_[c])) ++c;
      if (Key(v_[c]) >= Key(e)) break;
      Place(i, v_[c]);
      i = c;
    }
    Place(i, e);
    return i;
  }
  std::vector<E*> v_;
};

struct Engine::Verdict {
  StuckKind kind = StuckKind::kNone;  // missed at `now`
  Nanos missed_at = 0;                // its due + grace
  Nanos next_due = kNever;            // earliest due + grace not yet passed
  std::string_view expected_service;
};

struct Engine::Pending {
  WriteBatch batch;
  std::vector<ActiveEntry*> touched;
  std::vector<OrderRow> flagged;
  std::vector<OrderRow> cleared;
  void Touch(ActiveEntry* e) {
    if (!e->second.touched) {
      e->second.touched = true;
      touched.push_back(e);
    }
  }
};

Engine::Engine(std::shared_ptr<const Rules> rules, JourneyStore& store, const Clock& clock,
               metrics::Registry* registry, EngineOptions options)
    : store_(store),
      clock_(clock),
      options_(options),
      rules_(std::move(rules)),
      watched_(rules_->WatchedServices()),
      active_(std::make_unique<ActiveMap>()),
      order_heap_(std::make_unique<Heap<ActiveEntry>>()),
      hops_(std::make_unique<HopMap>()),
      hop_heap_(std::make_unique<Heap<HopEntry>>()),
      orphans_(std::make_unique<std::vector<Orphan>>()) {
  if (registry == nullptr) {
    own_registry_ = std::make_unique<metrics::Registry>();
    registry = own_registry_.get();
  }
  facts_total_ =
      &registry
           ->AddCounter("ordertrace_journey_facts_total", "Span records applied to order journeys.")
           .With({});
  store_errors_ = &registry
                       ->AddCounter("ordertrace_journey_store_errors_total",
                                    "Journey store operations that failed (writes are retried).")
                       .With({});
  flagged_total_ = &registry->AddCounter("ordertrace_journey_flagged_total",
                                         "Orders flagged as stuck, by what they missed.", {"kind"});
  cleared_total_ = &registry
                        ->AddCounter("ordertrace_journey_cleared_total",
                                     "Stuck orders cleared because they moved on.")
                        .With({});
  closed_total_ = &registry
                       ->AddCounter("ordertrace_journey_closed_total",
                                    "Orders that reached a terminal stage (closed), since start.")
                       .With({});
  flag_lag_ = &registry
                   ->AddHistogram("ordertrace_journey_flag_lag_seconds",
                                  "From a deadline plus grace passing to the order being flagged.",
                                  {}, {0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 30, 300})
                   .With({});
  active_by_stage_family_ = &registry->AddGauge(
      "ordertrace_journey_active_orders_by_stage",
      "Active orders by the stage they are in (stage=\"none\": no milestone yet).", {"stage"});
  stage_index_family_ = &registry->AddGauge(
      "ordertrace_journey_stage_index",
      "A stage's position in the lifecycle rules (0 first; -1: \"none\" or a stage the rules "
      "no longer have), to order dashboards and `ordertrace watch`.",
      {"stage"});
  stuck_by_stage_family_ = &registry->AddGauge(
      "ordertrace_journey_stuck_orders_by_stage",
      "Orders flagged as stuck now, by stage, the service the rules expect and what they missed.",
      {"stage", "service", "kind"});
  stage_duration_family_ = &registry->AddHistogram(
      "ordertrace_journey_stage_duration_seconds",
      "From an order entering a stage to it reaching a later one, observed when it moves on.",
      {"stage"}, StageDurationBuckets());
  heartbeats_missed_family_ = &registry->AddCounter(
      "ordertrace_journey_heartbeats_missed_total",
      "Orders flagged as silent (no heartbeat within the interval).", {"stage"});
  RebuildStageMetrics();
  registry->AddCallbackGauge("ordertrace_journey_active_orders",
                             "Orders not closed, held in memory with their deadlines.",
                             [this] { return static_cast<double>(active_orders()); });
  registry->AddCallbackGauge("ordertrace_journey_stuck_orders", "Orders flagged as stuck now.",
                             [this] { return static_cast<double>(stuck_orders()); });
  registry->AddCallbackGauge("ordertrace_journey_open_hops",
                             "Messages published for an order and not processed yet.",
                             [this] { return static_cast<double>(open_hops()); });
}

Engine::~Engine() { StopDetector(); }

size_t Engine::active_orders() const {
  std::lock_guard lock(mu_);
  return active_->size();
}
size_t Engine::open_hops() const {
  std::lock_guard lock(mu_);
  return hops_->size();
}
size_t Engine::stuck_orders() const {
  std::lock_guard lock(mu_);
  return stuck_;
}
std::shared_ptr<const Rules> Engine::rules() const {
  std::lock_guard lock(mu_);
  return rules_;
}
void Engine::AddListener(EngineListener* listener) {
  std::lock_guard lock(mu_);
  listeners_.push_back(listener);
}

uint16_t Engine::ServiceIndex(std::string_view service) const {
  for (size_t i = 0; i < watched_.size() && i < kMaxWatched; ++i) {
    if (watched_[i] == service) return static_cast<uint16_t>(i);
  }
  return kNoService;
}

uint16_t Engine::InternService(std::string_view service) {
  auto it = service_ids_.find(std::string(service));
  if (it != service_ids_.end()) return it->second;
  if (services_.size() >= kNoService) return kNoService;  // absurdly many service names
  const auto id = static_cast<uint16_t>(services_.size());
  services_.emplace_back(service);
  service_ids_.emplace(service, id);
  return id;
}

size_t Engine::StageSlot(int stage) const {
  const size_t slot = stage < 0 ? 0 : static_cast<size_t>(stage) + 1;
  return slot < active_by_stage_.size() ? slot : 0;
}

void Engine::CountOrder(const Active& a, int delta) {
  const size_t slot = StageSlot(a.stage);
  active_by_stage_[slot] += delta;
  if (a.stuck != StuckKind::kNone) {
    stuck_by_stage_[slot * kStuckKinds + static_cast<size_t>(a.stuck)] += delta;
  }
}

void Engine::ObserveStageLeft(const Active& a, Nanos reached_ns) {
  if (a.stage < 0) return;  // a first milestone: no stage left
  const size_t slot = StageSlot(a.stage);
  if (slot == 0) return;
  if (stage_duration_[slot] == nullptr) {
    stage_duration_[slot] = &stage_duration_family_->With({rules_->stages[slot - 1].name});
  }
  stage_duration_[slot]->Observe(static_cast<double>(std::max<Nanos>(reached_ns - a.stage_ns, 0)) /
                                 1e9);
}

void Engine::RebuildStageMetrics() {
  // The families keep their children: series of stages the rules no longer have go to 0.
  for (metrics::Gauge* g : active_by_stage_gauges_) g->Set(0);
  for (metrics::Gauge* g : stuck_by_stage_gauges_) {
    if (g != nullptr) g->Set(0);
  }
  const Rules& rules = *rules_;
  const size_t slots = rules.stages.size() + 1;
  active_by_stage_.assign(slots, 0);
  stuck_by_stage_.assign(slots * kStuckKinds, 0);
  active_by_stage_gauges_.assign(slots, nullptr);
  stuck_by_stage_gauges_.assign(slots * kStuckKinds, nullptr);
  stage_duration_.assign(slots, nullptr);
  heartbeats_missed_.assign(slots, nullptr);
  // Stages the rules no longer have keep their series, at -1 (no position).
  for (const auto& [name, g] : stage_index_gauges_) g->Set(-1);
  for (size_t slot = 0; slot < slots; ++slot) {
    const std::string name = slot == 0 ? "none" : rules.stages[slot - 1].name;
    active_by_stage_gauges_[slot] = &active_by_stage_family_->With({name});
    metrics::Gauge*& index = stage_index_gauges_[name];
    if (index == nullptr) index = &stage_index_family_->With({name});
    index->Set(static_cast<double>(slot) - 1);
    if (slot == 0 || rules.stages[slot - 1].terminal()) continue;
    // The series of stages an order can leave or miss a heartbeat in exist from the start.
    stage_duration_[slot] = &stage_duration_family_->With({name});
    if (rules.stages[slot - 1].heartbeat.count() > 0) {
      heartbeats_missed_[slot] = &heartbeats_missed_family_->With({name});
    }
  }
  for (const auto& e : *active_) CountOrder(e.second, +1);
  PublishStageMetrics();
}

void Engine::PublishStageMetrics() {
  const Rules& rules = *rules_;
  for (size_t slot = 0; slot < active_by_stage_.size(); ++slot) {
    active_by_stage_gauges_[slot]->Set(static_cast<double>(active_by_stage_[slot]));
  }
  for (size_t i = 0; i < stuck_by_stage_.size(); ++i) {
    metrics::Gauge*& g = stuck_by_stage_gauges_[i];
    if (g == nullptr) {
      if (stuck_by_stage_[i] == 0) continue;  // a series appears once an order is stuck there
      const size_t slot = i / kStuckKinds;
      const auto kind = static_cast<StuckKind>(i % kStuckKinds);
      const StageRule* rule = slot == 0 ? nullptr : &rules.stages[slot - 1];
      g = &stuck_by_stage_family_->With(
          {slot == 0 ? "none" : rule->name, StuckServiceLabel(rule, kind), StuckKindName(kind)});
    }
    g->Set(static_cast<double>(stuck_by_stage_[i]));
  }
}

Engine::Verdict Engine::Evaluate(const Active& a, Nanos now) const {
  Verdict v;
  if (a.closed) return v;
  const Rules& rules = *rules_;
  const Nanos grace = ToNanos(rules.grace);
  struct Ctx {
    const Engine* self;
    const Active* a;
  } ctx{this, &a};
  OrderFacts f;
  f.stage = a.stage;
  f.stage_start_ns = a.stage_start_ns;
  f.stage_ns = a.stage_ns;
  f.last_heartbeat_ns = a.last_heartbeat_ns;
  f.seen_ctx = &ctx;
  f.seen = [](const void* c, std::string_view service) -> Nanos {
    const auto* x = static_cast<const Ctx*>(c);
    uint16_t i = x->self->ServiceIndex(service);
    return i == kNoService ? 0 : x->a->seen[i];
  };
  const Expectations ex = ExpectationsOf(rules, f);
  if (const Expectation* missed = FirstMissed(ex, rules.grace, now)) {
    v.kind = missed->kind;
    v.missed_at = SatAdd(missed->due_ns, grace);
    v.expected_service = missed->service;
  }
  for (const Expectation& e : ex) {
    if (e.met) continue;
    const Nanos at = SatAdd(e.due_ns, grace);
    if (at > now) v.next_due = std::min(v.next_due, at);
    if (v.expected_service.empty()) v.expected_service = e.service;
  }
  if (a.late_hops > 0 && (v.kind == StuckKind::kNone || a.late_since_ns < v.missed_at)) {
    v.kind = StuckKind::kMessageUnprocessed;
    v.missed_at = a.late_since_ns;
  }
  return v;
}

// Recomputes the verdict of a touched order: clears a flag that no longer holds and schedules
// the next moment the verdict may change.  Flagging itself happens in Tick() only, so an order
// whose deadline has already passed is scheduled at that (past) moment for the detector.
// A deadline already passed when its facts arrive waits `settle` (EngineOptions::settle), so
// the exporter's next request lands before the verdict; one not yet passed is unchanged.
Nanos Engine::Settled(Nanos due, Nanos now) const {
  if (options_.settle.count() <= 0) return due;
  return std::max(due, SatAdd(now, ToNanos(options_.settle)));
}

void Engine::Reschedule(ActiveEntry* e, Nanos now, Pending* p) {
  Active& a = e->second;
  const Verdict v = Evaluate(a, now);
  const bool moved = a.moved;
  a.moved = false;
  if (a.stuck != StuckKind::kNone) {
    CountOrder(a, -1);
    // Moving on to a later stage ends the stuck episode even when the new stage is overdue
    // already: that is a new episode, flagged (with its own time) by the next Tick().
    if (v.kind == StuckKind::kNone || moved) {
      a.stuck = StuckKind::kNone;
      a.stuck_since_ns = 0;
      --stuck_;
      a.event = kCleared;  // Commit() hands the row written to the listeners
    } else {
      a.stuck = v.kind;  // what it misses now (the time it got stuck stays)
    }
    CountOrder(a, +1);
  }
  a.deadline_ns = (a.stuck == StuckKind::kNone && v.kind != StuckKind::kNone)
                      ? Settled(v.missed_at, now)
                      : v.next_due;
  if (a.closed) a.deadline_ns = kNever;
  order_heap_->Update(e);
  p->Touch(e);
}

OrderRow Engine::RowOf(const ActiveEntry& e) const {
  const Active& a = e.second;
  const Rules& rules = *rules_;
  OrderRow r;
  r.order_id = e.first;
  if (a.stage >= 0 && static_cast<size_t>(a.stage) < rules.stages.size()) {
    r.stage = rules.stages[a.stage].name;
  }
  r.stage_start_ns = a.stage_start_ns;
  r.stage_ns = a.stage_ns;
  r.first_ns = a.first_ns;
  r.last_ns = a.last_ns;
  r.last_heartbeat_ns = a.last_heartbeat_ns;
  for (size_t i = 0; i < watched_.size() && i < kMaxWatched; ++i) {
    if (a.seen[i] != 0) r.services.emplace_back(watched_[i], a.seen[i]);
  }
  if (a.last_service != kNoService) r.last_service = services_[a.last_service];
  r.open_hops = a.open_hops;
  r.closed = a.closed;
  r.stuck = a.stuck;
  r.stuck_since_ns = a.stuck_since_ns;
  r.deadline_ns = a.deadline_ns == kNever ? 0 : a.deadline_ns;
  const Verdict v = Evaluate(a, std::max(clock_.Now(), a.stuck_since_ns));
  r.expected_service = std::string(v.expected_service);
  if (r.expected_service.empty() && a.stage >= 0 && !a.closed) r.expected_service = r.last_service;
  if (a.stuck != StuckKind::kNone) r.summary = SummaryLine(r, rules, clock_.Now());
  return r;
}

// An order's in-memory record from its stored row (restart, or a closed order's late span).
void Engine::LoadRow(const OrderRow& r, Active* out) {
  Active& a = *out;
  a.stage = static_cast<int8_t>(rules_->StageIndex(r.stage));
  a.stage_start_ns = r.stage_start_ns;
  a.stage_ns = r.stage_ns;
  a.first_ns = r.first_ns;
  a.last_ns = r.last_ns;
  a.last_heartbeat_ns = r.last_heartbeat_ns;
  for (const auto& [svc, t] : r.services) {
    const uint16_t i = ServiceIndex(svc);
    if (i != kNoService) a.seen[i] = t;
  }
  if (!r.last_service.empty()) a.last_service = InternService(r.last_service);
  a.open_hops = static_cast<uint16_t>(std::min<uint32_t>(r.open_hops, 0xffff));
  a.closed = r.closed;
  a.stuck = r.stuck;
  a.stuck_since_ns = r.stuck_since_ns;
  if (a.stuck != StuckKind::kNone) ++stuck_;
}

Engine::ActiveEntry* Engine::FindOrLoad(const std::string& order_id, Pending* p, Status* error) {
  auto it = active_->find(order_id);
  if (it != active_->end()) return &*it;
  auto [ins, inserted] = active_->try_emplace(order_id);
  (void)inserted;
  Active& a = ins->second;
  p->Touch(&*ins);
  // Not active: a new order (the filter of known ids says so without a store read), or a
  // closed one (a late span), or one evicted by retention.
  if (known_.MayContain(order_id)) {
    auto row = store_.GetOrder(order_id);
    if (!row.ok()) {
      store_errors_->Inc();
      *error = row.status();
    } else if (row.value().has_value()) {
      LoadRow(*row.value(), &a);
    }
  }
  CountOrder(a, +1);
  return &*ins;
}

void Engine::ApplyToOrder(ActiveEntry* e, const SpanRecord& r, Pending* p) {
  Active& a = e->second;
  if (a.first_ns == 0 || r.start_ns < a.first_ns) a.first_ns = r.start_ns;
  if (r.end_ns >= a.last_ns) {
    a.last_ns = r.end_ns;
    a.last_service = InternService(r.service);
  }
  const uint16_t slot = ServiceIndex(r.service);
  if (slot != kNoService) a.seen[slot] = std::max(a.seen[slot], r.start_ns);
  if (r.heartbeat) a.last_heartbeat_ns = std::max(a.last_heartbeat_ns, r.end_ns);
  if (!r.stage.empty()) {
    const int idx = rules_->StageIndex(r.stage);
    if (idx > a.stage ||
        (idx == a.stage &&
         (r.end_ns < a.stage_ns || (r.end_ns == a.stage_ns && r.start_ns < a.stage_start_ns)))) {
      if (idx > a.stage) {
        a.moved = true;  // also a first milestone: the stage label changes
        ObserveStageLeft(a, r.end_ns);
      }
      CountOrder(a, -1);
      a.stage = static_cast<int8_t>(idx);
      a.stage_start_ns = r.start_ns;
      a.stage_ns = r.end_ns;
      const bool was_closed = a.closed;
      a.closed = idx >= 0 && rules_->stages[idx].terminal();
      if (a.closed && !was_closed) closed_total_->Inc();
      CountOrder(a, +1);
    }
    if (idx >= 0) {
      p->batch.milestones.push_back(
          Milestone{e->first, r.stage, r.end_ns, r.service, r.trace_id, r.span_id});
    }
  }
  p->Touch(e);
}

void Engine::CloseHop(HopEntry* h, const SpanRecord& process, Pending* p) {
  OpenHop& oh = h->second;
  Hop hop;
  hop.order_id = oh.order_id;
  hop.send_span_id = h->first;
  hop.message_id = oh.message_id;
  hop.processed_ns = std::max<Nanos>(process.start_ns, 1);
  hop.process_service = process.service;
  hop.process_span_id = process.span_id;
  hop.process_trace_id = process.trace_id;
  hop.queue = process.queue;
  p->batch.hops.push_back(std::move(hop));
  auto it = active_->find(oh.order_id);
  if (it != active_->end()) {
    Active& a = it->second;
    if (a.open_hops > 0) --a.open_hops;
    if (oh.late && a.late_hops > 0) {
      // The hop was late (its deadline already fired).
      if (--a.late_hops == 0) a.late_since_ns = 0;
    }
    p->Touch(&*it);
  }
  closed_sends_.Add(h->first);
  if (!oh.message_id.empty()) {
    // The index names the latest open publish of the message: only this hop's entry goes
    // (to an earlier open publish of the same message, if any).
    auto m = hop_by_message_.find(oh.message_id);
    if (m != hop_by_message_.end() && m->second == h->first) {
      if (!oh.earlier.empty() && hops_->count(oh.earlier)) {
        m->second = oh.earlier;
      } else {
        hop_by_message_.erase(m);
      }
    }
  }
  hop_heap_->Remove(h);
  hops_->erase(h->first);
}

Status Engine::Recover() {
  std::lock_guard wlock(write_mu_);
  std::unique_lock lock(mu_);
  Pending p;
  const Nanos now = clock_.Now();
  Status s = store_.ForEachActiveOrder([&](const OrderRow& r) {
    auto [it, inserted] = active_->try_emplace(r.order_id);
    if (!inserted) return;
    LoadRow(r, &it->second);
    it->second.open_hops = 0;  // counted again from the open hops below
  });
  if (!s.ok()) return s;
  s = store_.ForEachOrderId([&](std::string_view id) { known_.Add(id); });
  if (!s.ok()) return s;
  const Nanos within = ToNanos(rules_->message_processed_within);
  const Nanos grace = ToNanos(rules_->grace);
  size_t hops = 0;
  s = store_.ForEachOpenHop([&](const Hop& h) {
    if (h.published_ns == 0) return;
    auto a = active_->find(h.order_id);
    if (a == active_->end()) return;  // a closed order's message: its journey has ended
    auto [it, inserted] = hops_->try_emplace(h.send_span_id);
    if (!inserted) return;
    it->second.order_id = h.order_id;
    it->second.message_id = h.message_id;
    it->second.published_ns = h.published_ns;
    if (!h.message_id.empty()) IndexMessage(hop_by_message_, *hops_, &*it);
    const Nanos due = within > 0 ? SatAdd(SatAdd(h.published_ns, within), grace) : kNever;
    if (due <= now) {
      // Late already (the deadline passed while the gateway was down): counted now, so spans
      // arriving before the first Tick() cannot clear a flag that still holds.
      it->second.late = true;
      Active& x = a->second;
      if (x.late_hops++ == 0 || due < x.late_since_ns) x.late_since_ns = due;
    } else {
      it->second.deadline_ns = due;
      hop_heap_->Update(&*it);
    }
    ++a->second.open_hops;
    ++hops;
  });
  if (!s.ok()) return s;
  for (auto& e : *active_) {
    const Verdict v = Evaluate(e.second, now);
    // A flag from before the restart stays (no second alert); a deadline that passed while
    // the gateway was down is due now and flagged once by the first Tick().
    e.second.deadline_ns = (e.second.stuck == StuckKind::kNone && v.kind != StuckKind::kNone)
                               ? v.missed_at
                               : v.next_due;
    if (e.second.closed) e.second.deadline_ns = kNever;
    order_heap_->Update(&e);
  }
  RebuildStageMetrics();
  log::Info("journeys recovered", {{"active_orders", static_cast<uint64_t>(active_->size())},
                                   {"open_hops", static_cast<uint64_t>(hops)},
                                   {"stuck_orders", static_cast<uint64_t>(stuck_)}});
  return Status::Ok();
}

Status Engine::Apply(std::vector<SpanRecord> facts) {
  if (facts.empty()) return Status::Ok();
  std::lock_guard wlock(write_mu_);
  std::unique_lock lock(mu_);
  Pending p;
  Status load_error;
  const Rules& rules = *rules_;
  const Nanos now = clock_.Now();
  const Nanos hop_within = ToNanos(rules.message_processed_within);
  const Nanos grace = ToNanos(rules.grace);
  const Nanos wake_before = NextDeadlineLocked();

  for (SpanRecord& r : facts) {
    facts_total_->Inc();
    // A process span closes the hop of its message: matched by message id, else by its parent
    // (the producer's span, through the propagated context), else by a link.
    if (r.hop == HopRole::kProcess) {
      HopEntry* h = nullptr;
      if (!r.message_id.empty()) {
        auto m = hop_by_message_.find(r.message_id);
        if (m != hop_by_message_.end()) {
          auto it = hops_->find(m->second);
          if (it != hops_->end()) h = &*it;
        }
      }
      if (h == nullptr && !r.parent_span_id.empty()) {
        auto it = hops_->find(r.parent_span_id);
        if (it != hops_->end()) h = &*it;
      }
      for (size_t i = 0; h == nullptr && i < r.links.size(); ++i) {
        auto it = hops_->find(r.links[i]);
        if (it != hops_->end()) h = &*it;
      }
      if (h != nullptr) {
        if (r.order_id.empty()) r.order_id = h->second.order_id;
        std::string earlier = h->second.earlier;
        const std::string message_id = h->second.message_id;
        CloseHop(h, r, &p);
        // The same message published more than once (a publish that failed, retried): its
        // processing closes every open publish of it.
        while (!earlier.empty()) {
          auto it = hops_->find(earlier);
          if (it == hops_->end() || it->second.message_id != message_id) break;
          earlier = it->second.earlier;
          CloseHop(&*it, r, &p);
        }
      } else {
        RememberOrphan(r);
      }
    }
    if (r.order_id.empty()) continue;  // a process span of no known order (yet)

    ActiveEntry* e = FindOrLoad(r.order_id, &p, &load_error);
    ApplyToOrder(e, r, &p);

    // A send span opens a hop unless it is open already or was closed recently (an exporter
    // retrying the publish span); one closed longer ago is checked in the store when its
    // deadline fires (Tick), so the hot path reads nothing.
    if (r.hop == HopRole::kSend && !closed_sends_.Contains(r.span_id) &&
        hops_->find(r.span_id) == hops_->end()) {
      Hop hop;
      hop.order_id = r.order_id;
      hop.send_span_id = r.span_id;
      hop.send_trace_id = r.trace_id;
      hop.send_service = r.service;
      hop.message_id = r.message_id;
      hop.exchange = r.exchange;
      hop.routing_key = r.routing_key;
      hop.queue = r.queue;
      hop.published_ns = std::max<Nanos>(r.end_ns, 1);
      if (const Orphan* o = FindOrphan(r)) {
        // Processed before its publish arrived (out of order).
        hop.processed_ns = std::max<Nanos>(o->process.start_ns, 1);
        hop.process_service = o->process.service;
        hop.process_span_id = o->process.span_id;
        hop.process_trace_id = o->process.trace_id;
        if (hop.queue.empty()) hop.queue = o->process.queue;
        if (o->process.order_id.empty()) {
          // Its process span was not stored with the order then; it is now.
          SpanRecord span = o->process;
          span.order_id = r.order_id;
          ApplyToOrder(e, span, &p);
          p.batch.spans.push_back(std::move(span));
        }
        ForgetOrphan(r);
      } else {
        auto [it, inserted] = hops_->try_emplace(r.span_id);
        (void)inserted;
        it->second.order_id = r.order_id;
        it->second.message_id = r.message_id;
        it->second.published_ns = hop.published_ns;
        if (!r.message_id.empty()) IndexMessage(hop_by_message_, *hops_, &*it);
        it->second.deadline_ns =
            hop_within > 0 ? Settled(SatAdd(SatAdd(hop.published_ns, hop_within), grace), now)
                           : kNever;
        hop_heap_->Update(&*it);
        if (e->second.open_hops < 0xffff) ++e->second.open_hops;
      }
      p.batch.hops.push_back(std::move(hop));
    }
    p.batch.spans.push_back(std::move(r));
  }
  if (!load_error.ok()) {
    log::Warn("journey store read failed; orders treated as new",
              {{"error", load_error.message()}});
  }
  for (ActiveEntry* e : p.touched) Reschedule(e, now, &p);
  Status s = Commit(&p);
  const bool kick = NextDeadlineLocked() < wake_before;
  lock.unlock();
  Notify(p);
  if (kick) KickDetector();
  return s;
}

size_t Engine::Tick(Nanos now) {
  std::lock_guard wlock(write_mu_);
  std::unique_lock lock(mu_);
  Pending p;
  // Messages first: a late message makes its order stuck in the same tick.
  while (HopEntry* h = hop_heap_->top()) {
    if (h->second.deadline_ns > now) break;
    // When it was due (the heap key may be later: settle).
    const Nanos due =
        std::min(h->second.deadline_ns,
                 SatAdd(SatAdd(h->second.published_ns, ToNanos(rules_->message_processed_within)),
                        ToNanos(rules_->grace)));
    h->second.deadline_ns = kNever;
    hop_heap_->Remove(h);  // stays open (in hops_) until processed
    // A retried publish span of a message processed long ago opened this hop again: the store
    // knows it was processed.  (The one store read of the hop path, on the rare late path.)
    if (auto known = store_.FindHop(h->first, "");
        known.ok() && known.value().has_value() && !known.value()->open()) {
      const std::string& message_id = h->second.message_id;
      auto m = message_id.empty() ? hop_by_message_.end() : hop_by_message_.find(message_id);
      if (m != hop_by_message_.end() && m->second == h->first) hop_by_message_.erase(m);
      auto order = active_->find(h->second.order_id);
      if (order != active_->end() && order->second.open_hops > 0) {
        --order->second.open_hops;
        p.Touch(&*order);
      }
      hops_->erase(h->first);
      continue;
    }
    h->second.late = true;
    auto it = active_->find(h->second.order_id);
    if (it != active_->end() && !it->second.closed) {
      Active& a = it->second;
      if (a.late_hops++ == 0 || due < a.late_since_ns) a.late_since_ns = due;
      a.deadline_ns = std::min(a.deadline_ns, due);
      order_heap_->Update(&*it);
    } else {
      // The order's journey has ended: the message stays open in the store, not in memory.
      const std::string& message_id = h->second.message_id;
      auto m = message_id.empty() ? hop_by_message_.end() : hop_by_message_.find(message_id);
      if (m != hop_by_message_.end() && m->second == h->first) hop_by_message_.erase(m);
      hops_->erase(h->first);
    }
  }
  size_t flagged = 0;
  while (ActiveEntry* e = order_heap_->top()) {
    Active& a = e->second;
    if (a.deadline_ns > now) break;
    const Verdict v = Evaluate(a, now);
    CountOrder(a, -1);
    if (v.kind != StuckKind::kNone && a.stuck == StuckKind::kNone) {
      if (v.kind == StuckKind::kSilent) {
        const size_t slot = StageSlot(a.stage);
        if (heartbeats_missed_[slot] == nullptr) {
          heartbeats_missed_[slot] = &heartbeats_missed_family_->With(
              {slot == 0 ? "none" : rules_->stages[slot - 1].name});
        }
        heartbeats_missed_[slot]->Inc();
      }
      a.stuck = v.kind;
      a.stuck_since_ns = v.missed_at;
      ++stuck_;
      ++flagged;
      flagged_total_->With({StuckKindName(v.kind)}).Inc();
      flag_lag_->Observe(static_cast<double>(now - v.missed_at) / 1e9);
      a.event = kFlagged;
    } else if (v.kind == StuckKind::kNone && a.stuck != StuckKind::kNone) {
      a.stuck = StuckKind::kNone;
      a.stuck_since_ns = 0;
      --stuck_;
      a.event = kCleared;
    } else if (v.kind != StuckKind::kNone) {
      a.stuck = v.kind;
    }
    CountOrder(a, +1);
    a.deadline_ns = v.next_due;
    order_heap_->Update(e);
    p.Touch(e);
  }
  Status s = Commit(&p);
  (void)s;  // counted and retried by Commit()
  lock.unlock();
  Notify(p);
  return flagged;
}

Status Engine::Commit(Pending* p) {
  // Rows of every touched order; closed orders leave memory once written.
  for (ActiveEntry* e : p->touched) {
    e->second.touched = false;
    p->batch.orders.push_back(RowOf(*e));
    if (!known_.MayContain(e->first)) known_.Add(e->first);
    if (e->second.event == kFlagged) p->flagged.push_back(p->batch.orders.back());
    if (e->second.event == kCleared) p->cleared.push_back(p->batch.orders.back());
    e->second.event = 0;
  }
  for (ActiveEntry* e : p->touched) {
    if (e->second.closed && e->second.heap_pos == kNoPos) {
      if (e->second.stuck != StuckKind::kNone) --stuck_;
      if (e->second.late_hops > 0) {
        // Its late messages are out of the deadline heap, nothing else would forget them (they
        // stay open in the store).  Rare: an order closed while a message of it is late.
        for (auto it = hops_->begin(); it != hops_->end();) {
          if (it->second.late && it->second.order_id == e->first) {
            auto m = hop_by_message_.find(it->second.message_id);
            if (m != hop_by_message_.end() && m->second == it->first) hop_by_message_.erase(m);
            it = hops_->erase(it);
          } else {
            ++it;
          }
        }
      }
      CountOrder(e->second, -1);
      active_->erase(e->first);
    }
  }
  p->touched.clear();
  PublishStageMetrics();
  if (p->batch.empty() && retry_.empty()) return Status::Ok();

  // A failed write is kept and retried before the next one, so the store catches up with the
  // in-memory state once it works again (bounded: beyond that, the oldest is dropped, logged).
  if (!retry_.empty()) {
    Status s = store_.Write(retry_);
    if (!s.ok()) {
      store_errors_->Inc();
      Append(&retry_, std::move(p->batch));
      return s;
    }
    retry_ = WriteBatch{};
  }
  Status s = store_.Write(p->batch);
  if (!s.ok()) {
    store_errors_->Inc();
    log::Error("journey store write failed; kept for retry", {{"error", s.message()}});
    Append(&retry_, std::move(p->batch));
  }
  return s;
}

void Engine::Append(WriteBatch* to, WriteBatch&& from) {
  auto move_all = [](auto& dst, auto& src) {
    for (auto& x : src) dst.push_back(std::move(x));
  };
  move_all(to->spans, from.spans);
  move_all(to->milestones, from.milestones);
  move_all(to->hops, from.hops);
  move_all(to->orders, from.orders);
  const size_t n = to->spans.size() + to->milestones.size() + to->hops.size() + to->orders.size();
  if (n > kMaxPendingRetry) {
    log::Error("journey store unavailable too long; dropping the oldest unwritten facts",
               {{"records", static_cast<uint64_t>(n)}});
    *to = WriteBatch{};
  }
}

void Engine::Notify(const Pending& p) {
  std::vector<EngineListener*> listeners;
  {
    std::lock_guard lock(mu_);
    listeners = listeners_;
  }
  for (const OrderRow& r : p.flagged) {
    log::Info("order stuck", {{"order_id", r.order_id},
                              {"stage", r.stage},
                              {"missed", StuckKindName(r.stuck)},
                              {"summary", r.summary}});
    for (EngineListener* l : listeners) l->OnStuck(r);
  }
  for (const OrderRow& r : p.cleared) {
    cleared_total_->Inc();
    log::Info("order moved on", {{"order_id", r.order_id}, {"stage", r.stage}});
    for (EngineListener* l : listeners) l->OnCleared(r);
  }
}

void Engine::RememberOrphan(const SpanRecord& r) {
  if (options_.orphan_capacity == 0) return;
  Orphan o;
  if (!r.message_id.empty()) o.keys.push_back("m:" + r.message_id);
  if (!r.parent_span_id.empty()) o.keys.push_back("s:" + r.parent_span_id);
  for (const std::string& l : r.links) o.keys.push_back("s:" + l);
  if (o.keys.empty()) return;
  o.process = r;
  o.process.links.clear();
  size_t slot;
  if (orphans_->size() < options_.orphan_capacity) {
    slot = orphans_->size();
    orphans_->push_back(Orphan{});
  } else {
    slot = orphan_next_;  // the oldest: evicted
    for (const std::string& k : (*orphans_)[slot].keys) {
      auto it = orphan_index_.find(k);
      if (it != orphan_index_.end() && it->second == slot) orphan_index_.erase(it);
    }
  }
  for (const std::string& k : o.keys) orphan_index_[k] = slot;
  (*orphans_)[slot] = std::move(o);
  orphan_next_ = (slot + 1) % options_.orphan_capacity;
}

const Engine::Orphan* Engine::FindOrphan(const SpanRecord& send) const {
  auto look = [&](const std::string& key) -> const Orphan* {
    auto it = orphan_index_.find(key);
    return it == orphan_index_.end() ? nullptr : &(*orphans_)[it->second];
  };
  if (!send.message_id.empty()) {
    if (const Orphan* o = look("m:" + send.message_id)) return o;
  }
  return look("s:" + send.span_id);
}

void Engine::ForgetOrphan(const SpanRecord& send) {
  const Orphan* o = FindOrphan(send);
  if (o == nullptr) return;
  const size_t slot = static_cast<size_t>(o - orphans_->data());
  for (const std::string& k : (*orphans_)[slot].keys) {
    auto it = orphan_index_.find(k);
    if (it != orphan_index_.end() && it->second == slot) orphan_index_.erase(it);
  }
  (*orphans_)[slot].keys.clear();
}

size_t Engine::ForgetInactive(Nanos cutoff) {
  std::lock_guard wlock(write_mu_);
  std::lock_guard lock(mu_);
  size_t forgotten = 0;
  for (auto it = active_->begin(); it != active_->end();) {
    if (it->second.last_ns >= cutoff) {
      ++it;
      continue;
    }
    order_heap_->Remove(&*it);
    if (it->second.stuck != StuckKind::kNone) --stuck_;
    CountOrder(it->second, -1);
    it = active_->erase(it);
    ++forgotten;
  }
  if (forgotten == 0) return 0;
  PublishStageMetrics();
  for (auto it = hops_->begin(); it != hops_->end();) {
    if (active_->count(it->second.order_id) > 0) {
      ++it;
      continue;
    }
    const std::string& message_id = it->second.message_id;
    auto m = message_id.empty() ? hop_by_message_.end() : hop_by_message_.find(message_id);
    if (m != hop_by_message_.end() && m->second == it->first) hop_by_message_.erase(m);
    hop_heap_->Remove(&*it);
    it = hops_->erase(it);
  }
  return forgotten;
}

Nanos Engine::NextDeadlineLocked() const {
  Nanos n = kNever;
  if (const ActiveEntry* e = order_heap_->top()) n = e->second.deadline_ns;
  if (const HopEntry* h = hop_heap_->top()) n = std::min(n, h->second.deadline_ns);
  return n;
}

Nanos Engine::NextDeadline() const {
  std::lock_guard lock(mu_);
  return NextDeadlineLocked();
}

Status Engine::SetRules(std::shared_ptr<const Rules> rules) {
  std::lock_guard wlock(write_mu_);
  std::unique_lock lock(mu_);
  const std::shared_ptr<const Rules> old = rules_;
  const std::vector<std::string> old_watched = watched_;
  rules_ = std::move(rules);
  watched_ = rules_->WatchedServices();
  Pending p;
  const Nanos now = clock_.Now();
  // Message deadlines under the new rules (messages.processed_within, grace), from the publish
  // times: a late message stays late only when it is late under the new rules too.
  const Nanos hop_within = ToNanos(rules_->message_processed_within);
  const Nanos grace = ToNanos(rules_->grace);
  for (auto& e : *active_) {
    e.second.late_hops = 0;
    e.second.late_since_ns = 0;
  }
  for (auto& h : *hops_) {
    OpenHop& oh = h.second;
    const Nanos due = hop_within > 0 ? SatAdd(SatAdd(oh.published_ns, hop_within), grace) : kNever;
    if (oh.late && due <= now) {
      auto it = active_->find(oh.order_id);
      if (it != active_->end() && !it->second.closed) {
        Active& a = it->second;
        if (a.late_hops++ == 0 || due < a.late_since_ns) a.late_since_ns = due;
      }
    } else {
      oh.late = false;
      oh.deadline_ns = due;
      hop_heap_->Update(&h);
    }
  }
  for (auto& e : *active_) {
    Active& a = e.second;
    if (a.stage >= 0 && static_cast<size_t>(a.stage) < old->stages.size()) {
      a.stage = static_cast<int8_t>(rules_->StageIndex(old->stages[a.stage].name));
    }
    std::array<Nanos, kMaxWatched> seen{};
    for (size_t i = 0; i < old_watched.size() && i < kMaxWatched; ++i) {
      const uint16_t j = ServiceIndex(old_watched[i]);
      if (j != kNoService) seen[j] = a.seen[i];
    }
    a.seen = seen;
    a.closed = a.stage >= 0 && rules_->stages[a.stage].terminal();
    Reschedule(&e, now, &p);
  }
  // Stage slots and labels of the new rules, counted again (before Commit() publishes them;
  // Reschedule() above counted each order out and in again in the same slot).
  RebuildStageMetrics();
  Status s = Commit(&p);
  const size_t active = active_->size();
  const std::string source = rules_->source;
  lock.unlock();
  Notify(p);
  KickDetector();
  log::Info("journey rules replaced",
            {{"source", source}, {"active_orders", static_cast<uint64_t>(active)}});
  return s;
}

void Engine::StartDetector(Duration max_sleep, Duration min_interval) {
  std::lock_guard lock(detector_mu_);
  if (detector_.joinable()) return;
  detector_stop_ = false;
  detector_ =
      std::thread([this, max_sleep, min_interval] { DetectorLoop(max_sleep, min_interval); });
}

void Engine::StopDetector() {
  {
    std::lock_guard lock(detector_mu_);
    detector_stop_ = true;
  }
  detector_cv_.notify_all();
  if (detector_.joinable()) detector_.join();
}

void Engine::KickDetector() {
  {
    std::lock_guard lock(detector_mu_);
    detector_kick_ = true;
  }
  detector_cv_.notify_all();
}

void Engine::DetectorLoop(Duration max_sleep, Duration min_interval) {
  // Ticks at the next deadline, but no more often than every `min_interval`: deadlines that
  // fall close together are flagged by one Tick() and one store transaction (a tick per
  // deadline cost a transaction per flag), at the price of at most `min_interval` of lag.
  const auto min_gap = std::chrono::duration_cast<std::chrono::nanoseconds>(min_interval);
  std::unique_lock lock(detector_mu_);
  while (!detector_stop_) {
    lock.unlock();
    const auto ticked = std::chrono::steady_clock::now();
    const Nanos now = clock_.Now();
    Tick(now);
    const Nanos next = NextDeadline();
    lock.lock();
    if (detector_stop_) break;
    auto sleep = std::chrono::duration_cast<std::chrono::nanoseconds>(max_sleep);
    if (next != kNever) {
      sleep = std::min(sleep, std::chrono::nanoseconds(std::max<Nanos>(next - now, 0)));
    }
    const auto wake = ticked + std::max(sleep, min_gap);
    // A kick (Apply() brought an earlier deadline) shortens the sleep, never below min_gap.
    detector_cv_.wait_until(lock, ticked + min_gap, [&] { return detector_stop_; });
    while (!detector_stop_ && !detector_kick_ && std::chrono::steady_clock::now() < wake) {
      detector_cv_.wait_until(lock, wake, [&] { return detector_stop_ || detector_kick_; });
    }
    detector_kick_ = false;
  }
}

}  // namespace ordertrace::journey
