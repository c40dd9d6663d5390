// The exporter factory: checks the options, loads the TLS material once and picks the
// transport by the URL's scheme.

#include "forward/exporter/exporter.h"

#include <exception>

#include "common/log.h"
#include "forward/exporter/grpc_exporter.h"
#include "forward/exporter/http_exporter.h"
#include "forward/exporter/options.h"
#include "net/tls.h"
#include "net/url.h"

namespace ordertrace::forward {
namespace {

Result<std::unique_ptr<OtlpExporter>> CreateExporter(const ExporterOptions& options) {
  auto parsed = ParseUpstream(options.url);
  if (!parsed.ok()) return parsed.status();
  const Upstream upstream = std::move(parsed).value();
  const bool tls = upstream.url.tls();

  if (options.timeout.count() <= 0) {
    return Status::InvalidArgument("upstream timeout must be positive (got " +
                                   std::to_string(options.timeout.count()) + " ms)");
  }
  const bool any_tls_file =
      !options.ca_file.empty() || !options.cert_file.empty() || !options.key_file.empty();
  if (!tls && any_tls_file) {
    return Status::InvalidArgument("upstream URL '" + net::RedactUrl(options.url) +
                                   "': ca_file, cert_file and key_file need " +
                                   std::string(upstream.grpc ? "grpcs://" : "https://"));
  }
  if (options.cert_file.empty() != options.key_file.empty()) {
    return Status::InvalidArgument(
        "upstream TLS: cert_file and key_file go together (the client certificate for mTLS)");
  }
  auto headers = CheckHeaders(options.headers, upstream.grpc);
  if (!headers.ok()) return headers.status();

  std::shared_ptr<const net::TlsClientContext> context;
  if (tls) {
    net::TlsOptions tls_options;
    tls_options.ca_file = options.ca_file;
    tls_options.cert_file = options.cert_file;
    tls_options.key_file = options.key_file;
    auto loaded = net::TlsClientContext::Create(tls_options);
    if (!loaded.ok()) return loaded.status();
    context = std::move(loaded).value();
  }

  std::unique_ptr<OtlpExporter> exporter =
      upstream.grpc ? NewGrpcExporter(upstream, options, std::move(headers).value(), context.get())
                    : NewHttpExporter(upstream, options, std::move(headers).value(), context);
  log::Info("OTLP exporter configured",
            {{"upstream", net::RedactUrl(options.url)},
             {"scheme", exporter->scheme()},
             {"gzip", options.gzip},
             {"timeout_ms", static_cast<int64_t>(options.timeout.count())}});
  return exporter;
}

}  // namespace

Result<std::unique_ptr<OtlpExporter>> OtlpExporter::Create(const ExporterOptions& options) {
  try {
    return CreateExporter(options);
  } catch (const std::exception& e) {
    return Status::InvalidArgument("upstream exporter: " + std::string(e.what()));
  }
}

}  // namespace ordertrace::forward
