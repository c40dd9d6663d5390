// OTLP/gRPC trace receiver.  A callback generic service receives the request as raw bytes,
// so the hot path is the zero-copy decoder, not libprotobuf; only the small response and
// error details use the generated classes.

#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <climits>
#include <exception>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "common/log.h"
#include "google/rpc/status.pb.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.pb.h"
#include "otlp/decoder.h"
#include "otlp/grpc_names.h"
#include "receive/otlp_receivers.h"
#include "receive/outcome.h"

namespace ordertrace::receive {
namespace {

namespace collector = opentelemetry::proto::collector::trace::v1;

using otlp::GrpcCodeName;

// A gRPC status whose details (grpc-status-details-bin) are a google.rpc.Status carrying a
// google.rpc.RetryInfo: the OTLP specification's way to tell a client when to retry.
grpc::Status RetryableStatus(grpc::StatusCode code, const std::string& message,
                             int retry_after_ms) {
  google::rpc::Status details;
  details.set_code(static_cast<int>(code));
  details.set_message(message);
  google::rpc::RetryInfo retry;
  retry.mutable_retry_delay()->set_seconds(retry_after_ms / 1000);
  retry.mutable_retry_delay()->set_nanos((retry_after_ms % 1000) * 1000000);
  details.add_details()->PackFrom(retry);
  return grpc::Status(code, message, details.SerializeAsString());
}

// "host:port" for gRPC; IPv6 literals need brackets.
std::string GrpcAddress(const std::string& host, uint16_t port) {
  const bool v6 = host.find(':') != std::string::npos && host.front() != '[';
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

// gRPC does not say why a port could not be bound; a plain bind does.
std::string BindFailureReason(const std::string& host, uint16_t port) {
  namespace net = boost::asio;
  boost::system::error_code ec;
  const auto address = net::ip::make_address(host, ec);
  if (ec) return "cannot resolve or bind the address";
  net::io_context ioc;
  net::ip::tcp::acceptor acceptor(ioc);
  const net::ip::tcp::endpoint endpoint(address, port);
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (ec) return ec.message();
  return "gRPC could not bind the address";
}

// What an Export call needs; owned by the receiver, outlives every call.
struct ExportContext {
  OtlpReceiverOptions options;  // auth set (mode none when not configured)
  pipeline::BatchSink* sink;
  ReceiverMetrics* metrics;
};

// The verified client certificate of a call, from gRPC's auth context (mTLS).
net::TlsPeer PeerOf(const grpc::ServerContextBase& ctx) {
  net::TlsPeer peer;
  const std::shared_ptr<const grpc::AuthContext> auth = ctx.auth_context();
  if (!auth || !auth->IsPeerAuthenticated()) return peer;
  peer.verified = true;
  for (const grpc::string_ref& v : auth->FindPropertyValues("x509_common_name")) {
    peer.common_name.assign(v.data(), v.size());
  }
  for (const grpc::string_ref& v : auth->FindPropertyValues("x509_subject_alternative_name")) {
    peer.alt_names.emplace_back(v.data(), v.size());
  }
  return peer;
}

OtlpReceiverOptions WithAuth(OtlpReceiverOptions o) {
  if (!o.auth) o.auth = std::make_shared<const IngestAuthenticator>();
  return o;
}

}  // namespace

struct OtlpGrpcReceiver::Impl : public grpc::CallbackGenericService {
  Impl(OtlpReceiverOptions o, pipeline::BatchSink* s, ReceiverMetrics* m)
      : context{WithAuth(std::move(o)), s, m} {}

  grpc::ServerGenericBidiReactor* CreateReactor(grpc::GenericCallbackServerContext* ctx) override;

  const ExportContext context;

  std::mutex mu;
  bool shut_down = false;  // guarded by mu
  uint16_t port = 0;
  // Destroyed before the service it calls (members before the base class).
  std::unique_ptr<grpc::Server> server;
};

namespace {

// One Export call: read the request, decode, hand off, answer.  Deletes itself in OnDone.
class ExportReactor : public grpc::ServerGenericBidiReactor {
 public:
  ExportReactor(const ExportContext* impl, IngestCaller caller)
      : impl_(impl), caller_(caller), start_(std::chrono::steady_clock::now()) {
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    grpc::Status status;
    if (!ok) {
      status = grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "no request message");
    } else {
      try {
        status = Process();
      } catch (const std::exception& e) {
        status = Internal(e.what());
      } catch (...) {
        status = Internal("unknown exception");
      }
    }
    auto* m = impl_->metrics;
    if (impl_->options.auth->enabled()) m->Auth(otlp::Protocol::kGrpc, caller_.result);
    m->Request(otlp::Protocol::kGrpc, GrpcCodeName(status.error_code()));
    m->Duration(otlp::Protocol::kGrpc,
                std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count());
    if (status.ok()) {
      StartWriteAndFinish(&response_, grpc::WriteOptions(), status);
    } else {
      Finish(status);
    }
  }

