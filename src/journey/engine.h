// Engine: order facts in, journeys and stuck orders out.
//
//   SpanRecords (facts.h) ─► Apply() ─► in-memory state of every active order ─► JourneyStore
//                                         │ one deadline per order (and per open message)
//   Detector thread ─► Tick(now) ─────────┘ flags orders whose deadline + grace passed,
//                                           clears them when they move on; listeners hear it
//
// State is derived commutatively from the facts (stage = the highest reached in rule order,
// its time = the earliest span that reached it, heartbeats and per-service activity = the
// latest), so late, out-of-order and duplicated spans give the same journey, and a later stage
// arriving before an earlier one raises nothing.  The order's partner (partner.id) is not kept
// in memory: each write carries the partner the batch's spans gave, and the store merges it
// (store/semantics.h KeepPartner: the earliest span's wins).  Deadlines are counted in span time
// (the timestamps services put on their spans) and compared with the clock: spans stamped in the
// past make an order stuck at once.
//
// Memory: an active order (not closed) costs one compact record in a hash map plus a slot in an
// indexed min-heap of deadlines; closed orders live in the store only.  docs/benchmarks.md has
// the bytes per active order with 1M of them.
//
// After a restart Recover() reloads active orders and open hops from the store: orders flagged
// before stay flagged (no second alert), a deadline that passed while the gateway was down is
// flagged once by the first Tick().
//
// The engine's parts: deadline_heap.h (the schedule), hops.h (open messages and orphans),
// engine_metrics.h, detector.h (the thread that calls Tick); this file keeps the order fold.
//
// The detector's writes: while the detector thread runs (StartDetector), a slice of flags and
// clears whose store write is verdicts and episodes only (the common case) is not written by the
// detector itself: it is queued for the verdict writer, a thread of its own that writes what is
// queued, up to kWriteChunk verdicts per transaction (a backlog's slices coalesce: fewer pages
// per flag), sorted by order id, and then tells the listeners.  So the detector decides the next
// slice while the previous one is written, on the other core.  Listeners still hear a flag only
// after it is in the store.  Any other write (Apply, SetRules, a Tick() slice with whole rows,
// Tick() without the detector thread) writes what is queued first, in its own transaction, then its
// own batch: the store sees the writes in the order the state changed.  The queue is bounded
// (kMaxQueuedVerdicts): beyond it the detector writes itself.
//
// Thread-safety: Apply(), Tick(), SetRules(), Recover() and ForgetInactive() are serialised
// by `write_mu_`, held from the state change to the end of its store write (for a queued
// slice: to the end of queueing), so writes reach the store in the order the state changed.
// `store_mu_` serialises the store writes themselves and the listeners' calls after them (the
// verdict writer holds it, not `write_mu_`).  Each mutator changes the in-memory state under
// `mu_` and releases it before the store write (the SQLite transaction), so the read accessors
// (active_orders(), open_hops(), stuck_orders(), NextDeadline()) wait for the in-memory part
// only, never for a transaction (the point reads a mutator makes under `mu_`, a known order's
// row or a late hop, go to the store's reader, which in WAL mode does not wait for the writer;
// an order whose verdict is queued is active, in memory, never read back); rules() takes no
// lock at all (an atomic shared_ptr).  The store's readers run concurrently with everything.
// Listeners are called after the store write, one call at a time (under `store_mu_`), with
// `mu_` not held, on the thread that wrote it: the pipeline worker, the detector or the verdict
// writer; they must not block for long.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/clock.h"
#include "common/metrics.h"
#include "common/status.h"
#include "common/thread_annotations.h"
#include "common/worker.h"
#include "journey/deadline_heap.h"
#include "journey/detector.h"
#include "journey/engine_metrics.h"
#include "journey/hops.h"
#include "journey/known_ids.h"
#include "journey/recent_spans.h"
#include "journey/rules/rules.h"
#include "journey/store/store.h"
#include "journey/types.h"

