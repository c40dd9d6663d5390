// OTLP/HTTP protobuf transport of the exporter, on one keep-alive net::HttpConnection (TLS
// through OpenSSL for https), the whole call, connection and TLS handshake included, bounded
// by the timeout.
//
// Thread-safety: see OtlpExporter (one Export() at a time).
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "forward/exporter/exporter.h"
#include "forward/exporter/options.h"
#include "net/tls.h"

namespace ordertrace::forward {

// `headers` checked by CheckHeaders(..., /*grpc=*/false); `tls` for https:// (nullptr for
// http://).
std::unique_ptr<OtlpExporter> NewHttpExporter(
    const Upstream& upstream, const ExporterOptions& options,
    std::vector<std::pair<std::string, std::string>> headers,
    std::shared_ptr<const net::TlsClientContext> tls);

}  // namespace ordertrace::forward
