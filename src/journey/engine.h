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
// arriving before an earlier one raises nothing.  Deadlines are counted in span time (the
// timestamps services put on their spans) and compared with the clock: spans stamped in the
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
// Thread-safety: Apply(), Tick(), SetRules() and Recover() serialise on an internal lock;
// the read accessors and the store's readers may run concurrently with them.  Listeners are
// called on the thread that flags or clears (the pipeline worker or the detector), with no
// engine lock held; they must not block for long.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/clock.h"
#include "common/metrics.h"
#include "common/status.h"
#include "journey/known_ids.h"
#include "journey/rules/rules.h"
#include "journey/store/store.h"
#include "journey/types.h"

namespace ordertrace::journey {

// Hears flags and clears.  `row` is the order's row as written to the store.
class EngineListener {
 public:
  virtual ~EngineListener() = default;
  virtual void OnStuck(const OrderRow& row) = 0;
  virtual void OnCleared(const OrderRow& row) = 0;
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
};

class Engine {
 public:
  static constexpr Nanos kNever = std::numeric_limits<Nanos>::max();

  // `store`, `clock` and `registry` must outlive the engine.  `registry` may be null (tests).
  Engine(std::shared_ptr<const Rules> rules, JourneyStore& store, const Clock& clock,
         metrics::Registry* registry, EngineOptions options = {});
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Rebuilds the in-memory state from the store.  Call once, before Apply().
  Status Recover();

  // Applies facts (one store write for all of them).  Records without an order id are process
  // spans; the ones matched to an order get its id.  A failed store write is counted, logged
  // and kept: it is retried before the next write (the in-memory state has moved on already),
  // and the error is returned.
  Status Apply(std::vector<SpanRecord> facts);

  // Flags every order whose deadline + grace is ≤ now and writes its verdict.  Returns the
  // number of orders flagged by this call.
  size_t Tick(Nanos now);

  // The earliest pending deadline (+ grace) of any order or message, kNever when none.
  Nanos NextDeadline() const;

  // Replaces the rules (SIGHUP): stages are matched by name, every active order's deadline is
  // recomputed, flags that no longer hold are cleared, new ones come with the next Tick().
  Status SetRules(std::shared_ptr<const Rules> rules);
  std::shared_ptr<const Rules> rules() const;

  void AddListener(EngineListener* listener);  // before traffic starts; not owned

  // Runs Tick() on a background thread: woken at the next deadline, when Apply() brings an
  // earlier one, and at least every `max_sleep`; never more often than every `min_interval`
  // (deadlines close together share one Tick and one store transaction).  StopDetector()
  // joins it.
  void StartDetector(Duration max_sleep = Duration(1000), Duration min_interval = Duration(50));
  void StopDetector();

  // Forgets active orders with no span since `cutoff` (retention removed them from the store:
  // journeys.retention.inactive_orders), with their open messages.  Returns how many.
  size_t ForgetInactive(Nanos cutoff);

  size_t active_orders() const;
  size_t open_hops() const;
  size_t stuck_orders() const;
  JourneyStore& store() { return store_; }
  const Clock& clock() const { return clock_; }

 private:
  struct Active;
  struct OpenHop;
  struct Orphan;
  template <typename T>
  class Heap;
  using ActiveMap = std::unordered_map<std::string, Active>;
  using ActiveEntry = ActiveMap::value_type;
  using HopMap = std::unordered_map<std::string, OpenHop>;
  using HopEntry = HopMap::value_type;

  struct Pending;  // the work of one Apply()/Tick(): rows to write, listeners to call
  struct Verdict;