namespace ordertrace::journey {

// Hears flags and clears.  `row` is the order's row as the store has it after the write, except
// for its summary line, left empty: the engine does not build text nobody may read (the
// detector flags thousands of orders a second); a listener that shows one builds it
// (diagnosis.h SummaryLine).  Flags come in slices of a few thousand per store transaction.
class EngineListener {
 public:
  virtual ~EngineListener() = default;
  virtual void OnStuck(const OrderRow& row) = 0;
  virtual void OnCleared(const OrderRow& row) = 0;
  // What one store write flagged and cleared, heard at once: OnStuck for each flag, then
  // OnCleared for each clear, unless overridden (a listener that queues them, like the alert
  // dispatcher, takes its lock and wakes its thread once per slice, not per order).
  virtual void OnVerdicts(const std::vector<OrderRow>& stuck,
                          const std::vector<OrderRow>& cleared) {
    for (const OrderRow& r : stuck) OnStuck(r);
    for (const OrderRow& r : cleared) OnCleared(r);
  }
};

// The engine's state in figures, for GET /api/v1/summary: taken in one go under the state lock
// (Engine::Summary()), in O(stages × kinds × services), never from the store.
struct EngineSummary {
  uint64_t revision = 0;               // Engine::revision() when it was taken (read first)
  std::shared_ptr<const Rules> rules;  // the rules the stage indexes refer to
  uint64_t active = 0;
  uint64_t stuck = 0;
  uint64_t open_hops = 0;
  // Since the gateway started (the engine's counters).
  uint64_t flagged_total = 0;
  uint64_t cleared_total = 0;
  uint64_t closed_total = 0;
  struct Stage {
    int index = -1;  // into rules->stages; -1: no milestone yet ("none")
    int64_t active = 0;
    int64_t stuck = 0;
    // Time spent in the stage by the orders that left it since start (the stage-duration
    // histogram, interpolated within a bucket: HistogramQuantile); nullopt before any did.
    std::optional<double> p50_seconds;
    std::optional<double> p95_seconds;
  };
  std::vector<Stage> stages;  // "none" first, then the rules' stages in order
  // Stuck orders by stage, the service expected to act (OrderRow::expected_service, "" none)
  // and what they missed; cells with no order left out.
  struct StuckCell {
    int stage = -1;
    std::string service;
    StuckKind kind = StuckKind::kNone;
    int64_t count = 0;
  };
  std::vector<StuckCell> stuck_by;  // count descending, then stage, service, kind
};

struct EngineOptions {
  // Process spans seen before their publish (out of order), remembered to close the hop when
  // the publish arrives; the oldest are forgotten beyond this many.
  size_t orphan_capacity = 100000;
  // Facts that arrive with their deadline already passed (spans stamped long ago) are flagged
  // this long after they arrived, not at once: an exporter's other requests (the milestone
  // span that completes the picture, sent a millisecond after the publish span) arrive first,
  // so an order is not flagged on half its facts and flagged again a moment later.  The
  // gateway uses 1 s; 0 flags at the next Tick (the data-driven cases).
  Duration settle{0};
  // The queue RabbitMQ routes a publish to, for a send span that names none (publishers rarely
  // know the queue; only the consumer's span says it): the gateway resolves the exchange and
  // routing key on the broker monitor's latest bindings and answers the queue when exactly one
  // is bound, else "".  So an open hop has its queue before anyone consumes it: the list's
  // queue= filter, the flow map and the board find the orders waiting in a queue whose consumer
  // is gone.  A process span's queue, arriving later, does not replace it (store merge rules).
  // Called under the engine's state lock: it must be quick and never call into the engine.
  // Unset: hops keep the queue their spans name.
  std::function<std::string(std::string_view exchange, std::string_view routing_key)> route_queue;
  // Exact repeats of spans applied lately (an exporter's retry, a replay of the durable log)
  // are skipped before the engine and the store (recent_spans.h): the last `recent_spans / 2`
  // to `recent_spans` applied spans are remembered, at 16 bytes each of this capacity (the
  // default, 524,288: 8 MiB, allocated at the first span).  0 turns it off.
  size_t recent_spans = size_t{1} << 19;
  // The detector thread judges deadlines only up to this time (Detector's `horizon`): the clock
  // time before which every accepted fact has been applied.  The gateway answers the journeys
  // consumer's place in the durable ingest log, so that a backlog there does not flag orders
  // whose moving-on spans are still in it.  Called on the detector thread, without the engine's
  // locks.  Unset: always caught up (facts are applied as they are accepted).
  std::function<Nanos()> facts_horizon;
};

class Engine {
 public:
  static constexpr Nanos kNever = kNoDeadline;

