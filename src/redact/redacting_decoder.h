// RedactingDecoder: the one place personal data leaves a span, in front of everything that keeps
// or sends spans.  The receivers decode every request through it (OtlpReceiverOptions::decoder):
// it redacts the request's wire bytes (wire_redactor.h) and decodes what it wrote, once, so the
// batch the receivers hand on (to the ingest queue, the journeys, the durable forward queue and
// the upstream) never holds a clear value.  Protobuf, JSON (converted to protobuf first) and
// gzip (decompressed first) all arrive here as wire bytes.  A request without anything to redact
// is decoded as it came.  It never refuses or drops a span for what it holds.
//
// Why before the decode and not a sink behind it: one walk to redact and one to decode, against
// decode, redact and decode again (the batch's views point into its wire bytes, which redaction
// changes); bench/redact_bench.cc measures it.
//
// The redactor can be swapped while running (a key rotation on SIGHUP).
//
// Thread-safety: Decode() runs concurrently on the receivers' threads; SetRedactor() from any
// thread.
#pragma once

#include <memory>

#include "common/metrics.h"
#include "common/thread_annotations.h"
#include "otlp/decoder.h"
#include "redact/value_redactor.h"

namespace ordertrace::redact {

class RedactingDecoder : public otlp::BatchDecoder {
 public:
  // `redactor` null: requests are decoded as they came.  `registry` may be null.
  RedactingDecoder(std::shared_ptr<const ValueRedactor> redactor, metrics::Registry* registry);

  // The redacted batch; the decoder's InvalidArgument for a malformed request; Internal when a
  // request that decodes could not be redacted (a bug here: refused, never passed on clear).
  Result<std::shared_ptr<const otlp::SpanBatch>> Decode(std::string wire, otlp::Protocol protocol,
                                                        const otlp::Limits& limits) const override;

  void SetRedactor(std::shared_ptr<const ValueRedactor> redactor);
  std::shared_ptr<const ValueRedactor> redactor() const;

 private:
  mutable Mutex mu_;
  std::shared_ptr<const ValueRedactor> redactor_ GUARDED_BY(mu_);
  metrics::Counter* batches_redacted_ = nullptr;
  metrics::Counter* batches_clean_ = nullptr;
  metrics::Counter* failures_ = nullptr;
};

}  // namespace ordertrace::redact
