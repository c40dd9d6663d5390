#include "redact/redacting_decoder.h"

#include "common/log.h"
#include "redact/wire_redactor.h"

namespace ordertrace::redact {

RedactingDecoder::RedactingDecoder(std::shared_ptr<const ValueRedactor> redactor,
                                   metrics::Registry* registry)
    : redactor_(std::move(redactor)) {
  if (registry == nullptr) return;
  auto& batches =
      registry->AddCounter("ordertrace_redaction_batches_total",
                           "Accepted requests by whether redaction changed them.", {"result"});
  batches_redacted_ = &batches.With({"redacted"});
  batches_clean_ = &batches.With({"clean"});
  failures_ = &batches.With({"failed"});
}

void RedactingDecoder::SetRedactor(std::shared_ptr<const ValueRedactor> redactor) {
  MutexLock lock(mu_);
  redactor_ = std::move(redactor);
}

std::shared_ptr<const ValueRedactor> RedactingDecoder::redactor() const {
  MutexLock lock(mu_);
  return redactor_;
}

Result<std::shared_ptr<const otlp::SpanBatch>> RedactingDecoder::Decode(
    std::string wire, otlp::Protocol protocol, const otlp::Limits& limits) const {
  const std::shared_ptr<const ValueRedactor> redactor = this->redactor();
  if (!redactor) return otlp::DecodeExportRequest(std::move(wire), protocol, limits);
  auto redacted = RedactExportRequest(wire, *redactor, limits.max_attribute_value_bytes);
  if (!redacted.ok()) {
    // Malformed: the decoder says where, in the words clients already get.  A request the
    // decoder reads but redaction cannot is refused (fail closed: never stored or sent clear).
    auto decoded = otlp::DecodeExportRequest(std::move(wire), protocol, limits);
    if (!decoded.ok()) return decoded.status();
    if (failures_ != nullptr) failures_->Inc();
    log::Error("redaction failed; the request is refused",
               {{"error", redacted.status().message()}});
    return Status::Internal("redaction failed; the request was not accepted");
  }
  if (!redacted->has_value()) {
    if (batches_clean_ != nullptr) batches_clean_->Inc();
    return otlp::DecodeExportRequest(std::move(wire), protocol, limits);
  }
  if (batches_redacted_ != nullptr) batches_redacted_->Inc();
  return otlp::DecodeExportRequest(std::move(**redacted), protocol, limits);
}

}  // namespace ordertrace::redact
