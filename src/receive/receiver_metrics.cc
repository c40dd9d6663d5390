#include "receive/receiver_metrics.h"

#include <string>

namespace ordertrace::receive {
namespace {

constexpr otlp::Protocol kProtocols[] = {otlp::Protocol::kGrpc, otlp::Protocol::kHttpProtobuf,
                                         otlp::Protocol::kHttpJson};

int Index(otlp::Protocol p) { return static_cast<int>(p); }

}  // namespace

ReceiverMetrics::ReceiverMetrics(metrics::Registry& registry)
    : accepted_(registry.AddCounter("ordertrace_receiver_accepted_spans_total",
                                    "Spans accepted by the OTLP receivers and handed to the "
                                    "pipeline.",
                                    {"protocol"})),
      refused_(registry.AddCounter("ordertrace_receiver_refused_spans_total",
                                   "Spans refused by the OTLP receivers (by validation, or with "
                                   "their whole request).",
                                   {"protocol", "reason"})),
      repaired_(registry.AddCounter("ordertrace_receiver_repaired_spans_total",
                                    "Accepted spans that validation repaired.",
                                    {"protocol", "repair"})),
      requests_(registry.AddCounter("ordertrace_receiver_requests_total",
                                    "OTLP export requests by response code (HTTP status or gRPC "
                                    "code name).",
                                    {"protocol", "code"})),
      duration_(registry.AddHistogram("ordertrace_receiver_request_duration_seconds",
                                      "Time to decode, validate and hand off one OTLP export "
                                      "request.",
                                      {"protocol"})),
      bytes_(registry.AddCounter("ordertrace_receiver_request_bytes_total",
                                 "OTLP request body bytes as received (before gzip decoding for "
                                 "HTTP; after it for gRPC).",
                                 {"protocol"})),
      auth_(registry) {
  for (otlp::Protocol p : kProtocols) {
    const std::string name = otlp::ProtocolName(p);
    accepted_by_protocol_[Index(p)] = &accepted_.With({name});
    duration_by_protocol_[Index(p)] = &duration_.With({name});
    bytes_by_protocol_[Index(p)] = &bytes_.With({name});
  }
}

void ReceiverMetrics::Accepted(otlp::Protocol p, uint64_t spans) {
  accepted_by_protocol_[Index(p)]->Inc(spans);
}

uint64_t ReceiverMetrics::accepted_total() const {
  uint64_t n = 0;
  for (const metrics::Counter* c : accepted_by_protocol_) n += c->Value();
  return n;
}

void ReceiverMetrics::Refused(otlp::Protocol p, const char* reason, uint64_t spans) {
  refused_.With({otlp::ProtocolName(p), reason}).Inc(spans);
}

void ReceiverMetrics::Repaired(otlp::Protocol p, const char* repair, uint64_t spans) {
  repaired_.With({otlp::ProtocolName(p), repair}).Inc(spans);
}

void ReceiverMetrics::Request(otlp::Protocol p, const std::string& code) {
  requests_.With({otlp::ProtocolName(p), code}).Inc();
}

void ReceiverMetrics::Duration(otlp::Protocol p, double seconds) {
  duration_by_protocol_[Index(p)]->Observe(seconds);
}

void ReceiverMetrics::Bytes(otlp::Protocol p, uint64_t bytes) {
  bytes_by_protocol_[Index(p)]->Inc(bytes);
}

void ReceiverMetrics::RecordBatch(const otlp::SpanBatch& batch) {
  const otlp::Protocol p = batch.protocol();
  Accepted(p, batch.spans().size());
  if (batch.refused_spans() > 0) {
    for (int r = 0; r < static_cast<int>(otlp::RefuseReason::kCount); ++r) {
      const auto reason = static_cast<otlp::RefuseReason>(r);
      if (uint64_t n = batch.refused(reason); n > 0) Refused(p, otlp::RefuseReasonName(reason), n);
    }
  }
  for (int r = 0; r < static_cast<int>(otlp::Repair::kCount); ++r) {
    const auto repair = static_cast<otlp::Repair>(r);
    if (uint64_t n = batch.repaired(repair); n > 0) Repaired(p, otlp::RepairName(repair), n);
  }
}

}  // namespace ordertrace::receive