  void OnDone() override { delete this; }

 private:
  grpc::Status Process() {
    constexpr otlp::Protocol kGrpc = otlp::Protocol::kGrpc;
    auto* metrics = impl_->metrics;
    std::string wire;
    {
      std::vector<grpc::Slice> slices;
      if (!request_.Dump(&slices).ok()) return Internal("cannot read the request buffer");
      wire.reserve(request_.Length());
      for (const auto& s : slices) wire.append(reinterpret_cast<const char*>(s.begin()), s.size());
      request_.Clear();
    }
    metrics->Bytes(kGrpc, wire.size());

    auto decoded = otlp::DecodeExportRequest(std::move(wire), kGrpc, impl_->options.limits);
    if (!decoded.ok()) {
      metrics->Refused(kGrpc, "malformed", 1);
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, decoded.status().message());
    }
    std::shared_ptr<const otlp::SpanBatch> batch = std::move(decoded).value();
    const uint64_t all_spans = batch->spans().size() + batch->refused_spans();
    if (!impl_->options.auth->MaySend(caller_, *batch)) {
      caller_.result = IngestAuthResult::kForbiddenService;
      metrics->Refused(kGrpc, "forbidden_service", all_spans);
      return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                          "these credentials may not send spans for a service.name in this "
                          "request");
    }

    const Status accepted = batch->spans().empty() ? Status::Ok() : impl_->sink->Accept(batch);
    if (!accepted.ok()) {
      // Refused as a whole and retried by the client: nothing counts as accepted.
      const RefusalAnswer answer = AnswerRefusal(accepted, kGrpc, all_spans, *metrics);
      const auto code = static_cast<grpc::StatusCode>(answer.rpc_code);
      if (answer.retry_after_ms > 0) {
        return RetryableStatus(code, answer.message, answer.retry_after_ms);
      }
      return grpc::Status(code, answer.message);
    }

    metrics->RecordBatch(*batch);
    collector::ExportTraceServiceResponse response;
    if (batch->refused_spans() > 0) {
      auto* partial = response.mutable_partial_success();
      partial->set_rejected_spans(static_cast<int64_t>(batch->refused_spans()));
      partial->set_error_message(batch->refusal_message());
    }
    const std::string bytes = response.SerializeAsString();
    grpc::Slice slice(bytes);
    response_ = grpc::ByteBuffer(&slice, 1);
    return grpc::Status::OK;
  }

  grpc::Status Internal(const char* what) {
    log::Error("OTLP/gRPC request failed", {{"protocol", "grpc"}, {"error", what}});
    impl_->metrics->Refused(otlp::Protocol::kGrpc, "internal", 1);
    return grpc::Status(grpc::StatusCode::INTERNAL, "internal error");
  }

  const ExportContext* const impl_;
  IngestCaller caller_;  // authenticated (or mode none); forbidden_service once refused
  const std::chrono::steady_clock::time_point start_;
  grpc::ByteBuffer request_;
  grpc::ByteBuffer response_;
};

// A call answered without reading it: an unknown method (UNIMPLEMENTED, as a gRPC server
// without that service would answer), a refused peer or missing credentials.
class FinishReactor : public grpc::ServerGenericBidiReactor {
 public:
  explicit FinishReactor(grpc::Status status) { Finish(std::move(status)); }
  void OnDone() override { delete this; }
};

}  // namespace

