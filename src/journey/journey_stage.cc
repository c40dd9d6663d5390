#include "journey/journey_stage.h"

#include <exception>
#include <utility>

#include "common/log.h"

namespace ordertrace::journey {

JourneyStage::JourneyStage(Engine& engine, metrics::Registry& registry)
    : engine_(engine),
      spans_(registry
                 .AddCounter("ordertrace_journey_spans_seen_total",
                             "Spans the journey stage looked at.")
                 .With({})),
      kept_(registry
                .AddCounter("ordertrace_journey_spans_kept_total",
                            "Spans that concern an order or a message hop, kept for journeys.")
                .With({})),
      unknown_stage_(registry
                         .AddCounter("ordertrace_journey_unknown_stage_total",
                                     "Spans whose order.stage is not a stage of the rules "
                                     "(the milestone is ignored).")
                         .With({})),
      failed_batches_(registry
                          .AddCounter("ordertrace_journey_failed_batches_total",
                                      "Batches whose journey facts could not be applied.")
                          .With({})) {}

void JourneyStage::Process(const otlp::SpanBatch& batch) noexcept {
  try {
    // The rules are read per batch, so a SIGHUP reload applies from the next batch on.
    FactExtractor extractor(engine_.rules());
    records_.clear();
    ExtractStats stats;
    extractor.Extract(batch, &records_, &stats);
    spans_.Inc(stats.spans);
    kept_.Inc(stats.kept);
    unknown_stage_.Inc(stats.unknown_stage);
    if (records_.empty()) return;
    Status s = engine_.Apply(std::move(records_));
    records_ = {};
    if (!s.ok()) failed_batches_.Inc();
  } catch (const std::exception& e) {
    // bad_alloc and the like: the batch's facts are lost for journeys (still forwarded).
    failed_batches_.Inc();
    log::Error("journey stage failed on a batch", {{"error", e.what()}});
  }
}

}  // namespace ordertrace::journey
