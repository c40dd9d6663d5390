#include "gateway/gateway.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>
#include <utility>

#include "api/routes.h"
#include "common/log.h"
#include "forward/forwarder.h"
#include "pipeline/ingest_queue.h"
#include "pipeline/sink_chain.h"
#include "pipeline/span_log_stage.h"
#include "receive/http_server.h"
#include "receive/otlp_receivers.h"
#include "receive/receiver_metrics.h"

#ifndef ORDERTRACE_VERSION
#define ORDERTRACE_VERSION "0.0.0"
#endif

namespace ordertrace::gateway {
namespace {

double NowSeconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

double ResidentBytes() {
  std::ifstream statm("/proc/self/statm");
  uint64_t size = 0, resident = 0;
  if (!(statm >> size >> resident)) return 0;
  return static_cast<double>(resident) * static_cast<double>(::sysconf(_SC_PAGESIZE));
}

double OpenFds() {
  std::error_code ec;
  double n = 0;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    ++n;
  }
  return n;
}

// Creates `dir` (and parents) and checks that the gateway may write there.
Status PrepareDataDir(const std::string& dir) {
  const std::string where = "data directory '" + dir + "' (data_dir / --data)";
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Status::Unavailable("cannot create " + where + ": " + ec.message());
  if (!std::filesystem::is_directory(dir, ec)) {
    return Status::Unavailable("cannot use " + where + ": not a directory");
  }
  if (::access(dir.c_str(), W_OK | X_OK) != 0) {
    return Status::Unavailable("cannot write to " + where + ": " + std::strerror(errno));
  }
  return Status::Ok();
}

forward::ForwarderOptions ForwarderOptionsOf(const config::Config& c) {
  forward::ForwarderOptions o;
  o.exporter.url = c.forward.upstream;
  o.exporter.headers = c.forward.headers;
  o.exporter.timeout = c.forward.timeout;
  o.exporter.gzip = c.forward.gzip;
  o.exporter.ca_file = c.forward.tls.ca_file;
  o.exporter.cert_file = c.forward.tls.cert_file;
  o.exporter.key_file = c.forward.tls.key_file;
  const std::filesystem::path dir = c.forward.queue.dir.empty()
                                        ? std::filesystem::path(c.data_dir) / "forward"
                                        : std::filesystem::path(c.forward.queue.dir);
  o.queue.dir = dir / "queue";
  o.queue.max_bytes = c.forward.queue.max_bytes;
  o.queue.fsync = c.forward.queue.fsync;
  o.queue.retry_after = c.pipeline.retry_after;
  o.dead_letter_dir = dir / "dead-letter";
  o.batch_max_bytes = c.forward.batch.max_bytes;
  o.batch_max_age = c.forward.batch.max_age;
  o.retry_initial = c.forward.retry.initial;
  o.retry_max = c.forward.retry.max;
  o.drain_timeout = c.forward.drain_timeout;
  return o;
}

}  // namespace

const char* Version() { return ORDERTRACE_VERSION; }

void BlockTerminationSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

struct Gateway::Impl {
  api::Readiness readiness;
  std::unique_ptr<receive::ReceiverMetrics> receiver_metrics;
  std::unique_ptr<pipeline::SpanLogStage> span_log;
  std::unique_ptr<pipeline::IngestQueue> queue;
  std::unique_ptr<forward::Forwarder> forwarder;  // null when no upstream is configured
  std::unique_ptr<pipeline::SinkChain> chain;     // queue, then forwarder
  pipeline::BatchSink* sink = nullptr;            // what the receivers hand batches to
  std::unique_ptr<receive::HttpServer> otlp_http;
  std::unique_ptr<receive::OtlpGrpcReceiver> otlp_grpc;
  std::unique_ptr<receive::HttpServer> api;
  bool started = false;
  bool stopped = false;
};

Gateway::Gateway(config::Config config)
    : config_(std::move(config)), impl_(std::make_unique<Impl>()) {}

Gateway::~Gateway() { Stop(); }