grpc::ServerGenericBidiReactor* OtlpGrpcReceiver::Impl::CreateReactor(
    grpc::GenericCallbackServerContext* ctx) {
  constexpr otlp::Protocol kGrpc = otlp::Protocol::kGrpc;
  const OtlpReceiverOptions& o = context.options;
  // The allowlist first (gRPC has accepted the connection already; the call is what can be
  // refused).
  if (o.allow && !o.allow->empty()) {
    uint16_t port = 0;
    auto ip = net::ParseGrpcPeer(ctx->peer(), &port);
    if (!ip.ok() || !o.allow->Contains(*ip)) {
      log::Debug("gRPC call refused by the allowlist", {{"peer", ctx->peer()}});
      if (o.on_refused) o.on_refused(ip.ok() ? ip->ToString() : std::string(), port);
      context.metrics->Request(kGrpc, "PERMISSION_DENIED");
      return new FinishReactor(
          grpc::Status(grpc::StatusCode::PERMISSION_DENIED, "client address not allowed"));
    }
  }
  if (ctx->method() != otlp::kGrpcExportMethod) {
    context.metrics->Request(kGrpc, "UNIMPLEMENTED");
    return new FinishReactor(
        grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "unknown method " + ctx->method()));
  }
  std::vector<std::string_view> authorization;
  for (const auto& [key, value] : ctx->client_metadata()) {
    if (key == "authorization") authorization.emplace_back(value.data(), value.size());
  }
  const IngestCaller caller = o.auth->Authenticate(authorization, PeerOf(*ctx));
  if (caller.result != IngestAuthResult::kOk) {
    context.metrics->Auth(kGrpc, caller.result);
    context.metrics->Refused(kGrpc, "unauthenticated", 1);
    context.metrics->Request(kGrpc, "UNAUTHENTICATED");
    return new FinishReactor(
        grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                     o.auth->mode() == IngestAuthMode::kBearer
                         ? "missing or invalid ingest token (authorization: Bearer metadata)"
                         : "the client certificate is not a known ingest identity"));
  }
  return new ExportReactor(&context, caller);
}

OtlpGrpcReceiver::OtlpGrpcReceiver(OtlpReceiverOptions options, pipeline::BatchSink* sink,
                                   ReceiverMetrics* metrics)
    : impl_(std::make_unique<Impl>(std::move(options), sink, metrics)) {}

OtlpGrpcReceiver::~OtlpGrpcReceiver() { Shutdown(); }

Status OtlpGrpcReceiver::Start(const std::string& host, uint16_t port,
                               std::shared_ptr<const net::TlsServerContext> tls) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  if (impl_->server) return Status::Internal("gRPC receiver already started");
  const std::string address = GrpcAddress(host, port);
  const std::string where = host + ":" + std::to_string(port);

  grpc::ServerBuilder builder;
  int selected_port = 0;
  std::shared_ptr<grpc::ServerCredentials> credentials = grpc::InsecureServerCredentials();
  if (tls) {
    if (tls->options().min_version != net::TlsMinVersion::k12) {
      return Status::InvalidArgument("gRPC 1.51 cannot limit its TLS to version 1.3");
    }
    grpc::SslServerCredentialsOptions ssl(
        tls->client_ca_pem().empty() ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                                     : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
    ssl.pem_root_certs = tls->client_ca_pem();
    ssl.pem_key_cert_pairs.push_back({tls->key_pem(), tls->cert_pem()});
    credentials = grpc::SslServerCredentials(ssl);
  }
  builder.AddListeningPort(address, credentials, &selected_port);
  builder.SetMaxReceiveMessageSize(
      static_cast<int>(std::min<size_t>(impl_->context.options.max_body_bytes, INT_MAX)));
  // gRPC sets SO_REUSEPORT by default, which would let a second gateway share the port
  // silently; a taken port must be an error.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.RegisterCallbackGenericService(impl_.get());
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || selected_port == 0) {
    if (server) server->Shutdown();
    return Status::Unavailable("cannot listen on " + where + ": " + BindFailureReason(host, port));
  }
  impl_->server = std::move(server);
  impl_->port = static_cast<uint16_t>(selected_port);
  log::Info("OTLP/gRPC receiver listening",
            {{"address", GrpcAddress(host, impl_->port)}, {"tls", tls ? "on" : "off"}});
  return Status::Ok();
}

uint16_t OtlpGrpcReceiver::port() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->port;
}

void OtlpGrpcReceiver::Shutdown(std::chrono::milliseconds drain) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  if (!impl_->server || impl_->shut_down) return;
  impl_->shut_down = true;
  impl_->server->Shutdown(std::chrono::system_clock::now() + drain);
  impl_->server->Wait();
  log::Info("OTLP/gRPC receiver stopped");
}

}  // namespace ordertrace::receive
