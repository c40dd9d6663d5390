#include "ingest_log/log_sink.h"

#include <exception>
#include <string>

#include "forward/encoder.h"

namespace ordertrace::ingest_log {

Status LogSink::Accept(std::shared_ptr<const otlp::SpanBatch> batch) noexcept {
  if (!batch) return Status::InvalidArgument("null batch");
  if (batch->spans().empty()) return Status::Ok();  // nothing for any consumer
  try {
    // An unmodified batch goes to the log straight from its wire bytes, without a copy.
    return batch->modified() ? log_.Append(forward::EncodeForForwarding(*batch))
                             : log_.Append(batch->wire());
  } catch (const std::exception& e) {  // allocation failure while re-encoding
    return Status::Unavailable(std::string("ingest log: ") + e.what());
  }
}

}  // namespace ordertrace::ingest_log
