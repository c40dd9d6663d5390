// OTLP/gRPC transport of the exporter: a generic stub sends the request bytes as they are
// (never parsed by libprotobuf); only the small response and the error details use the
// generated classes.
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

// `headers` checked by CheckHeaders(..., /*grpc=*/true); `tls` for grpcs:// (its CA, client
// certificate and key become the channel's credentials; nullptr for grpc://).
std::unique_ptr<OtlpExporter> NewGrpcExporter(
    const Upstream& upstream, const ExporterOptions& options,
    std::vector<std::pair<std::string, std::string>> headers, const net::TlsClientContext* tls);

}  // namespace ordertrace::forward
