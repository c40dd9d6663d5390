// JourneyStage: the pipeline stage that feeds accepted spans to the journey engine.  It runs
// on the ingest queue's worker (after validation, before forwarding), extracts order facts
// with the engine's current rules, finds the order of spans that do not carry one through
// their trace context (attribution/attributor.h, unless turned off), and applies the facts.
//
// Spans that wait for their ancestor are attributed when it arrives, or when their wait ends:
// a timer thread of the stage (Start/Stop) ends the waits and applies what they give.
// Stop() ends every wait (a graceful shutdown loses no pending span to journeys; a crash loses
// them, like the other facts not yet written).
//
// Thread-safety: Process() on the queue's worker only (pipeline::Stage's contract); Start()
// and Stop() from the owning thread; attributor() is thread-safe.
#pragma once

#include <memory>
#include <vector>

#include "common/metrics.h"
#include "common/worker.h"
#include "journey/attribution/attributor.h"
#include "journey/engine.h"
#include "journey/facts.h"
#include "pipeline/stage.h"

namespace ordertrace::journey {

class JourneyStage : public pipeline::Stage {
 public:
  // `engine` and `registry` must outlive the stage.
  JourneyStage(Engine& engine, metrics::Registry& registry, AttributionOptions attribution = {});
  ~JourneyStage() override;

  void Process(const std::shared_ptr<const otlp::SpanBatch>& batch) noexcept override;

  // RememberRecentSpans(), then starts the timer that ends waits.
  void Start();
  // Warms the attributor from the store: the spans of the latest orders, so that a restart does
  // not forget which order a recent span belongs to.  Start() calls it; a harness that drives
  // the stage with a manual clock (no timer) calls it after a restart.  Returns the spans
  // remembered (0 when attribution is off; a store that cannot be read is logged).
  size_t RememberRecentSpans();
  // Ends every wait and applies what it gives; stops the timer.  Call before the engine stops.
  void Stop();

  // Ends the waits due by `now` and applies the facts (the timer's body; tests call it with a
  // manual clock).  Returns the records applied.
  size_t ExpireWaits(Nanos now) noexcept;

  Attributor* attributor() { return attributor_.get(); }  // null when turned off

 private:
  void Apply(std::vector<SpanRecord>* records) noexcept;

  Engine& engine_;
  std::unique_ptr<Attributor> attributor_;
  std::vector<SpanRecord> records_;  // reused between batches
  metrics::Counter& spans_;
  metrics::Counter& kept_;
  metrics::Counter& unknown_stage_;
  metrics::Counter& failed_batches_;
  Worker timer_;
};

}  // namespace ordertrace::journey