  // `store`, `clock` and `registry` must outlive the engine.  `registry` may be null (tests).
  Engine(std::shared_ptr<const Rules> rules, JourneyStore& store, const Clock& clock,
         metrics::Registry* registry, EngineOptions options = {});
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Rebuilds the in-memory state from the store.  Call once, before Apply().
  Status Recover() EXCLUDES(write_mu_, mu_);

  // Applies facts (one store write for all of them).  Records without an order id are process
  // spans; the ones matched to an order get its id.  A failed store write is counted, logged
  // and kept: it is retried before the next write (the in-memory state has moved on already),
  // and the error is returned.
  Status Apply(std::vector<SpanRecord> facts) EXCLUDES(write_mu_, mu_);

  // Flags every order whose deadline + grace is ≤ now and writes its verdict.  Returns the
  // number of orders flagged by this call.  Many due orders are flagged in slices (a few
  // thousand per store transaction, earliest deadline first), each written and heard by the
  // listeners before the next, with the writer lock released in between; an order whose
  // verdict alone changed is written as an OrderVerdict (store.h), not a whole row.
  size_t Tick(Nanos now) EXCLUDES(write_mu_, mu_);

  // The earliest pending deadline (+ grace) of any order or message, kNever when none.
  Nanos NextDeadline() const EXCLUDES(mu_);

  // Replaces the rules (SIGHUP): stages are matched by name, every active order's deadline is
  // recomputed, flags that no longer hold are cleared, new ones come with the next Tick().
  Status SetRules(std::shared_ptr<const Rules> rules) EXCLUDES(write_mu_, mu_);
  std::shared_ptr<const Rules> rules() const { return published_rules_.load(); }

  void AddListener(EngineListener* listener) EXCLUDES(mu_);  // before traffic; not owned

  // Runs Tick() on a background thread (detector.h): woken at the next deadline, when Apply()
  // brings an earlier one, and at least every `max_sleep`; never more often than every
  // `min_interval` (deadlines close together share one Tick and one store transaction).
  // StopDetector() joins it.  From the owning thread.
  // The verdict writer (above) runs from StartDetector() to StopDetector(), which writes what
  // is still queued before it returns.
  void StartDetector(Duration max_sleep = Duration(1000), Duration min_interval = Duration(50));
  void StopDetector() EXCLUDES(write_mu_, store_mu_);

  // Forgets active orders with no span since `cutoff` (retention removed them from the store:
  // journeys.retention.inactive_orders), with their open messages.  Returns how many.
  size_t ForgetInactive(Nanos cutoff) EXCLUDES(write_mu_, mu_);

  size_t active_orders() const EXCLUDES(mu_);
  size_t open_hops() const EXCLUDES(mu_);
  // The order of the message whose publish span is `send_span_id` (16 hex), "" when unknown: an
  // open hop in memory, else a hop of the store (processed already: the consumer's own span,
  // sent ahead without an order, may have closed it).  Attribution's last resort for a consumer
  // whose producer span is no longer tracked (published before a restart, or long ago).  The
  // store read runs without the engine's locks.
  std::string PublishOrder(std::string_view send_span_id) EXCLUDES(mu_);
  size_t stuck_orders() const EXCLUDES(mu_);