const api::Readiness& Gateway::readiness() const { return impl_->readiness; }

uint16_t Gateway::otlp_grpc_port() const { return impl_->otlp_grpc ? impl_->otlp_grpc->port() : 0; }
uint16_t Gateway::otlp_http_port() const { return impl_->otlp_http ? impl_->otlp_http->port() : 0; }
uint16_t Gateway::http_port() const { return impl_->api ? impl_->api->port() : 0; }

Status Gateway::Start() {
  Impl& g = *impl_;
  if (g.started) return Status::Internal("gateway already started");
  g.started = true;

  // Addresses were validated with the config; parse them again for host and port.
  auto grpc_addr = config::ParseHostPort(config_.listen.otlp_grpc);
  auto http_addr = config::ParseHostPort(config_.listen.otlp_http);
  auto api_addr = config::ParseHostPort(config_.listen.http);
  if (!grpc_addr.ok())
    return Status::InvalidArgument("listen.otlp_grpc: " + grpc_addr.status().message());
  if (!http_addr.ok())
    return Status::InvalidArgument("listen.otlp_http: " + http_addr.status().message());
  if (!api_addr.ok()) return Status::InvalidArgument("listen.http: " + api_addr.status().message());

  if (Status s = PrepareDataDir(config_.data_dir); !s.ok()) return s;

  // Process-level metrics.
  registry_
      .AddGauge("ordertrace_build_info", "Always 1; labels say which build is running.",
                {"version"})
      .With({Version()})
      .Set(1);
  const double start_time = NowSeconds();
  registry_.AddGauge("process_start_time_seconds", "Start time of the process, Unix seconds.")
      .With({})
      .Set(start_time);
  registry_.AddCallbackGauge("ordertrace_uptime_seconds", "Seconds since the gateway started.",
                             [start_time] { return NowSeconds() - start_time; });
  registry_.AddCallbackGauge("process_resident_memory_bytes", "Resident memory size in bytes.",
                             ResidentBytes);
  registry_.AddCallbackGauge("process_open_fds", "Open file descriptors.", OpenFds);

  // The pipeline first, so that receivers always have somewhere to hand batches.
  g.receiver_metrics = std::make_unique<receive::ReceiverMetrics>(registry_);
  pipeline::SpanLogOptions log_options;
  log_options.log_spans = config_.log.spans;
  g.span_log = std::make_unique<pipeline::SpanLogStage>(log_options);
  pipeline::IngestQueueOptions queue_options;
  queue_options.max_bytes = config_.pipeline.queue_max_bytes;
  queue_options.retry_after = config_.pipeline.retry_after;
  g.queue = std::make_unique<pipeline::IngestQueue>(
      queue_options, std::vector<pipeline::Stage*>{g.span_log.get()}, registry_);

  g.sink = g.queue.get();
  if (!config_.forward.upstream.empty()) {
    auto forwarder = forward::Forwarder::Start(ForwarderOptionsOf(config_), registry_);
    if (!forwarder.ok()) {
      Stop();
      return Status(forwarder.status().code(),
                    "forwarding (forward.* / --upstream): " + forwarder.status().message());
    }
    g.forwarder = std::move(forwarder).value();
    g.chain = std::make_unique<pipeline::SinkChain>(
        std::vector<pipeline::BatchSink*>{g.queue.get(), g.forwarder.get()});
    g.sink = g.chain.get();
  }

  receive::OtlpReceiverOptions receiver_options;
  receiver_options.limits = config_.limits;
  receiver_options.max_body_bytes = config_.receiver.max_body_bytes;

  // The API listener before the receivers: /healthz answers (and /readyz says "starting")
  // while the rest comes up.
  receive::HttpServerOptions api_options;
  api_options.name = "api";
  api_options.host = api_addr->host;
  api_options.port = api_addr->port;
  api_options.max_body_bytes = 1 << 20;
  api_options.threads = 1;
  g.api = std::make_unique<receive::HttpServer>(api_options);
  api::RegisterRoutes(*g.api, g.readiness, registry_);
  if (Status s = g.api->Start(); !s.ok()) {
    g.api.reset();
    Stop();
    return Status(s.code(), "API/metrics listener (listen.http / --http): " + s.message());
  }

  receive::HttpServerOptions http_options;
  http_options.name = "otlp_http";
  http_options.host = http_addr->host;
  http_options.port = http_addr->port;
  http_options.max_body_bytes = config_.receiver.max_body_bytes;
  http_options.threads = config_.receiver.http_threads;
  g.otlp_http = std::make_unique<receive::HttpServer>(http_options);
  receive::RegisterOtlpHttp(*g.otlp_http, receiver_options, g.sink, g.receiver_metrics.get());
  if (Status s = g.otlp_http->Start(); !s.ok()) {
    g.otlp_http.reset();
    Stop();
    return Status(s.code(), "OTLP/HTTP listener (listen.otlp_http / --otlp-http): " + s.message());
  }

  g.otlp_grpc = std::make_unique<receive::OtlpGrpcReceiver>(receiver_options, g.sink,
                                                            g.receiver_metrics.get());
  if (Status s = g.otlp_grpc->Start(grpc_addr->host, grpc_addr->port); !s.ok()) {
    g.otlp_grpc.reset();
    Stop();
    return Status(s.code(), "OTLP/gRPC listener (listen.otlp_grpc / --otlp-grpc): " + s.message());
  }

  g.readiness.Set(api::Readiness::State::kReady);
  log::Info("ordertrace gateway started",
            {{"version", Version()},
             {"otlp_grpc", config::FormatHostPort({grpc_addr->host, otlp_grpc_port()})},
             {"otlp_http", config::FormatHostPort({http_addr->host, otlp_http_port()})},
             {"http", config::FormatHostPort({api_addr->host, http_port()})},
             {"data_dir", config_.data_dir},
             {"upstream", config_.forward.upstream.empty() ? "off" : config_.forward.upstream},
             {"log_spans", config_.log.spans}});
  return Status::Ok();
}

