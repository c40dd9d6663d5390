// SpanLogStage: the demo's window on the pipeline.  Logs one structured line per batch (how
// many spans, from which services, which orders and order stages it carries) and, when asked,
// one line per span.  Personal attributes (partner.id, enduser.id) are never logged.
//
// Thread-safety: Process() runs on the ingest queue's worker; Summarize() is a pure function.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "ordertrace/conventions.h"
#include "otlp/span_batch.h"
#include "pipeline/ingest_queue.h"

namespace ordertrace::pipeline {

// What a batch says about orders, for the log line and its tests.
struct BatchSummary {
  size_t spans = 0;
  size_t error_spans = 0;  // status code ERROR
  // Distinct values in order of first appearance, at most `max_listed` each; the *_more
  // counters say how many distinct values did not fit.
  std::vector<std::string> services;
  std::vector<std::string> orders;
  std::vector<std::string> stages;
  size_t services_more = 0;
  size_t orders_more = 0;
  size_t stages_more = 0;
};

struct SpanLogOptions {
  bool log_spans = false;                               // one line per span as well (`--log-spans`)
  std::string order_key = std::string(kOrderIdKey);     // span attribute naming the order
  std::string stage_key = std::string(kOrderStageKey);  // the milestone reached
  size_t max_listed = 10;       // distinct values listed per field and batch
  size_t max_value_chars = 64;  // longer values are cut in the log line
};

BatchSummary Summarize(const otlp::SpanBatch& batch, const SpanLogOptions& options);

// An attribute value as it is shown in a log line: strings as they are, numbers and booleans
// printed, bytes/arrays/maps as "" (not useful in a one-line summary).  Cut to `max_chars`
// bytes at a UTF-8 boundary, with "…" appended when cut.
std::string ValueForLog(const otlp::AnyValueView& value, size_t max_chars);

class SpanLogStage : public Stage {
 public:
  explicit SpanLogStage(SpanLogOptions options) : options_(std::move(options)) {}
  void Process(const std::shared_ptr<const otlp::SpanBatch>& batch) noexcept override;

 private:
  void LogSpan(const otlp::SpanBatch& batch, const otlp::SpanRef& span) const;

  const SpanLogOptions options_;
};

}  // namespace ordertrace::pipeline