  // A counter bumped after every change the engine makes to its state and has written to the
  // store (Apply, Tick's flags and deadlines, clears, SetRules, ForgetInactive, Recover): what
  // a reader saw at revision N is current while revision() is still N, so it keys ETags.
  // Bumped after the store write, so a reader that reads revision() before the data never
  // caches newer data under an older revision.  Lock-free.
  uint64_t revision() const { return revision_.load(std::memory_order_acquire); }
  // 1 for the rules the engine started with, +1 for each SetRules(): GET /api/v1/rules' revision.
  uint64_t rules_generation() const { return rules_generation_.load(std::memory_order_acquire); }

  // The figures of GET /api/v1/summary (EngineSummary), under the state lock.
  EngineSummary Summary() const EXCLUDES(mu_);

  JourneyStore& store() { return store_; }
  const Clock& clock() const { return clock_; }

 private:
  struct Active;
  using ActiveMap = std::unordered_map<std::string, Active>;
  using ActiveEntry = ActiveMap::value_type;
  using HopEntry = OpenHops::Entry;

  struct Pending;  // the work of one mutator: rows to write, listeners to call
  struct Verdict;
  // Tick()'s slices queued for the verdict writer: their batch (verdicts and episodes) and the
  // rows the listeners hear once it is written.
  struct Queued {
    WriteBatch batch;
    std::vector<OrderRow> flagged;
    std::vector<OrderRow> cleared;
  };

  Verdict Evaluate(const Active& a, Nanos now) const REQUIRES(mu_);
  // Tick()'s parts: due messages (the first slice only), due orders (at most one slice; true
  // when more are due), the lost orders' pass.
  void TickHops(Nanos now, Pending* p) REQUIRES(mu_);
  bool TickOrders(Nanos now, Pending* p, size_t* flagged) REQUIRES(mu_);
  void LostPass(Nanos now) REQUIRES(mu_);
  Nanos Settled(Nanos due, Nanos now) const;
  void Reschedule(ActiveEntry* e, Nanos now, Pending* p) REQUIRES(mu_);
  OrderRow RowOf(const ActiveEntry& e) const REQUIRES(mu_);  // summary left empty
  std::string ExpectedServiceOf(const Active& a) const REQUIRES(mu_);
  OrderVerdict VerdictOf(const ActiveEntry& e) const REQUIRES(mu_);
  void LoadRow(const OrderRow& row, Active* out) REQUIRES(mu_);
  ActiveEntry* FindOrLoad(const std::string& order_id, Pending* p, Status* error) REQUIRES(mu_);
  void ApplyToOrder(ActiveEntry* e, const SpanRecord& r, Pending* p) REQUIRES(mu_);
  void CloseHop(HopEntry* h, const SpanRecord& process, Pending* p) REQUIRES(mu_);
  void CountOrder(Active& a, int delta) REQUIRES(mu_);
  uint16_t StuckServiceOf(const Active& a) REQUIRES(mu_);  // interned expected service
  void Changed() { revision_.fetch_add(1, std::memory_order_acq_rel); }
  void RebuildStageMetrics() REQUIRES(mu_);  // rules replaced or recovered
  // The in-memory half of a mutation: rows of the touched orders into the batch, closed orders
  // out of memory, stage gauges published.
  void Prepare(Pending* p) REQUIRES(write_mu_, mu_);
  // The store half, after mu_ is released: what is queued for the verdict writer is written
  // first (WriteQueued), then the batch (after what a failed write still owes the store); a
  // failure is counted and kept for the next write.  Then the listeners hear `p`.
  Status WriteAndNotify(Pending* p, bool changed) REQUIRES(write_mu_)
      EXCLUDES(mu_, store_mu_, queue_mu_);
  // Writes the oldest queued slices, at least one and up to `max_verdicts` verdicts in all, in
  // one transaction sorted by order id, and tells the listeners; with nothing queued, retries
  // what a failed write still owes the store.  Returns whether slices are left.
  bool WriteQueued(size_t max_verdicts) REQUIRES(store_mu_) EXCLUDES(mu_, queue_mu_);
  Status Write(WriteBatch* batch) REQUIRES(store_mu_) EXCLUDES(mu_);
  static void Append(WriteBatch* to, WriteBatch&& from);
  void Notify(const std::vector<OrderRow>& flagged, const std::vector<OrderRow>& cleared)
      REQUIRES(store_mu_) EXCLUDES(mu_);
  Nanos NextDeadlineLocked() const REQUIRES(mu_);
  uint16_t ServiceIndex(std::string_view service) const REQUIRES(mu_);  // watched slot, 0xffff
  uint16_t InternService(std::string_view service) REQUIRES(mu_);

