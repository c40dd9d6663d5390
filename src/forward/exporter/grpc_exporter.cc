#include "forward/exporter/grpc_exporter.h"

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <exception>
#include <future>

#include "google/rpc/status.pb.h"
#include "otlp/grpc_names.h"

namespace ordertrace::forward {
namespace {

using otlp::GrpcCodeName;

ExportResult ClassifyGrpc(const grpc::Status& status, grpc::ByteBuffer& response) {
  const grpc::StatusCode code = status.error_code();
  if (status.ok()) {
    ExportResult r;
    r.code = "OK";
    std::vector<grpc::Slice> slices;
    if (response.Valid() && response.Dump(&slices).ok()) {
      std::string bytes;
      bytes.reserve(response.Length());
      for (const auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
      ReadPartialSuccess(bytes, /*json=*/false, r);
    }
    return r;
  }

  int retry_after_ms = -1;
  if (!status.error_details().empty()) {
    google::rpc::Status details;
    if (details.ParseFromString(status.error_details())) retry_after_ms = RetryDelayMs(details);
  }
  const std::string name = GrpcCodeName(code);
  std::string reason = "grpc " + name;
  if (!status.error_message().empty()) reason += ": " + status.error_message();
  switch (code) {
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
    case grpc::StatusCode::CANCELLED:
    case grpc::StatusCode::ABORTED:
    case grpc::StatusCode::OUT_OF_RANGE:
    case grpc::StatusCode::DATA_LOSS:
      return Retryable(name, std::move(reason), retry_after_ms);
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      // Retryable only when the server says recovery is possible (OTLP specification).
      if (retry_after_ms >= 0) return Retryable(name, std::move(reason), retry_after_ms);
      return Permanent(name, reason + " (no RetryInfo: not retryable)");
    default:
      return Permanent(name, std::move(reason));
  }
}

class GrpcExporter final : public OtlpExporter {
 public:
  GrpcExporter(const net::Url& ep, const ExporterOptions& options,
               std::vector<std::pair<std::string, std::string>> headers,
               const std::shared_ptr<grpc::ChannelCredentials>& credentials)
      : tls_(ep.tls()),
        timeout_(options.timeout),
        gzip_(options.gzip),
        headers_(std::move(headers)),
        // "dns:///" always: a bare "unix:4317" or "ipv4:..." would select another resolver.
        channel_(grpc::CreateCustomChannel("dns:///" + ep.Authority(), credentials, ChannelArgs())),
        stub_(channel_) {}

  const char* scheme() const override { return tls_ ? "grpcs" : "grpc"; }

  ExportResult Export(const std::string& request) override {
    try {
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() + timeout_);
      if (gzip_) context.set_compression_algorithm(GRPC_COMPRESS_GZIP);
      for (const auto& [key, value] : headers_) context.AddMetadata(key, value);

      grpc::Slice slice(request);  // a copy: gRPC may hold its slices past the call
      grpc::ByteBuffer request_buffer(&slice, 1);
      grpc::ByteBuffer response;
      std::promise<grpc::Status> done;
      std::future<grpc::Status> result = done.get_future();
      // Completes by the deadline at the latest.
      stub_.UnaryCall(&context, otlp::kGrpcExportMethod, grpc::StubOptions(), &request_buffer,
                      &response, [&done](grpc::Status s) { done.set_value(std::move(s)); });
      const grpc::Status status = result.get();
      return ClassifyGrpc(status, response);
    } catch (const std::exception& e) {
      return Retryable("internal", std::string("exporter error: ") + e.what());
    } catch (...) {
      return Retryable("internal", "exporter error");
    }
  }

 private:
  static grpc::ChannelArguments ChannelArgs() {
    grpc::ChannelArguments args;
    // The forwarder retries with its own backoff and counts every attempt.
    args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);
    // Find a restarted upstream within seconds: reconnection backoff capped at 5 s instead of
    // gRPC's default of two minutes (the connect timeout stays at gRPC's 20 s).
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 1000);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 5000);
    args.SetUserAgentPrefix(kUserAgent);
    return args;
  }

  const bool tls_;
  const std::chrono::milliseconds timeout_;
  const bool gzip_;
  const std::vector<std::pair<std::string, std::string>> headers_;
  std::shared_ptr<grpc::Channel> channel_;
  grpc::GenericStub stub_;
};

}  // namespace

std::unique_ptr<OtlpExporter> NewGrpcExporter(
    const Upstream& upstream, const ExporterOptions& options,
    std::vector<std::pair<std::string, std::string>> headers, const net::TlsClientContext* tls) {
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  if (tls != nullptr) {
    grpc::SslCredentialsOptions ssl_options;
    ssl_options.pem_root_certs = tls->ca_pem();  // empty: gRPC's default roots
    ssl_options.pem_cert_chain = tls->cert_pem();
    ssl_options.pem_private_key = tls->key_pem();
    credentials = grpc::SslCredentials(ssl_options);
  } else {
    credentials = grpc::InsecureChannelCredentials();
  }
  return std::make_unique<GrpcExporter>(upstream.url, options, std::move(headers), credentials);
}

}  // namespace ordertrace::forward
