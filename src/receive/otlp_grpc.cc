// OTLP/gRPC trace receiver.  A callback generic service receives the request as raw bytes,
// so the hot path is the zero-copy decoder, not libprotobuf; only the small response and
// error details use the generated classes.

#include <fcntl.h>
#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstring>
#include <exception>
#include <filesystem>
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

// How often gRPC's file watcher looks at the certificate files (its minimum): a reload reaches
// new connections within this.
constexpr unsigned kTlsRefreshSeconds = 1;

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

  // Writes the PEMs of `tls` as the next generation under tls_dir and points `current` at it
  // (see SetTls).  Called with mu held.
  Status WriteTlsGeneration(const net::TlsServerContext& tls);
  // TLS credentials whose certificate, key and client CA come from the files under tls_dir,
  // re-read every kTlsRefreshSeconds.  Called with mu held, at start.
  Result<std::shared_ptr<grpc::ServerCredentials>> MakeTlsCredentials(
      const net::TlsServerContext& tls);

  const ExportContext context;

  std::mutex mu;
  bool shut_down = false;  // guarded by mu
  uint16_t port = 0;
  bool tls = false;               // guarded by mu
  std::filesystem::path tls_dir;  // guarded by mu; the watched files live under it
  int tls_generation = 0;         // guarded by mu
  std::shared_ptr<grpc::experimental::CertificateProviderInterface> certificates;
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

    const OtlpReceiverOptions& o = impl_->options;
    auto decoded = o.decoder != nullptr
                       ? o.decoder->Decode(std::move(wire), kGrpc, o.limits)
                       : otlp::DecodeExportRequest(std::move(wire), kGrpc, o.limits);
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

namespace {

// Writes `text` to `path` (mode 0600), with its modification time set to `mtime` seconds.
Status WritePem(const std::filesystem::path& path, const std::string& text, time_t mtime) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    return Status::Unavailable("cannot write '" + path.string() + "': " + std::strerror(errno));
  }
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = errno;
      ::close(fd);
      return Status::Unavailable("cannot write '" + path.string() + "': " + std::strerror(err));
    }
    done += static_cast<size_t>(n);
  }
  const timespec times[2] = {{mtime, 0}, {mtime, 0}};
  ::futimens(fd, times);
  ::close(fd);
  return Status::Ok();
}

}  // namespace

Status OtlpGrpcReceiver::Impl::WriteTlsGeneration(const net::TlsServerContext& tls) {
  // gRPC's file watcher reads the key and then the certificate, and accepts the pair only when
  // neither file's modification time changed meanwhile.  Every generation gets its own
  // modification time (its number), and `current` is swapped with one rename, so a read that
  // straddles a swap is noticed and retried instead of pairing an old key with a new
  // certificate.
  const int generation = tls_generation + 1;
  const std::filesystem::path gen_dir = tls_dir / ("gen-" + std::to_string(generation));
  std::error_code ec;
  std::filesystem::remove_all(gen_dir, ec);
  std::filesystem::create_directory(gen_dir, ec);
  if (ec) {
    return Status::Unavailable("cannot create '" + gen_dir.string() + "': " + ec.message());
  }
  const time_t mtime = generation;
  if (Status s = WritePem(gen_dir / "key.pem", tls.key_pem(), mtime); !s.ok()) return s;
  if (Status s = WritePem(gen_dir / "cert.pem", tls.cert_pem(), mtime); !s.ok()) return s;
  if (Status s = WritePem(gen_dir / "ca.pem", tls.client_ca_pem(), mtime); !s.ok()) return s;
  const std::filesystem::path link = tls_dir / "current", tmp = tls_dir / "current.tmp";
  std::filesystem::remove(tmp, ec);
  std::filesystem::create_directory_symlink(gen_dir.filename(), tmp, ec);
  if (!ec) std::filesystem::rename(tmp, link, ec);
  if (ec) return Status::Unavailable("cannot switch '" + link.string() + "': " + ec.message());
  tls_generation = generation;
  // The previous generation may still be being read; older ones are not.
  std::filesystem::remove_all(tls_dir / ("gen-" + std::to_string(generation - 2)), ec);
  return Status::Ok();
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
    auto made = impl_->MakeTlsCredentials(*tls);
    if (!made.ok()) return made.status();
    credentials = std::move(made).value();
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
    if (impl_->tls) {
      std::error_code ec;
      std::filesystem::remove_all(impl_->tls_dir, ec);
    }
    return Status::Unavailable("cannot listen on " + where + ": " + BindFailureReason(host, port));
  }
  impl_->server = std::move(server);
  impl_->port = static_cast<uint16_t>(selected_port);
  log::Info("OTLP/gRPC receiver listening",
            {{"address", GrpcAddress(host, impl_->port)}, {"tls", tls ? "on" : "off"}});
  return Status::Ok();
}

Result<std::shared_ptr<grpc::ServerCredentials>> OtlpGrpcReceiver::Impl::MakeTlsCredentials(
    const net::TlsServerContext& tls) {
  // gRPC 1.51 reloads certificates only through a certificate provider; the one that can change
  // is the file watcher, so the receiver keeps its own copy of the PEMs in a private directory
  // (0700) and SetTls() replaces it (the files the config names may change at any time; the copy
  // changes only when the gateway has checked the new files).
  Impl& g = *this;
  std::error_code ec;
  if (g.context.options.tls_dir.empty()) {
    std::string pattern =
        (std::filesystem::temp_directory_path(ec) / "ordertrace-grpc-tls-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) {
      return Status::Unavailable("cannot create a directory for the gRPC certificate: " +
                                 std::string(std::strerror(errno)));
    }
    g.tls_dir = pattern;
  } else {
    g.tls_dir = g.context.options.tls_dir;
    std::filesystem::create_directories(g.tls_dir, ec);
    if (ec) {
      return Status::Unavailable("cannot create '" + g.tls_dir.string() + "': " + ec.message());
    }
  }
  std::filesystem::permissions(g.tls_dir, std::filesystem::perms::owner_all,
                               std::filesystem::perm_options::replace, ec);
  if (Status s = g.WriteTlsGeneration(tls); !s.ok()) return s;
  const std::filesystem::path current = g.tls_dir / "current";
  const bool mtls = !tls.client_ca_pem().empty();
  g.certificates = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      (current / "key.pem").string(), (current / "cert.pem").string(),
      mtls ? (current / "ca.pem").string() : std::string(), kTlsRefreshSeconds);
  grpc::experimental::TlsServerCredentialsOptions options(g.certificates);
  options.watch_identity_key_cert_pairs();
  if (mtls) {
    options.watch_root_certs();
    options.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  } else {
    options.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  }
  g.tls = true;
  return grpc::experimental::TlsServerCredentials(options);
}

Status OtlpGrpcReceiver::SetTls(std::shared_ptr<const net::TlsServerContext> tls) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  if (!impl_->tls || tls == nullptr || impl_->shut_down) {
    return Status::InvalidArgument(
        "OTLP/gRPC: TLS can be replaced only on a receiver started with TLS");
  }
  return impl_->WriteTlsGeneration(*tls);
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
  if (impl_->tls) {  // the copy of the key is not left behind
    std::error_code ec;
    std::filesystem::remove_all(impl_->tls_dir, ec);
  }
  log::Info("OTLP/gRPC receiver stopped");
}

}  // namespace ordertrace::receive
