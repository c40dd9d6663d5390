// RedactingSink: the one place personal data leaves a span, in front of everything that keeps or
// sends spans.  The receivers hand it every accepted batch; it redacts the batch's wire bytes
// (wire_redactor.h) and hands a batch decoded from the redacted bytes to the sink behind it (the
// SinkChain of the ingest queue and the durable forward queue), so that no clear value reaches the
// journey store, the forward queue on disk or the upstream.  A batch without anything to redact is
// passed on as it is.  It never refuses or drops a span for what it holds.
//
// The redactor can be swapped while running (a key rotation on SIGHUP).
//
// Thread-safety: Accept() runs concurrently on the receivers' threads; SetRedactor() from any
// thread.
#pragma once

#include <atomic>
#include <memory>

#include "common/metrics.h"
#include "common/thread_annotations.h"
#include "pipeline/batch_sink.h"
#include "redact/value_redactor.h"

namespace ordertrace::redact {

class RedactingSink : public pipeline::BatchSink {
 public:
  // `next` must outlive this; `registry` may be null.
  RedactingSink(std::shared_ptr<const ValueRedactor> redactor, pipeline::BatchSink* next,
                metrics::Registry* registry);

  Status Accept(std::shared_ptr<const otlp::SpanBatch> batch) noexcept override;

  void SetRedactor(std::shared_ptr<const ValueRedactor> redactor);
  std::shared_ptr<const ValueRedactor> redactor() const;

 private:
  pipeline::BatchSink* const next_;
  mutable Mutex mu_;
  std::shared_ptr<const ValueRedactor> redactor_ GUARDED_BY(mu_);
  metrics::Counter* batches_redacted_ = nullptr;
  metrics::Counter* batches_clean_ = nullptr;
  metrics::Counter* failures_ = nullptr;
};

}  // namespace ordertrace::redact
