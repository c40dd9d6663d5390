#include "gateway/gateway.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>

#include "alert/dispatcher.h"
#include "alert/sinks.h"
#include "api/api_guard.h"
#include "api/bearer_authorizer.h"
#include "api/flow_api.h"
#include "api/journey_api.h"
#include "api/kpi_api.h"
#include "api/routes.h"
#include "api/signin.h"
#include "audit/audit_log.h"
#include "auth/oidc_client.h"
#include "broker/monitor.h"
#include "broker/route.h"
#include "common/log.h"
#include "common/rate_limit.h"
#include "common/text_format.h"
#include "common/url.h"
#include "common/values.h"
#include "forward/forwarder.h"
#include "ingest_log/durable_log.h"
#include "ingest_log/log_sink.h"
#include "ingest_log/stage_consumer.h"
#include "jaeger/query_client.h"
#include "jaeger/query_proxy.h"
#include "jaeger/read_back.h"
#include "journey/detector.h"
#include "journey/engine.h"
#include "journey/journey_stage.h"
#include "journey/retention.h"
#include "journey/rules/rules.h"
#include "journey/store/memory/memory_store.h"
#include "journey/store/sqlite/sqlite_store.h"
#include "net/cidr.h"
#include "net/http_server.h"
#include "net/tls.h"
#include "ordertrace/conventions.h"
#include "pipeline/ingest_queue.h"
#include "pipeline/sink_chain.h"
#include "pipeline/span_log_stage.h"
#include "receive/otlp_receivers.h"
#include "receive/receiver_metrics.h"
#include "redact/redacting_decoder.h"
#include "ui/assets.h"
#include "ui/ui_routes.h"

#ifndef ORDERTRACE_VERSION
#define ORDERTRACE_VERSION "0.0.0"
#endif

namespace ordertrace::gateway {
namespace {

// A browser navigating to a page (GET, Accept: text/html), not a script or an API client.
bool IsBrowserPageLoad(const net::HttpRequest& req) {
  return req.method == "GET" && req.Header("accept").find("text/html") != std::string_view::npos &&
         req.Header("authorization").empty();
}

// 302 to /auth/login?return_to=<the page>, which signs in and comes back (the sign-in keeps
// return_to on the gateway's own paths).
void RedirectToSignIn(const net::HttpRequest& req, net::HttpResponse& res) {
  std::string back = req.path;
  if (!req.query.empty()) back += "?" + req.query;
  res.status = 302;
  res.content_type = "text/plain; charset=utf-8";
  res.headers.clear();
  res.headers.emplace_back("Location", "/auth/login?return_to=" + url::PercentEncode(back));
  res.headers.emplace_back("Cache-Control", "no-store");
  res.body = "sign in first: /auth/login\n";
}

// This machine's host name, for links when the API listens on every interface; "" unknown.
std::string HostName() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0) return "";
  return name;
}

// A listener's TLS context, or null when its listen.tls.<name> is off; errors name the key.
Result<std::shared_ptr<const net::TlsServerContext>> LoadListenerTls(
    const config::Config::Listen::Tls& tls, const char* name) {
  if (!tls.enabled()) return std::shared_ptr<const net::TlsServerContext>();
  net::TlsServerOptions o;
  o.cert_file = tls.cert_file;
  o.key_file = tls.key_file;
  o.client_ca_file = tls.client_ca_file;
  o.min_version = tls.min_version == "1.3" ? net::TlsMinVersion::k13 : net::TlsMinVersion::k12;
  auto context = net::TlsServerContext::Create(o);
  if (!context.ok()) {
    return Status(context.status().code(),
                  std::string("listen.tls.") + name + ": " + context.status().message());
  }
  return context;
}

// The ingest authentication ingest.auth configures (validated with the config; Create checks
// again).
Result<std::shared_ptr<const receive::IngestAuthenticator>> IngestAuthOf(const config::Config& c) {
  receive::IngestAuthOptions o;
  const std::string& mode = c.ingest.auth.mode;
  o.mode = mode == "bearer" ? receive::IngestAuthMode::kBearer
           : mode == "mtls" ? receive::IngestAuthMode::kMtls
                            : receive::IngestAuthMode::kNone;
  for (const auto& t : c.ingest.auth.tokens) {
    receive::IngestAuthOptions::Token token;
    token.name = t.name;
    token.sha256 = t.sha256;
    token.services = t.services;
    o.tokens.push_back(std::move(token));
  }
  for (const auto& i : c.ingest.auth.identities) {
    receive::IngestAuthOptions::Identity id;
    id.name = i.name;
    id.subject = i.subject;
    id.services = i.services;
    o.identities.push_back(std::move(id));
  }
  auto auth = receive::IngestAuthenticator::Create(o);
  if (!auth.ok()) return auth.status();
  return std::shared_ptr<const receive::IngestAuthenticator>(
      std::make_shared<receive::IngestAuthenticator>(std::move(auth).value()));
}

// A CIDR list of the config as a set; errors name the key.
Result<std::shared_ptr<const net::CidrSet>> CidrSetOf(const std::vector<std::string>& list,
                                                      const std::string& key) {
  auto set = net::CidrSet::Parse(list);
  if (!set.ok()) return Status::InvalidArgument(key + ": " + set.status().message());
  return std::shared_ptr<const net::CidrSet>(
      std::make_shared<net::CidrSet>(std::move(set).value()));
}

// JWTs from the configured issuer for `audience`: access tokens for the API, ID tokens for the
// sign-in client.
auth::JwtVerifierOptions VerifierOptionsOf(const config::Config::Auth::Oidc& oidc,
                                           const std::string& audience,
                                           std::vector<std::string> accepted_typ) {
  auth::JwtVerifierOptions v;
  v.issuer = oidc.issuer;
  v.audience = audience;
  v.algorithms = oidc.algorithms;
  v.accepted_typ = std::move(accepted_typ);
  v.leeway = std::chrono::duration_cast<std::chrono::seconds>(oidc.leeway);
  return v;
}

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

std::filesystem::path ForwardDirOf(const config::Config& c) {
  return c.forward.queue.dir.empty() ? std::filesystem::path(c.data_dir) / "forward"
                                     : std::filesystem::path(c.forward.queue.dir);
}

