#include "journey/journey_stage.h"

#include <algorithm>
#include <chrono>
#include <exception>
#include <utility>

#include "common/log.h"
#include "otlp/span_batch.h"

namespace ordertrace::journey {

JourneyStage::JourneyStage(Engine& engine, metrics::Registry& registry,
                           AttributionOptions attribution, JourneyStageOptions options)
    : engine_(engine),
      options_(options),
      attributor_(attribution.enabled ? std::make_unique<Attributor>(attribution, &registry)
                                      : nullptr),
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
                          .With({})),
      apply_records_(registry
                         .AddHistogram("ordertrace_journey_apply_facts",
                                       "Facts (span records) per engine write: one store "
                                       "transaction each.",
                                       {}, {1, 10, 100, 1000, 10000, 100000})
                         .With({})) {
  if (attributor_) {
    attributor_->SetPublishLookup(
        [this](std::string_view send_span_id) { return engine_.PublishOrder(send_span_id); });
  }
}

JourneyStage::~JourneyStage() { timer_.Stop(); }

size_t JourneyStage::RememberRecentSpans() {
  if (!attributor_) return 0;
  // The spans of the latest orders, newest first, up to half of what the attributor tracks.
  size_t remembered = 0;
  Status s = engine_.store().ForEachRecentSpan(
      attributor_->options().max_tracked_spans / 2,
      [&](std::string_view trace_id, std::string_view span_id, std::string_view order_id) {
        otlp::TraceId t;
        otlp::SpanId sp;
        if (!otlp::FromHex(trace_id, t.data(), t.size()) ||
            !otlp::FromHex(span_id, sp.data(), sp.size())) {
          return;
        }
        attributor_->Remember(t, sp, order_id);
        ++remembered;
      });
  if (!s.ok()) {
    log::Warn("attribution: recent spans not read from the journey store",
              {{"error", s.message()}});
  } else if (remembered > 0) {
    log::Info("attribution: recent spans remembered from the journey store",
              {{"spans", std::to_string(remembered)}});
  }
  return remembered;
}

void JourneyStage::Start() {
  if (!attributor_) return;
  RememberRecentSpans();
  if (options_.batched) return;  // Flush() ends the waits
  timer_.Start("attribution", [this]() -> std::chrono::nanoseconds {
    const Nanos now = engine_.clock().Now();
    ExpireWaits(now);
    const Nanos next = attributor_->NextExpiry();
    const Nanos wait = next == Attributor::kForever ? Nanos{250'000'000} : next - now;
    return std::chrono::nanoseconds(std::clamp<Nanos>(wait, 5'000'000, 250'000'000));
  });
}

void JourneyStage::Stop() {
  timer_.Stop();
  if (attributor_) ExpireWaits(Attributor::kForever);
}

size_t JourneyStage::ExpireWaits(Nanos now) noexcept {
  if (!attributor_) return 0;
  try {
    std::vector<SpanRecord> records;
    FactExtractor extractor(engine_.rules());
    attributor_->Expire(now, extractor, &records);
    const size_t n = records.size();
    kept_.Inc(n);
    Apply(&records, /*delay=*/now != Attributor::kForever);
    return n;
  } catch (const std::exception& e) {
    failed_batches_.Inc();
    log::Error("journey stage failed to end attribution waits", {{"error", e.what()}});
    return 0;
  }
}

void JourneyStage::EndDelays() {
  {
    MutexLock lock(delay_mu_);
    delays_ended_ = true;
  }
  delay_cv_.notify_all();
}

void JourneyStage::Apply(std::vector<SpanRecord>* records, bool delay) noexcept {
  if (records->empty()) return;
  if (delay && options_.apply_delay.count() > 0) {
    const auto until = std::chrono::steady_clock::now() + options_.apply_delay;
    MutexLock lock(delay_mu_);
    while (!delays_ended_ && delay_cv_.wait_until(delay_mu_, until) == std::cv_status::no_timeout) {
      delay_mu_.AssertHeld();
    }
  }
  apply_records_.Observe(static_cast<double>(records->size()));
  Status s = engine_.Apply(std::move(*records));
  *records = {};
  unwritten_.store(!s.ok());
  if (!s.ok()) failed_batches_.Inc();
}

bool JourneyStage::Flush(bool final) noexcept {
  if (!options_.batched) return true;
  try {
    if (attributor_) {
      FactExtractor extractor(engine_.rules());
      const size_t before = records_.size();
      attributor_->Expire(final ? Attributor::kForever : engine_.clock().Now(), extractor,
                          &records_);
      kept_.Inc(records_.size() - before);
    }
  } catch (const std::exception& e) {
    failed_batches_.Inc();
    log::Error("journey stage failed to end attribution waits", {{"error", e.what()}});
  }
  Apply(&records_, /*delay=*/!final);
  records_.clear();
  return !unwritten_.load();
}

void JourneyStage::Process(const std::shared_ptr<const otlp::SpanBatch>& batch) noexcept {
  try {
    // The rules are read per batch, so a SIGHUP reload applies from the next batch on.
    FactExtractor extractor(engine_.rules());
    if (!options_.batched) records_.clear();  // batched: gathered until Flush()
    const size_t before = records_.size();
    ExtractStats stats;
    if (attributor_) {
      attributor_->Process(batch, extractor, engine_.clock().Now(), &records_, &stats);
    } else {
      extractor.Extract(*batch, &records_, &stats);
    }
    spans_.Inc(stats.spans);
    kept_.Inc(records_.size() - before);  // with the pending spans this batch resolved
    unknown_stage_.Inc(stats.unknown_stage);
    if (!options_.batched) Apply(&records_);
  } catch (const std::exception& e) {
    // bad_alloc and the like: the batch's facts are lost for journeys (still forwarded).
    failed_batches_.Inc();
    log::Error("journey stage failed on a batch", {{"error", e.what()}});
  }
}

}  // namespace ordertrace::journey
