// JourneyStage: the pipeline stage that feeds accepted spans to the journey engine.  It runs
// on the ingest queue's worker (after validation, before forwarding), extracts order facts
// with the engine's current rules, and applies them.
//
// Thread-safety: Process() on the queue's worker only (pipeline::Stage's contract).
#pragma once

#include <vector>

#include "common/metrics.h"
#include "journey/engine.h"
#include "journey/facts.h"
#include "pipeline/ingest_queue.h"

namespace ordertrace::journey {

class JourneyStage : public pipeline::Stage {
 public:
  // `engine` and `registry` must outlive the stage.
  JourneyStage(Engine& engine, metrics::Registry& registry);
  void Process(const otlp::SpanBatch& batch) noexcept override;

 private:
  Engine& engine_;
  std::vector<SpanRecord> records_;  // reused between batches
  metrics::Counter& spans_;
  metrics::Counter& kept_;
  metrics::Counter& unknown_stage_;
  metrics::Counter& failed_batches_;
};

}  // namespace ordertrace::journey
