// The OTLP trace receivers: OTLP/HTTP (POST /v1/traces, protobuf and JSON) registered on an
// HttpServer, and OTLP/gRPC (opentelemetry.proto.collector.trace.v1.TraceService/Export).
// Both decode and validate into a SpanBatch and hand it to a pipeline::BatchSink; status codes,
// partial success and throttling follow the OTLP specification (docs/receivers.md).  Both check
// ingest authentication (receive/ingest_auth.h) first when it is configured.
//
// Thread-safety: requests are handled concurrently; the sink must be thread-safe.
// OtlpGrpcReceiver::SetTls() may be called from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/status.h"
#include "net/cidr.h"
#include "net/http_server.h"
#include "net/tls.h"
#include "otlp/decoder.h"
#include "otlp/span_batch.h"
#include "pipeline/batch_sink.h"
#include "receive/ingest_auth.h"
#include "receive/receiver_metrics.h"

namespace ordertrace::receive {

struct OtlpReceiverOptions {
  otlp::Limits limits;
  size_t max_body_bytes = 16 << 20;  // protobuf/JSON after gzip decoding; gRPC message size
  // Ingest authentication (ingest.auth); null or mode none: every caller may send.  Missing or
  // wrong credentials: HTTP 401 (with WWW-Authenticate: Bearer in bearer mode) / gRPC
  // UNAUTHENTICATED; a batch with a service.name its credentials are not bound to: HTTP 403 /
  // gRPC PERMISSION_DENIED.  Both non-retryable, as the OTLP specification treats them.
  std::shared_ptr<const IngestAuthenticator> auth;
  // gRPC only (the HTTP listener checks its peers in net::HttpServer): the client networks
  // allowed (listen.allow.otlp_grpc); null or empty: all.  A call from elsewhere is answered
  // PERMISSION_DENIED and reported to on_refused (ip, port).
  std::shared_ptr<const net::CidrSet> allow;
  std::function<void(const std::string& ip, uint16_t port)> on_refused;
  // gRPC with TLS: the private directory (created 0700, the receiver's alone) where the
  // receiver keeps the copy of its certificate, key and client CA that gRPC watches
  // (OtlpGrpcReceiver::SetTls); "" makes a temporary one.  Removed at Shutdown().
  std::string tls_dir;
  // Turns a request's wire bytes into a batch; null: otlp::DecodeExportRequest.  The gateway puts
  // redaction here (redact::RedactingDecoder), so that no batch the sink gets holds personal data.
  std::shared_ptr<const otlp::BatchDecoder> decoder;
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
  // gRPC 1.51's TLS credentials accept TLS 1.2 or newer and cannot be limited to 1.3.
  Status Start(const std::string& host, uint16_t port,
               std::shared_ptr<const net::TlsServerContext> tls = nullptr);
  // Replaces the certificate, key and client CA for connections accepted from now on (a
  // reload), within about a second: gRPC 1.51 can change them only through its experimental
  // TlsServerCredentials with a FileWatcherCertificateProvider, which re-reads its files every
  // second; the receiver writes `tls`'s PEMs there (OtlpReceiverOptions::tls_dir).  Connections
  // already open keep theirs.  Whether client certificates are required is fixed at Start().
  // InvalidArgument when the receiver was not started with TLS.
  Status SetTls(std::shared_ptr<const net::TlsServerContext> tls);
  uint16_t port() const;
  // Refuses new calls with UNAVAILABLE, waits for calls in progress (up to `drain`), stops.
  void Shutdown(std::chrono::milliseconds drain = std::chrono::milliseconds(5000));

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ordertrace::receive
