// OtlpExporter: sends encoded OTLP ExportTraceServiceRequests to an upstream (Jaeger >= 1.35,
// the OpenTelemetry Collector, another ordertrace gateway) over OTLP/gRPC or OTLP/HTTP
// protobuf, and classifies the answer per the OTLP specification's retry rules.
// One transport per file: grpc_exporter.cc (a generic gRPC stub), http_exporter.cc (on
// net::HttpConnection); options.cc checks the options and holds what both classify with;
// exporter.cc is the factory choosing between them by the URL's scheme.
//
// Thread-safety: Export() may be called from one thread at a time (the forwarder's sender).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"

namespace ordertrace::forward {

struct ExporterOptions {
  // grpc://host:port, grpcs://host:port (TLS), http://host:port/v1/traces, https://...
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;  // e.g. authorization
  std::chrono::milliseconds timeout{10000};
  bool gzip = false;
  std::string ca_file;    // TLS: trust these CAs (PEM) instead of the system's
  std::string cert_file;  // mTLS client certificate (PEM)
  std::string key_file;   // mTLS client key (PEM)
};

struct ExportResult {
  enum class Kind {
    kOk,         // accepted (possibly with partial success: see rejected_spans)
    kRetryable,  // HTTP 429/502/503/504, gRPC UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED
                 // with RetryInfo, ABORTED, CANCELLED, OUT_OF_RANGE, DATA_LOSS; or a
                 // connection, timeout or TLS error (a certificate problem must not
                 // dead-letter good data: it is retried while the operator fixes it)
    kPermanent,  // anything else (HTTP 400, gRPC INVALID_ARGUMENT, ...): dead-letter it
  };
  Kind kind = Kind::kOk;
  int retry_after_ms = -1;  // from Retry-After / RetryInfo; -1 when the upstream gave none
  std::string reason;       // "http 503", "grpc UNAVAILABLE: ...", "connect: refused", ...
  // For metrics, a bounded set: the HTTP status ("200", "503"), the gRPC code name
  // ("UNAVAILABLE"), or "connect_error" (resolve, connect, reset), "timeout", "tls_error",
  // "protocol_error" (not an HTTP answer), "internal" (the exporter's own failure).
  std::string code;
  int64_t rejected_spans = 0;  // partial success
  std::string partial_message;
};

class OtlpExporter {
 public:
  // InvalidArgument for a malformed URL or unreadable TLS files, naming the problem.
  static Result<std::unique_ptr<OtlpExporter>> Create(const ExporterOptions& options);
  virtual ~OtlpExporter() = default;

  // Sends one request (`request` is the protobuf encoding of ExportTraceServiceRequest).
  virtual ExportResult Export(const std::string& request) = 0;

  // "grpc", "grpcs", "http" or "https".
  virtual const char* scheme() const = 0;
};

}  // namespace ordertrace::forward