void Gateway::Stop(std::chrono::milliseconds drain) {
  Impl& g = *impl_;
  if (!g.started || g.stopped) return;
  g.stopped = true;
  const auto began = std::chrono::steady_clock::now();
  g.readiness.Set(api::Readiness::State::kDraining);
  const bool was_serving = g.otlp_http && g.otlp_grpc;
  if (was_serving) log::Info("draining: finishing requests in flight");

  // Both receivers drain at once; each finishes its requests in flight, which may still hand
  // batches to the open queue.
  std::thread grpc_stop;
  if (g.otlp_grpc) grpc_stop = std::thread([&] { g.otlp_grpc->Shutdown(drain); });
  if (g.otlp_http) g.otlp_http->Shutdown(drain);
  if (grpc_stop.joinable()) grpc_stop.join();

  uint64_t queued = 0;
  if (g.queue) {
    queued = g.queue->queued_batches();
    g.queue->Close();  // everything accepted goes through the stages
  }
  if (g.forwarder) g.forwarder->Close();  // sends what it can; the rest stays on disk
  if (g.api) g.api->Shutdown(drain);
  if (was_serving) {
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count();
    log::Info("ordertrace gateway stopped",
              {{"drain_seconds", seconds}, {"batches_drained_from_queue", queued}});
  }
}

Status Gateway::Run() {
  BlockTerminationSignals();
  if (Status s = Start(); !s.ok()) return s;

  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  const timespec tick{0, 200'000'000};  // RequestStop() is noticed within this
  int sig = -1;
  while (!stop_requested_.load()) {
    sig = sigtimedwait(&set, nullptr, &tick);
    if (sig == SIGINT || sig == SIGTERM) break;
  }
  if (sig == SIGINT || sig == SIGTERM) {
    log::Info("signal received, shutting down", {{"signal", sig == SIGINT ? "SIGINT" : "SIGTERM"}});
  } else {
    log::Info("stop requested, shutting down");
  }
  Stop();
  return Status::Ok();
}

}  // namespace ordertrace::gateway
