#include "journey/engine.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <utility>

#include "common/log.h"
#include "journey/diagnosis.h"
#include "journey/store/semantics.h"

namespace ordertrace::journey {

namespace {
constexpr uint16_t kNoService = 0xffff;
constexpr size_t kMaxWatched = 4;  // the rules allow at most 4 watched services
constexpr uint8_t kFlagged = 1, kCleared = 2;
constexpr size_t kMaxPendingRetry = 1000000;  // records kept for a failing store before dropping
// Orders one Tick() flags per store transaction: a backlog (100k due at once) is flagged in
// slices, each written and heard by the listeners before the next, with the writer lock released
// in between (an Apply() waits for one slice, not the whole backlog).
constexpr size_t kTickSlice = 2048;
// Verdicts queued for the verdict writer beyond which the detector writes them itself (the
// writer falls behind: the queue's memory stays bounded, ~100 bytes a verdict).
constexpr size_t kMaxQueuedVerdicts = size_t{1} << 16;
// Verdicts the verdict writer writes per transaction, at most (whole slices).  The SQLite store
// appends them to its verdict log, so a larger chunk saves little per verdict; small enough that
// they are heard in a steady stream and an Apply() waits for one such transaction at most
// before its own (16,384 while verdicts were written in place, where a backlog's flags shared
// pages: docs/benchmarks.md, "The verdict log").
constexpr size_t kWriteChunk = 4096;
// Deferred store records (store.h Settle) the verdict writer settles per step when idle, and
// how long the detector must have queued nothing for the writer to be idle: a burst of flags
// (slices every tick, 50 ms apart at most) is only appended, and settled after it.
constexpr size_t kSettleStep = 2048;
constexpr auto kSettleIdle = std::chrono::milliseconds(250);

Nanos ToNanos(Duration d) { return std::chrono::nanoseconds(d).count(); }
Nanos SatAdd(Nanos a, Nanos b) { return a > Engine::kNever - b ? Engine::kNever : a + b; }
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
  uint32_t heap_pos = kNoHeapPos;
  uint16_t open_hops = 0;
  uint16_t late_hops = 0;
  uint16_t last_service = kNoService;
  uint16_t stuck_service = kNoService;  // the expected service it is counted under while stuck
  int8_t stage = -1;
  StuckKind stuck = StuckKind::kNone;
  // Bit fields: the record stays 112 bytes with stuck_service.
  bool closed : 1 = false;
  bool touched : 1 = false;  // changed in the current Apply/Tick
  bool moved : 1 = false;    // reached a later stage in the current Apply
  uint8_t event : 2 = 0;     // kFlagged / kCleared in the current Apply/Tick: listeners hear it
  // Touched by Tick()'s verdict only (Pending::TouchVerdict): its store write is an
  // OrderVerdict (the verdict columns), not the whole row.
  bool verdict_only : 1 = false;
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
  // The partner of each order that got one in this mutation (the earliest span's): it goes into
  // the order's row, and the store merges it with the stored one (semantics.h KeepPartner), so
  // the in-memory record need not hold it.
  struct Partner {
    std::string id;
    Nanos ns = 0;
  };
  std::unordered_map<const ActiveEntry*, Partner> partners;
  std::vector<OrderRow> flagged;
  std::vector<OrderRow> cleared;
  void Touch(ActiveEntry* e) {
    e->second.verdict_only = false;  // the whole row, even when its verdict changed too
    if (!e->second.touched) {
      e->second.touched = true;
      touched.push_back(e);
    }
  }
  // Only the verdict changed (Tick): unless touched otherwise, a verdict write.
  void TouchVerdict(ActiveEntry* e) {
    if (!e->second.touched) {
      e->second.touched = true;
      e->second.verdict_only = true;
      touched.push_back(e);
    }
  }
};

Engine::Engine(std::shared_ptr<const Rules> rules, JourneyStore& store, const Clock& clock,
               metrics::Registry* registry, EngineOptions options)
    : store_(store),
      clock_(clock),
      options_(options),
      recent_(options.recent_spans),
      rules_(rules),
      watched_(rules->WatchedServices()),
      active_(std::make_unique<ActiveMap>()),
      order_heap_(std::make_unique<DeadlineHeap<ActiveEntry>>()),
      hops_(options.orphan_capacity),
      metrics_(std::make_unique<EngineMetrics>(
          registry,
          EngineMetrics::Sizes{[this] { return active_orders(); },
                               [this] { return stuck_orders(); }, [this] { return open_hops(); }})),
      published_rules_(rules),
      detector_(
          clock, [this](Nanos now) { Tick(now); }, [this] { return NextDeadline(); },
          options_.facts_horizon) {
  MutexLock lock(mu_);
  store_errors_ = &metrics_->store_errors();
  RebuildStageMetrics();
}

Engine::~Engine() { StopDetector(); }

size_t Engine::active_orders() const {
  MutexLock lock(mu_);
  return active_->size();
}
size_t Engine::open_hops() const {
  MutexLock lock(mu_);
  return hops_.size();
}
std::string Engine::PublishOrder(std::string_view send_span_id) {
  const std::string id(send_span_id);
  {
    MutexLock lock(mu_);
    if (const HopEntry* h = hops_.Find(id)) return h->second.order_id;
  }
  Result<std::optional<Hop>> stored = store_.FindHop(id, {});
  if (!stored.ok() || !stored->has_value()) return {};
  return (*stored)->order_id;
}

size_t Engine::stuck_orders() const {
  MutexLock lock(mu_);
  return stuck_;
}
void Engine::AddListener(EngineListener* listener) {
  MutexLock lock(mu_);
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

namespace {
uint32_t StuckKey(int stage, StuckKind kind, uint16_t service) {
  const auto slot = static_cast<uint32_t>(stage < 0 ? 0 : stage + 1);
  return slot << 24 | static_cast<uint32_t>(kind) << 16 | service;
}
}  // namespace

void Engine::CountOrder(Active& a, int delta) {
  metrics_->CountOrder(a.stage, a.stuck, delta);
  if (a.stuck == StuckKind::kNone) return;
  // Counted in and out under the service it was counted in with (the expected service may
  // change meanwhile, as facts arrive; the next recount moves it).
  if (delta > 0) a.stuck_service = StuckServiceOf(a);
  const auto it =
      stuck_by_service_.try_emplace(StuckKey(a.stage, a.stuck, a.stuck_service), 0).first;
  it->second += delta;
  if (it->second == 0) stuck_by_service_.erase(it);
}

// The service a stuck order waits for, as RowOf() names it (OrderRow::expected_service).
uint16_t Engine::StuckServiceOf(const Active& a) {
  const Verdict v = Evaluate(a, std::max(clock_.Now(), a.stuck_since_ns));
  if (!v.expected_service.empty()) return InternService(v.expected_service);
  if (a.stage >= 0 && !a.closed) return a.last_service;
  return kNoService;
}

void Engine::RebuildStageMetrics() {
  metrics_->Rebuild(*rules_);
  stuck_by_service_.clear();
  for (auto& e : *active_) CountOrder(e.second, +1);
  metrics_->Publish(*rules_);
}

EngineSummary Engine::Summary() const {
  EngineSummary out;
  out.revision = revision();
  MutexLock lock(mu_);
  out.rules = rules_;
  out.active = active_->size();
  out.stuck = stuck_;
  out.open_hops = hops_.size();
  out.flagged_total = metrics_->flagged_total();
  out.cleared_total = metrics_->cleared_total();
  out.closed_total = metrics_->closed_total();
  for (size_t slot = 0; slot < metrics_->slots(); ++slot) {
    EngineSummary::Stage st;
    st.index = static_cast<int>(slot) - 1;
    st.active = metrics_->active_in(slot);
    st.stuck = metrics_->stuck_in(slot);
    st.p50_seconds = metrics_->StageDurationQuantile(slot, 0.5);
    st.p95_seconds = metrics_->StageDurationQuantile(slot, 0.95);
    out.stages.push_back(st);
  }
  out.stuck_by.reserve(stuck_by_service_.size());
  for (const auto& [key, count] : stuck_by_service_) {
    EngineSummary::StuckCell c;
    c.stage = static_cast<int>(key >> 24) - 1;
    c.kind = static_cast<StuckKind>((key >> 16) & 0xff);
    const uint16_t service = key & 0xffff;
    if (service != kNoService && service < services_.size()) c.service = services_[service];
    c.count = count;
    out.stuck_by.push_back(std::move(c));
  }
  std::sort(out.stuck_by.begin(), out.stuck_by.end(),
            [](const EngineSummary::StuckCell& a, const EngineSummary::StuckCell& b) {
              if (a.count != b.count) return a.count > b.count;
              if (a.stage != b.stage) return a.stage < b.stage;
              if (a.service != b.service) return a.service < b.service;
              return a.kind < b.kind;
            });
  return out;
}

Engine::Verdict Engine::Evaluate(const Active& a, Nanos now) const {
  Verdict v;
  if (a.closed) return v;
  const Rules& rules = *rules_;
  const Nanos grace = ToNanos(rules.grace);
  struct Ctx {
    const std::vector<std::string>* watched;
    const Active* a;
  } ctx{&watched_, &a};
  OrderFacts f;
  f.stage = a.stage;
  f.stage_start_ns = a.stage_start_ns;
  f.stage_ns = a.stage_ns;
  f.last_heartbeat_ns = a.last_heartbeat_ns;
  f.seen_ctx = &ctx;
  f.seen = [](const void* c, std::string_view service) -> Nanos {
    const auto* x = static_cast<const Ctx*>(c);
    for (size_t i = 0; i < x->watched->size() && i < kMaxWatched; ++i) {
      if ((*x->watched)[i] == service) return x->a->seen[i];
    }
    return 0;
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
      metrics_->StuckEnded(a.stuck, static_cast<double>(now - a.stuck_since_ns) / 1e9);
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
  OrderVerdict v = VerdictOf(e);
  r.order_id = std::move(v.order_id);
  ApplyVerdict(r, v);
  return r;
}

// What RowOf() names OrderRow::expected_service.
std::string Engine::ExpectedServiceOf(const Active& a) const {
  const Verdict v = Evaluate(a, std::max(clock_.Now(), a.stuck_since_ns));
  if (!v.expected_service.empty()) return std::string(v.expected_service);
  if (a.stage >= 0 && !a.closed && a.last_service != kNoService) return services_[a.last_service];
  return {};
}

OrderVerdict Engine::VerdictOf(const ActiveEntry& e) const {
  const Active& a = e.second;
  OrderVerdict v;
  v.order_id = e.first;
  v.stuck = a.stuck;
  v.stuck_since_ns = a.stuck_since_ns;
  v.deadline_ns = a.deadline_ns == kNever ? 0 : a.deadline_ns;
  v.expected_service = ExpectedServiceOf(a);
  return v;
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
  if (!r.partner.empty()) {
    Pending::Partner& best = p->partners[e];
    if (PartnerEarlier(r.partner, r.start_ns, best.id, best.ns)) best = {r.partner, r.start_ns};
  }
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
        metrics_->ObserveStageLeft(*rules_, a.stage, a.stage_ns, r.end_ns);
      }
      CountOrder(a, -1);
      a.stage = static_cast<int8_t>(idx);
      a.stage_start_ns = r.start_ns;
      a.stage_ns = r.end_ns;
      const bool was_closed = a.closed;
      a.closed = idx >= 0 && rules_->stages[idx].terminal();
      if (a.closed && !was_closed) metrics_->Closed();
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
  const OpenHops::Hop& oh = h->second;
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
  hops_.Close(h);
}

Status Engine::Recover() {
  MutexLock wlock(write_mu_);
  MutexLock lock(mu_);
  const Nanos now = clock_.Now();
  Status s = store_.ForEachActiveOrder([&](const OrderRow& r) {
    mu_.AssertHeld();  // called synchronously, under the lock taken above
    auto [it, inserted] = active_->try_emplace(r.order_id);
    if (!inserted) return;
    LoadRow(r, &it->second);
    it->second.open_hops = 0;  // counted again from the open hops below
  });
  if (!s.ok()) return s;
  s = store_.ForEachOrderId([&](std::string_view id) {
    mu_.AssertHeld();
    known_.Add(id);
  });
  if (!s.ok()) return s;
  const Nanos within = ToNanos(rules_->message_processed_within);
  const Nanos grace = ToNanos(rules_->grace);
  size_t hops = 0;
  s = store_.ForEachOpenHop([&](const Hop& h) {
    mu_.AssertHeld();
    if (h.published_ns == 0) return;
    auto a = active_->find(h.order_id);
    if (a == active_->end()) return;  // a closed order's message: its journey has ended
    auto [it, inserted] = hops_.Add(h.send_span_id, h.order_id, h.message_id, h.published_ns);
    if (!inserted) return;
    const Nanos due = within > 0 ? SatAdd(SatAdd(h.published_ns, within), grace) : kNever;
    if (due <= now) {
      // Late already (the deadline passed while the gateway was down): counted now, so spans
      // arriving before the first Tick() cannot clear a flag that still holds.
      it->second.late = true;
      Active& x = a->second;
      if (x.late_hops++ == 0 || due < x.late_since_ns) x.late_since_ns = due;
    } else {
      it->second.deadline_ns = due;
      hops_.Schedule(it);
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
  Changed();
  log::Info("journeys recovered", {{"active_orders", static_cast<uint64_t>(active_->size())},
                                   {"open_hops", static_cast<uint64_t>(hops)},
                                   {"stuck_orders", static_cast<uint64_t>(stuck_)}});
  return Status::Ok();
}

Status Engine::Apply(std::vector<SpanRecord> facts) {
  if (facts.empty()) return Status::Ok();
  MutexLock wlock(write_mu_);
  Pending p;
  bool kick = false;
  const bool remember = options_.recent_spans > 0;
  std::vector<uint64_t> applied;  // fingerprints of the spans applied, remembered once written
  if (remember) applied.reserve(facts.size());
  {
    MutexLock lock(mu_);
    Status load_error;
    const Rules& rules = *rules_;
    const Nanos now = clock_.Now();
    const Nanos hop_within = ToNanos(rules.message_processed_within);
    const Nanos grace = ToNanos(rules.grace);
    const Nanos wake_before = NextDeadlineLocked();

    for (SpanRecord& r : facts) {
      metrics_->Fact();
      // An exact repeat of a span applied lately changes nothing (recent_spans.h): skipped.
      // Only spans that arrive with their order id are remembered (a process span that gets its
      // order through the message is matched again, as before).
      uint64_t fingerprint = 0;
      if (remember && !r.order_id.empty()) {
        fingerprint = RecentSpans::Fingerprint(r);
        if (recent_.Contains(fingerprint)) {
          metrics_->Repeat();
          continue;
        }
      }
      // A process span closes the hop of its message (OpenHops::Match).
      if (r.hop == HopRole::kProcess) {
        if (HopEntry* h = hops_.Match(r)) {
          if (r.order_id.empty()) r.order_id = h->second.order_id;
          std::string earlier = h->second.earlier;
          const std::string message_id = h->second.message_id;
          CloseHop(h, r, &p);
          // The same message published more than once (a publish that failed, retried): its
          // processing closes every open publish of it.
          while (!earlier.empty()) {
            HopEntry* e = hops_.Find(earlier);
            if (e == nullptr || e->second.message_id != message_id) break;
            earlier = e->second.earlier;
            CloseHop(e, r, &p);
          }
        } else {
          hops_.RememberOrphan(r);
        }
      }
      if (r.order_id.empty()) continue;  // a process span of no known order (yet)

      ActiveEntry* e = FindOrLoad(r.order_id, &p, &load_error);
      ApplyToOrder(e, r, &p);

      // A send span opens a hop unless it is open already or was closed recently (an exporter
      // retrying the publish span); one closed longer ago is checked in the store when its
      // deadline fires (Tick), so the hot path reads nothing.
      if (r.hop == HopRole::kSend && !hops_.ClosedLately(r.span_id) &&
          hops_.Find(r.span_id) == nullptr) {
        Hop hop;
        hop.order_id = r.order_id;
        hop.send_span_id = r.span_id;
        hop.send_trace_id = r.trace_id;
        hop.send_service = r.service;
        hop.message_id = r.message_id;
        hop.exchange = r.exchange;
        hop.routing_key = r.routing_key;
        hop.queue = r.queue;
        if (hop.queue.empty() && options_.route_queue) {
          hop.queue = options_.route_queue(hop.exchange, hop.routing_key);
        }
        hop.published_ns = std::max<Nanos>(r.end_ns, 1);
        if (const OpenHops::Orphan* o = hops_.FindOrphan(r)) {
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
          hops_.ForgetOrphan(r);
        } else {
          HopEntry* h = hops_.Add(r.span_id, r.order_id, r.message_id, hop.published_ns).first;
          h->second.deadline_ns =
              hop_within > 0 ? Settled(SatAdd(SatAdd(hop.published_ns, hop_within), grace), now)
                             : kNever;
          hops_.Schedule(h);
          if (e->second.open_hops < 0xffff) ++e->second.open_hops;
        }
        p.batch.hops.push_back(std::move(hop));
      }
      if (fingerprint != 0) applied.push_back(fingerprint);
      p.batch.spans.push_back(std::move(r));
    }
    if (!load_error.ok()) {
      applied.clear();  // rows built on orders not read: not remembered, a repeat goes through
      log::Warn("journey store read failed; orders treated as new",
                {{"error", load_error.message()}});
    }
    for (ActiveEntry* e : p.touched) Reschedule(e, now, &p);
    Prepare(&p);
    kick = NextDeadlineLocked() < wake_before;
  }
  Status s = WriteAndNotify(&p, true);
  if (s.ok()) {
    for (const uint64_t f : applied) recent_.Add(f);
  }
  if (kick) detector_.Wake();
  return s;
}

size_t Engine::Tick(Nanos now) {
  size_t flagged = 0;
  for (bool first = true;; first = false) {
    MutexLock wlock(write_mu_);
    Pending p;
    bool more = false;  // due orders left for the next slice
    {
      MutexLock lock(mu_);
      if (first) TickHops(now, &p);
      more = TickOrders(now, &p, &flagged);
      // The lost orders' pass once the due ones are flagged (a backlog first).
      if (!more) LostPass(now);
      Prepare(&p);
    }
    const WriteBatch& b = p.batch;
    const bool verdicts_only = b.spans.empty() && b.milestones.empty() && b.hops.empty() &&
                               b.orders.empty() && !b.verdicts.empty();
    bool queued = false;
    if (verdicts_only && queue_verdicts_.load(std::memory_order_acquire)) {
      MutexLock qlock(queue_mu_);
      if (queued_verdicts_ < kMaxQueuedVerdicts) {
        queued_verdicts_ += p.batch.verdicts.size();
        last_queued_ = std::chrono::steady_clock::now();
        queued_.push_back({std::move(p.batch), std::move(p.flagged), std::move(p.cleared)});
        queued = true;
      }
    }
    if (queued) {
      verdict_writer_.Wake();
    } else if (p.batch.empty() && queue_verdicts_.load(std::memory_order_acquire)) {
      // Nothing to write: the detector does not wait for the writer's transaction (the writer
      // retries a failed write, if any).
      verdict_writer_.Wake();
    } else {
      Status s = WriteAndNotify(&p, !p.batch.empty());
      (void)s;  // counted and retried by Write()
    }
    if (!more) break;
  }
  return flagged;
}

void Engine::TickHops(Nanos now, Pending* p) {
  // Messages first: a late message makes its order stuck in the same tick.
  while (HopEntry* h = hops_.NextDue()) {
    if (h->second.deadline_ns > now) break;
    // When it was due (the heap key may be later: settle).
    const Nanos due =
        std::min(h->second.deadline_ns,
                 SatAdd(SatAdd(h->second.published_ns, ToNanos(rules_->message_processed_within)),
                        ToNanos(rules_->grace)));
    h->second.deadline_ns = kNever;
    hops_.Unschedule(h);  // stays open (in hops_) until processed
    // A retried publish span of a message processed long ago opened this hop again: the
    // store knows it was processed.  (The one store read of the hop path, on the rare late
    // path.)
    if (auto known = store_.FindHop(h->first, "");
        known.ok() && known.value().has_value() && !known.value()->open()) {
      auto order = active_->find(h->second.order_id);
      if (order != active_->end() && order->second.open_hops > 0) {
        --order->second.open_hops;
        p->Touch(&*order);
      }
      hops_.Erase(h);
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
      hops_.Erase(h);
    }
  }
}

bool Engine::TickOrders(Nanos now, Pending* p, size_t* flagged) {
  size_t n = 0;
  while (ActiveEntry* e = order_heap_->top()) {
    Active& a = e->second;
    if (a.deadline_ns > now) break;
    if (n++ == kTickSlice) return true;
    const Verdict v = Evaluate(a, now);
    CountOrder(a, -1);
    if (v.kind != StuckKind::kNone && a.stuck == StuckKind::kNone) {
      if (v.kind == StuckKind::kSilent) metrics_->HeartbeatMissed(*rules_, a.stage);
      a.stuck = v.kind;
      a.stuck_since_ns = v.missed_at;
      ++stuck_;
      ++*flagged;
      metrics_->Flagged(v.kind, static_cast<double>(now - v.missed_at) / 1e9);
      a.event = kFlagged;
    } else if (v.kind == StuckKind::kNone && a.stuck != StuckKind::kNone) {
      metrics_->StuckEnded(a.stuck, static_cast<double>(now - a.stuck_since_ns) / 1e9);
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
    p->TouchVerdict(e);
  }
  return false;
}

// Lost orders by stage slot (engine_metrics.h): a slice of the map's buckets per Tick.
void Engine::LostPass(Nanos now) {
  EngineMetrics::LostPass* pass =
      metrics_->LostPassAt(now, active_->bucket_count(), rules_->stages.size() + 1);
  if (pass == nullptr) return;
  const size_t end = std::min(pass->next_bucket + EngineMetrics::kLostBuckets, pass->buckets);
  for (; pass->next_bucket < end; ++pass->next_bucket) {
    for (auto it = active_->cbegin(pass->next_bucket); it != active_->cend(pass->next_bucket);
         ++it) {
      const Active& a = it->second;
      const bool silent = a.last_ns < pass->cutoff ||
                          (a.stuck != StuckKind::kNone && a.stuck_since_ns < pass->cutoff);
      const auto slot = static_cast<size_t>(a.stage + 1);
      if (!a.closed && silent && slot < pass->by_slot.size()) ++pass->by_slot[slot];
    }
  }
  if (end == pass->buckets) metrics_->PublishLost(*rules_);
}

void Engine::Prepare(Pending* p) {
  const Nanos now = clock_.Now();
  // Rows for listeners (and the log) only when someone hears them.
  const bool heard = !listeners_.empty() || log::Enabled(log::Level::kInfo);
  auto stage_name = [this](int stage) -> std::string {
    mu_.AssertHeld();
    if (stage < 0 || static_cast<size_t>(stage) >= rules_->stages.size()) return {};
    return rules_->stages[stage].name;
  };
  // Rows of every touched order, or the verdict alone when only that changed (Tick); closed
  // orders leave memory (the rows carry them to the store).
  for (ActiveEntry* e : p->touched) {
    Active& a = e->second;
    a.touched = false;
    const uint8_t event = a.event;
    a.event = 0;
    if (a.verdict_only) {
      a.verdict_only = false;
      if (event != 0 && heard) {
        // The listeners' row, and the verdict from it (one evaluation).
        auto& rows = event == kFlagged ? p->flagged : p->cleared;
        rows.push_back(RowOf(*e));
        const OrderRow& r = rows.back();
        p->batch.verdicts.push_back(
            {r.order_id, r.stuck, r.stuck_since_ns, r.deadline_ns, r.expected_service, {}});
      } else {
        p->batch.verdicts.push_back(VerdictOf(*e));
      }
      const OrderVerdict& v = p->batch.verdicts.back();
      if (event == kFlagged) {
        // Its stuck episode (store.h WriteBatch::episodes), as of now; a clear ends it.
        p->batch.episodes.push_back(
            {e->first, stage_name(a.stage), v.stuck, v.expected_service, v.stuck_since_ns, now, 0});
      }
    } else {
      p->batch.orders.push_back(RowOf(*e));
      OrderRow& row = p->batch.orders.back();
      if (const auto it = p->partners.find(e); it != p->partners.end()) {
        row.partner = it->second.id;
        row.partner_ns = it->second.ns;
      }
      if (!known_.MayContain(e->first)) known_.Add(e->first);
      if (event == kFlagged) {
        p->batch.episodes.push_back(
            {row.order_id, row.stage, row.stuck, row.expected_service, row.stuck_since_ns, now, 0});
      }
      if (event != 0 && heard) (event == kFlagged ? p->flagged : p->cleared).push_back(row);
    }
    if (event == kCleared) {
      p->batch.episodes.push_back({e->first, {}, StuckKind::kNone, {}, 0, 0, now});
      metrics_->Cleared();
    }
  }
  for (ActiveEntry* e : p->touched) {
    if (e->second.closed && e->second.heap_pos == kNoHeapPos) {
      if (e->second.stuck != StuckKind::kNone) --stuck_;
      if (e->second.late_hops > 0) {
        // Its late messages are out of the deadline heap, nothing else would forget them (they
        // stay open in the store).  Rare: an order closed while a message of it is late.
        hops_.EraseIf(
            [&](const HopEntry& h) { return h.second.late && h.second.order_id == e->first; });
      }
      CountOrder(e->second, -1);
      active_->erase(e->first);
    }
  }
  p->touched.clear();
  metrics_->Publish(*rules_);
}

Status Engine::WriteAndNotify(Pending* p, bool changed) {
  MutexLock slock(store_mu_);
  // Earlier slices first (the store sees the changes in order), in the writer's chunks.
  while (WriteQueued(kWriteChunk)) {
  }
  Status s = Write(&p->batch);
  if (changed) Changed();
  Notify(p->flagged, p->cleared);
  return s;
}

bool Engine::WriteQueued(size_t max_verdicts) {
  Queued q;
  bool more = false;
  {
    MutexLock qlock(queue_mu_);
    size_t n = 0;
    while (!queued_.empty() &&
           (n == 0 || n + queued_.front().batch.verdicts.size() <= max_verdicts)) {
      Queued& s = queued_.front();
      n += s.batch.verdicts.size();
      if (q.batch.empty()) {
        q = std::move(s);
      } else {
        Append(&q.batch, std::move(s.batch));
        for (OrderRow& r : s.flagged) q.flagged.push_back(std::move(r));
        for (OrderRow& r : s.cleared) q.cleared.push_back(std::move(r));
      }
      queued_.pop_front();
    }
    queued_verdicts_ -= n;
    more = !queued_.empty();
  }
  if (q.batch.empty() && retry_.empty()) return more;
  // By order id (stable: an order's own verdicts and episode updates keep their order), so
  // consecutive updates fall on the same or neighbouring B-tree pages.
  auto by_id = [](const auto& a, const auto& b) { return a.order_id < b.order_id; };
  std::stable_sort(q.batch.verdicts.begin(), q.batch.verdicts.end(), by_id);
  std::stable_sort(q.batch.episodes.begin(), q.batch.episodes.end(), by_id);
  Status s = Write(&q.batch);
  (void)s;  // counted and retried by Write()
  Changed();
  Notify(q.flagged, q.cleared);
  return more;
}

Status Engine::Write(WriteBatch* batch) {
  if (batch->empty() && retry_.empty()) return Status::Ok();
  // A failed write is kept and retried before the next one, so the store catches up with the
  // in-memory state once it works again (bounded: beyond that, the oldest is dropped, logged).
  if (!retry_.empty()) {
    Status s = store_.Write(retry_);
    if (!s.ok()) {
      store_errors_->Inc();
      Append(&retry_, std::move(*batch));
      return s;
    }
    retry_ = WriteBatch{};
  }
  Status s = store_.Write(*batch);
  if (!s.ok()) {
    store_errors_->Inc();
    log::Error("journey store write failed; kept for retry", {{"error", s.message()}});
    Append(&retry_, std::move(*batch));
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
  move_all(to->episodes, from.episodes);
  move_all(to->verdicts, from.verdicts);
  const size_t n = to->spans.size() + to->milestones.size() + to->hops.size() + to->orders.size() +
                   to->verdicts.size();
  if (n > kMaxPendingRetry) {
    log::Error("journey store unavailable too long; dropping the oldest unwritten facts",
               {{"records", static_cast<uint64_t>(n)}});
    *to = WriteBatch{};
  }
}

void Engine::Notify(const std::vector<OrderRow>& flagged, const std::vector<OrderRow>& cleared) {
  std::vector<EngineListener*> listeners;
  {
    MutexLock lock(mu_);
    listeners = listeners_;
  }
  const bool log_info = log::Enabled(log::Level::kInfo);
  std::shared_ptr<const Rules> rules = log_info ? this->rules() : nullptr;
  const Nanos now = log_info ? clock_.Now() : 0;
  for (const OrderRow& r : flagged) {
    if (!log_info) break;
    // The summary line for the log only (listeners get the row without it).
    log::Info("order stuck", {{"order_id", r.order_id},
                              {"stage", r.stage},
                              {"missed", StuckKindName(r.stuck)},
                              {"summary", SummaryLine(r, *rules, now)}});
  }
  for (const OrderRow& r : cleared) {
    if (!log_info) break;
    log::Info("order moved on", {{"order_id", r.order_id}, {"stage", r.stage}});
  }
  if (flagged.empty() && cleared.empty()) return;
  for (EngineListener* l : listeners) l->OnVerdicts(flagged, cleared);
}

size_t Engine::ForgetInactive(Nanos cutoff) {
  MutexLock wlock(write_mu_);
  MutexLock lock(mu_);
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
  metrics_->Publish(*rules_);
  const ActiveMap& active = *active_;
  hops_.EraseIf([&](const HopEntry& h) { return active.count(h.second.order_id) == 0; });
  Changed();
  return forgotten;
}

Nanos Engine::NextDeadlineLocked() const {
  Nanos n = kNever;
  if (const ActiveEntry* e = order_heap_->top()) n = e->second.deadline_ns;
  if (const HopEntry* h = hops_.NextDue()) n = std::min(n, h->second.deadline_ns);
  return n;
}

Nanos Engine::NextDeadline() const {
  MutexLock lock(mu_);
  return NextDeadlineLocked();
}

Status Engine::SetRules(std::shared_ptr<const Rules> rules) {
  MutexLock wlock(write_mu_);
  Pending p;
  size_t active = 0;
  std::string source;
  {
    MutexLock lock(mu_);
    const std::shared_ptr<const Rules> old = rules_;
    const std::vector<std::string> old_watched = watched_;
    rules_ = std::move(rules);
    published_rules_.store(rules_);
    recent_.Clear();  // a span applied under the old rules may mean more under the new ones
    rules_generation_.fetch_add(1, std::memory_order_acq_rel);
    watched_ = rules_->WatchedServices();
    const Nanos now = clock_.Now();
    // Message deadlines under the new rules (messages.processed_within, grace), from the
    // publish times: a late message stays late only when it is late under the new rules too.
    const Nanos hop_within = ToNanos(rules_->message_processed_within);
    const Nanos grace = ToNanos(rules_->grace);
    for (auto& e : *active_) {
      e.second.late_hops = 0;
      e.second.late_since_ns = 0;
    }
    for (auto& h : hops_.all()) {
      OpenHops::Hop& oh = h.second;
      const Nanos due =
          hop_within > 0 ? SatAdd(SatAdd(oh.published_ns, hop_within), grace) : kNever;
      if (oh.late && due <= now) {
        auto it = active_->find(oh.order_id);
        if (it != active_->end() && !it->second.closed) {
          Active& a = it->second;
          if (a.late_hops++ == 0 || due < a.late_since_ns) a.late_since_ns = due;
        }
      } else {
        oh.late = false;
        oh.deadline_ns = due;
        hops_.Schedule(&h);
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
    // Stage slots and labels of the new rules, counted again (before Prepare() publishes
    // them; Reschedule() above counted each order out and in again in the same slot).
    RebuildStageMetrics();
    Prepare(&p);
    active = active_->size();
    source = rules_->source;
  }
  Status s = WriteAndNotify(&p, true);
  detector_.Wake();
  log::Info("journey rules replaced",
            {{"source", source}, {"active_orders", static_cast<uint64_t>(active)}});
  return s;
}

void Engine::StartDetector(Duration max_sleep, Duration min_interval) {
  if (!verdict_writer_.running()) {
    verdict_writer_.Start("verdict-writer", [this]() -> std::chrono::nanoseconds {
      MutexLock slock(store_mu_);
      // With slices left, again at once (store_mu_ released in between).
      if (WriteQueued(kWriteChunk)) return std::chrono::nanoseconds(0);
      std::chrono::steady_clock::duration since_queued;
      {
        MutexLock qlock(queue_mu_);
        since_queued = std::chrono::steady_clock::now() - last_queued_;
      }
      if (since_queued < kSettleIdle) return kSettleIdle - since_queued;
      // Idle: the store's deferred work (store.h Settle), a step at a time, each run checking
      // the queue first, so a flag waits for one step at most.  The pause between steps
      // lets an Apply() waiting for store_mu_ in.
      Result<size_t> left = store_.Settle(kSettleStep);
      if (!left.ok()) {
        store_errors_->Inc();
        log::Error("journey store: settling deferred writes failed; retrying in 1 s",
                   {{"error", left.status().message()}});
        return std::chrono::seconds(1);
      }
      if (left.value() > 0) return std::chrono::milliseconds(1);
      // Until woken, or a second: Apply()'s writes may defer records too (the clears).
      return std::chrono::seconds(1);
    });
    queue_verdicts_.store(true, std::memory_order_release);
  }
  detector_.Start(max_sleep, min_interval);
}

void Engine::StopDetector() {
  detector_.Stop();
  {
    // Nothing is queued after this (Tick() writes itself), so the writer's last run and the
    // write below leave the queue empty.
    MutexLock wlock(write_mu_);
    queue_verdicts_.store(false, std::memory_order_release);
  }
  verdict_writer_.Stop();
  MutexLock slock(store_mu_);
  while (WriteQueued(kWriteChunk)) {
  }
}

}  // namespace ordertrace::journey
