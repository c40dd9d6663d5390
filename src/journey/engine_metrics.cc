#include "journey/engine_metrics.h"

#include <algorithm>
#include <utility>

#include "journey/diagnosis.h"

namespace ordertrace::journey {

namespace {

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

}  // namespace

EngineMetrics::EngineMetrics(metrics::Registry* registry, Sizes sizes) {
  if (registry == nullptr) {
    own_registry_ = std::make_unique<metrics::Registry>();
    registry = own_registry_.get();
  }
  facts_total_ =
      &registry
           ->AddCounter("ordertrace_journey_facts_total", "Span records applied to order journeys.")
           .With({});
  repeats_total_ = &registry
                        ->AddCounter("ordertrace_journey_repeated_spans_total",
                                     "Span records skipped as exact repeats of one applied lately "
                                     "(an exporter's retry, a replay); counted in facts_total too.")
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
  registry->AddCallbackGauge(
      "ordertrace_journey_active_orders", "Orders not closed, held in memory with their deadlines.",
      [f = std::move(sizes.active_orders)] { return static_cast<double>(f()); });
  registry->AddCallbackGauge(
      "ordertrace_journey_stuck_orders", "Orders flagged as stuck now.",
      [f = std::move(sizes.stuck_orders)] { return static_cast<double>(f()); });
  registry->AddCallbackGauge("ordertrace_journey_open_hops",
                             "Messages published for an order and not processed yet.",
                             [f = std::move(sizes.open_hops)] { return static_cast<double>(f()); });
  time_stuck_family_ = &registry->AddHistogram(
      "ordertrace_journey_time_stuck_seconds",
      "How long orders stayed stuck: from the missed deadline plus grace to the order moving on, "
      "observed when the episode ends, by what was missed.",
      {"kind"}, StageDurationBuckets());
  lost_family_ = &registry->AddGauge(
      "ordertrace_journey_lost_orders",
      "Active orders with no span for 24h, or stuck that long, by stage (stage=\"none\": no "
      "milestone yet); counted once a minute.",
      {"stage"});
}

void EngineMetrics::Flagged(StuckKind kind, double lag_seconds) {
  // The series of each kind looked up once (Family::With locks and builds the label vector).
  const auto k = static_cast<size_t>(kind);
  if (k >= flagged_by_kind_.size()) return;
  if (flagged_by_kind_[k] == nullptr)
    flagged_by_kind_[k] = &flagged_total_->With({StuckKindName(kind)});
  flagged_by_kind_[k]->Inc();
  flag_lag_->Observe(lag_seconds);
}

void EngineMetrics::HeartbeatMissed(const Rules& rules, int stage) {
  const size_t slot = StageSlot(stage);
  if (heartbeats_missed_[slot] == nullptr) {
    heartbeats_missed_[slot] =
        &heartbeats_missed_family_->With({slot == 0 ? "none" : rules.stages[slot - 1].name});
  }
  heartbeats_missed_[slot]->Inc();
}

size_t EngineMetrics::StageSlot(int stage) const {
  const size_t slot = stage < 0 ? 0 : static_cast<size_t>(stage) + 1;
  return slot < active_by_stage_.size() ? slot : 0;
}

void EngineMetrics::CountOrder(int stage, StuckKind stuck, int delta) {
  const size_t slot = StageSlot(stage);
  active_by_stage_[slot] += delta;
  if (stuck != StuckKind::kNone) {
    stuck_by_stage_[slot * kStuckKinds + static_cast<size_t>(stuck)] += delta;
  }
}

void EngineMetrics::ObserveStageLeft(const Rules& rules, int stage, Nanos stage_ns,
                                     Nanos reached_ns) {
  if (stage < 0) return;  // a first milestone: no stage left
  const size_t slot = StageSlot(stage);
  if (slot == 0) return;
  if (stage_duration_[slot] == nullptr) {
    stage_duration_[slot] = &stage_duration_family_->With({rules.stages[slot - 1].name});
  }
  stage_duration_[slot]->Observe(static_cast<double>(std::max<Nanos>(reached_ns - stage_ns, 0)) /
                                 1e9);
}

void EngineMetrics::Rebuild(const Rules& rules) {
  // The families keep their children: series of stages the rules no longer have go to 0.
  for (metrics::Gauge* g : active_by_stage_gauges_) g->Set(0);
  for (metrics::Gauge* g : stuck_by_stage_gauges_) {
    if (g != nullptr) g->Set(0);
  }
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
}

std::optional<double> HistogramQuantile(const metrics::Histogram& h, double q) {
  std::vector<uint64_t> cumulative;
  double sum = 0;
  uint64_t count = 0;
  h.Snapshot(&cumulative, &sum, &count);
  const std::vector<double>& bounds = h.bounds();
  if (count == 0 || cumulative.empty() || bounds.empty()) return std::nullopt;
  const double rank = std::clamp(q, 0.0, 1.0) * static_cast<double>(count);
  for (size_t i = 0; i < bounds.size() && i < cumulative.size(); ++i) {
    if (static_cast<double>(cumulative[i]) < rank) continue;
    const double lower = i == 0 ? 0.0 : bounds[i - 1];
    const uint64_t below = i == 0 ? 0 : cumulative[i - 1];
    const uint64_t in_bucket = cumulative[i] - below;
    if (in_bucket == 0) return lower;
    return lower + (bounds[i] - lower) * (rank - static_cast<double>(below)) /
                       static_cast<double>(in_bucket);
  }
  return bounds.back();  // in the +Inf bucket
}

int64_t EngineMetrics::stuck_in(size_t slot) const {
  int64_t n = 0;
  for (size_t k = 1; k < kStuckKinds; ++k) n += stuck_by_stage_[slot * kStuckKinds + k];
  return n;
}

std::optional<double> EngineMetrics::StageDurationQuantile(size_t slot, double q) const {
  if (slot >= stage_duration_.size() || stage_duration_[slot] == nullptr) return std::nullopt;
  return HistogramQuantile(*stage_duration_[slot], q);
}

uint64_t EngineMetrics::flagged_total() const {
  uint64_t n = 0;
  flagged_total_->ForEach(
      [&n](const std::vector<std::string>&, const metrics::Counter& c) { n += c.Value(); });
  return n;
}

void EngineMetrics::Publish(const Rules& rules) {
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

void EngineMetrics::StuckEnded(StuckKind kind, double seconds) {
  const auto k = static_cast<size_t>(kind);
  if (k >= time_stuck_by_kind_.size()) return;
  if (time_stuck_by_kind_[k] == nullptr) {
    time_stuck_by_kind_[k] = &time_stuck_family_->With({StuckKindName(kind)});
  }
  time_stuck_by_kind_[k]->Observe(std::max(0.0, seconds));
}

EngineMetrics::LostPass* EngineMetrics::LostPassAt(Nanos now, size_t buckets, size_t slots) {
  if (lost_pass_ && lost_pass_->buckets == buckets && lost_pass_->by_slot.size() == slots) {
    return &*lost_pass_;
  }
  if (!lost_pass_ && now < next_lost_pass_) return nullptr;
  next_lost_pass_ = now + 60LL * 1'000'000'000;
  lost_pass_ = LostPass{0, buckets, now - kLostAfter, std::vector<int64_t>(slots)};
  return &*lost_pass_;
}

void EngineMetrics::PublishLost(const Rules& rules) {
  if (!lost_pass_) return;
  const std::vector<int64_t> by_slot = std::move(lost_pass_->by_slot);
  lost_pass_.reset();
  // Every stage of the rules has its series (0 when none is lost); a stage the rules no longer
  // have goes to 0.
  for (auto& [stage, gauge] : lost_gauges_) gauge->Set(0);
  for (size_t slot = 0; slot <= rules.stages.size(); ++slot) {
    const std::string stage = slot == 0 ? "none" : rules.stages[slot - 1].name;
    metrics::Gauge*& g = lost_gauges_[stage];
    if (g == nullptr) g = &lost_family_->With({stage});
    g->Set(slot < by_slot.size() ? static_cast<double>(by_slot[slot]) : 0.0);
  }
}

}  // namespace ordertrace::journey