ingest_log::LogOptions IngestLogOptionsOf(const config::Config& c) {
  ingest_log::LogOptions o;
  o.dir = c.ingest_log.dir.empty() ? std::filesystem::path(c.data_dir) / "ingest-log"
                                   : std::filesystem::path(c.ingest_log.dir);
  o.max_bytes = c.ingest_log.max_bytes;
  o.segment_bytes = c.ingest_log.segment_bytes;
  o.fsync = c.ingest_log.fsync;
  o.retry_after = c.pipeline.retry_after;
  o.consumers.clear();
  if (c.journeys.enabled) o.consumers.push_back("journeys");
  if (!c.forward.upstream.empty()) o.consumers.push_back("forward");
  return o;
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
  // The forwarder reads the ingest log; its directory keeps the dead letters (and, from before
  // the log, a queue/ that Start() moves into the log).
  o.dead_letter_dir = ForwardDirOf(c) / "dead-letter";
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
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

namespace {

// The rules the config names, or the built-in lifecycle.
Result<std::shared_ptr<const journey::Rules>> LoadJourneyRules(const config::Config& c) {
  if (c.journeys.rules.empty()) {
    return std::shared_ptr<const journey::Rules>(
        std::make_shared<journey::Rules>(journey::DefaultRules()));
  }
  auto rules = journey::LoadRules(c.journeys.rules);
  if (!rules.ok()) return rules.status();
  return std::shared_ptr<const journey::Rules>(
      std::make_shared<journey::Rules>(std::move(rules).value()));
}

journey::Retention RetentionOf(const config::Config& c) {
  journey::Retention r;
  r.closed_orders = c.journeys.retention.closed_orders;
  r.inactive_orders = c.journeys.retention.inactive_orders;
  r.spans = c.journeys.retention.spans;
  return r;
}

// A redactor built from redaction.*.
struct BuiltRedactor {
  std::shared_ptr<const redact::ValueRedactor> redactor;
  std::string created_key_file;  // the default key file, when it was created now
};

// The redactor redaction.* configures, its key files read now (at start and on SIGHUP: this is
// the one place that builds one; RedactingDecoder::SetRedactor puts it in force).  Errors name
// the config key and the file, never a key's contents.  `may_create`: the one-key shorthand's
// file is created (0600) when missing; on a reload it must exist.  `entity_key`: the journeys'
// (never pseudonymised or dropped).  `counters` is shared by every redactor of the gateway.
Result<BuiltRedactor> BuildRedactor(const config::Config::Redaction& r, const std::string& data_dir,
                                    const std::string& entity_key,
                                    std::shared_ptr<redact::RedactionCounters> counters,
                                    bool may_create) {
  BuiltRedactor built;
  std::vector<redact::PseudonymKey> keys;
  if (!r.keys.empty()) {
    for (size_t i = 0; i < r.keys.size(); ++i) {
      auto key = redact::LoadKey(r.keys[i].id, r.keys[i].file);
      if (!key.ok()) {
        return Status(key.status().code(),
                      "redaction.keys[" + std::to_string(i) + "].file: " + key.status().message());
      }
      keys.push_back(std::move(key).value());
    }
  } else {
    const std::string path = r.key_file.empty()
                                 ? (std::filesystem::path(data_dir) / "pseudonym.key").string()
                                 : r.key_file;
    bool created = false;
    auto key = may_create ? redact::LoadOrCreateKey(r.key_id, path, &created)
                          : redact::LoadKey(r.key_id, path);
    if (!key.ok()) {
      return Status(key.status().code(), "redaction.key_file: " + key.status().message());
    }
    if (created) built.created_key_file = path;
    keys.push_back(std::move(key).value());
  }
  auto region = redact::FindPhoneRegion(r.default_region);
  if (!region.ok()) {
    return Status::InvalidArgument("redaction.default_region: " + region.status().message());
  }
  auto pseudonymizer = redact::Pseudonymizer::Create(std::move(keys));
  if (!pseudonymizer.ok()) {
    return Status::InvalidArgument("redaction.keys: " + pseudonymizer.status().message());
  }
  redact::RedactionRules rules;
  rules.scan.region = std::move(region).value();
  rules.pseudonymise_keys.insert(rules.pseudonymise_keys.end(), r.pseudonymise_keys.begin(),
                                 r.pseudonymise_keys.end());
  rules.drop_keys.insert(rules.drop_keys.end(), r.drop_keys.begin(), r.drop_keys.end());
  rules.safe_keys.insert(rules.safe_keys.end(), r.safe_keys.begin(), r.safe_keys.end());
  auto redactor = redact::ValueRedactor::Create(
      std::move(rules), entity_key, std::move(pseudonymizer).value(), std::move(counters),
      r.debug ? redact::DebugLogObserver() : nullptr);
  if (!redactor.ok()) {
    // Name the config list that holds the entity key (it may also be in a built-in list, which
    // the message of Create says).
    auto holds = [&entity_key](const std::vector<std::string>& list) {
      return std::find(list.begin(), list.end(), entity_key) != list.end();
    };
    const std::string where = holds(r.pseudonymise_keys) ? "redaction.pseudonymise_keys: "
                              : holds(r.drop_keys)       ? "redaction.drop_keys: "
                                                         : "";
    return Status(redactor.status().code(), where + redactor.status().message());
  }
  built.redactor = std::move(redactor).value();
  return built;
}

}  // namespace

struct Gateway::Impl {
  api::Readiness readiness;
  // The access audit (null with audit.enabled false); declared before the listeners that record
  // to it, so that it outlives them.
  std::unique_ptr<audit::AuditLog> audit;
  metrics::Family<metrics::Counter>* connections_refused = nullptr;
  std::shared_ptr<const receive::IngestAuthenticator> ingest_auth;

  // Counts and audits a connection (HTTP) or call (gRPC) an allowlist refused.  At most
  // kRefusalsAuditedPerSecond lines per second go to the audit, so that a blocked network
  // cannot fill the disk; the next line says how many were left out (the metric counts all).
  static constexpr int kRefusalsAuditedPerSecond = 20;
  void Refused(const char* listener, const std::string& ip, uint16_t port,
               const std::string& forwarded_for) {
    if (connections_refused) connections_refused->With({listener}).Inc();
    if (!audit) return;
    uint64_t left_out = 0;
    if (!refusal_audits.Admit(&left_out)) return;
    audit::AuditEvent e;
    e.event = "connection_refused";
    e.outcome = "denied";
    e.reason = "not_allowed";
    e.source.ip = ip;
    e.source.port = port;
    e.source.forwarded_for = forwarded_for;
    e.resource = {{"listener", listener}};
    if (left_out > 0) e.resource.emplace_back("refusals_not_audited", std::to_string(left_out));
    audit->Record(e);
  }
  PerSecondLimit refusal_audits{kRefusalsAuditedPerSecond};
  std::function<void(const net::RefusedPeer&)> RefusedHook(const char* listener) {
    return [this, listener](const net::RefusedPeer& p) {
      Refused(listener, p.ip, p.port, p.forwarded_for);
    };
  }
  std::unique_ptr<receive::ReceiverMetrics> receiver_metrics;
  std::unique_ptr<pipeline::SpanLogStage> span_log;
  // Without journeys: the span log's in-memory queue (null with journeys on).
  std::unique_ptr<pipeline::IngestQueue> queue;
  // The durable log of accepted batches (null with neither journeys nor forwarding) and the sink
  // appending to it; before its consumers, which hold it.
  std::unique_ptr<ingest_log::DurableLog> ingest_log;
  // The log's `journeys` consumer once the log is open (null until then): the detector thread
  // reads its horizon (EngineOptions::facts_horizon).
  std::atomic<const ingest_log::DurableLog::Consumer*> journeys_cursor{nullptr};
  std::unique_ptr<ingest_log::LogSink> log_sink;
  std::unique_ptr<forward::Forwarder> forwarder;  // null when no upstream is configured
  std::unique_ptr<pipeline::SinkChain> chain;     // forwarding without journeys: queue, then log
  // The receivers decode every request through it (null with redaction off): only redacted
  // batches reach the sink, so the queue, the journeys and the forwarder never see clear values.
  std::shared_ptr<redact::RedactingDecoder> redacting;
  // ordertrace_redaction_values_total: one set for every redactor, so a key rotation does not
  // reset them.
  std::shared_ptr<redact::RedactionCounters> redaction_counters;
  pipeline::BatchSink* sink = nullptr;  // what the receivers hand batches to
  std::unique_ptr<net::HttpServer> otlp_http;
  std::unique_ptr<receive::OtlpGrpcReceiver> otlp_grpc;
  // API sign-in, before the API server that holds them (declared first, destroyed last): the
  // OIDC client (null without auth.oidc.issuer), the authorizer (AllowAll without it) and the
  // guard every journey/broker route runs behind.
  std::unique_ptr<auth::OidcClient> oidc;
  std::unique_ptr<api::BearerAuthorizer> bearer;  // null without auth.oidc
  // Browser sign-in (null without auth.signin.client_id): its verifier, then the flow.
  std::unique_ptr<api::OidcSignInVerifier> signin_verifier;
  std::unique_ptr<auth::BrowserSignIn> signin;
  std::unique_ptr<api::Authorizer> authorizer;
  std::unique_ptr<api::ApiGuard> guard;
  // Reads orders' traces back from Jaeger (null without jaeger.query_url); shared with the
  // journey API's handler, which keeps it alive while it runs.
  std::shared_ptr<const jaeger::QueryClient> jaeger_query;
  // Jaeger's query service under /jaeger/ (answers 404 without jaeger.query_url); before the
  // API server, whose handlers hold it.
  std::unique_ptr<jaeger::QueryProxy> jaeger_proxy;
  // The web UI's files (null: none, /ui/ says so).
  std::shared_ptr<const ui::UiAssets> ui;
  std::unique_ptr<net::HttpServer> api;
  // Journeys (null when journeys.enabled is false).
  SystemClock clock;
  // RabbitMQ health (null without broker.management_url); before the alerts and the engine,
  // which hold it as their BrokerView, so that it outlives them.
  std::unique_ptr<broker::BrokerMonitor> broker;
  std::unique_ptr<journey::JourneyStore> store;
  // Alerts (null when no sink is configured); declared before the engine, which holds it as a
  // listener, so that it outlives it.
  std::unique_ptr<alert::AlertDispatcher> alerts;
  std::unique_ptr<journey::Engine> engine;
  std::unique_ptr<journey::JourneyStage> journey_stage;
  std::unique_ptr<journey::RetentionTask> retention;
  // The log's `journeys` consumer: the span log and the journey stage (after both: stopped first).
  std::unique_ptr<ingest_log::StageConsumer> journeys_consumer;
  bool started = false;
  bool stopped = false;
};

Gateway::Gateway(config::Config config)
    : config_(std::move(config)), impl_(std::make_unique<Impl>()) {}

Gateway::~Gateway() { Stop(); }

const api::Readiness& Gateway::readiness() const { return impl_->readiness; }

audit::AuditLog* Gateway::audit_log() const { return impl_->audit.get(); }

uint16_t Gateway::otlp_grpc_port() const { return impl_->otlp_grpc ? impl_->otlp_grpc->port() : 0; }
uint16_t Gateway::otlp_http_port() const { return impl_->otlp_http ? impl_->otlp_http->port() : 0; }
uint16_t Gateway::http_port() const { return impl_->api ? impl_->api->port() : 0; }

Status Gateway::Start() {
  Impl& g = *impl_;
  if (g.started) return Status::Internal("gateway already started");
  g.started = true;

  // Addresses were validated with the config; parse them again for host and port.
  auto grpc_addr = ParseHostPort(config_.listen.otlp_grpc);
  auto http_addr = ParseHostPort(config_.listen.otlp_http);
  auto api_addr = ParseHostPort(config_.listen.http);
  if (!grpc_addr.ok())
    return Status::InvalidArgument("listen.otlp_grpc: " + grpc_addr.status().message());
  if (!http_addr.ok())
    return Status::InvalidArgument("listen.otlp_http: " + http_addr.status().message());
  if (!api_addr.ok()) return Status::InvalidArgument("listen.http: " + api_addr.status().message());
  if (Status s = config::CheckListenerExposure(config_); !s.ok()) return s;
  auto api_tls = LoadListenerTls(config_.listen.tls.http, "http");
  if (!api_tls.ok()) return api_tls.status();
  auto http_tls = LoadListenerTls(config_.listen.tls.otlp_http, "otlp_http");
  if (!http_tls.ok()) return http_tls.status();
  auto grpc_tls = LoadListenerTls(config_.listen.tls.otlp_grpc, "otlp_grpc");
  if (!grpc_tls.ok()) return grpc_tls.status();
  auto ingest_auth = IngestAuthOf(config_);
  if (!ingest_auth.ok()) return ingest_auth.status();
  g.ingest_auth = *ingest_auth;
  auto allow_api = CidrSetOf(config_.listen.allow.http, "listen.allow.http");
  if (!allow_api.ok()) return allow_api.status();
  auto allow_http = CidrSetOf(config_.listen.allow.otlp_http, "listen.allow.otlp_http");
  if (!allow_http.ok()) return allow_http.status();
  auto allow_grpc = CidrSetOf(config_.listen.allow.otlp_grpc, "listen.allow.otlp_grpc");
  if (!allow_grpc.ok()) return allow_grpc.status();
  auto trusted = CidrSetOf(config_.listen.trusted_proxies, "listen.trusted_proxies");
  if (!trusted.ok()) return trusted.status();

  if (Status s = PrepareDataDir(config_.data_dir); !s.ok()) return s;
  if (config_.audit.enabled) {
    const std::string path = config_.audit.file.empty()
                                 ? (std::filesystem::path(config_.data_dir) / "audit.log").string()
                                 : config_.audit.file;
    auto audit = audit::AuditLog::Open(path, &registry_);
    if (!audit.ok()) return audit.status();
    g.audit = std::move(audit).value();
  }
  g.connections_refused = &registry_.AddCounter(
      "ordertrace_connections_refused_total",
      "Connections (HTTP) and calls (gRPC) refused by the listener's allowlist (listen.allow.*).",
      {"listener"});

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

  // The broker monitor before the journeys: the alert dispatcher and the API diagnose with it.
  if (!config_.broker.management_url.empty()) {
    auto password = config::BrokerPassword(config_.broker);
    if (!password.ok()) {
      Stop();
      return password.status();
    }
    broker::MonitorOptions o;
    o.management.url = config_.broker.management_url;
    o.management.user = config_.broker.user;
    o.management.password = std::move(password).value();
    o.management.vhost = config_.broker.vhost;
    o.management.timeout = config_.broker.timeout;
    o.interval = config_.broker.interval;
    g.broker = std::make_unique<broker::BrokerMonitor>(std::move(o), g.clock, &registry_);
  }

  // Journeys before the pipeline: rules, store, then the engine recovers its deadlines.
  std::string rules_source = "off";
  if (config_.journeys.enabled) {
    if (Status s = StartJourneys(); !s.ok()) {
      Stop();
      return s;
    }
    rules_source = g.engine->rules()->source;
  }

  // The pipeline first, so that receivers always have somewhere to hand batches.
  g.receiver_metrics = std::make_unique<receive::ReceiverMetrics>(registry_);
  pipeline::SpanLogOptions log_options;
  log_options.log_spans = config_.log.spans;
  g.span_log = std::make_unique<pipeline::SpanLogStage>(log_options);
  if (Status s = StartPipeline(); !s.ok()) {
    Stop();
    return s;
  }
  if (config_.redaction.enabled) {
    if (Status s = StartRedaction(); !s.ok()) {
      Stop();
      return s;
    }
  }

  if (Status s = StartSignIn(); !s.ok()) {
    Stop();
    return s;
  }

  // Jaeger's query service (jaeger.query_url): the client reading orders' traces back.
  if (!config_.jaeger.query_url.empty()) {
    jaeger::QueryClientOptions o;
    o.query_url = config_.jaeger.query_url;
    o.timeout = config_.jaeger.timeout;
    o.max_response_bytes = config_.jaeger.max_response_bytes;
    o.ca_file = config_.jaeger.ca_file;
    auto client = jaeger::QueryClient::Create(std::move(o));
    if (!client.ok()) {
      Stop();
      return Status(client.status().code(), "jaeger.*: " + client.status().message());
    }
    g.jaeger_query = std::move(client).value();
  }

  receive::OtlpReceiverOptions receiver_options;
  receiver_options.limits = config_.limits;
  receiver_options.max_body_bytes = config_.receiver.max_body_bytes;
  receiver_options.auth = g.ingest_auth;
  receiver_options.allow = *allow_grpc;  // used by the gRPC receiver only
  receiver_options.on_refused = [&g](const std::string& ip, uint16_t port) {
    g.Refused("otlp_grpc", ip, port, "");
  };
  receiver_options.tls_dir =
      (std::filesystem::path(config_.data_dir) / "tls" / "otlp_grpc").string();
  receiver_options.decoder = g.redacting;

  // The web UI's files: ui.dir (read now, all of it) or the ones compiled in (none with
  // ORDERTRACE_UI=OFF).
  if (!config_.ui.dir.empty()) {
    auto assets = ui::LoadUiDir(config_.ui.dir);
    if (!assets.ok()) {
      Stop();
      return Status(assets.status().code(), "ui.dir / --ui-dir: " + assets.status().message());
    }
    g.ui = std::move(assets).value();
  } else {
    g.ui = ui::EmbeddedUi();
  }
  if (g.ui) {
    log::Info("web UI at /ui/",
              {{"source", g.ui->source()}, {"files", static_cast<uint64_t>(g.ui->file_count())}});
  }

  // The API listener before the receivers: /healthz answers (and /readyz says "starting")
  // while the rest comes up.
  net::HttpServerOptions api_options;
  api_options.name = "api";
  api_options.host = api_addr->host;
  api_options.port = api_addr->port;
  api_options.max_body_bytes = 1 << 20;
  // One thread serves the API; with browser sign-in, a sign-in's code exchange waits for the
  // IdP's token endpoint on a request thread (bounded by its timeout and by
  // max_concurrent_exchanges), so a few more keep the API answering meanwhile.
  // A read-back from Jaeger (?include=jaeger) waits for Jaeger the same way (jaeger.timeout).
  api_options.threads = config_.auth.signin.enabled() || !config_.jaeger.query_url.empty() ? 4 : 1;
  // Each request to /jaeger/ holds a thread while Jaeger answers: as many more as may wait.
  jaeger::QueryProxyOptions jaeger_options;
  jaeger_options.query_url = config_.jaeger.query_url;
  jaeger_options.timeout = config_.jaeger.timeout;
  jaeger_options.max_response_bytes = config_.jaeger.max_response_bytes;
  jaeger_options.ca_file = config_.jaeger.ca_file;
  if (!jaeger_options.query_url.empty()) api_options.threads += jaeger_options.max_concurrent;
  auto jaeger_proxy = jaeger::QueryProxy::Create(jaeger_options, &registry_);
  if (!jaeger_proxy.ok()) {
    Stop();
    return jaeger_proxy.status();
  }
  g.jaeger_proxy = std::move(jaeger_proxy).value();
  api_options.tls = *api_tls;
  api_options.hsts = true;
  api_options.security_headers = true;
  api_options.allow = *allow_api;
  api_options.trusted_proxies = *trusted;
  api_options.on_refused = g.RefusedHook("http");
  g.api = std::make_unique<net::HttpServer>(api_options);
  api::RegisterRoutes(*g.api, g.readiness, registry_, config_.auth.metrics_token_sha256,
                      g.ui != nullptr);
  if (g.signin) g.signin->Register(*g.api);
  api::RegisterMeRoute(*g.api, *g.guard, g.bearer ? &g.bearer->roles() : nullptr);
  if (g.engine) {
    api::JourneyApiOptions journey_api;
    journey_api.jaeger_ui = config::JaegerLinkBase(config_, HostName());
    if (g.jaeger_query) {
      // ?include=jaeger: the order's traces as Jaeger holds them (the lambda keeps the client).
      metrics::Family<metrics::Counter>* traces = &registry_.AddCounter(
          "ordertrace_jaeger_read_back_traces_total",
          "Traces of orders read back from Jaeger (?include=jaeger), by outcome: found, missing "
          "(Jaeger does not hold it), failed (or not asked: time or size budget spent), "
          "left_out (over the 20 newest).",
          {"outcome"});
      journey_api.jaeger_read_back = [client = g.jaeger_query,
                                      traces](const journey::Journey& journey) {
        nlohmann::json r = jaeger::ReadBack(*client, journey);
        traces->With({"found"}).Inc(r["traces"].size());
        traces->With({"missing"}).Inc(r["missing"].size());
        traces->With({"failed"}).Inc(r["failed"].size());
        traces->With({"left_out"}).Inc(r["left_out"].size());
        if (r["error"].is_string()) {
          log::Warn("order's traces not read back from Jaeger",
                    {{"order_id", journey.order.order_id},
                     {"failed", static_cast<uint64_t>(r["failed"].size())},
                     {"error", r["error"].get<std::string>()}});
        }
        return r;
      };
    }
    journey_api.max_spans = config_.journeys.max_spans_per_view;
    journey_api.broker = g.broker.get();
    if (g.redacting) {
      // The redactor's current key set, for ?partner= (a key rotation swaps the redactor; the
      // aliasing pointer keeps the redactor it came from alive).
      journey_api.pseudonymizer = [&g]() -> std::shared_ptr<const redact::Pseudonymizer> {
        std::shared_ptr<const redact::ValueRedactor> r = g.redacting->redactor();
        if (!r) return nullptr;
        return {r, &r->pseudonymizer()};
      };
    }
    // GET /api/v1/summary's totals of the receivers and the alert dispatcher.
    journey_api.spans_accepted_total = [m = g.receiver_metrics.get()] {
      return std::optional<uint64_t>(m->accepted_total());
    };
    journey_api.alerts_sent_total = [d = g.alerts.get()] {
      return d != nullptr ? std::optional<uint64_t>(d->sent_total()) : std::nullopt;
    };
    api::RegisterJourneyRoutes(*g.api, *g.engine, *g.guard, journey_api);
    api::RegisterFlowRoute(*g.api, *g.engine, *g.guard, g.broker.get());
    api::RegisterKpiRoute(*g.api, *g.engine, *g.guard);
  }
  std::function<std::string()> broker_json;
  if (g.broker) {
    broker::BrokerMonitor* monitor = g.broker.get();
    broker_json = [monitor] { return monitor->StatusJson(); };
  }
  api::RegisterBrokerRoute(*g.api, *g.guard, std::move(broker_json));
  // Behind the guard even when not configured: the 404 saying so is for signed-in users.  With
  // browser sign-in, a signed-out browser opening one of Jaeger's pages (not its API) is sent to
  // sign in and back (the guard's 401 is still audited); API clients keep the 401.
  const bool browser_signin = g.signin != nullptr;
  jaeger::RegisterQueryProxy(
      *g.api, *g.jaeger_proxy,
      [&g, browser_signin](std::string route, jaeger::ProxyDescriber describe,
                           jaeger::ProxyHandler handler) -> net::HttpHandler {
        net::HttpHandler guarded =
            g.guard->Wrap(std::move(route), "traces.read", std::move(describe), std::move(handler));
        if (!browser_signin) return guarded;
        return [guarded = std::move(guarded)](net::HttpRequest& req, net::HttpResponse& res) {
          guarded(req, res);
          if (res.status == 401 && IsBrowserPageLoad(req) &&
              !req.path.starts_with("/jaeger/api/")) {
            RedirectToSignIn(req, res);
          }
        };
      });
  // The web UI: as open as the API (the same authorizer, action orders.list, which every role
  // that can sign in has).  With browser sign-in, a signed-out browser opening a page is sent to
  // sign in and back to it; everything else (assets, scripts) gets the 401.  Not audited: the UI's
  // files hold no data, and the API calls they make are audited each.
  ui::UiRouteOptions ui_options;
  ui_options.assets = g.ui;
  ui_options.gate = [&g, browser_signin](const net::HttpRequest& req, net::HttpResponse& res) {
    const api::AuthResult r = g.authorizer->Authorize(req, "orders.list");
    if (r.allowed()) return true;
    if (browser_signin && r.status == 401 && IsBrowserPageLoad(req) &&
        !req.path.starts_with("/ui/assets/")) {
      RedirectToSignIn(req, res);
      return false;
    }
    res.status = r.status;
    res.content_type = "text/plain; charset=utf-8";
    res.headers.emplace_back("Cache-Control", "no-store");
    if (r.status == 401) {
      res.body = browser_signin ? "sign in first: /auth/login\n"
                                : "the web UI needs browser sign-in, which this gateway does not "
                                  "offer (auth.signin; docs/security.md)\n";
    } else {
      res.body = r.status == 403 ? "your roles do not include the web UI\n"
                                 : "sign-in is not available yet\n";
    }
    return false;
  };
  if (g.signin_verifier) {
    // The logout form's redirect to the provider must pass the UI's CSP (form-action).
    ui_options.end_session_url = [&g]() -> std::string {
      auto endpoints = g.signin_verifier->Endpoints();
      return endpoints.ok() ? endpoints->end_session : std::string();
    };
  }
  ui::RegisterUiRoutes(*g.api, std::move(ui_options));
  if (Status s = g.api->Start(); !s.ok()) {
    g.api.reset();
    Stop();
    return Status(s.code(), "API/metrics listener (listen.http / --http): " + s.message());
  }

  net::HttpServerOptions http_options;
  http_options.name = "otlp_http";
  http_options.host = http_addr->host;
  http_options.port = http_addr->port;
  http_options.max_body_bytes = config_.receiver.max_body_bytes;
  http_options.threads = config_.receiver.http_threads;
  http_options.loop_per_thread = true;  // the OTLP handler never blocks (docs/benchmarks.md)
  http_options.tls = *http_tls;
  http_options.allow = *allow_http;
  http_options.trusted_proxies = *trusted;
  http_options.on_refused = g.RefusedHook("otlp_http");
  g.otlp_http = std::make_unique<net::HttpServer>(http_options);
  receive::RegisterOtlpHttp(*g.otlp_http, receiver_options, g.sink, g.receiver_metrics.get());
  if (Status s = g.otlp_http->Start(); !s.ok()) {
    g.otlp_http.reset();
    Stop();
    return Status(s.code(), "OTLP/HTTP listener (listen.otlp_http / --otlp-http): " + s.message());
  }

  g.otlp_grpc = std::make_unique<receive::OtlpGrpcReceiver>(receiver_options, g.sink,
                                                            g.receiver_metrics.get());
  if (Status s = g.otlp_grpc->Start(grpc_addr->host, grpc_addr->port, *grpc_tls); !s.ok()) {
    g.otlp_grpc.reset();
    Stop();
    return Status(s.code(), "OTLP/gRPC listener (listen.otlp_grpc / --otlp-grpc): " + s.message());
  }

  // Readiness does not wait for the broker: a broker outage must not take the gateway (and the
  // spans that tell about the outage) out of service.
  if (g.broker) g.broker->Start();
  g.readiness.Set(api::Readiness::State::kReady);
  log::Info(
      "ordertrace gateway started",
      {{"version", Version()},
       {"otlp_grpc", FormatHostPort({grpc_addr->host, otlp_grpc_port()})},
       {"otlp_http", FormatHostPort({http_addr->host, otlp_http_port()})},
       {"http", FormatHostPort({api_addr->host, http_port()})},
       {"data_dir", config_.data_dir},
       {"upstream", config_.forward.upstream.empty() ? "off" : config_.forward.upstream},
       {"journeys", rules_source},
       {"broker", g.broker ? g.broker->broker() : std::string("off")},
       {"sign_in", config_.auth.oidc.enabled() ? config_.auth.oidc.issuer : std::string("off")},
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
  // The log's consumers catch up (each within its drain timeout); what they leave stays on disk.
  if (g.journey_stage) g.journey_stage->EndDelays();     // a drill's apply_delay: not at shutdown
  if (g.journeys_consumer) g.journeys_consumer->Stop();  // applies and acknowledges what it read
  if (g.forwarder) g.forwarder->Close();  // sends what it can; the rest stays on disk
  if (g.ingest_log) g.ingest_log->Close();
  if (g.api) g.api->Shutdown(drain);
  if (g.oidc) g.oidc->Stop();
  if (g.retention) g.retention->Stop();
  if (g.journey_stage) g.journey_stage->Stop();  // spans still waiting for their ancestor
  if (g.engine) g.engine->StopDetector();        // the queue is drained: every fact is applied
  if (g.broker) g.broker->Stop();                // before the alerts: its transitions go to them
  // After the detector: flags and clears it raised until now are sent (within a bound).
  if (g.alerts) g.alerts->Stop();
  if (was_serving) {
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count();
    log::Info("ordertrace gateway stopped",
              {{"drain_seconds", seconds}, {"batches_drained_from_queue", queued}});
  }
}

Status Gateway::StartSignIn() {
  Impl& g = *impl_;
  const config::Config::Auth& a = config_.auth;
  if (!a.oidc.enabled()) {
    g.authorizer = std::make_unique<api::AllowAll>();
  } else {
    auto verifier =
        auth::JwtVerifier::Create(VerifierOptionsOf(a.oidc, a.oidc.audience, a.oidc.accepted_typ));
    if (!verifier.ok()) return Status::InvalidArgument("auth.oidc." + verifier.status().message());
    auth::RoleOptions r;
    r.claims = a.roles.claims;
    r.client = a.roles.client;
    r.map = a.roles.map;
    r.allowed = a.roles.allowed;
    r.actions = a.roles.actions;
    auto roles = auth::RoleMapper::Create(r);
    if (!roles.ok()) return Status::InvalidArgument("auth.roles." + roles.status().message());
    auth::OidcClientOptions o;
    o.issuer = a.oidc.issuer;
    o.allow_insecure_loopback = a.oidc.allow_insecure_loopback;
    o.ca_file = a.oidc.ca_file;
    o.cooldown = a.oidc.jwks_cooldown;
    o.max_age = a.oidc.jwks_max_age;
    auto client = auth::OidcClient::Create(o, g.clock, &registry_);
    if (!client.ok()) {
      return Status(client.status().code(), "auth.oidc: " + client.status().message());
    }
    g.oidc = std::move(client).value();
    // The first fetch runs on the client's worker: the API serves (503 on its protected routes)
    // while the IdP is down, and recovers when it answers, without a restart.
    g.oidc->Start();
    g.bearer = std::make_unique<api::BearerAuthorizer>(std::move(verifier).value(),
                                                       std::move(roles).value(), *g.oidc, g.clock);
    if (a.signin.enabled()) {
      if (Status s = StartBrowserSignIn(); !s.ok()) return s;
      g.authorizer = std::make_unique<api::SessionAuthorizer>(*g.signin, *g.bearer);
    } else {
      g.authorizer = std::make_unique<api::BearerAuthorizer>(*g.bearer);
    }
  }
  g.guard = std::make_unique<api::ApiGuard>(*g.authorizer, g.audit.get(), &registry_);
  return Status::Ok();
}

std::string Gateway::EntityKey() const {
  const Impl& g = *impl_;
  return g.engine ? g.engine->rules()->entity_key : std::string(kOrderIdKey);
}

Status Gateway::StartRedaction() {
  Impl& g = *impl_;
  const config::Config::Redaction& r = config_.redaction;
  g.redaction_counters = std::make_shared<redact::RedactionCounters>(registry_);
  auto built = BuildRedactor(r, config_.data_dir, EntityKey(), g.redaction_counters,
                             /*may_create=*/true);
  if (!built.ok()) return built.status();
  if (!built->created_key_file.empty()) {
    log::Warn(
        "redaction: no pseudonymisation key was configured; created one (keep it, and back "
        "it up: pseudonyms made with it can be looked up only while it exists)",
        {{"key_file", built->created_key_file}, {"key_id", r.key_id}});
  }
  if (r.debug && !log::Enabled(log::Level::kDebug)) {
    log::Warn("redaction.debug is on but log.level is not debug: nothing will show");
  }
  g.redacting = std::make_shared<redact::RedactingDecoder>(built->redactor, &registry_);
  const std::vector<std::string> key_ids = built->redactor->pseudonymizer().key_ids();
  log::Info(
      "redaction on",
      {{"current_key_id", key_ids.front()}, {"key_ids", Join(key_ids, ",")}, {"debug", r.debug}});
  return Status::Ok();
}

Status Gateway::ReloadRedaction() {
  Impl& g = *impl_;
  // The redactor in force (SetRedactor below is the one place it changes).
  const std::shared_ptr<const redact::ValueRedactor> current =
      g.redacting ? g.redacting->redactor() : nullptr;
  if (!current) return Status::InvalidArgument("redaction is off (redaction.enabled)");
  config::Config::Redaction r = config_.redaction;
  auto build = [&]() -> Result<BuiltRedactor> {
    if (config_loader_) {
      auto fresh = config_loader_();
      if (!fresh.ok()) {
        return Status(fresh.status().code(), "config file: " + fresh.status().message());
      }
      if (fresh->redaction.enabled != r.enabled) {
        log::Warn("redaction.enabled changed: that takes a restart; the rest is reloaded");
      }
      r = fresh->redaction;
      r.enabled = config_.redaction.enabled;
    }
    return BuildRedactor(r, config_.data_dir, EntityKey(), g.redaction_counters,
                         /*may_create=*/false);
  };
  Result<BuiltRedactor> built = build();
  const std::vector<std::string> previous = current->pseudonymizer().key_ids();
  audit::AuditEvent e;
  e.event = "redaction_keys_reloaded";
  if (!built.ok()) {
    e.outcome = "error";
    e.reason = "invalid_keys";
    e.resource = {{"key_ids_in_force", Join(previous, ",")}};
    if (g.audit) g.audit->Record(e);
    return built.status();
  }
  // A key whose id stayed but whose file now holds another secret: its old pseudonyms can no
  // longer be looked up or reproduced (a new key wants a new id).
  const std::vector<std::string> key_ids = built->redactor->pseudonymizer().key_ids();
  const auto before = current->pseudonymizer().AllPseudonyms("probe", "");
  const auto after = built->redactor->pseudonymizer().AllPseudonyms("probe", "");
  for (size_t i = 0; i < previous.size() && i < before.size(); ++i) {
    for (size_t j = 0; j < key_ids.size() && j < after.size(); ++j) {
      if (previous[i] == key_ids[j] && before[i] != after[j]) {
        log::Warn("redaction: the file of key " + previous[i] +
                  " now holds another key; pseudonyms made before cannot be looked up any more "
                  "(give a new key a new id)");
        e.reason = "key_replaced";
      }
    }
  }
  g.redacting->SetRedactor(built->redactor);  // the one place the new redactor goes
  config_.redaction = r;
  const bool rotated = previous.empty() || previous.front() != key_ids.front();
  const bool changed = previous != key_ids || !e.reason.empty();
  if (e.reason.empty()) e.reason = rotated ? "rotated" : "keys_changed";
  e.resource = {{"current_key_id", key_ids.front()},
                {"key_ids", Join(key_ids, ",")},
                {"previous_key_ids", Join(previous, ",")}};
  // The SIGHUP's config_reload line covers a reload that changed nothing.
  if (g.audit && changed) g.audit->Record(e);
  log::Info(rotated ? "redaction keys rotated: new pseudonyms use the new current key"
                    : "redaction keys reloaded",
            {{"current_key_id", key_ids.front()},
             {"key_ids", Join(key_ids, ",")},
             {"previous_key_ids", Join(previous, ",")}});
  return Status::Ok();
}

Status Gateway::StartBrowserSignIn() {
  Impl& g = *impl_;
  const config::Config::Auth& a = config_.auth;
  auto secret = config::SigninClientSecret(a.signin);
  if (!secret.ok()) return secret.status();
  // ID tokens: the same keys and issuer, for this client, typ JWT or none (OIDC Core).
  auto id_tokens =
      auth::JwtVerifier::Create(VerifierOptionsOf(a.oidc, a.signin.client_id, {"", "JWT"}));
  if (!id_tokens.ok())
    return Status::InvalidArgument("auth.signin: " + id_tokens.status().message());
  g.signin_verifier = std::make_unique<api::OidcSignInVerifier>(
      *g.oidc, std::move(id_tokens).value(), *g.bearer, g.clock, a.signin.client_id);
  auth::SignInOptions o;
  o.client_id = a.signin.client_id;
  o.client_secret = std::move(secret).value();
  o.redirect_uri = a.signin.redirect_uri;
  o.post_logout_redirect_uri = a.signin.post_logout_redirect_uri;
  o.scope = a.signin.scope;
  o.resource = a.signin.resource;
  if (!a.oidc.ca_file.empty()) {
    net::TlsOptions t;
    t.ca_file = a.oidc.ca_file;
    auto tls = net::TlsClientContext::Create(t);
    if (!tls.ok()) return Status::InvalidArgument("auth.oidc.ca_file: " + tls.status().message());
    o.tls = std::move(tls).value();
  }
  o.session.idle_timeout = a.signin.idle_timeout;
  o.session.absolute_timeout = a.signin.absolute_timeout;
  g.signin = std::make_unique<auth::BrowserSignIn>(std::move(o), *g.signin_verifier, g.clock,
                                                   g.audit.get(), &registry_);
  g.signin->Start();
  return Status::Ok();
}

// Receivers → sink.  With neither journeys nor forwarding: the in-memory IngestQueue and the
// span log, as before the log existed.  Otherwise the durable ingest log: with journeys its
// `journeys` consumer runs the span log and the journey stage; forwarding without journeys keeps
// the span log's in-memory queue in front of the log (a batch the log then refuses is logged
// twice when the client retries, never forwarded twice).
Status Gateway::StartPipeline() {
  Impl& g = *impl_;
  pipeline::IngestQueueOptions queue_options;
  queue_options.max_bytes = config_.pipeline.queue_max_bytes;
  queue_options.retry_after = config_.pipeline.retry_after;
  const bool forwarding = !config_.forward.upstream.empty();
  if (!g.journey_stage && !forwarding) {
    g.queue = std::make_unique<pipeline::IngestQueue>(
        queue_options, std::vector<pipeline::Stage*>{g.span_log.get()}, registry_);
    g.sink = g.queue.get();
    return Status::Ok();
  }

  const ingest_log::LogOptions log_options = IngestLogOptionsOf(config_);
  ingest_log::RecoveryReport report;
  auto log = ingest_log::DurableLog::Open(log_options, &report);
  if (!log.ok()) {
    return Status(log.status().code(),
                  "ingest log (ingest_log.dir / --data): " + log.status().message());
  }
  g.ingest_log = std::move(log).value();
  g.ingest_log->RegisterMetrics(registry_);
  if (config_.journeys.enabled) {
    g.journeys_cursor.store(g.ingest_log->consumer("journeys"), std::memory_order_release);
  }
  if (report.records > 0 || report.torn_records > 0) {
    log::Info("ingest log recovered", {{"dir", log_options.dir.string()},
                                       {"records", report.records},
                                       {"bytes", report.bytes},
                                       {"torn_records_dropped", report.torn_records},
                                       {"torn_bytes_dropped", report.torn_bytes}});
  }
  g.log_sink = std::make_unique<ingest_log::LogSink>(*g.ingest_log);

  const std::filesystem::path old_queue = ForwardDirOf(config_) / "queue";
  std::error_code ec;
  if (std::filesystem::exists(old_queue, ec) &&
      !std::filesystem::equivalent(old_queue, log_options.dir, ec)) {
    if (forwarding) {
      auto moved = ingest_log::ImportForwardQueue(old_queue, *g.ingest_log);
      if (!moved.ok()) {
        // The rest stays where it was and is moved at the next start.
        log::Warn("old forward queue not fully moved into the ingest log",
                  {{"error", moved.status().message()}});
      }
    } else {
      log::Warn("an old forward queue is on disk but forwarding is off; it is left there",
                {{"dir", old_queue.string()}});
    }
  }

  if (forwarding) {
    auto forwarder = forward::Forwarder::Start(ForwarderOptionsOf(config_),
                                               *g.ingest_log->consumer("forward"), registry_);
    if (!forwarder.ok()) {
      return Status(forwarder.status().code(),
                    "forwarding (forward.* / --upstream): " + forwarder.status().message());
    }
    g.forwarder = std::move(forwarder).value();
  }
  if (g.journey_stage) {
    ingest_log::StageConsumerOptions o;
    o.limits = config_.limits;
    o.drain_timeout = config_.forward.drain_timeout;
    g.journeys_consumer = std::make_unique<ingest_log::StageConsumer>(
        *g.ingest_log->consumer("journeys"),
        std::vector<pipeline::Stage*>{g.span_log.get(), g.journey_stage.get()}, o, registry_);
    g.journeys_consumer->Start();
    g.sink = g.log_sink.get();
  } else {
    g.queue = std::make_unique<pipeline::IngestQueue>(
        queue_options, std::vector<pipeline::Stage*>{g.span_log.get()}, registry_);
    g.chain = std::make_unique<pipeline::SinkChain>(
        std::vector<pipeline::BatchSink*>{g.queue.get(), g.log_sink.get()});
    g.sink = g.chain.get();
  }
  return Status::Ok();
}

Status Gateway::StartJourneys() {
  Impl& g = *impl_;
  auto rules = LoadJourneyRules(config_);
  if (!rules.ok()) {
    return Status(rules.status().code(),
                  "journey rules (journeys.rules / --rules): " + rules.status().message());
  }
  if (config_.journeys.store == "memory") {
    g.store = journey::NewMemoryStore();
  } else {
    journey::SqliteStoreOptions o;
    o.path = config_.journeys.sqlite_path.empty()
                 ? (std::filesystem::path(config_.data_dir) / "journeys.db").string()
                 : config_.journeys.sqlite_path;
    o.cache_mb = static_cast<int>(config_.journeys.sqlite_cache_bytes >> 20);
    auto store = journey::OpenSqliteStore(o);
    if (!store.ok()) {
      return Status(store.status().code(),
                    "journey store (journeys.sqlite_path / --data): " + store.status().message());
    }
    g.store = std::move(store).value();
  }
  const config::Config::Journeys::Attribution& ac = config_.journeys.attribution;
  const Duration grace = (*rules)->grace;
  if (ac.enabled && ac.wait.count() > 0 && ac.wait >= grace) {
    return Status::InvalidArgument(
        "journeys.attribution.wait (" + std::to_string(ac.wait.count()) +
        " ms) must be shorter than the rules' grace (" + std::to_string(grace.count()) +
        " ms): a span that waits for its ancestor would be attributed after its order was "
        "flagged");
  }
  // Unset: 10 s (the SDKs' batch processors export every 5 s), or half the grace if shorter.
  const Duration wait = ac.wait.count() > 0 ? ac.wait : std::min(Duration(10000), grace / 2);
  journey::EngineOptions engine_options;
  engine_options.settle = std::chrono::seconds(1);  // see EngineOptions::settle
  // Deadlines are judged only up to the journeys consumer's place in the ingest log: a backlog
  // there (a slow store, journeys.apply_delay, the replay after a restart) delays flags instead
  // of flagging orders whose moving-on spans are still in the log.  Nothing is judged before
  // the log is open.
  engine_options.facts_horizon = [cursor = &g.journeys_cursor]() -> Nanos {
    const ingest_log::DurableLog::Consumer* c = cursor->load(std::memory_order_acquire);
    if (c == nullptr) return journey::Detector::kHorizonUnknown;
    const int64_t ms = c->horizon_unix_ms();
    if (ms == ingest_log::DurableLog::Consumer::kCaughtUp) return journey::Detector::kCaughtUp;
    if (ms == ingest_log::DurableLog::Consumer::kHorizonUnknown) {
      return journey::Detector::kHorizonUnknown;
    }
    return ms * 1000000;
  };
  if (const broker::BrokerMonitor* monitor = g.broker.get()) {
    // An open message's queue from the broker's bindings (EngineOptions::route_queue).
    engine_options.route_queue = [monitor](std::string_view exchange,
                                           std::string_view routing_key) -> std::string {
      const std::shared_ptr<const broker::Snapshot> snapshot = monitor->snapshot();
      if (!snapshot) return "";
      broker::Route route = broker::ResolveRoute(*snapshot, exchange, routing_key);
      if (route.kind != broker::Route::Kind::kQueues || route.queues.size() != 1) return "";
      return std::move(route.queues.front());
    };
  }
  g.engine = std::make_unique<journey::Engine>(std::move(rules).value(), *g.store, g.clock,
                                               &registry_, engine_options);
  if (Status s = g.engine->Recover(); !s.ok()) {
    return Status(s.code(), "journey store: recovering active orders: " + s.message());
  }
  journey::AttributionOptions attribution;
  attribution.enabled = ac.enabled;
  // Journeys read the ingest log: many requests' facts per engine write (JourneyStage, batched).
  journey::JourneyStageOptions stage_options;
  stage_options.batched = true;
  stage_options.apply_delay = config_.journeys.apply_delay;
  attribution.wait = wait;
  attribution.max_pending_spans = ac.max_pending_spans;
  attribution.max_pending_bytes = ac.max_pending_bytes;
  attribution.max_tracked_spans = ac.max_tracked_spans;
  attribution.max_tracked_traces = ac.max_tracked_traces;
  g.journey_stage =
      std::make_unique<journey::JourneyStage>(*g.engine, registry_, attribution, stage_options);
  g.journey_stage->Start();
  if (Status s = StartAlerts(); !s.ok()) return s;
  g.engine->StartDetector();

  // Retention per kind of data, enforced in the background.
  g.retention = std::make_unique<journey::RetentionTask>(
      *g.store, *g.engine, g.clock, RetentionOf(config_), config_.journeys.retention.interval);
  g.retention->Start();
  return Status::Ok();
}

Status Gateway::StartAlerts() {
  Impl& g = *impl_;
  const config::Config::Alerting& a = config_.alerting;
  std::vector<std::unique_ptr<alert::Sink>> sinks;
  for (const std::string& url : a.alertmanager) {
    sinks.push_back(alert::NewAlertmanagerSink(url, a.timeout));
  }
  if (!a.webhook.url.empty()) {
    sinks.push_back(alert::NewWebhookSink(a.webhook.url, a.webhook.secret, a.webhook.timeout));
  }
  if (sinks.empty()) return Status::Ok();
  alert::DispatcherOptions o;
  o.jaeger_ui = config::JaegerLinkBase(config_, HostName());
  // Order pages in the web UI, when this gateway serves one (ui.dir or compiled in).
  if (!config_.ui.dir.empty() || ui::EmbeddedUi() != nullptr) {
    o.ui = config::UiLinkBase(config_, HostName());
  }
  o.runbook_url = a.runbook_url;
  o.resend_interval = a.resend_interval;
  o.storm_threshold = a.storm.threshold;
  o.storm_window = a.storm.window;
  o.broker = g.broker.get();
  // What the webhook was told, so that a restart does not tell it again (docs/alerting.md,
  // "Restarts"); a memory store forgets its stuck orders on restart: nothing to record then.
  if (config_.journeys.store != "memory") {
    o.notified_path = (std::filesystem::path(config_.data_dir) / "alerts-notified.log").string();
  }
  journey::Engine* engine = g.engine.get();
  g.alerts = std::make_unique<alert::AlertDispatcher>(
      o, std::move(sinks), *g.store, [engine] { return engine->rules(); }, g.clock, &registry_);
  // After Recover(): the dispatcher's first job re-reads the stuck orders from the store and
  // re-sends them with their original startsAt; flags from now on arrive as events.
  g.engine->AddListener(g.alerts.get());
  if (g.broker) {
    // BrokerUnreachable: fired when the management API stops answering, resolved when it
    // answers again (docs/broker.md).
    alert::AlertDispatcher* alerts = g.alerts.get();
    g.broker->SetTransitionListener([alerts](const broker::BrokerTransition& t) {
      const std::string key = std::string(alert::kBrokerUnreachable) + "/" + t.broker;
      if (t.up) {
        alerts->ResolveSystem(key, t.at_ns);
      } else {
        alerts->FireSystem(key, alert::BrokerUnreachableAlert(t.broker, t.error, t.at_ns));
      }
    });
  }
  g.alerts->Start();
  log::Info("alerting on", {{"alertmanager", static_cast<uint64_t>(a.alertmanager.size())},
                            {"webhook", a.webhook.url.empty() ? "off" : a.webhook.url},
                            {"resend_interval", FormatDuration(a.resend_interval)},
                            {"storm_threshold", static_cast<uint64_t>(a.storm.threshold)}});
  return Status::Ok();
}

Status Gateway::ReloadRules() {
  Impl& g = *impl_;
  if (!g.engine) return Status::InvalidArgument("journeys are disabled (journeys.enabled)");
  auto rules = LoadJourneyRules(config_);
  if (!rules.ok()) return rules.status();
  if (const auto redactor = g.redacting ? g.redacting->redactor() : nullptr) {
    // An entity key the redaction would change: lookups by id would break (the redactor is
    // rebuilt with the new entity key by ReloadRedaction, right after on SIGHUP).
    const std::string& key = (*rules)->entity_key;
    if (redactor->PseudonymisesKey(key) || redactor->DropsKey(key)) {
      return Status::InvalidArgument("the rules' entity key '" + key +
                                     "' is pseudonymised or dropped by redaction.*: orders are "
                                     "found by it");
    }
  }
  return g.engine->SetRules(std::move(rules).value());
}

Status Gateway::ReloadTls() {
  Impl& g = *impl_;
  std::string errors;
  const std::pair<const config::Config::Listen::Tls*, const char*> listeners[] = {
      {&config_.listen.tls.http, "http"}, {&config_.listen.tls.otlp_http, "otlp_http"}};
  for (const auto& [tls, name] : listeners) {
    net::HttpServer* server = std::string_view(name) == "http" ? g.api.get() : g.otlp_http.get();
    if (!tls->enabled() || server == nullptr) continue;
    auto context = LoadListenerTls(*tls, name);
    Status s = context.ok() ? server->SetTls(*context) : context.status();
    if (!s.ok()) {
      errors += (errors.empty() ? "" : "; ") + s.message();
      continue;
    }
    log::Info("TLS certificate reloaded", {{"listener", std::string("listen.") + name}});
  }
  if (config_.listen.tls.otlp_grpc.enabled() && g.otlp_grpc) {
    auto context = LoadListenerTls(config_.listen.tls.otlp_grpc, "otlp_grpc");
    Status s = context.ok() ? g.otlp_grpc->SetTls(*context) : context.status();
    if (s.ok()) {
      log::Info("TLS certificate reloaded", {{"listener", "listen.otlp_grpc"}});
    } else {
      errors += (errors.empty() ? "" : "; ") + s.message();
    }
  }
  if (!errors.empty()) return Status::InvalidArgument(errors);
  return Status::Ok();
}

Status Gateway::Run() {
  BlockTerminationSignals();
  if (Status s = Start(); !s.ok()) return s;

  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  const timespec tick{0, 200'000'000};  // RequestStop() is noticed within this
  int sig = -1;
  while (!stop_requested_.load()) {
    sig = sigtimedwait(&set, nullptr, &tick);
    if (sig == SIGINT || sig == SIGTERM) break;
    if (sig == SIGHUP) {
      log::Info(
          "SIGHUP received, reloading the journey rules, TLS certificates and redaction keys");
      // The audit file first: logrotate has moved it, and the reload's own line goes to the
      // new one.
      std::string failed;
      if (impl_->audit) {
        if (Status s = impl_->audit->Reopen(); !s.ok()) {
          log::Error("audit log not reopened; writing on to the old file",
                     {{"error", s.message()}});
          failed += "audit";
        }
      }
      if (impl_->engine) {
        if (Status s = ReloadRules(); !s.ok()) {
          log::Error("rules not reloaded; the previous rules stay in force",
                     {{"error", s.message()}});
          failed += failed.empty() ? "rules" : ",rules";
        }
      }
      if (Status s = ReloadTls(); !s.ok()) {
        log::Error("TLS certificate not reloaded; the previous one stays in force",
                   {{"error", s.message()}});
        failed += failed.empty() ? "tls" : ",tls";
      }
      // After the rules: the redactor keeps their entity key.
      if (impl_->redacting) {
        if (Status s = ReloadRedaction(); !s.ok()) {
          log::Error("redaction keys not reloaded; the previous keys stay in force",
                     {{"error", s.message()}});
          failed += failed.empty() ? "redaction" : ",redaction";
        }
      }
      if (impl_->audit) {
        audit::AuditEvent e;
        e.event = "config_reload";
        e.outcome = failed.empty() ? "allowed" : "error";
        e.reason = failed.empty() ? "sighup" : "failed:" + failed;
        impl_->audit->Record(e);
      }
    }
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
