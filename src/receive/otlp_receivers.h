// The OTLP trace receivers: OTLP/HTTP (POST /v1/traces, protobuf and JSON) registered on an
// HttpServer, and OTLP/gRPC (opentelemetry.proto.collector.trace.v1.TraceService/Export).
// Both decode and validate into a SpanBatch and hand it to a pipeline::BatchSink; status codes,
// partial success and throttling follow the OTLP specification (docs/receivers.md).
//
// Thread-safety: requests are handled concurrently; the sink must be thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "common/status.h"
#include "net/http_server.h"
#include "net/tls.h"
#include "otlp/span_batch.h"
#include "pipeline/batch_sink.h"
#include "receive/receiver_metrics.h"

namespace ordertrace::receive {

struct OtlpReceiverOptions {
  otlp::Limits limits;
  size_t max_body_bytes = 16 << 20;  // protobuf/JSON after gzip decoding; gRPC message size
};

// Registers POST /v1/traces on `server`.  `sink` and `metrics` must outlive the server.
void RegisterOtlpHttp(net::HttpServer& server, const OtlpReceiverOptions& options,
                      pipeline::BatchSink* sink, ReceiverMetrics* metrics);

class OtlpGrpcReceiver {
 public:
  OtlpGrpcReceiver(OtlpReceiverOptions options, pipeline::BatchSink* sink,
                   ReceiverMetrics* metrics);
  ~OtlpGrpcReceiver();

  // Binds host:port (port 0 picks a free one) and starts serving; over TLS when `tls` is set
  // (the certificate and key, and with a client CA client certificates required and verified).
  // gRPC 1.51's SslServerCredentials enforce TLS 1.2 or newer and cannot be limited to 1.3;
  // the certificate is read once (a new one needs a restart).
  Status Start(const std::string& host, uint16_t port,
               std::shared_ptr<const net::TlsServerContext> tls = nullptr);
  uint16_t port() const;
  // Refuses new calls with UNAVAILABLE, waits for calls in progress (up to `drain`), stops.
  void Shutdown(std::chrono::milliseconds drain = std::chrono::milliseconds(5000));

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ordertrace::receive
