// EngineMetrics: the engine's metrics, with no order id in any label.  Counters (facts, store
// errors, flags by kind, clears, closes, flag lag) and the per-stage series: orders active and
// stuck by stage, the stage index, time spent in a stage, heartbeats missed.  Orders are
// counted by slot = stage index + 1 (slot 0: no milestone yet, stage="none") as they change
// stage, get flagged or cleared, enter or leave memory (CountOrder); Publish() copies the
// counts to the gauges after each change.  Rebuild() starts the per-stage series again for new
// rules: series of stages the rules no longer have go to 0 (stage index -1), the engine then
// counts every active order again.
//
// Thread-safety: store_errors() (a counter) from any thread; everything else under the
// engine's state lock (the counts are plain integers).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/clock.h"
#include "common/metrics.h"
#include "journey/rules/rules.h"
#include "journey/types.h"

namespace ordertrace::journey {

// The `q` quantile (0..1) of what `h` observed, as Prometheus' histogram_quantile() estimates
// it: linear interpolation within the bucket holding the rank (from 0 for the first bucket);
// the highest finite bound when the rank falls in the +Inf bucket; nullopt with no
// observation.  An estimate: its error is up to a bucket's width.
std::optional<double> HistogramQuantile(const metrics::Histogram& h, double q);

class EngineMetrics {
 public:
  // The engine's sizes, read by the callback gauges at scrape time.
  struct Sizes {
    std::function<size_t()> active_orders;
    std::function<size_t()> stuck_orders;
    std::function<size_t()> open_hops;
  };

  // `registry` may be null (a private one is used); it must outlive this.  The stage series
  // are empty until Rebuild().
  EngineMetrics(metrics::Registry* registry, Sizes sizes);
  EngineMetrics(const EngineMetrics&) = delete;
  EngineMetrics& operator=(const EngineMetrics&) = delete;

  void Fact() { facts_total_->Inc(); }
  void Repeat() { repeats_total_->Inc(); }
  metrics::Counter& store_errors() { return *store_errors_; }
  void Flagged(StuckKind kind, double lag_seconds);
  void Cleared() { cleared_total_->Inc(); }
  void Closed() { closed_total_->Inc(); }
  void HeartbeatMissed(const Rules& rules, int stage);

  // Per-stage counts (see the class comment).
  void Rebuild(const Rules& rules);
  void CountOrder(int stage, StuckKind stuck, int delta);
  // An order left `stage` (entered at `stage_ns`) by reaching a later one at `reached_ns`.
  void ObserveStageLeft(const Rules& rules, int stage, Nanos stage_ns, Nanos reached_ns);
  void Publish(const Rules& rules);

  // The counts and totals GET /api/v1/summary shows (Engine::Summary), by slot as above.
  size_t slots() const { return active_by_stage_.size(); }
  int64_t active_in(size_t slot) const { return active_by_stage_[slot]; }
  int64_t stuck_in(size_t slot) const;  // every kind
  // A quantile (0..1) of the time spent in the stage of `slot` by the orders that left it since
  // start, interpolated linearly within its histogram bucket (HistogramQuantile); nullopt
  // before any order left it.
  std::optional<double> StageDurationQuantile(size_t slot, double q) const;
  uint64_t flagged_total() const;  // every kind
  uint64_t cleared_total() const { return cleared_total_->Value(); }
  uint64_t closed_total() const { return closed_total_->Value(); }

  // The KPIs' metrics (api/kpi_api.h has the windowed figures): an order's stuck episode ended
  // (it moved on, or its expectation was met) after `seconds` stuck, counted from its missed
  // deadline plus grace; by the kind it missed (a bounded set).
  void StuckEnded(StuckKind kind, double seconds);
  // Lost orders per stage (ordertrace_journey_lost_orders): active orders with no span for
  // kLostAfter, or stuck that long.  The engine counts them in passes over its map of active
  // orders, a slice of kLostBuckets hash buckets per Tick (the engine lock is never held for
  // all of them: a full pass over 1M orders costs about 200 ms), a pass starting at most once
  // a minute.  LostPassAt() returns the pass to continue (null: none due), restarted when the
  // map was rehashed or the slots changed since it began; PublishLost() ends it.
  static constexpr Nanos kLostAfter = 24LL * 3600 * 1'000'000'000;
  static constexpr size_t kLostBuckets = 65536;
  struct LostPass {
    size_t next_bucket = 0;
    size_t buckets = 0;  // the map's bucket count when the pass began
    Nanos cutoff = 0;    // last span (or stuck since) before this: lost
    std::vector<int64_t> by_slot;
  };
  LostPass* LostPassAt(Nanos now, size_t buckets, size_t slots);
  void PublishLost(const Rules& rules);

 private:
  static constexpr size_t kKinds = static_cast<size_t>(StuckKind::kMessageUnprocessed) + 1;
  size_t StageSlot(int stage) const;

  std::unique_ptr<metrics::Registry> own_registry_;
  metrics::Counter* facts_total_;
  metrics::Counter* repeats_total_;
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
  metrics::Family<metrics::Histogram>* time_stuck_family_ = nullptr;
  // The children of flagged_total_ and time_stuck_family_ by StuckKind, null until first used:
  // a flag or a clear costs no family lookup.
  std::array<metrics::Counter*, kKinds> flagged_by_kind_{};
  std::array<metrics::Histogram*, kKinds> time_stuck_by_kind_{};
  metrics::Family<metrics::Gauge>* lost_family_ = nullptr;
  std::unordered_map<std::string, metrics::Gauge*> lost_gauges_;  // by stage name
  Nanos next_lost_pass_ = 0;
  std::optional<LostPass> lost_pass_;
};

}  // namespace ordertrace::journey