  Verdict Evaluate(const Active& a, Nanos now) const;
  Nanos Settled(Nanos due, Nanos now) const;
  void Reschedule(ActiveEntry* e, Nanos now, Pending* p);
  OrderRow RowOf(const ActiveEntry& e) const;
  void LoadRow(const OrderRow& row, Active* out);
  ActiveEntry* FindOrLoad(const std::string& order_id, Pending* p, Status* error);
  void ApplyToOrder(ActiveEntry* e, const SpanRecord& r, Pending* p);
  void CloseHop(HopEntry* h, const SpanRecord& process, Pending* p);
  Status Commit(Pending* p);
  static void Append(WriteBatch* to, WriteBatch&& from);
  void Notify(const Pending& p);
  void RememberOrphan(const SpanRecord& process);
  const Orphan* FindOrphan(const SpanRecord& send) const;
  void ForgetOrphan(const SpanRecord& send);
  Nanos NextDeadlineLocked() const;
  void KickDetector();
  uint16_t ServiceIndex(std::string_view service) const;  // watched-service slot, or 0xffff
  uint16_t InternService(std::string_view service);
  void DetectorLoop(Duration max_sleep, Duration min_interval);
  // Per-stage metrics (no order id in any label).  Orders are counted by slot = stage index + 1
  // (slot 0: no milestone yet, stage="none"), under mu_, as they change stage, get flagged or
  // cleared, enter or leave memory; the counts are copied to the gauges after each change.
  size_t StageSlot(int stage) const;
  void CountOrder(const Active& a, int delta);
  void ObserveStageLeft(const Active& a, Nanos reached_ns);
  void RebuildStageMetrics();  // rules replaced or recovered: children per stage, counts again
  void PublishStageMetrics();

  JourneyStore& store_;
  const Clock& clock_;
  EngineOptions options_;

  mutable std::mutex mu_;  // guards everything below
  std::shared_ptr<const Rules> rules_;
  std::vector<std::string> watched_;   // rules_->WatchedServices()
  std::vector<std::string> services_;  // interned service names (last_service)
  std::unordered_map<std::string, uint16_t> service_ids_;
  std::unique_ptr<ActiveMap> active_;
  std::unique_ptr<Heap<ActiveEntry>> order_heap_;
  std::unique_ptr<HopMap> hops_;
  std::unique_ptr<Heap<HopEntry>> hop_heap_;
  std::unordered_map<std::string, std::string> hop_by_message_;  // message id → send span id
  std::unique_ptr<std::vector<Orphan>> orphans_;  // ring of process spans seen before publish
  size_t orphan_next_ = 0;
  std::unordered_map<std::string, size_t> orphan_index_;  // message/parent/link key → ring slot
  size_t stuck_ = 0;
  KnownIds known_;                  // every order id the store holds (active ones too)
  RecentIds closed_sends_{100000};  // send spans of hops closed lately (retried publishes)
  std::vector<EngineListener*> listeners_;
  WriteBatch retry_;  // facts a failed store write still owes the store

  std::mutex write_mu_;  // serialises compute + store write across Apply/Tick/SetRules

  // Detector thread.
  std::mutex detector_mu_;
  std::condition_variable detector_cv_;
  bool detector_stop_ = false;
  bool detector_kick_ = false;
  std::thread detector_;

  // Metrics (null-safe: a dummy registry when none is given).
  std::unique_ptr<metrics::Registry> own_registry_;
  metrics::Counter* facts_total_;
  metrics::Counter* store_errors_;
  metrics::Family<metrics::Counter>* flagged_total_;
  metrics::Counter* cleared_total_;
  metrics::Counter* closed_total_;
  metrics::Family<metrics::Gauge>* stage_index_family_;
  std::unordered_map<std::string, metrics::Gauge*> stage_index_gauges_;  // by stage name
  metrics::Histogram* flag_lag_;
  metrics::Family<metrics::Gauge>* active_by_stage_family_;
  metrics::Family<metrics::Gauge>* stuck_by_stage_family_;
  metrics::Family<metrics::Histogram>* stage_duration_family_;
  metrics::Family<metrics::Counter>* heartbeats_missed_family_;
  std::vector<int64_t> active_by_stage_;                 // by slot
  std::vector<int64_t> stuck_by_stage_;                  // by slot * kStuckKinds + kind
  std::vector<metrics::Gauge*> active_by_stage_gauges_;  // by slot
  std::vector<metrics::Gauge*> stuck_by_stage_gauges_;   // as stuck_by_stage_; null until used
  std::vector<metrics::Histogram*> stage_duration_;      // by slot
  std::vector<metrics::Counter*> heartbeats_missed_;     // by slot
};

}  // namespace ordertrace::journey
