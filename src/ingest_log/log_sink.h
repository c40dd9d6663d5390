// LogSink: the BatchSink in front of the durable ingest log.  A batch the receivers accepted
// (validated, repaired and already redacted) is appended as the bytes the upstream gets
// (forward/encoder.h: the wire as received when nothing was changed, else re-encoded), and the
// client is answered only once the record is durable.  The log's refusals go back to the
// receivers unchanged: ResourceExhausted when its budget is full (429), Unavailable on a full
// disk or an I/O error (503), both with the retry delay.
//
// Thread-safety: Accept() from any number of threads (the log serialises appends).
#pragma once

#include "ingest_log/durable_log.h"
#include "pipeline/batch_sink.h"

namespace ordertrace::ingest_log {

class LogSink : public pipeline::BatchSink {
 public:
  explicit LogSink(DurableLog& log) : log_(log) {}  // `log` must outlive the sink
  Status Accept(std::shared_ptr<const otlp::SpanBatch> batch) noexcept override;

 private:
  DurableLog& log_;
};

}  // namespace ordertrace::ingest_log
