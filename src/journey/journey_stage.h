// JourneyStage: the pipeline stage that feeds accepted spans to the journey engine.  It runs
// on the ingest queue's worker (after validation, before forwarding), extracts order facts
// with the engine's current rules, finds the order of spans that do not carry one through
// their trace context (attribution/attributor.h, unless turned off), and applies the facts.
//
// Spans that wait for their ancestor are attributed when it arrives, or when their wait ends:
// a timer thread of the stage (Start/Stop) ends the waits and applies what they give.
// Stop() ends every wait (a graceful shutdown loses no pending span to journeys).
//
// Batched (JourneyStageOptions::batched, the gateway's ingest-log consumer): Process() only
// extracts facts; Flush() ends the waits that are due and applies everything gathered since the
// last Flush() in one Engine::Apply (one store transaction for many requests); there is no
// timer thread.  The consumer acknowledges a record once Flush() returned and attribution no
// longer holds its batch, so a crash loses nothing: the records are read again.
//
// Thread-safety: Process() and Flush() on the pipeline's one thread (pipeline::Stage's
// contract); Start() and Stop() from the owning thread; attributor() is thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <vector>

#include "common/metrics.h"
#include "common/thread_annotations.h"
#include "common/worker.h"
#include "journey/attribution/attributor.h"
#include "journey/engine.h"
#include "journey/facts.h"
#include "pipeline/stage.h"

namespace ordertrace::journey {

struct JourneyStageOptions {
  bool batched = false;  // see the file comment
  // For tests and drills (journeys.apply_delay): sleep this long before each Engine::Apply
  // (except at shutdown).
  std::chrono::milliseconds apply_delay{0};
};

class JourneyStage : public pipeline::Stage {
 public:
  // `engine` and `registry` must outlive the stage.
  JourneyStage(Engine& engine, metrics::Registry& registry, AttributionOptions attribution = {},
               JourneyStageOptions options = {});
  ~JourneyStage() override;

  void Process(const std::shared_ptr<const otlp::SpanBatch>& batch) noexcept override;
  // Batched: ends the waits due now (all of them when `final`) and applies what was gathered.
  // False while a failed store write has not been followed by a good one (Engine::Apply keeps
  // the facts for retry; until written they must stay in the log).
  bool Flush(bool final) noexcept override;

  // RememberRecentSpans(), then (not batched) starts the timer that ends waits.
  void Start();
  // Warms the attributor from the store: the spans of the latest orders, so that a restart does
  // not forget which order a recent span belongs to.  Start() calls it; a harness that drives
  // the stage with a manual clock (no timer) calls it after a restart.  Returns the spans
  // remembered (0 when attribution is off; a store that cannot be read is logged).
  size_t RememberRecentSpans();
  // Ends every wait and applies what it gives; stops the timer.  Call before the engine stops.
  void Stop();
  // Cuts short an apply_delay sleep under way and skips later ones: the gateway calls it first
  // on shutdown, so that a drill's long delay does not hold up SIGTERM.  From any thread.
  void EndDelays();

  // Ends the waits due by `now` and applies the facts (the timer's body; tests call it with a
  // manual clock).  Returns the records applied.
  size_t ExpireWaits(Nanos now) noexcept;

  Attributor* attributor() { return attributor_.get(); }  // null when turned off

 private:
  // `delay`: journeys.apply_delay first (not at shutdown: the final Flush() and Stop()).
  void Apply(std::vector<SpanRecord>* records, bool delay = true) noexcept;

  Engine& engine_;
  const JourneyStageOptions options_;
  std::atomic<bool> unwritten_{false};  // the last Engine::Apply failed
  Mutex delay_mu_;                      // with delay_cv_: an apply_delay sleep EndDelays() cuts
  std::condition_variable_any delay_cv_;
  bool delays_ended_ GUARDED_BY(delay_mu_) = false;
  std::unique_ptr<Attributor> attributor_;
  std::vector<SpanRecord> records_;  // reused between batches
  metrics::Counter& spans_;
  metrics::Counter& kept_;
  metrics::Counter& unknown_stage_;
  metrics::Counter& failed_batches_;
  metrics::Histogram& apply_records_;  // facts per Engine::Apply
  Worker timer_;
};

}  // namespace ordertrace::journey
