// What an OTLP receiver answers when the pipeline refuses a batch: the one mapping of
// BatchSink::Accept's Status to the protocol's answer, shared by OTLP/gRPC and OTLP/HTTP so
// that both transports throttle, refuse and count alike (docs/receivers.md).
//
//   ResourceExhausted → gRPC RESOURCE_EXHAUSTED / HTTP 429, retry after the status's delay,
//                       counted as refused "throttled"
//   Unavailable       → gRPC UNAVAILABLE / HTTP 503, retry after the status's delay,
//                       counted as refused "unavailable" (shutting down)
//   anything else     → gRPC INTERNAL / HTTP 500 "internal error", logged once and counted
//                       as refused "internal"
//
// Thread-safety: a pure function of its arguments plus the metrics' and the log's own
// (thread-safe) recording.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>

#include "common/log.h"
#include "common/status.h"
#include "otlp/span_batch.h"
#include "receive/receiver_metrics.h"

namespace ordertrace::receive {

struct RefusalAnswer {
  int rpc_code = 0;        // google.rpc.Code, which is also the gRPC status code
  int http_status = 0;     // the OTLP/HTTP status
  std::string message;     // for the client
  int retry_after_ms = 0;  // > 0: retryable, tell the client when (RetryInfo, Retry-After)
};

// For a batch of `spans` spans (accepted and refused by validation) that the pipeline refused
// with `refused` (not OK): counts the refusal (a refused request counts none of its spans as
// accepted), logs an unexpected status, and returns what to answer.
inline RefusalAnswer AnswerRefusal(const Status& refused, otlp::Protocol protocol, uint64_t spans,
                                   ReceiverMetrics& metrics) {
  constexpr int kRpcResourceExhausted = 8, kRpcInternal = 13, kRpcUnavailable = 14;
  switch (refused.code()) {
    case StatusCode::kResourceExhausted:
      metrics.Refused(protocol, "throttled", spans);
      return {kRpcResourceExhausted, 429, refused.message(), std::max(1, refused.retry_after_ms())};
    case StatusCode::kUnavailable:
      metrics.Refused(protocol, "unavailable", spans);
      return {kRpcUnavailable, 503, refused.message(), std::max(1, refused.retry_after_ms())};
    default:
      log::Error("pipeline refused an OTLP batch",
                 {{"protocol", otlp::ProtocolName(protocol)}, {"status", refused.ToString()}});
      metrics.Refused(protocol, "internal", spans);
      return {kRpcInternal, 500, "internal error", 0};
  }
}

}  // namespace ordertrace::receive
