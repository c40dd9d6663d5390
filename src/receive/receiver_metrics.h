// The receivers' Prometheus metrics, shared by the gRPC and HTTP receivers.
//
// Thread-safety: the referenced metrics are lock-free; construct once at start-up.
#pragma once

#include "common/metrics.h"
#include "otlp/span_batch.h"
#include "receive/ingest_auth.h"

namespace ordertrace::receive {

class ReceiverMetrics {
 public:
  explicit ReceiverMetrics(metrics::Registry& registry);

  // ordertrace_receiver_accepted_spans_total{protocol}
  void Accepted(otlp::Protocol p, uint64_t spans);
  // Spans accepted since start, every protocol (the sum of the counter above).
  uint64_t accepted_total() const;
  // ordertrace_receiver_refused_spans_total{protocol,reason}; reason is a RefuseReasonName or
  // one of "malformed", "too_large", "unsupported", "throttled", "unavailable", "internal" for
  // spans (or whole requests, counted as 1 when the span count is unknown) refused outside
  // validation, or "unauthenticated" / "forbidden_service" (ingest.auth).
  void Refused(otlp::Protocol p, const char* reason, uint64_t spans);
  // ordertrace_receiver_repaired_spans_total{protocol,repair}
  void Repaired(otlp::Protocol p, const char* repair, uint64_t spans);
  // ordertrace_receiver_requests_total{protocol,code}; code is the HTTP status or gRPC code name
  void Request(otlp::Protocol p, const std::string& code);
  // ordertrace_receiver_request_duration_seconds{protocol}
  void Duration(otlp::Protocol p, double seconds);
  // ordertrace_receiver_request_bytes_total{protocol}: bytes as received (before gunzip)
  void Bytes(otlp::Protocol p, uint64_t bytes);

  // ordertrace_ingest_auth_total{listener,result}
  void Auth(otlp::Protocol p, IngestAuthResult r) { auth_.Count(p, r); }

  // Records everything a decoded batch says: accepted, refused by reason, repaired by repair.
  void RecordBatch(const otlp::SpanBatch& batch);

 private:
  metrics::Family<metrics::Counter>& accepted_;
  metrics::Family<metrics::Counter>& refused_;
  metrics::Family<metrics::Counter>& repaired_;
  metrics::Family<metrics::Counter>& requests_;
  metrics::Family<metrics::Histogram>& duration_;
  metrics::Family<metrics::Counter>& bytes_;
  IngestAuthMetrics auth_;
  metrics::Counter* accepted_by_protocol_[3];
  metrics::Histogram* duration_by_protocol_[3];
  metrics::Counter* bytes_by_protocol_[3];
};

}  // namespace ordertrace::receive
