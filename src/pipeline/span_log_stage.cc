#include "pipeline/span_log_stage.h"

#include <algorithm>
#include <cstdio>
#include <exception>
#include <string>

#include "common/log.h"

namespace ordertrace::pipeline {
namespace {

// Adds `value` to the distinct list unless present; counts it in `*more` when the list is full.
void AddDistinct(std::vector<std::string>* list, size_t* more, std::string value, size_t max) {
  if (value.empty()) return;
  if (std::find(list->begin(), list->end(), value) != list->end()) return;
  if (list->size() < max) {
    list->push_back(std::move(value));
  } else {
    ++*more;  // approximate: a value seen twice past the cap counts twice
  }
}

std::string Join(const std::vector<std::string>& values, size_t more) {
  std::string out;
  for (const auto& v : values) {
    if (!out.empty()) out += ',';
    out += v;
  }
  if (more > 0) out += ",+" + std::to_string(more) + " more";
  return out;
}

const char* KindName(uint8_t kind) {
  switch (kind) {
    case 1:
      return "internal";
    case 2:
      return "server";
    case 3:
      return "client";
    case 4:
      return "producer";
    case 5:
      return "consumer";
    default:
      return "unspecified";
  }
}

const char* StatusName(uint8_t code) {
  switch (code) {
    case 1:
      return "ok";
    case 2:
      return "error";
    default:
      return "unset";
  }
}

// Cuts `s` to at most `max` bytes without splitting a UTF-8 sequence.
std::string CutUtf8(std::string_view s, size_t max) {
  if (s.size() <= max) return std::string(s);
  size_t n = max;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return std::string(s.substr(0, n)) + "\xE2\x80\xA6";  // …
}

}  // namespace

std::string ValueForLog(const otlp::AnyValueView& value, size_t max_chars) {
  switch (value.type) {
    case otlp::ValueType::kString:
      return CutUtf8(value.str, max_chars);
    case otlp::ValueType::kInt:
      return std::to_string(value.int_value);
    case otlp::ValueType::kBool:
      return value.bool_value ? "true" : "false";
    case otlp::ValueType::kDouble: {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.6g", value.double_value);
      return buf;
    }
    default:
      return "";
  }
}

BatchSummary Summarize(const otlp::SpanBatch& batch, const SpanLogOptions& options) {
  BatchSummary sum;
  sum.spans = batch.spans().size();
  const size_t max = options.max_listed;
  std::vector<bool> resource_seen(batch.resources().size(), false);
  for (const otlp::SpanRef& span : batch.spans()) {
    if (span.status_code == 2) ++sum.error_spans;
    if (span.resource < resource_seen.size() && !resource_seen[span.resource]) {
      resource_seen[span.resource] = true;
      AddDistinct(&sum.services, &sum.services_more,
                  CutUtf8(batch.resources()[span.resource].service_name, options.max_value_chars),
                  max);
    }
    // One pass over the attributes finds both keys.
    batch.ForEachAttribute(span, [&](const otlp::KeyValueView& kv) {
      if (kv.key == options.order_key) {
        AddDistinct(&sum.orders, &sum.orders_more, ValueForLog(kv.value, options.max_value_chars),
                    max);
      } else if (kv.key == options.stage_key) {
        AddDistinct(&sum.stages, &sum.stages_more, ValueForLog(kv.value, options.max_value_chars),
                    max);
      }
    });
  }
  return sum;
}

void SpanLogStage::Process(const std::shared_ptr<const otlp::SpanBatch>& shared) noexcept {
  const otlp::SpanBatch& batch = *shared;
  // The summary walks every attribute: not worth it when the line would not be written.
  if (!log::Enabled(log::Level::kInfo)) return;
  try {
    BatchSummary sum = Summarize(batch, options_);
    log::Info("batch", {{"protocol", otlp::ProtocolName(batch.protocol())},
                        {"spans", static_cast<uint64_t>(sum.spans)},
                        {"refused", batch.refused_spans()},
                        {"errors", static_cast<uint64_t>(sum.error_spans)},
                        {"services", Join(sum.services, sum.services_more)},
                        {"orders", Join(sum.orders, sum.orders_more)},
                        {"stages", Join(sum.stages, sum.stages_more)}});
    if (options_.log_spans) {
      for (const otlp::SpanRef& span : batch.spans()) LogSpan(batch, span);
    }
  } catch (const std::exception& e) {  // allocation failure: a lost log line, not a crash
    log::Error("span log stage failed", {{"error", e.what()}});
  }
}

void SpanLogStage::LogSpan(const otlp::SpanBatch& batch, const otlp::SpanRef& span) const {
  std::string order, stage, error_type;
  batch.ForEachAttribute(span, [&](const otlp::KeyValueView& kv) {
    if (kv.key == options_.order_key)
      order = ValueForLog(kv.value, options_.max_value_chars);
    else if (kv.key == options_.stage_key)
      stage = ValueForLog(kv.value, options_.max_value_chars);
    else if (kv.key == kErrorTypeKey)
      error_type = ValueForLog(kv.value, options_.max_value_chars);
  });
  std::string_view service;
  if (span.resource < batch.resources().size()) {
    service = batch.resources()[span.resource].service_name;
  }
  const double duration_ms =
      span.end_time_unix_nano >= span.start_time_unix_nano
          ? static_cast<double>(span.end_time_unix_nano - span.start_time_unix_nano) / 1e6
          : 0.0;
  log::Info("span", {{"trace_id", otlp::ToHex(span.trace_id)},
                     {"span_id", otlp::ToHex(span.span_id)},
                     {"parent_id", span.has_parent() ? otlp::ToHex(span.parent_span_id) : ""},
                     {"service", CutUtf8(service, options_.max_value_chars)},
                     {"name", CutUtf8(span.name, options_.max_value_chars)},
                     {"kind", KindName(span.kind)},
                     {"duration_ms", duration_ms},
                     {"status", StatusName(span.status_code)},
                     {"order", order},
                     {"stage", stage},
                     {"error_type", error_type}});
}

}  // namespace ordertrace::pipeline