  JourneyStore& store_;
  const Clock& clock_;
  const EngineOptions options_;

  // Serialises the mutators, each from its state change to the end of its store write.
  Mutex write_mu_;
  // Serialises the store writes and the listeners' calls; taken after write_mu_ (or alone, by
  // the verdict writer), before mu_ and queue_mu_.
  Mutex store_mu_;
  WriteBatch retry_ GUARDED_BY(store_mu_);  // facts a failed store write still owes the store
  // Slices queued for the verdict writer (appended under write_mu_ too, so in state order).
  Mutex queue_mu_;
  std::deque<Queued> queued_ GUARDED_BY(queue_mu_);  // one per slice, oldest first
  size_t queued_verdicts_ GUARDED_BY(queue_mu_) = 0;
  // When Tick() last queued a slice: the verdict writer settles the store's deferred records
  // only once the detector has queued nothing for a while (kSettleIdle), not between the
  // slices of a burst.
  std::chrono::steady_clock::time_point last_queued_ GUARDED_BY(queue_mu_);
  std::atomic<bool> queue_verdicts_{false};  // the verdict writer runs
  // Fingerprints of the spans applied and written lately (EngineOptions::recent_spans).  Added
  // only after a successful store write, so a span a failed write still owes is not skipped.
  RecentSpans recent_ GUARDED_BY(write_mu_);

  // The in-memory state; taken after write_mu_ by mutators, alone by readers.
  mutable Mutex mu_;
  std::shared_ptr<const Rules> rules_ GUARDED_BY(mu_);
  std::vector<std::string> watched_ GUARDED_BY(mu_);   // rules_->WatchedServices()
  std::vector<std::string> services_ GUARDED_BY(mu_);  // interned service names (last_service)
  std::unordered_map<std::string, uint16_t> service_ids_ GUARDED_BY(mu_);
  std::unique_ptr<ActiveMap> active_ PT_GUARDED_BY(mu_);
  std::unique_ptr<DeadlineHeap<ActiveEntry>> order_heap_ PT_GUARDED_BY(mu_);
  OpenHops hops_ GUARDED_BY(mu_);
  size_t stuck_ GUARDED_BY(mu_) = 0;
  // Stuck orders by (stage slot, kind, interned expected service): key StuckKey(), value the
  // count; kept with the per-stage counts (CountOrder), entries at 0 removed.
  std::unordered_map<uint32_t, int64_t> stuck_by_service_ GUARDED_BY(mu_);
  KnownIds known_ GUARDED_BY(mu_);  // every order id the store holds (active ones too)
  std::vector<EngineListener*> listeners_ GUARDED_BY(mu_);
  std::unique_ptr<EngineMetrics> metrics_ PT_GUARDED_BY(mu_);
  // What rules() returns: rules_, published for readers that must not wait for mu_.
  std::atomic<std::shared_ptr<const Rules>> published_rules_;
  metrics::Counter* store_errors_;  // the one metric written outside mu_ (thread-safe)
  std::atomic<uint64_t> revision_{0};
  std::atomic<uint64_t> rules_generation_{1};

  Worker verdict_writer_;  // writes queued_; stopped after the detector
  Detector detector_;      // last: stopped (by ~Engine) before the state it ticks goes away
};

}  // namespace ordertrace::journey
