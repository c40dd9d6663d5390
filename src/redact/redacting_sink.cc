#include "redact/redacting_sink.h"

#include "common/log.h"
#include "otlp/decoder.h"
#include "redact/wire_redactor.h"

namespace ordertrace::redact {

RedactingSink::RedactingSink(std::shared_ptr<const ValueRedactor> redactor,
                             pipeline::BatchSink* next, metrics::Registry* registry)
    : next_(next), redactor_(std::move(redactor)) {
  if (registry == nullptr) return;
  auto& batches =
      registry->AddCounter("ordertrace_redaction_batches_total",
                           "Accepted batches by whether redaction changed them.", {"result"});
  batches_redacted_ = &batches.With({"redacted"});
  batches_clean_ = &batches.With({"clean"});
  failures_ = &batches.With({"failed"});
}

void RedactingSink::SetRedactor(std::shared_ptr<const ValueRedactor> redactor) {
  MutexLock lock(mu_);
  redactor_ = std::move(redactor);
}

std::shared_ptr<const ValueRedactor> RedactingSink::redactor() const {
  MutexLock lock(mu_);
  return redactor_;
}

Status RedactingSink::Accept(std::shared_ptr<const otlp::SpanBatch> batch) noexcept {
  const std::shared_ptr<const ValueRedactor> redactor = this->redactor();
  if (!redactor) return next_->Accept(std::move(batch));
  auto redacted = RedactExportRequest(batch->wire(), *redactor);
  if (redacted.ok() && !redacted->has_value()) {
    if (batches_clean_ != nullptr) batches_clean_->Inc();
    return next_->Accept(std::move(batch));
  }
  std::shared_ptr<const otlp::SpanBatch> clean;
  if (redacted.ok()) {
    auto decoded =
        otlp::DecodeExportRequest(std::move(**redacted), batch->protocol(), batch->limits());
    if (decoded.ok()) {
      clean = std::move(decoded).value();
    } else {
      redacted = decoded.status();
    }
  }
  if (!clean) {
    // The batch decoded once, so this is a bug here; refusing it keeps clear values out of every
    // store (fail closed), and the client's retry is refused the same way.
    if (failures_ != nullptr) failures_->Inc();
    log::Error("redaction failed; the batch is refused", {{"error", redacted.status().message()}});
    return Status::Internal("redaction failed");
  }
  if (batches_redacted_ != nullptr) batches_redacted_->Inc();
  return next_->Accept(std::move(clean));
}

}  // namespace ordertrace::redact
